"""`/metrics`: the Prometheus scrape target of the app's own registry.

Here, at the HTTP edge, and not beside `Metrics`: every part of the service and every
command records through `Metrics`, and none of them needs the web framework for that.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from snipix.observability.metrics import Metrics

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus scrape target; no auth (restrict it at the network), not in OpenAPI."""
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
