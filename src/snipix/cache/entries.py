"""How a cached value is laid out: a small JSON header line, then the payload bytes.

    [version, soft_expiry_ms, owner]\n<payload>

`version` is the entity's version (or a list's generation token, see `store`), and is what
the fenced write in Redis compares without parsing the payload: it must be the first number
after `[`. A tombstone is `[version, -1, null]\n`: it marks "changed at version N" so a
reader that loaded an older state before the change cannot put it back (DESIGN: the
cache-aside race).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

TOMBSTONE_EXPIRY = -1


@dataclass(frozen=True, slots=True)
class Entry:
    version: int
    soft_expiry_ms: int
    owner: str | None
    payload: bytes

    @property
    def tombstone(self) -> bool:
        return self.soft_expiry_ms == TOMBSTONE_EXPIRY

    def fresh(self, now_ms: int) -> bool:
        return not self.tombstone and now_ms < self.soft_expiry_ms

    def encode(self) -> bytes:
        header = orjson.dumps([self.version, self.soft_expiry_ms, self.owner])
        return header + b"\n" + self.payload

    @classmethod
    def decode(cls, raw: bytes) -> Entry | None:
        """The entry, or None for bytes this version of the code did not write."""
        header, sep, payload = raw.partition(b"\n")
        if not sep:
            return None
        try:
            version, soft_expiry_ms, owner = orjson.loads(header)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            return None
        if not isinstance(version, int) or not isinstance(soft_expiry_ms, int):
            return None
        return cls(version, soft_expiry_ms, owner if isinstance(owner, str) else None, payload)

    @classmethod
    def tombstone_for(cls, version: int) -> Entry:
        return cls(version, TOMBSTONE_EXPIRY, None, b"")
