"""A fleet of hosts: the ``hosts.yaml`` inventory, and running one llmops command on many hosts.

Inventory (default ``$LLMOPS_HOME/hosts.yaml``)::

    hosts:
      gpu-a:
        ssh: root@203.0.113.7:22          # anything --host accepts, pasted ssh commands too
        labels: [h100, prod]
      vast-1:
        ssh: ssh -p 41022 root@ssh4.vast.ai
        labels: [rented]
        llmops: /opt/llmops/bin/llmops    # optional: where llmops is on that host

Each host runs in its own thread with its own SSH session; a host that fails (refused, timeout,
auth, no llmops) becomes an error row and never stops the others.

Every value is checked when the file is read (``parse_inventory``), since it reaches ssh
command lines and the rendered multi-node script: host names and labels are names
(``[A-Za-z0-9][A-Za-z0-9_.-]*``); ``ssh`` is ``[user@]host[:port]``, an alias or a pasted ssh
command, made only of the characters those use (no ``$``, quotes, ``;``, newlines; spaces
only between a pasted command's words); ``llmops`` is a plain path.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import InventoryError, LlmopsError, RemoteLlmopsMissing, UsageError
from llmops.plan.names import printable

MAX_PARALLEL = 16


@dataclass(frozen=True)
class InventoryHost:
    name: str
    ssh: str
    labels: tuple[str, ...] = ()
    llmops: str | None = None


@dataclass(frozen=True)
class Inventory:
    path: str
    hosts: tuple[InventoryHost, ...]

    def select(self, label: str | None = None) -> tuple[InventoryHost, ...]:
        """Hosts carrying ``label`` (or named ``label``); all hosts for None.

        Raises:
            InventoryError: when nothing matches.
        """
        if label is None:
            return self.hosts
        chosen = tuple(h for h in self.hosts if label in h.labels or h.name == label)
        if not chosen:
            labels = sorted({lb for h in self.hosts for lb in h.labels})
            raise InventoryError(
                f"no host in {self.path} has the label {label!r}",
                f"labels there: {', '.join(labels) or '(none)'}; hosts: "
                f"{', '.join(h.name for h in self.hosts)}",
            )
        return chosen


def default_inventory_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("LLMOPS_HOME") or os.path.join(
        env.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "llmops"
    )
    return Path(base) / "hosts.yaml"


_EXAMPLE = "hosts:\n  gpu-a:\n    ssh: root@203.0.113.7:22\n    labels: [h100]"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
# what [user@]host[:port], ssh://..., [v6]:port and ssh options (-o K=V, -i ~/key) are made of
_SSH_WORD = re.compile(r"[A-Za-z0-9@._:/=,~+%\[\]-]+\Z")
_PATH = re.compile(r"[A-Za-z0-9_./~+-]+\Z")
_HOSTNAME = re.compile(r"[A-Za-z0-9._:-]+\Z")


def _bad(where: str, name: str, field: str, value: Any, why: str) -> InventoryError:
    return InventoryError(
        f"{where}: host {printable(repr(name))}: `{field}:` {printable(repr(value))} {why}",
        f"fix that line of {where}, e.g.:\n{_EXAMPLE}",
    )


def _check_ssh(where: str, name: str, ssh: str) -> None:
    from llmops.run.ssh import parse_target

    words = ssh.split()
    if any(c.isspace() and c != " " for c in ssh) or not all(_SSH_WORD.match(w) for w in words):
        raise _bad(
            where,
            name,
            "ssh",
            ssh,
            "is not an ssh target: only [user@]host[:port] or a pasted `ssh ...` command, "
            "without quotes, `$`, `;`, backticks or control characters",
        )
    try:
        target = parse_target(ssh)
    except UsageError as e:
        raise _bad(where, name, "ssh", ssh, f"is not an ssh target ({e.message})") from e
    if not _HOSTNAME.match(target.host) or target.host.startswith("-"):
        raise _bad(where, name, "ssh", ssh, f"names no usable host ({target.host!r})")


def _host(name: str, spec: Any, where: str) -> InventoryHost:
    if not _NAME.match(name):
        raise InventoryError(
            f"{where}: host name {printable(repr(name))} is not a name",
            "use letters, digits, '-', '_' and '.', starting with a letter or digit",
        )
    if isinstance(spec, str):
        spec = {"ssh": spec}
    if not isinstance(spec, dict):
        raise InventoryError(f"{where}: host {name!r} must be a mapping with `ssh:`", _EXAMPLE)
    ssh = spec.get("ssh") or spec.get("host")
    if not isinstance(ssh, str) or not ssh.strip():
        raise InventoryError(f"{where}: host {name!r} has no `ssh:` target", _EXAMPLE)
    ssh = ssh.strip()
    _check_ssh(where, name, ssh)
    labels = spec.get("labels") or []
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, list) or not all(isinstance(x, str | int) for x in labels):
        raise InventoryError(f"{where}: host {name!r}: `labels` must be a list of names", None)
    for label in labels:
        if not _NAME.match(str(label)):
            raise _bad(where, name, "labels", label, "is not a name (letters, digits, -_.)")
    llmops = spec.get("llmops")
    if llmops and not (isinstance(llmops, str) and _PATH.match(llmops)):
        raise _bad(where, name, "llmops", llmops, "is not a plain path (letters, digits, /._~+-)")
    return InventoryHost(
        name=str(name),
        ssh=ssh,
        labels=tuple(str(x) for x in labels),
        llmops=str(llmops) if llmops else None,
    )


def parse_inventory(text: str, where: str = "hosts.yaml") -> Inventory:
    """YAML text → Inventory. ``hosts`` is a mapping name → spec, or a list of specs with
    ``name``. A spec is ``{ssh, labels, llmops}`` or just the ssh target string.

    Raises:
        InventoryError: naming the file and the entry.
    """
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InventoryError(f"{where} is not valid YAML: {e}", _EXAMPLE) from e
    raw = doc.get("hosts") if isinstance(doc, dict) else None
    hosts: list[InventoryHost] = []
    if isinstance(raw, dict):
        hosts = [_host(str(k), v, where) for k, v in raw.items()]
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or not item.get("name"):
                raise InventoryError(f"{where}: hosts[{i}] needs a `name:`", _EXAMPLE)
            hosts.append(_host(str(item["name"]), item, where))
    if not hosts:
        raise InventoryError(f"{where} lists no hosts", f"write it like:\n{_EXAMPLE}")
    names = [h.name for h in hosts]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InventoryError(f"{where}: host names repeat: {', '.join(dup)}", None)
    return Inventory(path=where, hosts=tuple(hosts))


def load_inventory(path: Path | None = None) -> Inventory:
    path = path or default_inventory_path()
    try:
        text = path.read_text()
    except OSError as e:
        raise InventoryError(
            f"cannot read the fleet inventory {path}: {e.strerror or e}",
            f"create it (or pass --inventory FILE), e.g.:\n{_EXAMPLE}",
        ) from e
    return parse_inventory(text, str(path))


@dataclass
class HostOutcome:
    """One host's answer: ``result`` is the remote command's JSON document, or the error."""

    name: str
    target: str
    labels: tuple[str, ...] = ()
    ok: bool = False  # reached and answered with JSON
    exit_code: int | None = None
    via: str | None = None  # llmops | shell-probe
    result: Any = None
    error: str | None = None
    hint: str | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def error_from_stderr(stderr: str) -> tuple[str | None, str | None]:
    """(message, hint) from llmops' own ``error: ...`` / ``hint: ...`` stderr lines."""
    msg = hint = None
    for line in stderr.splitlines():
        if line.startswith("error: "):
            msg = line[len("error: ") :].strip()
        elif line.startswith("hint: "):
            hint = line[len("hint: ") :].strip()
    if msg is None:
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        msg = lines[-1] if lines else None
    return msg, hint


