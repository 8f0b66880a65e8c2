"""Deployment state under $LLMOPS_HOME/deployments/NAME: the plan, secrets (0600), pid, log.

Docker labels and these files are the truth for ``ps``, ``logs`` and ``down``: nothing is kept
in memory between commands, so ``ps`` is right after llmops or the Docker daemon restarts.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets as _secrets
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.errors import LlmopsError, UsageError
from llmops.paths import llmops_home

#: The container label that says which llmops install (one ``$LLMOPS_HOME``) started it.
INSTALL_LABEL = "llmops.install"
_INSTALL_ID = re.compile(r"^[0-9a-f]{16}$")


def install_id(home: Path | None = None) -> str:
    """This install's id: 16 hex digits in ``$LLMOPS_HOME/install-id``, made on first use.

    Every container llmops starts carries it as the ``llmops.install`` label, and ``ps``,
    ``down`` and ``kill`` only count a container as theirs when it carries this id: a label
    inherited from an image, or another install on the same Docker engine (another user,
    another ``LLMOPS_HOME``, a test run), is never "ours". The file is created atomically
    (a hard link of a finished temp file), so two commands racing agree on one id.
    """
    home = home or llmops_home()
    path = home / "install-id"
    for _ in range(3):
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            text = ""
        except OSError as e:
            raise LlmopsError(
                f"cannot read llmops' install id {path}: {e.strerror or e}",
                f"check the permissions of {home} (LLMOPS_HOME)",
            ) from e
        if _INSTALL_ID.match(text):
            return text
        if text:
            raise LlmopsError(
                f"llmops' install id file {path} is damaged",
                "restore it from a backup or delete it (containers started before are then "
                "no longer recognised as this install's: remove them with `docker rm -f`)",
            )
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / f".install-id.{os.getpid()}.{_secrets.token_hex(4)}"
        tmp.write_text(_secrets.token_hex(8) + "\n")
        try:
            os.link(tmp, path)  # atomic: fails when another process made it first
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    raise LlmopsError(f"cannot create llmops' install id {path}", f"check that {home} is writable")


def new_api_key() -> str:
    return "sk-llmops-" + _secrets.token_urlsafe(24)


def mask(secret: str) -> str:
    return secret[:10] + "…" + secret[-4:] if len(secret) > 16 else "…"


def check_secret(what: str, value: str) -> None:
    """Refuse a secret that cannot travel as one ``KEY=value`` line or one HTTP header: a
    newline, another control character, or (for keys sent as a bearer token) non-ASCII text.
    The message names ``what`` (``HF_TOKEN``, ``--api-key``), never the value."""
    bad = next((c for c in value if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        kind = "a newline" if bad in "\r\n" else "a control character"
        raise UsageError(
            f"{what} contains {kind}",
            "set it again without line breaks (e.g. `export HF_TOKEN=hf_...` on one line)",
        )
    if not value.isascii():
        raise UsageError(
            f"{what} contains a non-ASCII character",
            "keys and tokens are plain ASCII: copy it again from where it was issued",
        )


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``path`` whole or not at all: a private temp file in the same directory, created
    with ``mode`` before any byte is written, then renamed over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{_secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class BrokenDeployment(LlmopsError):
    """A deployment's state file is unreadable or not what llmops wrote."""

    def __init__(self, name: str, path: Path, why: str) -> None:
        super().__init__(
            f"deployment {name}: state file {path} is damaged ({why})",
            f"remove the record with `llmops down {name} --force` (it stops only an engine "
            "it can still identify)",
        )
        self.name = name
        self.why = why


class DeploymentBusy(LlmopsError):
    """Another llmops command holds the deployment's lock (an `up` or `down` in progress)."""


@dataclass(frozen=True)
class Deployment:
    """What `up` recorded about a deployment."""

    name: str
    plan: dict[str, Any]  # the LaunchPlan JSON (plan_json)
    created_at: str
    path: Path

    @property
    def engine(self) -> str:
        return str(self.plan["engine"])

    @property
    def runtime(self) -> str:
        return str(self.plan["runtime"])

    @property
    def host_port(self) -> int:
        return int(self.plan["ports"][0]["host_port"])


#: Docker's container-name rule, bounded: what a deployment directory may be called.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")


