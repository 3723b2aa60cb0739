"""Verification and password-reset tokens: one collection, `email_tokens`.

A token is 256 random bits sent in a link; only its SHA-256 is stored (`_id`), so the
database (or a backup of it) holds nothing that opens an account. Each is single use: a
use is one conditional write (`usedAt` still null and not expired), so of two requests
with the same token exactly one succeeds. The server deletes a token once it has expired
(TTL index `expire_at`); those of one user and purpose are retired together (index
`user_purpose`) when one is used.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Final, Literal

from pymongo import ReturnDocument

from snipix.db.client import Database, Document

EMAIL_TOKENS: Final = "email_tokens"
USER_PURPOSE_INDEX: Final = "user_purpose"

Purpose = Literal["verify", "reset"]


def new_email_token() -> str:
    return secrets.token_urlsafe(32)


def email_token_hash(token: str) -> str:
    """A plain hash suffices: 256 random bits leave nothing to guess offline."""
    return hashlib.sha256(token.encode()).hexdigest()


class EmailTokenRepository:
    def __init__(self, db: Database) -> None:
        self._tokens = db[EMAIL_TOKENS]

    async def insert(
        self,
        token: str,
        *,
        user_id: str,
        purpose: Purpose,
        email: str,
        at: datetime,
        expires_at: datetime,
    ) -> None:
        await self._tokens.insert_one(
            {
                "_id": email_token_hash(token),
                "userId": user_id,
                "purpose": purpose,
                "email": email,
                "createdAt": at,
                "expiresAt": expires_at,
                "usedAt": None,
            }
        )

    async def use(self, token: str, purpose: Purpose, at: datetime) -> Document | None:
        """Mark the token used; the token as it was, or None when it is unknown, of another
        purpose, expired or already used (by this request's twin, say)."""
        return await self._tokens.find_one_and_update(
            {
                "_id": email_token_hash(token),
                "purpose": purpose,
                "usedAt": None,
                "expiresAt": {"$gt": at},
            },
            {"$set": {"usedAt": at}},
            return_document=ReturnDocument.BEFORE,
        )

    async def retire(self, user_id: str, purpose: Purpose, at: datetime) -> int:
        """Every unused token of a user and purpose can no longer be used."""
        result = await self._tokens.update_many(
            {"userId": user_id, "purpose": purpose, "usedAt": None},
            {"$set": {"usedAt": at}},
            hint=USER_PURPOSE_INDEX,
        )
        return result.modified_count
