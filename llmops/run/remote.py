"""llmops on a remote host: find it, run it, probe without it, and install it (bootstrap).

Everything goes through an :class:`llmops.run.ssh.SshHost`. The remote llmops is looked for,
in order, at an explicit path (``LLMOPS_REMOTE_LLMOPS`` or the inventory's ``llmops:``), at
``~/.llmops/venv/bin/llmops`` (where ``llmops remote bootstrap`` installs it), then on the
login PATH. Without one, facts come from :mod:`llmops.hw.remote_probe` (a shell script plus pure
parsers).

Bootstrap copies wheels over the SSH session, because rented hosts may not reach PyPI: the
llmops wheel (built from this checkout, or given with ``--wheel``) and its dependencies, either
re-packed from this machine's own environment when the remote runs the same Python on the same
platform, or from a ``--wheelhouse`` directory, or (``--from-index``) left to the remote's pip.
Building and re-packing those wheels is :mod:`llmops.run.wheels`.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shlex
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from llmops import __version__
from llmops.errors import (
    RemoteCommandError,
    RemoteLlmopsMissing,
    RemotePythonMissing,
    UsageError,
)
from llmops.run.wheels import (
    build_llmops_wheel,
    dependency_closure,
    local_platform,
    repack_distribution,
    wheel_requirements,
)

if TYPE_CHECKING:
    from llmops.hw.facts import HostFacts
    from llmops.run.ssh import SshHost

REMOTE_HOME_DIR = ".llmops"  # under the remote user's $HOME
REMOTE_VENV = f"$HOME/{REMOTE_HOME_DIR}/venv"
ENV_REMOTE_LLMOPS = "LLMOPS_REMOTE_LLMOPS"
ENV_FACTS_SOURCE = "LLMOPS_FACTS_SOURCE"

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# --------------------------------------------------------------------------- find and run


@dataclass(frozen=True)
class RemoteLlmops:
    """An llmops executable on a remote host."""

    path: str
    version: str


def _find_script(explicit: str | None) -> str:
    cands = [shlex.quote(explicit)] if explicit else []
    cands += [f'"{REMOTE_VENV}/bin/llmops"', '"$(command -v llmops 2>/dev/null)"']
    return (
        f"for c in {' '.join(cands)}; do "
        'if [ -n "$c" ] && [ -x "$c" ]; then '
        'v=$("$c" --version 2>/dev/null) && { printf "%s\\n%s\\n" "$c" "$v"; exit 0; }; '
        "fi; done; exit 3"
    )


def parse_find_output(text: str) -> RemoteLlmops | None:
    """The discovery script's output (path line, ``llmops X.Y`` line) → RemoteLlmops."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        return None
    m = re.match(r"llmops\s+(\S+)", lines[1])
    return RemoteLlmops(path=lines[0], version=m.group(1)) if m else None


def find_llmops(host: SshHost, explicit: str | None = None) -> RemoteLlmops | None:
    """Where llmops runs on ``host`` (None: not installed, or it does not start)."""
    explicit = explicit or os.environ.get(ENV_REMOTE_LLMOPS) or None
    r = host.run(["sh", "-c", _find_script(explicit)], timeout_s=60)
    found = parse_find_output(r.stdout) if r.exit_code == 0 else None
    if explicit and found is None:
        raise RemoteLlmopsMissing(
            f"{explicit} on {host.label} is not a working llmops",
            f"check the path (set by {ENV_REMOTE_LLMOPS} or the inventory's `llmops:`), or "
            f"install llmops there with `llmops remote bootstrap {host.endpoint.alias}`",
        )
    return found


def remote_env(host: SshHost, extra: dict[str, str] | None = None) -> dict[str, str]:
    """What the remote llmops is told: where its facts come from, and our terminal width."""
    env = {ENV_FACTS_SOURCE: f"ssh:{host.endpoint.address}"}
    cols = os.environ.get("COLUMNS")
    if cols and cols.isdigit():
        env["COLUMNS"] = cols
    env.update(extra or {})
    return env


def run_llmops(host: SshHost, remote: RemoteLlmops, argv: Sequence[str]) -> int:
    """Run ``<remote llmops> ARGV`` there, streaming its stdout/stderr here; its exit code."""
    return host.stream([remote.path, *argv], env=remote_env(host))


def capture_llmops(
    host: SshHost, remote: RemoteLlmops, argv: Sequence[str], timeout_s: float = 600
) -> tuple[int, str, str]:
    r = host.run([remote.path, *argv], env=remote_env(host), timeout_s=timeout_s)
    return r.exit_code, r.stdout, r.stderr


