"""Security headers on every answer: JSON, errors, 500s, preflights, health, metrics, media."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from snipix.app import create_app
from snipix.settings import Settings
from tests.media.conftest import Videos
from tests.media.test_endpoints import uploaded
from tests.support import running_app

ALICE = {"X-User-Id": "alice"}
LOCKED = "default-src 'none'; frame-ancestors 'none'"
FRAMES = "frame-ancestors 'none'"


def assert_secured(response: httpx.Response, *, csp: str = LOCKED, cache: str = "no-store") -> None:
    for name, expected in {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": csp,
        "Cache-Control": cache,
    }.items():
        # Exactly once: a header the route set is never sent a second time.
        assert response.headers.get_list(name) == [expected], (name, response.headers)
    assert "strict-transport-security" not in response.headers


def with_failing_route(settings: Settings) -> FastAPI:
    app = create_app(settings)

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/api/v1/broken", broken)
    return app


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(with_failing_route(settings)) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/api/v1/projects", ALICE, 200),
        ("POST", "/api/v1/projects", ALICE, 422),
        ("GET", "/api/v1/projects", {}, 401),
        ("GET", "/api/v1/projects/000000000000000000000000", ALICE, 404),
        ("GET", "/no/such/route", {}, 404),
        ("GET", "/projects", ALICE, 200),
        ("GET", "/api/v1/broken", ALICE, 500),
        ("GET", "/health/live", {}, 200),
        ("GET", "/health/ready", {}, 200),
        ("GET", "/metrics", {}, 200),
        ("GET", "/openapi.json", {}, 200),
    ],
)
async def test_every_answer_carries_the_headers(
    http: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    """API data, errors (500 included), health, metrics and the schema: all locked down."""
    response = await http.request(
        method, path, headers=headers, json={} if method == "POST" else None
    )
    assert response.status_code == status, response.text
    assert_secured(response)


async def test_the_docs_page_may_load_its_scripts_but_not_be_framed(
    http: httpx.AsyncClient,
) -> None:
    """/docs is HTML that loads Swagger UI: only framing is forbidden."""
    response = await http.get("/docs")
    assert response.status_code == 200
    assert_secured(response, csp=FRAMES)


async def test_a_cors_preflight_carries_them_too(http: httpx.AsyncClient) -> None:
    """The preflight answered by CORS (before the app) is no exception."""
    response = await http.options(
        "/projects",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert_secured(response)


async def test_https_answers_ask_browsers_to_stay_on_https(http: httpx.AsyncClient) -> None:
    """Over HTTPS (directly or via a trusted proxy), HSTS; over HTTP it would mean nothing."""
    secure = await http.get("https://snipix.test/health/live")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"
    plain = await http.get("http://snipix.test/health/live")
    assert "strict-transport-security" not in plain.headers


@pytest.mark.process
async def test_videos_keep_their_own_caching_and_ranges(
    http: httpx.AsyncClient, videos: Videos
) -> None:
    """Media files: the browser may keep and revalidate them (Range keeps working), shared
    caches may not; no default-src policy that could stop a directly opened video playing."""
    project_id = await uploaded(http, videos)
    video = await http.get(f"/media/{project_id}/video", headers={**ALICE, "Range": "bytes=0-99"})
    assert video.status_code == 206
    assert len(video.content) == 100
    assert video.headers["ETag"]
    assert_secured(video, csp=FRAMES, cache="private, no-cache")
    thumbnail = await http.get(f"/media/{project_id}/thumbnail", headers=ALICE)
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert thumbnail.headers.get_list("X-Content-Type-Options") == ["nosniff"]
    assert thumbnail.headers["Content-Security-Policy"] == FRAMES
    links = await http.get(f"/media/{project_id}/links", headers=ALICE)
    assert_secured(links)
