"""CurrentUser / AdminUser through HTTP: what a caller with or without identity gets back."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from snipix.api.identity import AdminUser, CurrentUser
from snipix.app import create_app
from snipix.observability.logging import configure_logging
from snipix.settings import Settings
from tests.support import running_app

SECRET = "dependency-test-secret-" + "d" * 32
NO_TOKEN = "Sign in: this request has no access token."


def token(user_id: str = "u_1", roles: list[str] | None = None, expires_in: int = 300) -> str:
    payload: dict[str, Any] = {"sub": user_id, "exp": int(time.time()) + expires_in}
    if roles is not None:
        payload["roles"] = roles
    return jwt.encode(payload, SECRET, algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def with_probe_routes(settings: Settings) -> FastAPI:
    """The real app plus two test-only routes that report who the caller is."""
    app = create_app(settings)

    async def whoami(user: CurrentUser) -> dict[str, Any]:
        return {"userId": user.user_id, "roles": sorted(user.roles)}

    async def admin_only(user: AdminUser) -> dict[str, str]:
        return {"userId": user.user_id}

    app.add_api_route("/whoami", whoami)
    app.add_api_route("/admin-only", admin_only)
    return app


def settings_for(
    mongodb_uri: str, database_name: str, tmp_path: Path, **overrides: Any
) -> Settings:
    return Settings(
        _env_file=None,
        mongodb_uri=mongodb_uri,
        mongodb_database=database_name,
        data_dir=tmp_path / "data",
        log_format="json",
        jwt_secret=SECRET,
        **overrides,
    )


@pytest.fixture
def local_settings(mongodb_uri: str, database_name: str, tmp_path: Path) -> Settings:
    """The local profile: dev headers on, and a JWT secret so bearer tokens work too."""
    return settings_for(mongodb_uri, database_name, tmp_path)


@pytest.fixture
def production_settings(mongodb_uri: str, database_name: str, tmp_path: Path) -> Settings:
    return settings_for(mongodb_uri, database_name, tmp_path, env="production")


@pytest.fixture
async def local(local_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(with_probe_routes(local_settings)) as http:
        yield http


@pytest.fixture
async def production(production_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(with_probe_routes(production_settings)) as http:
        yield http


def assert_unauthorized(response: httpx.Response, message: str | None = None) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert error["requestId"] == response.headers["X-Request-ID"]
    if message is not None:
        assert error["message"] == message


async def test_bearer_token_signs_the_user_in(production: httpx.AsyncClient) -> None:
    """A valid bearer token is all a production client needs."""
    response = await production.get("/whoami", headers=bearer(token(roles=["editor"])))
    assert response.status_code == 200
    assert response.json() == {"userId": "u_1", "roles": ["editor"]}


async def test_request_without_identity_is_asked_to_sign_in(
    production: httpx.AsyncClient,
) -> None:
    """No credentials: 401 in the common error shape with a Bearer challenge."""
    response = await production.get("/whoami")
    assert_unauthorized(response, NO_TOKEN)
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_expired_token_is_refused_with_invalid_token_challenge(
    production: httpx.AsyncClient,
) -> None:
    """An expired token says so, and tells OAuth clients to get a new one."""
    response = await production.get("/whoami", headers=bearer(token(expires_in=-600)))
    assert_unauthorized(response, "The access token has expired; sign in again.")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(
    "authorization",
    ["Basic dTpw", "Bearer", "Bearer ", "Bearer two parts", "Token abc"],
)
async def test_other_schemes_and_malformed_headers_are_refused(
    production: httpx.AsyncClient, authorization: str
) -> None:
    """Only `Bearer <token>` is understood; anything else is a 401, never a 500."""
    response = await production.get("/whoami", headers={"Authorization": authorization})
    assert_unauthorized(response)


async def test_scheme_name_is_case_insensitive(production: httpx.AsyncClient) -> None:
    """`bearer <token>` works like `Bearer <token>` (RFC 7235)."""
    response = await production.get("/whoami", headers={"Authorization": f"bearer {token()}"})
    assert response.status_code == 200


async def test_dev_headers_sign_in_locally(local: httpx.AsyncClient) -> None:
    """In the local profile X-User-Id (and X-User-Roles) stand in for a token."""
    response = await local.get(
        "/whoami", headers={"X-User-Id": "dev@example.com", "X-User-Roles": "editor, admin,"}
    )
    assert response.status_code == 200
    assert response.json() == {"userId": "dev@example.com", "roles": ["admin", "editor"]}


async def test_local_request_without_identity_mentions_the_dev_header(
    local: httpx.AsyncClient,
) -> None:
    """Locally, the 401 tells the developer about X-User-Id."""
    response = await local.get("/whoami")
    assert_unauthorized(response)
    assert "X-User-Id" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-User-Id": "bob smith"},
        {"X-User-Id": "x" * 201},
        {"X-User-Id": ""},
        {"X-User-Id": "bob", "X-User-Roles": "admin;drop"},
    ],
)
async def test_malformed_dev_headers_are_refused(
    local: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """An X-User-Id outside 1-200 of [A-Za-z0-9_.:@-], or odd roles, is a 401."""
    response = await local.get("/whoami", headers=headers)
    assert_unauthorized(response)
    if headers["X-User-Id"]:
        assert headers["X-User-Id"] not in response.json()["error"]["message"]


async def test_bearer_header_decides_even_with_dev_headers(local: httpx.AsyncClient) -> None:
    """A bad token is not rescued by an X-User-Id header."""
    response = await local.get("/whoami", headers={**bearer("not-a-token"), "X-User-Id": "dev"})
    assert_unauthorized(response, "The access token is invalid.")


async def test_dev_headers_are_ignored_in_production(production: httpx.AsyncClient) -> None:
    """In production X-User-Id cannot impersonate anyone: it is as if it were not sent."""
    response = await production.get(
        "/whoami", headers={"X-User-Id": "admin", "X-User-Roles": "admin"}
    )
    assert_unauthorized(response, NO_TOKEN)


async def test_dev_headers_are_ignored_when_dev_auth_is_off(
    mongodb_uri: str, database_name: str, tmp_path: Path
) -> None:
    """SNIPIX_DEV_AUTH=false switches X-User-Id off in the local profile too."""
    settings = settings_for(mongodb_uri, database_name, tmp_path, dev_auth=False)
    async with running_app(with_probe_routes(settings)) as http:
        response = await http.get("/whoami", headers={"X-User-Id": "dev"})
    assert_unauthorized(response, NO_TOKEN)


async def test_admin_route_needs_the_admin_role(production: httpx.AsyncClient) -> None:
    """An editor gets 403 in the common shape; an admin gets through."""
    refused = await production.get("/admin-only", headers=bearer(token(roles=["editor"])))
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "forbidden"
    assert error["message"] == "This action needs the admin role."
    allowed = await production.get("/admin-only", headers=bearer(token(roles=["admin"])))
    assert allowed.status_code == 200
    assert allowed.json() == {"userId": "u_1"}


async def test_admin_route_with_dev_roles(local: httpx.AsyncClient) -> None:
    """Locally, X-User-Roles: admin opens admin routes, and no roles means 403."""
    allowed = await local.get("/admin-only", headers={"X-User-Id": "a", "X-User-Roles": "admin"})
    assert allowed.status_code == 200
    refused = await local.get("/admin-only", headers={"X-User-Id": "a"})
    assert refused.status_code == 403


async def test_admin_route_without_identity_is_401_not_403(
    production: httpx.AsyncClient,
) -> None:
    """An anonymous caller is asked to sign in, not told it lacks a role."""
    assert_unauthorized(await production.get("/admin-only"), NO_TOKEN)


async def test_access_log_names_the_user_and_never_the_token(
    production_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The access line carries the user id; no response or log line repeats a token."""
    settings = production_settings.model_copy(update={"log_level": "DEBUG"})
    configure_logging(settings)
    good, expired = token(user_id="u_42"), token(expires_in=-600)
    async with running_app(with_probe_routes(settings)) as http:
        capsys.readouterr()
        # Refused first: asgi-lifespan hands every request the same state dict (servers give
        # each request a copy), so a user id set earlier would still be visible to it here.
        refused = await http.get("/whoami", headers=bearer(expired))
        ok = await http.get("/whoami", headers=bearer(good))
    output = capsys.readouterr().err
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["event"] == "request"]
    assert [(line["status"], line["user_id"]) for line in access] == [(401, None), (200, "u_42")]
    rejected = [line for line in lines if line["event"] == "access token rejected"]
    assert [line["reason"] for line in rejected] == ["expired"]
    for text in (output, ok.text, refused.text):
        assert good not in text
        assert expired not in text
        assert SECRET not in text
