"""An incremental server-sent-events decoder (the WHATWG "event stream" format), bytes in.

It follows the spec where servers follow it and tolerates what real servers do instead: CRLF
line endings, ``data:`` without the space, keep-alive comments, ``id:``/``retry:`` fields,
an event split across many reads, and a last event with no blank line before the stream ends.
llama.cpp's server reports stream errors as an ``error:`` field (not in the spec); it is read
as an ``error`` event. Interpreting the ``data`` payloads (JSON or not) is the caller's job.
"""

from __future__ import annotations

#: ``(event type, data)``; the type is ``"message"`` unless an ``event:`` field set one.
SseEvent = tuple[str, str]


class SseDecoder:
    """Feed it bytes as they arrive; it returns the events those bytes completed."""

    __slots__ = ("_buf", "_data", "_event")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event = ""

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Decode ``chunk``; returns the events completed by it (often one, maybe none)."""
        buf = self._buf + chunk if self._buf else chunk
        lines = buf.split(b"\n")
        self._buf = lines.pop()  # an incomplete last line waits for more bytes
        out: list[SseEvent] = []
        for line in lines:
            self._line(line, out)
        return out

    def close(self) -> list[SseEvent]:
        """The stream ended: flush an unterminated last line and a pending event."""
        out: list[SseEvent] = []
        if self._buf:
            self._line(self._buf, out)
            self._buf = b""
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[SseEvent]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:  # a blank line dispatches the pending event
            if self._data:
                out.append((self._event or "message", "\n".join(self._data)))
                self._data = []
            self._event = ""
            return
        if line[0] == 0x3A:  # ":" a comment (keep-alive)
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace").strip()
        elif name == b"error":  # llama.cpp: "error: {json}"
            self._event = "error"
            self._data.append(value.decode("utf-8", "replace"))
        # "id", "retry" and unknown field names are ignored, as the spec says
