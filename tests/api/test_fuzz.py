"""Property-based fuzzing of the whole HTTP API from its own OpenAPI document (schemathesis).

Every operation of `/openapi.json` gets generated requests, valid and invalid ones (bodies,
path and query parameters, headers), sent in-process to the real app on its own database.
Each answer must be: no 5xx (a documented 501 of a feature this server leaves to an outside
service excepted), a documented status code with a body matching its documented schema and
content type, and every error in the common shape of its path (`{"error": {...}}`, or the
web app's failure envelope on its legacy paths).

The fuzzer acts as a signed-in user who owns a project with a timeline (history to undo),
a transcript and a session; three generated ids in four of a valid format are swapped for
that project's (and its segments'), and half of the valid `If-Match` headers for `*`, so
requests reach the handlers behind the ownership and version checks. What a request
deletes of that project is put back before the next one.

`SNIPIX_FUZZ_EXAMPLES` (default 10) bounds the fuzzing phase's examples per operation (the
examples and coverage phases add a fixed set: documented examples, boundary values); the
seed is fixed so every CI run sends the same requests. Set it higher for a longer run, and
`SNIPIX_FUZZ_SEED` for other requests; the summary line after the tests gives the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from pymongo import MongoClient
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from snipix.api.envelope import is_compat_path
from snipix.api.routes.events import EVENTS_PATH
from snipix.app import create_app
from snipix.projects.schemas import PROJECT_ID_PATTERN
from snipix.settings import Settings
from tests.support import SETTING_PREFIXES

# Read once at import: the suite's autouse fixture removes SNIPIX_ variables per test.
EXAMPLES = int(os.environ.get("SNIPIX_FUZZ_EXAMPLES", "10"))
SEED = os.environ.get("SNIPIX_FUZZ_SEED")
SECRET = "fuzz-test-secret-" + "f" * 32
PASSWORD = "Fuzz-Tester-42"
_PROJECT_ID = re.compile(PROJECT_ID_PATTERN)
_SEGMENT_ID = re.compile(r"^[A-Za-z0-9_:-]{1,120}$")

# Every operation of the API, a few hundred requests each: about a minute in all.
pytestmark = [
    pytest.mark.slow,
    # The app runs in schemathesis's portal thread while Hypothesis draws cases in this
    # one, and its background loops (the cache's journal poll, each tick) send database
    # commands, for which PyMongo draws an operation id from the global `random` (its
    # `message._randint`). Hypothesis sees the global state move during a draw and takes
    # it for a strategy using `random`; no strategy here does, and the generated requests
    # do not depend on that state (they come from Hypothesis' own seeded source).
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module inside strategies"
        ":hypothesis.errors.HypothesisDeprecationWarning"
    ),
]

# The schema is the app's own document, loaded by a fixture when the test runs: every
# operation's test (its coverage cases included, ~5 s) is built by the one worker that runs
# it, as a subtest named after the operation, not at each worker's collection.
schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def api_schema(request: pytest.FixtureRequest) -> schemathesis.BaseSchema:
    """The app's own OpenAPI document (building the app connects nothing)."""
    # schemathesis (4.32) renames the item per operation through its `_nodeid`, an
    # attribute pytest 9.2 no longer has; given one, the subtests carry the names.
    request.node._nodeid = request.node.nodeid
    return schemathesis.openapi.from_dict(
        create_app(Settings(_env_file=None)).openapi(),
        config=schemathesis.Config.from_dict(
            {
                "generation": {"deterministic": SEED is None},
                **({"seed": int(SEED)} if SEED else {}),
            }
        ),
        # A live event stream on the fuzzing user's project never ends, and the ASGI
        # client waits for a whole response; tests/events covers that route (its link
        # route is fuzzed).
    ).exclude(path=EVENTS_PATH, method="GET")


class OneLifespan:
    """The app, its lifespan started at the first request and kept until `stop()`.

    Schemathesis runs an ASGI app's lifespan per test (one per operation) and ends it in
    the test's teardown; this wrapper declines that and runs the real one once, as a server
    would, in a task of the loop schemathesis serves requests on (the database client is
    bound to that loop).
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._manager: LifespanManager | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            # Refused before any message: the server treats the app as lifespan-less.
            raise RuntimeError("the fuzz run starts the lifespan itself")
        if self._manager is None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            started: asyncio.Future[LifespanManager] = self._loop.create_future()
            self._task = self._loop.create_task(self._run(started))
            self._manager = await started
        await self._manager.app(scope, receive, send)

    async def _run(self, started: asyncio.Future[LifespanManager]) -> None:
        assert self._stopping is not None
        async with LifespanManager(self.app, startup_timeout=60, shutdown_timeout=60) as manager:
            started.set_result(manager)
            await self._stopping.wait()

    def stop(self) -> None:
        """End the lifespan (from the test's thread), if a request started it."""
        if self._loop is None or self._task is None or self._stopping is None:
            return

        async def stopped() -> None:
            assert self._stopping is not None
            assert self._task is not None
            self._stopping.set()
            await self._task

        asyncio.run_coroutine_threadsafe(stopped(), self._loop).result(timeout=60)


@dataclass
class FuzzRun:
    """The running app, the fuzzing user's data, and what the run sent and got."""

    app: OneLifespan | None = None
    token: str = ""
    user_id: str = ""
    project_id: str = ""
    segment_ids: tuple[str, ...] = ()
    started: float = 0.0
    elapsed: float = 0.0
    statuses: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))

    @property
    def cases(self) -> int:
        return sum(sum(counts.values()) for counts in self.statuses.values())

    def summary(self) -> str:
        totals: Counter[int] = Counter()
        for counts in self.statuses.values():
            totals.update(counts)
        return (
            f"schemathesis: {self.cases} generated requests over {len(self.statuses)} "
            f"operations in {self.elapsed:.0f} s (examples, coverage and fuzzing phases; "
            f"{EXAMPLES} fuzzed examples per operation); "
            f"statuses {dict(sorted(totals.items()))}"
        )


