"""``GET /health`` (no token needed) and ``GET /metrics`` (Prometheus text)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import __version__
from .deps import store_of
from .schemas import HealthOut

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, summary="Liveness: version and backend")
async def health(request: Request) -> HealthOut:
    """Always 200 while the service runs."""
    return HealthOut(status="ok", version=__version__, backend=store_of(request).backend.name)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
    summary="Prometheus metrics of this worker",
)
async def metrics(request: Request) -> Response:
    """Requests by route and status, bytes in and out, latencies, store errors."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
