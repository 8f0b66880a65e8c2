"""Plain fakes at adapter boundaries where nothing real can run on a GPU-less machine."""

from __future__ import annotations

from pathlib import Path

from tests.support.fakes.fake_pynvml import FakeHandle, FakeNvml, nvml_error

NVML_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nvml"


def fake_nvml(name: str) -> FakeNvml:
    """A fresh :class:`FakeNvml` from ``tests/fixtures/nvml/<name>.json``."""
    return FakeNvml.from_fixture(NVML_FIXTURES / f"{name}.json")


__all__ = ["NVML_FIXTURES", "FakeHandle", "FakeNvml", "fake_nvml", "nvml_error"]
