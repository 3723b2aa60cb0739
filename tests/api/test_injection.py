"""Operator injection and type confusion (issue 8): keys MongoDB could read as operators or
paths, objects where strings belong, and JSON Patch paths aimed at what the server owns are
all refused with 422 — and nothing is written."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.helpers import (
    OWNER,
    PATCH_TYPE,
    STATE,
    TRANSCRIPT,
    Commands,
    Json,
    Store,
    contents,
    dumps,
    error_code,
    error_types,
    seed,
)

PASSWORD = "Injected-Pass-1"


@pytest.fixture
async def project(client: httpx.AsyncClient) -> str:
    return await seed(client)


@pytest.fixture
async def account(client: httpx.AsyncClient) -> dict[str, str]:
    """Bearer headers of a registered account (its profile can be attacked too)."""
    registered = await client.post(
        "/api/v1/auth/register",
        json={
            "email": "victim@example.com",
            "name": "Victim",
            "password": PASSWORD,
            "confirm_password": PASSWORD,
        },
    )
    assert registered.status_code == 201, registered.text
    return {"Authorization": f"Bearer {registered.json()['access_token']}"}


def expect_422(response: httpx.Response, what: str) -> None:
    assert response.status_code == 422, f"{what}: {response.status_code} {response.text[:300]}"
    assert error_code(response) == "validation_error", f"{what}: {response.text[:300]}"


# (method, path, body): a body of every request model, with `{key}` where the injected key goes
# and `{p}` for the project. Each is sent with the key at the top and deep inside.
MODELS: list[tuple[str, str, Json]] = [
    ("POST", "/api/v1/projects", {"name": "x", "media": {"source": "a.mp4", "{key}": 1}}),
    ("PATCH", "/api/v1/projects/{p}", {"name": "x", "media": {"{key}": 1}}),
    ("POST", "/api/v1/projects/{p}/rollback", {"version": 1, "{key}": 1}),
    (
        "PUT",
        "/api/v1/projects/{p}/timeline",
        {"state": {**STATE, "clips": [{**STATE["clips"][0], "properties": {"{key}": 1}}]}},
    ),
    ("POST", "/api/v1/projects/{p}/timeline/rollback", {"version": 1, "{key}": 1}),
    ("PUT", "/api/v1/projects/{p}/transcript", {**TRANSCRIPT, "metadata": {"{key}": 1}}),
    ("PATCH", "/api/v1/projects/{p}/transcript/segments/s1", {"text": "x", "{key}": 1}),
    ("POST", "/api/v1/projects/{p}/transcript/segments/s1/split", {"atWord": 1, "{key}": 1}),
    ("POST", "/api/v1/projects/{p}/transcript/segments/s1/merge", {"{key}": 1}),
    (
        "POST",
        "/api/v1/projects/{p}/transcript/cuts",
        {"ranges": [{"start": 0, "end": 1, "{key}": 1}]},
    ),
    ("PUT", "/api/v1/projects/{p}/session", {"panel": "timeline", "{key}": 1}),
    (
        "POST",
        "/api/v1/auth/register",
        {"email": "new@example.com", "name": "N", "password": PASSWORD, "{key}": "admin"},
    ),
    (
        "POST",
        "/api/v1/auth/login",
        {"email": "victim@example.com", "password": PASSWORD, "{key}": 1},
    ),
    ("POST", "/api/v1/auth/refresh", {"refresh_token": "t", "{key}": 1}),
    ("PUT", "/api/v1/auth/me", {"preferences": {"theme": {"{key}": 1}}}),
    ("PUT", "/auth/me", {"name": "x", "{key}": 1}),
    # The web app's routes ignore unknown fields, but not keys MongoDB could read.
    ("POST", "/projects", {"name": "x", "{key}": 1}),
    ("PUT", "/projects/{p}", {"name": "x", "extra": {"{key}": 1}}),
    (
        "POST",
        "/timeline/",
        {
            "project_id": "{p}",
            "timeline_state": {
                "layers": [
                    {
                        "id": "l1",
                        "name": "Video",
                        "type": "video",
                        "clips": [
                            {
                                "id": "c1",
                                "type": "video",
                                "start_time": 0,
                                "end_time": 1,
                                "duration": 1,
                                "properties": {"{key}": 1},
                            }
                        ],
                    }
                ]
            },
        },
    ),
    ("PUT", "/transcriptions/{p}", {"language": "en", "speakers": {"{key}": "Host"}}),
    ("POST", "/media/trim-video", {"project_id": "{p}", "segments": [], "{key}": 1}),
]
KEYS = ["$where", "$set", "a.b", "profile.role", "x\u0000y"]


def _body(template: Json, key: str, project: str) -> Any:
    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {(key if k == "{key}" else k): fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(item) for item in value]
        if value == "{p}":
            return project
        return value

    return fill(template)


async def test_operator_and_dotted_keys_are_refused_in_every_request_model(
    client: httpx.AsyncClient, project: str, account: dict[str, str], store: Store
) -> None:
    """A key starting with `$`, holding a `.` or a NUL — at the top of a body or deep in a
    free-form map (clip properties, preferences, speakers) — is a 422 naming it, on every
    route of /api/v1, accounts, the web app's routes and media; nothing is written."""
    before = contents(store)
    for method, path, template in MODELS:
        headers = account if path.startswith(("/api/v1/auth/me", "/auth/")) else OWNER
        for key in KEYS:
            response = await client.request(
                method,
                path.replace("{p}", project),
                json=_body(template, key, project),
                headers={**headers, "If-Match": "*"},
            )
            expect_422(response, f"{method} {path} {key!r}")
            assert "unsafe_key" in error_types(response), response.text[:300]
    assert contents(store) == before


