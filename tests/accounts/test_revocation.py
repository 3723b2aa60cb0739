"""Ending every session of an account: sign out everywhere and a password change.

After either, every access token issued before is refused on `/api/v1` and on the hot-read
lane (a project cached in process is not served to it), every refresh token is refused,
and a media link issued before stops playing. Each test runs with the in-process cache and
with Redis (local layer and all), since the check is read through the cache.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from snipix.settings import Settings
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
)
from tests.support import RedisServer

NEW_PASSWORD = "Battery-Staple-42"


@pytest.fixture(params=["memory", "redis"])
def settings(
    request: pytest.FixtureRequest, mongodb_uri: str, database_name: str, tmp_path: Path
) -> Settings:
    """The accounts settings, with the in-process cache or with Redis."""
    redis: dict[str, Any] = {}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        redis = {
            "redis_url": server.url,
            "cache_prefix": f"test_{uuid.uuid4().hex[:12]}",
            "redis_timeout_ms": 2_000,
        }
    return accounts_settings(mongodb_uri, database_name, tmp_path, **redis)


def password_change(current: str = PASSWORD, new: str = NEW_PASSWORD, **fields: str) -> Json:
    return {
        "current_password": current,
        "new_password": new,
        "confirm_password": fields.pop("confirm", new),
    }


async def cached_project(client: httpx.AsyncClient, token: str) -> str:
    """A project of the token's user, read twice so the second read is a cache hit."""
    created = await client.post("/api/v1/projects", json={"name": "Cut"}, headers=bearer(token))
    assert created.status_code == 201, created.text
    project_id: str = created.json()["id"]
    for _ in range(2):
        read = await client.get(f"/api/v1/projects/{project_id}", headers=bearer(token))
        assert read.status_code == 200, read.text
    assert read.headers["X-Cache"] == "hit"
    return project_id


async def media_link(
    client: httpx.AsyncClient, settings: Settings, token: str, project_id: str
) -> str:
    """A signed link to a (stand-in) video of the project, which plays before the change."""
    name = f"{uuid.uuid4().hex}.mp4"
    folder = settings.media_root / project_id
    folder.mkdir(parents=True)
    (folder / name).write_bytes(b"\x00" * 64)
    patched = await client.patch(
        f"/api/v1/projects/{project_id}",
        json={"media": {"sourceFile": f"{project_id}/{name}"}},
        headers={**bearer(token), "If-Match": '"1"'},
    )
    assert patched.status_code == 200, patched.text
    links = await client.get(f"/media/{project_id}/links", headers=bearer(token))
    assert links.status_code == 200, links.text
    url: str = links.json()["data"]["video_url"]
    played = await client.get(url)
    assert played.status_code == 200, played.text
    return url


async def assert_refused(
    client: httpx.AsyncClient, access: str, refresh_token: str, project_id: str
) -> None:
    """The access token opens nothing (route and hot-read lane), the refresh token renews
    nothing."""
    listed = await client.get("/api/v1/projects", headers=bearer(access))
    assert listed.status_code == 401, listed.text
    assert listed.json()["error"]["code"] == "unauthorized"
    hot = await client.get(f"/api/v1/projects/{project_id}", headers=bearer(access))
    assert hot.status_code == 401, hot.text
    assert "X-Cache" not in hot.headers
    me = await client.get(f"{API}/me", headers=bearer(access))
    assert me.status_code == 401
    renewed = await refresh(client, refresh_token)
    assert renewed.status_code == 401, renewed.text


def account(store: Store, user_id: str) -> Json:
    doc = store["users"].find_one({"_id": user_id})
    assert doc is not None
    return doc


async def test_logout_all_ends_every_session_and_media_link(
    client: httpx.AsyncClient, store: Store, settings: Settings
) -> None:
    """Two sessions (two devices) and a media link; sign out everywhere from one device:
    both sessions and the link end, the generation is bumped, every family is revoked.
    A new sign-in works at once."""
    first = await register(client)
    user_id = first["user"]["id"]
    second_login = await login(client)
    assert second_login.status_code == 200
    second = second_login.json()
    project_id = await cached_project(client, first["access_token"])
    link = await media_link(client, settings, first["access_token"], project_id)
    assert jwt.decode(first["access_token"], SECRET, algorithms=["HS256"])["gen"] == 0

    ended = await client.post(f"{API}/logout-all", headers=bearer(first["access_token"]))
    assert ended.status_code == 204, ended.text

    for tokens in (first, second):
        await assert_refused(client, tokens["access_token"], tokens["refresh_token"], project_id)
    played = await client.get(link)
    assert played.status_code == 401, played.text
    assert account(store, user_id)["sessionGeneration"] == 1
    families = list(store["refresh_families"].find({"userId": user_id}))
    assert len(families) == 2
    assert {f["revokedReason"] for f in families} == {"logout_all"}

    again = await login(client)
    assert again.status_code == 200, again.text
    fresh = again.json()["access_token"]
    assert jwt.decode(fresh, SECRET, algorithms=["HS256"])["gen"] == 1
    assert (await client.get("/api/v1/projects", headers=bearer(fresh))).status_code == 200
    read = await client.get(f"/api/v1/projects/{project_id}", headers=bearer(fresh))
    assert read.status_code == 200, read.text