RUN = FuzzRun()

TIMELINE: dict[str, Any] = {
    "tracks": [{"id": "v1", "kind": "video", "name": "Main"}, {"id": "a1", "kind": "audio"}],
    "clips": [
        {"id": "c1", "trackId": "v1", "start": 0.0, "sourceIn": 0.0, "sourceOut": 2.0},
        {"id": "c2", "trackId": "v1", "start": 3.0, "sourceIn": 5.0, "sourceOut": 7.0},
        {"id": "c3", "trackId": "a1", "start": 0.0, "sourceIn": 0.0, "sourceOut": 4.0},
    ],
    "segments": [{"id": "k1", "start": 0.0, "end": 2.0}],
    "markers": [{"id": "m1", "time": 1.5, "label": "Intro", "color": "red"}],
}
TRANSCRIPT: dict[str, Any] = {
    "language": "en",
    "speakers": [{"id": "host", "label": "Host"}, {"id": "guest", "label": "Guest"}],
    "segments": [
        {
            "id": f"s{index}",
            "start": index * 3.0,
            "end": index * 3.0 + 2.5,
            "speaker": "host" if index % 2 == 0 else "guest",
            "words": [
                {"text": word, "start": index * 3.0 + n * 0.5, "end": index * 3.0 + n * 0.5 + 0.4}
                for n, word in enumerate(("so", "we", "cut", "here"))
            ],
        }
        for index in range(3)
    ],
}


def _owner() -> dict[str, str]:
    return {"X-User-Id": RUN.user_id}


