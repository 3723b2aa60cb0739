"""Email verification and password reset by email.

Both send a link with a single-use token (`email_tokens`): verification lasts
`VERIFY_TTL` (48 h), a reset `RESET_TTL` (30 min). Mails go through the outbox
(`snipix.mail`), so no answer waits on the mail server.

What an answer may reveal: forgot-password answers every well-formed address with the
same 200 and the same text after the same kind of work (one indexed read; the mail is
queued, never awaited), whether or not it has an account, and whether or not that
account has used up its mails. Limits: per client address (429, which says nothing
about any account) and per account (a signed-in resend gets 429; a forgot-password over
it is answered as always and sends nothing). Both take their slot atomically before any
mail is made (`Limiter.reserve`), so concurrent requests cannot pass the limit.

A reset sets the new password and ends every session of the account in one write (its
session generation; see `AccountService`), retires the account's other reset links,
and marks the address verified (the link proved the mailbox).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

import structlog

from snipix.accounts.email_tokens import EmailTokenRepository, Purpose, new_email_token
from snipix.accounts.mail_templates import (
    RESET_PATH,
    VERIFY_PATH,
    link,
    password_reset,
    verification,
)
from snipix.accounts.passwords import PasswordHasher
from snipix.accounts.repository import UserRepository
from snipix.accounts.schemas import normalize_email
from snipix.accounts.service import DELETED, AccountService
from snipix.clock import Clock, to_millisecond, utc_now
from snipix.db.client import Document
from snipix.errors import NotFound, RateLimited, SnipixError
from snipix.mail.outbox import Outbox
from snipix.security.limiter import Limiter
from snipix.settings import Settings

log = structlog.get_logger(__name__)

VERIFY_TTL: Final = timedelta(hours=48)
RESET_TTL: Final = timedelta(minutes=30)
# Window names of the mail limits (`Limiter.reserve`).
MAIL_ACCOUNT: Final = "mail-account"
MAIL_ADDRESS: Final = "mail-ip"

FORGOT_ANSWER: Final = (
    "If an account exists for this email, a link to reset its password is on its way. "
    "It works for 30 minutes."
)
VERIFY_SENT: Final = "A new verification link is on its way; it works for 48 hours."
ALREADY_VERIFIED: Final = "This email address is verified already."
VERIFIED: Final = "Email address verified."
RESET_DONE: Final = "Password reset. Every session of the account has been signed out; sign in."
BAD_LINK: Final = "This link is invalid, has expired or was used already; ask for a new one."


class InvalidLink(SnipixError):
    """A verification or reset token that is unknown, expired or used: nothing changed."""

    code = "invalid_token"
    status_code = 400


class EmailFlows:
    def __init__(
        self,
        users: UserRepository,
        tokens: EmailTokenRepository,
        accounts: AccountService,
        *,
        hasher: PasswordHasher,
        outbox: Outbox,
        limiter: Limiter,
        web_app_url: str,
        per_account: int,
        per_ip: int,
        window_s: int,
        clock: Clock = utc_now,
    ) -> None:
        self._users = users
        self._tokens = tokens
        self._accounts = accounts
        self._hasher = hasher
        self._outbox = outbox
        self._limiter = limiter
        self._web_app_url = web_app_url
        self._per_account = per_account
        self._per_ip = per_ip
        self._window_s = window_s
        self._clock = clock

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        users: UserRepository,
        tokens: EmailTokenRepository,
        accounts: AccountService,
        *,
        hasher: PasswordHasher,
        outbox: Outbox,
        limiter: Limiter,
        clock: Clock = utc_now,
    ) -> EmailFlows:
        return cls(
            users,
            tokens,
            accounts,
            hasher=hasher,
            outbox=outbox,
            limiter=limiter,
            web_app_url=settings.web_app_url,
            per_account=settings.mail_per_account,
            per_ip=settings.mail_per_ip,
            window_s=settings.mail_window_s,
            clock=clock,
        )

    def _now(self) -> datetime:
        return to_millisecond(self._clock())

    # --- verification --------------------------------------------------------------------

    async def send_verification(self, user_id: str, email: str, name: str) -> None:
        """A verification mail for a new account, or for one refused sign-in because its
        address is not verified; nothing when the account used up its mail limit."""
        slot, _wait_s = await self._account_slot(user_id)
        if slot is not None:
            await self._send_verification({"_id": user_id, "email": email, "name": name})

    async def resend_verification(self, user_id: str, client_ip: str) -> str:
        """Another verification link for the signed-in account; the answer's message."""
        user = await self._users.by_id(user_id)
        if user is None or user.get("status") == DELETED:
            raise NotFound("There is no account for this identity.")
        if user.get("emailVerified"):
            return ALREADY_VERIFIED
        await self._address_slot(client_ip)
        slot, wait_s = await self._account_slot(user_id)
        if slot is None:
            self._limiter.metrics.refused("mail")
            raise _limited("verification emails", wait_s)
        await self._send_verification(user)
        return VERIFY_SENT

    async def verify_email(self, token: str) -> str:
        """Mark the address the token was sent to verified; `InvalidLink` otherwise."""
        now = self._now()
        used = await self._tokens.use(token, "verify", now)
        if used is None:
            raise InvalidLink(BAD_LINK)
        # Only while the account still has that address (and is not deleted).
        if not await self._users.mark_verified(used["userId"], used["email"], now):
            raise InvalidLink(BAD_LINK)
        await self._tokens.retire(used["userId"], "verify", now)
        log.info("email verified", account_id=used["userId"])
        return VERIFIED

    async def _send_verification(self, user: Document) -> None:
        token = await self._issue(user, "verify", VERIFY_TTL)
        url = link(self._web_app_url, VERIFY_PATH, token)
        self._outbox.submit(
            verification(user["email"], user["name"], url, int(VERIFY_TTL.total_seconds() // 3600))
        )

    # --- password reset ------------------------------------------------------------------

    async def forgot_password(self, email: str, client_ip: str) -> str:
        """Send a reset link if the address has an account; the same answer either way."""
        await self._address_slot(client_ip)
        user = await self._users.by_email(normalize_email(email))
        if user is None or user.get("status") == DELETED:
            return FORGOT_ANSWER
        slot, _wait_s = await self._account_slot(user["_id"])
        if slot is None:
            log.info("password reset mail withheld: account limit", account_id=user["_id"])
            return FORGOT_ANSWER
        token = await self._issue(user, "reset", RESET_TTL)
        url = link(self._web_app_url, RESET_PATH, token)
        self._outbox.submit(
            password_reset(user["email"], user["name"], url, int(RESET_TTL.total_seconds() // 60))
        )
        return FORGOT_ANSWER

    async def reset_password(self, token: str, new_password: str) -> str:
        """Set the new password and end every session; `InvalidLink` (nothing changed)
        for a token that is unknown, expired or used."""
        now = self._now()
        used = await self._tokens.use(token, "reset", now)
        if used is None:
            raise InvalidLink(BAD_LINK)
        new_hash = await self._hasher.hash(new_password)
        user_id: str = used["userId"]
        if not await self._accounts.reset_password(user_id, used["email"], new_hash):
            raise InvalidLink(BAD_LINK)
        await self._tokens.retire(user_id, "reset", now)
        log.info("password reset", account_id=user_id)
        return RESET_DONE

    # --- shared --------------------------------------------------------------------------

    async def _issue(self, user: Document, purpose: Purpose, ttl: timedelta) -> str:
        now = self._now()
        token = new_email_token()
        await self._tokens.insert(
            token,
            user_id=user["_id"],
            purpose=purpose,
            email=user["email"],
            at=now,
            expires_at=now + ttl,
        )
        return token

    async def _address_slot(self, client_ip: str) -> None:
        slot, wait_s = await self._limiter.reserve(
            MAIL_ADDRESS, client_ip, limit=self._per_ip, window_s=self._window_s, now=self._ts()
        )
        if slot is None:
            self._limiter.metrics.refused("mail")
            raise _limited("requests for email links", wait_s)

    async def _account_slot(self, user_id: str) -> tuple[str | None, int]:
        """A slot in the account's mail window: `(slot, 0)`, or `(None, seconds until
        one frees)` when it is full."""
        return await self._limiter.reserve(
            MAIL_ACCOUNT, user_id, limit=self._per_account, window_s=self._window_s, now=self._ts()
        )

    def _ts(self) -> float:
        return self._clock().timestamp()


def _limited(what: str, wait_s: int) -> RateLimited:
    return RateLimited(
        f"Too many {what}. Try again in {wait_s} seconds.",
        details={"retryAfterSeconds": wait_s},
        headers={"Retry-After": str(wait_s)},
    )