def run_on_hosts(
    hosts: Sequence[InventoryHost],
    job: Callable[[InventoryHost], HostOutcome],
    max_parallel: int = MAX_PARALLEL,
) -> list[HostOutcome]:
    """Run ``job`` for every host in parallel; results in inventory order. An exception in one
    host's job becomes that host's error row."""

    def safe(h: InventoryHost) -> HostOutcome:
        t0 = time.monotonic()
        try:
            out = job(h)
        except LlmopsError as e:
            out = HostOutcome(h.name, h.ssh, h.labels, error=e.message, hint=e.hint)
        except Exception as e:  # one host's surprise must not stop the fleet
            out = HostOutcome(h.name, h.ssh, h.labels, error=f"{type(e).__name__}: {e}")
        out.seconds = round(time.monotonic() - t0, 2)
        return out

    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(hosts)))) as pool:
        return list(pool.map(safe, hosts))


def llmops_json_job(
    argv: Sequence[str],
    *,
    connect: Callable[[InventoryHost], Any],
    fallback: Callable[[Any], tuple[int, Any]] | None = None,
) -> Callable[[InventoryHost], HostOutcome]:
    """A job that runs ``llmops ARGV`` (which must print one JSON document) on each host.

    Args:
        argv: the llmops arguments, ``--json`` included.
        connect: InventoryHost → an unconnected SshHost.
        fallback: for hosts without llmops: SshHost → (exit code, JSON-able document).
    """
    from llmops.run.remote import capture_llmops, find_llmops

    def job(h: InventoryHost) -> HostOutcome:
        out = HostOutcome(h.name, h.ssh, h.labels)
        with connect(h) as ssh:
            remote = find_llmops(ssh, h.llmops)
            if remote is None:
                if fallback is None:
                    raise RemoteLlmopsMissing(
                        f"llmops is not installed on {ssh.label}",
                        f"install it with `llmops remote bootstrap {h.name}`",
                    )
                out.exit_code, out.result = fallback(ssh)
                out.ok, out.via = True, "shell-probe"
                return out
            out.via = "llmops"
            out.extra["llmops_version"] = remote.version
            code, stdout, stderr = capture_llmops(ssh, remote, argv)
            out.exit_code = code
            try:
                out.result = json.loads(stdout)
                out.ok = True
            except ValueError:
                out.error, out.hint = error_from_stderr(stderr)
                if code == 2 and out.error and "No such command" in out.error:
                    out.hint = (
                        f"llmops {remote.version} on {h.name} lacks `{argv[0]}`; update it with "
                        f"`llmops remote bootstrap {h.name}`"
                    )
                out.error = out.error or f"`llmops {argv[0]}` exited {code} without JSON"
            return out

    return job


def rows_of(doc: Any) -> list[dict[str, Any]]:
    """The items of a command's JSON document: its first list of objects (``deployments``,
    ``processes``, ...), or the document itself as one row."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k != "schema" and isinstance(v, list) and all(isinstance(x, dict) for x in v):
                return list(v)
        return [{k: v for k, v in doc.items() if k != "schema"}]
    return []


def scalar_columns(rows: Iterable[dict[str, Any]], limit: int = 6) -> list[str]:
    """Keys with scalar values, in first-seen order, at most ``limit``."""
    cols: list[str] = []
    for r in rows:
        for k, v in r.items():
            if k not in cols and (v is None or isinstance(v, str | int | float | bool)):
                cols.append(k)
    return cols[:limit]


__all__ = [
    "HostOutcome",
    "Inventory",
    "InventoryHost",
    "default_inventory_path",
    "error_from_stderr",
    "llmops_json_job",
    "load_inventory",
    "parse_inventory",
    "rows_of",
    "run_on_hosts",
    "scalar_columns",
]
