"""`llmops up smollm2` through the launcher, for real: the bundled backend as a native
process, asked through the official openai client, then ps, logs and down."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from llmops.cli import app
from tests.e2e.conftest import free_port
from tests.support.sentinels import unique

pytestmark = pytest.mark.slow
NAME = unique("smol-e2e")


def cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def test_up_smollm2_native_serves_the_openai_client(backend_home: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from openai import OpenAI

    monkeypatch.setenv("LLMOPS_HOME", str(backend_home))  # shares the converted-model cache
    port = free_port()
    r = cli("up", "smollm2", "--port", str(port), "--name", NAME, "--timeout", "300")
    assert r.exit_code == 0, r.output
    assert f"endpoint:  http://127.0.0.1:{port}/v1" in r.stdout
    key = next(line.split()[2] for line in r.stdout.splitlines() if line.startswith("api key:"))
    assert key.startswith("sk-llmops-")
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key)
        out = client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=12,
            temperature=0,
        )
        assert "Paris" in (out.choices[0].message.content or "")
        # the key is required: a wrong key gets no answer
        with pytest.raises(Exception, match="401"):
            OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong").chat.completions.create(
                model="smollm2-135m", messages=[{"role": "user", "content": "hi"}], max_tokens=2
            )
        ps = json.loads(cli("ps", "--json").stdout)
        (row,) = [d for d in ps["deployments"] if d["name"] == NAME]
        assert (row["engine"], row["runtime"], row["health"], row["port"]) == (
            "torch",
            "native",
            "ready",
            port,
        )
        assert key not in json.dumps(ps)  # secrets never in ps
        assert "ready" in cli("logs", NAME, "--tail", "50").stdout
        # chat and bench find the endpoint and the key from the deployment's name
        chat = cli(
            "chat",
            NAME,
            "-m",
            "What is the capital of France?",
            "--max-tokens",
            "12",
            "--temperature",
            "0",
        )
        assert chat.exit_code == 0, chat.output
        assert "Paris" in chat.stdout and key not in chat.output
        # `up` of the same name again changes nothing
        again = cli("up", "smollm2", "--port", str(port), "--name", NAME)
        assert again.exit_code == 0 and "already running" in again.stderr
        pid = int(row["ident"])
    finally:
        down = cli("down", NAME)
    assert down.exit_code == 0, down.output
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert json.loads(cli("ps", "--json").stdout)["deployments"] == []
