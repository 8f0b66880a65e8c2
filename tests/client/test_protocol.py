"""Pure parts: request bodies, reading OpenAI/TGI chunks, targets, percentiles, summaries."""

from __future__ import annotations

import json

import pytest

from llmops.client.prompts import load_prompts
from llmops.client.protocol import (
    OPENAI,
    TGI,
    Endpoint,
    StreamResult,
    build_request,
    decode_payload,
    read_openai,
    read_tgi,
    tgi_prompt,
)
from llmops.client.records import RequestRecord
from llmops.client.stats import distribution, percentile
from llmops.client.summary import summarize
from llmops.client.targets import normalize_url, resolve_target
from llmops.errors import MalformedStreamError, StreamInterrupted, UsageError
from llmops.run.state import resolve_deployment

URL = "http://h:1"


def test_openai_body_asks_for_usage_and_streams() -> None:
    ep = Endpoint(URL, OPENAI, "m")
    body = json.loads(build_request(ep, [{"role": "user", "content": "hi"}], 7))
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_tgi_body_and_transcript() -> None:
    ep = Endpoint(URL, TGI, "m")
    one = json.loads(build_request(ep, [{"role": "user", "content": "hi"}], 5))
    assert one == {"inputs": "hi", "parameters": {"max_new_tokens": 5, "details": True}}
    msgs = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert (
        tgi_prompt(msgs) == "System: be brief\n\nUser: a\n\nAssistant: b\n\nUser: c\n\nAssistant:"
    )
    assert json.loads(build_request(ep, msgs, 5))["parameters"]["stop"] == ["\nUser:"]


def test_read_openai_chunks() -> None:
    r = StreamResult()
    assert (
        read_openai(
            URL, "message", {"choices": [{"delta": {"role": "assistant", "content": ""}}]}, r
        )
        is None
    )
    assert read_openai(URL, "message", {"choices": [{"delta": {"content": "Hi"}}]}, r) == "Hi"
    assert (
        read_openai(URL, "message", {"choices": [{"delta": {"reasoning_content": "hm"}}]}, r) == ""
    )
    assert (
        read_openai(URL, "message", {"choices": [{"delta": {}, "finish_reason": "length"}]}, r)
        is None
    )
    usage = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9}}
    assert read_openai(URL, "message", usage, r) is None
    assert (r.finish_reason, r.prompt_tokens, r.completion_tokens) == ("length", 3, 9)


@pytest.mark.parametrize(
    "obj",
    [
        {"error": {"message": "CUDA out of memory", "type": "server_error"}},
        {"object": "error", "message": "CUDA out of memory"},
    ],
)
def test_openai_error_chunk_is_stream_interrupted(obj: dict[str, object]) -> None:
    with pytest.raises(
        StreamInterrupted, match="http://h:1 reported an error mid-stream: CUDA out of memory"
    ):
        read_openai(URL, "message", obj, StreamResult())


def test_read_tgi_tokens_details_and_errors() -> None:
    r = StreamResult()
    tok = {
        "token": {"id": 1, "text": " Paris", "special": False},
        "generated_text": None,
        "details": None,
    }
    assert read_tgi(URL, "message", tok, r) == " Paris"
    last = {
        "token": {"id": 2, "text": "</s>", "special": True},
        "generated_text": " Paris",
        "details": {"finish_reason": "eos_token", "generated_tokens": 2},
    }
    assert read_tgi(URL, "message", last, r) == ""
    assert (r.done, r.completion_tokens, r.finish_reason) == (True, 2, "eos_token")
    with pytest.raises(StreamInterrupted, match="Request failed during generation"):
        read_tgi(
            URL,
            "message",
            {"error": "Request failed during generation", "error_type": "generation"},
            r,
        )


def test_decode_payload() -> None:
    assert decode_payload(URL, '{"a": 1}') == [{"a": 1}]
    assert decode_payload(URL, '{"a": 1}\n{"b": 2}') == [{"a": 1}, {"b": 2}]
    with pytest.raises(
        MalformedStreamError,
        match=r"http://h:1 sent a malformed server-sent event: data '\{not json' is not JSON",
    ):
        decode_payload(URL, "{not json")


