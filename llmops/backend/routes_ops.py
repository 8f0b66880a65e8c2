"""The backend's operations routes, open without a key: ``GET /health`` (503 while loading or
after a failure, 200 when ready) and ``GET /metrics`` (Prometheus text)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from llmops.backend.api import RETRY_AFTER_S, ServerState


def ops_routes(state: ServerState) -> APIRouter:
    """``/health`` and ``/metrics`` over ``state``."""
    router = APIRouter()

    @router.get("/health")
    async def health() -> Response:
        if state.ready:
            return JSONResponse({"status": "ok"})
        if state.error or (state.engine is not None and state.engine.error is not None):
            return JSONResponse({"status": "error", "error": state.error}, status_code=503)
        return JSONResponse(
            {"status": "loading"}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
        )

    @router.get("/metrics")
    async def metrics() -> Response:
        if state.engine is not None:
            waiting, active = state.engine.load()
            state.metrics.set_load(queue_depth=waiting, active=active)
        return PlainTextResponse(
            state.metrics.render(ready=state.ready),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    return router
