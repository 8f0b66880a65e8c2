"""llmops: provision self-hosted LLM inference hosts."""

__version__ = "0.1.0"