def collect_remote_facts(host: SshHost, sections: Iterable[str] | None = None) -> HostFacts:
    """HostFacts of a host without llmops: the probe script over SSH, then pure parsers."""
    from llmops.hw.remote_probe import parse_probe_output, probe_argv

    wanted = list(sections) if sections is not None else None
    r = host.run(probe_argv(wanted), timeout_s=120)
    try:
        return parse_probe_output(
            r.stdout,
            sections=wanted,
            source=f"ssh:{host.endpoint.address}",
            llmops_version=__version__,
            collected_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
    except ValueError as e:
        detail = (r.stderr.strip().splitlines() or [str(e)])[-1]
        raise RemoteCommandError(
            f"probing {host.label} with shell commands failed (exit {r.exit_code}): {detail}",
            "llmops needs a POSIX `sh` on the host; or install llmops there with "
            f"`llmops remote bootstrap {host.endpoint.alias}`",
        ) from e


def port_from_deployment_json(text: str) -> int:
    """The host port of a deployment from its state file (``deployment.json``: the plan's
    first port, as ``llmops up`` writes it).

    Raises:
        ValueError: when the document has no such port.
    """
    import json

    doc = json.loads(text)
    port = doc["plan"]["ports"][0]["host_port"]
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"bad port {port!r}")
    return port


def deployment_port(host: SshHost, name: str) -> int:
    """The port of deployment ``name`` on ``host``, read from its state dir there."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise UsageError(f"invalid deployment name {name!r}", "use letters, digits and dashes")
    script = (
        'home="${LLMOPS_HOME:-${XDG_STATE_HOME:-$HOME/.local/state}/llmops}"; '
        f'cat "$home/deployments/{name}/deployment.json"'
    )
    r = host.run(["sh", "-c", script], timeout_s=60)
    try:
        return port_from_deployment_json(r.stdout)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise RemoteCommandError(
            f"no deployment {name!r} on {host.label}"
            + (f" ({r.stderr.strip().splitlines()[-1]})" if r.stderr.strip() else ""),
            f"list them with `llmops --host {shlex.quote(host.endpoint.alias)} ps`, or forward a "
            "port number instead of a name",
        ) from e


# --------------------------------------------------------------------------- bootstrap


@dataclass
class BootstrapReport:
    """What ``llmops remote bootstrap`` did, for the summary and ``--json``."""

    host: str
    python: str | None = None
    python_version: str | None = None
    arch: str | None = None
    venv: str | None = None
    llmops_path: str | None = None
    llmops_version: str | None = None
    deps_from: str | None = None  # local-environment | wheelhouse | index
    wheels_sent: int = 0
    sent_mib: float = 0.0
    platform: str | None = None
    docker_reachable: bool | None = None
    docker_error: str | None = None
    runtime: str | None = None  # docker | native
    runtime_reason: str | None = None
    engines: dict[str, str | None] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)


ENGINE_BINARIES = ("vllm", "text-generation-launcher", "llama-server")


def choose_runtime(facts: HostFacts) -> tuple[str, str]:
    """Docker when an engine answers; native in vast.ai/RunPod/other containers (no Docker
    inside them, ops.md §0.1) and where Docker is missing. Returns (runtime, reason)."""
    d = facts.docker
    kind = facts.platform.kind if facts.platform else "unknown"
    if d is not None and d.reachable:
        return "docker", f"Docker {d.server_version} answers at {d.host}"
    if kind in ("vast.ai", "runpod"):
        return "native", f"{kind} instances are containers: Docker cannot run inside them"
    if kind == "container":
        return "native", "this host is a container without a Docker engine"
    why = d.error if d is not None and d.error else "no Docker engine"
    return "native", f"{why}; install Docker (docker.io) to run engine images instead"


def _probe_python(host: SshHost, python: str) -> tuple[str, str, str]:
    script = (
        f"p=$(command -v {shlex.quote(python)} 2>/dev/null) || exit 127; "
        '"$p" -c "import sys, platform, venv, ensurepip; '
        "print(sys.executable); print('%d.%d' % sys.version_info[:2]); print(platform.machine())\""
    )
    r = host.run(["sh", "-c", script], timeout_s=60)
    lines = r.stdout.split()
    if r.exit_code == 127:
        raise RemotePythonMissing(
            f"{host.label} has no {python}",
            "install Python 3 with venv there (Debian/Ubuntu: `apt-get install -y python3-venv`), "
            "or name another interpreter with --python",
        )
    if r.exit_code != 0 or len(lines) < 3:
        detail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise RemotePythonMissing(
            f"{python} on {host.label} cannot create virtual environments ({detail})",
            "install the venv module there (Debian/Ubuntu: `apt-get install -y python3-venv`)",
        )
    return lines[0], lines[1], lines[2]


def _remote_base(host: SshHost, python: str, rep: BootstrapReport, log: Log) -> tuple[str, str]:
    """Find the remote Python and llmops' directory there; (interpreter path, base dir)."""
    exe, pyver, arch = _probe_python(host, python)
    rep.python, rep.python_version, rep.arch = exe, pyver, arch
    _step(rep, log, f"found Python {pyver} ({exe}) on {arch}")
    home = host.run(["sh", "-c", 'printf %s "$HOME"']).stdout.strip() or "~"
    base = f"{home}/{REMOTE_HOME_DIR}"
    rep.venv = f"{base}/venv"
    return exe, base


