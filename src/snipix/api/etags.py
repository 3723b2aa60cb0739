"""Versions on the HTTP wire: `ETag: "<version>"` out, the `If-Match` header in.

What a version is and how one is parsed is `snipix.wire.versions`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Response

from snipix.wire.versions import etag

IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=64,
        description='The version this change is based on, as returned in `ETag` (e.g. `"3"`).',
    ),
]


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)
