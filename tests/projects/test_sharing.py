"""Sharing through HTTP: members and roles on every project route, the member routes,
shared projects in lists and search, the audit trail, the invitation mail, and a removal
holding at once on another replica that shares the cache.

Roles are checked against the app's own route table (its OpenAPI paths), so a project
route added later without an access check fails here: a non-member must get 404 and a
viewer 403 on every write.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from pymongo import MongoClient
from pymongo.database import Database as SyncDatabase

from snipix.accounts.repository import UserRepository
from snipix.app import create_app
from snipix.audit.repository import AuditRepository
from snipix.auth.actor import Actor
from snipix.cache.service import Cache
from snipix.catalogue import PURGED
from snipix.db.client import connected
from snipix.db.transactions import UnitOfWork
from snipix.errors import NotFound
from snipix.projects.members import ForbiddenRole, MemberRepository
from snipix.projects.schemas import MemberInvite, MemberRole, MemberUpdate, ProjectCreate
from snipix.projects.service import project_service
from snipix.projects.sharing import SharingService
from snipix.settings import Settings
from tests.api.helpers import PATCH_TYPE, STATE, TRANSCRIPT, error_code
from tests.mail_server import SmtpCatcher
from tests.support import running_app

Json = dict[str, Any]
Store = SyncDatabase[dict[str, Any]]

PROJECTS = "/api/v1/projects"
ALICE, BOB, CAROL, DAVE = "alice", "bob", "carol", "dave"
EMAILS = {BOB: "bob@example.com", CAROL: "carol@example.com", DAVE: "dave@example.com"}
MISSING = "nosuchproject000000000000"
# Values for the other path parameters of project routes.
PATH_VALUES = {"version": "1", "user_id": CAROL, "segment_id": "s1", "job_id": "0" * 32}
# What an upload's content sniffing takes for MP4 (an `ftyp` box); never probed here.
MP4_HEADER = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64)
IMPORT_BODY = json.dumps({"OTIO_SCHEMA": "Timeline.1", "name": "x", "tracks": {}}).encode()
# A body each write route accepts, so the request reaches the access check (a body the
# route refuses would answer 422 before it, for members and strangers alike).
BODIES: dict[tuple[str, str], Json] = {
    ("PATCH", "/api/v1/projects/{project_id}"): {"json": {"name": "Renamed"}},
    ("POST", "/api/v1/projects/{project_id}/rollback"): {"json": {"version": 1}},
    ("POST", "/api/v1/projects/{project_id}/members"): {"json": {"userId": DAVE, "role": "viewer"}},
    ("PATCH", "/api/v1/projects/{project_id}/members/{user_id}"): {"json": {"role": "editor"}},
    ("PUT", "/api/v1/projects/{project_id}/timeline"): {"json": {"state": STATE}},
    ("PATCH", "/api/v1/projects/{project_id}/timeline"): {
        "content": json.dumps([{"op": "replace", "path": "/clips/0/start", "value": 1}]),
        "headers": PATCH_TYPE,
    },
    ("POST", "/api/v1/projects/{project_id}/timeline/rollback"): {"json": {"version": 1}},
    ("POST", "/api/v1/projects/{project_id}/timeline/import"): {
        "content": IMPORT_BODY,
        "params": {"format": "otio"},
    },
    ("PUT", "/api/v1/projects/{project_id}/session"): {"json": {"playheadSec": 2}},
    ("PUT", "/api/v1/projects/{project_id}/transcript"): {"json": TRANSCRIPT},
    ("PATCH", "/api/v1/projects/{project_id}/transcript/segments/{segment_id}"): {
        "json": {"text": "hi there"}
    },
    ("POST", "/api/v1/projects/{project_id}/transcript/segments/{segment_id}/split"): {
        "json": {"atWord": 1}
    },
    ("POST", "/api/v1/projects/{project_id}/transcript/segments/{segment_id}/merge"): {"json": {}},
    ("POST", "/api/v1/projects/{project_id}/transcript/cuts"): {
        "json": {"ranges": [{"start": 0.0, "end": 0.5}]}
    },
    ("PUT", "/projects/{project_id}"): {"json": {"name": "Renamed"}},
    ("PUT", "/transcriptions/{project_id}"): {
        "json": {"segments": [{"text": "hi", "start_time": 0, "end_time": 1}], "language": "en"}
    },
}
QUERIES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/api/v1/projects/{project_id}/transcript/search"): {"q": "hello"},
}
# What only the owner may do (an editor gets 403); every other write is an editor's.
OWNER_ONLY = {
    ("DELETE", "/api/v1/projects/{project_id}"),
    ("POST", "/api/v1/projects/{project_id}/restore"),
    ("POST", "/api/v1/projects/{project_id}/rollback"),
    ("POST", "/api/v1/projects/{project_id}/members"),
    ("PATCH", "/api/v1/projects/{project_id}/members/{user_id}"),
    ("DELETE", "/api/v1/projects/{project_id}/members/{user_id}"),
    ("POST", "/api/v1/projects/{project_id}/timeline/rollback"),
    ("DELETE", "/projects/{project_id}"),
    ("POST", "/projects/{project_id}/restore"),
    ("POST", "/timeline/{project_id}/restore/{version}"),
}


def who(user: str, **headers: str) -> dict[str, str]:
    return {"X-User-Id": user, "If-Match": '"1"', **headers}


def project_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every documented route about one project (admin ones aside)."""
    routes = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if "{project_id}" in path and not path.startswith("/api/v1/admin/")
        for method in operations
    ]
    assert len(routes) > 40, routes  # the table was read, not an empty one
    return routes


