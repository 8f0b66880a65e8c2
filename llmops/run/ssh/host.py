"""One SSH session to one host (:class:`SshHost`): connect (keys from the agent or files, the
host key checked by :mod:`llmops.run.ssh.trust`, jump hosts and ProxyCommand), run commands
with their exit codes (captured or streamed), copy files over a plain exec channel (works where
SFTP does not), and open port forwards (:mod:`llmops.run.ssh.forwards`).

Every paramiko/socket failure becomes an ``llmops.errors.RemoteError`` subclass naming the host,
with a hint.
"""

from __future__ import annotations

import codecs
import contextlib
import getpass
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, cast

from llmops.errors import (
    HostKeyMismatch,
    RemoteCommandError,
    SshAuthError,
    SshConnectError,
    UnknownHostKey,
    UsageError,
)
from llmops.run.ssh.auth import _AuthPlan, _is_interactive, _Strategy, auth_plan, connect_error
from llmops.run.ssh.commands import ExecResult, pump, short
from llmops.run.ssh.config import SshEndpoint, load_ssh_config, resolve
from llmops.run.ssh.forwards import LocalForward, RemoteForward
from llmops.run.ssh.target import command_line, parse_target
from llmops.run.ssh.trust import (
    apply_trust,
    files_holding,
    llmops_known_hosts,
    mismatch_error,
    user_known_hosts_files,
)


