"""Hostile and broken bearer tokens through HTTP (issue 8): each is a 401 `unauthorized` with
an `invalid_token` challenge, and a write carrying it changes nothing in the database.

The app runs in the production profile with an HS256 secret, an audience and an issuer
configured (so those checks are live) and no `X-User-Id` fallback.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pymongo import MongoClient

from snipix.app import create_app
from snipix.settings import Settings
from tests.auth.test_token_verifier import b64url, hand_made
from tests.support import running_app

SECRET = "jwt-failures-secret-" + "f" * 32
AUDIENCE = "snipix-api"
ISSUER = "https://id.snipix.test"
PASSWORD = "Correct-Horse-9"
INVALID = "The access token is invalid."
CHALLENGE = 'Bearer error="invalid_token"'


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid payload for user u_1 (None removes a claim)."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": "u_1",
        "exp": now + 300,
        "iat": now,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "token_use": "access",
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def signed(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def unsigned(alg: str) -> str:
    return hand_made({"alg": alg, "typ": "JWT"}, claims(), hmac_key=None)


def tampered() -> str:
    """A genuine token whose payload was swapped for another user's, signature kept."""
    header, _payload, signature = signed(claims()).split(".")
    forged = b64url(json.dumps(claims(sub="admin", roles=["admin"])).encode())
    return f"{header}.{forged}.{signature}"


def rs256() -> str:
    """A well-formed RS256 token: this service only accepts HS256 (algorithm pinned)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return jwt.encode(claims(), pem, algorithm="RS256")


def later(seconds: int) -> int:
    return int(time.time()) + seconds


CASES: dict[str, tuple[Callable[[], str], str]] = {
    "alg-none": (lambda: unsigned("none"), INVALID),
    "alg-None": (lambda: unsigned("None"), INVALID),
    "alg-NONE": (lambda: unsigned("NONE"), INVALID),
    "wrong-signature": (lambda: signed(claims(), "another-secret-" + "x" * 32), INVALID),
    "tampered-payload": (tampered, INVALID),
    "rs256-to-an-hs256-service": (rs256, INVALID),
    "expired": (
        lambda: signed(claims(exp=later(-600), iat=later(-1200))),
        "The access token has expired; sign in again.",
    ),
    "not-yet-valid-nbf": (
        lambda: signed(claims(nbf=later(3600))),
        "The access token is not valid yet; check the clock of the system that issued it.",
    ),
    "not-yet-valid-iat": (
        lambda: signed(claims(iat=later(3600))),
        "The access token is not valid yet; check the clock of the system that issued it.",
    ),
    "wrong-audience": (
        lambda: signed(claims(aud="another-api")),
        "The access token was issued for another service.",
    ),
    "no-audience": (
        lambda: signed(claims(aud=None)),
        'The access token is invalid: it has no "aud" claim.',
    ),
    "wrong-issuer": (
        lambda: signed(claims(iss="https://evil.example")),
        "The access token was issued by an identity provider this service does not trust.",
    ),
    "no-issuer": (
        lambda: signed(claims(iss=None)),
        'The access token is invalid: it has no "iss" claim.',
    ),
    "no-subject": (
        lambda: signed(claims(sub=None)),
        'The access token is invalid: it has no "sub" claim.',
    ),
    "blank-subject": (
        lambda: signed(claims(sub="   ")),
        'The access token is invalid: its "sub" claim must name the user '
        "in 1-200 printable characters.",
    ),
    "no-expiry": (
        lambda: signed(claims(exp=None)),
        'The access token is invalid: it has no "exp" claim.',
    ),
    "refresh-token-use": (
        lambda: signed(claims(token_use="refresh")),
        "The access token is invalid: it is not an access token.",
    ),
    "id-token-use": (
        lambda: signed(claims(token_use="id")),
        "The access token is invalid: it is not an access token.",
    ),
    "garbage": (lambda: "not.a.jwt", INVALID),
}


@pytest.fixture
def settings(mongodb_uri: str, database_name: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        env="production",
        mongodb_uri=mongodb_uri,
        mongodb_database=database_name,
        data_dir=tmp_path / "data",
        log_format="json",
        jwt_secret=SECRET,
        jwt_audience=AUDIENCE,
        jwt_issuer=ISSUER,
    )


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(create_app(settings)) as client:
        yield client


def snapshot(mongo: MongoClient[dict[str, Any]], settings: Settings) -> dict[str, int]:
    """Documents per collection: what a refused request must leave exactly as it was."""
    database = mongo[settings.database_name]
    return {
        name: database[name].count_documents({})
        for name in database.list_collection_names()
        if not name.startswith("system.")
    }


async def assert_refused(http: httpx.AsyncClient, token: str, message: str) -> None:
    for method, path, body in (
        ("POST", "/api/v1/projects", {"name": "should not exist"}),
        ("POST", "/projects", {"name": "should not exist either"}),
    ):
        response = await http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"] == CHALLENGE
        error = response.json()
        code, text = (
            (error["error"]["code"], error["error"]["message"])
            if "error" in error and isinstance(error["error"], dict)
            else (error["code"], error["error"])
        )
        assert code == "unauthorized"
        assert text == message
        assert token not in response.text


@pytest.mark.parametrize("case", list(CASES))
async def test_a_bad_token_is_401_and_writes_nothing(
    http: httpx.AsyncClient,
    settings: Settings,
    mongo: MongoClient[dict[str, Any]],
    case: str,
) -> None:
    """Each way a bearer token can be wrong: 401 `unauthorized`, nothing in the database."""
    make, message = CASES[case]
    before = snapshot(mongo, settings)
    await assert_refused(http, make(), message)
    assert snapshot(mongo, settings) == before
    # The same app takes a good token: the refusals were about the tokens, not the setup.
    created = await http.post(
        "/api/v1/projects",
        json={"name": "real"},
        headers={"Authorization": f"Bearer {signed(claims())}"},
    )
    assert created.status_code == 201, created.text


async def test_a_refresh_token_is_not_an_access_token(
    http: httpx.AsyncClient, settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> None:
    """The opaque refresh token a sign-in returns opens nothing when sent as a bearer."""
    registration = {
        "email": "alice@example.com",
        "name": "Alice",
        "password": PASSWORD,
        "confirm_password": PASSWORD,
    }
    signed_in = await http.post("/api/v1/auth/register", json=registration)
    assert signed_in.status_code == 201, signed_in.text
    tokens = signed_in.json()
    before = snapshot(mongo, settings)
    await assert_refused(http, tokens["refresh_token"], INVALID)
    assert snapshot(mongo, settings) == before
    # The access token of the same sign-in works (it carries the configured iss and aud).
    created = await http.post(
        "/api/v1/projects",
        json={"name": "mine"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert created.status_code == 201, created.text


async def test_the_dev_header_is_no_identity_in_production(
    http: httpx.AsyncClient, settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> None:
    """X-User-Id (and X-User-Roles) are ignored in production: 401, nothing written."""
    before = snapshot(mongo, settings)
    response = await http.post(
        "/api/v1/projects",
        json={"name": "x"},
        headers={"X-User-Id": "admin", "X-User-Roles": "admin"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert snapshot(mongo, settings) == before