async def call(
    http: httpx.AsyncClient, method: str, path: str, project_id: str, user: str
) -> httpx.Response:
    url = path.replace("{project_id}", project_id)
    for name, value in PATH_VALUES.items():
        url = url.replace(f"{{{name}}}", value)
    options = dict(BODIES.get((method, path), {}))
    headers = {**who(user), **options.pop("headers", {})}
    params = {**QUERIES.get((method, path), {}), **options.pop("params", {})}
    return await http.request(method, url, headers=headers, params=params, **options)


def add_accounts(store: Store) -> None:
    now = datetime.now(UTC)
    store["users"].insert_many(
        [
            {
                "_id": user,
                "email": email,
                "name": user.title(),
                "status": "active",
                "createdAt": now,
            }
            for user, email in EMAILS.items()
        ]
    )


async def shared_project(http: httpx.AsyncClient, store: Store, name: str = "Shared") -> str:
    """Alice's project with a timeline, a transcript and a session; Bob edits, Carol views."""
    add_accounts(store)
    created = await http.post(PROJECTS, json={"name": name}, headers={"X-User-Id": ALICE})
    assert created.status_code == 201, created.text
    project_id: str = created.json()["id"]
    base = f"{PROJECTS}/{project_id}"
    owner = {"X-User-Id": ALICE}
    saved = await http.put(
        f"{base}/timeline", json={"state": STATE}, headers={**owner, "If-Match": '"0"'}
    )
    assert saved.status_code == 200, saved.text
    # Version 2, so restoring version 1 (the web app's rollback) would change something.
    saved = await http.put(
        f"{base}/timeline", json={"state": STATE}, headers={**owner, "If-Match": '"1"'}
    )
    assert saved.status_code == 200, saved.text
    uploaded = await http.put(f"{base}/transcript", json=TRANSCRIPT, headers=owner)
    assert uploaded.status_code == 200, uploaded.text
    for invite in ({"userId": BOB, "role": "editor"}, {"email": EMAILS[CAROL], "role": "viewer"}):
        added = await http.post(f"{base}/members", json=invite, headers=owner)
        assert added.status_code == 201, added.text
    return project_id


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpCatcher]:
    catcher = SmtpCatcher().start()
    yield catcher
    catcher.stop()


@pytest.fixture
def settings(settings: Settings, smtp: SmtpCatcher) -> Settings:
    return settings.model_copy(update={"smtp_url": SecretStr(smtp.url)})


@pytest.fixture
def store(mongo: MongoClient[dict[str, Any]], settings: Settings) -> Store:
    return mongo[settings.database_name]