async def test_objects_where_strings_belong_are_refused(
    client: httpx.AsyncClient, project: str, account: dict[str, str], store: Store
) -> None:
    """The classic NoSQL injection — `{"$ne": null}` as an email or password, `{"$gt": ""}`
    as a name or id — and arrays or numbers where strings belong are 422, never a match."""
    before = contents(store)
    confused: list[Any] = [{"$ne": None}, {"$gt": ""}, {"ok": 1}, ["x"], 7, True]
    for value in confused:
        sent: list[tuple[str, str, Json, dict[str, str]]] = [
            ("POST", "/api/v1/auth/login", {"email": value, "password": PASSWORD}, {}),
            ("POST", "/api/v1/auth/login", {"email": "victim@example.com", "password": value}, {}),
            ("POST", "/auth/login", {"email": value, "password": value}, {}),
            ("POST", "/api/v1/auth/refresh", {"refresh_token": value}, {}),
            ("POST", "/api/v1/projects", {"name": value}, {}),
            ("PATCH", f"/api/v1/projects/{project}", {"description": value}, {"If-Match": "*"}),
            ("PUT", f"/api/v1/projects/{project}/session", {"panel": value}, {}),
            ("PUT", "/api/v1/auth/me", {"username": value}, account),
            ("POST", "/projects", {"name": value}, {}),
            ("POST", "/timeline/", {"project_id": value, "timeline_state": {}}, {}),
            ("PUT", f"/transcriptions/{project}", {"language": value}, {}),
            ("POST", "/media/trim-video", {"project_id": value, "segments": []}, {}),
        ]
        for method, path, body, headers in sent:
            who = headers if "Authorization" in headers else {**OWNER, **headers}
            response = await client.request(method, path, json=body, headers=who)
            expect_422(response, f"{method} {path} {value!r}")
    assert contents(store) == before


async def test_query_parameters_shaped_like_operators_are_refused(
    client: httpx.AsyncClient, project: str, store: Store
) -> None:
    """`?status[$ne]=draft`, `?q={"$gt": ""}`, `?tag=$where` and dotted names are 422 on
    /api/v1 and on the web app's routes alike."""
    before = contents(store)
    for url in [
        "/api/v1/projects?status[$ne]=draft",
        '/api/v1/projects?q={"$gt": ""}',
        "/api/v1/projects?tag=$where",
        "/api/v1/projects?user.id=x",
        f'/api/v1/projects/{project}/transcript/search?q={{"$regex": ".*"}}',
        '/projects?filter={"$where": "1"}',
        f"/timeline/{project}/history?limit[$gt]=1",
        f"/media/{project}/links?token[$ne]=1",
    ]:
        response = await client.get(url, headers=OWNER)
        expect_422(response, url)
    assert contents(store) == before


