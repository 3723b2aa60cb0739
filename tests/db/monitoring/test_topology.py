"""Topology events: a dedicated engine, killed and restarted."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pymongo
import pytest
from pymongo.errors import PyMongoError

from snipix.db.client import MongoClient, connected
from snipix.db.launcher import EngineProcess, start_engine_process
from snipix.db.monitoring.metrics import DatabaseMetrics
from snipix.db.monitoring.pool import PoolStats
from snipix.db.monitoring.topology import TopologyMonitor
from snipix.observability.logging import configure_logging
from snipix.observability.metrics import Metrics
from snipix.settings import Settings
from tests.db.monitoring.helpers import log_lines, sample
from tests.support import clean_env, free_port, until


async def poke(client: MongoClient, timeout_s: float = 1.0) -> bool:
    """One bounded ping: makes the driver check the server now; True if it answered."""
    try:
        with pymongo.timeout(timeout_s):
            await client.admin.command("ping")
    except PyMongoError:
        return False
    return True


def kill(engine: EngineProcess) -> None:
    os.kill(engine.process.pid, signal.SIGKILL)
    engine.process.wait(timeout=10)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.process
async def test_a_dead_engine_logs_failing_heartbeats_and_the_lost_primary(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killing the database: `database heartbeat failed` and `database primary lost` (WARNING),
    snipix_db_up 0; restarting it: `recovered`, `primary changed` (INFO), snipix_db_up 1."""
    port = free_port()
    data_dir = tmp_path / "dedicated-engine"
    engine = start_engine_process(data_dir, port=port, env=clean_env())
    # Heartbeats every 0.5 s instead of 10 s (from the URI; the service sets no such option),
    # so the failure shows within a second rather than at the next 10 s heartbeat.
    separator = "&" if "?" in engine.uri else "?"
    configured = settings.with_mongodb_uri(f"{engine.uri}{separator}heartbeatFrequencyMS=500")
    configure_logging(configured)
    metrics = Metrics("test")
    database = DatabaseMetrics(metrics)
    topology = TopologyMonitor(database)
    pool = PoolStats(configured.mongodb_max_pool_size, database)
    seen: list[dict[str, Any]] = []

    def logged(event: str) -> bool:
        seen.extend(line for line in log_lines(capsys.readouterr().err) if "event" in line)
        return any(line["event"] == event for line in seen)

    try:
        async with connected(configured, listeners=[topology, pool]) as client:
            await until(
                lambda: sample(metrics, "snipix_db_up") == 1, what="the primary", interval_s=0.1
            )
            assert logged("database primary changed")
            seen.clear()

            kill(engine)
            assert not await poke(client)
            await until(
                lambda: logged("database heartbeat failed"),
                what="a heartbeat failure",
                interval_s=0.1,
            )
            await until(
                lambda: logged("database primary lost"), what="the primary loss", interval_s=0.1
            )
            assert sample(metrics, "snipix_db_up") == 0
            assert sample(metrics, "snipix_db_heartbeat_failures_total") >= 1
            (failed, *_) = [line for line in seen if line["event"] == "database heartbeat failed"]
            assert failed["level"] == "warning"
            assert failed["server"] == f"127.0.0.1:{port}"
            assert failed["error_class"]
            lost = next(line for line in seen if line["event"] == "database primary lost")
            assert lost["level"] == "warning"
            assert lost["previous"] == f"127.0.0.1:{port}"
            seen.clear()

            engine = start_engine_process(data_dir, port=port, env=clean_env())
            # An operation waiting for the server makes the driver check it at once, rather
            # than at the next 10 s heartbeat.
            assert await poke(client, timeout_s=15)
            await until(
                lambda: logged("database heartbeat recovered"), what="the recovery", interval_s=0.1
            )
            await until(
                lambda: logged("database primary changed"), what="the primary again", interval_s=0.1
            )
            assert sample(metrics, "snipix_db_up") == 1
            changed = next(line for line in seen if line["event"] == "database primary changed")
            assert changed["level"] == "info"
            assert changed["primary"] == f"127.0.0.1:{port}"
            assert sample(metrics, "snipix_db_primary_changes_total") >= 3
    finally:
        engine.stop()
    # Closing the client is not an outage: no warning about the primary at shutdown.
    assert not logged("database primary lost")
