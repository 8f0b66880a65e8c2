"""The SSE decoder against what real servers send, fed whole and byte by byte."""

from __future__ import annotations

import pytest

from llmops.client.sse import SseDecoder


def decode(data: bytes, step: int | None = None) -> list[tuple[str, str]]:
    d = SseDecoder()
    out = []
    if step is None:
        out += d.feed(data)
    else:
        for i in range(0, len(data), step):
            out += d.feed(data[i : i + step])
    return out + d.close()


@pytest.mark.parametrize("step", [None, 1, 3, 7])
def test_events_survive_any_split(step: int | None) -> None:
    data = (
        'data: {"a": 1}\n\ndata:{"b":"é"}\r\n\r\n: keep-alive\n\nid: 7\nretry: 10\ndata: [DONE]\n\n'
    )
    assert decode(data.encode(), step) == [
        ("message", '{"a": 1}'),
        ("message", '{"b":"é"}'),
        ("message", "[DONE]"),
    ]


def test_multiline_data_joined_with_newline() -> None:
    assert decode(b"data: line1\ndata: line2\n\n") == [("message", "line1\nline2")]


def test_event_type_and_reset_after_dispatch() -> None:
    data = b'event: error\ndata: {"error": "boom"}\n\ndata: x\n\n'
    assert decode(data) == [("error", '{"error": "boom"}'), ("message", "x")]


def test_llama_cpp_error_field_is_an_error_event() -> None:
    assert decode(b'error: {"code": 500, "message": "oops"}\n\n') == [
        ("error", '{"code": 500, "message": "oops"}')
    ]


def test_unterminated_last_event_is_flushed_on_close() -> None:
    assert decode(b'data: {"last": true}') == [("message", '{"last": true}')]


def test_garbage_lines_and_unknown_fields_are_ignored() -> None:
    assert decode(b"hello there\nfoo: bar\n\ndata: ok\n\n") == [("message", "ok")]


def test_nothing_until_blank_line() -> None:
    d = SseDecoder()
    assert d.feed(b"data: partial") == []
    assert d.feed(b"\n") == []
    assert d.feed(b"\n") == [("message", "partial")]
