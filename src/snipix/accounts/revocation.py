"""Whether a token (or a signed media link) of an account is still accepted.

Every account has a session generation (`sessionGeneration`, missing = 0) that is written
into each access token (`gen`) and media link this service issues. Signing out everywhere,
a password change, and disabling or deleting the account bump it in the database; a
credential is accepted only while its generation equals the account's current one and the
account is active. So one write ends every session of a user at once, without a list of
revoked tokens.

The current generation is read through the cache (kind `session`, one entry per user,
version = the generation, payload = the status): a steady-state request is answered by
the process's local layer with no database read and no Redis round trip. A change bumps
the database first and then invalidates the entry (a tombstone at the new generation), so
Redis tracking drops it from every replica's local layer within milliseconds, and a read
that loaded the old generation before the bump cannot store it afterwards. With the cache
down, the standing is read from the database on every request: correctness over speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from snipix.accounts.repository import UserRepository
from snipix.auth.token_verifier import invalid_token
from snipix.cache.service import Cache, Loaded
from snipix.errors import Unauthorized

CACHED_STANDING: Final = "session"
ACTIVE: Final = "active"
SESSION_ENDED: Final = (
    "This session has ended (signed out everywhere, password changed, or account disabled); "
    "sign in again."
)


@dataclass(frozen=True, slots=True)
class Standing:
    """An account's current session generation and status."""

    generation: int
    status: str

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


class SessionGate:
    """Checks a credential's generation against the account's, through the cache."""

    def __init__(self, users: UserRepository, cache: Cache) -> None:
        self._users = users
        self._cache = cache

    async def standing(self, user_id: str) -> Standing | None:
        """The account's standing; None when there is no such account."""

        async def load() -> Loaded | None:
            doc = await self._users.standing(user_id)
            if doc is None:
                return None
            status = str(doc.get("status", ACTIVE))
            return Loaded(int(doc.get("sessionGeneration", 0)), status.encode())

        found = await self._cache.entity(CACHED_STANDING, user_id, user_id, load, reported=False)
        if found is None:
            return None
        return Standing(found.version, found.payload.decode())

    async def check(self, user_id: str, generation: int) -> None:
        """401 unless the account exists, is active and is still at `generation`."""
        standing = await self.standing(user_id)
        if standing is None or not standing.active or standing.generation != generation:
            raise ended()

    async def changed(self, user_id: str, generation: int) -> None:
        """After the database took generation `generation`: every replica drops the old one."""
        await self._cache.invalidate(CACHED_STANDING, user_id, generation)


def ended() -> Unauthorized:
    """The 401 of a credential whose session was ended."""
    return invalid_token(SESSION_ENDED)
