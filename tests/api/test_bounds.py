"""Input bounds (issue 8): every body, parameter and id is checked before anything is read
or written, and a request past a bound gets the documented error with nothing changed."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from snipix.app import create_app
from snipix.settings import Settings
from snipix.wire.models import MAX_ARRAY_ITEMS, MAX_DEPTH, MAX_STRING_CHARS
from tests.api.helpers import (
    ADMIN,
    OWNER,
    PATCH_TYPE,
    STATE,
    Commands,
    Json,
    Store,
    contents,
    deep_text,
    dumps,
    error_code,
    error_types,
    nested,
    seed,
)
from tests.support import running_app


@pytest.fixture
async def project(client: httpx.AsyncClient) -> str:
    return await seed(client)


def expect_rejected(response: httpx.Response, status: int, code: str, *, what: str = "") -> None:
    assert response.status_code == status, f"{what}: {response.status_code} {response.text}"
    assert error_code(response) == code, f"{what}: {response.text}"


# --- the shape of every body: nesting, arrays, strings, integers ------------------------------


async def test_a_body_nested_deeper_than_32_levels_is_refused(
    client: httpx.AsyncClient, project: str, store: Store
) -> None:
    """A body nested past 32 levels is a 422 naming the place, on /api/v1 and the web app's
    routes alike, and nothing is saved."""
    before = contents(store)
    too_deep = nested(MAX_DEPTH)
    sent = [
        ("POST", "/api/v1/projects", {"name": "x", "description": too_deep}),
        ("PUT", f"/api/v1/projects/{project}/session", {"selectedClipIds": too_deep}),
        ("PUT", "/api/v1/auth/me", {"preferences": {"a": too_deep}}),
        ("POST", "/projects", {"name": "x", "ignored": too_deep}),
        ("PUT", f"/transcriptions/{project}", {"language": "en", "ignored": too_deep}),
        ("POST", "/media/trim-video", {"project_id": project, "segments": too_deep}),
    ]
    for method, path, body in sent:
        response = await client.request(method, path, json=body, headers=OWNER)
        expect_rejected(response, 422, "validation_error", what=path)
        assert "json_too_deep" in error_types(response), response.text
    assert contents(store) == before
    at_the_bound = await client.post(
        "/projects", json={"name": "x", "ignored": nested(MAX_DEPTH - 1)}, headers=OWNER
    )
    assert at_the_bound.status_code == 200, at_the_bound.text


async def test_a_body_nested_past_the_parser_is_a_422_not_a_400_or_500(
    client: httpx.AsyncClient, project: str, store: Store
) -> None:
    """JSON nested 100,000 levels (a 200 KB body) cannot be parsed at all: 422, on every
    route that reads JSON itself too (JSON Patch, OTIO import), and the service lives on."""
    before = contents(store)
    body = deep_text(100_000)
    base = f"/api/v1/projects/{project}/timeline"
    sent = [
        ("POST", "/api/v1/projects", {"Content-Type": "application/json"}),
        ("POST", "/projects", {"Content-Type": "application/json"}),
        ("PATCH", base, {**PATCH_TYPE, "If-Match": "*"}),
        ("POST", f"{base}/import", {"Content-Type": "application/json"}),
    ]
    for method, path, headers in sent:
        response = await client.request(method, path, content=body, headers={**OWNER, **headers})
        expect_rejected(response, 422, "validation_error", what=path)
    assert (await client.get(base, headers=OWNER)).status_code == 200
    assert contents(store) == before


async def test_an_otio_import_nested_past_64_levels_never_reaches_opentimelineio(
    client: httpx.AsyncClient, project: str, store: Store
) -> None:
    """An .otio document nested past 64 levels is refused before OpenTimelineIO's reader,
    which crashed the whole process on deep nesting (SIGSEGV at ~100,000 levels)."""
    before = contents(store)
    document = {"OTIO_SCHEMA": "Timeline.1", "metadata": {"deep": nested(70)}}
    response = await client.post(
        f"/api/v1/projects/{project}/timeline/import", content=dumps(document), headers=OWNER
    )
    expect_rejected(response, 422, "validation_error")
    assert "64 levels" in response.json()["error"]["message"]
    assert contents(store) == before


async def test_an_array_past_50000_items_is_refused(
    client: httpx.AsyncClient, project: str, store: Store
) -> None:
    """No array in any body may hold more than 50,000 items (and each list field has its own,
    smaller bound): 422, nothing saved."""
    before = contents(store)
    too_many = [0] * (MAX_ARRAY_ITEMS + 1)
    for path, body in [
        ("/api/v1/projects", {"name": "x", "extra": too_many}),
        ("/projects", {"name": "x", "ignored": too_many}),
        (f"/api/v1/projects/{project}/transcript/cuts", {"wordIds": ["s1:0"] * 50_001}),
    ]:
        response = await client.post(path, json=body, headers=OWNER)
        expect_rejected(response, 422, "validation_error", what=path)
        assert "too_long" in error_types(response), response.text
    for path, body in [
        (f"/api/v1/projects/{project}/session", {"selectedClipIds": ["c1"] * 501}),
        ("/api/v1/projects", {"name": "x", "tags": [f"t{n}" for n in range(21)]}),
    ]:
        response = await client.request(
            "PUT" if "session" in path else "POST", path, json=body, headers=OWNER
        )
        expect_rejected(response, 422, "validation_error", what=path)
    assert contents(store) == before


async def test_an_integer_past_64_bits_is_refused(
    client: httpx.AsyncClient, project: str, store: Store
) -> None:
    """An integer MongoDB cannot store (past 64 bits) is a 422 wherever it is sent; in
    free-form preferences it reached the driver, which raised OverflowError (a 500)."""
    before = contents(store)
    huge = 2**64
    sent = [
        ("PUT", "/api/v1/auth/me", {"preferences": {"zoom": huge}}),
        ("PATCH", f"/api/v1/projects/{project}", {"name": "x", "baseVersion": huge}),
        ("POST", f"/api/v1/projects/{project}/rollback", {"version": huge}),
        ("POST", f"/api/v1/projects/{project}/timeline/rollback", {"version": huge}),
        ("PUT", f"/transcriptions/{project}", {"speaker_count": huge}),
    ]
    for method, path, body in sent:
        response = await client.request(method, path, json=body, headers=OWNER)
        expect_rejected(response, 422, "validation_error", what=path)
    assert contents(store) == before


# --- string length limits on every field of every request model -------------------------------


def long(limit: int) -> str:
    return "a" * (limit + 1)


def _track(**fields: Any) -> Json:
    return {"state": {**STATE, "tracks": [{**STATE["tracks"][0], **fields}]}}


def _clip(**fields: Any) -> Json:
    return {"state": {**STATE, "clips": [{**STATE["clips"][0], **fields}]}}


def _segment(**fields: Any) -> Json:
    return {
        "language": "en",
        "segments": [{"start": 0.0, "end": 1.0, "words": [], **fields}],
    }


def _layer(**fields: Any) -> Json:
    layer = {"id": "l1", "name": "Video", "type": "video", "clips": []}
    return {"project_id": "{p}", "timeline_state": {"layers": [{**layer, **fields}]}}


def _web_clip(**fields: Any) -> Json:
    clip = {"id": "c1", "type": "video", "start_time": 0, "end_time": 1, "duration": 1}
    return _layer(clips=[{**clip, **fields}])


PASSWORD = "Long-enough-1"
REGISTER = {
    "email": "a@example.com",
    "name": "A",
    "password": PASSWORD,
    "confirm_password": PASSWORD,
}
STRONG_TOO_LONG = "Aa1" + "a" * 254

# (method, path, body, headers): one string over its field's bound in each. `{p}` is the
# project, `{s}` a segment of its transcript.
TOO_LONG: list[tuple[str, str, Json, dict[str, str]]] = [
    ("POST", "/api/v1/projects", {"name": long(200)}, {}),
    ("POST", "/api/v1/projects", {"name": "x", "description": long(5_000)}, {}),
    ("POST", "/api/v1/projects", {"name": "x", "tags": [long(50)]}, {}),
    ("POST", "/api/v1/projects", {"name": "x", "media": {"source": long(2_048)}}, {}),
    ("POST", "/api/v1/projects", {"name": "x", "media": {"thumbnail": long(2_048)}}, {}),
    ("POST", "/api/v1/projects", {"name": "x", "media": {"mimeType": f"video/{long(64)}"}}, {}),
    ("PATCH", "/api/v1/projects/{p}", {"name": long(200)}, {"If-Match": "*"}),
    ("PATCH", "/api/v1/projects/{p}", {"media": {"trimmedSource": long(2_048)}}, {"If-Match": "*"}),
    ("PUT", "/api/v1/projects/{p}/timeline", _track(name=long(500)), {"If-Match": "*"}),
    ("PUT", "/api/v1/projects/{p}/timeline", _track(id=long(100)), {"If-Match": "*"}),
    ("PUT", "/api/v1/projects/{p}/timeline", _clip(mediaRef=long(2_048)), {"If-Match": "*"}),
    ("PUT", "/api/v1/projects/{p}/timeline", _clip(name=long(500)), {"If-Match": "*"}),
    (
        "PUT",
        "/api/v1/projects/{p}/timeline",
        _clip(effects=[{"type": long(64)}]),
        {"If-Match": "*"},
    ),
    (
        "PUT",
        "/api/v1/projects/{p}/timeline",
        _clip(properties={"k": long(1_000)}),
        {"If-Match": "*"},
    ),
    (
        "PUT",
        "/api/v1/projects/{p}/timeline",
        {"state": {**STATE, "markers": [{"id": "m", "time": 0, "color": long(32)}]}},
        {"If-Match": "*"},
    ),
    (
        "PUT",
        "/api/v1/projects/{p}/timeline",
        {"state": STATE, "label": long(500)},
        {"If-Match": "*"},
    ),
    ("POST", "/api/v1/projects/{p}/timeline/rollback", {"version": 1, "label": long(500)}, {}),
    ("PUT", "/api/v1/projects/{p}/transcript", {**_segment(), "language": long(35)}, {}),
    ("PUT", "/api/v1/projects/{p}/transcript", _segment(text=long(20_000)), {}),
    ("PUT", "/api/v1/projects/{p}/transcript", _segment(editedText=long(20_000)), {}),
    (
        "PUT",
        "/api/v1/projects/{p}/transcript",
        _segment(words=[{"text": long(200), "start": 0, "end": 1}]),
        {},
    ),
    (
        "PUT",
        "/api/v1/projects/{p}/transcript",
        {**_segment(), "speakers": [{"id": "a", "label": long(200)}]},
        {},
    ),
    (
        "PUT",
        "/api/v1/projects/{p}/transcript",
        {**_segment(), "metadata": {"model": long(200)}},
        {},
    ),
    (
        "PATCH",
        "/api/v1/projects/{p}/transcript/segments/{s}",
        {"text": long(20_000)},
        {"If-Match": "*"},
    ),
    ("POST", "/api/v1/projects/{p}/transcript/cuts", {"wordIds": [long(120)]}, {}),
    ("POST", "/api/v1/projects/{p}/transcript/cuts", {"wordIds": ["s1:0"], "label": long(500)}, {}),
    ("PUT", "/api/v1/projects/{p}/session", {"panel": long(64)}, {}),
    ("POST", "/api/v1/auth/register", {**REGISTER, "name": long(100), "confirm_password": "x"}, {}),
    (
        "POST",
        "/api/v1/auth/register",
        {**REGISTER, "email": long(1_000), "confirm_password": "x"},
        {},
    ),
    (
        "POST",
        "/api/v1/auth/register",
        {**REGISTER, "password": long(256), "confirm_password": "x"},
        {},
    ),
    ("POST", "/api/v1/auth/register", {**REGISTER, "username": long(50)}, {}),
    ("POST", "/api/v1/auth/login", {"email": long(1_000), "password": "x"}, {}),
    ("POST", "/api/v1/auth/login", {"email": "a@example.com", "password": long(256)}, {}),
    ("POST", "/api/v1/auth/refresh", {"refresh_token": long(512)}, {}),
    ("POST", "/api/v1/auth/logout", {"refresh_token": long(512)}, {}),
    ("PUT", "/api/v1/auth/me", {"name": long(100)}, {}),
    ("PUT", "/api/v1/auth/me", {"avatar_url": "https://" + long(2_048)}, {}),
    ("PUT", "/api/v1/auth/me", {"preferences": {"theme": long(16_384)}}, {}),
    ("POST", "/projects", {"name": long(200)}, {}),
    ("POST", "/projects", {"name": "x", "description": long(5_000)}, {}),
    ("PUT", "/projects/{p}", {"video_path": long(2_048)}, {}),
    ("PUT", "/projects/{p}", {"thumbnail": long(2_048)}, {}),
    ("POST", "/timeline/", {**_layer(), "description": long(200)}, {}),
    ("POST", "/timeline/", {**_layer(), "change_summary": long(299)}, {}),
    ("POST", "/timeline/", _layer(name=long(500)), {}),
    ("POST", "/timeline/", _web_clip(content=long(100_000)), {}),
    ("POST", "/timeline/", _web_clip(source_path=long(4_096)), {}),
    ("POST", "/timeline/", _web_clip(id=long(1_000)), {}),
    ("PUT", "/transcriptions/{p}", {"language": long(35)}, {}),
    ("PUT", "/transcriptions/{p}", {"model_used": long(200)}, {}),
    (
        "PUT",
        "/transcriptions/{p}",
        {"segments": [{"start_time": 0, "end_time": 1, "text": long(20_000)}]},
        {},
    ),
    ("POST", "/media/trim-video", {"project_id": long(64), "segments": []}, {}),
    # Past every field's own bound: the bound of any string in any body, ignored fields too.
    ("POST", "/projects", {"name": "x", "ignored": long(MAX_STRING_CHARS)}, {}),
]


# How a too-long string is reported: by its field's bound, or by the bound of every body.
LENGTH_ERRORS = {"string_too_long", "too_long", "string_pattern_mismatch", "too_large"}


def _fill(value: Any, project: str, segment: str) -> Any:
    text = dumps(value).replace("{p}", project).replace("{s}", segment)
    return json.loads(text)


async def test_every_string_field_of_every_request_model_is_bounded(
    client: httpx.AsyncClient, project: str, store: Store
) -> None:
    """A string one character over its field's bound is a 422 on every route that takes it
    (/api/v1, accounts, the web app's routes, media), and nothing is saved."""
    before = contents(store)
    for method, path, body, headers in TOO_LONG:
        url = path.replace("{p}", project).replace("{s}", "s1")
        response = await client.request(
            method, url, json=_fill(body, project, "s1"), headers={**OWNER, **headers}
        )
        expect_rejected(response, 422, "validation_error", what=f"{method} {path} {list(body)}")
        assert error_types(response) & LENGTH_ERRORS, f"{method} {path}: {response.text[:300]}"
    assert contents(store) == before


async def test_headers_and_query_strings_are_bounded(
    client: httpx.AsyncClient, project: str, store: Store
) -> None:
    """Headers and query strings past their bounds are 422 too (change labels, versions,
    idempotency keys, search text, filters), with nothing saved."""
    before = contents(store)
    base = f"/api/v1/projects/{project}"
    patch = dumps([{"op": "replace", "path": "/clips/0/start", "value": 1.0}])
    cases: list[tuple[str, str, dict[str, str], str | None]] = [
        (
            "PATCH",
            f"{base}/timeline",
            {**PATCH_TYPE, "If-Match": "*", "X-Change-Label": long(500)},
            patch,
        ),
        ("PATCH", f"{base}/timeline", {**PATCH_TYPE, "If-Match": long(64)}, patch),
        (
            "PATCH",
            f"{base}/timeline",
            {**PATCH_TYPE, "If-Match": "*", "Idempotency-Key": long(200)},
            patch,
        ),
        ("POST", "/api/v1/projects", {"Idempotency-Key": "no spaces"}, dumps({"name": "x"})),
        ("GET", f"/api/v1/projects?q={long(200)}", {}, None),
        ("GET", f"/api/v1/projects?tag={long(50)}", {}, None),
        ("GET", f"{base}/transcript/search?q={long(200)}", {}, None),
        ("GET", f"/api/v1/transcripts/search?q={long(200)}", {}, None),
        ("GET", f"/api/v1/admin/audit?action=a.{long(100)}", ADMIN, None),
        ("GET", f"/api/v1/admin/audit?userId={long(200)}", ADMIN, None),
        ("GET", f"/media/{project}/video?token={long(1_024)}", {"X-User-Id": ""}, None),
    ]
    for method, url, headers, body in cases:
        response = await client.request(
            method,
            url,
            content=body,
            headers={**OWNER, "Content-Type": "application/json", **headers},
        )
        assert response.status_code in {401, 422}, f"{url}: {response.text}"
        if response.status_code == 422:
            assert error_code(response) == "validation_error"
    assert contents(store) == before


# --- timeline size, patch operations, transcript uploads: the configured bounds ------------


@pytest.fixture
async def small(settings: Settings, commands: Commands) -> AsyncIterator[httpx.AsyncClient]:
    """The app with small configured bounds: 4 KB timelines, 3-operation patches,
    transcripts of at most 2 segments and 5 words per upload."""
    configured = settings.model_copy(
        update={
            "timeline_max_bytes": 4_096,
            "timeline_max_patch_ops": 3,
            "transcript_max_segments": 2,
            "transcript_max_words": 5,
        }
    )
    app: FastAPI = create_app(configured, command_listeners=[commands])
    async with running_app(app) as http:
        yield http


async def test_a_timeline_over_its_byte_limit_is_413_on_every_way_in(
    small: httpx.AsyncClient, store: Store
) -> None:
    """A timeline state past SNIPIX_TIMELINE_MAX_BYTES is 413 `too_large` whether it comes
    whole (PUT, the web app's save) or grows by a patch, and the timeline is unchanged."""
    project = await seed(small)
    before = contents(store)
    base = f"/api/v1/projects/{project}/timeline"
    markers = [{"id": f"m{n}", "time": n, "label": "x" * 400} for n in range(20)]
    put = await small.put(
        base, json={"state": {**STATE, "markers": markers}}, headers={**OWNER, "If-Match": "*"}
    )
    expect_rejected(put, 413, "too_large", what="PUT")
    grow: list[Json] = [
        {"op": "add", "path": "/markers/-", "value": {"id": f"g{n}", "time": n, "label": "x" * 400}}
        for n in range(12)
    ]
    patched = await small.patch(
        base, content=dumps(grow), headers={**OWNER, **PATCH_TYPE, "If-Match": "*"}
    )
    expect_rejected(patched, 413, "too_large", what="PATCH")
    web = await small.post(
        "/timeline/",
        json={
            "project_id": project,
            "timeline_state": {
                "layers": [{"id": "v1", "name": "x" * 400, "type": "video"}],
                "markers": [{"id": f"m{n}", "time": n, "label": "x" * 400} for n in range(20)],
            },
        },
        headers=OWNER,
    )
    expect_rejected(web, 413, "too_large", what="POST /timeline/")
    assert contents(store) == before


async def test_a_patch_with_too_many_operations_is_refused_before_anything_is_read(
    small: httpx.AsyncClient, store: Store, commands: Commands
) -> None:
    """A JSON Patch over SNIPIX_TIMELINE_MAX_PATCH_OPS operations is a 422 sent without a
    single database command; one at the limit applies."""
    project = await seed(small)
    before = contents(store)
    op = {"op": "replace", "path": "/clips/0/start", "value": 0.5}
    commands.clear()
    response = await small.patch(
        f"/api/v1/projects/{project}/timeline",
        content=dumps([op] * 4),
        headers={**OWNER, **PATCH_TYPE, "If-Match": "*"},
    )
    expect_rejected(response, 422, "validation_error")
    assert "SNIPIX_TIMELINE_MAX_PATCH_OPS" in response.json()["error"]["message"]
    assert commands.seen == []
    assert contents(store) == before
    applied = await small.patch(
        f"/api/v1/projects/{project}/timeline",
        content=dumps([op] * 3),
        headers={**OWNER, **PATCH_TYPE, "If-Match": "*"},
    )
    assert applied.status_code == 200, applied.text


async def test_a_transcript_upload_past_its_batch_limits_is_413(
    small: httpx.AsyncClient, store: Store, commands: Commands
) -> None:
    """A transcript upload with more segments or words than configured is 413 `too_large`
    (also through the web app's PUT), sent without a database command, nothing changed."""
    created = await small.post("/api/v1/projects", json={"name": "Talk"}, headers=OWNER)
    project = created.json()["id"]
    before = contents(store)

    def segment(n: int, words: int) -> Json:
        return {
            "start": n * 10.0,
            "end": n * 10.0 + 5,
            "words": [
                {"text": "w", "start": n * 10.0 + i * 0.5, "end": n * 10.0 + i * 0.5 + 0.2}
                for i in range(words)
            ],
        }

    too_many_segments = {"language": "en", "segments": [segment(n, 1) for n in range(3)]}
    too_many_words = {"language": "en", "segments": [segment(0, 3), segment(1, 3)]}
    for body in (too_many_segments, too_many_words):
        commands.clear()
        response = await small.put(
            f"/api/v1/projects/{project}/transcript", json=body, headers=OWNER
        )
        expect_rejected(response, 413, "too_large")
        assert commands.seen == []
    web = await small.put(
        f"/transcriptions/{project}",
        json={
            "segments": [
                {"start_time": n * 10.0, "end_time": n * 10.0 + 1, "text": "w"} for n in range(3)
            ]
        },
        headers=OWNER,
    )
    expect_rejected(web, 413, "too_large", what="PUT /transcriptions")
    assert contents(store) == before
    fits = await small.put(
        f"/api/v1/projects/{project}/transcript",
        json={"language": "en", "segments": [segment(0, 2), segment(1, 3)]},
        headers=OWNER,
    )
    assert fits.status_code == 200, fits.text


# --- query parameters: limits, cursors, versions, skip ----------------------------------------


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(dumps(value).encode()).decode().rstrip("=")


async def test_query_parameters_out_of_bounds_and_tampered_cursors_are_422(
    client: httpx.AsyncClient, project: str, store: Store
) -> None:
    """`limit` outside 1-200, `skip` below 0, and every edited, foreign or absurd cursor are
    422 on every list — never a 500 (a version cursor past 64 bits was one)."""
    before = contents(store)
    base = f"/api/v1/projects/{project}"
    lists = [
        "/api/v1/projects",
        f"{base}/versions",
        f"{base}/audit",
        f"{base}/timeline/history",
        f"{base}/transcript/segments",
        "/api/v1/sessions/recent",
        "/api/v1/admin/projects/deleted",
        "/api/v1/admin/audit",
    ]
    cursors = [
        "not-base64!",
        "x" * 1_025,
        cursor_of({"zz": 1}),
        cursor_of([1, 2]),
        cursor_of({"v": 2**70}),
        cursor_of({"v": -5}),
        cursor_of({"o": 2**80}),
        cursor_of({"t": "not a date", "id": "x"}),
        cursor_of({"s": "NaN", "id": "s1"}),
        cursor_of({"at": "2026-01-01T00:00:00Z", "id": {"$gt": ""}}),
        base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
    ]
    for url in lists:
        for query in ("limit=0", "limit=201", "limit=abc", "limit=99999999999999999999"):
            response = await client.get(f"{url}?{query}", headers=ADMIN)
            expect_rejected(response, 422, "validation_error", what=f"{url}?{query}")
        for cursor in cursors:
            response = await client.get(url, params={"cursor": cursor}, headers=ADMIN)
            expect_rejected(response, 422, "validation_error", what=f"{url} cursor {cursor[:40]}")
    for query in ("limit=0", "limit=101", "skip=-1", f"skip={10**10}"):
        response = await client.get(f"/timeline/{project}/history?{query}", headers=OWNER)
        expect_rejected(response, 422, "validation_error", what=query)
    for url in (
        f"{base}/versions/{2**60}",
        f"{base}/timeline/versions/{2**60}",
        f"{base}/timeline/export?version={2**60}",
        f"/timeline/{project}/version/{2**60}",
    ):
        response = await client.get(url, headers=OWNER)
        expect_rejected(response, 422, "validation_error", what=url)
    restore = await client.post(f"/timeline/{project}/restore/{2**60}", headers=OWNER)
    expect_rejected(restore, 422, "validation_error", what="restore")
    far = await client.post(f"/timeline/{project}/restore/{2**53 - 1}", headers=OWNER)
    expect_rejected(far, 404, "not_found", what="restore at the bound")
    assert contents(store) == before


async def test_a_query_value_nested_past_the_parser_is_a_422(
    client: httpx.AsyncClient, project: str
) -> None:
    """A query value like `[[[[...` 60,000 levels deep is refused as an operator probe (422);
    parsing it hit the recursion limit, a 500."""
    response = await client.get(f"/api/v1/projects?filter={'[' * 60_000}", headers=OWNER)
    expect_rejected(response, 422, "validation_error")


# --- ids are checked by format before any query ---------------------------------------------


BAD_IDS = ["a.b", "$where", "x" * 65, "a b", "ab%00", "..", "a;b"]


def _id_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every documented operation with an id in its path."""
    return [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if "{project_id}" in path or "{segment_id}" in path
        for method in operations
    ]


async def test_every_id_in_a_path_is_checked_by_format_before_any_query(
    app: FastAPI, client: httpx.AsyncClient, project: str, store: Store, commands: Commands
) -> None:
    """An id of the wrong shape in any route's path (projects, admin, timeline, transcript,
    sessions, media, the web app's routes) is a 422 naming it, sent without one database
    command, and nothing is changed."""
    routes = _id_routes(app)
    assert len(routes) >= 40, routes
    before = contents(store)
    for method, path in routes:
        for bad in BAD_IDS:
            url = path.replace("{project_id}", project).replace("{segment_id}", "s1")
            url = url.replace(project if "{project_id}" in path else "s1", bad, 1)
            url = url.replace("{version}", "1")
            commands.clear()
            response = await client.request(
                method,
                url.replace("%", "%25"),
                json={} if method in {"POST", "PUT", "PATCH"} else None,
                headers={**ADMIN, "If-Match": "*"},
            )
            if response.status_code in {404, 405}:
                # A '/' or '..' splits the path: no route matches, which is also refused.
                assert error_code(response) in {"not_found", "method_not_allowed"}, response.text
            else:
                expect_rejected(response, 422, "validation_error", what=f"{method} {url}")
            assert commands.seen == [], f"{method} {url}: {commands.seen}"
    assert contents(store) == before
    commands.clear()
    versions = await client.get(f"/api/v1/projects/{project}/versions", headers=OWNER)
    assert versions.status_code == 200
    assert commands.seen, "the listener records the commands a valid request sends"


async def test_ids_in_bodies_are_checked_by_format_before_any_query(
    client: httpx.AsyncClient, project: str, store: Store, commands: Commands
) -> None:
    """A project id of the wrong shape in a body (the web app's timeline save, a trim, an
    upload's form field) is a 422 sent without a database command."""
    before = contents(store)
    for bad in BAD_IDS:
        for path, body in [
            ("/timeline/", {"project_id": bad, "timeline_state": {}}),
            (
                "/media/trim-video",
                {"project_id": bad, "segments": [{"startTime": 0, "duration": 1}]},
            ),
        ]:
            commands.clear()
            response = await client.post(path, json=body, headers=OWNER)
            expect_rejected(response, 422, "validation_error", what=f"{path} {bad}")
            assert commands.seen == []
        commands.clear()
        upload = await client.post(
            "/media/upload",
            files={"file": ("clip.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, "video/mp4")},
            data={"project_id": bad},
            headers=OWNER,
        )
        assert upload.status_code in {415, 422}, upload.text
        assert commands.seen == [], commands.seen
    assert contents(store) == before


async def test_a_search_without_a_searchable_word_is_a_422(
    client: httpx.AsyncClient, project: str
) -> None:
    """`?q=` of only spaces, punctuation, control characters or `-excluded` words is a 422
    saying what to send (the text index refused it: a 500); one real word searches."""
    for q in [" ", "-", '"', "\\", "\x13", "--", '""', "-cut", "_", "- -x"]:
        response = await client.get("/api/v1/projects", params={"q": q}, headers=OWNER)
        expect_rejected(response, 422, "validation_error", what=repr(q))
    for q in ["guarded", "a\x13", "-cut guarded", '"guarded"', "é"]:
        response = await client.get("/api/v1/projects", params={"q": q}, headers=OWNER)
        assert response.status_code == 200, f"{q!r}: {response.text}"
    found = await client.get("/api/v1/projects", params={"q": "guarded"}, headers=OWNER)
    assert [item["id"] for item in found.json()["items"]] == [project]