def test_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    assert normalize_url("127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert normalize_url("https://x.example/v1/") == "https://x.example"
    monkeypatch.delenv("LLMOPS_API_KEY", raising=False)
    assert resolve_target("localhost:9").api_key is None
    monkeypatch.setenv("LLMOPS_API_KEY", "env-key")
    t = resolve_target("http://a:1", None)
    assert t.api_key == "env-key" and "env-key" not in repr(t)
    assert resolve_target("http://a:1", "flag-key").api_key == "flag-key"
    with pytest.raises(UsageError, match="'my-llama' is neither a URL nor a deployment"):
        resolve_target("my-llama", None, resolve_deployment)


def test_percentiles_interpolate_like_numpy() -> None:
    v = [float(x) for x in range(1, 101)]
    assert percentile(v, 50) == pytest.approx(50.5)
    assert percentile(v, 90) == pytest.approx(90.1)
    assert percentile(v, 99) == pytest.approx(99.01)
    assert percentile([4.0], 99) == 4.0
    d = distribution([0.001, 0.003, 0.002], 1000)
    assert d is not None and (d.count, d.p50, d.min, d.max) == (
        3,
        pytest.approx(2),
        pytest.approx(1),
        pytest.approx(3),
    )
    assert distribution([]) is None


def _rec(
    start: float, times: list[float], end: float, tokens: int | None, text: str = ""
) -> RequestRecord:
    r = RequestRecord()
    r.start_s, r.token_times, r.end_s, r.server_tokens, r.text = start, times, end, tokens, text
    return r


def test_summarize_counts_timing_and_errors() -> None:
    ok1 = _rec(0.0, [0.1, 0.2, 0.3], 0.3, 3)
    ok2 = _rec(1.0, [1.2, 1.4], 1.4, 2)
    bad = RequestRecord()
    bad.error_kind, bad.error_message = (
        "http_5xx",
        "http://h:1/v1/chat/completions answered HTTP 503",
    )
    lv = summarize([ok1, ok2, bad], concurrency=2, duration_s=2.0)
    assert (lv.requests, lv.ok, lv.failed, lv.errors) == (3, 2, 1, {"http_5xx": 1})
    assert lv.error_examples["http_5xx"].endswith("HTTP 503")
    assert lv.output_tokens == 5 and lv.output_throughput_tok_s == pytest.approx(2.5)
    assert lv.request_throughput_rps == pytest.approx(1.0)
    assert lv.token_source == "usage"
    assert (
        lv.ttft_ms is not None
        and lv.ttft_ms.min == pytest.approx(100)
        and lv.ttft_ms.max == pytest.approx(200)
    )
    assert lv.itl_ms is not None and lv.itl_ms.count == 3 and lv.itl_ms.max == pytest.approx(200)
    # decode speed: (n-1) / (end - first token): 2/0.2 = 10 and 1/0.2 = 5
    assert lv.request_output_tok_s is not None
    assert sorted([lv.request_output_tok_s.min, lv.request_output_tok_s.max]) == [
        pytest.approx(5),
        pytest.approx(10),
    ]


def test_summarize_token_fallbacks() -> None:
    recs = [_rec(0.0, [0.1, 0.2, 0.3, 0.4], 0.4, None, "a b c d e f")]
    assert summarize(recs, concurrency=1, duration_s=1).output_tokens == 4  # events
    lv = summarize(recs, concurrency=1, duration_s=1, count_tokens=lambda t: len(t.split()))
    assert (lv.output_tokens, lv.token_source) == (6, "tokenizer")


def test_load_prompts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "p.txt"
    f.write_text(
        'plain one\n\n{"prompt": "two"}\n{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}\n"three"\n'
    )
    got = load_prompts(f)
    assert [p[-1]["content"] for p in got] == ["plain one", "two", "u", "three"]
    assert got[2][0] == {"role": "system", "content": "s"}
    f.write_text('{"text": "x"}\n')
    with pytest.raises(UsageError, match="line 1 is JSON but has no 'prompt' or 'messages'"):
        load_prompts(f)
    with pytest.raises(UsageError, match="cannot be read"):
        load_prompts(tmp_path / "missing.txt")