def _step(rep: BootstrapReport, log: Log, text: str) -> None:
    rep.steps.append(text)
    log(text)


def _dependency_wheels(
    host: SshHost,
    rep: BootstrapReport,
    wheel: Path,
    *,
    wheelhouse: Path | None,
    from_index: bool,
    tmpd: Path,
    log: Log,
) -> list[Path]:
    """The dependency wheels to send (none: the remote's pip fetches them); sets ``deps_from``.

    Raises:
        UsageError: an empty wheelhouse, or a remote Python/platform unlike this one.
    """
    if wheelhouse is not None:
        deps = sorted(wheelhouse.glob("*.whl"))
        if not deps:
            raise UsageError(f"no wheels in {wheelhouse}", "fill it with `pip download`")
        rep.deps_from = "wheelhouse"
        return deps
    if from_index:
        rep.deps_from = "index"
        return []
    pyver, arch = rep.python_version, rep.arch
    if (pyver, arch) == local_platform():
        log("packing the dependencies installed here (same Python and platform)")
        deps = [repack_distribution(d, tmpd) for d in dependency_closure(wheel_requirements(wheel))]
        rep.deps_from = "local-environment"
        return deps
    lv, la = local_platform()
    raise UsageError(
        f"{host.label} runs Python {pyver} on {arch}, this machine {lv} on {la}, so the "
        "dependencies installed here cannot be copied",
        f"let the host fetch them (`--from-index`), or pass wheels built for it: "
        f"`pip download --only-binary=:all: --python-version {pyver} "
        f"--platform manylinux2014_{arch} -d wheels {wheel}` then `--wheelhouse wheels`",
    )


def _send_wheels(
    host: SshHost, rep: BootstrapReport, wheels: list[Path], wheels_dir: str, log: Log
) -> None:
    """Copy ``wheels`` (llmops' first) into a fresh ``wheels_dir`` on the host."""
    q = shlex.quote(wheels_dir)
    host.run(["sh", "-c", f"rm -rf {q} && mkdir -p {q}"])
    sent = 0
    for w in wheels:
        data = w.read_bytes()
        host.put_bytes(data, f"{wheels_dir}/{w.name}")
        sent += len(data)
    rep.wheels_sent = len(wheels)
    rep.sent_mib = round(sent / 2**20, 1)
    _step(
        rep,
        log,
        f"copied {rep.wheels_sent} wheel(s), {rep.sent_mib} MiB, to {wheels_dir} "
        f"(dependencies from {rep.deps_from})",
    )


def _make_venv(host: SshHost, rep: BootstrapReport, exe: str, log: Log) -> str:
    """Create the venv unless it is there; its path."""
    venv = rep.venv or ""
    venv_q = shlex.quote(venv)
    r = host.run(
        ["sh", "-c", f"[ -x {venv_q}/bin/python ] || {shlex.quote(exe)} -m venv {venv_q}"],
        timeout_s=300,
    )
    if not r.ok:
        raise RemotePythonMissing(
            f"creating the venv {venv} on {host.label} failed: "
            f"{(r.stderr.strip().splitlines() or ['?'])[-1]}",
            "install the venv module there (Debian/Ubuntu: `apt-get install -y python3-venv`)",
        )
    _step(rep, log, f"venv {venv}")
    return venv


