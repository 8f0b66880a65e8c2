"""`fit`, `render`, `up` and `recommend` agree, over a generated grid.

Every catalog model x hardware from 1x8GB to 8xH100 (and T4s, and a CPU host) x every engine
(and none) x every quant (and none) goes through the one decision. For each answer:

- it renders iff it fits (``plan`` is set exactly when the fit says yes), with the fit's
  engine, artifact, context and GPU count;
- the rendered command line is one the pinned engine's own parser accepts
  (``tests/support/engine_standin.check_argv``, from the engines' source);
- a refusal is a clear one-line LlmopsError with a hint, never a crash.

Then the CLI: a seeded sample of the grid through `fit --json` and `render -f json` gives the
same verdict, engine, quant and context; and `recommend`'s top rows render as they say.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter

import pytest
from typer.testing import CliRunner

from llmops.catalog.recipes import catalog
from llmops.cli import app
from llmops.errors import LlmopsError
from llmops.plan.deploy import Decision, Request, decide
from tests.plan.test_decision import hw, model
from tests.support.engine_standin import check_argv

HW = ("1x8GB", "1x24GB", "2x24GB", "4xT4", "1xA100-80GB", "8xH100", "cpu:64GB")
ENGINES = (None, "vllm", "sglang", "tgi", "llamacpp", "torch")
QUANTS = (None, "4bit", "8bit", "bf16", "fp16", "fp32", "awq", "gptq", "fp8", "q4_k_m", "q5_k_m")
QUANTS += ("q8_0",)


def grid() -> list[tuple[str, str, str | None, str | None]]:
    names = [m.name for m in catalog().models]
    return list(itertools.product(names, HW, ENGINES, QUANTS))


def _check(d: Decision, where: str) -> list[str]:
    bad = []
    if d.fits != (d.plan is not None):
        bad.append(f"{where}: fits={d.fits} but plan={'set' if d.plan else 'none'}")
    p = d.plan
    if p is None:
        return bad
    if (p.engine, p.quant, p.context) != (d.engine, d.artifact.quant, d.context):
        bad.append(f"{where}: plan {p.engine}/{p.quant}/{p.context} != fit")
    if d.context != d.report.context:
        bad.append(f"{where}: context {d.context} != fit's {d.report.context}")
    if p.engine in ("vllm", "sglang", "tgi", "llamacpp") and len(p.gpus) != d.report.gpus_used:
        bad.append(f"{where}: plan uses GPUs {p.gpus}, fit {d.report.gpus_used}")
    if p.engine != "torch":
        bad += [f"{where}: {x}" for x in check_argv(p.engine, list(p.argv))]
    return bad


def test_every_decision_renders_iff_it_fits_and_its_command_is_accepted() -> None:
    facts = {h: hw(h) for h in HW}
    models = {m.name: model(m.name) for m in catalog().models}
    bad: list[str] = []
    verdicts: Counter[str] = Counter()
    for name, h, engine, quant in grid():
        where = f"{name} --hw {h} -e {engine} -q {quant}"
        try:
            d = decide(Request(model=name, engine=engine, quant=quant), models[name], facts[h])
        except LlmopsError as e:
            assert e.message and e.hint and "\n" not in e.message, where
            verdicts["refused: " + e.message.split(":")[0].split(" has no ")[-1][:40]] += 1
            continue
        verdicts["fits" if d.fits else "does not fit"] += 1
        bad += _check(d, where)
    assert bad == [], "\n".join(bad[:30])
    assert verdicts["fits"] > 3000, verdicts  # the grid is not mostly refusals
    # with no --engine/--quant, a GPU host always gets a plan for the small models
    for h in HW:
        d = decide(Request(model="qwen2-1.5b"), models["qwen2-1.5b"], facts[h])
        assert d.fits, h


def _json(args: list[str]) -> tuple[int, dict | None]:  # type: ignore[type-arg]
    r = CliRunner().invoke(app, args, env={"HF_TOKEN": "hf_" + "x" * 20})
    assert "Traceback" not in r.output, r.output
    return r.exit_code, (json.loads(r.stdout) if r.exit_code in (0, 3) and r.stdout else None)


SAMPLE = random.Random(12).sample(grid(), 40)


@pytest.mark.parametrize(("name", "h", "engine", "quant"), SAMPLE)
def test_fit_and_render_agree_from_the_command_line(
    name: str, h: str, engine: str | None, quant: str | None
) -> None:
    opts = ["--hw", h, *(["-e", engine] if engine else []), *(["-q", quant] if quant else [])]
    fcode, fit = _json(["fit", name, *opts, "--json"])
    rcode, ren = _json(["render", name, *opts, "-f", "json", "--runtime", "docker"])
    assert fcode == rcode, (fcode, rcode)
    if fcode == 0:
        assert fit is not None and ren is not None
        plan = ren["plan"]
        assert (fit["engine"], fit["quant"], fit["context"]) == (
            plan["engine"],
            plan["quant"],
            plan["context"],
        )


@pytest.mark.parametrize("h", ["1x24GB", "2x24GB", "8xH100", "cpu:64GB"])
def test_recommend_top_choices_render(h: str) -> None:
    code, doc = _json(["recommend", "--hw", h, "--limit", "3", "--json"])
    assert code == 0 and doc is not None
    assert doc["recommendations"], doc
    for r in doc["recommendations"]:
        args = ["render", r["model"], "-e", r["engine"], "-q", r["quant"]]
        args += ["--context", str(r["context"]), "--hw", h, "-f", "json", "--runtime", "docker"]
        rc, ren = _json(args)
        assert rc == 0, (r, rc)
        assert ren is not None and ren["plan"]["quant"] == r["quant"]
        assert r["command"].startswith(f"llmops up {r['model']} --engine {r['engine']}")
        assert r["format"] and r["format"] != r["quant"]  # a concrete format in words
