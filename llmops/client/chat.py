"""A chat conversation with history over one endpoint (``llmops chat``)."""

from __future__ import annotations

from collections.abc import Callable

from llmops.client.protocol import Endpoint, Message, StreamResult, build_request
from llmops.client.stream import Transport, stream_tokens


class ChatSession:
    """The conversation so far; :meth:`send` streams one reply and, if it completes, keeps it."""

    def __init__(
        self,
        endpoint: Endpoint,
        transport: Transport,
        *,
        system: str | None = None,
        max_tokens: int = 512,
        temperature: float | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.transport = transport
        self.system = system
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.history: list[Message] = []
        self.reset()

    def reset(self) -> None:
        """Forget the conversation (the system prompt stays)."""
        self.history = [{"role": "system", "content": self.system}] if self.system else []

    async def send(self, text: str, on_text: Callable[[str], None]) -> str:
        """Send ``text`` as the next user turn; ``on_text`` gets the reply piece by piece.

        Raises:
            EndpointError: the request failed; the history is left as it was.
        """
        messages = [*self.history, {"role": "user", "content": text}]
        body = build_request(
            self.endpoint,
            messages,
            self.max_tokens,
            include_usage=False,
            temperature=self.temperature,
        )
        parts: list[str] = []
        async for piece in stream_tokens(self.transport, self.endpoint, body, StreamResult()):
            if piece:
                parts.append(piece)
                on_text(piece)
        reply = "".join(parts)
        self.history = [*messages, {"role": "assistant", "content": reply}]
        return reply
