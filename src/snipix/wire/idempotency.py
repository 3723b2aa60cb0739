"""Request fingerprints: a client repeating a request with the same idempotency key gets
the first result, and the fingerprint tells a true repeat from a reused key."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def fingerprint(payload: Any) -> str:
    """A stable digest of a request body, to tell a true repeat from a reused key."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
