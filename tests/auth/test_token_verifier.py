"""TokenVerifier: which bearer tokens sign a user in, and what a refused caller is told."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from snipix.auth.principal import Principal
from snipix.auth.token_verifier import (
    INVALID_MESSAGE,
    MAX_TOKEN_LENGTH,
    NOT_CONFIGURED,
    TokenVerifier,
)
from snipix.errors import Unauthorized
from snipix.settings import Settings

SECRET = "hs256-test-secret-" + "k" * 32
INVALID_CHALLENGE = 'Bearer error="invalid_token"'


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid payload for user u_1, with `overrides` (None removes a claim)."""
    payload: dict[str, Any] = {"sub": "u_1", "exp": int(time.time()) + 300}
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def hs256(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hand_made(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None) -> str:
    """A compact JWT built without PyJWT, which refuses to make the forged ones we need."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if hmac_key is None:
        return f"{signing_input}."
    signature = hmac.new(hmac_key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def verifier(**settings: Any) -> TokenVerifier:
    return TokenVerifier.from_settings(Settings(_env_file=None, **settings))


def refusal(verifier: TokenVerifier, token: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        verifier.verify(token)
    return caught.value


@pytest.fixture(scope="module")
def rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def test_valid_hs256_token_signs_the_user_in() -> None:
    """A token signed with JWT_SECRET yields its subject and roles."""
    principal = verifier(jwt_secret=SECRET).verify(hs256(claims(roles=["editor"])))
    assert principal == Principal(user_id="u_1", roles=frozenset({"editor"}))
    assert not principal.is_admin


def test_expired_token_asks_to_sign_in_again() -> None:
    """An expired token is refused with a message saying so and an invalid_token challenge."""
    error = refusal(verifier(jwt_secret=SECRET), hs256(claims(exp=int(time.time()) - 120)))
    assert error.message == "The access token has expired; sign in again."
    assert error.headers == {"WWW-Authenticate": INVALID_CHALLENGE}


def test_small_clock_skew_is_tolerated() -> None:
    """A token that expired seconds ago (issuer clock drift) still works."""
    token = hs256(claims(exp=int(time.time()) - 5, iat=int(time.time()) + 5))
    assert verifier(jwt_secret=SECRET).verify(token).user_id == "u_1"


def test_token_from_the_future_is_refused() -> None:
    """A token whose nbf is well ahead of our clock is refused as not valid yet."""
    error = refusal(verifier(jwt_secret=SECRET), hs256(claims(nbf=int(time.time()) + 600)))
    assert "not valid yet" in error.message


def test_wrong_secret_is_invalid() -> None:
    """A token signed with another secret is simply invalid."""
    token = hs256(claims(), secret="another-secret-" + "x" * 32)
    assert refusal(verifier(jwt_secret=SECRET), token).message == INVALID_MESSAGE


@pytest.mark.parametrize("claim", ["sub", "exp"])
def test_required_claims_are_named_when_missing(claim: str) -> None:
    """A token without sub or exp is refused, naming the missing claim."""
    error = refusal(verifier(jwt_secret=SECRET), hs256(claims(**{claim: None})))
    assert error.message == f'The access token is invalid: it has no "{claim}" claim.'
    assert error.headers == {"WWW-Authenticate": INVALID_CHALLENGE}


@pytest.mark.parametrize("subject", ["", "   ", "u" * 201, "u_1\nforged log line"])
def test_unusable_subject_is_refused(subject: str) -> None:
    """An empty, blank, oversized or control-character subject never becomes a user id."""
    error = refusal(verifier(jwt_secret=SECRET), hs256(claims(sub=subject)))
    assert '"sub"' in error.message


def test_non_string_subject_is_invalid() -> None:
    """A numeric subject is refused rather than converted."""
    assert refusal(verifier(jwt_secret=SECRET), hs256(claims(sub=42))).message == INVALID_MESSAGE


def test_audience_is_checked_when_configured() -> None:
    """With JWT_AUDIENCE set, tokens for other services or without aud are refused."""
    checked = verifier(jwt_secret=SECRET, jwt_audience="snipix-api")
    assert checked.verify(hs256(claims(aud="snipix-api"))).user_id == "u_1"
    assert checked.verify(hs256(claims(aud=["other", "snipix-api"]))).user_id == "u_1"
    wrong = refusal(checked, hs256(claims(aud="billing-api")))
    assert wrong.message == "The access token was issued for another service."
    assert '"aud"' in refusal(checked, hs256(claims())).message


def test_audience_is_not_judged_when_not_configured() -> None:
    """Without JWT_AUDIENCE (or with it blank), a token carrying aud is still accepted."""
    for unset in ({}, {"jwt_audience": ""}):
        token = hs256(claims(aud="anything"))
        assert verifier(jwt_secret=SECRET, **unset).verify(token).user_id == "u_1"


def test_issuer_is_checked_when_configured() -> None:
    """With JWT_ISSUER set, tokens from another issuer or without iss are refused."""
    checked = verifier(jwt_secret=SECRET, jwt_issuer="https://id.snipix.test/")
    assert checked.verify(hs256(claims(iss="https://id.snipix.test/"))).user_id == "u_1"
    wrong = refusal(checked, hs256(claims(iss="https://evil.test/")))
    assert "identity provider this service does not trust" in wrong.message
    assert '"iss"' in refusal(checked, hs256(claims())).message


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_token_is_refused(alg: str, rsa_private_key: rsa.RSAPrivateKey) -> None:
    """An `alg: none` token is refused whichever key the service is configured with."""
    token = hand_made({"alg": alg, "typ": "JWT"}, claims(roles=["admin"]), None)
    for configured in (
        verifier(jwt_secret=SECRET),
        verifier(jwt_public_key=public_pem(rsa_private_key)),
    ):
        assert refusal(configured, token).message == INVALID_MESSAGE


def test_rs256_token_signs_the_user_in(rsa_private_key: rsa.RSAPrivateKey) -> None:
    """A token signed by the identity provider's RSA key is accepted with JWT_PUBLIC_KEY."""
    checked = verifier(jwt_public_key=public_pem(rsa_private_key))
    token = jwt.encode(claims(roles=["admin"]), rsa_private_key, algorithm="RS256")
    assert checked.verify(token) == Principal(user_id="u_1", roles=frozenset({"admin"}))
    assert checked.algorithm == "RS256"


def test_rs256_token_from_another_key_is_refused(rsa_private_key: rsa.RSAPrivateKey) -> None:
    """A token signed by a different RSA key is invalid."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), other, algorithm="RS256")
    checked = verifier(jwt_public_key=public_pem(rsa_private_key))
    assert refusal(checked, token).message == INVALID_MESSAGE


def test_hs256_forged_with_the_public_key_is_refused(
    rsa_private_key: rsa.RSAPrivateKey,
) -> None:
    """Algorithm confusion: HMAC-signing with the (public) RSA key does not make an admin."""
    pem = public_pem(rsa_private_key)
    forged = hand_made({"alg": "HS256", "typ": "JWT"}, claims(roles=["admin"]), pem.encode())
    assert refusal(verifier(jwt_public_key=pem), forged).message == INVALID_MESSAGE


def test_hs256_service_refuses_rs256_tokens(rsa_private_key: rsa.RSAPrivateKey) -> None:
    """With JWT_SECRET configured, only HS256 is accepted, even from a genuine RSA signer."""
    token = jwt.encode(claims(), rsa_private_key, algorithm="RS256")
    assert refusal(verifier(jwt_secret=SECRET), token).message == INVALID_MESSAGE


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (None, frozenset()),
        ([], frozenset()),
        ("admin", frozenset({"admin"})),
        (["admin", "editor", "admin"], frozenset({"admin", "editor"})),
    ],
)
def test_roles_claim_is_a_name_or_a_list(roles: Any, expected: frozenset[str]) -> None:
    """Roles may be one name or a list of names; none at all means no roles."""
    principal = verifier(jwt_secret=SECRET).verify(hs256(claims(roles=roles)))
    assert principal.roles == expected


@pytest.mark.parametrize(
    "roles", [5, True, {"admin": True}, ["admin", 3], [""], [" admin"], ["a" * 101], ["r"] * 101]
)
def test_malformed_roles_claim_is_refused(roles: Any) -> None:
    """A roles claim that is not role names is refused, not half-read."""
    error = refusal(verifier(jwt_secret=SECRET), hs256(claims(roles=roles)))
    assert '"roles"' in error.message


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "x" * (MAX_TOKEN_LENGTH + 1)])
def test_garbage_is_invalid(token: str) -> None:
    """Anything that is not a token gets the same plain answer."""
    assert refusal(verifier(jwt_secret=SECRET), token).message == INVALID_MESSAGE


@pytest.mark.parametrize("unset", [{}, {"jwt_secret": ""}, {"jwt_secret": "   "}])
def test_without_a_key_every_token_is_refused(unset: dict[str, str]) -> None:
    """No JWT key (or a blank JWT_SECRET from a copied .env) accepts no token at all."""
    checked = verifier(**unset)
    assert not checked.configured
    empty_key_token = hand_made({"alg": "HS256", "typ": "JWT"}, claims(), b"")
    for token in (empty_key_token, hs256(claims())):
        assert refusal(checked, token).message == NOT_CONFIGURED


def test_unusable_keys_stop_start_up() -> None:
    """A non-RSA, short RSA or misplaced PEM key is a start-up error naming the variable."""
    ec_pem = public_pem(ec.generate_private_key(ec.SECP256R1()))
    short_pem = public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505 - must be refused
    for settings, expected in (
        ({"jwt_public_key": ec_pem}, "JWT_PUBLIC_KEY: must be an RSA public key"),
        ({"jwt_public_key": short_pem}, "JWT_PUBLIC_KEY: the RSA key has 1024 bits"),
        ({"jwt_secret": ec_pem}, "JWT_SECRET: looks like a public key"),
        (
            {"jwt_public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"},
            "JWT_PUBLIC_KEY: is not a readable PEM public key",
        ),
    ):
        with pytest.raises(ValueError, match=f"^{re.escape(expected)}"):
            verifier(**settings)


def test_refusals_never_repeat_the_token_or_secret() -> None:
    """Whatever goes wrong, the message and headers hold neither the token nor the secret."""
    checked = verifier(jwt_secret=SECRET, jwt_audience="snipix-api")
    for token in (
        hs256(claims(aud="snipix-api", exp=int(time.time()) - 600)),
        hs256(claims(aud="other")),
        hs256(claims(aud="snipix-api", roles=[1])),
        hs256(claims(aud="snipix-api"), secret="wrong-" + "w" * 32),
    ):
        error = refusal(checked, token)
        shown = f"{error.message} {error.details} {error.headers} {error!r}"
        assert token not in shown
        assert SECRET not in shown


def test_the_session_generation_is_read_from_tokens_naming_a_session() -> None:
    """`gen` of a token with `sid` (0 when it predates the claim); None without `sid` (an
    identity provider's token: nothing to check); anything but a count is refused."""
    checked = verifier(jwt_secret=SECRET)
    assert checked.verify(hs256(claims(sid="s1", gen=3))).generation == 3
    assert checked.verify(hs256(claims(sid="s1"))).generation == 0
    assert checked.verify(hs256(claims(gen=3))).generation is None
    for bad in ("3", -1, 1.5, True, 2**53):
        refused = refusal(checked, hs256(claims(sid="s1", gen=bad)))
        assert '"gen"' in refused.message
