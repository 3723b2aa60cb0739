"""`snipix users create-admin` as an operator runs it: a real process, the real database,
then the admin's sign-in through the app."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from typer.testing import CliRunner

from snipix.app import create_app
from snipix.cli import app as cli_app
from snipix.cli import users as accounts_cli
from snipix.settings import Settings
from tests.accounts.helpers import (
    SECRET,
    Store,
    accounts_settings,
    bearer,
    login,
    refresh,
    register,
)
from tests.support import RedisServer, clean_env, run_snipix, running_app

ADMIN_PASSWORD = "Admin-Passw0rd"


@pytest.fixture
def settings(mongodb_uri: str, database_name: str, tmp_path: Path) -> Settings:
    """The accounts tests' settings: a signing key, strict reuse, a low per-account limit."""
    return accounts_settings(mongodb_uri, database_name, tmp_path)


@pytest.fixture
def store(mongo: MongoClient[dict[str, Any]], settings: Settings) -> Store:
    """The test's database, synchronously: to prove what was or was not written."""
    return mongo[settings.database_name]


def create_admin(
    tmp_path: Path, mongodb_uri: str, database_name: str, *args: str, **env: str
) -> tuple[int, str, str]:
    result = run_snipix(
        ["users", "create-admin", *args],
        env=clean_env(
            MONGODB_URI=mongodb_uri, MONGODB_DATABASE=database_name, JWT_SECRET=SECRET, **env
        ),
        cwd=tmp_path,
    )
    return result.returncode, result.stdout, result.stderr


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.process
async def test_created_admin_signs_in_and_opens_admin_routes(
    client: httpx.AsyncClient,
    store: Store,
    tmp_path: Path,
    mongodb_uri: str,
    database_name: str,
) -> None:
    """The admin made from the shell signs in on the web and reaches the admin-only routes;
    a second run for the same email exits 1 with one line and changes nothing."""
    code, out, err = create_admin(
        tmp_path,
        mongodb_uri,
        database_name,
        "--email",
        "Root@Example.com",
        "--name",
        "Root",
        SNIPIX_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    assert code == 0, err
    assert out.startswith("created admin root@example.com (id ")

    signed_in = await login(client, "root@example.com", ADMIN_PASSWORD)
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    assert tokens["user"]["role"] == "admin"
    assert tokens["user"]["name"] == "Root"
    deleted = await client.get(
        "/api/v1/admin/projects/deleted", headers=bearer(tokens["access_token"])
    )
    assert deleted.status_code == 200, deleted.text
    user = await register(client, "user@example.com")
    closed = await client.get(
        "/api/v1/admin/projects/deleted", headers=bearer(user["access_token"])
    )
    assert closed.status_code == 403

    code, _out, err = create_admin(
        tmp_path,
        mongodb_uri,
        database_name,
        "--email",
        "root@example.com",
        SNIPIX_ADMIN_PASSWORD="Another-Passw0rd",
    )
    assert code == 1
    assert error_lines(err) == ["error: an account with email root@example.com already exists"]
    assert store["users"].count_documents({"email": "root@example.com"}) == 1


@pytest.mark.process
def test_weak_or_missing_password_creates_nothing(
    store: Store, tmp_path: Path, mongodb_uri: str, database_name: str
) -> None:
    """No default password: a weak one, or none without a terminal, exits 1 with one line."""
    code, _out, err = create_admin(
        tmp_path,
        mongodb_uri,
        database_name,
        "--email",
        "root@example.com",
        SNIPIX_ADMIN_PASSWORD="password",
    )
    assert code == 1
    assert error_lines(err) == ["error: The password needs an upper-case letter, a digit."]
    code, _out, err = create_admin(
        tmp_path, mongodb_uri, database_name, "--email", "root@example.com"
    )
    assert code == 1
    (line,) = error_lines(err)
    assert "SNIPIX_ADMIN_PASSWORD" in line
    code, _out, err = create_admin(
        tmp_path,
        mongodb_uri,
        database_name,
        "--email",
        "not-an-email",
        SNIPIX_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    assert code == 2
    assert error_lines(err) == ["error: --email: 'not-an-email' is not an email address"]
    assert store["users"].count_documents({}) == 0


def test_password_is_prompted_twice_in_a_terminal(
    store: Store,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a terminal the password is asked for, hidden, with a confirmation."""
    monkeypatch.setattr(accounts_cli, "_interactive", lambda: True)
    monkeypatch.setenv("MONGODB_URI", str(settings.mongodb_uri.get_secret_value()))  # type: ignore[union-attr]
    monkeypatch.setenv("MONGODB_DATABASE", settings.database_name)
    monkeypatch.setenv("LOG_FORMAT", "json")
    result = CliRunner().invoke(
        cli_app,
        ["users", "create-admin", "--email", "root@example.com"],
        input=f"{ADMIN_PASSWORD}\n{ADMIN_PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert "created admin root@example.com" in result.output
    assert ADMIN_PASSWORD not in result.output, "the prompt does not echo"
    admin = store["users"].find_one({"email": "root@example.com"})
    assert admin is not None
    assert (admin["role"], admin["name"]) == ("admin", "root")


def users_command(
    tmp_path: Path, mongodb_uri: str, database_name: str, *args: str, **env: str
) -> tuple[int, str, str]:
    result = run_snipix(
        ["users", *args],
        env=clean_env(MONGODB_URI=mongodb_uri, MONGODB_DATABASE=database_name, **env),
        cwd=tmp_path,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.mark.process
async def test_disable_enable_and_delete_from_the_shell(
    store: Store,
    tmp_path: Path,
    mongodb_uri: str,
    database_name: str,
    redis_server: RedisServer,
) -> None:
    """A running service (cached project, cached session standing) refuses the account's
    tokens as soon as the command has disabled it; enabled, it signs in again; deleted,
    its sessions end, its email is free and its projects stay."""
    prefix = f"test_{uuid.uuid4().hex[:12]}"
    shared = {"REDIS_URL": redis_server.url, "SNIPIX_CACHE_PREFIX": prefix}
    settings = accounts_settings(
        mongodb_uri, database_name, tmp_path, redis_url=redis_server.url, cache_prefix=prefix
    )

    def users(*args: str) -> tuple[int, str, str]:
        return users_command(tmp_path, mongodb_uri, database_name, *args, **shared)

    async with running_app(create_app(settings)) as client:
        created = await register(client)
        user_id = created["user"]["id"]
        access = bearer(created["access_token"])
        made = await client.post("/api/v1/projects", json={"name": "Cut"}, headers=access)
        project = f"/api/v1/projects/{made.json()['id']}"
        for _ in range(2):
            assert (await client.get(project, headers=access)).status_code == 200

        code, out, err = users("disable", "Alice@Example.com")
        assert code == 0, err
        assert out.startswith(f"disabled alice@example.com (id {user_id})")
        assert "warning" not in err
        assert (await client.get(project, headers=access)).status_code == 401
        assert (await client.get("/api/v1/projects", headers=access)).status_code == 401
        assert (await refresh(client, created["refresh_token"])).status_code == 401
        assert (await login(client)).status_code == 403
        doc = store["users"].find_one({"_id": user_id})
        assert doc is not None
        assert (doc["status"], doc["sessionGeneration"]) == ("suspended", 1)
        family = store["refresh_families"].find_one({"userId": user_id})
        assert family is not None
        assert family["revokedReason"] == "disabled"

        code, out, err = users("enable", "alice@example.com")
        assert code == 0, err
        assert out.startswith("enabled alice@example.com")
        assert (await client.get(project, headers=access)).status_code == 401, "stays ended"
        again = await login(client)
        assert again.status_code == 200, again.text
        fresh = bearer(again.json()["access_token"])
        assert (await client.get(project, headers=fresh)).status_code == 200

        code, out, err = users("delete", "alice@example.com")
        assert code == 0, err
        assert out.startswith("deleted alice@example.com")
        assert (await client.get("/api/v1/projects", headers=fresh)).status_code == 401
        assert (await login(client)).status_code == 401
        doc = store["users"].find_one({"_id": user_id})
        assert doc is not None
        assert (doc["status"], doc["email"], doc["sessionGeneration"]) == (
            "deleted",
            f"deleted:{user_id}",
            3,
        )
        assert "passwordHash" not in doc
        assert store["projects"].count_documents({"userId": user_id}) == 1
        reborn = await register(client)
        assert reborn["user"]["id"] != user_id

    code, _out, err = users("delete", "nobody@example.com")
    assert code == 1
    assert error_lines(err) == ["error: There is no account with email nobody@example.com."]
