"""The original web app's response envelope, for the routes served at its original paths.

The Snipix web app reads every JSON answer through an envelope: success
`{"success": true, "data": ..., "message": "...", "error": null}`, failure
`{"success": false, "error": "<short message>", "details": {...}, "timestamp": "..."}`.
`/api/v1` keeps the service's own error shape; which shape an error gets is decided by the
request path alone (`is_compat_path`), so the one error handler in `snipix.errors` serves both.
The failure body also carries `code` and `request_id` (extra members the web app ignores), so
logs, metrics and support see the same error codes on both surfaces.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel

from snipix.api.openapi import documented
from snipix.clock import iso_instant

# The original app's path roots (API.md, "The original web app's API").
LEGACY_PREFIXES: Final = ("/projects", "/timeline", "/transcriptions", "/auth", "/media")


def is_compat_path(path: str) -> bool:
    """True for a path of the original web app's API (`/projects`, `/auth/login`, ...)."""
    return any(path == p or path.startswith(p + "/") for p in LEGACY_PREFIXES)


def success(data: Any, message: str = "") -> dict[str, Any]:
    """The success envelope around `data` (already JSON-ready)."""
    return {"success": True, "data": data, "message": message, "error": None}


def failure(code: str, message: str, details: Any, request_id: str | None) -> dict[str, Any]:
    """The failure envelope; `code` first so the access middleware reads it without parsing."""
    return {
        "success": False,
        "code": code,
        "error": message,
        # The web app's authService reads `message` on failures (refresh, profile, ...).
        "message": message,
        "details": details if details is not None else {},
        "request_id": request_id,
        "timestamp": iso_instant(datetime.now(UTC)),
    }


class FailureEnvelope(BaseModel):
    """The failure envelope (`failure`) as OpenAPI documents it for the web app's paths."""

    success: Literal[False]
    code: str
    error: str
    message: str
    details: Any
    request_id: str | None
    timestamp: str


# What any route may answer (documented app-wide for /api/v1 in the service's error shape):
# invalid input, a body over the size limit, a rate limit, an unexpected error, no database.
_ANY_ROUTE: Final = {
    413: "The request body is too large.",
    422: "Invalid request.",
    429: "Too many requests; see Retry-After.",
    500: "Unexpected error.",
    503: "Unavailable; see Retry-After.",
}


def failure_responses(described: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for routes of the web app's paths: every error, the 422/500/503
    any route may answer included, documented in the failure envelope they are sent in."""
    return {
        code: documented(FailureEnvelope, description)
        for code, description in {**_ANY_ROUTE, **(described or {})}.items()
    }
