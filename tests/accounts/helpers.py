"""Helpers for the accounts tests: settings with a signing key, and the calls a client makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from pymongo.database import Database

from snipix.settings import Settings

Json = dict[str, Any]
Store = Database[dict[str, Any]]

SECRET = "accounts-test-secret-" + "s" * 32
PASSWORD = "Correct-Horse-9"
API = "/api/v1/auth"
WEB = "/auth"
ACCOUNT_LIMIT = 3


def accounts_settings(
    mongodb_uri: str, database_name: str, tmp_path: Path, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "mongodb_uri": mongodb_uri,
        "mongodb_database": database_name,
        "data_dir": tmp_path / "data",
        "log_format": "json",
        "jwt_secret": SECRET,
        "login_failures_per_account": ACCOUNT_LIMIT,
        "password_hash_cost": "minimal",  # as the suite's `settings` fixture
        **overrides,
    }
    return Settings(_env_file=None, **values)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def registration(email: str = "alice@example.com", **fields: Any) -> Json:
    return {
        "email": email,
        "name": "Alice Example",
        "password": PASSWORD,
        "confirm_password": PASSWORD,
        **fields,
    }


async def register(
    client: httpx.AsyncClient, email: str = "alice@example.com", **fields: Any
) -> Json:
    response = await client.post(f"{API}/register", json=registration(email, **fields))
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


async def login(
    client: httpx.AsyncClient,
    email: str = "alice@example.com",
    password: str = PASSWORD,
    **fields: Any,
) -> httpx.Response:
    return await client.post(f"{API}/login", json={"email": email, "password": password, **fields})


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(f"{API}/refresh", json={"refresh_token": token})
