"""Versions on the wire: `ETag: "<version>"` out, `If-Match` (or `baseVersion`) in.

Every mutable resource carries an integer version; a write that names a stale one gets
412 with the current version, so no change is overwritten silently.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Header, Response

from snipix.errors import ValidationFailed

_ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,18})"?\s*$')

IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=64,
        description='The version this change is based on, as returned in `ETag` (e.g. `"3"`).',
    ),
]


def etag(version: int) -> str:
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


def parse_if_match(value: str | None) -> int | None:
    """The version an `If-Match` names; None when absent or `*` (any version)."""
    if value is None or value.strip() == "*":
        return None
    match = _ETAG.match(value)
    if match is None:
        raise ValidationFailed(
            'If-Match must be the ETag of a version, like "3".',
            details=[{"loc": ["header", "If-Match"], "msg": "not a version", "type": "etag"}],
        )
    return int(match.group(1))


def expected_version(header: str | None, body_version: int | None) -> int | None:
    """One expected version from `If-Match` and `baseVersion`; they must agree if both given."""
    from_header = parse_if_match(header)
    if from_header is not None and body_version is not None and from_header != body_version:
        raise ValidationFailed(
            f"If-Match ({from_header}) and baseVersion ({body_version}) disagree; send one.",
        )
    return from_header if from_header is not None else body_version
