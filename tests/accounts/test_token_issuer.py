"""Signing keys: RS256 with a private key, issuer/audience claims, and the settings checks
that stop start-up with one line when the key cannot sign what the service verifies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from snipix.app import create_app
from snipix.settings import Settings, describe_errors
from tests.accounts.helpers import PASSWORD, accounts_settings, bearer, login, register
from tests.support import running_app


def rsa_pair(bits: int = 2048) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return rsa_pair()


async def test_rs256_tokens_open_the_api(
    mongodb_uri: str, database_name: str, tmp_path: Path, keys: tuple[str, str]
) -> None:
    """With JWT_PRIVATE_KEY + JWT_PUBLIC_KEY, sign-in issues RS256 tokens the API accepts,
    carrying the configured issuer and audience."""
    private, public = keys
    settings = accounts_settings(
        mongodb_uri,
        database_name,
        tmp_path,
        jwt_secret=None,
        jwt_private_key=private.replace("\n", "\\n"),  # as an environment variable carries it
        jwt_public_key=public,
        jwt_issuer="https://snipix.example",
        jwt_audience="snipix-api",
    )
    async with running_app(create_app(settings)) as client:
        created = await register(client)
        token = created["access_token"]
        assert jwt.get_unverified_header(token)["alg"] == "RS256"
        claims = jwt.decode(token, public, algorithms=["RS256"], audience="snipix-api")
        assert (claims["iss"], claims["aud"]) == ("https://snipix.example", "snipix-api")
        listed = await client.get("/api/v1/projects", headers=bearer(token))
        assert listed.status_code == 200, listed.text
        assert (await login(client)).status_code == 200


async def test_public_key_alone_verifies_but_does_not_sign(
    mongodb_uri: str, database_name: str, tmp_path: Path, keys: tuple[str, str]
) -> None:
    """A service verifying an identity provider's tokens has no local sign-in: 501 saying why."""
    _private, public = keys
    settings = accounts_settings(
        mongodb_uri, database_name, tmp_path, jwt_secret=None, jwt_public_key=public
    )
    async with running_app(create_app(settings)) as client:
        response = await login(client, password=PASSWORD)
        assert response.status_code == 501
        assert "JWT_PRIVATE_KEY" in response.json()["error"]["message"]


def settings_error(**values: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **values)
    return describe_errors(caught.value)


def test_private_key_settings_are_checked_at_start_up(keys: tuple[str, str]) -> None:
    """A private key that cannot sign what JWT_PUBLIC_KEY verifies is one line naming it."""
    private, public = keys
    _other_private, other_public = rsa_pair()
    cases = [
        ({"jwt_private_key": private}, "needs JWT_PUBLIC_KEY"),
        ({"jwt_private_key": private, "jwt_public_key": other_public}, "not the private half"),
        ({"jwt_private_key": "garbage", "jwt_public_key": public}, "not a readable"),
        (
            {"jwt_private_key": private, "jwt_public_key": public, "jwt_secret": "s" * 40},
            "not both",
        ),
    ]
    for values, expected in cases:
        lines = settings_error(**values)
        assert len(lines) == 1, lines
        assert lines[0].startswith("invalid setting JWT_PRIVATE_KEY: ")
        assert expected in lines[0]
        assert private not in lines[0]


def test_private_key_is_masked_and_redacted(keys: tuple[str, str]) -> None:
    """The private key never appears in `snipix config` and is handed to the log redactor."""
    private, public = keys
    settings = Settings(_env_file=None, jwt_private_key=private, jwt_public_key=public)
    assert settings.describe()["JWT_PRIVATE_KEY"] == "****"
    assert private.strip() in settings.secret_values()
