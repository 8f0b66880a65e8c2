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


class EndpointError(LlmopsError):
    """An inference endpoint (chat, bench) failed a request.

    ``kind`` is a short, stable label that ``llmops bench`` counts errors by.
    """

    kind: str = "error"


class EndpointUnreachable(EndpointError):
    """Nothing answers at the endpoint's address (connection refused, DNS, TLS)."""

    kind = "connect"


class EndpointTimeout(EndpointError):
    """The endpoint accepted the connection but did not answer in time."""

    kind = "timeout"


class EndpointAuthError(EndpointError):
    """The endpoint rejected the request's API key (HTTP 401/403)."""

    kind = "auth"


class EndpointHttpError(EndpointError):
    """The endpoint answered with an HTTP error status (other than 401/403)."""

    def __init__(self, message: str, hint: str | None = None, *, status: int = 0) -> None:
        super().__init__(message, hint)
        self.status = status
        self.kind = "http_5xx" if status >= 500 else "http_4xx"


class StreamInterrupted(EndpointError):
    """A streamed response stopped early: an error event, or the connection closed mid-stream."""

    kind = "stream_error"


class MalformedStreamError(EndpointError):
    """A streamed response is not valid server-sent events carrying the expected JSON."""

    kind = "malformed_sse"


class UnsupportedEndpoint(EndpointError):
    """The endpoint speaks neither the OpenAI API nor TGI's API."""

    kind = "unsupported"


class RemoteError(LlmopsError):
    """A remote host (over SSH) could not be reached or could not do what was asked."""


class SshConnectError(RemoteError):
    """No SSH session: the host refused, did not answer, or its name does not resolve."""


class SshTimeout(SshConnectError):
    """The host did not answer (TCP connect, SSH banner or authentication) in time."""


class SshAuthError(RemoteError):
    """The host rejected every key we offered (agent, IdentityFile, ~/.ssh/id_*)."""


class HostKeyError(RemoteError):
    """The host's key could not be verified against known_hosts."""


class UnknownHostKey(HostKeyError):
    """The host is not in known_hosts; it is trusted only with ``--trust-new-host``."""


class HostKeyMismatch(HostKeyError):
    """The host's key differs from the one in known_hosts: refused, always."""


class RemoteCommandError(RemoteError):
    """A command on the remote host failed."""


class RemoteLlmopsMissing(RemoteError):
    """llmops is not installed on the remote host (``llmops remote bootstrap`` installs it)."""


class RemotePythonMissing(RemoteError):
    """The remote host has no usable Python 3 with ``venv`` (needed to install llmops)."""


class InventoryError(LlmopsError):
    """The fleet inventory (hosts.yaml) is missing or malformed."""


class TunnelError(LlmopsError):
    """A tunnel (cloudflared, ngrok, SSH reverse forward) could not be started or checked."""


class TunnelToolMissing(TunnelError):
    """The tunnel program (cloudflared, ngrok) is not installed on this host."""


class TunnelStartError(TunnelError):
    """The tunnel process exited or never reported its public URL."""


class TunnelUnreachable(TunnelError):
    """The public URL does not reach the endpoint (``/v1/models`` through the tunnel)."""


class TunnelUnprotected(TunnelError):
    """The endpoint answers without an API key: refused unless ``--allow-public-no-auth``."""


class TunnelExists(TunnelError):
    """A tunnel for this deployment or port is already running."""


class GpuAdminError(LlmopsError):
    """A GPU setting (power limit, ECC) could not be read or changed through NVML."""


class GpuPermissionError(GpuAdminError):
    """NVML refused a write: it needs root, and SYS_ADMIN inside a container."""


class GpuSettingOutOfRange(GpuAdminError):
    """The requested value is outside what the GPU allows (e.g. its power-limit range)."""

    exit_code = ExitCode.USAGE


class GpuSettingNotSupported(GpuAdminError):
    """The GPU does not support this setting (e.g. ECC on a GeForce card)."""


class KillError(LlmopsError):
    """``llmops kill`` could not stop something it matched."""
