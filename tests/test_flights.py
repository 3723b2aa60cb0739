"""SingleFlight: one run per key at a time, shared by its callers (the cache's loads and
the media renders use it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from snipix.flights import SingleFlight
from tests.support import until


async def test_single_flight_shares_one_run_between_callers() -> None:
    """Callers of a key under way wait for its run and get its result."""
    flights: SingleFlight[int] = SingleFlight()
    release = asyncio.Event()
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 7

    first = asyncio.create_task(flights.run("k", work))
    second = asyncio.create_task(flights.run("k", work))
    await until(lambda: calls == 1 and len(flights) == 1, what="the run to start", interval_s=0)
    release.set()
    assert list(await asyncio.gather(first, second)) == [7, 7]
    assert calls == 1
    assert len(flights) == 0


async def test_single_flight_when_the_first_caller_goes_away_a_waiter_runs_it() -> None:
    """The run is cancelled with the request that started it; a waiter then runs it."""
    flights: SingleFlight[str] = SingleFlight()
    started: list[str] = []

    def work(result: str) -> Callable[[], Awaitable[str]]:
        async def run() -> str:
            started.append(result)
            if len(started) == 1:
                await asyncio.Event().wait()  # the first run never finishes by itself
            return result

        return run

    leader = asyncio.create_task(flights.run("k", work("first")))
    await until(lambda: len(started) == 1, what="the run to start", interval_s=0)
    waiter = asyncio.create_task(flights.run("k", work("second")))
    await until(lambda: flights.waiting("k") == 1, what="the waiter to join", interval_s=0)
    assert not waiter.done()
    leader.cancel()
    assert await waiter == "second"
    assert leader.cancelled()
    assert started == ["first", "second"]
    assert flights.waiting("k") == 0
