"""The hot-read lane (api/hot_reads.py): cached project and timeline reads answered before
routing must be exactly the routes' answers, and must skip the routes' work.

Two apps over the same database and cache settings, one with SNIPIX_HOT_READS on and one
with it off, are asked the same things; every status, header (but the request id) and
body must match. Whether the lane answered is seen from the outside: the routes' service
dependency runs for every request the lane leaves to them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
from fastapi import FastAPI, Request
from pydantic import SecretStr

from snipix.api.routes.projects import get_project_service
from snipix.api.routes.timelines import get_timeline_service
from snipix.app import create_app
from snipix.settings import Settings
from tests.api.helpers import SECRET
from tests.conftest import TEST_CACHE
from tests.observability.test_metrics import scrape, value
from tests.support import running_app

PROJECTS = "/api/v1/projects"
ALICE = {"X-User-Id": "alice"}
BOB = {"X-User-Id": "bob"}
# With Redis configured but down the local layer is off: nothing is held in process, so
# the lane answers nothing and every request takes the route (with the same answers).
LANE_ANSWERS = TEST_CACHE != "redis-down"


def bearer(user_id: str, *, expires_in: int = 300) -> dict[str, str]:
    claims = {"sub": user_id, "exp": int(time.time()) + expires_in}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


class Counted:
    """The routes' service dependencies, counting how often a route ran."""

    def __init__(self, app: FastAPI) -> None:
        self.calls = 0
        for dependency in (get_project_service, get_timeline_service):
            app.dependency_overrides[dependency] = self._counting(dependency)

    def _counting(self, dependency: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def counted(request: Request) -> Any:
            self.calls += 1
            return await dependency(request)

        return counted


@asynccontextmanager
async def replica(
    settings: Settings, *, hot_reads: bool
) -> AsyncIterator[tuple[httpx.AsyncClient, Counted]]:
    app = create_app(
        settings.model_copy(update={"hot_reads": hot_reads, "jwt_secret": SecretStr(SECRET)})
    )
    counted = Counted(app)
    async with running_app(app) as http:
        yield http, counted


def answer(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in response.headers.items() if k != "x-request-id"}
    return response.status_code, headers, response.content


async def test_the_lane_answers_exactly_as_the_routes_do(settings: Settings) -> None:
    """200, 304 (exact, weak and `*` validators), a stale validator, the timeline, someone
    else's project, no identity, a bad token, a token, a query string: same answers."""
    async with (
        replica(settings, hot_reads=True) as (fast, _),
        replica(settings, hot_reads=False) as (routed, _),
    ):
        created = await fast.post(PROJECTS, json={"name": "Hot"}, headers=ALICE)
        assert created.status_code == 201
        project = f"{PROJECTS}/{created.json()['id']}"
        timeline = f"{project}/timeline"
        asks: list[tuple[str, dict[str, str]]] = [
            (project, ALICE),
            (project, {**ALICE, "If-None-Match": '"1"'}),
            (project, {**ALICE, "If-None-Match": 'W/"1"'}),
            (project, {**ALICE, "If-None-Match": '"0", "1"'}),
            (project, {**ALICE, "If-None-Match": "*"}),
            (project, {**ALICE, "If-None-Match": '"2"'}),
            (timeline, ALICE),
            (timeline, {**ALICE, "If-None-Match": '"0"'}),
            (project, BOB),
            (timeline, BOB),
            (project, {}),
            (project, {"Authorization": "Bearer not-a-token"}),
            (project, bearer("alice", expires_in=-600)),
            (project, bearer("alice")),
            (f"{project}?x=1", ALICE),
            (f"{project}/", ALICE),
            (f"{PROJECTS}/{'0' * 24}", ALICE),
        ]
        for client in (fast, routed):  # warm both caches
            for _ in range(2):
                await client.get(project, headers=ALICE)
                await client.get(timeline, headers=ALICE)
        for n, (url, headers) in enumerate(asks):
            # One request id for both, so error bodies (which quote it) can match.
            headers = {**headers, "X-Request-ID": f"ask-{n}"}
            seen = [answer(await client.get(url, headers=headers)) for client in (fast, routed)]
            assert seen[0] == seen[1], (url, headers)


async def test_hits_skip_the_routes_and_misses_do_not(settings: Settings) -> None:
    """Repeated reads of a cached project and timeline run no route; with the lane off,
    every read does; a project never read before goes to its route."""
    async with (
        replica(settings, hot_reads=True) as (fast, fast_routes),
        replica(settings, hot_reads=False) as (routed, routed_routes),
    ):
        created = await fast.post(PROJECTS, json={"name": "Hot"}, headers=ALICE)
        project = f"{PROJECTS}/{created.json()['id']}"
        for client in (fast, routed):
            # A miss fills Redis; the next read brings the entry into process memory.
            for _ in range(2):
                await client.get(project, headers=ALICE)
                await client.get(f"{project}/timeline", headers=ALICE)
        before = (fast_routes.calls, routed_routes.calls)
        for client in (fast, routed):
            for _ in range(5):
                assert (await client.get(project, headers=ALICE)).headers["X-Cache"] in {
                    "hit",
                    "bypass",
                }
                assert (await client.get(f"{project}/timeline", headers=ALICE)).status_code == 200
        assert routed_routes.calls - before[1] == 10
        assert fast_routes.calls - before[0] == (0 if LANE_ANSWERS else 10)

        other = await fast.post(PROJECTS, json={"name": "Cold"}, headers=ALICE)
        calls = fast_routes.calls
        first = await fast.get(f"{PROJECTS}/{other.json()['id']}", headers=ALICE)
        assert first.status_code == 200
        assert fast_routes.calls == calls + 1


async def test_a_write_is_read_back_through_the_lane_at_once(settings: Settings) -> None:
    """Read, change, read: every read after a change shows it (project and timeline)."""
    async with replica(settings, hot_reads=True) as (fast, _):
        created = await fast.post(PROJECTS, json={"name": "v1"}, headers=ALICE)
        project = f"{PROJECTS}/{created.json()['id']}"
        for version in range(1, 4):
            await fast.get(project, headers=ALICE)
            await fast.get(project, headers=ALICE)
            changed = await fast.patch(
                project,
                json={"name": f"v{version + 1}"},
                headers={**ALICE, "If-Match": f'"{version}"'},
            )
            assert changed.status_code == 200
            read = await fast.get(project, headers=ALICE)
            assert (read.json()["name"], read.headers["ETag"]) == (
                f"v{version + 1}",
                f'"{version + 1}"',
            )
        timeline = f"{project}/timeline"
        await fast.get(timeline, headers=ALICE)
        await fast.get(timeline, headers=ALICE)
        saved = await fast.put(timeline, json={"state": {}}, headers={**ALICE, "If-Match": '"0"'})
        assert saved.status_code == 200, saved.text
        assert (await fast.get(timeline, headers=ALICE)).headers["ETag"] == '"1"'
        deleted = await fast.delete(project, headers={**ALICE, "If-Match": '"4"'})
        assert deleted.status_code == 204
        assert (await fast.get(project, headers=ALICE)).status_code == 404
        assert (await fast.get(timeline, headers=ALICE)).status_code == 404


async def test_lane_answers_are_logged_and_counted_under_their_route(settings: Settings) -> None:
    """The metrics name the route template of a lane-answered read, as for a routed one."""
    async with replica(settings, hot_reads=True) as (fast, _):
        created = await fast.post(PROJECTS, json={"name": "Counted"}, headers=ALICE)
        project = f"{PROJECTS}/{created.json()['id']}"
        for _ in range(4):
            await fast.get(project, headers=ALICE)
            await fast.get(f"{project}/timeline", headers=ALICE)
        samples = await scrape(fast)
    labels = {"method": "GET", "status": "200"}
    assert (
        value(samples, "snipix_http_requests_total", route=f"{PROJECTS}/{{project_id}}", **labels)
        == 4
    )
    assert (
        value(
            samples,
            "snipix_http_requests_total",
            route=f"{PROJECTS}/{{project_id}}/timeline",
            **labels,
        )
        == 4
    )
