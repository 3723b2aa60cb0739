"""The request body limit: 413 `too_large` in the common shape, nothing read on, nothing written."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from starlette.types import Message, Receive, Scope, Send

from snipix.api.body_limit import (
    TIMELINE_BODY_SLACK,
    UPLOAD_BODY_SLACK,
    Allowance,
    BodyLimitMiddleware,
    allowances,
)
from snipix.app import create_app
from snipix.settings import Settings
from tests.support import running_app

ALICE = {"X-User-Id": "alice"}
LIMIT = 4_096


def small(settings: Settings, **overrides: Any) -> Settings:
    return settings.model_copy(update={"max_body_bytes": LIMIT, **overrides})


def big_project(size: int) -> bytes:
    return json.dumps({"name": "big", "description": "x" * size}).encode()


async def chunked(body: bytes, size: int = 1_000) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def assert_too_large(response: httpx.Response, limit: int = LIMIT) -> dict[str, Any]:
    assert response.status_code == 413, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "too_large"
    assert error["details"] == {"maxBytes": limit}
    assert error["requestId"] == response.headers["X-Request-ID"]
    assert f"{limit:,}" in error["message"]
    return error


def projects(mongo: MongoClient[dict[str, Any]], settings: Settings) -> int:
    return mongo[settings.database_name]["projects"].count_documents({})


async def test_a_declared_length_over_the_limit_is_refused_before_anything_runs(
    settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> None:
    """Content-Length over SNIPIX_MAX_BODY_BYTES: 413 at once; no handler, no rate limit."""
    app = create_app(small(settings, rate_limit_writes=1))
    async with running_app(app) as http:
        body = big_project(LIMIT)
        refused = await http.post(
            "/api/v1/projects",
            content=body,
            headers={**ALICE, "Content-Type": "application/json"},
        )
        error = assert_too_large(refused)
        assert f"{len(body):,} bytes" in error["message"]
        assert refused.headers["Connection"] == "close"
        # The refused request did not use up the one write allowed.
        assert (await http.post("/api/v1/projects", json={"name": "ok"}, headers=ALICE)).is_success
    assert projects(mongo, settings) == 1


async def test_a_chunked_body_is_counted_as_it_arrives(
    settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> None:
    """Without Content-Length the bytes are counted; past the limit: 413, nothing written."""
    async with running_app(create_app(small(settings))) as http:
        refused = await http.post(
            "/api/v1/projects",
            content=chunked(big_project(LIMIT)),
            headers={**ALICE, "Content-Type": "application/json"},
        )
        assert refused.request.headers["Transfer-Encoding"] == "chunked"
        assert_too_large(refused)
        fits = await http.post(
            "/api/v1/projects",
            content=chunked(big_project(LIMIT // 2)),
            headers={**ALICE, "Content-Type": "application/json"},
        )
        assert fits.status_code == 201, fits.text
    assert projects(mongo, settings) == 1


async def test_the_web_apps_paths_get_413_in_its_envelope(settings: Settings) -> None:
    """On the original web app's routes the 413 is its failure envelope."""
    async with running_app(create_app(small(settings))) as http:
        for content in (big_project(LIMIT), chunked(big_project(LIMIT))):
            refused = await http.post(
                "/projects",
                content=content,
                headers={**ALICE, "Content-Type": "application/json"},
            )
            assert refused.status_code == 413
            body = refused.json()
            assert body["success"] is False
            assert body["code"] == "too_large"
            assert body["details"] == {"maxBytes": LIMIT}
            assert body["request_id"] == refused.headers["X-Request-ID"]


async def test_timeline_saves_may_use_the_timeline_limit(settings: Settings) -> None:
    """A timeline save larger than SNIPIX_MAX_BODY_BYTES but within SNIPIX_TIMELINE_MAX_BYTES
    is accepted; the same size elsewhere is not."""
    configured = small(settings, timeline_max_bytes=64 * 1024)
    markers = [{"id": f"m{n}", "time": n, "label": "x" * 90, "color": "#ff0000"} for n in range(60)]
    state = {"tracks": [], "clips": [], "markers": markers}
    async with running_app(create_app(configured)) as http:
        project_id = (
            await http.post("/api/v1/projects", json={"name": "t"}, headers=ALICE)
        ).json()["id"]
        body = json.dumps({"state": state}).encode()
        assert LIMIT < len(body) < 64 * 1024
        saved = await http.put(
            f"/api/v1/projects/{project_id}/timeline",
            content=body,
            headers={**ALICE, "If-Match": '"0"', "Content-Type": "application/json"},
        )
        assert saved.status_code == 200, saved.text
        elsewhere = await http.put(
            f"/api/v1/projects/{project_id}/session",
            content=body,
            headers={**ALICE, "Content-Type": "application/json"},
        )
        assert_too_large(elsewhere)