async def test_web_app_logout_all_answers_in_its_envelope(
    client: httpx.AsyncClient, store: Store
) -> None:
    created = await register(client)
    ended = await client.post(f"{WEB}/logout-all", headers=bearer(created["access_token"]))
    assert ended.status_code == 200, ended.text
    assert ended.json()["success"] is True
    me = await client.get(f"{WEB}/me", headers=bearer(created["access_token"]))
    assert me.status_code == 401
    assert me.json()["success"] is False
    assert account(store, created["user"]["id"])["sessionGeneration"] == 1


async def test_logout_all_needs_a_valid_access_token(client: httpx.AsyncClient) -> None:
    created = await register(client)
    anonymous = await client.post(f"{API}/logout-all")
    assert anonymous.status_code == 401
    forged = await client.post(f"{API}/logout-all", headers=bearer(created["refresh_token"]))
    assert forged.status_code == 401
    still = await client.get("/api/v1/projects", headers=bearer(created["access_token"]))
    assert still.status_code == 200


async def test_password_change_keeps_the_changer_signed_in_and_ends_the_rest(
    client: httpx.AsyncClient, store: Store, settings: Settings
) -> None:
    """The device that changes the password gets a new session; every session before it,
    its own included, ends with its media links; only the new password signs in."""
    first = await register(client)
    user_id = first["user"]["id"]
    old_hash = account(store, user_id)["passwordHash"]
    second = (await login(client)).json()
    project_id = await cached_project(client, first["access_token"])
    link = await media_link(client, settings, first["access_token"], project_id)

    changed = await client.post(
        f"{API}/password", json=password_change(), headers=bearer(first["access_token"])
    )
    assert changed.status_code == 200, changed.text
    tokens = changed.json()
    assert tokens["user"]["id"] == user_id
    assert jwt.decode(tokens["access_token"], SECRET, algorithms=["HS256"])["gen"] == 1

    for old in (first, second):
        await assert_refused(client, old["access_token"], old["refresh_token"], project_id)
    assert (await client.get(link)).status_code == 401
    kept = await client.get(
        f"/api/v1/projects/{project_id}", headers=bearer(tokens["access_token"])
    )
    assert kept.status_code == 200, kept.text
    renewed = await refresh(client, tokens["refresh_token"])
    assert renewed.status_code == 200, renewed.text

    doc = account(store, user_id)
    assert doc["sessionGeneration"] == 1
    assert doc["passwordHash"] != old_hash
    reasons = sorted(
        str(f["revokedReason"]) for f in store["refresh_families"].find({"userId": user_id})
    )
    assert reasons == ["None", "password_changed", "password_changed"]
    assert (await login(client)).status_code == 401
    assert (await login(client, password=NEW_PASSWORD)).status_code == 200


