"""`/metrics` and the shipped alert rules, against a real app on the embedded engine."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from snipix.app import create_app
from snipix.cache.metrics import CACHE_EVENTS, CacheMetrics
from snipix.observability.metrics import Metrics
from snipix.retry import RetryMetrics
from snipix.settings import Settings
from tests.support import running_app, until

ALERTS_FILE = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
EXPECTED_ALERTS = {
    "SnipixHighErrorRate",
    "SnipixHighLatency",
    "SnipixCacheHitRatioLow",
    "SnipixDatabasePoolWaitHigh",
    "SnipixDatabaseDown",
    "SnipixRateLimitsPerProcess",
}
# Series names in PromQL: a recording rule's `snipix:...` name is not one of ours to expose.
METRIC_NAME = re.compile(r"\bsnipix_[a-z0-9_]+\b")
DURATION = re.compile(r"^\d+[smhd]$")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the labelled child does not exist yet."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200
    return parse(response.text)


async def wait_for_database_up(http: httpx.AsyncClient) -> Samples:
    """Topology events reach listeners within about a second (PyMongo queues them)."""
    for _ in range(50):
        samples = await scrape(http)
        if value(samples, "snipix_db_up") == 1:
            return samples
        await asyncio.sleep(0.1)
    raise AssertionError("snipix_db_up never became 1 with the database up")


async def test_metrics_are_served_as_prometheus_text_without_auth(
    client: httpx.AsyncClient,
) -> None:
    """Prometheus can scrape /metrics with no token; the route stays out of the API docs."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"snipix_build_info", "snipix_http_requests", "snipix_db_up"} <= families
    assert all(name.startswith("snipix_") for name in families)
    openapi = (await client.get("/openapi.json")).json()
    assert "/metrics" not in openapi["paths"]


async def test_series_move_when_requests_are_made(client: httpx.AsyncClient) -> None:
    """Requests, errors, database commands and pool check-outs each show up in a scrape."""
    before = await wait_for_database_up(client)

    for _ in range(2):
        assert (await client.get("/health/ready")).status_code == 200
    assert (await client.get("/no/such/path/123")).status_code == 404
    after = await scrape(client)

    ready = {"method": "GET", "route": "/health/ready", "status": "200"}
    assert value(after, "snipix_http_requests_total", **ready) == (
        value(before, "snipix_http_requests_total", **ready) + 2
    )
    assert value(after, "snipix_http_request_duration_seconds_count", **ready) == (
        value(before, "snipix_http_request_duration_seconds_count", **ready) + 2
    )
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert value(after, "snipix_http_requests_total", **unmatched) == 1, "raw path not a label"
    assert not any("/no/such/path" in str(labels) for _, labels in after)
    assert value(after, "snipix_http_errors_total", code="not_found") == 1

    # Each readiness check pings the database: timed by command, through the pool.
    pings = "snipix_db_command_duration_seconds_count"
    assert total(after, pings, command="ping") >= total(before, pings, command="ping") + 2
    assert total(after, "snipix_db_pool_wait_seconds_count") >= (
        total(before, "snipix_db_pool_wait_seconds_count") + 2
    )
    assert value(after, "snipix_db_pool_connections") >= 1

    # Every connection goes back to the pool. The app's own pollers (the job runner, the
    # cache journal while Redis is down) check one out now and then, so a scrape can land
    # on one in use: the pool must come back to none, not be at none at that instant.
    async def all_returned() -> bool:
        return value(await scrape(client), "snipix_db_pool_checked_out") == 0

    await until(all_returned, what="every pool connection to be checked back in")
    assert value(after, "snipix_db_pool_max_size") == 100

    assert value(after, "snipix_db_up") == 1
    assert value(after, "snipix_startup_duration_seconds") > 0
    (build,) = [labels for name, labels in after if name == "snipix_build_info"]
    assert dict(build)["version"] == "0.1.0"
    # 0 until the cache records anything, but present, so ratio queries have series.
    for kind in CACHE_EVENTS:
        assert (("snipix_cache_events_total", frozenset({("kind", kind)}))) in after


async def test_server_errors_are_counted_by_error_code(settings: Settings) -> None:
    """An unhandled bug counts as a 500 `internal_error`, which the error-rate alert sees."""
    app = create_app(settings)

    @app.get("/probe/bug")
    async def bug() -> None:
        raise RuntimeError("boom")

    async with running_app(app) as http:
        assert (await http.get("/probe/bug")).status_code == 500
        samples = await scrape(http)
    assert value(samples, "snipix_http_errors_total", code="internal_error") == 1
    labels = {"method": "GET", "route": "/probe/bug", "status": "500"}
    assert value(samples, "snipix_http_requests_total", **labels) == 1


