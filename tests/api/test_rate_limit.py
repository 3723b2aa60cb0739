"""Rate limits on writes and searches: 429 with Retry-After, exactly the limit let through.

Every test passes with Redis, with Redis configured but down, and with the in-process
counters (SNIPIX_TEST_CACHE); the ones about sharing and recovery start Redis themselves.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any, cast

import httpx
import pytest
import structlog
from asgi_lifespan import LifespanManager
from limits import RateLimitItemPerMinute
from pydantic import SecretStr, ValidationError
from pymongo import MongoClient
from redis.asyncio import Redis
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from snipix.accounts.throttle import LoginThrottle
from snipix.api.rate_limit import PROJECT_LIST_ROUTE, SEARCH_ROUTES
from snipix.app import create_app
from snipix.errors import RateLimited
from snipix.observability.metrics import Metrics
from snipix.security.limiter import SLOW_IS_DOWN_AFTER_S, Limiter
from snipix.security.metrics import RateLimitMetrics
from snipix.settings import Settings
from tests.observability.test_metrics import parse, scrape, value
from tests.support import RedisServer, free_port, running_app

ALICE = {"X-User-Id": "alice"}
BOB = {"X-User-Id": "bob"}
WINDOW_S = 60


def limited(settings: Settings, **limits: Any) -> Settings:
    return settings.model_copy(update={"rate_limit_window_s": WINDOW_S, **limits})


def assert_rate_limited(response: httpx.Response, scope: str, limit: int) -> int:
    """A 429 in the common shape with a usable Retry-After; returns its seconds."""
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW_S
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["requestId"] == response.headers["X-Request-ID"]
    assert error["details"] == {
        "scope": scope,
        "limit": limit,
        "windowSeconds": WINDOW_S,
        "retryAfterSeconds": retry_after,
    }
    assert f"Try again in {retry_after} seconds" in error["message"]
    return retry_after


async def create(http: httpx.AsyncClient, name: str, headers: dict[str, str]) -> httpx.Response:
    return await http.post("/api/v1/projects", json={"name": name}, headers=headers)


async def test_a_burst_of_creates_gets_exactly_the_limit_through(
    settings: Settings, mongo: MongoClient[dict[str, Any]]
) -> None:
    """12 concurrent creates against a limit of 5: five 201s, seven 429s, five projects."""
    async with running_app(create_app(limited(settings, rate_limit_writes=5))) as http:
        responses = await asyncio.gather(*(create(http, f"burst {n}", ALICE) for n in range(12)))
        samples = await scrape(http)

    created = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert len(created) == 5
    assert len(refused) == 7
    for response in refused:
        assert_rate_limited(response, "write", 5)
    store = mongo[settings.database_name]
    assert sorted(doc["_id"] for doc in store["projects"].find({}, {"_id": 1})) == sorted(
        r.json()["id"] for r in created
    )
    assert store["audit_log"].count_documents({"action": "project.created"}) == 5
    assert value(samples, "snipix_rate_limited_total", scope="write") == 7


async def test_each_user_has_their_own_budget(settings: Settings) -> None:
    """Alice using up her writes does not slow Bob down."""
    async with running_app(create_app(limited(settings, rate_limit_writes=2))) as http:
        statuses = [(await create(http, f"a{n}", ALICE)).status_code for n in range(3)]
        assert statuses == [201, 201, 429]
        assert (await create(http, "b", BOB)).status_code == 201
        # Reads are never limited.
        assert (await http.get("/api/v1/projects", headers=ALICE)).status_code == 200


async def test_requests_without_an_identity_are_counted_by_address(settings: Settings) -> None:
    """Anonymous writes share their address's budget; past it they get 429, not 401."""
    async with running_app(create_app(limited(settings, rate_limit_writes=2))) as http:
        anonymous = [(await create(http, "x", {})).status_code for _ in range(3)]
        assert anonymous == [401, 401, 429]
        bad_token = {"Authorization": "Bearer not-a-token"}
        assert_rate_limited(await create(http, "x", bad_token), "write", 2)
        # A signed-in user from the same address has a budget of their own.
        assert (await create(http, "mine", ALICE)).status_code == 201


