"""`llmops top` against two real deployments of the bundled backend (started with `llmops up`):
once as JSON while one of them is under load (with 8 GPUs through the NVML fake), and live in a
real terminal (tmux: the screen is read back, redrawn in place, and `q` quits); then `fleet top`
over two real sshd hosts and one that is down, as JSON and live. The tests'
environment sets COLUMNS=200, wider than the 160-column pane: the live view must size itself
from the terminal, or its full-screen frames wrap and scroll."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli import app
from tests.e2e.conftest import backend_home, free_port  # noqa: F401  (fixture)
from tests.support.sentinels import unique
from tests.support.sshd import (  # noqa: F401  (pytest fixtures)
    Client,
    ssh_client_fixture,
    ssh_user_key_fixture,
    start_sshd,
)
from tests.support.sshd import free_port as sshd_free_port
from tests.support.tmux import terminal

pytestmark = pytest.mark.slow
A, B = unique("top-a"), unique("top-b")
LLMOPS = str(Path(sys.executable).with_name("llmops"))


def cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def two(backend_home: Path) -> Iterator[dict[str, object]]:  # noqa: F811
    old = os.environ.get("LLMOPS_HOME")
    os.environ["LLMOPS_HOME"] = str(backend_home)
    started: dict[str, object] = {"home": backend_home}
    try:
        for name in (A, B):
            port = free_port()
            r = cli("up", "smollm2", "--port", str(port), "--name", name, "--timeout", "600")
            assert r.exit_code == 0, r.output
            key = next(ln.split()[2] for ln in r.stdout.splitlines() if ln.startswith("api key:"))
            started[name] = (port, key)
        yield started
    finally:
        for name in (A, B):
            if name in started:
                cli("down", name)
        if old is None:
            os.environ.pop("LLMOPS_HOME", None)
        else:
            os.environ["LLMOPS_HOME"] = old


def _load(port: int, key: str, stop: threading.Event) -> None:
    import httpx

    with httpx.Client(timeout=60) as c:
        while not stop.is_set():
            r = c.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={
                    "model": "smollm2-135m",
                    "messages": [{"role": "user", "content": "Count to ten."}],
                    "max_tokens": 8,
                },
            )
            r.raise_for_status()  # a load that fails would make the assertions below vacuous


def test_once_json_sees_both_and_the_load(
    two: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmops.cli import deps
    from tests.support.fakes import fake_nvml

    monkeypatch.setattr(deps, "nvml_module", lambda: fake_nvml("h100x8_nvlink"))
    monkeypatch.setenv("LLMOPS_HOME", str(two["home"]))  # each test gets its own otherwise
    port, key = two[A]  # type: ignore[misc]
    stop = threading.Event()
    worker = threading.Thread(target=_load, args=(port, key, stop), daemon=True)
    worker.start()
    try:
        time.sleep(1.0)  # a request in flight before the first scrape
        # a long window: on a loaded 2-core CI machine this CPU backend can take seconds a token
        r = cli("top", "--once", "--json", "--interval", "15")
    finally:
        stop.set()
        worker.join(60)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    rows = {d["name"]: d for d in doc["deployments"] if d["name"] in (A, B)}
    assert set(rows) == {A, B}
    a, b = rows[A], rows[B]
    for row in (a, b):
        assert (row["engine"], row["status"], row["health"], row["metrics"]) == (
            "torch",
            "running",
            "ready",
            "llmops",
        )
        assert row["waiting"] is not None and row["running"] is not None
    assert a["tokens_per_s"] > 0 and b["tokens_per_s"] == 0
    assert b["requests_per_s"] in (0, None)  # the backend lists no request counter before one
    assert a["ttft_p99_ms"] is not None and a["ttft_window"] is not None
    assert [g["index"] for g in doc["gpus"]] == list(range(8))
    assert {"utilization_pct", "memory_used_mib", "power_w", "temperature_c"} <= set(doc["gpus"][0])
    assert key not in r.stdout


def test_live_in_tmux_refreshes_in_place_and_q_quits(
    two: dict[str, object], tmp_path: Path
) -> None:
    command = f"LLMOPS_HOME={two['home']} {LLMOPS} top --interval 0.5"
    with terminal(command, tmp_path, "top", (160, 40)) as t:
        text = t.wait_for(lambda s: A in s and B in s, 60)
        assert A in text and B in text, text
        assert "q quits" in text and "TTFT p99 ms" in text and "GPUs:" in text
        stamp = next(line for line in text.splitlines() if "llmops top ·" in line)
        time.sleep(1.6)
        later = t.screen()
        assert later.count("llmops top ·") == 1  # redrawn in place, not scrolled
        assert next(ln for ln in later.splitlines() if "llmops top ·" in ln) != stamp
        t.press("q")
        assert t.exit_code(20) == "0"


@pytest.fixture
def fleet_of_two(
    two: dict[str, object], tmp_path: Path, ssh_client: Client, ssh_user_key: tuple[bytes, str]
) -> Iterator[Path]:
    """Inventory: `a` and `b`, two real sshd whose sessions' LLMOPS_HOME is the one holding the
    two running deployments, and `down`, where nothing listens."""
    servers = []
    try:
        for name in ("a", "b"):
            d = tmp_path / name
            d.mkdir()
            (d / "remote-llmops-home").symlink_to(Path(str(two["home"])))
            servers.append(start_sshd(d, [ssh_user_key[1]]))
        ssh_client.trust(*servers)
        inv = tmp_path / "hosts.yaml"
        inv.write_text(
            "hosts:\n"
            + "".join(
                f"  {n}:\n    ssh: root@127.0.0.1:{s.port}\n    llmops: {LLMOPS}\n"
                for n, s in zip(("a", "b"), servers, strict=True)
            )
            + f"  down:\n    ssh: root@127.0.0.1:{sshd_free_port()}\n"
        )
        yield inv
    finally:
        for s in servers:
            s.stop()


@pytest.mark.sshd
def test_fleet_top_once_json_has_every_host_and_says_why_one_is_missing(
    fleet_of_two: Path,
) -> None:
    r = cli("fleet", "top", "--inventory", str(fleet_of_two), "--once", "--json", "-n", "1")
    assert r.exit_code == 1, r.output  # one host is down
    doc = json.loads(r.stdout)
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert list(hosts) == ["a", "b", "down"]  # inventory order
    for name in ("a", "b"):
        h = hosts[name]
        assert h["ok"] and h["error"] is None, h
        rows = {d["name"]: d for d in h["deployments"] if d["name"] in (A, B)}
        assert set(rows) == {A, B}, h
        for row in rows.values():  # each host's own llmops scraped the engines' metrics
            assert (row["engine"], row["status"], row["metrics"]) == ("torch", "running", "llmops")
    down = hosts["down"]
    assert not down["ok"] and "refused the connection" in down["error"] and down["hint"]
    assert down["deployments"] == [] and down["gpus"] == []
    r = cli("fleet", "top", "--inventory", str(fleet_of_two), "--json")
    assert r.exit_code != 0 and "add --once" in r.stderr


@pytest.mark.sshd
def test_fleet_top_live_in_tmux_one_screen_for_every_host(
    fleet_of_two: Path, ssh_client: Client, tmp_path: Path
) -> None:
    command = f"HOME={ssh_client.home} {LLMOPS} fleet top --inventory {fleet_of_two} -n 0.5"
    with terminal(command, tmp_path, "ftop", (180, 40)) as t:
        text = t.wait_for(lambda s: "2/3 hosts answering" in s and A in s and B in s, 90)
        assert "llmops fleet top · 2/3 hosts answering" in text, text
        lines = text.splitlines()
        for host in ("a", "b"):  # one row per host and deployment, the host first
            for name in (A, B):
                assert any(ln.split()[:2] == [host, name] for ln in lines), text
        assert any(ln.startswith("down: ") and "fix:" in ln for ln in lines), text
        stamp = next(ln for ln in lines if "llmops fleet top ·" in ln)

        def redrawn(screen: str) -> bool:
            now = [ln for ln in screen.splitlines() if "llmops fleet top ·" in ln]
            return bool(now) and now[0] != stamp

        later = t.wait_for(redrawn, 30)
        assert later.count("llmops fleet top ·") == 1 and redrawn(later)  # redrawn in place
        t.press("q")
        assert t.exit_code(30) == "0"
