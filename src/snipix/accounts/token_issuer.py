"""Issuing tokens: signed JWT access tokens and opaque refresh tokens.

Access tokens are what `snipix.auth.token_verifier.TokenVerifier` checks on every `/api/v1`
request: signed with the same key and algorithm (HS256 with JWT_SECRET, RS256 with
JWT_PRIVATE_KEY whose public half is JWT_PUBLIC_KEY), `sub` = user id, `roles` (read by the
verifier; `admin` opens the admin routes) and `role` (the original app's single role),
`iat`/`exp`, `iss`/`aud` when configured, `sid` (the refresh-token family, so a sign-out
with only the access token can end its session), `gen` (the account's session generation:
a token is accepted only while it equals the account's current one, so bumping it ends
every session at once), `token_use: "access"` and the header
`typ: at+jwt` (RFC 9068).

Refresh tokens are not JWTs: 256 random bits, meaningless without the database, stored
only as their SHA-256. A refresh token presented as a bearer token is therefore never a
valid access token (it is not even a JWT), whatever the verifier checks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from snipix.clock import Clock, utc_now
from snipix.settings import Settings

ACCESS_TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 (RFC 9068 header value)
TOKEN_USE: Final = "access"  # noqa: S105 (a claim value)
REFRESH_TOKEN_BYTES: Final = 32

NOT_CONFIGURED: Final = (
    "Sign-in is not enabled on this server: it has no key to sign access tokens with. "
    "Set JWT_SECRET (HS256), or JWT_PRIVATE_KEY together with JWT_PUBLIC_KEY (RS256)."
)
VERIFY_ONLY: Final = (
    "Sign-in is not enabled on this server: it accepts tokens from an identity provider "
    "(JWT_PUBLIC_KEY) and has no JWT_PRIVATE_KEY to sign its own."
)


def new_refresh_token() -> str:
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def new_successor_salt() -> str:
    return secrets.token_hex(16)


def successor_refresh_token(token: str, salt: str) -> str:
    """The token a refresh token rotates to: HMAC-SHA256 keyed by the token itself over a
    random salt stored with its hash.

    Only the service can make it again, and only when the token is presented: the salt is
    in the database, the token is not (its hash is). So a replay can be answered with the
    successor already handed out, instead of a second, independent one, without storing
    any token in a form that signs anyone in.
    """
    digest = hmac.new(token.encode(), bytes.fromhex(salt), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def refresh_token_hash(token: str) -> str:
    """The stored form of a refresh token. A plain hash suffices: the token is 256 random
    bits, so there is nothing to brute-force that a slow hash would protect."""
    return hashlib.sha256(token.encode()).hexdigest()


def _blank_to_none(value: str | None) -> str | None:
    # As the verifier reads them: `JWT_ISSUER=` means "not configured".
    if value is None:
        return None
    return value.strip() or None


@dataclass(frozen=True, slots=True)
class TokenIssuer:
    """Signs access tokens with the service's configured key."""

    key: bytes | RSAPrivateKey
    algorithm: str
    ttl_s: int
    issuer: str | None = None
    audience: str | None = None
    # `iat` and `exp` come from this clock.
    clock: Clock = utc_now

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenIssuer | str:
        """The issuer, or why sign-in is disabled (a message for the caller of a 501)."""
        issuer = _blank_to_none(settings.jwt_issuer)
        audience = _blank_to_none(settings.jwt_audience)
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
        if secret.strip():
            return cls(secret.encode(), "HS256", settings.access_token_ttl_s, issuer, audience)
        if settings.jwt_private_key is not None:
            # Settings has checked it is an RSA key matching JWT_PUBLIC_KEY.
            key = load_pem_private_key(
                settings.jwt_private_key.get_secret_value().encode(), password=None
            )
            assert isinstance(key, RSAPrivateKey)
            return cls(key, "RS256", settings.access_token_ttl_s, issuer, audience)
        if settings.jwt_public_key is not None:
            return VERIFY_ONLY
        return NOT_CONFIGURED

    def access_token(self, *, user_id: str, role: str, session_id: str, generation: int = 0) -> str:
        now = int(self.clock().timestamp())
        claims: dict[str, Any] = {
            "sub": user_id,
            "roles": [role],
            "role": role,
            "sid": session_id,
            "gen": generation,
            "token_use": TOKEN_USE,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": uuid.uuid4().hex,
        }
        if self.issuer is not None:
            claims["iss"] = self.issuer
        if self.audience is not None:
            claims["aud"] = self.audience
        return jwt.encode(
            claims, self.key, algorithm=self.algorithm, headers={"typ": ACCESS_TOKEN_TYPE}
        )


def session_of(verified_token: str) -> str | None:
    """The `sid` claim of an access token the app's `TokenVerifier` has already accepted."""
    try:
        claims = jwt.decode(verified_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    sid = claims.get("sid")
    return sid if isinstance(sid, str) and 0 < len(sid) <= 64 else None