class DeploymentStore:
    def __init__(self, home: Path | None = None) -> None:
        self.home = home or llmops_home()
        self.root = self.home / "deployments"

    def dir(self, name: str) -> Path:
        if not _NAME.match(name):
            raise UsageError(
                f"invalid deployment name {name!r}",
                "use letters, digits, dots, dashes and underscores (starting with a letter or "
                "digit, at most 128 characters); `llmops ps` lists the deployments",
            )
        return self.root / name

    def log_path(self, name: str) -> Path:
        return self.dir(name) / "engine.log"

    def pid_path(self, name: str) -> Path:
        return self.dir(name) / "engine.pid"

    def secrets_path(self, name: str) -> Path:
        return self.dir(name) / "secrets.env"

    def lock_path(self, name: str) -> Path:
        self.dir(name)  # validates the name
        return self.home / "locks" / f"{name}.lock"

    @contextlib.contextmanager
    def lock(self, name: str, doing: str = "start or stop") -> Iterator[None]:
        """Hold deployment ``name``'s lock (``fcntl.flock`` on ``$LLMOPS_HOME/locks/NAME.lock``)
        for the block; `up` and `down` run inside it. The lock file lives outside the
        deployment's directory, so removing the directory never frees a lock someone holds.

        Raises:
            DeploymentBusy: another process holds it (the message names its pid).
        """
        import fcntl

        path = self.lock_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                who = f"process {holder}" if holder.isdigit() else "another llmops command"
                raise DeploymentBusy(
                    f"deployment {name} is being started or stopped by {who}; "
                    f"this {doing} did nothing",
                    f"wait for it to finish, then `llmops ps`; or stop it with `llmops down {name}`",
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the flock

    def save(
        self, name: str, plan_doc: dict[str, Any], created_at: str, secret_values: Mapping[str, str]
    ) -> Deployment:
        """Record a deployment: its secrets first (checked, 0600), then deployment.json, each
        written atomically. A secret that cannot be stored leaves nothing behind."""
        for k, v in secret_values.items():
            check_secret(k, v)
        d = self.dir(name)
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        self.write_secrets(name, secret_values)
        write_atomic(
            d / "deployment.json",
            json.dumps({"name": name, "created_at": created_at, "plan": plan_doc}, indent=2),
            0o600,
        )
        return Deployment(name=name, plan=plan_doc, created_at=created_at, path=d)

    def write_secrets(self, name: str, values: Mapping[str, str]) -> None:
        """KEY=value lines in a file created 0600 before any byte is written, renamed into
        place whole (never a partial file)."""
        for k, v in values.items():
            check_secret(k, v)
        write_atomic(
            self.secrets_path(name), "".join(f"{k}={v}\n" for k, v in values.items()), 0o600
        )

    def read_secrets(self, name: str) -> dict[str, str]:
        """The secrets file read as data (``KEY=value`` lines), never run by a shell."""
        path = self.secrets_path(name)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return {}
        out: dict[str, str] = {}
        for line in text.splitlines():
            if "=" in line:
                k, _, v = line.partition("=")
                out[k] = v
        return out

    def api_key(self, name: str) -> str | None:
        """The deployment's API key (from its 0600 secrets file), or None when it has none."""
        dep = self.load(name)
        if dep is None:
            return None
        secrets = self.read_secrets(name)
        for s in dep.plan.get("secret_env") or []:
            if not isinstance(s, dict):
                continue
            if s.get("secret") == "api_key" and secrets.get(str(s.get("env", ""))):
                return secrets[s["env"]]
        return None

    def load(self, name: str) -> Deployment | None:
        """The record, or None when there is none.

        Raises:
            BrokenDeployment: the file is unreadable, not JSON, or not the shape `up` writes.
        """
        f = self.dir(name) / "deployment.json"
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except OSError as e:
            raise BrokenDeployment(name, f, e.strerror or str(e)) from e
        except ValueError as e:
            raise BrokenDeployment(name, f, f"not JSON: {e}") from e
        why = _record_problem(doc)
        if why:
            raise BrokenDeployment(name, f, why)
        return Deployment(
            name=name, plan=doc["plan"], created_at=str(doc.get("created_at", "")), path=f.parent
        )

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if not p.name.startswith(".") and (p / "deployment.json").exists()
        )

    def all(self) -> list[Deployment]:
        """Every readable record; damaged ones are left out (see :meth:`broken`)."""
        out = []
        for n in self.names():
            with contextlib.suppress(BrokenDeployment):
                dep = self.load(n)
                if dep is not None:
                    out.append(dep)
        return out

    def broken(self) -> dict[str, BrokenDeployment]:
        """Damaged records by name, each with its reason and fix."""
        out: dict[str, BrokenDeployment] = {}
        for n in self.names():
            try:
                self.load(n)
            except BrokenDeployment as e:
                out[n] = e
        return out

    def remove(self, name: str) -> None:
        shutil.rmtree(self.dir(name), ignore_errors=True)


def _record_problem(doc: Any) -> str | None:
    """Why a parsed deployment.json is not what `up` writes (None when it is)."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    plan = doc.get("plan")
    if not isinstance(plan, dict):
        return "its plan is not an object"
    if not isinstance(plan.get("engine"), str):
        return "its plan names no engine"
    if plan.get("runtime") not in ("docker", "native"):
        return "its plan names no runtime (docker or native)"
    ports = plan.get("ports")
    if not isinstance(ports, list) or not ports or not isinstance(ports[0], dict):
        return "its plan has no ports"
    port = ports[0].get("host_port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return "its plan's host port is not a port number"
    if not isinstance(plan.get("secret_env", []), list):
        return "its plan's secrets list is not a list"
    return None


def resolve_deployment(name: str) -> tuple[str, str | None]:
    """A deployment's ``(base URL, API key)`` from llmops' state (see ``llmops ps``).

    Raises:
        UsageError: no deployment has that name (the hint lists those that exist).
    """
    store = DeploymentStore()
    dep = store.load(name)
    if dep is None:
        names = store.names()
        raise UsageError(
            f"{name!r} is neither a URL nor a deployment",
            ("deployments: " + ", ".join(names))
            if names
            else "start one with `llmops up MODEL`, or pass a URL such as http://127.0.0.1:8000",
        )
    return f"http://127.0.0.1:{dep.host_port}", store.api_key(name)
