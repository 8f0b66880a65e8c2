"""The one interface every kind of tunnel implements, and what the manager lends it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

from llmops.errors import TunnelStartError
from llmops.run.process import Supervised
from llmops.run.tunnels.records import TunnelRecord, TunnelSpec


class Supervisor(Protocol):
    """What a provider may ask of the manager (:class:`~llmops.run.tunnels.manager.TunnelManager`)."""

    env: dict[str, str]

    def path(self, name: str, suffix: str = ".json") -> Path:
        """A file of tunnel ``name`` under ``$LLMOPS_HOME/tunnels``."""
        ...

    def which(self, tool: str) -> str:
        """The program ``tool`` on the manager's PATH; raises TunnelToolMissing."""
        ...

    def spawn(self, spec: TunnelSpec, argv: list[str], env: Mapping[str, str]) -> Supervised:
        """Start the tunnel's process, its output in ``NAME.log``."""
        ...

    def record(
        self, spec: TunnelSpec, child: Supervised, url: str | None, **extra: Any
    ) -> TunnelRecord:
        """Save the started tunnel's record and return it."""
        ...

    def died(self, spec: TunnelSpec, child: Supervised) -> TunnelStartError:
        """Forget a tunnel whose process exited while starting; the error to raise."""
        ...

    def give_up(self, spec: TunnelSpec, child: Supervised, what: str) -> TunnelStartError:
        """Stop and forget a tunnel that did not report ``what`` in time; the error to raise."""
        ...

    def forget_keep_log(self, name: str) -> None:
        """Remove the tunnel's record and config, keeping its log to read."""
        ...


class Provider(ABC):
    """One kind of tunnel (``--via NAME``)."""

    #: the ``--via`` value
    name: ClassVar[str]
    #: the program it needs on PATH (None: llmops' own child program)
    binary: ClassVar[str | None] = None
    #: how to install that program
    install_hint: ClassVar[str | None] = None

    @abstractmethod
    def start(self, spec: TunnelSpec, run: Supervisor) -> TunnelRecord:
        """Start the tunnel and wait until it reports its public URL.

        Raises:
            TunnelToolMissing: the program is not installed.
            TunnelStartError: it exited, failed or reported no URL in ``spec.start_timeout_s``.
        """

    def died_hint(self, log_tail: str) -> str | None:
        """A hint better than the generic one for a process that exited with ``log_tail``."""
        return None
