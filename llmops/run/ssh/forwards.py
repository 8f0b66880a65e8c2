"""Port forwards over an :class:`~llmops.run.ssh.host.SshHost`'s session.

- :class:`LocalForward` (``ssh -L``): listen on 127.0.0.1 here (only: paramiko's
  ``demos/forward.py`` binds every interface; we do not) and carry each connection to a
  ``host:port`` as the remote host sees it. Made by :meth:`SshHost.forward`.
- :class:`RemoteForward` (``ssh -R``): the SSH server listens and carries each connection back to
  a port here. Made by :meth:`SshHost.reverse_forward`.
- :func:`relay`: copy bytes both ways between a socket and a channel.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from typing import TYPE_CHECKING, Any

from llmops.errors import SshConnectError, UsageError

if TYPE_CHECKING:
    from llmops.run.ssh.host import SshHost


class ForwardRefused(SshConnectError):
    """The SSH server refused a reverse forward (``AllowTcpForwarding``, a port in use)."""


class LocalForward:
    """A local port forward: 127.0.0.1:local_port → remote_host:remote_port via the SSH host.

    Runs its accept loop in a daemon thread; ``close()`` stops it and every open connection.
    """

    def __init__(self, host: SshHost, remote_host: str, remote_port: int, local_port: int) -> None:
        self.host = host
        self.remote_host = remote_host
        self.remote_port = remote_port
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._server.bind(("127.0.0.1", local_port))
        except OSError as e:
            self._server.close()
            raise UsageError(
                f"cannot listen on 127.0.0.1:{local_port}: {e.strerror or e}",
                "choose another port with --local-port (0 picks a free one)",
            ) from e
        self._server.listen(64)
        self.local_port: int = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._open: set[Any] = set()
        self.errors: list[str] = []
        self.connections = 0
        host.transport  # fail now, not on the first connection  # noqa: B018
        t = threading.Thread(target=self._accept_loop, name="llmops-forward", daemon=True)
        t.start()
        self._threads.append(t)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def __enter__(self) -> LocalForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self._server], [], [], 0.2)
            except (OSError, ValueError):
                return
            if not r:
                continue
            try:
                conn, peer = self._server.accept()
            except OSError:
                return
            try:
                chan = self.host.transport.open_channel(
                    "direct-tcpip", (self.remote_host, self.remote_port), peer, timeout=10
                )
            except Exception as e:
                self.errors.append(
                    f"{self.host.label} could not reach {self.remote_host}:{self.remote_port}: {e}"
                )
                conn.close()
                continue
            self.connections += 1
            t = threading.Thread(target=self._pipe, args=(conn, chan), daemon=True)
            t.start()

    def _pipe(self, conn: socket.socket, chan: Any) -> None:
        with self._lock:
            self._open.update((conn, chan))
        try:
            relay(conn, chan, self._stop)
        finally:
            with self._lock:
                self._open.discard(conn)
                self._open.discard(chan)

    def alive(self) -> bool:
        t = self.host._client.get_transport() if self.host._client is not None else None
        return not self._stop.is_set() and t is not None and t.is_active()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._server.close()
        with self._lock:
            for s in list(self._open):
                with contextlib.suppress(Exception):
                    s.close()
        for t in self._threads:
            t.join(timeout=2)


class RemoteForward:
    """A reverse forward (``ssh -R [bind:]remote_port:local_host:local_port``): the SSH server
    listens on ``bind:remote_port`` and carries each connection it accepts to
    ``local_host:local_port`` here.

    ``remote_port`` is the port the server bound: the one asked for, or the one it chose for 0.
    ``bind`` ``""`` means every interface of the server (sshd then needs ``GatewayPorts`` for
    outside clients; without it sshd binds loopback). paramiko queues forwarded connections per
    session, so use one reverse forward per :class:`SshHost`. Accepts in a daemon thread;
    ``close()`` cancels the forward and stops every open connection. ``errors`` lists
    connections that could not reach the local port; ``connections`` counts those carried.

    Raises (when made):
        ForwardRefused: the server refused to listen there.
        RemoteError: the session could not be opened (see :meth:`SshHost.connect`).
    """

    def __init__(
        self,
        host: SshHost,
        local_port: int,
        *,
        remote_port: int = 0,
        bind: str = "",
        local_host: str = "127.0.0.1",
    ) -> None:
        import paramiko

        self.host = host
        self.local_host = local_host
        self.local_port = local_port
        self.bind = bind
        self._transport = host.transport  # connects (or raises) now
        try:
            self.remote_port: int = int(self._transport.request_port_forward(bind, remote_port))
        except paramiko.SSHException as e:
            raise ForwardRefused(
                f"{host.label} refused to forward its port {remote_port} "
                f"({bind or 'all interfaces'}): {e}",
                "set `AllowTcpForwarding yes` (and `GatewayPorts yes` for outside clients) in "
                "its sshd_config, or choose another remote port",
            ) from e
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: set[Any] = set()
        self.errors: list[str] = []
        self.connections = 0
        self._thread = threading.Thread(
            target=self._accept_loop, name="llmops-reverse-forward", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> RemoteForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            chan = self._transport.accept(0.5)
            if chan is None:
                if not self._transport.is_active():
                    return
                continue
            threading.Thread(target=self._serve, args=(chan,), daemon=True).start()

    def _serve(self, chan: Any) -> None:
        try:
            sock = socket.create_connection((self.local_host, self.local_port), timeout=10)
        except OSError as e:
            self.errors.append(f"cannot reach {self.local_host}:{self.local_port}: {e}")
            chan.close()
            return
        sock.settimeout(None)
        self.connections += 1
        with self._lock:
            self._open.update((sock, chan))
        try:
            relay(sock, chan, self._stop)
        finally:
            with self._lock:
                self._open.discard(sock)
                self._open.discard(chan)

    def alive(self) -> bool:
        """The forward is open and its SSH session still up."""
        return not self._stop.is_set() and self._transport.is_active()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            self._transport.cancel_port_forward(self.bind, self.remote_port)
        with self._lock:
            for s in list(self._open):
                with contextlib.suppress(Exception):
                    s.close()
        self._thread.join(timeout=2)


def relay(sock: socket.socket, chan: Any, stop: threading.Event | None = None) -> None:
    """Copy bytes both ways between a socket and an SSH channel until either side closes
    (or ``stop`` is set); both are closed on return."""
    try:
        while stop is None or not stop.is_set():
            r, _, _ = select.select([sock, chan], [], [], 0.5)
            if sock in r:
                data = sock.recv(65536)
                if not data:
                    break
                chan.sendall(data)
            if chan in r:
                data = chan.recv(65536)
                if not data:
                    break
                sock.sendall(data)
    except (OSError, EOFError, ValueError):
        pass
    finally:
        with contextlib.suppress(Exception):
            chan.close()
        with contextlib.suppress(Exception):
            sock.close()
