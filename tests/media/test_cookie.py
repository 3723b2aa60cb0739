"""The media cookie: the web app's plain `<img>`/`<video>` load its user's media after a
sign-in on its paths, never anyone else's, and stop when the sessions end."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from snipix.app import create_app
from snipix.media.links import MEDIA_COOKIE
from snipix.settings import Settings
from tests.accounts.helpers import WEB, accounts_settings, bearer, registration
from tests.support import running_app

VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 48
THUMBNAIL = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32
# What chromium sends for an <img>.
IMG_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


@pytest.fixture
def settings(mongodb_uri: str, database_name: str, tmp_path: Path) -> Settings:
    return accounts_settings(mongodb_uri, database_name, tmp_path)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(create_app(settings)) as http:
        yield http


def carrying(cookie: str) -> dict[str, str]:
    """What the browser sends with an `<img>` of /media: the cookie, nothing else."""
    return {"Cookie": f"{MEDIA_COOKIE}={cookie}"}


async def signed_up(client: httpx.AsyncClient, email: str) -> tuple[str, str]:
    """Sign up on the web app's path: (access token, the media cookie it set)."""
    answer = await client.post(f"{WEB}/register", json=registration(email))
    assert answer.status_code == 201, answer.text
    cookie = answer.cookies.get(MEDIA_COOKIE)
    assert cookie
    return answer.json()["data"]["access_token"], cookie


async def project_with_video(client: httpx.AsyncClient, settings: Settings, token: str) -> str:
    created = await client.post("/api/v1/projects", json={"name": "Cut"}, headers=bearer(token))
    assert created.status_code == 201, created.text
    project_id: str = created.json()["id"]
    name = f"{uuid.uuid4().hex}.mp4"
    folder = settings.media_root / project_id
    folder.mkdir(parents=True)
    (folder / name).write_bytes(VIDEO)
    patched = await client.patch(
        f"/api/v1/projects/{project_id}",
        json={"media": {"sourceFile": f"{project_id}/{name}"}},
        headers={**bearer(token), "If-Match": '"1"'},
    )
    assert patched.status_code == 200, patched.text
    return project_id


async def test_sign_in_on_the_web_apps_paths_sets_a_narrow_cookie(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(f"{WEB}/register", json=registration())
    header = answer.headers["set-cookie"].lower()
    assert header.startswith(f"{MEDIA_COOKIE}=")
    for attribute in ("httponly", "samesite=lax", "path=/media", "max-age="):
        assert attribute in header, header
    assert "secure" not in header.split(";")[1:], "plain HTTP here: no Secure flag"
    api = await client.post(
        "/api/v1/auth/login",
        json={"email": "alice@example.com", "password": registration()["password"]},
    )
    assert api.status_code == 200
    assert MEDIA_COOKIE not in api.cookies, "/api/v1 clients use tokens and signed links"


async def test_the_cookie_opens_its_users_media_only_and_only_until_the_sessions_end(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    alice_token, alice_cookie = await signed_up(client, "alice@example.com")
    _, bob_cookie = await signed_up(client, "bob@example.com")
    project_id = await project_with_video(client, settings, alice_token)
    url = f"/media/{project_id}/video"
    client.cookies.clear()

    assert (await client.get(url)).status_code == 401, "no credential at all"
    played = await client.get(url, headers=carrying(alice_cookie))
    assert played.status_code == 200, played.text
    assert played.content == VIDEO
    assert (await client.get(url, headers=carrying(bob_cookie))).status_code == 404
    forged = alice_cookie.rsplit(".", 1)[0] + ".AAAA"
    assert (await client.get(url, headers=carrying(forged))).status_code == 401

    # The project list's <img src="/media/{id}/thumbnail">: the image, to its owner only.
    name = f"{uuid.uuid4().hex}.jpg"
    (settings.media_root / project_id / name).write_bytes(THUMBNAIL)
    patched = await client.patch(
        f"/api/v1/projects/{project_id}",
        json={"media": {"thumbnailFile": f"{project_id}/{name}"}},
        headers={**bearer(alice_token), "If-Match": '"2"'},
    )
    assert patched.status_code == 200, patched.text
    client.cookies.clear()
    thumbnail = f"/media/{project_id}/thumbnail"
    assert (await client.get(thumbnail, headers={"Accept": IMG_ACCEPT})).status_code == 401
    shown = await client.get(thumbnail, headers={"Accept": IMG_ACCEPT, **carrying(alice_cookie)})
    assert shown.status_code == 200, shown.text
    assert shown.headers["content-type"] == "image/jpeg"
    assert shown.content == THUMBNAIL
    other = await client.get(thumbnail, headers={"Accept": IMG_ACCEPT, **carrying(bob_cookie)})
    assert other.status_code == 404, "another user's thumbnail does not exist for them"

    ended = await client.post(f"{WEB}/logout-all", headers=bearer(alice_token))
    assert ended.status_code == 200, ended.text
    assert MEDIA_COOKIE in ended.headers["set-cookie"]
    assert "max-age=0" in ended.headers["set-cookie"].lower()
    client.cookies.clear()
    refused = await client.get(url, headers=carrying(alice_cookie))
    assert refused.status_code == 401, "the cookie ends with the sessions"
