"""The `Idempotency-Key` request header (IETF httpapi draft), shared by every route that
takes one: a client repeating a request with the same key gets the first result and
nothing is applied twice."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Final

import orjson
from fastapi import Header

REPLAYED_HEADER: Final = "Idempotent-Replayed"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        pattern=r"^[A-Za-z0-9_.:-]{1,200}$",
        description="Repeat it on a retry: the first result is returned, nothing is applied twice.",
    ),
]


def fingerprint(payload: Any) -> str:
    """A stable digest of a request body, to tell a true repeat from a reused key."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