async def test_web_app_password_change_answers_in_its_envelope(
    client: httpx.AsyncClient,
) -> None:
    created = await register(client)
    changed = await client.post(
        f"{WEB}/password", json=password_change(), headers=bearer(created["access_token"])
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["success"] is True
    me = await client.get(f"{WEB}/me", headers=bearer(body["data"]["access_token"]))
    assert me.status_code == 200


async def test_a_wrong_current_password_is_401_counted_and_changes_nothing(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A stolen access token cannot guess the password here past the sign-in limit."""
    created = await register(client)
    user_id = created["user"]["id"]
    before = account(store, user_id)
    for attempt in range(ACCOUNT_LIMIT):
        wrong = await client.post(
            f"{API}/password",
            json=password_change(current=f"Wrong-Password-{attempt}"),
            headers=bearer(created["access_token"]),
        )
        assert wrong.status_code == 401, wrong.text
    limited = await client.post(
        f"{API}/password", json=password_change(), headers=bearer(created["access_token"])
    )
    assert limited.status_code == 429, limited.text
    after = account(store, user_id)
    assert after["passwordHash"] == before["passwordHash"]
    assert after.get("sessionGeneration", 0) == 0
    still = await client.get("/api/v1/projects", headers=bearer(created["access_token"]))
    assert still.status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (password_change(new="short"), "new_password"),
        (password_change(confirm="Battery-Staple-43"), None),
        (password_change(new=PASSWORD), None),
        ({"current_password": PASSWORD, "new_password": NEW_PASSWORD}, "confirm_password"),
    ],
    ids=["weak", "mismatch", "same", "missing"],
)
async def test_a_bad_new_password_is_422_and_changes_nothing(
    client: httpx.AsyncClient, store: Store, body: Json, field: str | None
) -> None:
    created = await register(client)
    user_id = created["user"]["id"]
    before = account(store, user_id)
    refused = await client.post(
        f"{API}/password", json=body, headers=bearer(created["access_token"])
    )
    assert refused.status_code == 422, refused.text
    if field is not None:
        assert field in refused.text
    after = account(store, user_id)
    assert after["passwordHash"] == before["passwordHash"]
    assert after.get("sessionGeneration", 0) == 0
    assert store["refresh_families"].count_documents({"revokedAt": {"$ne": None}}) == 0
    still = await client.get("/api/v1/projects", headers=bearer(created["access_token"]))
    assert still.status_code == 200


async def test_a_sign_in_racing_the_bump_cannot_be_refreshed_into_a_session(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A family started under an older generation (a sign-in whose reads came before a
    sign-out everywhere, whose revocation it then escaped) renews nothing."""
    created = await register(client)
    user_id = created["user"]["id"]
    store["users"].update_one({"_id": user_id}, {"$inc": {"sessionGeneration": 1}})
    renewed = await refresh(client, created["refresh_token"])
    assert renewed.status_code == 401, renewed.text
    family = store["refresh_families"].find_one({"userId": user_id})
    assert family is not None
    assert family["revokedReason"] == "generation"


async def test_an_admin_disables_enables_and_deletes_an_account(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Disabling ends every session at once and blocks sign-in; enabling lets the user sign
    in again (old sessions stay ended); deleting ends the sessions, frees the email, keeps
    the projects. Bad input, non-admins and an admin's own account change nothing."""
    root_id = (await register(client, "root@example.com"))["user"]["id"]
    store["users"].update_one({"_id": root_id}, {"$set": {"role": "admin"}})
    root = bearer((await login(client, "root@example.com")).json()["access_token"])
    alice = await register(client)
    user_id = alice["user"]["id"]
    url = f"/api/v1/admin/users/{user_id}"
    project_id = await cached_project(client, alice["access_token"])

    disabled = await client.patch(url, json={"status": "suspended"}, headers=root)
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["status"] == "suspended"
    await assert_refused(client, alice["access_token"], alice["refresh_token"], project_id)
    assert (await login(client)).status_code == 403
    family = store["refresh_families"].find_one({"userId": user_id})
    assert family is not None
    assert family["revokedReason"] == "disabled"

    enabled = await client.patch(url, json={"status": "active"}, headers=root)
    assert enabled.status_code == 200, enabled.text
    again = await login(client)
    assert again.status_code == 200, again.text
    fresh = again.json()["access_token"]
    assert (
        await client.get("/api/v1/projects", headers=bearer(alice["access_token"]))
    ).status_code == 401

    before = account(store, user_id)
    for body in ({"status": "deleted"}, {"status": "active", "role": "admin"}, {}):
        refused = await client.patch(url, json=body, headers=root)
        assert refused.status_code == 422, refused.text
    assert (
        await client.patch(url, json={"status": "suspended"}, headers=bearer(fresh))
    ).status_code == 403
    own = await client.patch(
        f"/api/v1/admin/users/{root_id}", json={"status": "suspended"}, headers=root
    )
    assert own.status_code == 422, own.text
    assert account(store, user_id) == before
    assert account(store, root_id)["status"] == "active"

    deleted = await client.delete(url, headers=root)
    assert deleted.status_code == 204, deleted.text
    assert (await client.get("/api/v1/projects", headers=bearer(fresh))).status_code == 401
    assert (await login(client)).status_code == 401
    doc = account(store, user_id)
    assert (doc["status"], doc["email"]) == ("deleted", f"deleted:{user_id}")
    assert "passwordHash" not in doc
    assert store["projects"].count_documents({"userId": user_id}) == 1
    assert (await client.delete(url, headers=root)).status_code == 404
    assert (await client.delete("/api/v1/admin/users/nobody", headers=root)).status_code == 404
    assert (await register(client))["user"]["id"] != user_id
