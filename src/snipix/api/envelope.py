"""The original web app's response envelope, for the routes served at its original paths.

The Snipix web app reads every JSON answer through an envelope: success
`{"success": true, "data": ..., "message": "...", "error": null}`, failure
`{"success": false, "error": "<short message>", "details": {...}, "timestamp": "..."}`.
`/api/v1` keeps the service's own error shape; which shape an error gets is decided by the
request path alone (`is_legacy_path`), so the one error handler in `snipix.errors` serves both.
The failure body also carries `code` and `request_id` (extra members the web app ignores), so
logs, metrics and support see the same error codes on both surfaces.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

# The original app's path roots (API.md, "The original web app's API").
LEGACY_PREFIXES: Final = ("/projects", "/timeline", "/transcriptions", "/auth", "/media")


def is_legacy_path(path: str) -> bool:
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
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
