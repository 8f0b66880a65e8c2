"""The bundled backend on the CPU with SmolLM2, through the official openai and text-generation
clients and raw HTTP: routes, streaming, usage, auth, errors, health and metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

MODEL_NAME = "SmolLM2-135M-Instruct"
API_KEY = "test-key-5f1d2c"
QUESTION: Any = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def server(backend, backend_home: Path) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    srv = backend.start(backend_home, "--context-length", "512", api_key=API_KEY)
    yield srv
    backend.stop(srv)


@pytest.fixture(scope="module")
def oai(server: Any):  # type: ignore[no-untyped-def]
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)


def test_health_was_503_while_loading_then_200(server: Any) -> None:
    statuses = [s for s, _ in server.health_seen]
    assert statuses[-1] == 200
    assert (503, "loading") in server.health_seen, server.health_seen
    assert statuses.index(503) < statuses.index(200)
    assert API_KEY not in server.log()  # the key is never logged


def test_models_lists_the_served_model(oai) -> None:  # type: ignore[no-untyped-def]
    assert [m.id for m in oai.models.list()] == [MODEL_NAME]


def test_chat_completion_answers_paris(oai) -> None:  # type: ignore[no-untyped-def]
    r = oai.chat.completions.create(
        model=MODEL_NAME, messages=QUESTION, max_tokens=16, temperature=0
    )
    assert "Paris" in r.choices[0].message.content
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 5
    assert 0 < r.usage.completion_tokens <= 16
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_streaming_matches_non_streaming(oai) -> None:  # type: ignore[no-untyped-def]
    full = oai.chat.completions.create(
        model=MODEL_NAME, messages=QUESTION, max_tokens=16, temperature=0
    )
    chunks = list(
        oai.chat.completions.create(
            model=MODEL_NAME,
            messages=QUESTION,
            max_tokens=16,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and all(f is None for f in finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_completions_with_stop_sequence(oai) -> None:  # type: ignore[no-untyped-def]
    r = oai.completions.create(
        model=MODEL_NAME, prompt="The capital of France is", max_tokens=12, temperature=0
    )
    assert "Paris" in r.choices[0].text
    stopped = oai.completions.create(
        model=MODEL_NAME,
        prompt="The capital of France is",
        max_tokens=12,
        temperature=0,
        stop=["."],
    )
    assert stopped.choices[0].finish_reason == "stop"
    assert "." not in stopped.choices[0].text
    assert r.choices[0].text.startswith(stopped.choices[0].text)
    assert stopped.usage.completion_tokens < r.usage.completion_tokens


def test_completions_streaming_and_length_limit(oai) -> None:  # type: ignore[no-untyped-def]
    chunks = list(
        oai.completions.create(
            model=MODEL_NAME, prompt="Once upon a time", max_tokens=8, temperature=0, stream=True
        )
    )
    full = oai.completions.create(
        model=MODEL_NAME, prompt="Once upon a time", max_tokens=8, temperature=0
    )
    assert "".join(c.choices[0].text for c in chunks) == full.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"
    assert full.usage.completion_tokens == 8


def test_seeded_sampling_is_reproducible(oai) -> None:  # type: ignore[no-untyped-def]
    def ask(seed: int) -> str:
        r = oai.chat.completions.create(
            model=MODEL_NAME,
            messages=[{"role": "user", "content": "Tell me a story about a dragon."}],
            max_tokens=16,
            temperature=1.0,
            top_p=0.95,
            seed=seed,
        )
        return str(r.choices[0].message.content)

    assert ask(7) == ask(7)
    assert len({ask(s) for s in (1, 2, 3)}) > 1


def test_sampling_defaults_come_from_the_recipe(oai, server: Any) -> None:  # type: ignore[no-untyped-def]
    """The bundled GGUF ships no generation_config: a request without temperature/top_p gets
    the model card's 0.2/0.9 (recipes/smollm.yaml), so a flag-less chat answers sensibly."""
    assert "request defaults: temperature 0.2, top_p 0.9 (from recipes/smollm.yaml" in server.log()

    def ask(seed: int, **sampling: float) -> str:
        r = oai.chat.completions.create(
            model=MODEL_NAME, messages=QUESTION, max_tokens=24, seed=seed, **sampling
        )
        return str(r.choices[0].message.content)

    answers = [ask(seed) for seed in (1, 2, 3, 4, 5)]
    assert answers[:2] == [ask(seed, temperature=0.2, top_p=0.9) for seed in (1, 2)]
    # sensible without flags: most answers name Paris (a 135M model at 0.2 still wanders)
    assert sum("Paris" in a for a in answers) >= 3, answers
    assert any(ask(s) != ask(s, temperature=1.0, top_p=1.0) for s in (1, 2, 3))


