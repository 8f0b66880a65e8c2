"""Docker runtime: a LaunchPlan becomes one labelled container, through the docker SDK.

Everything llmops starts carries ``llmops.*`` labels; ``list``/``stop`` only ever touch
containers with the ``llmops.deployment`` label AND this install's ``llmops.install`` id
(see :func:`llmops.run.state.install_id`): labels are inherited from images, and other
installs (users, ``LLMOPS_HOME``s, test runs) may share the engine, so the deployment label
alone proves nothing.

A container whose ``llmops.deployment`` label is not a deployment name (``a/b``, a newline) is
skipped with a warning: it cannot be one llmops started, and it must not make ``ps``, ``kill``
or ``tunnel`` fail for everyone on the engine.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from llmops.errors import DockerError, LlmopsError
from llmops.plan.launch import LABEL_PREFIX, LaunchPlan
from llmops.plan.names import is_name, printable
from llmops.plan.render import container_name
from llmops.run.state import INSTALL_LABEL, install_id

DEPLOYMENT_LABEL = LABEL_PREFIX + "deployment"


@dataclass(frozen=True)
class RuntimeState:
    """What a runtime says about one deployment right now."""

    name: str
    exists: bool
    running: bool
    status: str  # running | exited | created | restarting | missing | dead
    exit_code: int | None = None
    started_at: str | None = None
    restarts: int = 0
    labels: tuple[tuple[str, str], ...] = ()
    ident: str | None = None  # container id or pid


def container_memory(stats: Mapping[str, Any]) -> int | None:
    """Memory in use from a stats document, as the docker CLI computes it (cli/command/
    container/stats_helpers.go: usage minus ``inactive_file`` on cgroup v2,
    ``total_inactive_file`` on v1)."""
    mem = stats.get("memory_stats") or {}
    usage = mem.get("usage")
    if not isinstance(usage, int):
        return None
    detail = mem.get("stats") or {}
    for key in ("inactive_file", "total_inactive_file"):
        v = detail.get(key)
        if isinstance(v, int) and v < usage:
            return usage - v
    return usage


def top_pids(top: Mapping[str, Any]) -> frozenset[int]:
    """The host pids in a ``docker top`` answer (its PID column)."""
    titles = list(top.get("Titles") or [])
    if "PID" not in titles:
        return frozenset()
    i = titles.index("PID")
    out = set()
    for row in top.get("Processes") or []:
        if i < len(row) and str(row[i]).isdigit():
            out.add(int(row[i]))
    return frozenset(out)


class LaunchError(LlmopsError):
    """The engine could not be started."""


def _client(env: Mapping[str, str] | None = None) -> Any:
    import docker

    try:
        client = docker.from_env(environment=dict(os.environ if env is None else env), timeout=60)
        client.ping()
    except docker.errors.DockerException as e:
        raise DockerError(
            f"Docker engine unreachable: {str(e).splitlines()[0]}",
            "start it (`sudo systemctl start docker`), or use `--runtime native`; "
            "`llmops doctor --check docker` explains",
        ) from e
    return client


def _warn_stderr(message: str) -> None:
    sys.stderr.write(f"warning: {printable(message)}\n")


class DockerRuntime:
    name = "docker"

    def __init__(
        self,
        client: Any | None = None,
        install: str | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self._install = install
        self._warn = warn or _warn_stderr

    @property
    def install(self) -> str:
        """The install id this runtime labels with and filters on (default: LLMOPS_HOME's)."""
        if self._install is None:
            self._install = install_id()
        return self._install

    def owns(self, labels: Mapping[str, str] | None) -> bool:
        """True when a container with these labels was started by this install."""
        labels = labels or {}
        return DEPLOYMENT_LABEL in labels and labels.get(INSTALL_LABEL) == self.install

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _client()
        return self._client

    # ----------------------------------------------------------------------------- create

    def container_kwargs(
        self, plan: LaunchPlan, secret_values: Mapping[str, str]
    ) -> dict[str, Any]:
        """The docker SDK ``create`` arguments for a plan (secrets resolved from the store)."""
        from docker.types import DeviceRequest, LogConfig, Mount

        env = dict(plan.env)
        for s in plan.secret_env:
            if s.env in secret_values:
                env[s.env] = secret_values[s.env]
        mounts = []
        for m in plan.mounts:
            source = os.path.expanduser(m.source) if m.kind == "bind" else m.source
            if m.kind == "bind":
                os.makedirs(source, exist_ok=True)
            mounts.append(Mount(m.target, source, type=m.kind, read_only=m.read_only))
        kw: dict[str, Any] = {
            "image": plan.image,
            "command": list(plan.argv),
            "name": container_name(plan),
            "labels": {**plan.label_dict(), INSTALL_LABEL: self.install},
            "environment": env,
            "ports": {f"{p.container_port}/tcp": (p.host_ip, p.host_port) for p in plan.ports},
            "mounts": mounts,
            "restart_policy": {"Name": "unless-stopped"},
            "log_config": LogConfig(
                type=LogConfig.types.JSON, config={"max-size": "50m", "max-file": "3"}
            ),
            "detach": True,
        }
        if plan.entrypoint:
            kw["entrypoint"] = list(plan.entrypoint)
        if plan.gpus:
            kw["device_requests"] = [
                DeviceRequest(device_ids=[str(g) for g in plan.gpus], capabilities=[["gpu"]])
            ]
        if plan.ipc_host:
            kw["ipc_mode"] = "host"
        elif plan.shm_size_mib:
            kw["shm_size"] = f"{plan.shm_size_mib}m"
        return kw

    def create(
        self,
        plan: LaunchPlan,
        secret_values: Mapping[str, str],
        on_progress: Callable[[str], None] | None = None,
    ) -> Any:
        """Create (not start) the container; the image must be present locally or pullable."""
        import docker

        kw = self.container_kwargs(plan, secret_values)
        image = kw.pop("image")
        self.ensure_image(image, on_progress)
        try:
            return self.client.containers.create(image, **kw)
        except docker.errors.APIError as e:
            raise self._api_error(plan, e) from e

    def ensure_image(self, image: str, on_progress: Callable[[str], None] | None = None) -> None:
        """Pull ``image`` unless it is present, reporting ``pulling image X: 3.2/14.5 GB``."""
        import docker

        try:
            self.client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        report = on_progress or (lambda _t: None)
        report(f"pulling image {image}")
        layers: dict[str, tuple[int, int]] = {}
        last = 0.0
        try:
            for event in self.client.api.pull(repo, tag=tag or None, stream=True, decode=True):
                if "error" in event:
                    raise docker.errors.APIError(str(event["error"]))
                detail = event.get("progressDetail") or {}
                if event.get("id") and detail.get("total"):
                    layers[event["id"]] = (int(detail.get("current", 0)), int(detail["total"]))
                now = time.monotonic()
                if layers and now - last > 1.0:
                    last = now
                    done = sum(c for c, _ in layers.values()) / 1e9
                    total = sum(t for _, t in layers.values()) / 1e9
                    report(f"pulling image {image}: {done:.1f}/{total:.1f} GB")
        except docker.errors.DockerException as e:
            why = str(getattr(e, "explanation", None) or e).splitlines()[0][:200]
            raise LaunchError(
                f"image {image} is not on this host and could not be pulled: {why}",
                f"`docker pull {image}` (check the registry is reachable), or build/load it locally",
            ) from e

    def start(
        self,
        plan: LaunchPlan,
        secret_values: Mapping[str, str],
        on_progress: Callable[[str], None] | None = None,
    ) -> RuntimeState:
        import docker

        container = self.create(plan, secret_values, on_progress)
        try:
            container.start()
        except docker.errors.APIError as e:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
            raise self._api_error(plan, e) from e
        return self.state(plan.name)

    def _api_error(self, plan: LaunchPlan, e: Any) -> LaunchError:
        from llmops.plan.diagnose import diagnose

        msg = str(getattr(e, "explanation", None) or e)
        d = diagnose(msg)
        if "Conflict" in msg and "already in use by container" in msg:
            if self._find(plan.name) is None:
                return LaunchError(
                    f"a container named {container_name(plan)} already exists and was not "
                    "started by this llmops install",
                    "choose another `--name` (llmops never touches containers it did not start)",
                )
            return LaunchError(
                f"a container named {container_name(plan)} already exists",
                f"`llmops down {plan.name}` first, or choose another `--name`",
            )
        if "port is already allocated" in msg or "address already in use" in msg:
            return LaunchError(
                f"port {plan.host_port} is already in use",
                "choose another with `--port`, or let llmops pick one (omit `--port`)",
            )
        if d is not None:
            return LaunchError(f"Docker refused deployment {plan.name}: {msg}", d.fix)
        return LaunchError(
            f"Docker refused deployment {plan.name}: {msg}",
            "see `llmops doctor --check docker`",
        )

    # ------------------------------------------------------------------------------ query

    def _find(self, name: str) -> Any | None:
        import docker

        try:
            found = self.client.containers.list(
                all=True,
                filters={
                    "label": [f"{DEPLOYMENT_LABEL}={name}", f"{INSTALL_LABEL}={self.install}"]
                },
            )
        except docker.errors.DockerException as e:
            raise DockerError(f"cannot list containers: {e}", "check `docker ps`") from e
        return found[0] if found else None

    @staticmethod
    def _state_of(c: Any) -> RuntimeState:
        st = c.attrs.get("State", {})
        labels = c.labels or {}
        return RuntimeState(
            name=labels.get(DEPLOYMENT_LABEL, c.name),
            exists=True,
            running=st.get("Status") == "running",
            status=st.get("Status", c.status),
            exit_code=st.get("ExitCode"),
            started_at=st.get("StartedAt"),
            restarts=int(c.attrs.get("RestartCount", 0) or 0),
            labels=tuple(sorted((k, v) for k, v in labels.items() if k.startswith(LABEL_PREFIX))),
            ident=c.short_id,
        )

    def state(self, name: str) -> RuntimeState:
        c = self._find(name)
        if c is None:
            return RuntimeState(name=name, exists=False, running=False, status="missing")
        c.reload()
        return self._state_of(c)

    def usage(self, name: str) -> tuple[int | None, frozenset[int]]:
        """(the container's memory in bytes as ``docker stats`` counts it: cgroup usage less
        inactive file cache, its processes' host pids), or (None, {}) when it is not running."""
        import docker

        c = self._find(name)
        if c is None:
            return None, frozenset()
        try:
            stats = c.stats(stream=False, one_shot=True)
            top = c.top()
        except docker.errors.DockerException:
            return None, frozenset()
        return container_memory(stats), top_pids(top)

    def list(self) -> list[RuntimeState]:
        import docker

        try:
            found = self.client.containers.list(
                all=True,
                filters={"label": [DEPLOYMENT_LABEL, f"{INSTALL_LABEL}={self.install}"]},
            )
        except docker.errors.DockerException as e:
            raise DockerError(f"cannot list containers: {e}", "check `docker ps`") from e
        out = []
        for c in found:
            label = (c.labels or {}).get(DEPLOYMENT_LABEL, "")
            if not is_name(label):
                self._warn(
                    f"skipped container {c.short_id}: its {DEPLOYMENT_LABEL} label "
                    f"{printable(repr(label))} is not a deployment name llmops would give"
                )
                continue
            out.append(self._state_of(c))
        return out

    def logs(self, name: str, tail: int | None = 200) -> str:
        c = self._find(name)
        if c is None:
            return ""
        out = c.logs(stdout=True, stderr=True, tail=tail if tail is not None else "all")
        return out.decode(errors="replace") if isinstance(out, bytes) else str(out)

    def follow(self, name: str, tail: int | None = 50) -> Iterator[str]:
        c = self._find(name)
        if c is None:
            return
        for chunk in c.logs(
            stdout=True,
            stderr=True,
            stream=True,
            follow=True,
            tail=tail if tail is not None else "all",
        ):
            yield chunk.decode(errors="replace") if isinstance(chunk, bytes) else str(chunk)

    # ------------------------------------------------------------------------------- stop

    def stop(self, name: str, grace_s: int = 20) -> bool:
        """Stop and remove the deployment's container; False when there was none."""
        import docker

        c = self._find(name)
        if c is None:
            return False
        with contextlib.suppress(docker.errors.DockerException):
            c.stop(timeout=grace_s)
        try:
            c.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as e:
            raise DockerError(
                f"cannot remove container {c.name}: {e}", f"`docker rm -f {c.name}`"
            ) from e
        return True
