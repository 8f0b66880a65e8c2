"""Host keys: which known_hosts files are read, llmops' own known_hosts, what an unknown key does
(refused with its fingerprint, or recorded with ``--trust-new-host``), and what a changed key's
refusal tells the user (always refused, ops.md §3.3)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from llmops.errors import HostKeyMismatch, SshConnectError, UnknownHostKey

if TYPE_CHECKING:
    from llmops.run.ssh.config import SshEndpoint
    from llmops.run.ssh.host import SshHost


def llmops_known_hosts(env: Mapping[str, str] | None = None) -> Path:
    """llmops' own known_hosts, where ``--trust-new-host`` records keys (ops.md §3.3: rented
    hosts come and go and reuse addresses, so keep them out of ~/.ssh/known_hosts)."""
    env = os.environ if env is None else env
    base = env.get("LLMOPS_HOME") or os.path.join(
        env.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "llmops"
    )
    return Path(base) / "known_hosts"


def user_known_hosts_files(endpoint: SshEndpoint) -> list[str]:
    """The user's known_hosts files that exist: UserKnownHostsFile, else ~/.ssh/known_hosts."""
    files = list(endpoint.known_hosts_files)
    if not files:
        home = os.environ.get("HOME") or os.path.expanduser("~")
        files = [os.path.join(home, ".ssh", "known_hosts")]
    return [f for f in files if os.path.isfile(f)]


def apply_trust(client: Any, host: SshHost) -> None:
    """Load the user's known_hosts and llmops' own into a paramiko ``SSHClient`` and set the
    policy for unknown hosts.

    Raises:
        SshConnectError: llmops' own known_hosts cannot be read.
    """
    import paramiko

    for f in user_known_hosts_files(host.endpoint):
        with contextlib.suppress(OSError, paramiko.SSHException):
            client.load_system_host_keys(f)
    own = host.known_hosts
    if own.exists():
        try:
            client.load_host_keys(str(own))
        except (OSError, paramiko.SSHException) as e:
            raise SshConnectError(
                f"cannot read llmops' known_hosts {own}: {e}",
                f"fix or remove the bad line in {own}",
            ) from e
    client.set_missing_host_key_policy(cast(Any, _TrustPolicy(host)))


def files_holding(files: list[str], name: str) -> list[str]:
    """Those of ``files`` that hold a key for ``name`` (a known_hosts name)."""
    import paramiko

    out = []
    for f in files:
        with contextlib.suppress(Exception):
            if os.path.isfile(f) and paramiko.HostKeys(f).lookup(name) is not None:
                out.append(f)
    return out


def mismatch_error(endpoint: SshEndpoint, e: Any, files: list[str]) -> HostKeyMismatch:
    """The refusal of a changed host key (paramiko's ``BadHostKeyException`` ``e``), with the
    ``ssh-keygen -R`` commands for ``files`` (the files holding the old key)."""
    name = endpoint.known_hosts_name
    fix = " && ".join(f"ssh-keygen -R '{name}' -f {f}" for f in files)
    return HostKeyMismatch(
        f"host key of {endpoint.label} CHANGED: known_hosts has {e.expected_key.get_name()} "
        f"{e.expected_key.fingerprint}, the host now presents {e.key.get_name()} "
        f"{e.key.fingerprint}; refusing to connect",
        f"if the host was re-created (vast.ai and RunPod reuse addresses), remove the old "
        f"key with `{fix}`, then connect with --trust-new-host; otherwise someone may be "
        f"intercepting the connection",
    )


class _TrustPolicy:
    """Unknown host: refuse with its fingerprint, or (trust_new_host) record it in llmops'
    known_hosts. A changed key never gets here: paramiko raises BadHostKeyException first."""

    def __init__(self, host: SshHost) -> None:
        self.host = host

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        import paramiko

        h = self.host
        if not h.trust_new_host:
            raise UnknownHostKey(
                f"{h.label} is not in known_hosts; it presents {key.get_name()} key "
                f"{key.fingerprint}",
                f"check that fingerprint (vast.ai/RunPod show it in the instance's log), then "
                f"run again with --trust-new-host to record it in {h.known_hosts}",
            )
        client.get_host_keys().add(hostname, key.get_name(), key)
        path = h.known_hosts
        path.parent.mkdir(parents=True, exist_ok=True)
        line = paramiko.hostkeys.HostKeyEntry([hostname], key).to_line() or ""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(line)
        h.recorded_new_key = f"{key.get_name()} {key.fingerprint}"
        sys.stderr.write(
            f"llmops: trusted new host key of {h.label}: {key.get_name()} {key.fingerprint} "
            f"(recorded in {path})\n"
        )
