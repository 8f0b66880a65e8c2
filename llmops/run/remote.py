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
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import os
import re
import shlex
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from llmops import __version__
from llmops.errors import (
    RemoteCommandError,
    RemoteLlmopsMissing,
    RemotePythonMissing,
    UsageError,
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


# --------------------------------------------------------------------------- wheels


def source_checkout() -> Path | None:
    """The repository this llmops runs from (editable install), or None for a wheel install."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "llmops" / "__init__.py").is_file():
        return root
    return None


def build_llmops_wheel(out_dir: Path) -> Path:
    """Build this checkout's wheel into ``out_dir`` (``pip wheel --no-deps``).

    Raises:
        UsageError: when llmops is not running from a source checkout, or the build fails.
    """
    root = source_checkout()
    if root is None:
        raise UsageError(
            "llmops is installed from a wheel here, so there is no source to build one from",
            "pass the wheel you installed with `--wheel llmops-X-py3-none-any.whl`",
        )
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out_dir), str(root)]
    proc = subprocess.run(
        [*cmd[:4], "--no-build-isolation", *cmd[4:]], capture_output=True, text=True
    )
    if proc.returncode != 0:  # no hatchling here: let pip fetch the build backend
        proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(out_dir.glob("llmops-*.whl"))
    if proc.returncode != 0 or not wheels:
        detail = (proc.stderr.strip().splitlines() or ["no wheel produced"])[-1]
        raise UsageError(
            f"building the llmops wheel from {root} failed: {detail}",
            "build one yourself (`pip wheel --no-deps .`) and pass it with --wheel",
        )
    return wheels[-1]


def _req_name(req: str) -> tuple[str, str]:
    """(distribution name, marker text) of a ``Requires-Dist`` string."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    marker = req.split(";", 1)[1] if ";" in req else ""
    return (name.group(1) if name else req.strip()), marker


def wheel_requirements(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(name).decode("utf-8", "replace")
    return [
        ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Requires-Dist:")
    ]


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_closure(requirements: Iterable[str]) -> list[metadata.Distribution]:
    """The installed distributions that ``requirements`` need, transitively.

    Extras are not followed. A direct requirement without a marker that is not installed here
    raises; any other one is skipped (its environment marker excluded it, e.g. a backport for an
    older Python).

    Raises:
        UsageError: naming the direct requirement missing here.
    """
    seen: dict[str, metadata.Distribution] = {}
    todo: list[tuple[str, bool]] = []
    for req in requirements:
        name, marker = _req_name(req)
        if "extra" not in marker:
            todo.append((name, not marker))  # a marker may exclude it here: then skip it
    while todo:
        name, direct = todo.pop()
        if _key(name) in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if direct:
                raise UsageError(
                    f"llmops needs {name}, which is not installed here, so it cannot be copied "
                    "to the host",
                    f"install it here (`pip install {name}`), or use --from-index / --wheelhouse",
                ) from None
            continue
        seen[_key(dist.metadata["Name"])] = dist
        for req in dist.requires or []:
            dep, marker = _req_name(req)
            if "extra" not in marker:
                todo.append((dep, False))
    return list(seen.values())


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def repack_distribution(dist: metadata.Distribution, out_dir: Path) -> Path:
    """Re-create a wheel of an installed distribution from the files its RECORD lists.

    Console scripts are regenerated by pip from ``entry_points.txt``; files installed outside
    site-packages (``../../bin/...``) are left out. Only valid for a Python and platform like
    this one: the wheel keeps the tags from the distribution's own ``WHEEL`` file.
    """
    files = dist.files or []
    info_dir = next(
        (f.parts[0] for f in files if f.parts and f.parts[0].endswith(".dist-info")), None
    )
    if info_dir is None:
        raise UsageError(f"{dist.metadata['Name']} has no .dist-info RECORD to repack", None)
    wheel_meta = dist.read_text("WHEEL") or ""
    tags = [ln.split(":", 1)[1].strip() for ln in wheel_meta.splitlines() if ln.startswith("Tag:")]
    if not tags:
        tags = ["py3-none-any"]
    parts = [t.split("-") for t in tags]
    tag = "-".join(".".join(sorted({p[i] for p in parts})) for i in range(3))
    stem = info_dir[: -len(".dist-info")]
    whl = out_dir / f"{stem}-{tag}.whl"
    skip = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    record: list[str] = []
    with zipfile.ZipFile(whl, "w", zipfile.ZIP_DEFLATED) as z:
        for f in files:
            arc = f.as_posix()
            if arc.startswith("../") or "__pycache__" in f.parts or arc.endswith(".pyc"):
                continue
            if f.parts[0] == info_dir and f.name in skip:
                continue
            src = Path(str(f.locate()))
            if not src.is_file():
                continue
            data = src.read_bytes()
            z.writestr(arc, data)
            record.append(f"{arc},{_record_hash(data)},{len(data)}")
        record.append(f"{info_dir}/RECORD,,")
        z.writestr(f"{info_dir}/RECORD", "\n".join(record) + "\n")
    return whl


def local_platform() -> tuple[str, str]:
    """(``X.Y`` Python version, machine) of this interpreter, for the compatibility check."""
    import platform

    return f"{sys.version_info.major}.{sys.version_info.minor}", platform.machine()


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
    exe, pyver, arch = _probe_python(host, python)
    rep.python, rep.python_version, rep.arch = exe, pyver, arch
    rep.steps.append(f"found Python {pyver} ({exe}) on {arch}")
    log(rep.steps[-1])
    home = host.run(["sh", "-c", 'printf %s "$HOME"']).stdout.strip() or "~"
    base = f"{home}/{REMOTE_HOME_DIR}"
    rep.venv = f"{base}/venv"

    with tempfile.TemporaryDirectory(prefix="llmops-bootstrap-") as tmp:
        tmpd = Path(tmp)
        if wheel is None:
            log("building the llmops wheel from this checkout")
            wheel = build_llmops_wheel(tmpd)
        if not wheel.is_file():
            raise UsageError(f"wheel {wheel} does not exist", "check the --wheel path")
        deps: list[Path] = []
        if wheelhouse is not None:
            deps = sorted(wheelhouse.glob("*.whl"))
            if not deps:
                raise UsageError(f"no wheels in {wheelhouse}", "fill it with `pip download`")
            rep.deps_from = "wheelhouse"
        elif from_index:
            rep.deps_from = "index"
        elif (pyver, arch) == local_platform():
            log("packing the dependencies installed here (same Python and platform)")
            for dist in dependency_closure(wheel_requirements(wheel)):
                deps.append(repack_distribution(dist, tmpd))
            rep.deps_from = "local-environment"
        else:
            lv, la = local_platform()
            raise UsageError(
                f"{host.label} runs Python {pyver} on {arch}, this machine {lv} on {la}, so the "
                "dependencies installed here cannot be copied",
                f"let the host fetch them (`--from-index`), or pass wheels built for it: "
                f"`pip download --only-binary=:all: --python-version {pyver} "
                f"--platform manylinux2014_{arch} -d wheels {wheel}` then `--wheelhouse wheels`",
            )
        wheels_dir = f"{base}/wheels"
        host.run(
            ["sh", "-c", f"rm -rf {shlex.quote(wheels_dir)} && mkdir -p {shlex.quote(wheels_dir)}"]
        )
        sent = 0
        for w in [wheel, *deps]:
            data = w.read_bytes()
            host.put_bytes(data, f"{wheels_dir}/{w.name}")
            sent += len(data)
        rep.wheels_sent = 1 + len(deps)
        rep.sent_mib = round(sent / 2**20, 1)
        rep.steps.append(
            f"copied {rep.wheels_sent} wheel(s), {rep.sent_mib} MiB, to {wheels_dir} "
            f"(dependencies from {rep.deps_from})"
        )
        log(rep.steps[-1])

        venv_q = shlex.quote(rep.venv)
        r = host.run(
            ["sh", "-c", f"[ -x {venv_q}/bin/python ] || {shlex.quote(exe)} -m venv {venv_q}"],
            timeout_s=300,
        )
        if not r.ok:
            raise RemotePythonMissing(
                f"creating the venv {rep.venv} on {host.label} failed: "
                f"{(r.stderr.strip().splitlines() or ['?'])[-1]}",
                "install the venv module there (Debian/Ubuntu: `apt-get install -y python3-venv`)",
            )
        rep.steps.append(f"venv {rep.venv}")
        log(rep.steps[-1])
        pip = [
            f"{rep.venv}/bin/python",
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
        ]
        remote_wheel = f"{wheels_dir}/{wheel.name}"
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
        found = find_llmops(host, f"{rep.venv}/bin/llmops")
        assert found is not None  # find_llmops raises for an explicit path that does not work
        rep.llmops_path, rep.llmops_version = found.path, found.version
        rep.steps.append(f"installed llmops {found.version} at {found.path}")
        log(rep.steps[-1])

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
    rep.steps.append(f"runtime: {rep.runtime} ({rep.runtime_reason})")
    log(rep.steps[-1])
    return rep


__all__ = [
    "ENV_FACTS_SOURCE",
    "ENV_REMOTE_LLMOPS",
    "BootstrapReport",
    "RemoteLlmops",
    "bootstrap",
    "build_llmops_wheel",
    "capture_llmops",
    "choose_runtime",
    "collect_remote_facts",
    "dependency_closure",
    "wheel_requirements",
    "find_llmops",
    "parse_find_output",
    "deployment_port",
    "port_from_deployment_json",
    "remote_env",
    "repack_distribution",
    "run_llmops",
]
