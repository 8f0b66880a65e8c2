"""`llmops fleet` over a hosts.yaml inventory of several real sshd instances, one of them down."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import typer.main
from typer.testing import CliRunner

from llmops.cli import app
from llmops.run.fleet import parse_inventory
from llmops.schemas import load
from tests.support.sshd import (  # noqa: F401  (pytest fixtures)
    Client,
    Sshd,
    free_port,
    ssh_client_fixture,
    ssh_user_key_fixture,
    start_sshd,
)

pytestmark = pytest.mark.sshd

REPO_LLMOPS = str(Path(sys.executable).parent / "llmops")


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def fleet(tmp_path: Path, ssh_client: Client, ssh_user_key: tuple[bytes, str]) -> Iterator[Path]:
    """Inventory: `with-llmops` (llmops installed), `bare` (none: shell probe), `down`
    (nothing listens), and `other` (a label no command selects here)."""
    a = start_sshd(tmp_path / "a", [ssh_user_key[1]])
    b = start_sshd(tmp_path / "b", [ssh_user_key[1]])
    try:
        ssh_client.trust(a, b)
        inv = tmp_path / "hosts.yaml"
        inv.write_text(
            f"""hosts:
  with-llmops:
    ssh: root@127.0.0.1:{a.port}
    labels: [gpu, prod]
    llmops: {REPO_LLMOPS}
  bare:
    ssh: ssh -p {b.port} root@127.0.0.1
    labels: [gpu]
  down:
    ssh: root@127.0.0.1:{free_port()}
    labels: [gpu, prod]
"""
        )
        yield inv
    finally:
        a.stop()
        b.stop()


def test_fleet_doctor_one_table_per_host_errors_do_not_stop_others(fleet: Path) -> None:
    r = run("fleet", "doctor", "--inventory", str(fleet), "--offline", "--json")
    assert r.exit_code == 1  # one host is down
    doc = json.loads(r.stdout)
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert list(hosts) == ["with-llmops", "bare", "down"]  # inventory order
    schema = load("doctor")
    for name, via in (("with-llmops", "llmops"), ("bare", "shell-probe")):
        h = hosts[name]
        assert h["ok"] and h["via"] == via and h["error"] is None
        jsonschema.validate(h["result"], schema)
        assert h["result"]["facts"]["source"].startswith("ssh:root@127.0.0.1:")
    assert hosts["with-llmops"]["extra"]["llmops_version"]
    # the shell-probed host is checked as `llmops doctor` checks the same facts
    saved = fleet.parent / "bare.json"
    saved.write_text(json.dumps(hosts["bare"]["result"]))
    here = run("doctor", "--facts", str(saved), "--json")
    assert json.loads(here.stdout)["checks"] == hosts["bare"]["result"]["checks"]
    assert list(json.loads(here.stdout)) == list(hosts["bare"]["result"])
    down = hosts["down"]
    assert not down["ok"] and "refused the connection" in down["error"] and down["hint"]

    human = run("fleet", "doctor", "--inventory", str(fleet), "--offline")
    assert human.exit_code == 1
    lines = human.stdout.splitlines()
    assert any(ln.startswith("with-llmops") for ln in lines)
    assert any(ln.startswith("bare") and "shell commands" in human.stdout for ln in lines)
    assert any(ln.startswith("down") and "UNREACHABLE" in ln for ln in lines)


def test_fleet_on_label_selects_hosts(fleet: Path) -> None:
    r = run("fleet", "hosts", "--inventory", str(fleet), "--on", "prod", "--json")
    assert [h["name"] for h in json.loads(r.stdout)["hosts"]] == ["with-llmops", "down"]
    r = run("fleet", "doctor", "--inventory", str(fleet), "--on", "nope")
    assert r.exit_code == 1 and "no host in" in r.stderr and "labels there: gpu, prod" in r.stderr


def test_fleet_ps_and_up_run_the_remote_command_or_say_why_not(fleet: Path) -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    r = run("fleet", "ps", "--inventory", str(fleet), "--json")
    hosts = {h["name"]: h for h in json.loads(r.stdout)["hosts"]}
    assert "not installed" in hosts["bare"]["error"]
    assert "llmops remote bootstrap bare" in hosts["bare"]["hint"]
    assert "refused" in hosts["down"]["error"]
    if "ps" in commands:
        assert hosts["with-llmops"]["ok"], hosts["with-llmops"]
    else:  # `ps` has not landed yet: the remote llmops says so, and the hint says what to do
        assert "lacks `ps`" in hosts["with-llmops"]["hint"]
    assert r.exit_code == 1
    # --dry-run is passed through to each host's `up`: it plans there and starts nothing
    r = run(
        "fleet", "up", "smollm2", "--on", "prod", "--inventory", str(fleet), "--dry-run", "--json"
    )
    hosts = {h["name"]: h for h in json.loads(r.stdout)["hosts"]}
    assert list(hosts) == ["with-llmops", "down"]
    if "up" in commands:
        up = hosts["with-llmops"]
        assert up["ok"] and up["exit_code"] == 0, up
        assert up["result"]["dry_run"] is True and up["result"]["plan"]["model"]
    else:
        assert "lacks `up`" in hosts["with-llmops"]["hint"]
    assert "refused" in hosts["down"]["error"]
    human = run("fleet", "ps", "--inventory", str(fleet))
    assert [ln.split()[0] for ln in human.stdout.splitlines()[2:] if ln and ln[0] != " "][:3] == [
        "with-llmops",
        "bare",
        "down",
    ]


def test_fleet_refuses_root_host_option(fleet: Path) -> None:
    r = run("--host", "root@127.0.0.1:1", "fleet", "hosts", "--inventory", str(fleet))
    assert r.exit_code == 2 and "not --host" in r.stderr


def test_inventory_parse_errors() -> None:
    from llmops.errors import InventoryError

    inv = parse_inventory("hosts:\n  - name: a\n    ssh: a@b\n    labels: x\n", "f.yaml")
    assert inv.hosts[0].labels == ("x",)
    for bad, msg in (
        ("hosts: {}", "lists no hosts"),
        ("hosts:\n  a: {labels: [x]}", "has no `ssh:`"),
        ("hosts: [{ssh: a@b}]", "needs a `name:`"),
        ("hosts: [: x", "not valid YAML"),
    ):
        with pytest.raises(InventoryError, match=msg):
            parse_inventory(bad, "f.yaml")


def test_missing_inventory_says_how_to_write_one(tmp_path: Path) -> None:
    r = run("fleet", "doctor")
    assert r.exit_code == 1
    assert "cannot read the fleet inventory" in r.stderr and "hosts.yaml" in r.stderr
