"""Pagination parameters on the HTTP wire: `limit` and the opaque `cursor`.

Cursors, pages and their limits are `snipix.wire.pages`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from snipix.wire.pages import DEFAULT_LIMIT, MAX_CURSOR_LENGTH, MAX_LIMIT

Limit = Annotated[
    int,
    Query(ge=1, le=MAX_LIMIT, description=f"Page size (default {DEFAULT_LIMIT}, max {MAX_LIMIT})."),
]
CursorParam = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        description="Opaque `nextCursor` of the previous page; omit for the first page.",
    ),
]