async def test_roles_hold_on_every_project_route(
    app: FastAPI, client: httpx.AsyncClient, store: Store
) -> None:
    """A stranger gets 404 everywhere (as for no project at all), a viewer reads but gets
    403 `forbidden_role` on every write, an editor gets 403 only where the owner is needed;
    none of the refused requests changes anything."""
    project_id = await shared_project(client, store)
    routes = project_routes(app)
    before = {name: list(store[name].find()) for name in ("projects", "timelines", "transcripts")}

    for method, path in routes:
        stranger = await call(client, method, path, project_id, DAVE)
        nothing = await call(client, method, path, MISSING, DAVE)
        assert stranger.status_code == 404, (method, path, stranger.text)
        assert nothing.status_code == 404, (method, path, nothing.text)
        assert error_code(stranger) == error_code(nothing), (method, path)

    for method, path in routes:
        viewer = await call(client, method, path, project_id, CAROL)
        if method == "GET":
            # Reads: never refused for the role (a job or file that does not exist is a 404
            # of its own, not the project's).
            assert viewer.status_code != 403, (method, path, viewer.text)
            assert f"Project {project_id} was not found" not in viewer.text, (method, path)
        else:
            assert viewer.status_code == 403, (method, path, viewer.text)
            assert error_code(viewer) == "forbidden_role", (method, path)

    for method, path in sorted(OWNER_ONLY):
        editor = await call(client, method, path, project_id, BOB)
        assert editor.status_code == 403, (method, path, editor.text)
        assert error_code(editor) == "forbidden_role", (method, path)

    after = {name: list(store[name].find()) for name in before}
    assert after == before
    assert [m["userId"] for m in store["project_members"].find().sort("userId")] == [BOB, CAROL]


async def body_routes(http: httpx.AsyncClient, project_id: str, user: str) -> list[httpx.Response]:
    """The write routes that name the project in their body (the web app's), as `user`."""
    headers = {"X-User-Id": user}
    current = await http.get(f"/timeline/{project_id}", headers={"X-User-Id": ALICE})
    state = current.json()["data"]["timeline_state"] if current.status_code == 200 else {}
    return [
        await http.post(
            "/timeline", json={"project_id": project_id, "timeline_state": state}, headers=headers
        ),
        await http.post(
            "/media/upload",
            files={"file": ("clip.mp4", MP4_HEADER, "video/mp4")},
            data={"project_id": project_id},
            headers=headers,
        ),
        await http.post(
            "/media/trim-video",
            json={"project_id": project_id, "segments": [{"startTime": 0, "duration": 1}]},
            headers=headers,
        ),
        await http.post("/media/transcribe", data={"project_id": project_id}, headers=headers),
        await http.post(
            "/media/remove-fillers",
            json={"project_id": project_id, "auto_detect": True},
            headers=headers,
        ),
    ]


async def test_routes_naming_the_project_in_their_body_check_the_role_too(
    client: httpx.AsyncClient, store: Store
) -> None:
    project_id = await shared_project(client, store)
    for stranger, nothing in zip(
        await body_routes(client, project_id, DAVE),
        await body_routes(client, MISSING, DAVE),
        strict=True,
    ):
        assert stranger.status_code == nothing.status_code == 404, stranger.text
    for viewer in await body_routes(client, project_id, CAROL):
        assert viewer.status_code == 403, viewer.text
        assert error_code(viewer) == "forbidden_role"


