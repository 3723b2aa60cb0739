"""Keyset pagination with opaque cursors.

A cursor carries the sort key of the last item a page returned, so the next page is one
index range scan (`(updatedAt, _id) < last`), never a growing `skip`. It is base64url JSON
validated against the list's own cursor model on the way back in: a cursor from another
list, or an edited one, is a clear 422 rather than a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from snipix.errors import ValidationFailed
from snipix.wire.models import WireModel, json_problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Cursors are short; a long one is not ours.
MAX_CURSOR_LENGTH = 1_024


class CursorModel(BaseModel):
    """Base of each list's cursor contents (short keys: cursors travel in URLs).

    An edited cursor is checked like a body: its values reach a query, and an
    integer past 64 bits made the driver raise OverflowError (a 500), not a 422.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        problem = json_problem(data)
        if problem is not None:
            raise ValueError(f"{problem[2]}: {problem[1]}")
        return data


class Page[T](WireModel):
    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last page."
    )


def encode_cursor(cursor: CursorModel) -> str:
    raw = json.dumps(cursor.model_dump(mode="json"), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor[C: CursorModel](token: str, model: type[C]) -> C:
    try:
        padded = token + "=" * (-len(token) % 4)
        data: Any = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        return model.model_validate(data)
    except (ValueError, UnicodeError, binascii.Error, ValidationError):
        raise ValidationFailed(
            "The cursor is not valid for this list; request the first page again without it.",
            details=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "cursor"}],
        ) from None