async def test_searches_are_limited_apart_from_reads_and_writes(settings: Settings) -> None:
    """Project and transcript searches share the search budget; lists and writes do not."""
    app = create_app(limited(settings, rate_limit_searches=2, rate_limit_writes=100))
    async with running_app(app) as http:
        project_id = (await create(http, "Wedding cut", ALICE)).json()["id"]
        search = await http.get("/api/v1/projects", params={"q": "wedding"}, headers=ALICE)
        assert search.status_code == 200
        across = await http.get("/api/v1/transcripts/search", params={"q": "hi"}, headers=ALICE)
        assert across.status_code == 200
        one = f"/api/v1/projects/{project_id}/transcript/search"
        assert_rate_limited(await http.get(one, params={"q": "hi"}, headers=ALICE), "search", 2)
        again = await http.get("/api/v1/projects", params={"q": "wedding"}, headers=ALICE)
        assert_rate_limited(again, "search", 2)
        # A plain list is a read, and writes have their own budget.
        assert (await http.get("/api/v1/projects", headers=ALICE)).status_code == 200
        assert (await create(http, "another", ALICE)).status_code == 201
        assert (await http.get("/api/v1/projects", params={"q": "x"}, headers=BOB)).is_success
        samples = await scrape(http)
    assert value(samples, "snipix_rate_limited_total", scope="search") == 2
    assert value(samples, "snipix_rate_limited_total", scope="write") == 0


async def test_the_web_apps_paths_answer_429_in_its_envelope(settings: Settings) -> None:
    """The original web app's routes are limited too, and read the 429 in its envelope."""
    async with running_app(create_app(limited(settings, rate_limit_writes=1))) as http:
        first = await http.post("/projects", json={"name": "one"}, headers=ALICE)
        assert first.status_code == 200
        second = await http.post("/projects", json={"name": "two"}, headers=ALICE)
    assert second.status_code == 429
    assert 1 <= int(second.headers["Retry-After"]) <= WINDOW_S
    body = second.json()
    assert body["success"] is False
    assert body["code"] == "rate_limited"
    assert body["details"]["scope"] == "write"


async def test_zero_turns_a_limit_off(settings: Settings) -> None:
    """SNIPIX_RATE_LIMIT_WRITES=0: no write is ever refused."""
    async with running_app(create_app(limited(settings, rate_limit_writes=0))) as http:
        statuses = {(await create(http, f"p{n}", ALICE)).status_code for n in range(8)}
    assert statuses == {201}


def test_the_search_routes_exist(settings: Settings) -> None:
    """The route templates the limiter recognises as searches are real routes."""
    paths = create_app(settings).openapi()["paths"]
    for route in SEARCH_ROUTES:
        assert "get" in paths[route]
    assert "q" in {
        parameter["name"] for parameter in paths[PROJECT_LIST_ROUTE]["get"]["parameters"]
    }


def with_redis(settings: Settings, url: str, **limits: Any) -> Settings:
    return limited(settings, redis_url=SecretStr(url), **limits)


async def test_replicas_share_the_count_through_redis(
    settings: Settings, redis_server: RedisServer
) -> None:
    """Two replicas on one Redis: the limit holds for their writes together."""
    shared = with_redis(settings, redis_server.url, rate_limit_writes=3)
    async with (
        running_app(create_app(shared)) as one,
        running_app(create_app(shared)) as two,
    ):
        assert (await create(one, "1", ALICE)).status_code == 201
        assert (await create(two, "2", ALICE)).status_code == 201
        assert (await create(one, "3", ALICE)).status_code == 201
        assert_rate_limited(await create(two, "4", ALICE), "write", 3)


async def test_redis_down_falls_back_to_limits_per_process(settings: Settings) -> None:
    """With Redis configured but unreachable, limits still hold (in process), one warning
    says so, and the metrics show it."""
    dead = with_redis(settings, f"redis://127.0.0.1:{free_port()}/0", rate_limit_writes=3)
    with structlog.testing.capture_logs() as logs:
        async with running_app(create_app(dead)) as http:
            statuses = [(await create(http, f"p{n}", ALICE)).status_code for n in range(5)]
            samples = await scrape(http)
    assert statuses == [201, 201, 201, 429, 429]
    warnings = [line for line in logs if line["event"].startswith("rate limit storage")]
    assert [line["log_level"] for line in warnings] == ["warning"]
    assert value(samples, "snipix_rate_limit_fallback") == 1
    assert value(samples, "snipix_rate_limit_storage_errors_total") >= 1
    assert value(samples, "snipix_rate_limited_total", scope="write") == 2


