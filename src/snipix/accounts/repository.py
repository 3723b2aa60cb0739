"""Every query on `users`, `refresh_tokens`, `refresh_families` and `login_lockouts`.

Users are found by `_id` or by the normalised email (unique index `email_unique`); refresh
tokens and families only by `_id` (the token's SHA-256, the family id), so every query here
is a point read on any server. Expired tokens and families are removed by TTL indexes.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, Final

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from snipix.db.client import Database, Document
from snipix.errors import Conflict

USERS: Final = "users"
REFRESH_TOKENS: Final = "refresh_tokens"
REFRESH_FAMILIES: Final = "refresh_families"
LOGIN_LOCKOUTS: Final = "login_lockouts"
EMAIL_INDEX: Final = "email_unique"

# Everything but the password hash, which only sign-in reads.
USER_FIELDS: Final = {
    "_id": 1,
    "email": 1,
    "name": 1,
    "username": 1,
    "avatarUrl": 1,
    "role": 1,
    "status": 1,
    "authProvider": 1,
    "emailVerified": 1,
    "preferences": 1,
    "loginCount": 1,
    "lastLoginAt": 1,
    "createdAt": 1,
    "updatedAt": 1,
    "sessionGeneration": 1,
}
# What decides whether a token is still accepted (accounts/revocation.py).
_STANDING_FIELDS: Final = {"_id": 0, "sessionGeneration": 1, "status": 1}
_SIGN_IN_FIELDS: Final = {**USER_FIELDS, "passwordHash": 1}

EMAIL_TAKEN: Final = "An account with this email already exists; sign in instead."


class UserRepository:
    def __init__(self, db: Database) -> None:
        self._users = db[USERS]

    async def insert(self, doc: Document) -> None:
        """Store a new account; `Conflict` when the email has one already (unique index)."""
        try:
            await self._users.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(EMAIL_TAKEN) from None

    async def by_email(self, email: str) -> Document | None:
        """The account for a normalised email, with its password hash (sign-in only)."""
        return await self._users.find_one({"email": email}, _SIGN_IN_FIELDS, hint=EMAIL_INDEX)

    async def by_id(self, user_id: str) -> Document | None:
        return await self._users.find_one({"_id": user_id}, USER_FIELDS)

    async def by_id_for_password(self, user_id: str) -> Document | None:
        """The account with its password hash (a password change checks the current one)."""
        return await self._users.find_one({"_id": user_id}, _SIGN_IN_FIELDS)

    async def standing(self, user_id: str) -> Document | None:
        """`sessionGeneration` (missing: 0) and `status`, nothing else: a point read."""
        return await self._users.find_one({"_id": user_id}, _STANDING_FIELDS)

    async def end_sessions(
        self,
        user_id: str,
        at: datetime,
        *,
        changes: Document | None = None,
        unset: tuple[str, ...] = (),
        expect: Document | None = None,
    ) -> Document | None:
        """Bump the session generation, with `changes` in the same write; the account after.

        `expect`: fields that must still hold (the password hash a change was checked
        against, the status a transition starts from); None when they no longer do, or
        there is no such account.
        """
        update: dict[str, Any] = {
            "$inc": {"sessionGeneration": 1},
            "$set": {**(changes or {}), "updatedAt": at},
        }
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        return await self._users.find_one_and_update(
            {"_id": user_id, **(expect or {})},
            update,
            projection=USER_FIELDS,
            return_document=ReturnDocument.AFTER,
        )

    async def record_sign_in(self, user_id: str, at: datetime, new_hash: str | None) -> None:
        update: dict[str, Any] = {"$set": {"lastLoginAt": at}, "$inc": {"loginCount": 1}}
        if new_hash is not None:
            # The hashing parameters changed since this hash was made: store the stronger one.
            update["$set"]["passwordHash"] = new_hash
        await self._users.update_one({"_id": user_id}, update)

    async def mark_verified(self, user_id: str, email: str, at: datetime) -> bool:
        """Record that `email` is verified, if it is still the account's address; False
        when it is not (changed, or the account deleted meanwhile)."""
        result = await self._users.update_one(
            {"_id": user_id, "email": email, "status": {"$ne": "deleted"}},
            {"$set": {"emailVerified": True, "updatedAt": at}},
        )
        return result.matched_count == 1

    async def update_profile(
        self, user_id: str, changes: Document, at: datetime
    ) -> Document | None:
        return await self._users.find_one_and_update(
            {"_id": user_id},
            {"$set": {**changes, "updatedAt": at}},
            projection=USER_FIELDS,
            return_document=ReturnDocument.AFTER,
        )


class RefreshTokenRepository:
    """Refresh tokens (`_id` = SHA-256 of the token) and their families (sessions).

    A family is one sign-in: every rotation adds a token to it. Revocation is a flag on the
    family document, checked on every refresh, so it also covers a token a concurrent
    rotation adds after the revocation was written.
    """

    def __init__(self, db: Database) -> None:
        self._tokens = db[REFRESH_TOKENS]
        self._families = db[REFRESH_FAMILIES]

    async def start_family(self, family: Document, token: Document) -> None:
        # Family first: a token never exists without the family that can revoke it.
        await self._families.insert_one(family)
        await self._tokens.insert_one(token)

    async def add_token(self, token: Document) -> None:
        """Store a token; one already stored under its hash (a replay that completes a
        rotation a crash interrupted, or two at once) is left as it is."""
        with contextlib.suppress(DuplicateKeyError):
            await self._tokens.insert_one(token)

    async def token(self, token_hash: str) -> Document | None:
        return await self._tokens.find_one({"_id": token_hash})

    async def family(self, family_id: str) -> Document | None:
        return await self._families.find_one({"_id": family_id})

    async def claim(self, token_hash: str, at: datetime, successor_salt: str) -> bool:
        """Mark a token used, recording how its successor is made; False when it already
        was used (the database decides a race, so a token has one successor)."""
        result = await self._tokens.update_one(
            {"_id": token_hash, "usedAt": None},
            {"$set": {"usedAt": at, "successorSalt": successor_salt}},
        )
        return result.modified_count == 1

    async def extend_family(self, family_id: str, at: datetime, expires_at: datetime) -> bool:
        """Record a rotation; False when the family was revoked meanwhile."""
        result = await self._families.update_one(
            {"_id": family_id, "revokedAt": None},
            {"$set": {"lastUsedAt": at, "expiresAt": expires_at}},
        )
        return result.matched_count == 1

    async def revoke_family(self, family_id: str, at: datetime, reason: str) -> None:
        await self._families.update_one(
            {"_id": family_id, "revokedAt": None},
            {"$set": {"revokedAt": at, "revokedReason": reason}},
        )

    async def revoke_user(self, user_id: str, at: datetime, reason: str) -> int:
        """End every session of a user still running (index `user`); how many it ended."""
        result = await self._families.update_many(
            {"userId": user_id, "revokedAt": None},
            {"$set": {"revokedAt": at, "revokedReason": reason}},
        )
        return result.modified_count


class LockoutRepository:
    """Sign-in lockouts (an account or an address that used up its failures), kept in the
    database so every replica honours them whatever happens to Redis."""

    def __init__(self, db: Database) -> None:
        self._lockouts = db[LOGIN_LOCKOUTS]

    async def until(self, keys: list[str], now: datetime) -> datetime | None:
        """The latest end of a lockout of any of `keys` still running at `now`."""
        latest: datetime | None = None
        async for doc in self._lockouts.find({"_id": {"$in": keys}, "until": {"$gt": now}}):
            until: datetime = doc["until"]
            latest = until if latest is None or until > latest else latest
        return latest

    async def lock(self, key: str, until: datetime) -> None:
        """Lock `key` until `until` (a longer lockout already there is kept)."""
        await self._lockouts.update_one(
            {"_id": key}, {"$max": {"until": until, "expiresAt": until}}, upsert=True
        )

    async def unlock(self, key: str) -> None:
        await self._lockouts.delete_one({"_id": key})