def _pip_install(
    host: SshHost, rep: BootstrapReport, venv: str, wheels_dir: str, remote_wheel: str, log: Log
) -> RemoteLlmops:
    """pip-install the llmops wheel (and its dependencies) into the venv; the llmops it made."""
    pip = [f"{venv}/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if rep.deps_from == "index":
        first = [*pip, remote_wheel]
    else:
        first = [*pip, "--no-index", "--find-links", wheels_dir, remote_wheel]
    for argv in (first, [*pip, "--no-deps", "--force-reinstall", "--no-index", remote_wheel]):
        r = host.run(argv, timeout_s=900)
        if not r.ok:
            detail = (r.stderr.strip().splitlines() or [r.stdout.strip() or "?"])[-1]
            raise RemoteCommandError(
                f"pip install on {host.label} failed: {detail}",
                "pass dependency wheels for that host with --wheelhouse DIR, or let it use "
                "its package index with --from-index",
            )
    found = find_llmops(host, f"{venv}/bin/llmops")
    assert found is not None  # find_llmops raises for an explicit path that does not work
    rep.llmops_path, rep.llmops_version = found.path, found.version
    _step(rep, log, f"installed llmops {found.version} at {found.path}")
    return found


def _pick_runtime(host: SshHost, rep: BootstrapReport, found: RemoteLlmops, log: Log) -> None:
    """Ask the installed llmops for its docker/platform facts; choose the runtime from them."""
    code, out, err = capture_llmops(
        host,
        found,
        ["doctor", "--json", "--offline", "--check", "docker", "--check", "platform"],
        timeout_s=120,
    )
    from llmops.hw.facts import host_facts_from_json

    try:
        facts = host_facts_from_json(out)
    except ValueError as e:
        raise RemoteCommandError(
            f"the installed llmops on {host.label} did not answer `doctor --json` "
            f"(exit {code}): {(err.strip().splitlines() or [str(e)])[-1]}",
            f"run `ssh {host.endpoint.alias} {found.path} doctor` to see why",
        ) from e
    rep.platform = facts.platform.kind if facts.platform else None
    rep.docker_reachable = facts.docker.reachable if facts.docker else None
    rep.docker_error = facts.docker.error if facts.docker else None
    rep.runtime, rep.runtime_reason = choose_runtime(facts)
    if rep.runtime == "native":
        script = "; ".join(
            f'printf "%s=%s\\n" {b} "$(command -v {b} 2>/dev/null)"' for b in ENGINE_BINARIES
        )
        r = host.run(["sh", "-c", script])
        for line in r.stdout.splitlines():
            k, _, v = line.partition("=")
            rep.engines[k] = v or None
    _step(rep, log, f"runtime: {rep.runtime} ({rep.runtime_reason})")


def bootstrap(
    host: SshHost,
    *,
    wheel: Path | None = None,
    wheelhouse: Path | None = None,
    from_index: bool = False,
    python: str = "python3",
    log: Log = _quiet,
) -> BootstrapReport:
    """Install llmops into ``~/.llmops/venv`` on ``host`` and pick its runtime.

    Args:
        host: a connected (or connectable) SshHost.
        wheel: the llmops wheel to install (default: build one from this checkout).
        wheelhouse: a directory of dependency wheels for the remote's Python and platform.
        from_index: let the remote's pip fetch dependencies from its index instead.
        python: the remote interpreter that creates the venv.
        log: progress lines (stderr in the CLI).
    """
    rep = BootstrapReport(host=host.label)
    host.connect()
    exe, base = _remote_base(host, python, rep, log)
    with tempfile.TemporaryDirectory(prefix="llmops-bootstrap-") as tmp:
        tmpd = Path(tmp)
        if wheel is None:
            log("building the llmops wheel from this checkout")
            wheel = build_llmops_wheel(tmpd)
        if not wheel.is_file():
            raise UsageError(f"wheel {wheel} does not exist", "check the --wheel path")
        deps = _dependency_wheels(
            host, rep, wheel, wheelhouse=wheelhouse, from_index=from_index, tmpd=tmpd, log=log
        )
        wheels_dir = f"{base}/wheels"
        _send_wheels(host, rep, [wheel, *deps], wheels_dir, log)
        venv = _make_venv(host, rep, exe, log)
        found = _pip_install(host, rep, venv, wheels_dir, f"{wheels_dir}/{wheel.name}", log)
    _pick_runtime(host, rep, found, log)
    return rep


__all__ = [
    "ENV_FACTS_SOURCE",
    "ENV_REMOTE_LLMOPS",
    "BootstrapReport",
    "RemoteLlmops",
    "bootstrap",
    "capture_llmops",
    "choose_runtime",
    "collect_remote_facts",
    "find_llmops",
    "parse_find_output",
    "deployment_port",
    "port_from_deployment_json",
    "remote_env",
    "run_llmops",
]
