"""Accounts through HTTP, as the web app and a client author use them: register, sign in,
the own profile, refresh rotation, sign-out, the failure limits, and the same tokens on
`/api/v1`. Each test runs the real app on its own database; `store` proves what was (not)
written."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from snipix.app import create_app
from tests.accounts.helpers import (
    ACCOUNT_LIMIT,
    API,
    PASSWORD,
    SECRET,
    WEB,
    Json,
    Store,
    accounts_settings,
    bearer,
    login,
    refresh,
    register,
    registration,
)
from tests.support import RedisServer, running_app

USER_KEYS = {
    "id",
    "_id",
    "email",
    "name",
    "username",
    "avatar_url",
    "role",
    "status",
    "auth_provider",
    "is_email_verified",
    "last_login",
    "login_count",
    "total_session_time",
    "preferences",
    "created_at",
    "updated_at",
}
TOKEN_KEYS = {"access_token", "refresh_token", "token_type", "expires_in", "user"}


def users(store: Store) -> list[Json]:
    return list(store["users"].find())


# --- register, sign in, profile -------------------------------------------------------


async def test_register_then_login_then_read_and_change_the_profile(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A new account is active at once, signs in, and its owner can read and edit it."""
    created = await register(client, " Alice@Example.COM ", username="alice_e")
    assert set(created) == TOKEN_KEYS
    assert created["token_type"] == "bearer"
    assert created["expires_in"] == 900
    user = created["user"]
    assert set(user) == USER_KEYS
    assert user["id"] == user["_id"]
    assert user["email"] == "alice@example.com", "stored trimmed and lower-cased"
    assert (user["role"], user["status"], user["is_email_verified"]) == ("user", "active", False)
    assert (user["username"], user["preferences"], user["login_count"]) == ("alice_e", {}, 0)

    signed_in = await login(client, "ALICE@example.com", remember_me=True)
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    assert set(tokens) == TOKEN_KEYS
    assert tokens["user"]["id"] == user["id"]
    assert tokens["user"]["login_count"] == 1
    assert tokens["user"]["last_login"] is not None

    me = await client.get(f"{API}/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == "alice@example.com"

    # What the web app's profile page sends: empty strings for fields left blank.
    changed = await client.put(
        f"{API}/me",
        json={
            "name": " Alice Liddell ",
            "username": "",
            "avatar_url": "https://cdn.example.com/a.png",
            "preferences": {"theme": "dark", "shortcuts": {"cut": "c"}},
        },
        headers=bearer(tokens["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    profile = changed.json()
    assert profile["name"] == "Alice Liddell"
    assert profile["username"] is None
    assert profile["avatar_url"] == "https://cdn.example.com/a.png"
    assert profile["preferences"] == {"theme": "dark", "shortcuts": {"cut": "c"}}
    assert profile["updated_at"] > profile["created_at"]
    again = await client.get(f"{API}/me", headers=bearer(tokens["access_token"]))
    assert again.json() == profile
    (stored,) = users(store)
    assert stored["passwordHash"].startswith("$argon2id$")
    assert PASSWORD not in str(stored)


@pytest.mark.parametrize(
    ("password", "missing"),
    [
        ("Sh0rt", "at least 8 characters"),
        ("alllowercase1", "an upper-case letter"),
        ("ALLUPPERCASE1", "a lower-case letter"),
        ("NoDigitsHere", "a digit"),
    ],
)
async def test_weak_password_is_422_and_creates_nothing(
    client: httpx.AsyncClient, store: Store, password: str, missing: str
) -> None:
    """A weak password is refused with what it lacks; no account appears."""
    body = registration(password=password, confirm_password=password)
    response = await client.post(f"{API}/register", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert missing in error["message"]
    assert password not in response.text, "the password is never echoed"
    assert users(store) == []


async def test_mismatched_confirmation_is_422(client: httpx.AsyncClient, store: Store) -> None:
    """Two different passwords in the form: 422 saying so, nothing written."""
    body = registration(confirm_password=PASSWORD + "x")
    response = await client.post(f"{API}/register", json=body)
    assert response.status_code == 422
    assert "do not match" in response.json()["error"]["message"]
    assert users(store) == []


async def test_duplicate_email_is_409_and_one_account(
    client: httpx.AsyncClient, store: Store
) -> None:
    """The same email again, in any case or spacing, is a 409; one account exists."""
    await register(client)
    again = await client.post(f"{API}/register", json=registration(" ALICE@example.com"))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert len(users(store)) == 1


async def test_concurrent_registrations_of_one_email_make_one_account(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Two sign-ups racing for one email: the unique index lets exactly one through."""
    responses = await asyncio.gather(
        *(client.post(f"{API}/register", json=registration()) for _ in range(3))
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409]
    assert len(users(store)) == 1


@pytest.mark.parametrize(
    "field",
    [
        {"role": "admin"},
        {"status": "active"},
        {"is_email_verified": True},
        {"id": "64b000000000000000000000"},
        {"_id": "64b000000000000000000000"},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"login_count": 99},
        {"password_hash": "$argon2id$..."},
    ],
    ids=lambda field: next(iter(field)),
)
async def test_server_owned_fields_in_a_registration_are_422_and_nothing_is_written(
    client: httpx.AsyncClient, store: Store, field: Json
) -> None:
    """Nobody can register as an admin (or verified, or with a chosen id): 422, no account."""
    response = await client.post(f"{API}/register", json=registration(**field))
    assert response.status_code == 422, response.text
    assert next(iter(field)) in response.json()["error"]["message"]
    assert users(store) == []
    assert store["refresh_tokens"].count_documents({}) == 0


@pytest.mark.parametrize(
    "field",
    [{"role": "admin"}, {"status": "suspended"}, {"email": "x@example.com"}, {"_id": "x"}],
    ids=lambda field: next(iter(field)),
)
async def test_server_owned_fields_in_a_profile_update_are_422_and_change_nothing(
    client: httpx.AsyncClient, store: Store, field: Json
) -> None:
    """A profile update cannot promote, suspend or re-address an account."""
    created = await register(client)
    before = users(store)
    response = await client.put(
        f"{API}/me", json={"name": "Mallory", **field}, headers=bearer(created["access_token"])
    )
    assert response.status_code == 422
    assert users(store) == before


async def test_profile_update_checks_its_fields(client: httpx.AsyncClient) -> None:
    """Bad avatar URLs, usernames, null names and empty updates are 422 naming the problem."""
    token = (await register(client))["access_token"]
    cases = [
        ({"avatar_url": "javascript:alert(1)"}, "http(s) URL"),
        ({"username": "a b"}, "username"),
        ({"name": None}, "not null"),
        ({}, "at least one"),
        ({"preferences": {"$where": "1"}}, "$"),
    ]
    for body, expected in cases:
        response = await client.put(f"{API}/me", json=body, headers=bearer(token))
        assert response.status_code == 422, body
        assert expected in response.json()["error"]["message"], body


async def test_me_without_an_account_is_404(client: httpx.AsyncClient) -> None:
    """A valid identity that has no account here (an IdP token, a dev header) gets 404."""
    response = await client.get(f"{API}/me", headers={"X-User-Id": "someone"})
    assert response.status_code == 404


# --- failed sign-ins -----------------------------------------------------------------


async def test_wrong_password_and_unknown_email_look_the_same(
    client: httpx.AsyncClient,
) -> None:
    """A failed sign-in never says whether the email has an account."""
    await register(client)
    wrong = await login(client, password="Wrong-Password-1")
    unknown = await login(client, email="nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]
    assert wrong.json()["error"]["code"] == unknown.json()["error"]["code"] == "unauthorized"
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]
    assert wrong.json()["error"]["message"] == "The email or password is incorrect."


async def test_unknown_email_costs_a_password_verification(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown email runs the same argon2 verification as a wrong password (timing)."""
    from snipix.accounts.passwords import PasswordHasher

    await register(client)
    verified: list[str] = []
    original = PasswordHasher.verify

    async def counting(self: PasswordHasher, password: str, stored: str) -> Any:
        verified.append(stored.split("$")[1])
        return await original(self, password, stored)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    await login(client, email="nobody@example.com")
    await login(client, password="Wrong-Password-1")
    assert verified == ["argon2id", "argon2id"]


async def test_failed_sign_ins_are_limited_per_account(client: httpx.AsyncClient) -> None:
    """After N failures the account answers 429 with Retry-After, even to the right password;
    other accounts are unaffected, and the failures are counted in /metrics."""
    await register(client)
    await register(client, "bob@example.com")
    for _ in range(ACCOUNT_LIMIT):
        assert (await login(client, password="Wrong-Password-1")).status_code == 401
    limited = await login(client)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    retry_after = int(limited.headers["Retry-After"])
    assert 0 < retry_after <= 900
    assert (await login(client, "bob@example.com")).status_code == 200

    metrics = (await client.get("/metrics")).text
    assert f'snipix_login_failures_total{{reason="bad_credentials"}} {ACCOUNT_LIMIT}.0' in metrics
    assert 'snipix_login_failures_total{reason="rate_limited"} 1.0' in metrics


async def test_a_successful_sign_in_clears_the_account_failures(
    client: httpx.AsyncClient,
) -> None:
    """Typos followed by the right password do not count against the next sign-in."""
    await register(client)
    for _ in range(2):
        for _ in range(ACCOUNT_LIMIT - 1):
            assert (await login(client, password="Wrong-Password-1")).status_code == 401
        assert (await login(client)).status_code == 200


async def test_failed_sign_ins_are_limited_per_address(
    mongodb_uri: str, database_name: str, tmp_path: Path
) -> None:
    """One address guessing across many emails is stopped too, whichever email it tries."""
    settings = accounts_settings(mongodb_uri, database_name, tmp_path, login_failures_per_ip=2)
    async with running_app(create_app(settings)) as client:
        await register(client)
        assert (await login(client, "a@example.com")).status_code == 401
        assert (await login(client, "b@example.com")).status_code == 401
        limited = await login(client)
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) > 0


async def test_concurrent_wrong_passwords_get_exactly_the_account_limit_of_checks(
    client: httpx.AsyncClient,
) -> None:
    """Ten wrong passwords for one account at once: the limit's worth are checked (401), the
    rest refused before any check (429 + Retry-After), and the right password after them
    is refused too. /metrics counts exactly the limit of checked failures."""
    await register(client)
    answers = await asyncio.gather(
        *(login(client, password=f"Wrong-Password-{n}") for n in range(10))
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * ACCOUNT_LIMIT + [429] * (10 - ACCOUNT_LIMIT)
    for answer in answers:
        if answer.status_code == 429:
            assert int(answer.headers["Retry-After"]) > 0
    assert (await login(client)).status_code == 429
    metrics = (await client.get("/metrics")).text
    assert f'snipix_login_failures_total{{reason="bad_credentials"}} {ACCOUNT_LIMIT}.0' in metrics


async def test_concurrent_wrong_passwords_from_one_address_get_exactly_its_limit(
    mongodb_uri: str, database_name: str, tmp_path: Path, cache_url: str | None
) -> None:
    """One address trying ten accounts at once: only its limit of passwords is checked."""
    settings = accounts_settings(
        mongodb_uri,
        database_name,
        tmp_path,
        login_failures_per_ip=4,
        login_failures_per_account=100,
        redis_url=cache_url,
        redis_timeout_ms=2_000,
        # Its own keys in the worker's Redis: the address is every test's.
        cache_prefix=f"test_{uuid.uuid4().hex[:12]}",
    )
    async with running_app(create_app(settings)) as client:
        answers = await asyncio.gather(*(login(client, f"user{n}@example.com") for n in range(10)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [401] * 4 + [429] * 6


async def test_right_passwords_do_not_use_up_the_address_limit(
    mongodb_uri: str, database_name: str, tmp_path: Path, cache_url: str | None
) -> None:
    """A sign-in holds its address's slot only while its password is checked: an office
    behind one address signs in more often than the failure limit, one after another."""
    settings = accounts_settings(
        mongodb_uri,
        database_name,
        tmp_path,
        login_failures_per_ip=2,
        redis_url=cache_url,
        redis_timeout_ms=2_000,
        # Its own keys in the worker's Redis: the address is every test's.
        cache_prefix=f"test_{uuid.uuid4().hex[:12]}",
    )
    async with running_app(create_app(settings)) as client:
        await register(client)
        for _ in range(5):
            assert (await login(client)).status_code == 200
        assert (await login(client, password="Wrong-Password-1")).status_code == 401
        assert (await login(client)).status_code == 200


@pytest.mark.process
async def test_a_hung_redis_never_forgets_a_lockout(
    mongodb_uri: str, database_name: str, tmp_path: Path, store: Store
) -> None:
    """Lock an account through Redis, then hang Redis (SIGSTOP): the limits fall back to
    counting in process from zero, yet the lockout holds (the right password is 429 and no
    password is checked), and still does once Redis answers again. Before, the right
    password got in as soon as Redis stopped answering."""
    server = RedisServer.find().start()
    assert server.process is not None
    settings = accounts_settings(
        mongodb_uri,
        database_name,
        tmp_path,
        redis_url=server.url,
        redis_timeout_ms=300,
        cache_prefix=f"test_{uuid.uuid4().hex[:12]}",
    )
    try:
        async with running_app(create_app(settings)) as client:
            await register(client)
            for _ in range(ACCOUNT_LIMIT):
                assert (await login(client, password="Wrong-Password-1")).status_code == 401
            locked = await login(client)
            assert locked.status_code == 429
            assert store["login_lockouts"].count_documents({"_id": {"$regex": "^account:"}}) == 1
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                for password in (PASSWORD, "Wrong-Password-2", PASSWORD):
                    hung = await login(client, password=password)
                    assert hung.status_code == 429, hung.text
                    assert (
                        0 < int(hung.headers["Retry-After"]) <= int(locked.headers["Retry-After"])
                    )
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            assert (await login(client)).status_code == 429
            metrics = (await client.get("/metrics")).text
            assert (
                f'snipix_login_failures_total{{reason="bad_credentials"}} {ACCOUNT_LIMIT}.0'
                in metrics
            ), "a password was checked while the account was locked"
    finally:
        server.stop()


# --- tokens --------------------------------------------------------------------------


async def test_access_token_opens_the_projects_api(client: httpx.AsyncClient) -> None:
    """The token from a sign-up works on /api/v1: projects are created for that account."""
    created = await register(client)
    listed = await client.get("/api/v1/projects", headers=bearer(created["access_token"]))
    assert listed.status_code == 200, listed.text
    project = await client.post(
        "/api/v1/projects", json={"name": "Cut"}, headers=bearer(created["access_token"])
    )
    assert project.status_code == 201
    assert project.json()["userId"] == created["user"]["id"]
    # Not an admin: the admin routes stay closed.
    admin = await client.get(
        "/api/v1/admin/projects/deleted", headers=bearer(created["access_token"])
    )
    assert admin.status_code == 403


async def test_access_token_claims(client: httpx.AsyncClient) -> None:
    """The access token names the user, role and session, and says it is an access token."""
    created = await register(client)
    token = created["access_token"]
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == created["user"]["id"]
    assert claims["roles"] == ["user"]
    assert claims["role"] == "user"
    assert claims["token_use"] == "access"
    assert claims["exp"] - claims["iat"] == 900
    assert isinstance(claims["sid"], str)


async def test_refresh_token_is_not_an_access_token(client: httpx.AsyncClient) -> None:
    """A refresh token sent as a bearer token is refused everywhere."""
    created = await register(client)
    for path in ("/api/v1/projects", f"{API}/me"):
        response = await client.get(path, headers=bearer(created["refresh_token"]))
        assert response.status_code == 401, path


async def test_refresh_tokens_are_stored_hashed(client: httpx.AsyncClient, store: Store) -> None:
    """The database never holds a usable refresh token."""
    created = await register(client)
    rotated = (await refresh(client, created["refresh_token"])).json()
    stored = str(list(store["refresh_tokens"].find())) + str(list(store["refresh_families"].find()))
    for token in (created["refresh_token"], rotated["refresh_token"]):
        assert token not in stored


async def test_refresh_rotates_every_time(client: httpx.AsyncClient) -> None:
    """Each refresh gives a new access token and a new refresh token; the chain goes on."""
    created = await register(client)
    first = await refresh(client, created["refresh_token"])
    assert first.status_code == 200, first.text
    one = first.json()
    assert set(one) == TOKEN_KEYS
    assert one["refresh_token"] != created["refresh_token"]
    second = await refresh(client, one["refresh_token"])
    assert second.status_code == 200
    two = second.json()
    assert two["refresh_token"] not in {one["refresh_token"], created["refresh_token"]}
    assert two["user"]["id"] == created["user"]["id"]
    me = await client.get(f"{API}/me", headers=bearer(two["access_token"]))
    assert me.status_code == 200
    # All three access tokens belong to the same session.
    sid = {
        jwt.decode(t, SECRET, algorithms=["HS256"])["sid"]
        for t in (created["access_token"], one["access_token"], two["access_token"])
    }
    assert len(sid) == 1


async def test_a_reused_refresh_token_signs_the_whole_session_out(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Presenting an already-used refresh token is 401 and ends its family: the newest
    refresh token of that session stops working too; other sessions are untouched."""
    created = await register(client)
    other_session = (await login(client)).json()
    one = (await refresh(client, created["refresh_token"])).json()
    two = (await refresh(client, one["refresh_token"])).json()

    reused = await refresh(client, created["refresh_token"])
    assert reused.status_code == 401
    assert "already used" in reused.json()["error"]["message"]
    newest = await refresh(client, two["refresh_token"])
    assert newest.status_code == 401
    revoked = store["refresh_families"].find_one({"revokedReason": "reuse"})
    assert revoked is not None
    assert (await refresh(client, other_session["refresh_token"])).status_code == 200


def live_tokens(store: Store, family_id: str) -> int:
    """Refresh tokens of a session that could still be exchanged for the first time."""
    return store["refresh_tokens"].count_documents({"familyId": family_id, "usedAt": None})


async def test_concurrent_refreshes_with_one_token_all_get_its_one_successor(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Several requests refreshing with the same token at once (the web app does this on
    load) each get new access tokens and the same refresh token: the session stays one."""
    created = await register(client)
    responses = await asyncio.gather(*(refresh(client, created["refresh_token"]) for _ in range(5)))
    assert [r.status_code for r in responses] == [200] * 5
    tokens = {r.json()["refresh_token"] for r in responses}
    assert len(tokens) == 1
    assert tokens != {created["refresh_token"]}
    family_id = jwt.decode(created["access_token"], SECRET, algorithms=["HS256"])["sid"]
    assert live_tokens(store, family_id) == 1
    assert (await refresh(client, tokens.pop())).status_code == 200


async def test_a_replayed_token_never_forks_the_session(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A thief replaying a used refresh token gets only what the client already holds, and
    once the client's chain has moved past it, the replay signs the whole session out."""
    created = await register(client)
    family_id = jwt.decode(created["access_token"], SECRET, algorithms=["HS256"])["sid"]
    one = (await refresh(client, created["refresh_token"])).json()  # the client
    stolen = await refresh(client, created["refresh_token"])  # the thief, any time later
    assert stolen.status_code == 200
    assert stolen.json()["refresh_token"] == one["refresh_token"], "no second chain"
    assert live_tokens(store, family_id) == 1
    two = (await refresh(client, one["refresh_token"])).json()  # the client goes on
    assert live_tokens(store, family_id) == 1

    replayed = await refresh(client, created["refresh_token"])  # its successor is used now
    assert replayed.status_code == 401
    assert "already used" in replayed.json()["error"]["message"]
    assert (await refresh(client, two["refresh_token"])).status_code == 401
    family = store["refresh_families"].find_one({"_id": family_id})
    assert family is not None
    assert family["revokedReason"] == "reuse"


async def test_a_stale_token_stored_again_keeps_the_session(client: httpx.AsyncClient) -> None:
    """The web app writes an older refresh token back into storage after a profile save and
    refreshes with it minutes later: while the token it replaced was never used, the user
    stays signed in on the one chain."""
    created = await register(client)
    newest = (await refresh(client, created["refresh_token"])).json()["refresh_token"]
    again = await refresh(client, created["refresh_token"])
    assert again.status_code == 200, again.text
    assert again.json()["refresh_token"] == newest
    onward = await refresh(client, newest)
    assert onward.status_code == 200
    assert onward.json()["refresh_token"] not in {newest, created["refresh_token"]}


async def test_unknown_or_garbage_refresh_tokens_are_401(client: httpx.AsyncClient) -> None:
    """A refresh token the service never issued is refused."""
    for token in ("x", "a" * 43, "not a token at all"):
        response = await refresh(client, token)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


async def test_logout_with_the_refresh_token_ends_the_session(client: httpx.AsyncClient) -> None:
    """After signing out, the session's refresh token is refused; signing out again is fine."""
    created = await register(client)
    body = {"refresh_token": created["refresh_token"]}
    response = await client.post(f"{API}/logout", json=body)
    assert response.status_code == 204
    assert (await refresh(client, created["refresh_token"])).status_code == 401
    assert (await client.post(f"{API}/logout", json=body)).status_code == 204


async def test_logout_with_only_the_access_token_ends_its_session(
    client: httpx.AsyncClient,
) -> None:
    """The web app signs out with just its bearer token and no body: that session ends."""
    created = await register(client)
    kept = (await login(client)).json()
    response = await client.post(f"{WEB}/logout", headers=bearer(created["access_token"]))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": True,
        "data": None,
        "message": "Signed out.",
        "error": None,
    }
    assert (await refresh(client, created["refresh_token"])).status_code == 401
    assert (await refresh(client, kept["refresh_token"])).status_code == 200


async def test_logout_without_any_token_is_422(client: httpx.AsyncClient) -> None:
    """Signing out needs to say which session."""
    response = await client.post(f"{API}/logout")
    assert response.status_code == 422


# --- the original web app's /auth ---------------------------------------------------


async def test_web_app_login_answers_in_its_envelope(client: httpx.AsyncClient) -> None:
    """/auth/login wraps the same tokens in {success, data, message, error}; a failure is
    {success: false, error: "..."}, as the web app reads them."""
    registered = await client.post(f"{WEB}/register", json=registration())
    assert registered.status_code == 201
    assert registered.json()["success"] is True
    assert set(registered.json()["data"]) == TOKEN_KEYS

    response = await client.post(
        f"{WEB}/login",
        json={"email": "alice@example.com", "password": PASSWORD, "remember_me": True},
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["error"], body["message"]) == (True, None, "Signed in.")
    assert set(body["data"]) == TOKEN_KEYS
    assert body["data"]["user"]["status"] == "active"

    me = await client.get(f"{WEB}/me", headers=bearer(body["data"]["access_token"]))
    assert me.json()["success"] is True
    assert me.json()["data"]["email"] == "alice@example.com"
    refreshed = await client.post(
        f"{WEB}/refresh", json={"refresh_token": body["data"]["refresh_token"]}
    )
    assert refreshed.json()["success"] is True
    assert set(refreshed.json()["data"]) == TOKEN_KEYS

    failed = await client.post(f"{WEB}/login", json={"email": "alice@example.com", "password": "x"})
    assert failed.status_code == 401
    failure = failed.json()
    assert failure["success"] is False
    assert failure["error"] == "The email or password is incorrect."
    assert "timestamp" in failure

    invalid = await client.post(f"{WEB}/register", json=registration(role="admin"))
    assert invalid.status_code == 422
    assert invalid.json()["success"] is False
    assert "role" in invalid.json()["error"]


async def test_google_sign_in_answers_501(client: httpx.AsyncClient) -> None:
    """Google sign-in needs OAuth credentials this server does not have: it says so."""
    web = await client.post(f"{WEB}/google", json={"token": "t"})
    assert web.status_code == 501
    assert web.json()["success"] is False
    assert "Google sign-in" in web.json()["error"]
    api = await client.post(f"{API}/google")
    assert api.status_code == 501
    assert api.json()["error"]["code"] == "not_implemented"


async def test_sign_in_without_a_signing_key_is_501(
    mongodb_uri: str, database_name: str, tmp_path: Path, store: Store
) -> None:
    """A server with no JWT key cannot issue tokens: sign-up and sign-in say what to set,
    and nothing is written."""
    settings = accounts_settings(mongodb_uri, database_name, tmp_path, jwt_secret=None)
    async with running_app(create_app(settings)) as client:
        for path, body in (
            ("/register", registration()),
            ("/login", {"email": "a@example.com", "password": PASSWORD}),
            ("/refresh", {"refresh_token": "x"}),
        ):
            response = await client.post(f"{API}{path}", json=body)
            assert response.status_code == 501, path
            assert "JWT_SECRET" in response.json()["error"]["message"]
    assert users(store) == []


async def test_remember_me_keeps_the_session_longer(
    client: httpx.AsyncClient, store: Store
) -> None:
    """`remember_me` gives the refresh token the long lifetime, and rotation keeps it."""
    created = await register(client)
    remembered = (await login(client, remember_me=True)).json()
    rotated = (await refresh(client, remembered["refresh_token"])).json()

    def lifetime_s(access_token: str) -> float:
        sid = jwt.decode(access_token, SECRET, algorithms=["HS256"])["sid"]
        family = store["refresh_families"].find_one({"_id": sid})
        assert family is not None
        return float((family["expiresAt"] - family["lastUsedAt"]).total_seconds())

    assert lifetime_s(created["access_token"]) == 86_400
    assert lifetime_s(rotated["access_token"]) == 30 * 86_400
    assert store["refresh_tokens"].count_documents({"expiresAt": {"$exists": True}}) == 3
