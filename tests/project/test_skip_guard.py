"""The skip guard (tests/support/skipguard.py) itself: every way of not running a test is caught.

Each case runs a small pytest session in a subprocess with only the guard loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.skipguard import ALLOWED_SKIPS

REPO = str(Path(__file__).resolve().parents[2])


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str, *args: str):  # type: ignore[no-untyped-def]
    pytester.makepyfile(test_it=source)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("LLMOPS_FAIL_ON_SKIP", "1")
    return pytester.runpytest_subprocess(
        "-p", "tests.support.skipguard", "-p", "no:cacheprovider", *args
    )


PASSING = "def test_ok():\n    assert True\n"


def test_a_clean_run_passes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(pytester, monkeypatch, PASSING).ret == 0


@pytest.mark.parametrize(
    ("source", "args", "says"),
    [
        (
            PASSING + "def test_s():\n    import pytest; pytest.skip('docker is down')\n",
            (),
            "docker is down",
        ),
        (
            "import pytest\npytest.skip('no backend', allow_module_level=True)\n" + PASSING,
            (),
            "skipped at collection: no backend",
        ),
        (
            "import pytest\npytest.importorskip('no_such_module_x')\n" + PASSING,
            (),
            "skipped at collection",
        ),
        (PASSING + "def test_other():\n    pass\n", ("-k", "ok"), "deselected (-m/-k)"),
        (
            "import pytest\n@pytest.mark.slow\ndef test_slow():\n    pass\n" + PASSING,
            ("-m", "not slow", "-p", "no:warnings", "-o", "markers=slow: x"),
            "deselected (-m/-k)",
        ),
        (
            PASSING
            + "def test_s():\n    import pytest; pytest.skip('not this machine has an NVIDIA driver at all')\n",
            (),
            "not this machine has an NVIDIA driver at all",
        ),
    ],
    ids=["runtime", "module-level", "importorskip", "-k", "-m", "reason-merely-contains"],
)
def test_every_way_of_not_running_fails_the_run(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    args: tuple[str, ...],
    says: str,
) -> None:
    r = _run(pytester, monkeypatch, source, *args)
    assert r.ret == 1, r.stdout.str() + r.stderr.str()
    assert "LLMOPS_FAIL_ON_SKIP=1 and these tests were skipped" in r.stderr.str()
    assert says in r.stderr.str()


@pytest.mark.parametrize("reason", sorted(ALLOWED_SKIPS))
def test_the_exact_allowed_reasons_pass(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, reason: str
) -> None:
    source = PASSING + f"def test_s():\n    import pytest; pytest.skip({reason!r})\n"
    r = _run(pytester, monkeypatch, source)
    assert r.ret == 0, r.stderr.str()
