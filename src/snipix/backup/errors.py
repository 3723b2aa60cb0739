"""The one error a backup or restore fails with (apart from the database's own)."""

from __future__ import annotations

from pymongo.errors import OperationFailure, PyMongoError


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why in one line."""


def first_line(error: PyMongoError) -> str:
    """What went wrong, in one short line (without the server's full reply)."""
    if isinstance(error, OperationFailure) and error.details and error.details.get("errmsg"):
        return str(error.details["errmsg"])[:300]
    text = str(error).split(", full error:", 1)[0]
    return text.splitlines()[0][:300] if text else type(error).__name__
