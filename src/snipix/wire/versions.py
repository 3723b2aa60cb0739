"""Versions: every mutable resource carries an integer version, and a write names the one
it is based on (`If-Match: "<version>"` or `baseVersion`), so no change is overwritten
silently. The HTTP side (the header, `ETag` out) is `snipix.api.etags`.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from snipix.errors import ValidationFailed

_ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,18})"?\s*$')
# The largest version number a request may name (exact in JavaScript, far below BSON's
# 64-bit limit): path, query and body version fields are bounded by it, so an absurd one is
# a 422 (or a 404), never a query the driver cannot encode.
MAX_VERSION: Final = 2**53 - 1


def etag(version: int) -> str:
    return f'"{version}"'


# `If-Match: *`: the client knowingly saves over whatever version is current.
ANY_VERSION: Literal["*"] = "*"
Expected = int | Literal["*"] | None


def parse_if_match(value: str | None) -> Expected:
    """The version an `If-Match` names; `ANY_VERSION` for `*`; None when absent."""
    if value is None:
        return None
    if value.strip() == "*":
        return ANY_VERSION
    match = _ETAG.match(value)
    if match is None:
        raise ValidationFailed(
            'If-Match must be the ETag of a version, like "3".',
            details=[{"loc": ["header", "If-Match"], "msg": "not a version", "type": "etag"}],
        )
    return int(match.group(1))


def expected_version(header: str | None, body_version: int | None) -> Expected:
    """One expected version from `If-Match` and `baseVersion`; they must agree if both given."""
    from_header = parse_if_match(header)
    if isinstance(from_header, int) and body_version is not None and from_header != body_version:
        raise ValidationFailed(
            f"If-Match ({from_header}) and baseVersion ({body_version}) disagree; send one.",
        )
    return from_header if from_header is not None else body_version
