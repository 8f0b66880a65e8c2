"""CI must not pass by skipping (a pytest plugin, loaded by ``tests/conftest.py``).

With ``LLMOPS_FAIL_ON_SKIP=1`` (set by ``.ci/run``) a skip fails the run unless its reason is,
exactly, one that depends on hardware CI cannot have (a real NVIDIA driver) or on how the
machine's root account is set up. Skips at collection time (a module-level ``pytest.skip``,
``pytest.importorskip``) and tests deselected by ``-m``/``-k`` count like any other skip.
"""

from __future__ import annotations

import os
import sys

import pytest

ALLOWED_SKIPS = frozenset(
    {
        "this machine has an NVIDIA driver",
        "this machine has no NVIDIA GPU",
        "root has an llmops on its login PATH here",
        "root has an llmops on its login PATH here, so the fallback is not taken",
    }
)
_SKIPPED: list[tuple[str, str]] = []


def _required() -> bool:
    return os.environ.get("LLMOPS_FAIL_ON_SKIP", "") not in ("", "0")


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    text = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return text.removeprefix("Skipped: ")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _SKIPPED.append((report.nodeid, _reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _SKIPPED.append((report.nodeid, "skipped at collection: " + _reason(report)))


def pytest_deselected(items: list[pytest.Item]) -> None:
    _SKIPPED.extend((item.nodeid, "deselected (-m/-k)") for item in items)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _required():
        return
    bad = [(n, r) for n, r in _SKIPPED if r not in ALLOWED_SKIPS]
    if bad:
        print("\nLLMOPS_FAIL_ON_SKIP=1 and these tests were skipped:", file=sys.stderr)
        for nodeid, reason in bad:
            print(f"  {nodeid}: {reason}", file=sys.stderr)
        session.exitstatus = 1
