"""The service routes of `harness serve`: health (OVMS's KServe paths), the model list and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from harness.serve.api.state import State

router = APIRouter()


@router.get("/v2/health/ready")
@router.get("/v2/health/live")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v2")
async def server_metadata() -> dict[str, Any]:
    """KServe v2 server metadata, as OVMS answers it (name, version, extensions)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("ov-genai-harness")
    except PackageNotFoundError:
        ours = "unknown"
    return {"name": "harness serve", "version": ours, "extensions": []}


@router.get("/v3/models")
@router.get("/v1/models")
async def models(state: State) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": state.name, "object": "model", "owned_by": "harness"}]}


@router.get("/metrics")
async def prometheus(state: State) -> PlainTextResponse:
    return PlainTextResponse(state.metrics.exposition(), media_type="text/plain; version=0.0.4")