def _seed(client: Any) -> None:
    """The fuzzing user: an account, and a project with a timeline, transcript and session."""
    registered = client.post(
        "/api/v1/auth/register",
        json={
            "email": "fuzzer@example.com",
            "name": "Fuzzer",
            "password": PASSWORD,
            "confirm_password": PASSWORD,
        },
    )
    assert registered.status_code == 201, registered.text
    RUN.user_id = registered.json()["user"]["id"]
    RUN.token = registered.json()["access_token"]
    project = client.post("/api/v1/projects", json={"name": "Fuzzed"}, headers=_owner())
    assert project.status_code == 201, project.text
    RUN.project_id = project.json()["id"]
    base = f"/api/v1/projects/{RUN.project_id}"
    saved = client.put(
        f"{base}/timeline", json={"state": TIMELINE}, headers={**_owner(), "If-Match": '"0"'}
    )
    assert saved.status_code == 200, saved.text
    patched = client.patch(
        f"{base}/timeline",
        data=json.dumps([{"op": "replace", "path": "/clips/0/start", "value": 0.5}]),
        headers={**_owner(), "If-Match": '"1"', "Content-Type": "application/json-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    assert _seed_transcript(client) == 200
    session = client.put(f"{base}/session", json={"playheadSec": 1.0}, headers=_owner())
    assert session.status_code == 200, session.text


def _seed_transcript(client: Any) -> int:
    uploaded = client.put(
        f"/api/v1/projects/{RUN.project_id}/transcript", json=TRANSCRIPT, headers=_owner()
    )
    RUN.segment_ids = tuple(segment["id"] for segment in TRANSCRIPT["segments"])
    return int(uploaded.status_code)


@pytest.fixture(scope="module", autouse=True)
def fuzzed_app(
    mongodb_uri: str,
    mongo: MongoClient[dict[str, Any]],
    cache_url: str | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OneLifespan]:
    """One app, lifespan and database for the whole run."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with pytest.MonkeyPatch.context() as env:
        for variable in list(os.environ):
            if variable.startswith(SETTING_PREFIXES) and variable != "SNIPIX_TEST_MONGODB_URI":
                env.delenv(variable)
        fuzz_settings = Settings(
            _env_file=None,
            mongodb_uri=mongodb_uri,
            mongodb_database=name,
            data_dir=tmp_path_factory.mktemp("fuzz") / "data",
            log_format="json",
            log_level="WARNING",
            redis_url=cache_url,
            cache_prefix=name,
            jwt_secret=SECRET,
            retention_interval_s=0,
            # Thousands of requests a minute from one user: limits would answer most with
            # 429 (tested in tests/security) and the fuzzer would reach no handler.
            rate_limit_writes=0,
            rate_limit_searches=0,
            login_failures_per_account=10_000,
            login_failures_per_ip=100_000,
        )
    app = OneLifespan(create_app(fuzz_settings))
    try:
        with asgi.get_client(app) as client:
            _seed(client)
        RUN.app = app
        RUN.started = time.monotonic()
        yield app
        RUN.elapsed = time.monotonic() - RUN.started
    finally:
        app.stop()
        mongo.drop_database(name)


def _identity(path: str) -> dict[str, str]:
    """A bearer token on the accounts routes, the local dev identity (as an admin) elsewhere."""
    if path.startswith(("/auth/", "/api/v1/auth/")):
        return {"Authorization": f"Bearer {RUN.token}"}
    return {**_owner(), "X-User-Roles": "admin"}


def _chance(case: schemathesis.Case[Any], salt: str) -> int:
    """A number 0-3 fixed by the generated request (the same requests every seeded run)."""
    drawn = f"{salt}|{case.path_parameters}|{case.query}|{case.headers}|{case.body!r}"
    return zlib.crc32(drawn.encode()) % 4


def _aim(case: schemathesis.Case[Any]) -> None:
    """Point generated ids of a valid format at the fuzzing user's data, most of the time."""
    path = case.path_parameters or {}
    project = path.get("project_id")
    if isinstance(project, str) and _PROJECT_ID.match(project) and _chance(case, "p"):
        path["project_id"] = RUN.project_id
    segment = path.get("segment_id")
    if isinstance(segment, str) and _SEGMENT_ID.match(segment) and _chance(case, "s"):
        path["segment_id"] = RUN.segment_ids[_chance(case, "n") % len(RUN.segment_ids)]
    body = case.body
    sent_id = body.get("project_id") if isinstance(body, dict) else None
    if isinstance(sent_id, str) and _PROJECT_ID.match(sent_id) and _chance(case, "b"):
        assert isinstance(body, dict)
        body["project_id"] = RUN.project_id
    positive = case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE
    headers = case.headers if case.headers is not None else {}
    if positive and "If-Match" in headers and _chance(case, "m") < 2:
        headers["If-Match"] = "*"


def _repair(case: schemathesis.Case[Any], client: Any) -> None:
    """Put back what a request deleted of the fuzzing user's project (best effort: a
    transcript longer than what a generated media duration allows stays deleted)."""
    if case.method.upper() != "DELETE" or RUN.project_id not in case.formatted_path:
        return
    if "transcript" in case.formatted_path:
        _seed_transcript(client)
        return
    client.post(f"/api/v1/projects/{RUN.project_id}/restore", headers=_owner())


@schemathesis.check
def no_server_error(
    ctx: Any, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """5xx fails, except a documented 501: routes whose feature needs an outside service
    (Google sign-in, mail, speech recognition, ffmpeg) answer it by contract (API.md)."""
    if response.status_code == 501 and "501" in case.operation.responses.status_codes:
        return None
    return not_a_server_error(ctx, response, case)


@schemathesis.check
def common_error_shape(
    ctx: Any, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Every JSON error is the service's shape, or the web app's envelope on its paths."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if response.status_code == 416 and content_type.startswith("text/plain"):
        return None  # Starlette's Range answer for players, documented without a body
    assert content_type.startswith("application/json"), (
        f"{response.status_code} answered with {content_type!r}, not JSON"
    )
    body = response.json()
    if is_compat_path(case.formatted_path):
        assert body.get("success") is False, body
        assert isinstance(body.get("code"), str), body
        assert isinstance(body.get("error"), str), body
        assert {"details", "timestamp", "request_id"} <= set(body), body
    else:
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"code", "message", "details", "requestId"}, body
        assert isinstance(body["error"]["code"], str), body
    return None


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    common_error_shape,
]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api(case: schemathesis.Case[Any]) -> None:
    """No generated request gets a 5xx, an undocumented status, or a body unlike its schema."""
    assert RUN.app is not None
    if case.operation.label == f"GET {EVENTS_PATH}":
        # Excluded from the schema above, yet schemathesis 4.32 still runs the operation's
        # coverage cases; an endless stream would hold the ASGI client for its timeout.
        return
    _aim(case)
    response = case.call(headers=_identity(case.operation.path), app=RUN.app)
    RUN.statuses[case.operation.label][response.status_code] += 1
    try:
        case.validate_response(response, checks=CHECKS)
    finally:
        with asgi.get_client(RUN.app) as client:
            _repair(case, client)