def test_text_generation_client_generate_and_stream(server: Any) -> None:
    from text_generation import Client

    client = Client(server.url, headers=server.headers, timeout=120)
    r = client.generate("The capital of France is", max_new_tokens=8)
    assert "Paris" in r.generated_text
    assert r.details.finish_reason.value in ("length", "eos_token")
    assert r.details.generated_tokens == len(r.details.tokens) == 8
    streamed = list(client.generate_stream("The capital of France is", max_new_tokens=8))
    assert "".join(s.token.text for s in streamed if not s.token.special) == r.generated_text
    assert streamed[-1].generated_text == r.generated_text
    assert streamed[-1].details is not None and streamed[-1].details.generated_tokens == 8
    assert all(s.details is None for s in streamed[:-1])


def test_tgi_generate_routes_and_info(server: Any) -> None:
    import httpx

    body = {"inputs": "The capital of France is", "parameters": {"max_new_tokens": 6}}
    r = httpx.post(f"{server.url}/generate", json=body, headers=server.headers, timeout=60)
    assert r.status_code == 200 and "Paris" in r.json()["generated_text"]
    with httpx.stream(
        "POST", f"{server.url}/generate_stream", json=body, headers=server.headers, timeout=60
    ) as s:
        events = [json.loads(line[5:]) for line in s.iter_lines() if line.startswith("data:")]
    assert events[-1]["generated_text"] == r.json()["generated_text"]
    info = httpx.get(f"{server.url}/info", timeout=10).json()
    assert info["model_id"] == MODEL_NAME and info["max_total_tokens"] == 512


def test_auth_refused_without_or_with_a_wrong_key(server: Any) -> None:
    import httpx
    import openai
    from text_generation import Client
    from text_generation.errors import UnknownError

    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.chat.completions.create(model=MODEL_NAME, messages=QUESTION, max_tokens=2)
    assert exc.value.status_code == 401
    assert exc.value.body["code"] == "invalid_api_key"  # type: ignore[index]
    for path in ("/v1/completions", "/v1/chat/completions", "/generate", "/generate_stream"):
        r = httpx.post(f"{server.url}{path}", json={}, timeout=10)
        assert r.status_code == 401, path
    with pytest.raises(UnknownError):
        Client(server.url).generate("hi", max_new_tokens=2)
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200  # stays open


def _openai_error(r) -> dict:  # type: ignore[no-untyped-def,type-arg]
    body = r.json()
    assert set(body) == {"error"}
    assert {"message", "type", "param", "code"} <= set(body["error"])
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def test_malformed_json_is_a_400_in_openai_shape(server: Any) -> None:
    import httpx

    r = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={**server.headers, "Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 400
    assert _openai_error(r)["code"] == "invalid_json"


def test_unknown_model_is_a_404_in_openai_shape(oai, server: Any) -> None:  # type: ignore[no-untyped-def]
    import httpx
    import openai

    with pytest.raises(openai.NotFoundError) as exc:
        oai.chat.completions.create(model="gpt-9", messages=QUESTION, max_tokens=2)
    assert exc.value.body["code"] == "model_not_found"  # type: ignore[index]
    r = httpx.post(
        f"{server.url}/v1/completions",
        json={"model": "gpt-9", "prompt": "hi"},
        headers=server.headers,
        timeout=10,
    )
    assert r.status_code == 404 and _openai_error(r)["param"] == "model"


def test_prompt_longer_than_context_is_a_400(oai, server: Any) -> None:  # type: ignore[no-untyped-def]
    import httpx
    import openai

    long_prompt = "word " * 700  # > 512 tokens of context
    with pytest.raises(openai.BadRequestError) as exc:
        oai.completions.create(model=MODEL_NAME, prompt=long_prompt, max_tokens=4)
    assert exc.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
    r = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": MODEL_NAME, "messages": [{"role": "user", "content": long_prompt}]},
        headers=server.headers,
        timeout=10,
    )
    assert r.status_code == 400 and "512" in _openai_error(r)["message"]


def test_invalid_parameters_are_400s(server: Any) -> None:
    import httpx

    for bad in (
        {"messages": QUESTION, "temperature": "hot"},
        {"messages": QUESTION, "max_tokens": 0},
        {"messages": QUESTION, "n": 2},
        {"messages": "hi"},
    ):
        r = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": MODEL_NAME, **bad},
            headers=server.headers,
            timeout=10,
        )
        assert r.status_code == 400, bad
        _openai_error(r)


def test_metrics_in_prometheus_format(server: Any) -> None:
    import httpx

    r = httpx.get(f"{server.url}/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = server.metrics()
    assert m["llmops_ready"] == 1
    assert m["llmops_generated_tokens_total"] > 0
    assert m["llmops_prompt_tokens_total"] > 0
    assert m['llmops_requests_total{route="/v1/chat/completions",status="200"}'] >= 1
    assert m['llmops_requests_total{route="/v1/chat/completions",status="401"}'] >= 1
    assert m["llmops_time_to_first_token_seconds_count"] >= 1
    assert "llmops_queue_depth" in m and "llmops_batch_size_count" in m
    for line in r.text.splitlines():  # every sample line is NAME[{labels}] VALUE
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])
