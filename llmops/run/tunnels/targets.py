"""What ``llmops tunnel NAME|PORT`` exposes: a deployment (its port, key and engine from its
state) or a bare local port (its key from ``LLMOPS_API_KEY``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmops.errors import TunnelError, UsageError


@dataclass(frozen=True)
class Target:
    """What ``llmops tunnel NAME|PORT`` exposes: a local port and the key that guards it."""

    name: str  # the tunnel's name: the deployment's, or port-PORT
    port: int
    deployment: str | None
    api_key: str | None
    engine: str | None = None  # from the deployment's record: which routes the audit asks


def resolve_target(target: str, deployments: Any, env: Mapping[str, str]) -> Target:
    """A deployment name (port and key from its state) or a bare port (key from LLMOPS_API_KEY)."""
    if target.isdigit():
        port = int(target)
        if not 0 < port < 65536:
            raise UsageError(f"port {port} is out of range", "give a port between 1 and 65535")
        return Target(f"port-{port}", port, None, env.get("LLMOPS_API_KEY") or None)
    deployments.require(target)
    dep_port: int | None = None
    engine: str | None = None
    for row in deployments.status(probe=False):
        if row.name == target:
            dep_port = row.port
            engine = row.engine
    if dep_port is None:
        raise TunnelError(
            f"deployment {target} has no published port", f"see `llmops ps`; `llmops logs {target}`"
        )
    return Target(target, dep_port, target, deployments.store.api_key(target), engine)


def running_deployments(deployments: Any) -> list[Any]:
    """The deployments whose status is running (bare ``llmops tunnel`` picks from these)."""
    return [row for row in deployments.status(probe=False) if row.status == "running"]
