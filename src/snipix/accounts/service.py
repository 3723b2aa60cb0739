"""The account rules: registration, sign-in, refresh rotation with reuse detection, sign-out,
the own profile, and creating administrators (CLI).

Sign-in answers an unknown email and a wrong password with the same status and message,
after the same work (a dummy argon2 verification for an unknown email), and counts both
against the account's and the address's failure limits.

Refresh tokens rotate on every use, and each has exactly one successor. A used token
presented again gets that same successor back (with a new access token) as long as the
successor has never been used: a client that refreshes twice at once, or that stored an
older token again, stays signed in, and a copy in other hands gets nothing the client does
not already hold, so a session never forks into two chains. A used token whose successor
has been used means the chain moved on without it: two parties hold the session, so the
whole family is revoked and both must sign in (docs/decisions.md, "Accounts").

Signing out everywhere, a password change, and disabling or deleting an account end every
session of the user: the account's session generation is bumped in the database first
(every access token and media link carries the one it was issued under, and
`accounts.revocation.SessionGate` refuses any other), then the cached generation is
invalidated on every replica, then every refresh family is revoked. A family also records
the generation it was started under, so a sign-in racing the bump cannot be refreshed
into a live session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, NoReturn

import structlog
from bson import ObjectId

from snipix.accounts.metrics import LoginMetrics
from snipix.accounts.passwords import PasswordHasher
from snipix.accounts.repository import RefreshTokenRepository, UserRepository
from snipix.accounts.revocation import ACTIVE, SessionGate
from snipix.accounts.schemas import (
    LoginRequest,
    PasswordChange,
    ProfileUpdate,
    RegisterRequest,
    TokenResponse,
    User,
    normalize_email,
)
from snipix.accounts.throttle import Attempt, LoginThrottle
from snipix.accounts.token_issuer import (
    TokenIssuer,
    new_refresh_token,
    new_successor_salt,
    refresh_token_hash,
    successor_refresh_token,
)
from snipix.clock import Clock, to_millisecond, utc_now
from snipix.db.client import Database, Document
from snipix.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    SnipixError,
    Unauthorized,
    ValidationFailed,
)
from snipix.security.metrics import RateLimitMetrics
from snipix.settings import Settings

log = structlog.get_logger(__name__)

BAD_CREDENTIALS: Final = "The email or password is incorrect."
SESSION_ENDED: Final = "The refresh token is invalid or has expired; sign in again."
REUSED: Final = (
    "This refresh token was already used. Every session it belongs to has been signed out "
    "for safety; sign in again."
)
NO_ACCOUNT: Final = "There is no account for this identity."
WRONG_PASSWORD: Final = "The current password is incorrect."  # noqa: S105 (a message)
SUSPENDED: Final = "suspended"
DELETED: Final = "deleted"
_CHALLENGE: Final = {"WWW-Authenticate": "Bearer"}


class EmailNotVerified(Forbidden):
    """SNIPIX_REQUIRE_EMAIL_VERIFICATION: the account must verify its address before it
    can sign in again or refresh its session."""

    code = "email_not_verified"

    def __init__(self, user_id: str, email: str, name: str) -> None:
        super().__init__(
            "Verify your email address first: follow the link in the message we sent "
            f"to {email} (a new one is on its way)."
        )
        self.user_id = user_id
        self.email = email
        self.name = name


class NotImplementedYet(SnipixError):
    """A feature the original web app calls that needs a service this backend does not run."""

    code = "not_implemented"
    status_code = 501


def _unauthorized(message: str) -> Unauthorized:
    return Unauthorized(message, headers=_CHALLENGE)


@dataclass(frozen=True, slots=True)
class Lifetimes:
    access_s: int
    refresh_s: int
    remember_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Lifetimes:
        return cls(
            access_s=settings.access_token_ttl_s,
            refresh_s=settings.refresh_token_ttl_s,
            remember_s=settings.refresh_token_remember_ttl_s,
        )

    def refresh(self, remember_me: bool) -> timedelta:
        return timedelta(seconds=self.remember_s if remember_me else self.refresh_s)


class AccountService:
    def __init__(
        self,
        users: UserRepository,
        refresh_tokens: RefreshTokenRepository,
        *,
        issuer: TokenIssuer | str,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        lifetimes: Lifetimes,
        metrics: LoginMetrics,
        rate_limits: RateLimitMetrics,
        gate: SessionGate,
        clock: Clock = utc_now,
        require_verified: bool = False,
    ) -> None:
        self._users = users
        # SNIPIX_REQUIRE_EMAIL_VERIFICATION (docs/decisions.md, "Accounts").
        self._require_verified = require_verified
        # Told of every generation bump, so no replica keeps accepting the old one.
        self._gate = gate
        # Refresh tokens expire, and a reuse is judged inside its grace, by this clock.
        self._clock = clock
        self._refresh = refresh_tokens
        self._issuer = issuer
        self._hasher = hasher
        self._throttle = throttle
        self._lifetimes = lifetimes
        self._metrics = metrics
        # A sign-in refused by the failure limit is also a rate limit refusal (`login`).
        self._rate_limits = rate_limits

    def _now(self) -> datetime:
        return to_millisecond(self._clock())

    # --- accounts ------------------------------------------------------------------------

    async def create_user(
        self,
        *,
        email: str,
        name: str,
        password: str,
        username: str | None = None,
        role: Literal["user", "admin"] = "user",
    ) -> Document:
        """Store a new active account; `Conflict` when the email is taken.

        `email` must be normalised and `password` already checked against the rules.
        """
        now = self._now()
        doc: Document = {
            "_id": str(ObjectId()),
            "email": email,
            "name": name,
            "username": username,
            "avatarUrl": None,
            "role": role,
            # No e-mail verification exists here (it needs a mail service): an account is
            # usable at once, and says truthfully that its address was never verified.
            "status": "active",
            "authProvider": "email",
            "emailVerified": False,
            "passwordHash": await self._hasher.hash(password),
            "preferences": {},
            "loginCount": 0,
            "lastLoginAt": None,
            "createdAt": now,
            "updatedAt": now,
        }
        await self._users.insert(doc)
        log.info("account created", account_id=doc["_id"], role=role)
        return doc

    async def register(self, body: RegisterRequest) -> TokenResponse:
        self._require_issuer()
        doc = await self.create_user(
            email=body.email, name=body.name, password=body.password, username=body.username
        )
        return await self._sign_in(doc, remember_me=False)

    async def login(self, body: LoginRequest, client_ip: str) -> TokenResponse:
        self._require_issuer()
        email = normalize_email(body.email)
        attempt = await self._begin_attempt(email, client_ip)
        try:
            doc = await self._users.by_email(email)
            new_hash: str | None = None
            if doc is None or not doc.get("passwordHash"):
                await self._hasher.verify_nobody(body.password)
                matched = False
            else:
                matched, new_hash = await self._hasher.verify(body.password, doc["passwordHash"])
        except BaseException:
            await self._throttle.abandoned(attempt)
            raise
        if not matched or doc is None:
            await self._throttle.failed(attempt)
            self._metrics.failed("bad_credentials")
            raise _unauthorized(BAD_CREDENTIALS)
        await self._throttle.succeeded(attempt)
        if doc.get("status", "active") != "active":
            # Only after the password matched: telling a stranger would confirm the account.
            self._metrics.failed("inactive")
            raise Forbidden(f"This account is {doc['status']}; ask an administrator.")
        self._check_verified(doc)
        now = self._now()
        await self._users.record_sign_in(doc["_id"], now, new_hash)
        doc = {**doc, "lastLoginAt": now, "loginCount": doc.get("loginCount", 0) + 1}
        return await self._sign_in(doc, remember_me=body.remember_me)

    async def _begin_attempt(self, email: str, client_ip: str) -> Attempt:
        try:
            return await self._throttle.begin(email, client_ip)
        except RateLimited:
            self._metrics.failed("rate_limited")
            self._rate_limits.refused("login")
            raise

    async def me(self, user_id: str) -> User:
        doc = await self._users.by_id(user_id)
        if doc is None:
            raise NotFound(NO_ACCOUNT)
        return User.from_document(doc)

    async def update_profile(self, user_id: str, body: ProfileUpdate) -> User:
        doc = await self._users.update_profile(user_id, body.changes(), self._now())
        if doc is None:
            raise NotFound(NO_ACCOUNT)
        return User.from_document(doc)

    # --- ending every session of an account ---------------------------------------------

    async def logout_all(self, user_id: str) -> None:
        """Sign out everywhere: every access token, refresh token and media link ends."""
        if await self._end_sessions(user_id, "logout_all") is None:
            raise NotFound(NO_ACCOUNT)

    async def change_password(
        self, user_id: str, body: PasswordChange, client_ip: str, session_id: str | None
    ) -> TokenResponse:
        """Replace the password after checking the current one; every session ends, and the
        caller gets a new one (of the same kind: `remember_me` as the one it came from).

        A wrong current password counts against the sign-in failure limits, as a failed
        sign-in does: otherwise a stolen access token could guess the password here.
        """
        self._require_issuer()  # before anything changes: the answer is a new session
        doc = await self._users.by_id_for_password(user_id)
        if doc is None:
            raise NotFound(NO_ACCOUNT)
        old_hash = doc.get("passwordHash")
        if not old_hash:
            raise ValidationFailed(
                "This account signs in without a password; it has none to change."
            )
        attempt = await self._begin_attempt(doc["email"], client_ip)
        try:
            matched, _ = await self._hasher.verify(body.current_password, old_hash)
        except BaseException:
            await self._throttle.abandoned(attempt)
            raise
        if not matched:
            await self._throttle.failed(attempt)
            self._metrics.failed("bad_credentials")
            raise _unauthorized(WRONG_PASSWORD)
        await self._throttle.succeeded(attempt)
        family = await self._refresh.family(session_id) if session_id is not None else None
        remember_me = bool(family.get("rememberMe")) if family is not None else False
        new_hash = await self._hasher.hash(body.new_password)
        updated = await self._end_sessions(
            user_id,
            "password_changed",
            changes={"passwordHash": new_hash},
            # Only over the hash just checked: of two changes at once, one wins. (An account
            # disabled meanwhile keeps its status, so the new session is refused anyway.)
            expect={"passwordHash": old_hash},
        )
        if updated is None:
            raise Conflict("The password or the account changed meanwhile; sign in again.")
        log.info("password changed", account_id=user_id)
        return await self._sign_in(updated, remember_me=remember_me)

    async def reset_password(self, user_id: str, email: str, new_hash: str) -> bool:
        """Set a new password (a reset link proved the mailbox `email`): every session of
        the account ends, its address counts as verified, and its sign-in failures and
        lockout are forgiven. False, nothing changed, when the account no longer has that
        address or is deleted."""
        updated = await self._end_sessions(
            user_id,
            "password_reset",
            changes={"passwordHash": new_hash, "emailVerified": True},
            expect={"email": email, "status": {"$ne": DELETED}},
        )
        if updated is None:
            return False
        # Locked out by failed guesses of the old password: the new one works at once.
        await self._throttle.forgive(email)
        return True

    async def account_by_email(self, email: str) -> Document:
        """The account with this email (any case); `NotFound` when none (or deleted)."""
        doc = await self._users.by_email(normalize_email(email))
        if doc is None or doc.get("status") == DELETED:
            raise NotFound(f"There is no account with email {normalize_email(email)}.")
        return doc

    async def set_status(self, user_id: str, status: Literal["active", "suspended"]) -> Document:
        """Suspend an account (no sign-in, every session ends) or let it sign in again (its
        old sessions stay ended). Idempotent: the account as it is when nothing changes."""
        doc = await self._users.by_id(user_id)
        if doc is None or doc.get("status") == DELETED:
            raise NotFound(NO_ACCOUNT)
        if doc.get("status", ACTIVE) == status:
            return doc
        reason = "disabled" if status == SUSPENDED else "enabled"
        return await self._transition(
            user_id, reason, {"status": status}, expect={"status": {"$ne": DELETED}}
        )

    async def delete_account(self, user_id: str) -> Document:
        """Delete an account: every session ends, the email is freed for a new account, the
        personal fields and the password hash are removed. The document stays (status
        `deleted`) so the tokens still in circulation are refused from the cache, and the
        user's projects stay as they are, reachable by administrators
        (docs/decisions.md, "Accounts")."""
        changes: Document = {
            "status": DELETED,
            "email": f"deleted:{user_id}",
            "name": "Deleted account",
            "username": None,
            "avatarUrl": None,
            "preferences": {},
            "deletedAt": self._now(),
        }
        return await self._transition(
            user_id, DELETED, changes, unset=("passwordHash",), expect={"status": {"$ne": DELETED}}
        )

    async def _transition(
        self,
        user_id: str,
        reason: str,
        changes: Document,
        *,
        unset: tuple[str, ...] = (),
        expect: Document,
    ) -> Document:
        updated = await self._end_sessions(
            user_id, reason, changes=changes, unset=unset, expect=expect
        )
        if updated is None:
            raise NotFound(NO_ACCOUNT)
        log.info("account status changed", account_id=user_id, change=reason)
        return updated

    async def _end_sessions(
        self,
        user_id: str,
        reason: str,
        *,
        changes: Document | None = None,
        unset: tuple[str, ...] = (),
        expect: Document | None = None,
    ) -> Document | None:
        """Bump the generation (with `changes`), invalidate it everywhere, revoke every
        refresh family; the account after, or None when it is missing or `expect` fails.

        In this order: once the database holds the new generation, a replica that misses
        the invalidation still cannot fill its cache with the old one (the fill is fenced
        by the generation), and a refresh family that escapes the revocation (a crash in
        between) is refused by the generation it records.
        """
        now = self._now()
        updated = await self._users.end_sessions(
            user_id, now, changes=changes, unset=unset, expect=expect
        )
        if updated is None:
            return None
        await self._gate.changed(user_id, int(updated.get("sessionGeneration", 0)))
        ended = await self._refresh.revoke_user(user_id, now, reason)
        log.info("sessions ended", account_id=user_id, reason=reason, sessions=ended)
        return updated

    # --- tokens --------------------------------------------------------------------------

    async def refresh(self, refresh_token: str) -> TokenResponse:
        """A new access token and a new refresh token for a valid, unused refresh token."""
        issuer = self._require_issuer()
        token_hash = refresh_token_hash(refresh_token)
        now = self._now()
        token = await self._refresh.token(token_hash)
        if token is None or token["expiresAt"] <= now:
            raise _unauthorized(SESSION_ENDED)
        family_id: str = token["familyId"]
        family = await self._refresh.family(family_id)
        if family is None or family.get("revokedAt") is not None or family["expiresAt"] <= now:
            raise _unauthorized(SESSION_ENDED)
        user = await self._users.by_id(token["userId"])
        if user is None or user.get("status", ACTIVE) != ACTIVE:
            await self._refresh.revoke_family(family_id, now, "account_inactive")
            raise _unauthorized(SESSION_ENDED)
        self._check_verified(user)
        if family.get("generation", 0) != user.get("sessionGeneration", 0):
            # Started before the account's sessions were ended (a sign-in racing the bump).
            await self._refresh.revoke_family(family_id, now, "generation")
            raise _unauthorized(SESSION_ENDED)
        salt = token.get("successorSalt")
        if token.get("usedAt") is None:
            fresh_salt = new_successor_salt()
            if await self._refresh.claim(token_hash, now, fresh_salt):
                salt = fresh_salt
            else:  # another request used it a moment ago: its successor is the answer
                claimed = await self._refresh.token(token_hash)
                salt = claimed.get("successorSalt") if claimed is not None else None
        successor = await self._successor(refresh_token, salt, token, family, now)
        expires_at = successor["expiresAt"]
        if not await self._refresh.extend_family(family_id, now, expires_at):
            # Revoked between our check and now: the successor is already dead.
            raise _unauthorized(SESSION_ENDED)
        return self._tokens(issuer, user, family_id, successor["token"])

    async def logout(self, *, refresh_token: str | None, session_id: str | None) -> None:
        """End the session of a refresh token, or the one an access token names (`sid`).

        Unknown, expired or already-ended sessions are not an error: signing out twice is
        harmless, and the answer says nothing about which tokens exist.
        """
        now = self._now()
        if refresh_token is not None:
            token = await self._refresh.token(refresh_token_hash(refresh_token))
            if token is not None:
                await self._refresh.revoke_family(token["familyId"], now, "logout")
        if session_id is not None:
            await self._refresh.revoke_family(session_id, now, "logout")

    async def _successor(
        self,
        refresh_token: str,
        salt: str | None,
        token: Document,
        family: Document,
        now: datetime,
    ) -> Document:
        """The one token `refresh_token` rotates to, stored if it is not yet (the first
        rotation, or one a crash interrupted after the claim); the family ends when the
        successor was used already (module docstring).

        Answers `{"token": plaintext, "expiresAt": ...}`.
        """
        family_id: str = token["familyId"]
        if salt is None:  # used before successors were recorded: its chain is unknown
            await self._reuse_detected(family_id, now)
        successor = successor_refresh_token(refresh_token, salt)
        stored = await self._refresh.token(refresh_token_hash(successor))
        if stored is None:
            # Sliding: each rotation lives as long as the family's kind of sign-in allows.
            expires_at = now + self._lifetimes.refresh(bool(family.get("rememberMe")))
            await self._refresh.add_token(
                self._token_document(successor, family_id, token["userId"], now, expires_at)
            )
            stored = await self._refresh.token(refresh_token_hash(successor))
            assert stored is not None  # stored just now, or by a concurrent rotation
        if stored.get("usedAt") is not None:
            await self._reuse_detected(family_id, now)
        return {"token": successor, "expiresAt": stored["expiresAt"]}

    async def _reuse_detected(self, family_id: str, now: datetime) -> NoReturn:
        """The chain moved on past a token presented again: two parties hold the session."""
        await self._refresh.revoke_family(family_id, now, "reuse")
        log.warning("refresh token reused; family revoked", family_id=family_id)
        raise _unauthorized(REUSED)

    async def _sign_in(self, user: Document, *, remember_me: bool) -> TokenResponse:
        issuer = self._require_issuer()
        now = self._now()
        family_id = str(ObjectId())
        refresh_token = new_refresh_token()
        expires_at = now + self._lifetimes.refresh(remember_me)
        family: Document = {
            "_id": family_id,
            "userId": user["_id"],
            "rememberMe": remember_me,
            "createdAt": now,
            "lastUsedAt": now,
            "expiresAt": expires_at,
            "revokedAt": None,
            "revokedReason": None,
            # The account's session generation it belongs to (see `refresh`).
            "generation": user.get("sessionGeneration", 0),
        }
        await self._refresh.start_family(
            family, self._token_document(refresh_token, family_id, user["_id"], now, expires_at)
        )
        return self._tokens(issuer, user, family_id, refresh_token)

    @staticmethod
    def _token_document(
        token: str, family_id: str, user_id: str, now: datetime, expires_at: datetime
    ) -> Document:
        return {
            "_id": refresh_token_hash(token),
            "familyId": family_id,
            "userId": user_id,
            "createdAt": now,
            "expiresAt": expires_at,
            "usedAt": None,
        }

    def _tokens(
        self, issuer: TokenIssuer, user: Document, family_id: str, refresh_token: str
    ) -> TokenResponse:
        access = issuer.access_token(
            user_id=user["_id"],
            role=user.get("role", "user"),
            session_id=family_id,
            generation=int(user.get("sessionGeneration", 0)),
        )
        return TokenResponse(
            access_token=access,
            refresh_token=refresh_token,
            expires_in=issuer.ttl_s,
            user=User.from_document(user),
        )

    def _check_verified(self, user: Document) -> None:
        if self._require_verified and not user.get("emailVerified"):
            self._metrics.failed("unverified")
            raise EmailNotVerified(user["_id"], user["email"], user["name"])

    def _require_issuer(self) -> TokenIssuer:
        if isinstance(self._issuer, str):
            raise NotImplementedYet(self._issuer)
        return self._issuer


def account_service(
    db: Database,
    settings: Settings,
    *,
    issuer: TokenIssuer | str,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    metrics: LoginMetrics,
    rate_limits: RateLimitMetrics,
    gate: SessionGate,
    clock: Clock = utc_now,
) -> AccountService:
    return AccountService(
        UserRepository(db),
        RefreshTokenRepository(db),
        issuer=issuer,
        hasher=hasher,
        throttle=throttle,
        lifetimes=Lifetimes.from_settings(settings),
        metrics=metrics,
        rate_limits=rate_limits,
        gate=gate,
        clock=clock,
        require_verified=settings.require_email_verification,
    )