def test_every_app_has_its_own_registry(settings: Settings) -> None:
    """Two apps in one process (workers, tests) never share or collide on counters."""
    first, second = create_app(settings), create_app(settings)
    one: Metrics = first.state.metrics
    two: Metrics = second.state.metrics
    assert one.registry is not two.registry
    one.http_request("GET", "/health/live", 200, 0.01)
    live = {"method": "GET", "route": "/health/live", "status": "200"}
    assert value(parse(one.exposition().decode()), "snipix_http_requests_total", **live) == 1
    assert total(parse(two.exposition().decode()), "snipix_http_requests_total") == 0


def test_cache_and_retry_counters_start_at_zero_and_count() -> None:
    """The cache and retry series exist as soon as their parts declare them, before any
    lookup or retry, at 0, and count when called."""
    metrics = Metrics("test")
    cache, retries = CacheMetrics(metrics), RetryMetrics(metrics)
    samples = parse(metrics.exposition().decode())
    for kind in CACHE_EVENTS:
        assert value(samples, "snipix_cache_events_total", kind=kind) == 0
    assert total(samples, "snipix_retries_total") == 0

    cache.event("hit")
    cache.event("hit")
    cache.event("miss")
    retries.retried("timeline_save", "AutoReconnect")
    metrics.http_request("BREW", "<unmatched>", 405, 0.001)
    samples = parse(metrics.exposition().decode())
    assert value(samples, "snipix_cache_events_total", kind="hit") == 2
    assert value(samples, "snipix_cache_events_total", kind="miss") == 1
    assert value(samples, "snipix_cache_events_total", kind="error") == 0
    retried = {"operation": "timeline_save", "error_class": "AutoReconnect"}
    assert value(samples, "snipix_retries_total", **retried) == 1
    assert total(samples, "snipix_http_requests_total", method="other") == 1, "methods bounded"
    with pytest.raises(ValueError, match="unknown cache event"):
        cache.event("expired")  # type: ignore[arg-type]


def test_a_part_declared_again_on_one_app_keeps_counting_in_the_same_series() -> None:
    """A lifespan run twice, or a second service on the same holder, declares its series
    again: it gets the ones in the registry, and counts continue. A different declaration
    under a name already taken is refused, as the registry itself would refuse it."""
    metrics = Metrics("test")
    first, again = CacheMetrics(metrics), CacheMetrics(metrics)
    first.event("hit")
    again.event("hit")
    assert value(parse(metrics.exposition().decode()), "snipix_cache_events_total", kind="hit") == 2
    with pytest.raises(ValueError, match="already declared differently"):
        metrics.counter("snipix_cache_events", "Something else.", ["kind"])
    with pytest.raises(ValueError, match="already declared differently"):
        metrics.gauge("snipix_http_requests", "A gauge now.", ["method", "route", "status"])


def load_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    assert set(document) == {"groups"}
    rules: list[dict[str, Any]] = []
    for group in document["groups"]:
        assert isinstance(group["name"], str)
        assert group["rules"], f"group {group['name']} has no rules"
        rules.extend(group["rules"])
    return rules


async def test_alert_rules_parse_and_name_only_exposed_metrics(client: httpx.AsyncClient) -> None:
    """Every series an alert queries exists in a real scrape: no alert silently sees nothing."""
    rules = load_rules()
    alerts = [rule for rule in rules if "alert" in rule]
    assert {rule["alert"] for rule in alerts} == EXPECTED_ALERTS
    for rule in alerts:
        assert DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"page", "warn"}
        assert rule["annotations"]["summary"]
    for rule in rules:
        assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}
        assert ("alert" in rule) != ("record" in rule)
        assert rule["expr"].count("(") == rule["expr"].count(")")

    named = {name for rule in rules for name in METRIC_NAME.findall(rule["expr"])}
    assert "snipix_http_request_duration_seconds_bucket" in named
    # One request first: labelled HTTP series have samples only once something was counted.
    assert (await client.get("/health/ready")).status_code == 200
    exposed = {name for name, _ in await scrape(client)}
    missing = sorted(named - exposed)
    assert not missing, f"alerts.yml names series /metrics does not expose: {missing}"
