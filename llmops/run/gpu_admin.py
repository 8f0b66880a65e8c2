"""GPU settings through NVML: power limits and ECC mode (``nvidia-smi -pl`` and ``-e``).

NVML is reached through :mod:`llmops.hw.libnvml`, the adapter :mod:`llmops.hw.nvml` reads the
facts with: the pynvml-compatible module is injected (tests pass the fake; default the real
``pynvml``, imported there lazily). NVML facts (ops.md §5.2-5.4):
limits are milliwatts; ``nvmlDeviceGetPowerManagementLimitConstraints`` gives ``[min, max]``;
``nvmlDeviceSetPowerManagementLimit`` and ``nvmlDeviceSetEccMode`` need root, and inside a
container root is not enough without ``SYS_ADMIN`` (NVIDIA/nvidia-docker#495); a power limit
lasts until reboot or driver unload; an ECC change is *pending* until the next reboot/reset.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.errors import (
    GpuAdminError,
    GpuPermissionError,
    GpuSettingNotSupported,
    GpuSettingOutOfRange,
    NvmlUnavailable,
    UsageError,
)
from llmops.hw.libnvml import (
    ERR_FUNCTION_NOT_FOUND,
    ERR_INVALID_ARGUMENT,
    ERR_NO_PERMISSION,
    ERR_NOT_SUPPORTED,
    SETTING_UNAVAILABLE,
    Nvml,
    NvmlStartError,
    error_code,
    session,
)

_FEATURE_DISABLED = 0
_FEATURE_ENABLED = 1


@dataclass(frozen=True)
class GpuPower:
    index: int
    name: str | None
    draw_w: float | None
    limit_w: float | None
    enforced_limit_w: float | None
    default_limit_w: float | None
    min_limit_w: float | None
    max_limit_w: float | None
    error: str | None = None


@dataclass(frozen=True)
class PowerChange:
    index: int
    name: str | None
    old_limit_w: float | None
    new_limit_w: float
    default_limit_w: float | None


@dataclass(frozen=True)
class GpuEcc:
    index: int
    name: str | None
    current: bool | None  # None: not supported
    pending: bool | None
    error: str | None = None

    @property
    def reboot_pending(self) -> bool:
        return (
            self.current is not None and self.pending is not None and self.current != self.pending
        )


@dataclass(frozen=True)
class EccChange:
    index: int
    name: str | None
    current: bool
    pending: bool
    changed: bool  # False: it was already set (or already pending) that way


def local_container_evidence() -> tuple[str, ...]:
    """Reasons to think llmops runs in a container (see ``llmops.hw.system``)."""
    from llmops.hw.system import container_evidence

    try:
        cgroup = Path("/proc/1/cgroup").read_text(errors="replace")
    except OSError:
        cgroup = ""
    return container_evidence(
        dockerenv_exists=os.path.exists("/.dockerenv"),
        containerenv_exists=os.path.exists("/run/.containerenv"),
        cgroup_text=cgroup,
        env=os.environ,
    )


def _w(mw: Any) -> float | None:
    return None if mw is None else round(int(mw) / 1000.0, 1)


class GpuAdmin:
    """Read and change power limits and ECC mode on this host's GPUs."""

    def __init__(
        self,
        nvml: Any | None = None,
        *,
        container_evidence: Callable[[], tuple[str, ...]] = local_container_evidence,
        euid: Callable[[], int] = os.geteuid,
    ) -> None:
        self._module = nvml
        self._evidence = container_evidence
        self._euid = euid

    # ---- plumbing

    @contextmanager
    def _session(self) -> Iterator[Nvml]:
        try:
            with session(self._module) as nv:
                yield nv
        except NvmlStartError as e:
            if e.kind == "no_library":
                raise NvmlUnavailable(
                    f"nvidia-ml-py is not installed ({e.cause})", "`pip install nvidia-ml-py`"
                ) from e.cause
            raise NvmlUnavailable(
                f"NVML could not start: {e.cause}",
                "`llmops doctor --check gpu` explains (no driver, driver/library mismatch, ...)",
            ) from e.cause

    def _handles(self, nv: Nvml, gpus: Sequence[int] | None) -> list[tuple[int, Any]]:
        count = nv.count()
        wanted = list(range(count)) if gpus is None else list(gpus)
        missing = [g for g in wanted if not 0 <= g < count]
        if missing:
            raise UsageError(
                f"no GPU {missing[0]} on this host (it has {count})",
                "see `llmops power show` for the GPU indices",
            )
        out: list[tuple[int, Any]] = []
        for i in wanted:
            try:
                out.append((i, nv.handle(i)))
            except nv.error as e:
                out.append((i, e))  # a lost GPU: an error row, or an error when writing
        return out

    @staticmethod
    def _usable(i: int, h: Any) -> Any:
        if isinstance(h, BaseException):
            raise GpuAdminError(
                f"GPU {i} does not answer NVML: {h}",
                f"`nvidia-smi -q -i {i}`; a lost GPU usually needs a reboot; "
                "select the others with `--gpu`",
            )
        return h

    @staticmethod
    def _get(nv: Nvml, fn: str, *args: Any) -> Any:
        return nv.query(fn, *args, unavailable=SETTING_UNAVAILABLE)

    @staticmethod
    def _name(nv: Nvml, h: Any) -> str | None:
        return nv.name(h, unavailable=SETTING_UNAVAILABLE)

    def _write_error(self, e: Exception, gpu: int, name: str | None, what: str) -> GpuAdminError:
        label = f"GPU {gpu}" + (f" ({name})" if name else "")
        code = error_code(e)
        if code == ERR_NO_PERMISSION:
            evidence = self._evidence()
            if self._euid() != 0:
                return GpuPermissionError(
                    f"{what} on {label} needs root (NVML: insufficient permissions)",
                    "run it with sudo, e.g. `sudo $(command -v llmops) " + _cmd_hint(what) + "`",
                )
            if evidence:
                return GpuPermissionError(
                    f"{what} on {label} was refused inside a container ({'; '.join(evidence)}): "
                    "root in a container also needs the SYS_ADMIN capability",
                    "restart the container with `--cap-add SYS_ADMIN`, or do it on the host; "
                    "rented GPUs (vast.ai, RunPod) do not allow it, so leave the setting as it is",
                )
            return GpuPermissionError(
                f"{what} on {label} was refused by the driver even as root",
                "check `nvidia-smi -q -d POWER,ECC`; vGPUs and some boards do not allow it",
            )
        if code in (ERR_NOT_SUPPORTED, ERR_FUNCTION_NOT_FOUND):
            return GpuSettingNotSupported(
                f"{label} does not support {what}",
                "`nvidia-smi -q -i " + str(gpu) + "` shows what it supports",
            )
        if code == ERR_INVALID_ARGUMENT:
            return GpuSettingOutOfRange(
                f"{label} rejected {what}: invalid value", "see `llmops power show` for its range"
            )
        return GpuAdminError(f"{what} on {label} failed: {e}", "`llmops doctor --check gpu`")

    # ---- power

    def power_show(self, gpus: Sequence[int] | None = None) -> list[GpuPower]:
        with self._session() as nv:
            out = []
            for i, h in self._handles(nv, gpus):
                try:
                    if isinstance(h, BaseException):
                        raise h
                    cons = self._get(nv, "nvmlDeviceGetPowerManagementLimitConstraints", h)
                    lo, hi = (cons[0], cons[1]) if cons else (None, None)
                    out.append(
                        GpuPower(
                            index=i,
                            name=self._name(nv, h),
                            draw_w=_w(self._get(nv, "nvmlDeviceGetPowerUsage", h)),
                            limit_w=_w(self._get(nv, "nvmlDeviceGetPowerManagementLimit", h)),
                            enforced_limit_w=_w(
                                self._get(nv, "nvmlDeviceGetEnforcedPowerLimit", h)
                            ),
                            default_limit_w=_w(
                                self._get(nv, "nvmlDeviceGetPowerManagementDefaultLimit", h)
                            ),
                            min_limit_w=_w(lo),
                            max_limit_w=_w(hi),
                        )
                    )
                except nv.error as e:
                    out.append(GpuPower(i, None, None, None, None, None, None, None, error=str(e)))
            return out

    def power_set(
        self,
        gpus: Sequence[int] | None = None,
        *,
        watts: float | None = None,
        percent: float | None = None,
        reset: bool = False,
    ) -> list[PowerChange]:
        """Set the power limit: ``watts``, ``percent`` of the default limit, or the default.

        Every GPU's target is checked against its ``[min, max]`` before anything is written.

        Raises:
            GpuSettingOutOfRange: a target outside a GPU's range (nothing was changed).
            GpuPermissionError: not root, or in a container without SYS_ADMIN.
        """
        if sum(x is not None for x in (watts, percent)) + int(reset) != 1:
            raise UsageError(
                "give exactly one of --watts or --percent", "e.g. `llmops power set --percent 75`"
            )
        if watts is not None and watts <= 0:
            raise UsageError(f"--watts must be positive (got {watts})", "e.g. `--watts 280`")
        if percent is not None and not 0 < percent <= 200:
            raise UsageError(f"--percent must be in 1-200 (got {percent})", "e.g. `--percent 75`")
        with self._session() as nv:
            plan: list[tuple[int, Any, str | None, int, int | None, int | None]] = []
            problems = []
            for i, h in self._handles(nv, gpus):
                h = self._usable(i, h)
                name = self._name(nv, h)
                cons = self._get(nv, "nvmlDeviceGetPowerManagementLimitConstraints", h)
                default = self._get(nv, "nvmlDeviceGetPowerManagementDefaultLimit", h)
                current = self._get(nv, "nvmlDeviceGetPowerManagementLimit", h)
                if cons is None or (default is None and watts is None):
                    raise GpuSettingNotSupported(
                        f"GPU {i}" + (f" ({name})" if name else "") + " does not report a "
                        "power-limit range: power management is not supported on it",
                        f"`nvidia-smi -q -d POWER -i {i}`",
                    )
                lo, hi = int(cons[0]), int(cons[1])
                if watts is not None:
                    target = int(round(watts * 1000))
                elif percent is not None:
                    target = int(round(int(default) * percent / 100.0))
                else:
                    target = int(default)
                if not lo <= target <= hi:
                    problems.append(
                        f"GPU {i} ({name}): {target / 1000:g} W is outside its range "
                        f"{lo / 1000:g}-{hi / 1000:g} W (default {int(default) / 1000:g} W)"
                        if default is not None
                        else f"GPU {i} ({name}): {target / 1000:g} W is outside {lo / 1000:g}-{hi / 1000:g} W"
                    )
                plan.append((i, h, name, target, default, current))
            if problems:
                raise GpuSettingOutOfRange(
                    "; ".join(problems) + "; nothing was changed",
                    "choose a value inside every selected GPU's range, or select GPUs with `--gpu`",
                )
            out = []
            for i, h, name, target, default, current in plan:
                try:
                    nv.call("nvmlDeviceSetPowerManagementLimit", h, target)
                except nv.error as e:
                    raise self._write_error(e, i, name, "setting the power limit") from e
                now = self._get(nv, "nvmlDeviceGetPowerManagementLimit", h)
                out.append(
                    PowerChange(
                        i,
                        name,
                        _w(current),
                        _w(now if now is not None else target) or 0.0,
                        _w(default),
                    )
                )
            return out

    # ---- ECC

    def ecc_show(self, gpus: Sequence[int] | None = None) -> list[GpuEcc]:
        with self._session() as nv:
            out = []
            for i, h in self._handles(nv, gpus):
                try:
                    if isinstance(h, BaseException):
                        raise h
                    mode = self._get(nv, "nvmlDeviceGetEccMode", h)
                    cur, pend = (bool(mode[0]), bool(mode[1])) if mode else (None, None)
                    out.append(GpuEcc(i, self._name(nv, h), cur, pend))
                except nv.error as e:
                    out.append(GpuEcc(i, None, None, None, error=str(e)))
            return out

    def ecc_set(self, enabled: bool, gpus: Sequence[int] | None = None) -> list[EccChange]:
        """Request ECC on/off; it becomes *pending* and applies after a reboot (or GPU reset)."""
        with self._session() as nv:
            targets = []
            for i, h in self._handles(nv, gpus):
                h = self._usable(i, h)
                name = self._name(nv, h)
                mode = self._get(nv, "nvmlDeviceGetEccMode", h)
                if mode is None:
                    raise GpuSettingNotSupported(
                        f"GPU {i}" + (f" ({name})" if name else "") + " does not support ECC "
                        "(GeForce cards have none)",
                        "select GPUs that do with `--gpu`; `llmops ecc show` lists them",
                    )
                targets.append((i, h, name, bool(mode[1])))
            out = []
            for i, h, name, pending_before in targets:
                if pending_before != enabled:
                    try:
                        nv.call(
                            "nvmlDeviceSetEccMode",
                            h,
                            _FEATURE_ENABLED if enabled else _FEATURE_DISABLED,
                        )
                    except nv.error as e:
                        raise self._write_error(e, i, name, "changing ECC mode") from e
                mode = nv.call("nvmlDeviceGetEccMode", h)
                out.append(
                    EccChange(i, name, bool(mode[0]), bool(mode[1]), pending_before != enabled)
                )
            return out


def _cmd_hint(what: str) -> str:
    return "power set ..." if "power" in what else "ecc ..."


__all__ = [
    "EccChange",
    "GpuAdmin",
    "GpuEcc",
    "GpuPower",
    "PowerChange",
    "local_container_evidence",
]
