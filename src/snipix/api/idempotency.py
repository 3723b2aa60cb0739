"""The `Idempotency-Key` request header (IETF httpapi draft), shared by every route that
takes one: a client repeating a request with the same key gets the first result and
nothing is applied twice."""

from __future__ import annotations

from typing import Annotated, Final

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
