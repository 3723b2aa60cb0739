"""One error vocabulary for the whole service.

Domain code raises a `SnipixError` subclass: a status, a stable code and a message written
for a person. Nothing here knows about HTTP requests; the edge renders these errors
(`snipix.api.errors`). Driver text, host lists and stack traces stay in the (redacted) log,
never in a message.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pymongo.errors import (
    ExecutionTimeout,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

# How long a client should wait before retrying after a 503: long enough for a replica-set
# election (typically under 12 s on Atlas) to finish.
DATABASE_RETRY_AFTER_S = 5


class SnipixError(Exception):
    """Base of every error a client may see; subclasses fix the code and status."""

    code: ClassVar[str] = "internal_error"
    status_code: ClassVar[int] = 500

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}


class ValidationFailed(SnipixError):
    code = "validation_error"
    status_code = 422


class Unauthorized(SnipixError):
    code = "unauthorized"
    status_code = 401


class Forbidden(SnipixError):
    code = "forbidden"
    status_code = 403


class NotFound(SnipixError):
    code = "not_found"
    status_code = 404


class Conflict(SnipixError):
    code = "conflict"
    status_code = 409


class VersionMismatch(SnipixError):
    code = "version_mismatch"
    status_code = 412

    def __init__(self, message: str, *, current_version: int) -> None:
        super().__init__(message, details={"currentVersion": current_version})


class PreconditionRequired(SnipixError):
    """A write that could overwrite someone else's change arrived without `If-Match`."""

    code = "precondition_required"
    status_code = 428


class TooLarge(SnipixError):
    code = "too_large"
    status_code = 413


class UnsupportedMediaType(SnipixError):
    """The request body (or an uploaded file) is not of a type this route accepts."""

    code = "unsupported_media_type"
    status_code = 415


class NotImplementedHere(SnipixError):
    """A feature this deployment does not provide (a missing tool or an outside service)."""

    code = "not_implemented"
    status_code = 501


class RateLimited(SnipixError):
    code = "rate_limited"
    status_code = 429


class DatabaseUnavailable(SnipixError):
    code = "database_unavailable"
    status_code = 503

    def __init__(
        self,
        message: str = (
            "The project database is temporarily unavailable; your last change was not saved. "
            f"Retry in {DATABASE_RETRY_AFTER_S} seconds."
        ),
        *,
        retry_after_s: int = DATABASE_RETRY_AFTER_S,
    ) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class DatabaseTimeout(DatabaseUnavailable):
    """The database answered too slowly (a server-side time limit or write concern wait)."""

    code = "database_timeout"


# What a client is told when the database fails under a request, by what the request was
# and how far it got. A read changes nothing; a write the driver never sent (no server
# could be selected) was not saved; a write whose connection broke may have been applied,
# and only the client knows whether repeating it is safe (an Idempotency-Key or If-Match
# make it so), so the message says to reload or repeat with the same key.
_READ_UNAVAILABLE = "The project database is temporarily unavailable. Retry in {s} seconds."
_NOT_SAVED = (
    "The project database is temporarily unavailable; your last change was not saved. "
    "Retry in {s} seconds."
)
_MAYBE_SAVED = (
    "The project database stopped answering while saving; your last change may or may not "
    "have been saved. Retry in {s} seconds with the same Idempotency-Key, or reload first."
)
_TIMED_OUT = (
    "The project database took too long to answer; your last change may or may not have "
    "been saved. Retry in {s} seconds with the same Idempotency-Key, or reload first."
)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def database_failure(method: str, error: BaseException) -> DatabaseUnavailable:
    """The 503 for a driver error raised while serving a request with `method`."""
    seconds = DATABASE_RETRY_AFTER_S
    if isinstance(error, ExecutionTimeout | WTimeoutError):
        template = _READ_UNAVAILABLE if method in _SAFE_METHODS else _TIMED_OUT
        return DatabaseTimeout(template.format(s=seconds))
    if method in _SAFE_METHODS:
        return DatabaseUnavailable(_READ_UNAVAILABLE.format(s=seconds))
    if isinstance(error, ServerSelectionTimeoutError):
        return DatabaseUnavailable(_NOT_SAVED.format(s=seconds))
    return DatabaseUnavailable(_MAYBE_SAVED.format(s=seconds))
