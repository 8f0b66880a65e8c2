"""The LlmopsError family: a one-sentence message, a hint with a next command, an exit code.

Domain code raises these; one boundary in the Typer app (``llmops.cli``) turns them into
stderr text and an exit code. Nothing else in llmops prints errors or calls ``sys.exit``.
"""

from __future__ import annotations


class ExitCode:
    """Process exit codes, as documented in the README."""

    OK = 0
    FAILED = 1
    USAGE = 2
    NO_FIT = 3
    INTERNAL = 70
    INTERRUPTED = 130


class LlmopsError(Exception):
    """Base of every error llmops reports to a user.

    Args:
        message: one sentence naming the thing that failed (GPU 1, host gpu-box-2, ...).
        hint: a concrete next step, ideally a command to run.
    """

    exit_code: int = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(LlmopsError, ValueError):
    """The user asked for something malformed (bad option value, unknown name)."""

    exit_code = ExitCode.USAGE


class DoesNotFitError(LlmopsError):
    """A model/quantization/context does not fit the hardware."""

    exit_code = ExitCode.NO_FIT


class ProbeError(LlmopsError):
    """A host probe could not run at all."""


class NvmlUnavailable(ProbeError):
    """No NVIDIA driver or NVML library on this host."""


class DockerError(LlmopsError):
    """The Docker engine is unreachable or refused an operation."""


class FactsFileError(LlmopsError):
    """A saved HostFacts file is missing or malformed."""
