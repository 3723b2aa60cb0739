"""Answering a read with JSON the service already holds (a cache entry), as is.

The cached bytes are exactly what the route's response model would serialise, so the hot
read path sends them without a model round trip; `If-None-Match` with the current ETag is a
304 without a body (RFC 9110 §13.1.2: a weak comparison, `*` matches any).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Header
from starlette.responses import Response

from snipix.cache.service import request_outcome

# Longer validators are refused (422) by the routes and left to them by the hot-read lane.
IF_NONE_MATCH_MAX: Final = 1024

IfNoneMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        max_length=IF_NONE_MATCH_MAX,
        description="The ETag the client holds: 304 (no body) when it is still current.",
    ),
]


def _matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def json_response(payload: bytes, *, version: int | None, if_none_match: str | None) -> Response:
    """200 with `payload`, or 304 when the client's copy is current; ETag and X-Cache set."""
    headers: dict[str, str] = {}
    if version is not None:
        headers["ETag"] = f'"{version}"'
    outcome = request_outcome()
    if outcome is not None:
        headers["X-Cache"] = outcome
    if (
        version is not None
        and if_none_match is not None
        and _matches(if_none_match, headers["ETag"])
    ):
        return Response(status_code=304, headers=headers)
    return Response(content=payload, media_type="application/json", headers=headers)
