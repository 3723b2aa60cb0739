"""Bearer token verification: one `TokenVerifier` per app, built from the settings.

The algorithm is fixed by configuration, never by the token: `JWT_SECRET` means HS256 only,
`JWT_PUBLIC_KEY` means RS256 only. Reading `alg` from the token is how `none` tokens and
algorithm confusion (an HS256 token "signed" with the RSA public key as HMAC secret) get
accepted elsewhere; here either is just an invalid token.

Refusals are `Unauthorized` errors with a message for a person and an RFC 6750 challenge.
Neither the token nor the key ever appears in a message or a log line: a token is a
password until it expires.
"""

from __future__ import annotations

from typing import Final

import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import HMACAlgorithm

from snipix.auth.principal import Principal
from snipix.errors import Unauthorized
from snipix.settings import Settings

log = structlog.get_logger(__name__)

# Clocks of the issuer and of this service drift; 30 s absorbs that without making an
# expired token meaningfully longer-lived.
LEEWAY_S: Final = 30
MAX_SUBJECT_LENGTH: Final = 200
# Real access tokens are a few hundred bytes to a few KiB; anything far larger is refused
# before any base64 or signature work is spent on it.
MAX_TOKEN_LENGTH: Final = 16_384
MAX_ROLES: Final = 100
MAX_ROLE_LENGTH: Final = 100
# Below this PyJWT warns on every request, and NIST no longer allows it for signatures.
MIN_RSA_KEY_BITS: Final = 2048
# JSON numbers past 2**53 lose precision in other languages' parsers.
MAX_GENERATION: Final = 2**53

INVALID_MESSAGE: Final = "The access token is invalid."
# The `token_use` claim of the service's own access tokens (accounts/token_issuer.py).
ACCESS_TOKEN_USE: Final = "access"  # noqa: S105 (a claim value)
NOT_CONFIGURED: Final = "Bearer tokens are not accepted: no JWT key is configured."

_REJECTIONS: Final[tuple[tuple[type[jwt.PyJWTError], str, str], ...]] = (
    # (error, reason for the log, message for the caller); the first match wins.
    (jwt.ExpiredSignatureError, "expired", "The access token has expired; sign in again."),
    (
        jwt.ImmatureSignatureError,
        "not_yet_valid",
        "The access token is not valid yet; check the clock of the system that issued it.",
    ),
    (
        jwt.InvalidAudienceError,
        "audience",
        "The access token was issued for another service.",
    ),
    (
        jwt.InvalidIssuerError,
        "issuer",
        "The access token was issued by an identity provider this service does not trust.",
    ),
    (jwt.InvalidAlgorithmError, "algorithm", INVALID_MESSAGE),
    (jwt.InvalidSignatureError, "signature", INVALID_MESSAGE),
)


