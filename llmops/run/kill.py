"""``llmops kill``: seed 004's kill sequence, made safe.

The seed's version is ``pkill -f ngrok``, ``killall -9 text-generation-server`` and
``docker kill $(docker ps -q)``: it matches any command line that *mentions* a name, SIGKILLs
without a chance to clean up, and stops every container on the host. Here, in order:

1. llmops tunnels (their records under ``$LLMOPS_HOME/tunnels``),
2. llmops deployments (state files and this install's ``llmops.*`` container labels, via
   :class:`~llmops.run.deployments.Deployments`),
3. only with ``--all``: other inference processes and containers, matched precisely:
   a process whose *program* (argv[0], or the script/module a Python interpreter runs) is a
   known engine or tunnel; a running container whose image is a known engine image, or whose
   process (``Path`` + ``Args``) matches the same rule. A name appearing anywhere else in a
   command line, or in a container's name, matches nothing.

Everything gets SIGTERM, a grace period, then SIGKILL (containers: ``docker stop -t``).
llmops itself, its ancestors (the shell, a test runner) and what llmops already owns are never
foreign targets. Running it twice is harmless: the second run finds nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Program names (argv[0] basename, or a Python console script): TGI's launcher, server and
#: router, vLLM, llama.cpp's server, gradio, and the tunnel programs.
KNOWN_PROGRAMS = frozenset(
    {
        "text-generation-launcher",
        "text-generation-server",
        "text-generation-router",
        "vllm",
        "llama-server",
        "gradio",
        "ngrok",
        "cloudflared",
    }
)
#: ``python -m <module>``: the module's top-level package (vLLM, TGI's server, gradio).
KNOWN_MODULES = frozenset({"vllm", "text_generation_server", "gradio"})
#: Engine images (repository without tag/registry defaults), engines.md §6.1.
KNOWN_IMAGES = frozenset(
    {
        "ghcr.io/huggingface/text-generation-inference",
        "vllm/vllm-openai",
        "ghcr.io/ggml-org/llama.cpp",
        "ghcr.io/ggerganov/llama.cpp",
        "ngrok/ngrok",
        "cloudflare/cloudflared",
    }
)
_PYTHON = re.compile(r"^(python|pypy)[0-9.]*$")
_OPTS_WITH_ARG = {"-W", "-X", "-Q", "--check-hash-based-pycs"}


def _base(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def match_argv(argv: Sequence[str]) -> str | None:
    """Why ``argv`` is a known inference/tunnel program, or None. Pure; only argv[0] (or the
    script/module a Python interpreter runs) counts, never a later argument."""
    if not argv:
        return None
    prog = _base(argv[0])
    if prog in KNOWN_PROGRAMS:
        return f"program {prog}"
    if not _PYTHON.match(prog):
        return None
    args = list(argv[1:])
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-m" and i + 1 < len(args):
            root = args[i + 1].split(".")[0]
            return f"python -m {args[i + 1]}" if root in KNOWN_MODULES else None
        if a.startswith("-m") and len(a) > 2:
            root = a[2:].split(".")[0]
            return f"python -m {a[2:]}" if root in KNOWN_MODULES else None
        if a == "-c" or a.startswith("-c") or a == "-":
            return None
        if a in _OPTS_WITH_ARG:
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        script = _base(a)
        return f"python script {script}" if script in KNOWN_PROGRAMS else None
    return None


def image_repo(ref: str) -> str:
    """``docker.io/library/x:tag`` / ``x@sha256:..`` → the repository, normalised."""
    ref = ref.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref = ref[: len(ref) - len(last)] + last.split(":", 1)[0]
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
    if ref.startswith("library/"):
        ref = ref[len("library/") :]
    return ref


def match_container(
    image_refs: Iterable[str],
    path: str | None,
    args: Sequence[str],
    labels: dict[str, str],
    own_install: str | None = None,
) -> str | None:
    """Why a running container is a known engine/tunnel: its image, or its process argv.

    A container of this install (``llmops.deployment`` plus ``llmops.install`` equal to
    ``own_install``) is handled as a deployment, never here. Any other llmops label (inherited
    from an image, or another install's) makes nothing "ours": such a container is foreign and
    matched like any other."""
    if (
        own_install
        and "llmops.deployment" in labels
        and labels.get("llmops.install") == own_install
    ):
        return None
    for ref in image_refs:
        repo = image_repo(ref)
        if repo in KNOWN_IMAGES:
            return f"image {repo}"
    if path:
        why = match_argv([path, *args])
        if why:
            return f"container process: {why}"
    return None


@dataclass(frozen=True)
class KillTarget:
    kind: str  # tunnel | deployment | process | container
    name: str
    ident: str  # pid, container id, or the llmops name
    matched_by: str
    foreign: bool  # not started by llmops: listed and confirmed before stopping
    create_time: float | None = None


@dataclass(frozen=True)
class KillResult:
    target: KillTarget
    outcome: str  # stopped | killed | gone | failed
    detail: str = ""


@dataclass
class KillSequence:
    """Discovery and execution, with injectable parts so tests can scope them."""

    tunnels: Any  # TunnelManager
    deployments: Any  # Deployments
    docker_client: Any | None = None
    process_filter: Callable[[Any], bool] = field(default=lambda _p: True)
    container_filter: Callable[[Any], bool] = field(default=lambda _c: True)
    docker_error: str | None = None
    #: damaged deployment records seen by discovery (``ps`` shows them as broken); left alone
    broken: list[Any] = field(default_factory=list)

    # ---- discovery

    def own_targets(self) -> list[KillTarget]:
        out = [
            KillTarget("tunnel", t.name, str(t.pid), f"llmops tunnel ({t.via})", False, None)
            for t in self.tunnels.status()
            if t.running
        ]
        self.broken = []
        for d in self.deployments.status(probe=False):
            if d.status == "broken":
                self.broken.append(d)
            if d.status in ("running", "restarting", "created"):
                out.append(
                    KillTarget(
                        "deployment",
                        d.name,
                        d.ident or d.name,
                        f"llmops deployment ({d.runtime})",
                        False,
                    )
                )
        return out

    def _protected_pids(self) -> set[int]:
        import psutil

        owned = {t.pid for t in self.tunnels.records()}
        for d in self.deployments.status(probe=False):
            if d.runtime == "native" and d.ident and d.ident.isdigit():
                owned.add(int(d.ident))
        for pid in list(owned):  # what llmops started, with its workers
            with contextlib.suppress(psutil.Error):
                owned |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
        # llmops itself and its ancestors (the shell, a test runner); not their other children
        owned.add(os.getpid())
        with contextlib.suppress(psutil.Error):
            owned |= {p.pid for p in psutil.Process().parents()}
        return owned

    def foreign_processes(self) -> list[KillTarget]:
        import psutil

        protected = self._protected_pids()
        out = []
        for p in psutil.process_iter(["pid", "cmdline", "create_time"]):
            try:
                if p.pid in protected or not self.process_filter(p):
                    continue
                argv = p.info.get("cmdline") or []
                why = match_argv(argv)
                if why is None:
                    continue
                if p.status() == psutil.STATUS_ZOMBIE:
                    continue
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            out.append(
                KillTarget(
                    "process",
                    why.split()[-1],  # the program, never the whole command line (secrets)
                    str(p.pid),
                    why,
                    True,
                    p.info.get("create_time"),
                )
            )
        return out

    def foreign_containers(self) -> list[KillTarget]:
        if self.docker_client is None:
            return []
        import docker

        try:
            containers = self.docker_client.containers.list()  # running only
        except docker.errors.DockerException as e:
            self.docker_error = f"cannot list containers: {e}"
            return []
        from llmops.run.state import install_id

        own = install_id(self.deployments.store.home)
        out = []
        for c in containers:
            if not self.container_filter(c):
                continue
            attrs = c.attrs or {}
            # The reference it was created from; an image's other tags say nothing about it.
            refs = [attrs.get("Config", {}).get("Image") or ""]
            if not refs[0] or refs[0].startswith("sha256:"):
                with contextlib.suppress(Exception):
                    refs = list(c.image.tags)
            why = match_container(
                [r for r in refs if r],
                attrs.get("Path"),
                attrs.get("Args") or [],
                dict(c.labels or {}),
                own,
            )
            if why:
                out.append(KillTarget("container", c.name, c.short_id, why, True))
        return out

    def discover(self, include_foreign: bool) -> list[KillTarget]:
        """Everything ``kill`` would stop, in the order it stops them."""
        targets = self.own_targets()
        if include_foreign:
            targets += self.foreign_processes() + self.foreign_containers()
        return targets

    # ---- execution

    def execute(self, targets: Sequence[KillTarget], grace_s: float = 10.0) -> list[KillResult]:
        results: list[KillResult] = []
        for t in targets:
            if t.kind == "tunnel":
                was = self.tunnels.stop(t.name, grace_s)
                results.append(KillResult(t, "stopped" if was else "gone"))
        for t in targets:
            if t.kind == "deployment":
                try:
                    was = self.deployments.stop(t.name, int(grace_s))
                    results.append(KillResult(t, "stopped" if was else "gone"))
                except Exception as e:  # report and go on: one failure must not stop the rest
                    results.append(KillResult(t, "failed", str(e)))
        results += self._stop_processes([t for t in targets if t.kind == "process"], grace_s)
        for t in targets:
            if t.kind == "container":
                results.append(self._stop_container(t, grace_s))
        return results

    @staticmethod
    def _stop_processes(targets: Sequence[KillTarget], grace_s: float) -> list[KillResult]:
        import psutil

        procs: dict[int, tuple[KillTarget, Any]] = {}
        results: list[KillResult] = []
        for t in targets:
            try:
                p = psutil.Process(int(t.ident))
                if t.create_time is not None and abs(p.create_time() - t.create_time) > 1.0:
                    results.append(KillResult(t, "gone", "pid reused by another process"))
                    continue
                p.terminate()  # psutil re-checks the identity (pid + start time) first
                procs[p.pid] = (t, p)
            except psutil.NoSuchProcess:
                results.append(KillResult(t, "gone"))
            except psutil.AccessDenied as e:
                results.append(KillResult(t, "failed", f"permission denied ({e}); try sudo"))
        _gone, alive = psutil.wait_procs([p for _t, p in procs.values()], timeout=grace_s)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        killed = {p.pid for p in alive}
        for pid, (t, _p) in procs.items():
            if pid in killed:
                results.append(
                    KillResult(t, "killed", f"did not exit within {grace_s:g}s of SIGTERM")
                )
            else:
                results.append(KillResult(t, "stopped"))
        return results

    def _stop_container(self, t: KillTarget, grace_s: float) -> KillResult:
        import docker

        try:
            c = self.docker_client.containers.get(t.ident) if self.docker_client else None
            if c is None:
                return KillResult(t, "gone")
            c.reload()
            if c.status != "running":
                return KillResult(t, "gone")
            c.stop(timeout=int(grace_s))
            return KillResult(t, "stopped")
        except docker.errors.NotFound:
            return KillResult(t, "gone")
        except docker.errors.DockerException as e:
            return KillResult(t, "failed", str(e))


__all__ = [
    "KNOWN_IMAGES",
    "KNOWN_MODULES",
    "KNOWN_PROGRAMS",
    "KillResult",
    "KillSequence",
    "KillTarget",
    "image_repo",
    "match_argv",
    "match_container",
]
