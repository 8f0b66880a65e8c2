"""What every golden file must say, derived by a person rather than frozen from the code.

The goldens under ``tests/fixtures/golden/`` are compared byte for byte elsewhere; that only
proves the output did not change. These checks prove the frozen output is right: paths that a
shell or Docker will really resolve, no secret value anywhere, and GPUs picked by the rule a
person would apply (the ones with the most free memory).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmops.hw.nvml import probe_nvidia
from tests.support.fakes import fake_nvml

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
FILES = sorted(p for p in GOLDEN.iterdir() if p.suffix in (".sh", ".yaml"))


def _code_lines(text: str) -> list[str]:
    """Lines that are not comments (a comment may say anything)."""
    return [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]


def test_there_are_goldens_to_check() -> None:
    assert len(FILES) >= 20


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_tilde_that_will_not_expand(path: Path) -> None:
    """``~`` expands only unquoted at the start of a shell word, and never in YAML, an env
    value or a Docker bind source: every path must be absolute or written ``"$HOME"/...``."""
    for ln in _code_lines(path.read_text()):
        assert "~/" not in ln and "'~" not in ln and '"~' not in ln, f"{path.name}: {ln}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_secret_value_in_any_render(path: Path) -> None:
    text = path.read_text()
    assert not re.search(r"sk-llmops-\w", text), path.name
    assert not re.search(r"\bhf_[A-Za-z0-9]{8,}", text), path.name
    for ln in _code_lines(text):
        # keys and tokens only ever come from an env file / a Secret, never as a value here
        m = re.search(r"\b(API_KEY|VLLM_API_KEY|LLAMA_API_KEY|HF_TOKEN)=([^\s'\"]+)", ln)
        assert m is None or m.group(2).startswith(("$", "<")), f"{path.name}: {ln}"
        assert not re.search(r"--api-key[ =](?![\"']?\$)", ln), f"{path.name}: {ln}"


@pytest.mark.parametrize("path", [p for p in FILES if p.suffix == ".sh"], ids=lambda p: p.name)
def test_paths_in_shell_renders_are_absolute_or_home(path: Path) -> None:
    text = path.read_text()
    sources = re.findall(r"-v (\S+?):/", text)  # docker bind/volume sources
    sources += re.findall(r"--env-file (\S+)", text)
    sources += re.findall(r"^\s*set -a; \. (\S+);", text, flags=re.M)
    sources += re.findall(r"^done < (\S+)$", text, flags=re.M)  # the secrets file, read as data
    sources += [v for _k, v in re.findall(r"^export (\w+)=(\S+)$", text, flags=re.M) if "/" in v]
    for src in sources:
        src = src.strip("'\"")
        named_volume = re.fullmatch(r"[\w.-]+", src) is not None
        ok = src.startswith(("/", '$HOME"/', "$HOME/", '"$HOME"/', "$")) or named_volume
        assert ok, f"{path.name}: {src!r} is neither absolute nor under $HOME"


def _least_used(fixture: str, k: int) -> list[int]:
    nv = probe_nvidia(fake_nvml(fixture), process_name=lambda _pid: None)
    free = sorted(nv.healthy_gpus, key=lambda g: (-(g.memory_free_mib or 0), g.index))
    return sorted(g.index for g in free[:k])


@pytest.mark.parametrize("name", ["dry-run-tgi.sh", "dry-run-vllm.sh", "dry-run-torch.sh"])
def test_dry_runs_on_the_h100_box_pick_the_least_used_gpus(name: str) -> None:
    """These goldens were rendered on the 8xH100 fixture, where GPU 0 is busy: a person picks
    the GPUs with the most free memory, so GPU 0 is never among them."""
    text = (GOLDEN / name).read_text()
    (chosen,) = re.findall(r"^export CUDA_VISIBLE_DEVICES=([\d,]+)$", text, flags=re.M)
    gpus = [int(g) for g in chosen.split(",")]
    assert gpus == _least_used("h100x8_nvlink", len(gpus))
    assert 0 not in gpus