def test_allowances_only_ever_raise_the_limit(settings: Settings) -> None:
    """Timeline writes get the timeline limit plus slack, uploads the media limit plus slack;
    with a general limit above those, the general limit."""
    middleware = BodyLimitMiddleware(
        app=None,  # type: ignore[arg-type]
        max_bytes=LIMIT,
        allowances=allowances(small(settings)),
    )
    timeline = settings.timeline_max_bytes + TIMELINE_BODY_SLACK
    upload = settings.media_max_bytes + UPLOAD_BODY_SLACK
    assert middleware.limit_for("PUT", "/api/v1/projects/p1/timeline") == timeline
    assert middleware.limit_for("PATCH", "/api/v1/projects/p1/timeline") == timeline
    assert middleware.limit_for("POST", "/api/v1/projects/p1/timeline/import") == timeline
    assert middleware.limit_for("POST", "/timeline/") == timeline
    assert middleware.limit_for("POST", "/media/upload") == upload
    assert middleware.limit_for("POST", "/api/v1/projects/p1/timeline/undo") == LIMIT
    assert middleware.limit_for("PUT", "/api/v1/projects/p1/transcript") == LIMIT
    assert middleware.limit_for("GET", "/media/upload") == LIMIT
    generous = settings.model_copy(update={"max_body_bytes": 2**31, "media_max_bytes": 2**30})
    assert {a.max_bytes for a in allowances(generous)} == {2**31}


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("PUT", "/api/v1/projects/{project_id}/timeline"),
        ("PATCH", "/api/v1/projects/{project_id}/timeline"),
        ("POST", "/api/v1/projects/{project_id}/timeline/import"),
        ("POST", "/timeline/"),
        ("POST", "/media/upload"),
    ],
)
def test_every_allowance_names_a_real_route(settings: Settings, method: str, template: str) -> None:
    """The allowance patterns match routes the app serves (a renamed route fails here)."""
    paths = create_app(settings).openapi()["paths"]
    assert method.lower() in paths[template], f"no route serves {method} {template}"
    path = template.replace("{project_id}", "p1")
    assert any(a.path.fullmatch(path) and method in a.methods for a in allowances(settings))


async def test_a_body_longer_than_its_content_length_is_still_cut_off() -> None:
    """A Content-Length that understates the body does not get the rest past the limit."""
    read: list[int] = []

    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            read.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = BodyLimitMiddleware(echo, max_bytes=100)
    chunks = [b"x" * 60, b"x" * 60, b"x" * 60]
    sent: list[Message] = []

    async def receive() -> Message:
        body = chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/projects",
        "headers": [(b"content-length", b"10")],
        "state": {"request_id": "r1"},
    }
    await middleware(scope, receive, send)
    assert read == [60]  # the second chunk passed the limit and never reached the app
    assert sent[0]["status"] == 413
    body = json.loads(sent[1]["body"])
    assert body["error"]["code"] == "too_large"
    assert body["error"]["requestId"] == "r1"


async def test_an_upload_over_the_media_limit_keeps_the_routes_own_answer(
    settings: Settings,
) -> None:
    """The upload route's own 413 (SNIPIX_MEDIA_MAX_BYTES, details.maxBytes) still answers."""
    configured = small(settings, media_max_bytes=20_000)
    async with running_app(create_app(configured)) as http:
        project_id = (
            await http.post("/api/v1/projects", json={"name": "m"}, headers=ALICE)
        ).json()["id"]
        boundary = "b0undary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="project_id"\r\n\r\n'
                f"{project_id}\r\n--{boundary}\r\n"
                'Content-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
                "Content-Type: video/mp4\r\n\r\n"
            ).encode()
            + b"\x00\x00\x00\x18ftypmp42"
            + b"\x00" * 200_000
        )
        refused = await http.post(
            "/media/upload",
            content=body,
            headers={**ALICE, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert refused.status_code == 413
    assert refused.json()["details"] == {"maxBytes": 20_000}


async def test_a_route_that_checks_its_own_length_answers_first() -> None:
    """For the upload route the declared length is the route's to judge; the bytes it
    reads are still counted against the backstop."""
    calls: list[str] = []

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append("route")
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    upload = Allowance(frozenset({"POST"}), re.compile("/media/upload"), 100, True)
    middleware = BodyLimitMiddleware(route, max_bytes=10, allowances=[upload])
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"x" * 150, "more_body": False}

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/media/upload",
        "headers": [(b"content-length", b"150")],
    }
    await middleware(scope, receive, send)
    assert calls == ["route"]  # not refused on the declared length alone
    assert sent[0]["status"] == 413  # but what it read passed the backstop
