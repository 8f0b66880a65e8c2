"""The bundled backend's routers, in process, over a scripted engine (no model, no torch run).

``create_app`` mounts the OpenAI, TGI and ops routers on one shared state; these tests pin what
the split must keep: every route and method, the key on generation routes only, each family's
error shape and status (401, 503 with Retry-After, 500), and the request counter. The real
model's answers are pinned by tests/e2e/test_backend_api.py and tests/client/.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from llmops.backend.config import ServerConfig  # noqa: E402
from llmops.backend.engine import Event, GenRequest, QueueFull  # noqa: E402
from llmops.backend.loader import LoadedModel  # noqa: E402
from llmops.backend.server import create_app  # noqa: E402

KEY = "sk-test"
GENERATION = {
    "/v1/completions": ("openai", {"model": "m", "prompt": "hi"}),
    "/v1/chat/completions": (
        "openai",
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    ),
    "/generate": ("tgi", {"inputs": "hi"}),
    "/generate_stream": ("tgi", {"inputs": "hi"}),
    "/": ("tgi", {"inputs": "hi"}),
}
OPEN = ("/v1/models", "/info", "/health", "/metrics")


class Tokenizer:
    chat_template = "{{ messages }}"

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [ord(c) % 50 for c in text]

    def apply_chat_template(self, convo: list[dict[str, str]], **_: Any) -> list[int]:
        return [1] * sum(len(m["content"]) + 1 for m in convo)


class ScriptedEngine:
    """Answers every request with two tokens, or an error event, or refuses it as full."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.error: str | None = None

    def submit(self, req: GenRequest) -> None:
        if self.mode == "full":
            raise QueueFull()

        def answer() -> None:
            if self.mode == "error":
                req._post(Event("error", text="boom"))
                return
            for i in range(2):
                req._post(Event("token", text=f"t{i}", token_id=i, logprob=-0.5))
            req._post(
                Event(
                    "finish",
                    finish_reason="length",
                    stop_kind="length",
                    full_text="t0t1",
                    prompt_tokens=len(req.prompt_ids),
                    completion_tokens=2,
                )
            )

        threading.Thread(target=answer, daemon=True).start()

    def load(self) -> tuple[int, int]:
        return (0, 0)

    def stop(self) -> None:
        pass


def client(key: str | None = None, *, mode: str | None = "ok", error: str | None = None):  # type: ignore[no-untyped-def]
    """A client of the app (its lifespan, which would load a model, is not run); ``mode``
    None leaves the model loading."""
    app, state = create_app(ServerConfig(model="m", api_key=key))
    if mode is not None:
        state.loaded = LoadedModel(
            model=None,
            tokenizer=Tokenizer(),
            served_name="served",
            device="cpu",
            dtype="fp32",
            context_length=64,
            eos_token_ids=frozenset(),
            source="test",
        )
        state.engine = ScriptedEngine(mode)  # type: ignore[assignment]
    state.error = error
    return TestClient(app), state


def test_every_route_is_mounted_with_its_method() -> None:
    c, _ = client()
    paths = c.app.openapi()["paths"]  # type: ignore[attr-defined]
    want = dict.fromkeys(GENERATION, "post") | dict.fromkeys(OPEN, "get")
    assert {p: next(iter(ops)) for p, ops in paths.items()} == want


@pytest.mark.parametrize("path", list(GENERATION))
def test_generation_wants_the_key_in_its_familys_shape(path: str) -> None:
    style, body = GENERATION[path]
    c, _ = client(KEY)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}):
        r = c.post(path, json=body, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        if style == "openai":
            assert r.json()["error"]["code"] == "invalid_api_key"
        else:
            assert r.json()["error_type"] == "authentication"
    assert c.post(path, json=body, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_the_open_routes_want_no_key() -> None:
    c, _ = client(KEY)
    for path in OPEN:
        assert c.get(path).status_code == 200, path


def test_answers_of_each_family() -> None:
    c, _ = client()
    r = c.post("/v1/completions", json=GENERATION["/v1/completions"][1]).json()
    assert r["object"] == "text_completion" and r["model"] == "served"
    assert r["choices"][0]["text"] == "t0t1" and r["usage"]["completion_tokens"] == 2
    r = c.post("/v1/chat/completions", json=GENERATION["/v1/chat/completions"][1]).json()
    assert r["choices"][0]["message"] == {"role": "assistant", "content": "t0t1"}
    stream = c.post("/v1/completions", json={"model": "m", "prompt": "hi", "stream": True})
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.text.rstrip().endswith("data: [DONE]")
    r = c.post("/generate", json={"inputs": "hi", "parameters": {"return_full_text": True}})
    assert r.json()["generated_text"] == "hit0t1"
    assert [t["text"] for t in r.json()["details"]["tokens"]] == ["t0", "t1"]
    assert c.post("/", json={"inputs": "hi"}).json()[0]["generated_text"] == "t0t1"
    assert '"generated_text": "t0t1"' in c.post("/", json={"inputs": "hi", "stream": True}).text
    assert c.get("/v1/models").json()["data"][0]["max_model_len"] == 64
    assert c.get("/info").json()["max_total_tokens"] == 64


def test_loading_is_503_with_retry_after_and_a_failure_says_why() -> None:
    c, _ = client(mode=None)
    r = c.get("/health")
    assert r.status_code == 503 and r.json() == {"status": "loading"}
    assert r.headers["retry-after"] == "2"
    r = c.post("/v1/completions", json=GENERATION["/v1/completions"][1])
    assert r.status_code == 503 and r.json()["error"]["code"] == "model_loading"
    assert r.headers["retry-after"] == "2"
    r = c.post("/generate", json={"inputs": "hi"})
    assert r.status_code == 503 and r.json()["error_type"] == "overloaded"
    c, _ = client(mode=None, error="RuntimeError: no model")
    r = c.get("/health")
    assert r.status_code == 503 and r.json() == {
        "status": "error",
        "error": "RuntimeError: no model",
    }
    assert "retry-after" not in r.headers


def test_a_full_queue_is_503_and_a_failed_generation_500() -> None:
    c, _ = client(mode="full")
    r = c.post("/v1/completions", json=GENERATION["/v1/completions"][1])
    assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded"
    assert r.headers["retry-after"] == "2"
    assert c.post("/generate", json={"inputs": "hi"}).json()["error_type"] == "overloaded"
    c, _ = client(mode="error")
    r = c.post("/v1/completions", json=GENERATION["/v1/completions"][1])
    assert r.status_code == 500 and r.json()["error"]["message"] == "Generation failed: boom"
    r = c.post("/generate", json={"inputs": "hi"})
    assert r.status_code == 500 and r.json()["error_type"] == "generation"


def test_requests_are_counted_by_route_and_status() -> None:
    c, _ = client()
    c.post("/v1/completions", json=GENERATION["/v1/completions"][1])
    c.post("/generate", json={"inputs": ""})
    text = c.get("/metrics").text
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert any('"/v1/completions"' in line and '"200"' in line for line in lines), text
    assert any('"/generate"' in line and '"422"' in line for line in lines), text
