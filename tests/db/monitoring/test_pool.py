"""The pool listener: the numbers readiness reports are the ones /metrics serves."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


async def test_pool_gauges_follow_the_listener(client: httpx.AsyncClient) -> None:
    """The pool series in /metrics are the same numbers /health/ready reports."""
    ready = (await client.get("/health/ready")).json()["components"]["pool"]
    scrape = (await client.get("/metrics")).text
    values = {
        s.name: s.value
        for family in text_string_to_metric_families(scrape)
        for s in family.samples
        if s.name.startswith("snipix_db_pool_")
    }
    assert values["snipix_db_pool_connections"] == ready["open"]
    assert values["snipix_db_pool_max_size"] == ready["max"]
    assert values["snipix_db_pool_clears_total"] == ready["clears"]
