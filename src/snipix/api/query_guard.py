"""Query parameters shaped like operator injection are refused at the edge (422).

Query values are only ever used as typed scalars, never parsed into a filter; this guard
turns a probe (`?status[$ne]=draft`) into a clear error instead of a silently literal match.
"""

from __future__ import annotations

import json

from fastapi import Request

from snipix.errors import ValidationFailed
from snipix.wire.models import find_unsafe_key


def unsafe_query_parameter(params: list[tuple[str, str]]) -> str | None:
    """The first query parameter that could smuggle an operator, if any.

    Query values are only ever used as typed scalars, never parsed into a filter, but a
    client that sends `?status[$ne]=draft` or `?q={"$gt": ""}` is either probing or broken
    and deserves a 422 rather than a silently literal match.
    """
    for name, value in params:
        if any(mark in name for mark in ("$", ".", "[", "]")):
            return name
        stripped = value.lstrip()
        if stripped[:1] in {"{", "["}:
            try:
                parsed = json.loads(stripped)
            except RecursionError:
                # `?q=[[[[...` deeper than the parser's recursion limit was a 500;
                # a value too deep to inspect is refused like one that carries an operator.
                return name
            except ValueError:
                continue
            if find_unsafe_key(parsed) is not None:
                return name
    return None


async def reject_unsafe_query(request: Request) -> None:
    """Router dependency: 422 for a query parameter shaped like an operator injection."""
    name = unsafe_query_parameter(request.query_params.multi_items())
    if name is not None:
        raise ValidationFailed(
            f"Query parameter {name[:100]!r} is not accepted: names and values may not carry "
            "'$' operators or dotted paths.",
            details=[{"loc": ["query", name], "msg": "unsafe parameter", "type": "unsafe_key"}],
        )