def fallback(metrics: Metrics) -> float:
    return value(parse(metrics.exposition().decode()), "snipix_rate_limit_fallback")


@pytest.mark.process
async def test_limits_return_to_redis_when_it_comes_back() -> None:
    """Redis stops: counting goes on in process; Redis returns: a probe brings it back."""
    server = RedisServer.find().start()
    redis: Redis = Redis.from_url(server.url, socket_timeout=0.25, socket_connect_timeout=0.25)
    metrics = Metrics("test")
    limiter = Limiter(redis, prefix="recovery", metrics=RateLimitMetrics(metrics))
    item = RateLimitItemPerMinute(2, namespace="test")
    try:
        assert await limiter.hit(item, "user", "u")
        assert await redis.exists("recovery-limits:" + item.key_for("user", "u")) == 1
        server.stop()
        assert await limiter.hit(item, "user", "u")  # in process: a fresh count of one
        assert limiter.degraded
        assert fallback(metrics) == 1
        assert await limiter.hit(item, "user", "u")
        assert not await limiter.hit(item, "user", "u")  # the limit still holds
        server.start()
        deadline = time.monotonic() + 10
        while limiter.degraded and time.monotonic() < deadline:
            await limiter.probe()
            await asyncio.sleep(0.1)
        assert not limiter.degraded
        assert fallback(metrics) == 0
        # Counting in Redis again (restarted without persistence: empty): two fit, then none.
        assert await limiter.hit(item, "user", "u")
        assert await redis.exists("recovery-limits:" + item.key_for("user", "u")) == 1
        assert await limiter.hit(item, "user", "u")
        assert not await limiter.hit(item, "user", "u")
    finally:
        await redis.aclose()
        server.stop()


@pytest.mark.process
async def test_a_slow_call_is_not_an_outage_but_a_hung_redis_is() -> None:
    """One call that misses its timeout (Redis stopped for a moment) is counted in process
    and the shared counts stay in use; timeouts with no success for longer than
    SLOW_IS_DOWN_AFTER_S switch to counting in process."""
    server = RedisServer.find().start()
    assert server.process is not None
    pid = server.process.pid
    redis: Redis = Redis.from_url(server.url, socket_timeout=0.1, socket_connect_timeout=0.1)
    now = [1_000.0]
    limiter = Limiter(
        redis,
        prefix="slow",
        metrics=RateLimitMetrics(Metrics("test")),
        clock=lambda: now[0],
    )
    item = RateLimitItemPerMinute(100, namespace="test")
    key = "slow-limits:" + item.key_for("user", "u")
    try:
        assert await limiter.hit(item, "user", "u")
        os.kill(pid, signal.SIGSTOP)
        try:
            assert await limiter.hit(item, "user", "u")  # timed out: counted in process
            assert not limiter.degraded
        finally:
            os.kill(pid, signal.SIGCONT)
        shared = await redis.llen(key)
        assert shared >= 1, "the shared count was kept"
        assert await limiter.hit(item, "user", "u")
        assert await redis.llen(key) == shared + 1, "counted in Redis again"
        assert not limiter.degraded

        os.kill(pid, signal.SIGSTOP)
        try:
            assert await limiter.hit(item, "user", "u")
            assert not limiter.degraded
            now[0] += SLOW_IS_DOWN_AFTER_S + 0.1
            assert await limiter.hit(item, "user", "u")
            assert limiter.degraded, "timeouts for longer than the bound are an outage"
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        await redis.aclose()
        server.stop()


async def test_login_failures_are_counted_across_replicas_without_storing_emails(
    redis_server: RedisServer,
) -> None:
    """With Redis, one replica's failed sign-ins count on another and a success on one
    forgives the account on all; keys hold no email."""
    redis: Redis = Redis.from_url(redis_server.url)
    prefix = f"login-{free_port()}"
    try:
        replicas = [
            LoginThrottle(
                per_account=2,
                per_ip=100,
                window_s=60,
                limiter=Limiter(redis, prefix=prefix, metrics=RateLimitMetrics(Metrics("test"))),
            )
            for _ in range(2)
        ]

        async def fail(replica: LoginThrottle, address: str) -> None:
            await replica.failed(await replica.begin("alice@example.com", address))

        # One failure here, then a right password there: the account is forgiven everywhere.
        await fail(replicas[0], "10.0.0.1")
        await replicas[1].succeeded(await replicas[1].begin("alice@example.com", "10.0.0.2"))
        await fail(replicas[0], "10.0.0.1")
        await fail(replicas[1], "10.0.0.2")
        with pytest.raises(RateLimited) as refused:
            await replicas[0].begin("alice@example.com", "10.0.0.3")
        wait = int(refused.value.headers["Retry-After"])
        assert 1 <= wait <= 60
        keys = [key.decode() async for key in redis.scan_iter(match=f"{prefix}-limits:*")]
        assert keys
        assert not any("alice" in key for key in keys)
    finally:
        await redis.aclose()