def invalid_token(message: str) -> Unauthorized:
    """A 401 whose challenge tells OAuth clients to refresh or re-authenticate (RFC 6750)."""
    return Unauthorized(message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _blank_to_none(value: str | None) -> str | None:
    # `.env.example` ships `JWT_AUDIENCE=` etc.: an empty value means "not configured".
    if value is None:
        return None
    return value.strip() or None


def _hmac_key(secret: str) -> bytes:
    try:
        key: bytes = HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(secret)
    except jwt.InvalidKeyError:
        # PyJWT refuses PEM text as an HMAC secret (that is the confusion attack's recipe).
        raise ValueError(
            "JWT_SECRET: looks like a public key; put a PEM public key in JWT_PUBLIC_KEY"
        ) from None
    return key


def _rsa_public_key(pem: str) -> RSAPublicKey:
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        raise ValueError("JWT_PUBLIC_KEY: is not a readable PEM public key") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError("JWT_PUBLIC_KEY: must be an RSA public key (tokens are verified RS256)")
    if key.key_size < MIN_RSA_KEY_BITS:
        raise ValueError(
            f"JWT_PUBLIC_KEY: the RSA key has {key.key_size} bits; "
            f"at least {MIN_RSA_KEY_BITS} are required"
        )
    return key


def _subject(claims: dict[str, object]) -> str:
    subject = claims.get("sub")
    # PyJWT has checked presence and type; the bounds keep user ids sane in logs and storage.
    if (
        not isinstance(subject, str)
        or not subject.strip()
        or len(subject) > MAX_SUBJECT_LENGTH
        or not subject.isprintable()
    ):
        raise invalid_token(
            'The access token is invalid: its "sub" claim must name the user '
            f"in 1-{MAX_SUBJECT_LENGTH} printable characters."
        )
    return subject


def _is_role(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ROLE_LENGTH
        and value.isprintable()
        and value == value.strip()
    )


def _roles(claims: dict[str, object]) -> frozenset[str]:
    value = claims.get("roles")
    if value is None:
        return frozenset()
    items = [value] if isinstance(value, str) else value
    # Anything but role names is refused rather than ignored: a typo in the identity
    # provider's mapping should be visible at once, not silently demote an admin.
    if not isinstance(items, list) or len(items) > MAX_ROLES or not all(map(_is_role, items)):
        raise invalid_token(
            'The access token is invalid: its "roles" claim must be a role name '
            "or a list of role names."
        )
    return frozenset(str(item) for item in items)


def _generation(claims: dict[str, object]) -> int | None:
    """The session generation of a token naming one of this service's sessions (`sid`).

    A token without `sid` is an identity provider's: its sessions are not ours to end.
    A `sid` without `gen` is a token issued before the claim existed: generation 0, which
    every account has until its first revocation.
    """
    if "sid" not in claims:
        return None
    value = claims.get("gen", 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_GENERATION:
        raise invalid_token('The access token is invalid: its "gen" claim must be a count.')
    return value


class TokenVerifier:
    """Checks bearer tokens against the one key and algorithm the service is configured with.

    Built once per app (`from_settings`) so the PEM is parsed once, and a bad key stops
    start-up instead of failing every request.
    """

    __slots__ = ("_algorithm", "_audience", "_issuer", "_key")

    def __init__(
        self,
        *,
        key: bytes | RSAPublicKey | None,
        algorithm: str,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        self._key = key
        self._algorithm = algorithm
        self._audience = audience
        self._issuer = issuer

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """HS256 with JWT_SECRET, RS256 with JWT_PUBLIC_KEY, or refuse every token.

        Raises `ValueError` naming the variable when the configured key is unusable.
        """
        audience = _blank_to_none(settings.jwt_audience)
        issuer = _blank_to_none(settings.jwt_issuer)
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
        # A blank secret is "not configured", never an empty HMAC key anyone could sign with.
        if secret.strip():
            return cls(key=_hmac_key(secret), algorithm="HS256", audience=audience, issuer=issuer)
        if settings.jwt_public_key is not None:
            return cls(
                key=_rsa_public_key(settings.jwt_public_key),
                algorithm="RS256",
                audience=audience,
                issuer=issuer,
            )
        return cls(key=None, algorithm="HS256", audience=audience, issuer=issuer)

    @property
    def configured(self) -> bool:
        """Whether any token can be accepted at all."""
        return self._key is not None

    @property
    def algorithm(self) -> str | None:
        """The one accepted `alg` (for start-up logs), or None when tokens are refused."""
        return self._algorithm if self._key is not None else None

    def verify(self, token: str) -> Principal:
        """The principal a valid token names; `Unauthorized` for anything else."""
        if self._key is None:
            raise invalid_token(NOT_CONFIGURED)
        if not token or len(token) > MAX_TOKEN_LENGTH:
            self._rejected("malformed")
            raise invalid_token(INVALID_MESSAGE)
        required = ["exp", "sub"]
        if self._audience is not None:
            required.append("aud")
        if self._issuer is not None:
            required.append("iss")
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                # Without a configured audience an `aud` claim is not ours to judge.
                options={"require": required, "verify_aud": self._audience is not None},
            )
        except jwt.MissingRequiredClaimError as error:
            self._rejected("missing_claim", claim=error.claim)
            raise invalid_token(
                f'The access token is invalid: it has no "{error.claim}" claim.'
            ) from None
        except jwt.PyJWTError as error:
            reason, message = next(
                ((r, m) for kind, r, m in _REJECTIONS if isinstance(error, kind)),
                ("invalid", INVALID_MESSAGE),
            )
            self._rejected(reason)
            raise invalid_token(message) from None
        except (ValueError, TypeError):
            # Malformed input that slipped past PyJWT's own wrapping: still just invalid.
            self._rejected("malformed")
            raise invalid_token(INVALID_MESSAGE) from None
        # A token that says it is for something else (a refresh or an ID token an
        # identity provider signs with the same key) never authorises a request. Tokens
        # without the claim (most identity providers') are access tokens.
        if "token_use" in claims and claims["token_use"] != ACCESS_TOKEN_USE:
            self._rejected("token_use")
            raise invalid_token("The access token is invalid: it is not an access token.")
        return Principal(
            user_id=_subject(claims), roles=_roles(claims), generation=_generation(claims)
        )

    @staticmethod
    def _rejected(reason: str, **fields: str) -> None:
        # Debug only: the access line already records the 401; this says why, never what.
        log.debug("access token rejected", reason=reason, **fields)
