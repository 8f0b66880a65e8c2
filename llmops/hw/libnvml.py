"""The one adapter to NVML (``nvidia-ml-py``, import name ``pynvml``), after nvitop's
``api/libnvml.py``: the only module in llmops that imports ``pynvml`` (lazily, in :func:`load`).

Reading (:mod:`llmops.hw.nvml`, the ``nvidia`` facts) and changing settings
(:mod:`llmops.run.gpu_admin`, power limits and ECC) both go through it:

- :func:`session` loads the bindings, runs ``nvmlInit`` and always ``nvmlShutdown``; a missing
  library or a failed init raises :class:`NvmlStartError` with a kind and an explanation
  (:func:`init_failure`), which each caller reports its own way (facts or an error).
- :class:`Nvml` wraps the module: :meth:`Nvml.call` (a name the bindings lack raises
  FunctionNotFound), :meth:`Nvml.query` (the choke point: "not available here" errors become
  ``None``), :meth:`Nvml.handle` (by index or UUID), and the exception classes, including
  ``NVMLLibraryMismatchError``, which nvidia-ml-py raises instead of FunctionNotFound for an
  unversioned call and which is NOT an ``NVMLError``.

Tests hand in a pynvml-compatible fake (``tests/support/fakes/fake_pynvml.py``) as ``module``.
Error codes are from ``/work/shared/reference/ops.md`` section 5 (nvidia-ml-py 13.615.71).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

# NVML_ERROR_* codes (pynvml.py l.224-254). They are part of NVML's C ABI, so they do not change.
ERR_INVALID_ARGUMENT = 2
ERR_NOT_SUPPORTED = 3
ERR_NO_PERMISSION = 4
ERR_DRIVER_NOT_LOADED = 9
ERR_LIBRARY_NOT_FOUND = 12
ERR_FUNCTION_NOT_FOUND = 13
ERR_GPU_IS_LOST = 15
ERR_RESET_REQUIRED = 16
ERR_LIB_RM_VERSION_MISMATCH = 18
ERR_ARGUMENT_VERSION_MISMATCH = 25

#: Reading: errors that mean "this one field is not available here": the field becomes None.
FIELD_UNAVAILABLE = frozenset(
    {ERR_NOT_SUPPORTED, ERR_NO_PERMISSION, ERR_FUNCTION_NOT_FOUND, ERR_INVALID_ARGUMENT}
)
#: Changing settings: the same, except InvalidArgument, which there means a bad value.
SETTING_UNAVAILABLE = frozenset({ERR_NOT_SUPPORTED, ERR_NO_PERMISSION, ERR_FUNCTION_NOT_FOUND})
#: Errors that mean "this call (or struct version) is too new for the driver": try the older one.
TRY_OLDER_CALL = frozenset({ERR_FUNCTION_NOT_FOUND, ERR_ARGUMENT_VERSION_MISMATCH})


def error_code(exc: BaseException) -> int | None:
    """The NVML_ERROR_* code of an ``NVMLError`` (None for anything else)."""
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def text(value: Any) -> str | None:
    """NVML strings: ``str`` from nvidia-ml-py on py3, ``bytes`` from older bindings/structs."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").rstrip("\x00")
    return str(value)


class _NeverRaised(Exception):
    """Stands for an exception class the bindings do not have."""