SERVER_OWNED = ["/version", "/userId", "/_id", "/projectId", "/updatedAt", "/undoStack", "/pending"]


async def test_a_json_patch_aimed_outside_the_timeline_state_is_refused(
    client: httpx.AsyncClient, project: str, store: Store, commands: Commands
) -> None:
    """A JSON Patch whose `path` or `from` names a server-owned field (`/version`, `/userId`,
    `/_id`, the undo stack, ...) or anything outside the timeline state is a 422 with the
    operation's index, refused before a single database command; the timeline is unchanged."""
    base = f"/api/v1/projects/{project}/timeline"
    before = contents(store)
    patches: list[list[Json]] = []
    for target in SERVER_OWNED:
        patches += [
            [{"op": "add", "path": target, "value": 99}],
            [{"op": "replace", "path": target, "value": "someone-else"}],
            [{"op": "remove", "path": target}],
            [{"op": "test", "path": target, "value": 1}],
            [{"op": "copy", "from": target, "path": "/markers/0/label"}],
            [{"op": "move", "from": "/markers/0", "path": f"{target}/x"}],
        ]
    patches += [
        [{"op": "replace", "path": "/state/clips/0/start", "value": 1}],
        [{"op": "add", "path": "/$set", "value": {"version": 1}}],
        [{"op": "replace", "path": "/clips~1x", "value": 1}],
        # A valid first operation does not carry an invalid second one through.
        [
            {"op": "replace", "path": "/clips/0/start", "value": 0.5},
            {"op": "add", "path": "/version", "value": 99},
        ],
    ]
    for operations in patches:
        commands.clear()
        response = await client.patch(
            base, content=dumps(operations), headers={**OWNER, **PATCH_TYPE, "If-Match": "*"}
        )
        expect_422(response, dumps(operations))
        assert "nothing was changed" in response.json()["error"]["message"], response.text
        assert commands.seen == [], f"{operations}: {commands.seen}"
    assert contents(store) == before
    allowed = await client.patch(
        base,
        content=dumps([{"op": "replace", "path": "/clips/0/start", "value": 0.5}]),
        headers={**OWNER, **PATCH_TYPE, "If-Match": "*"},
    )
    assert allowed.status_code == 200, allowed.text


async def test_malformed_json_patch_operations_are_422_not_500(
    client: httpx.AsyncClient, project: str, store: Store
) -> None:
    """Operations without `op`, `path`, `from` or `value`, or with them of the wrong type,
    are 422 (a `move` without `from`, or `from: 7`, crashed with a 500)."""
    base = f"/api/v1/projects/{project}/timeline"
    before = contents(store)
    for operations in [
        [{"op": "move", "path": "/clips/0"}],
        [{"op": "move", "path": "/clips/0", "from": 7}],
        [{"op": "copy", "path": "/markers/1"}],
        [{"op": "copy", "path": "/markers/1", "from": {"$ref": "/clips"}}],
        [{"op": "add", "path": "/markers/-"}],
        [{"op": "replace", "path": ["clips", 0], "value": 1}],
        [{"op": "replace", "path": {"$gt": ""}, "value": 1}],
        [{"op": "drop", "path": "/clips"}],
        [{"op": None, "path": "/clips"}],
        [{"op": {"$ne": ""}, "path": "/clips"}],
        [{"op": ["add"], "path": "/clips"}],
        [{"path": "/clips/0/start", "value": 1}],
        [{"op": "replace", "path": "clips/0/start", "value": 1}],
        [{"op": "replace", "path": "/clips/0/start~2", "value": 1}],
        [{"op": "replace", "path": "/clips/0/start", "value": {"$inc": 1}}],
        ["not an operation"],
        {"op": "replace", "path": "/clips/0/start", "value": 1},
    ]:
        response = await client.patch(
            base, content=dumps(operations), headers={**OWNER, **PATCH_TYPE, "If-Match": "*"}
        )
        expect_422(response, dumps(operations))
    assert contents(store) == before
