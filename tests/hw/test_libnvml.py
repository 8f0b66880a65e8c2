"""The one NVML adapter (llmops.hw.libnvml) that reading (hw/nvml.py) and settings
(run/gpu_admin.py) share: start/stop, error kinds, handle lookup, the choke point. Through the
fake pynvml (real exception classes), and through the real nvidia-ml-py on this machine."""

from __future__ import annotations

import sys

import pynvml
import pytest

from llmops.errors import NvmlUnavailable
from llmops.hw import libnvml
from llmops.hw.libnvml import NvmlStartError, session
from llmops.hw.nvml import probe_nvidia
from llmops.run.gpu_admin import GpuAdmin
from tests.support.fakes import FakeHandle, fake_nvml

UUID_1 = "GPU-c41a6d2b-0e7f-4a53-9b1c-7d8e2f6a3b90"  # rtx3090x2_pcie, GPU 1


def test_session_inits_and_always_shuts_down() -> None:
    fake = fake_nvml("rtx3090x2_pcie")
    with session(fake) as nv:
        assert fake.initialized == 1 and nv.count() == 2
    assert (fake.init_calls, fake.shutdown_calls, fake.initialized) == (1, 1, 0)
    with pytest.raises(ZeroDivisionError), session(fake):
        1 / 0  # noqa: B018
    assert (fake.shutdown_calls, fake.initialized) == (2, 0)


def test_handle_by_index_and_by_uuid_name_the_same_gpu() -> None:
    fake = fake_nvml("rtx3090x2_pcie")
    with session(fake) as nv:
        assert nv.handle(1) == nv.handle(UUID_1) == FakeHandle(1)
        assert nv.handle(UUID_1.encode()) == FakeHandle(1)  # type: ignore[arg-type]
        assert nv.name(nv.handle(UUID_1)) == "NVIDIA GeForce RTX 3090"
        with pytest.raises(pynvml.NVMLError_NotFound):
            nv.handle("GPU-00000000-0000-0000-0000-000000000000")
        with pytest.raises(pynvml.NVMLError_InvalidArgument):
            nv.handle(2)


def test_query_maps_unavailable_fields_to_none_and_lets_the_rest_through() -> None:
    fake = fake_nvml("rtx3090x2_pcie")  # no ECC: NotSupported
    fake.set_error("nvmlDeviceGetPowerUsage", "InvalidArgument")
    fake.set_error("nvmlDeviceGetUUID", "GpuIsLost")
    with session(fake) as nv:
        h = nv.handle(0)
        assert nv.query("nvmlDeviceGetEccMode", h) is None
        assert nv.query("nvmlDeviceNoSuchCall", h) is None  # FunctionNotFound
        assert nv.query("nvmlDeviceGetPowerUsage", h) is None  # reading: a field, gone
        with pytest.raises(pynvml.NVMLError_InvalidArgument):  # settings: a bad value
            nv.query("nvmlDeviceGetPowerUsage", h, unavailable=libnvml.SETTING_UNAVAILABLE)
        with pytest.raises(pynvml.NVMLError_GpuIsLost):
            nv.query("nvmlDeviceGetUUID", h)


def test_library_mismatch_error_is_the_bindings_own_class() -> None:
    """nvidia-ml-py's NVMLLibraryMismatchError is no NVMLError; the adapter names it for callers."""
    with session(fake_nvml("rtx3090x2_pcie")) as nv:
        assert nv.mismatch_error is pynvml.NVMLLibraryMismatchError
        assert not issubclass(nv.mismatch_error, nv.error)

    class OldBindings:  # bindings older than 13.x have no such class
        NVMLError = pynvml.NVMLError

    nv_old = libnvml.load(OldBindings())
    assert not issubclass(pynvml.NVMLLibraryMismatchError, nv_old.mismatch_error)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("LibraryNotFound", "no_driver"),
        ("DriverNotLoaded", "driver_not_loaded"),
        ("LibRmVersionMismatch", "version_mismatch"),
        ("NoPermission", "no_permission"),
        ("Unknown", "unknown"),
    ],
)
def test_a_failed_init_is_one_error_for_reading_and_for_settings(error: str, kind: str) -> None:
    fake = fake_nvml("rtx3090x2_pcie")
    fake.data["init_error"] = error
    with pytest.raises(NvmlStartError) as e, session(fake):
        pass
    assert e.value.kind == kind and isinstance(e.value.cause, pynvml.NVMLError)
    assert fake.shutdown_calls == 0  # nothing to shut down
    facts = probe_nvidia(fake)
    assert (facts.error_kind, facts.error) == (kind, e.value.explanation)
    with pytest.raises(NvmlUnavailable) as admin:
        GpuAdmin(fake).power_show()
    assert admin.value.message == f"NVML could not start: {e.value.cause}"


def test_without_nvidia_ml_py_both_users_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with pytest.raises(NvmlStartError) as e:
        libnvml.load()
    assert e.value.kind == "no_library" and isinstance(e.value.cause, ImportError)
    assert probe_nvidia().error_kind == "no_library"
    with pytest.raises(NvmlUnavailable) as admin:
        GpuAdmin().ecc_show()
    assert admin.value.message.startswith("nvidia-ml-py is not installed (")
    assert admin.value.hint == "`pip install nvidia-ml-py`"


def test_settings_and_reading_leave_nvml_shut_down() -> None:
    fake = fake_nvml("h100x8_nvlink")
    GpuAdmin(fake, container_evidence=lambda: (), euid=lambda: 0).power_set([0], percent=90)
    probe_nvidia(fake, process_name=lambda _pid: None)
    assert fake.init_calls == fake.shutdown_calls == 2 and fake.initialized == 0


# --------------------------------------------------------------------------- the real pynvml


def _real_gpus() -> int:
    try:
        with session() as nv:
            return nv.count()
    except NvmlStartError:
        return 0


def test_real_pynvml_start_error_on_a_machine_without_a_driver() -> None:
    import ctypes.util

    if ctypes.util.find_library("nvidia-ml") or _real_gpus():
        pytest.skip("this machine has an NVIDIA driver")
    with pytest.raises(NvmlStartError) as e, session():
        pass
    assert e.value.kind == "no_driver"
    assert isinstance(e.value.cause, pynvml.NVMLError_LibraryNotFound)


def test_real_pynvml_handle_by_uuid_on_a_gpu_machine() -> None:
    """On a machine with a GPU (the lent GPU box): index and UUID reach the same device, through
    the real bindings' str→bytes conversion, and an unknown UUID is NotFound, as the fake says."""
    if not _real_gpus():
        pytest.skip("this machine has no NVIDIA GPU")
    with session() as nv:
        h0 = nv.handle(0)
        uuid = libnvml.text(nv.call("nvmlDeviceGetUUID", h0))
        assert uuid and uuid.startswith("GPU-")
        assert libnvml.text(nv.call("nvmlDeviceGetUUID", nv.handle(uuid))) == uuid
        assert nv.name(nv.handle(uuid)) == nv.name(h0)
        with pytest.raises(pynvml.NVMLError_NotFound):
            nv.handle("GPU-00000000-0000-0000-0000-000000000000")