class Nvml:
    """A pynvml-compatible module plus the one choke point every call goes through."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.error: type[Exception] = module.NVMLError
        # nvidia-ml-py's ``throwOnVersionMismatch`` turns FunctionNotFound of an unversioned
        # call into NVMLLibraryMismatchError, which is NOT an NVMLError (13.x; absent in old
        # bindings: then nothing can match it).
        self.mismatch_error: type[Exception] = getattr(
            module, "NVMLLibraryMismatchError", _NeverRaised
        )
        self.mismatches: list[str] = []

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``name`` on the module; a name the module lacks raises FunctionNotFound."""
        fn = getattr(self.module, name, None)
        if fn is None:
            raise self.module.NVMLError(ERR_FUNCTION_NOT_FOUND)
        return fn(*args, **kwargs)

    def query(self, name: str, *args: Any, unavailable: frozenset[int] = FIELD_UNAVAILABLE) -> Any:
        """Like :meth:`call`, but ``None`` when the error's code is in ``unavailable`` (the field
        is not available on this GPU/driver).

        Any other NVML error (GpuIsLost, Unknown, ...) propagates: the caller decides whether it
        makes the whole GPU an error row.
        """
        try:
            return self.call(name, *args)
        except self.error as exc:
            if error_code(exc) in unavailable:
                return None
            raise

    def constant(self, name: str, default: Any) -> Any:
        return getattr(self.module, name, default)

    def count(self) -> int:
        """How many GPUs NVML sees: ``nvidia-smi --query-gpu=count``."""
        return int(self.call("nvmlDeviceGetCount"))

    def handle(self, gpu: int | str) -> Any:
        """The device handle of GPU ``gpu``: an index, or a UUID (``GPU-…``, as
        ``nvidia-smi -L`` prints it), like ``nvidia-smi -i``.

        Raises:
            NVMLError: InvalidArgument for an index out of range, NotFound for an unknown UUID,
                GpuIsLost and friends for a broken GPU.
        """
        if isinstance(gpu, int):
            return self.call("nvmlDeviceGetHandleByIndex", gpu)
        return self.call("nvmlDeviceGetHandleByUUID", gpu)

    def name(self, handle: Any, unavailable: frozenset[int] = FIELD_UNAVAILABLE) -> str | None:
        """The product name: ``nvidia-smi --query-gpu=name``."""
        return text(self.query("nvmlDeviceGetName", handle, unavailable=unavailable))


class NvmlStartError(Exception):
    """NVML cannot be used here: the bindings are missing or ``nvmlInit`` failed.

    Attributes:
        kind: ``no_library``, ``no_driver``, ``driver_not_loaded``, ``version_mismatch``,
            ``no_permission`` or ``unknown`` (the facts' ``error_kind``).
        explanation: one sentence saying what it means.
        cause: the ImportError or NVMLError.
    """

    def __init__(self, kind: str, explanation: str, cause: BaseException) -> None:
        super().__init__(explanation)
        self.kind = kind
        self.explanation = explanation
        self.cause = cause


def init_failure(exc: BaseException) -> tuple[str, str]:
    """(kind, explanation) of an ``nvmlInit`` failure (nvitop ``libnvml.py`` docstrings)."""
    code = error_code(exc)
    if code == ERR_LIBRARY_NOT_FOUND:
        return "no_driver", "no NVIDIA driver found (libnvidia-ml.so.1 could not be loaded)"
    if code == ERR_DRIVER_NOT_LOADED:
        return (
            "driver_not_loaded",
            f"the NVIDIA driver is installed but its kernel module is not loaded (NVML: {exc})",
        )
    if code == ERR_LIB_RM_VERSION_MISMATCH:
        return (
            "version_mismatch",
            "NVIDIA driver/library version mismatch: the driver was upgraded without a "
            f"reboot (NVML: {exc})",
        )
    if code == ERR_NO_PERMISSION:
        return (
            "no_permission",
            f"no permission to open the NVIDIA devices /dev/nvidia* (NVML: {exc})",
        )
    return "unknown", f"NVML initialisation failed (NVML: {exc})"


def load(module: Any | None = None) -> Nvml:
    """Wrap ``module`` (default: import the real ``pynvml``).

    Raises:
        NvmlStartError: kind ``no_library`` when nvidia-ml-py is not installed.
    """
    if module is None:
        try:
            import pynvml
        except ImportError as exc:
            raise NvmlStartError(
                "no_library", f"nvidia-ml-py is not installed (import pynvml failed: {exc})", exc
            ) from exc
        module = pynvml
    return Nvml(module)


@contextlib.contextmanager
def session(module: Any | None = None) -> Iterator[Nvml]:
    """``nvmlInit`` … ``nvmlShutdown`` around the block (shutdown errors are ignored).

    Raises:
        NvmlStartError: the bindings are missing or ``nvmlInit`` failed.
    """
    nv = load(module)
    try:
        nv.call("nvmlInit")
    except nv.error as exc:
        kind, explanation = init_failure(exc)
        raise NvmlStartError(kind, explanation, exc) from exc
    try:
        yield nv
    finally:
        with contextlib.suppress(nv.error):
            nv.call("nvmlShutdown")


__all__ = [
    "FIELD_UNAVAILABLE",
    "SETTING_UNAVAILABLE",
    "TRY_OLDER_CALL",
    "Nvml",
    "NvmlStartError",
    "error_code",
    "init_failure",
    "load",
    "session",
    "text",
]
