"""The HTTP and framework floors: the same response bytes as `GET /api/v1/projects/{id}`,
served by uvicorn exactly as `snipix serve` runs it, without the service behind them.

    uvicorn floors:bare --app-dir benchmarks        # a bare ASGI callable (the HTTP floor)
    uvicorn floors:framework --app-dir benchmarks   # a one-route FastAPI app (the framework floor)

The body is read once at import from the file named by BENCH_BODY_FILE.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response

_BODY = Path(os.environ.get("BENCH_BODY_FILE", "/dev/null")).read_bytes()
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_BODY)).encode()),
    (b"etag", b'"1"'),
]


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The least an ASGI app can do: answer the bytes."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


framework = FastAPI()


@framework.get("/api/v1/projects/{project_id}")
async def project(project_id: str) -> Response:
    """One FastAPI route returning the same bytes from memory."""
    return Response(content=_BODY, media_type="application/json", headers={"ETag": '"1"'})
