"""The HTTP front of the bundled backend: OpenAI- and TGI-compatible routes over the engine.

Routes: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions`` (streaming
as OpenAI SSE chunks, ``data: [DONE]`` last); TGI's ``POST /``, ``/generate``,
``/generate_stream`` and ``GET /info``; ``GET /health`` (503 while loading, 200 when ready) and
``GET /metrics`` (Prometheus text). With an API key set, every generation route wants
``Authorization: Bearer KEY``; health, info, models and metrics stay open, as in TGI.

This module builds the app and runs it; the routes are in ``routes_openai`` (``/v1/...``),
``routes_tgi`` (TGI's) and ``routes_ops`` (health, metrics), over the shared
:class:`~llmops.backend.api.ServerState` and plumbing in ``api``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from llmops import __version__
from llmops.backend.api import ServerState
from llmops.backend.config import ServerConfig
from llmops.backend.engine import Engine
from llmops.backend.loader import LoadedModel, load_model
from llmops.backend.routes_openai import openai_routes
from llmops.backend.routes_ops import ops_routes
from llmops.backend.routes_tgi import tgi_routes

log = logging.getLogger("llmops.backend")


def create_app(
    config: ServerConfig, *, loader: Callable[..., LoadedModel] = load_model
) -> tuple[FastAPI, ServerState]:
    """Build the FastAPI app; the model loads in a background thread when the app starts."""
    state = ServerState(config=config)

    def _load() -> None:
        try:
            if config.threads:
                import torch

                torch.set_num_threads(config.threads)
            t0 = time.monotonic()
            loaded = loader(
                config.model,
                precision=config.precision,
                device=config.device,
                served_name=config.served_model_name,
                context_length=config.context_length,
            )
            engine = Engine(
                loaded,
                max_batch_size=config.max_batch_size,
                max_queue=config.max_queue,
                metrics=state.metrics,
                kv=config.kv_cache,
            )
            engine.start()
            state.loaded, state.engine = loaded, engine
            log.info(
                "ready: %s on %s (%s) in %.1fs at http://%s:%d/v1",
                loaded.served_name,
                loaded.device,
                loaded.dtype,
                time.monotonic() - t0,
                config.host,
                config.port,
            )
            log.info("KV cache: %s (%s)", engine.kv_kind, engine.kv_reason)
            if loaded.sampling:
                log.info(
                    "request defaults: %s (from %s; a request's own values win)",
                    ", ".join(f"{k} {v:g}" for k, v in loaded.sampling),
                    loaded.sampling_source,
                )
        except Exception as exc:
            state.error = f"{type(exc).__name__}: {exc}"
            hint = getattr(exc, "hint", None)
            log.error(
                "loading %s failed: %s%s", config.model, exc, f" (hint: {hint})" if hint else ""
            )
            if state.on_fatal is not None:
                state.on_fatal()

    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=_load, name="llmops-loader", daemon=True).start()
        yield
        if state.engine is not None:
            state.engine.stop()

    app = FastAPI(title="llmops backend", version=__version__, lifespan=lifespan)  # type: ignore[arg-type]
    app.state.llmops = state
    app.include_router(openai_routes(state))
    app.include_router(tgi_routes(state))
    app.include_router(ops_routes(state))
    return app, state


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("llmops.backend")
    logger.handlers[:] = [handler]
    level = os.environ.get("LLMOPS_LOG_LEVEL", "INFO").upper()
    logger.setLevel(level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO")
    logger.propagate = False


def run_server(config: ServerConfig) -> int:
    """Serve until interrupted. Returns 0, or 1 when the model failed to load."""
    import uvicorn

    configure_logging()
    log.info("starting %r", config)
    app, state = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
    )

    def fatal() -> None:
        server.should_exit = True

    state.on_fatal = fatal
    server.run()
    return 1 if state.error else 0
