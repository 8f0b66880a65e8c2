"""`llmops chat` through the CLI boundary: one shot, interactive turns, and each failure as a
one-line error with exit 1 (scripted servers), plus the real SmolLM2 backend."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from llmops.cli import app
from tests.client.servers import (
    KEY,
    ScriptedServer,
    free_port,
    healthy_openai,
    openai_chunk,
    openai_server,
    openai_stream,
    sse,
    stream_route,
    tgi_stream,
)


def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["chat", *args], input=input)


@pytest.fixture
def servers() -> Iterator[list[ScriptedServer]]:
    made: list[ScriptedServer] = []
    yield made
    for s in made:
        s.close()


def messages(server: ScriptedServer, i: int = -1) -> list[dict[str, str]]:
    return list(json.loads(server.requests[i][3])["messages"])


def test_one_shot_streams_reply_to_stdout(servers: list[ScriptedServer]) -> None:
    s = healthy_openai()
    servers.append(s)
    r = run(s.url, "-m", "hi", "--system", "be brief", "--model", "other-model")
    assert r.exit_code == 0, r.output
    assert r.stdout == "Hello, world!\n"
    body = json.loads(s.requests[-1][3])
    assert body["model"] == "other-model" and body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]


def test_interactive_history_reset_and_exit(servers: list[ScriptedServer]) -> None:
    s = openai_server(stream_route(lambda n, b: openai_stream([f"reply{n}"])))
    servers.append(s)
    r = run(s.url, input="first\nsecond\n/reset\nthird\n/nope\n/exit\nnever sent\n")
    assert r.exit_code == 0, r.output
    assert r.stdout == "reply1\nreply2\nreply3\n"
    assert [m["content"] for m in messages(s, 2)] == ["first", "reply1", "second"]  # history
    assert [m["content"] for m in messages(s, 3)] == ["third"]  # after /reset
    assert len([q for q in s.requests if q[0] == "POST"]) == 3
    assert "conversation cleared" in r.stderr and "unknown command /nope" in r.stderr


def test_interactive_error_does_not_end_the_session(servers: list[ScriptedServer]) -> None:
    def events(n: int, body: bytes) -> list[bytes]:
        if n == 1:
            return [sse(openai_chunk("par")), sse({"error": {"message": "worker died"}})]
        return openai_stream(["fine"])

    s = openai_server(stream_route(events))
    servers.append(s)
    r = run(s.url, input="one\ntwo\n")
    assert r.exit_code == 0, r.output
    assert r.stdout == "par\nfine\n"
    assert f"error: {s.url} reported an error mid-stream: worker died" in r.stderr
    assert [m["content"] for m in messages(s)] == ["two"]  # the failed turn was not kept


def test_tgi_only_server(servers: list[ScriptedServer]) -> None:
    s = ScriptedServer(
        {
            ("GET", "/info"): lambda h, b: h.reply(200, {"model_id": "tgi-model"}),
            ("POST", "/generate_stream"): stream_route(lambda n, b: tgi_stream([" Paris", "."])),
        }
    )
    servers.append(s)
    r = run(s.url, "-m", "The capital of France is")
    assert r.exit_code == 0, r.output
    assert r.stdout == " Paris.\n"
    assert json.loads(s.requests[-1][3])["inputs"] == "The capital of France is"


def test_server_down() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    r = run(url, "-m", "hi")
    assert r.exit_code == 1
    lines = r.stderr.splitlines()
    assert lines[0].startswith(f"error: cannot connect to {url}")
    assert lines[1].startswith("hint: ") and len(lines) == 2


@pytest.mark.parametrize("how", ["flag", "env", "none"])
def test_401_names_the_problem_and_never_the_key(
    how: str, servers: list[ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = healthy_openai(key=KEY)
    servers.append(s)
    args = [s.url, "-m", "hi"]
    if how == "flag":
        args += ["--api-key", "sk-wrong-999"]
    elif how == "env":
        monkeypatch.setenv("LLMOPS_API_KEY", "sk-wrong-999")
    r = run(*args)
    assert r.exit_code == 1
    assert r.stderr.splitlines()[0] == f"error: {s.url}/v1/models answered HTTP 401 Unauthorized"
    assert "sk-wrong-999" not in r.output and KEY not in r.output
    if how != "none":
        assert s.requests[-1][2]["Authorization"] == "Bearer sk-wrong-999"


def test_key_from_env_works(servers: list[ScriptedServer], monkeypatch: pytest.MonkeyPatch) -> None:
    s = healthy_openai(key=KEY)
    servers.append(s)
    monkeypatch.setenv("LLMOPS_API_KEY", KEY)
    r = run(s.url, "-m", "hi")
    assert r.exit_code == 0 and r.stdout == "Hello, world!\n"


def test_5xx_mid_stream_one_shot(servers: list[ScriptedServer]) -> None:
    s = openai_server(
        stream_route(
            lambda n, b: [
                sse(openai_chunk("Hal")),
                sse({"error": {"message": "out of memory", "code": 500}}),
            ]
        )
    )
    servers.append(s)
    r = run(s.url, "-m", "hi")
    assert r.exit_code == 1
    assert r.stdout == "Hal\n"
    assert r.stderr.splitlines()[0] == f"error: {s.url} reported an error mid-stream: out of memory"


def test_503_at_start(servers: list[ScriptedServer]) -> None:
    s = openai_server(lambda h, b: h.reply(503, {"error": "queue is full"}))
    servers.append(s)
    r = run(s.url, "-m", "hi")
    assert r.exit_code == 1
    assert r.stderr.splitlines()[0] == (
        f"error: {s.url}/v1/chat/completions answered HTTP 503 Service Unavailable: queue is full"
    )


def test_malformed_sse(servers: list[ScriptedServer]) -> None:
    s = openai_server(stream_route(lambda n, b: [b"data: <html>oops</html>\n\n"]))
    servers.append(s)
    r = run(s.url, "-m", "hi")
    assert r.exit_code == 1
    assert r.stderr.splitlines()[0] == (
        f"error: {s.url} sent a malformed server-sent event: data '<html>oops</html>' is not JSON"
    )


def test_an_unknown_deployment_name_is_a_usage_error() -> None:
    r = run("my-llama", "-m", "hi")
    assert r.exit_code == 2
    assert "'my-llama' is neither a URL nor a deployment" in r.stderr
    assert "llmops up MODEL" in r.stderr


@pytest.mark.slow
def test_real_backend_answers_paris() -> None:
    from tests.client.servers import real_backend

    url = real_backend().url
    r = run(
        url,
        "-m",
        "What is the capital of France?",
        "--temperature",
        "0",
        "--max-tokens",
        "12",
        "--api-key",
        KEY,
    )
    assert r.exit_code == 0, r.output
    assert "Paris" in r.stdout