async def test_an_editor_autosaves_and_the_audit_names_them(
    client: httpx.AsyncClient, store: Store
) -> None:
    project_id = await shared_project(client, store)
    base = f"{PROJECTS}/{project_id}"
    patch = [{"op": "replace", "path": "/clips/0/start", "value": 4}]
    saved = await client.patch(
        f"{base}/timeline",
        content=json.dumps(patch),
        headers={**who(BOB, **{"If-Match": '"2"'}), **PATCH_TYPE, "Idempotency-Key": "k1"},
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["state"]["clips"][0]["start"] == 4
    session = await client.put(f"{base}/session", json={"playheadSec": 3}, headers=who(BOB))
    assert session.status_code == 200, session.text
    recent = await client.get("/api/v1/sessions/recent", headers=who(BOB))
    assert [(r["projectId"], r["name"]) for r in recent.json()["items"]] == [(project_id, "Shared")]
    renamed = await client.patch(base, json={"name": "By Bob"}, headers=who(BOB))
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["userId"] == ALICE  # still Alice's project

    audit = await client.get(f"{base}/audit", headers=who(CAROL))
    assert audit.status_code == 200, audit.text
    entries = audit.json()["items"]
    assert (entries[0]["action"], entries[0]["userId"]) == ("project.updated", BOB)
    added = [e for e in entries if e["action"] == "project.member_added"]
    assert {e["userId"] for e in added} == {ALICE}
    history = await client.get(f"{base}/timeline/history", headers=who(CAROL))
    assert history.json()["items"][0]["authorId"] == BOB


async def test_member_routes(client: httpx.AsyncClient, store: Store, smtp: SmtpCatcher) -> None:
    """Invite by id or email (with a notice mail), list, re-role, remove; the owner stays."""
    project_id = await shared_project(client, store, name="Launch film")
    members = f"{PROJECTS}/{project_id}/members"
    owner = {"X-User-Id": ALICE}

    notice = await smtp.titled(EMAILS[CAROL], '"Launch film" was shared with you on Snipix')
    assert "as viewer" in notice.body("plain")
    assert f"/projects/{project_id}" in notice.link

    listed = await client.get(members, headers=who(CAROL))
    assert listed.status_code == 200, listed.text
    assert [(m["userId"], m["role"]) for m in listed.json()["items"]] == [
        (ALICE, "owner"),
        (BOB, "editor"),
        (CAROL, "viewer"),
    ]
    again = await client.post(members, json={"userId": BOB, "role": "viewer"}, headers=owner)
    assert again.status_code == 409
    unknown = await client.post(
        members, json={"email": "nobody@example.com", "role": "viewer"}, headers=owner
    )
    assert unknown.status_code == 422
    # A stranger learns nothing about accounts: the project is not there for them.
    probe = await client.post(
        members, json={"email": "nobody@example.com", "role": "viewer"}, headers=who(DAVE)
    )
    assert probe.status_code == 404
    both = await client.post(
        members, json={"userId": DAVE, "email": EMAILS[DAVE], "role": "viewer"}, headers=owner
    )
    assert both.status_code == 422
    as_owner = await client.post(members, json={"userId": DAVE, "role": "owner"}, headers=owner)
    assert as_owner.status_code == 422

    for change in (
        client.patch(f"{members}/{ALICE}", json={"role": "viewer"}, headers=owner),
        client.delete(f"{members}/{ALICE}", headers=owner),
    ):
        assert (await change).status_code == 409
    assert (await client.delete(f"{members}/{DAVE}", headers=owner)).status_code == 404

    promoted = await client.patch(f"{members}/{CAROL}", json={"role": "editor"}, headers=owner)
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["role"] == "editor"
    session = await client.put(
        f"{PROJECTS}/{project_id}/session", json={"playheadSec": 1}, headers=who(CAROL)
    )
    assert session.status_code == 200, session.text

    removed = await client.delete(f"{members}/{BOB}", headers=owner)
    assert removed.status_code == 204
    gone = await client.get(f"{PROJECTS}/{project_id}", headers=who(BOB))
    assert gone.status_code == 404


async def test_lists_and_search_include_shared_projects_with_the_role(
    client: httpx.AsyncClient, store: Store
) -> None:
    project_id = await shared_project(client, store, name="Wedding cut")
    own = await client.post(PROJECTS, json={"name": "Wedding teaser"}, headers=who(BOB))
    assert own.status_code == 201
    own_id = own.json()["id"]

    async def listed(user: str, **params: str) -> list[tuple[str, str]]:
        response = await client.get(PROJECTS, params=params, headers=who(user))
        assert response.status_code == 200, response.text
        return [(item["id"], item["role"]) for item in response.json()["items"]]

    assert await listed(BOB) == [(own_id, "owner"), (project_id, "editor")]
    assert await listed(BOB, role="owner") == [(own_id, "owner")]
    assert await listed(BOB, role="shared") == [(project_id, "editor")]
    assert await listed(BOB, role="editor") == [(project_id, "editor")]
    assert await listed(BOB, role="viewer") == []
    assert await listed(CAROL) == [(project_id, "viewer")]
    assert await listed(DAVE) == []
    assert sorted(await listed(BOB, q="wedding")) == sorted(
        [(own_id, "owner"), (project_id, "editor")]
    )
    assert await listed(CAROL, q="wedding") == [(project_id, "viewer")]
    assert await listed(DAVE, q="wedding") == []

    # Pages run across both: one at a time, the cursor carries on into the shared ones.
    first = await client.get(PROJECTS, params={"limit": "1"}, headers=who(BOB))
    cursor = first.json()["nextCursor"]
    second = await client.get(PROJECTS, params={"limit": "1", "cursor": cursor}, headers=who(BOB))
    assert [i["id"] for i in first.json()["items"] + second.json()["items"]] == [own_id, project_id]
    assert second.json()["nextCursor"] is None

    # The owner's change reaches the member's (cached) list; so does a removal.
    renamed = await client.patch(
        f"{PROJECTS}/{project_id}", json={"name": "Wedding final"}, headers=who(ALICE)
    )
    assert renamed.status_code == 200
    names = await client.get(PROJECTS, params={"role": "shared"}, headers=who(CAROL))
    assert [i["name"] for i in names.json()["items"]] == ["Wedding final"]
    removed = await client.delete(
        f"{PROJECTS}/{project_id}/members/{CAROL}", headers={"X-User-Id": ALICE}
    )
    assert removed.status_code == 204
    assert await listed(CAROL) == []


@asynccontextmanager
async def replica(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(create_app(settings)) as http:
        yield http


async def test_a_removal_holds_at_once_on_another_replica(settings: Settings, store: Store) -> None:
    """Two replicas on one database and one Redis: the viewer's reads are cached on one,
    the owner removes them on the other, and the next read on the first is a 404."""
    async with replica(settings) as first, replica(settings) as second:
        project_id = await shared_project(first, store)
        paths = [f"{PROJECTS}/{project_id}", f"{PROJECTS}/{project_id}/timeline"]
        for path in paths * 2:  # the second round is served from the cache
            response = await first.get(path, headers={"X-User-Id": CAROL})
            assert response.status_code == 200, response.text
        listed = await first.get(PROJECTS, headers={"X-User-Id": CAROL})
        assert [i["id"] for i in listed.json()["items"]] == [project_id]

        removed = await second.delete(
            f"{PROJECTS}/{project_id}/members/{CAROL}", headers={"X-User-Id": ALICE}
        )
        assert removed.status_code == 204

        for path in paths:
            response = await first.get(path, headers={"X-User-Id": CAROL})
            assert response.status_code == 404, (path, response.text)
        listed = await first.get(PROJECTS, headers={"X-User-Id": CAROL})
        assert listed.json()["items"] == []
        # The owner still reads it from the cache on that replica.
        owner = await first.get(paths[0], headers={"X-User-Id": ALICE})
        assert owner.status_code == 200


async def test_every_membership_change_calls_the_hook(settings: Settings, store: Store) -> None:
    """Live event streams re-check access through `on_membership_change`: called once per
    committed add, role change and removal, never for a refused one."""
    add_accounts(store)
    calls: list[tuple[str, str]] = []

    async def hook(project_id: str, user_id: str) -> None:
        calls.append((project_id, user_id))

    async with connected(settings) as client:
        db = client[settings.database_name]
        projects = project_service(db, UnitOfWork(client), owned=PURGED, cache=Cache.disabled())
        sharing = SharingService(
            projects,
            MemberRepository(db),
            UserRepository(db),
            AuditRepository(db),
            outbox=None,
            web_app_url="http://app.test",
            on_membership_change=hook,
        )
        alice, bob = Actor(user_id=ALICE), Actor(user_id=BOB)
        project, _ = await projects.create(alice, ProjectCreate(name="Hooked"))
        await sharing.add(alice, project.id, MemberInvite(user_id=BOB, role=MemberRole.VIEWER))
        with pytest.raises(ForbiddenRole):
            await sharing.add(bob, project.id, MemberInvite(user_id=CAROL, role=MemberRole.VIEWER))
        await sharing.change(alice, project.id, BOB, MemberUpdate(role=MemberRole.EDITOR))
        await sharing.remove(alice, project.id, BOB)
        with pytest.raises(NotFound):
            await sharing.remove(alice, project.id, BOB)
    assert calls == [(project.id, BOB)] * 3
