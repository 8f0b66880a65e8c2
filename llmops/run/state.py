"""Deployment state under $LLMOPS_HOME/deployments/NAME: the plan, secrets (0600), pid, log.

Docker labels and these files are the truth for ``ps``, ``logs`` and ``down``: nothing is kept
in memory between commands, so ``ps`` is right after llmops or the Docker daemon restarts.
"""

from __future__ import annotations

import json
import os
import re
import secrets as _secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.errors import LlmopsError, UsageError


def llmops_home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("LLMOPS_HOME") or os.path.join(
        env.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "llmops"
    )
    return Path(base)


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


class DeploymentStore:
    def __init__(self, home: Path | None = None) -> None:
        self.home = home or llmops_home()
        self.root = self.home / "deployments"

    def dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise UsageError(f"invalid deployment name {name!r}", "use letters, digits and dashes")
        return self.root / name

    def log_path(self, name: str) -> Path:
        return self.dir(name) / "engine.log"

    def pid_path(self, name: str) -> Path:
        return self.dir(name) / "engine.pid"

    def secrets_path(self, name: str) -> Path:
        return self.dir(name) / "secrets.env"

    def save(
        self, name: str, plan_doc: dict[str, Any], created_at: str, secret_values: Mapping[str, str]
    ) -> Deployment:
        d = self.dir(name)
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        tmp = d / "deployment.json.tmp"
        tmp.write_text(
            json.dumps({"name": name, "created_at": created_at, "plan": plan_doc}, indent=2)
        )
        tmp.replace(d / "deployment.json")
        self.write_secrets(name, secret_values)
        return Deployment(name=name, plan=plan_doc, created_at=created_at, path=d)

    def write_secrets(self, name: str, values: Mapping[str, str]) -> None:
        """KEY=value lines, created 0600 before any byte is written."""
        path = self.secrets_path(name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            for k, v in values.items():
                if "\n" in v:
                    raise LlmopsError(f"secret {k} contains a newline", "check the value")
                f.write(f"{k}={v}\n")
        os.chmod(path, 0o600)

    def read_secrets(self, name: str) -> dict[str, str]:
        path = self.secrets_path(name)
        if not path.exists():
            return {}
        out: dict[str, str] = {}
        for line in path.read_text().splitlines():
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
            if s.get("secret") == "api_key" and secrets.get(s.get("env", "")):
                return secrets[s["env"]]
        return None

    def load(self, name: str) -> Deployment | None:
        f = self.dir(name) / "deployment.json"
        try:
            doc = json.loads(f.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise LlmopsError(
                f"deployment {name}: state file {f} is unreadable ({e})",
                f"remove it with `llmops down {name} --force` or delete {f.parent}",
            ) from e
        return Deployment(name=name, plan=doc["plan"], created_at=doc["created_at"], path=f.parent)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "deployment.json").exists())

    def all(self) -> list[Deployment]:
        return [d for d in (self.load(n) for n in self.names()) if d is not None]

    def remove(self, name: str) -> None:
        shutil.rmtree(self.dir(name), ignore_errors=True)


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