@pytest.mark.parametrize("backend", ["redis", "in-process"])
async def test_a_reservable_window_holds_its_limit_under_concurrency(
    redis_server: RedisServer, backend: str
) -> None:
    """Fifty callers at once reserve from a window of five: exactly five slots are taken.
    A slot given back frees one place; the wait names when the oldest slot leaves; a clear
    empties the window; slots older than the window no longer count."""
    redis: Redis = Redis.from_url(redis_server.url)
    limiter = Limiter(
        redis if backend == "redis" else None,
        prefix=f"windows-{free_port()}",
        metrics=RateLimitMetrics(Metrics("test")),
    )
    try:
        now = 1_000_000.0

        async def reserve(at: float) -> tuple[str | None, int]:
            return await limiter.reserve("w", "k", limit=5, window_s=60, now=at)

        # All at one instant: whichever five win, the others wait the whole window.
        taken = await asyncio.gather(*(reserve(now) for _ in range(50)))
        slots = [slot for slot, _ in taken if slot is not None]
        assert len(slots) == 5
        assert {wait for slot, wait in taken if slot is None} == {60}
        await limiter.release("w", "k", slots[0])
        slot, _ = await reserve(now + 1)
        assert slot is not None
        assert (await reserve(now + 1))[0] is None
        # The oldest slots leave the window 60 s after they were taken.
        assert (await reserve(now + 60.5))[0] is not None
        await limiter.clear_window("w", "k")
        assert all([(await reserve(now + 61))[0] is not None for _ in range(5)])
        assert not limiter.degraded
    finally:
        await redis.aclose()


async def test_behind_a_trusted_proxy_each_client_is_counted_by_its_own_address(
    settings: Settings,
) -> None:
    """`snipix serve` hands SNIPIX_FORWARDED_ALLOW_IPS to uvicorn's proxy-header handling:
    behind a trusted proxy anonymous callers are counted apart; from an untrusted one the
    forwarded address is ignored and every caller is the proxy."""
    configured = limited(settings, rate_limit_writes=1)
    async with LifespanManager(create_app(configured), startup_timeout=60) as manager:
        for trusted, expected in (
            (configured.forwarded_allow_ips, [401, 401]),
            ("10.0.0.1", [401, 429]),
        ):
            # uvicorn's and Starlette's ASGI type aliases differ; the protocol is the same.
            app: Any = ProxyHeadersMiddleware(cast(Any, manager.app), trusted_hosts=trusted)
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://snipix.test"
            ) as http:
                statuses = [
                    (
                        await http.post(
                            "/api/v1/projects",
                            json={"name": "x"},
                            headers={"X-Forwarded-For": f"203.0.113.{n}"},
                        )
                    ).status_code
                    for n in (1, 2)
                ]
            assert statuses == expected, trusted


@pytest.mark.parametrize("value", ["10.0.0.1, 192.168.0.0/16", "*", "::1,127.0.0.1"])
def test_trusted_proxies_are_addresses_or_networks(value: str) -> None:
    """SNIPIX_FORWARDED_ALLOW_IPS takes what uvicorn's --forwarded-allow-ips takes."""
    assert Settings(_env_file=None, SNIPIX_FORWARDED_ALLOW_IPS=value).forwarded_allow_ips == value


def test_a_malformed_trusted_proxy_list_stops_start_up() -> None:
    """Anything but addresses, networks and `*` is refused, naming the variable."""
    with pytest.raises(ValidationError, match="SNIPIX_FORWARDED_ALLOW_IPS"):
        Settings(_env_file=None, SNIPIX_FORWARDED_ALLOW_IPS="proxy.internal; rm -rf /")