class SshHost:
    """One SSH session to one host (and its jump hosts). Use as a context manager.

    Args:
        endpoint: from :func:`resolve`.
        trust_new_host: record an unknown host key in llmops' known_hosts instead of refusing.
        known_hosts: llmops' own known_hosts (default ``$LLMOPS_HOME/known_hosts``).
        config: the SSHConfig used for jump hosts' aliases.
        interactive: may we prompt for a key passphrase (default: stdin is a terminal).
        passphrase_prompt: how to ask (default ``getpass.getpass``).
        via: reach this host through a TCP channel of that (already connected) host.
    """

    def __init__(
        self,
        endpoint: SshEndpoint,
        *,
        trust_new_host: bool = False,
        known_hosts: Path | None = None,
        config: Any | None = None,
        interactive: bool | None = None,
        passphrase_prompt: Callable[[str], str] | None = None,
        via: SshHost | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.via = via
        self.trust_new_host = trust_new_host
        self.known_hosts = known_hosts or llmops_known_hosts()
        self.config = config
        self.interactive = _is_interactive() if interactive is None else interactive
        self._prompt = passphrase_prompt or getpass.getpass
        self._client: Any | None = None
        self._jumps: list[SshHost] = []
        self.recorded_new_key: str | None = None  # fingerprint recorded by trust_new_host

    # ---- lifecycle

    @property
    def label(self) -> str:
        return self.endpoint.label

    def __enter__(self) -> SshHost:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        for j in reversed(self._jumps):
            j.close()
        self._jumps = []

    @property
    def transport(self) -> Any:
        if self._client is None:
            self.connect()
        assert self._client is not None
        t = self._client.get_transport()
        if t is None or not t.is_active():
            raise SshConnectError(
                f"the SSH session to {self.label} is closed", "run the command again"
            )
        return t

    def connect(self) -> SshHost:
        """Open the session (idempotent). Raises a RemoteError subclass on any failure."""
        if self._client is not None:
            return self
        import paramiko

        _quiet_paramiko_logs()

        ep = self.endpoint
        sock = self._proxy_sock()
        client = paramiko.SSHClient()
        apply_trust(client, self)
        plan = auth_plan(ep)
        try:
            client.connect(
                ep.hostname,
                port=ep.port,
                username=ep.user,
                timeout=ep.connect_timeout_s,
                banner_timeout=ep.connect_timeout_s,
                auth_timeout=ep.connect_timeout_s,
                channel_timeout=ep.connect_timeout_s,
                sock=sock,
                auth_strategy=cast(Any, _Strategy(self, plan)),
            )
        except (UnknownHostKey, HostKeyMismatch, UsageError):
            client.close()
            self.close()
            raise
        except Exception as e:
            client.close()
            self.close()
            raise self._translate(e, plan) from e
        t = client.get_transport()
        if t is not None:
            t.set_keepalive(30)
        self._client = client
        return self

    def _read_known_hosts_files(self) -> list[str]:
        return user_known_hosts_files(self.endpoint)

    def _proxy_sock(self) -> Any | None:
        ep = self.endpoint
        if ep.proxy_jump:
            hops = [h.strip() for h in ep.proxy_jump.split(",") if h.strip()]
            prev: SshHost | None = None
            for i, hop_text in enumerate(hops):
                hop_ep = resolve(parse_target(hop_text), self.config)
                if i > 0:
                    hop_ep = replace(hop_ep, proxy_jump=None, proxy_command=None)
                hop = SshHost(
                    hop_ep,
                    trust_new_host=self.trust_new_host,
                    known_hosts=self.known_hosts,
                    config=self.config,
                    interactive=self.interactive,
                    passphrase_prompt=self._prompt,
                    via=prev,
                )
                hop.connect()
                self._jumps.append(hop)
                prev = hop
            assert prev is not None
            return prev.open_tcp(ep.hostname, ep.port)
        if self.via is not None:
            return self.via.open_tcp(ep.hostname, ep.port)
        if ep.proxy_command:
            import paramiko

            cmd = ep.proxy_command.replace("%h", ep.hostname).replace("%p", str(ep.port))
            cmd = cmd.replace("%r", ep.user).replace("%%", "%")
            return paramiko.ProxyCommand(cmd)
        return None

    def open_tcp(self, host: str, port: int) -> Any:
        """A ``direct-tcpip`` channel from this host to ``host:port`` (for jumps and forwards)."""
        try:
            return self.transport.open_channel(
                "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=10
            )
        except Exception as e:
            raise SshConnectError(
                f"{self.label} could not open a TCP connection to {host}:{port}: {e}",
                f"check that something listens on {host}:{port} as seen from {self.label}, and "
                "that its sshd allows TCP forwarding (AllowTcpForwarding)",
            ) from e

    def _translate(self, e: BaseException, plan: _AuthPlan) -> Exception:
        return connect_error(self.endpoint, e, plan, self._mismatch)

    def _mismatch(self, e: Any) -> HostKeyMismatch:
        own = str(self.known_hosts)
        held = files_holding([*self._read_known_hosts_files(), own], self.endpoint.known_hosts_name)
        return mismatch_error(self.endpoint, e, held or [own])

    # ---- exec

    def _open_session(self, cmd: str) -> Any:
        try:
            chan = self.transport.open_session(timeout=self.endpoint.connect_timeout_s)
            chan.exec_command(cmd)
        except (SshConnectError, SshAuthError):
            raise
        except Exception as e:
            raise SshConnectError(
                f"{self.label} refused to run a command: {e}",
                "the account may be limited to an interactive shell (RunPod's basic proxy "
                "ssh.runpod.io is): use the host's public IP and port instead",
            ) from e
        return chan

    def run(
        self,
        argv: Sequence[str] | str,
        *,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout_s: float | None = 120.0,
    ) -> ExecResult:
        """Run a command, wait for it, and return its exit code and output."""
        cmd = command_line(argv, env)
        chan = self._open_session(cmd)
        out: list[bytes] = []
        err: list[bytes] = []
        try:
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            code = pump(chan, out.append, err.append, timeout_s, self._what(cmd))
        finally:
            chan.close()
        return ExecResult(
            code,
            b"".join(out).decode("utf-8", "replace"),
            b"".join(err).decode("utf-8", "replace"),
        )

    def stream(
        self,
        argv: Sequence[str] | str,
        *,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> int:
        """Run a command, copying its stdout/stderr to ours as it comes; return its exit code.

        Ctrl-C closes the channel (the remote command gets SIGPIPE/EOF) and re-raises.
        """
        cmd = command_line(argv, env)
        chan = self._open_session(cmd)
        dec_out = codecs.getincrementaldecoder("utf-8")("replace")
        dec_err = codecs.getincrementaldecoder("utf-8")("replace")

        def to(target: str, dec: Any) -> Callable[[bytes], None]:
            def write(data: bytes) -> None:
                f = (stdout or sys.stdout) if target == "out" else (stderr or sys.stderr)
                f.write(dec.decode(data))
                f.flush()

            return write

        try:
            chan.shutdown_write()
            return pump(chan, to("out", dec_out), to("err", dec_err), timeout_s, self._what(cmd))
        finally:
            chan.close()

    def _what(self, cmd: str) -> str:
        return f"`{short(cmd)}` on {self.label}"

    def put_bytes(self, data: bytes, remote_path: str, *, mode: int = 0o644) -> None:
        """Write ``data`` to ``remote_path`` through ``cat`` on a plain exec channel (no SFTP:
        RunPod's proxy and some images have none)."""
        q = shlex.quote(remote_path)
        r = self.run(
            f"umask 077 && cat > {q}.part && chmod {mode:o} {q}.part && mv -f {q}.part {q}",
            stdin=data,
            timeout_s=600,
        )
        if not r.ok:
            raise RemoteCommandError(
                f"cannot write {remote_path} on {self.label}: {r.stderr.strip() or r.exit_code}",
                "check free space and permissions there (`df -h`, `ls -ld DIR`)",
            )

    def put_file(self, local_path: Path, remote_path: str, *, mode: int = 0o644) -> None:
        self.put_bytes(Path(local_path).read_bytes(), remote_path, mode=mode)

    # ---- forwards

    def forward(
        self, remote_port: int, *, local_port: int = 0, remote_host: str = "127.0.0.1"
    ) -> LocalForward:
        """Listen on 127.0.0.1:``local_port`` (0: any free port) and carry each connection to
        ``remote_host:remote_port`` as seen from the remote host (``ssh -L``).

        Raises:
            UsageError: ``local_port`` is taken here.
            RemoteError: the session could not be opened.
        """
        return LocalForward(self, remote_host, remote_port, local_port)

    def reverse_forward(
        self,
        local_port: int,
        *,
        remote_port: int = 0,
        bind: str = "",
        local_host: str = "127.0.0.1",
    ) -> RemoteForward:
        """Ask the server to listen on ``bind:remote_port`` (0: a port it chooses, see
        ``.remote_port``) and carry each connection to ``local_host:local_port`` here
        (``ssh -R``). One per session.

        Raises:
            ForwardRefused: the server refused (AllowTcpForwarding, the port is taken).
            RemoteError: the session could not be opened.
        """
        return RemoteForward(
            self, local_port, remote_port=remote_port, bind=bind, local_host=local_host
        )


def _quiet_paramiko_logs() -> None:
    """paramiko's transport thread logs failures (with tracebacks) that Python's last-resort
    handler would print to stderr; we report them ourselves, once, as RemoteErrors."""
    import logging

    log = logging.getLogger("paramiko")
    if not log.handlers:
        log.addHandler(logging.NullHandler())


def open_host(
    text: str,
    *,
    trust_new_host: bool = False,
    config_path: Path | None = None,
    interactive: bool | None = None,
    identity_files: Sequence[str] = (),
    known_hosts_files: Sequence[str] = (),
) -> SshHost:
    """Parse ``text``, apply ~/.ssh/config, and return a (not yet connected) SshHost.

    Args:
        text: what the user typed (see :func:`parse_target`).
        trust_new_host: record an unknown host key in llmops' known_hosts instead of refusing.
        config_path: the OpenSSH config to apply (default ~/.ssh/config).
        interactive: may we prompt for a key passphrase (default: stdin is a terminal).
        identity_files: keys to offer first, as ``ssh -i`` (``~`` is expanded).
        known_hosts_files: known_hosts files to read instead of the user's (as
            ``-o UserKnownHostsFile``); llmops' own known_hosts is read as well.
    """
    config = load_ssh_config(config_path)
    target = parse_target(text)
    if identity_files:
        target = replace(target, identity_files=(*identity_files, *target.identity_files))
    ep = resolve(target, config)
    if known_hosts_files:
        ep = replace(ep, known_hosts_files=tuple(known_hosts_files))
    return SshHost(ep, trust_new_host=trust_new_host, config=config, interactive=interactive)
