"""Clients of inference endpoints: OpenAI chat completions and TGI streaming, chat and bench.

Nothing here is imported when the CLI starts; ``llmops chat`` and ``llmops bench`` import it
inside their command bodies. ``httpx`` is imported only by :mod:`llmops.client.transport`.
"""
