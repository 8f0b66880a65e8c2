"""Pure SSH target parsing and ~/.ssh/config resolution (paramiko's SSHConfig, no network)."""

from __future__ import annotations

import pytest

from llmops.errors import UsageError
from llmops.run.remote import parse_find_output, port_from_deployment_json
from llmops.run.ssh import (
    PortForward,
    SshTarget,
    command_line,
    known_hosts_name,
    parse_forward_spec,
    parse_target,
    resolve,
    ssh_config_from_text,
)


@pytest.mark.parametrize(
    ("text", "user", "host", "port"),
    [
        ("root@1.2.3.4", "root", "1.2.3.4", None),
        ("root@1.2.3.4:41022", "root", "1.2.3.4", 41022),
        ("gpu-box", None, "gpu-box", None),
        ("ssh://ubuntu@box.example:2222", "ubuntu", "box.example", 2222),
        ("me@[2001:db8::1]:22", "me", "2001:db8::1", 22),
        ("2001:db8::1", None, "2001:db8::1", None),
    ],
)
def test_user_host_port(text: str, user: str | None, host: str, port: int | None) -> None:
    t = parse_target(text)
    assert (t.user, t.host, t.port, t.text) == (user, host, port, text)


def test_pasted_vast_command() -> None:
    t = parse_target("ssh -p 41022 root@ssh4.vast.ai -L 8080:localhost:8080")
    assert (t.user, t.host, t.port) == ("root", "ssh4.vast.ai", 41022)
    assert t.forwards == (PortForward(8080, "localhost", 8080),)


def test_pasted_runpod_command_with_identity_and_options() -> None:
    t = parse_target(
        "ssh root@194.68.245.12 -p 22084 -i ~/.ssh/id_ed25519 -o StrictHostKeyChecking=no "
        "-o User=ignored -J hop@jump:2200 -N"
    )
    assert (t.user, t.host, t.port) == ("root", "194.68.245.12", 22084)
    assert t.identity_files == ("~/.ssh/id_ed25519",)
    assert t.proxy_jump == "hop@jump:2200"
    assert t.option("stricthostkeychecking") == "no"


def test_pasted_command_with_remote_command_and_glued_flags() -> None:
    t = parse_target("ssh -p33426 -l root ssh5.vast.ai 'nvidia-smi -L' -p 1")
    assert (t.user, t.host, t.port) == ("root", "ssh5.vast.ai", 33426)


@pytest.mark.parametrize(
    "bad",
    ["", "root@", "root@host:notaport", "root@host:70000", "two words", "ssh -p", "ssh -N"],
)
def test_bad_targets_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_target(bad)
    assert e.value.message.startswith("cannot read SSH host")
    assert "user@host[:port]" in (e.value.hint or "")


def test_forward_specs() -> None:
    assert parse_forward_spec("8080:localhost:8000") == PortForward(8080, "localhost", 8000)
    assert parse_forward_spec("0.0.0.0:8080:[::1]:8000") == PortForward(8080, "::1", 8000)
    with pytest.raises(UsageError):
        parse_forward_spec("8080")


CONFIG = """
Host gpu-*
  User ubuntu
  IdentityFile ~/.ssh/gpu_key
  ProxyJump bastion

Host gpu-a
  HostName 10.0.0.5
  Port 2222
  UserKnownHostsFile ~/.ssh/fleet_known_hosts
  ConnectTimeout 4

Host bastion
  HostName bastion.example.com
  User jump

Host *
  IdentityFile ~/.ssh/id_default
"""


def test_config_alias_applies_hostname_port_user_identity_jump(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", "/home/me")  # paramiko expands ~ in IdentityFile itself
    ep = resolve(parse_target("gpu-a"), ssh_config_from_text(CONFIG), home="/home/me")
    assert (ep.hostname, ep.port, ep.user) == ("10.0.0.5", 2222, "ubuntu")
    assert ep.identity_files == ("/home/me/.ssh/gpu_key", "/home/me/.ssh/id_default")
    assert ep.proxy_jump == "bastion"
    assert ep.known_hosts_files == ("/home/me/.ssh/fleet_known_hosts",)
    assert ep.connect_timeout_s == 4.0
    assert ep.label == "gpu-a (ubuntu@10.0.0.5:2222)"
    assert ep.known_hosts_name == "[10.0.0.5]:2222"


def test_explicit_target_wins_over_config() -> None:
    ep = resolve(parse_target("root@gpu-a:22"), ssh_config_from_text(CONFIG), home="/h")
    assert (ep.user, ep.port, ep.hostname) == ("root", 22, "10.0.0.5")
    assert ep.known_hosts_name == "10.0.0.5"


def test_no_config_defaults() -> None:
    ep = resolve(SshTarget(host="box"), None, default_user="alice")
    assert (ep.hostname, ep.port, ep.user, ep.proxy_jump) == ("box", 22, "alice", None)
    assert ep.label == "alice@box:22"


def test_known_hosts_name_and_command_line() -> None:
    assert known_hosts_name("h", 22) == "h" and known_hosts_name("h", 2) == "[h]:2"
    assert command_line(["echo", "a b"], {"X": "it's"}) == "env 'X=it'\"'\"'s' echo 'a b'"


def test_remote_llmops_discovery_output() -> None:
    found = parse_find_output("/root/.llmops/venv/bin/llmops\nllmops 0.1.0\n")
    assert found is not None and (found.path, found.version) == (
        "/root/.llmops/venv/bin/llmops",
        "0.1.0",
    )
    assert parse_find_output("") is None and parse_find_output("/x\nsomething else") is None


def test_deployment_port_from_state_file() -> None:
    doc = '{"name": "m", "plan": {"ports": [{"host_port": 8081, "container_port": 80}]}}'
    assert port_from_deployment_json(doc) == 8081
    with pytest.raises(ValueError):
        port_from_deployment_json('{"plan": {"ports": [{"host_port": 0}]}}')
