"""The database client: production options, bounded first contact, password-free failures."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr
from pymongo import WriteConcern

from snipix.db.client import DatabaseUnreachable, connect, create_client, ping
from snipix.settings import Settings
from tests.support import free_port


async def test_client_uses_durable_production_options(settings: Settings) -> None:
    """Majority writes and retryable operations hold even if the URI asks for less."""
    weak = settings.model_copy(
        update={
            "mongodb_uri": SecretStr(
                settings.mongodb_uri.get_secret_value().split("?")[0]  # type: ignore[union-attr]
                + "?directConnection=true&w=1&retryWrites=false"
            ),
            "mongodb_max_pool_size": 17,
            "mongodb_app_name": "snipix-test",
        }
    )
    client = create_client(weak)
    try:
        options = client.options
        assert client.write_concern == WriteConcern(w="majority")
        assert options.retry_writes is True
        assert options.retry_reads is True
        assert options.pool_options.max_pool_size == 17
        assert options.pool_options.metadata["application"]["name"] == "snipix-test"
        assert (
            options.server_selection_timeout == settings.mongodb_server_selection_timeout_ms / 1000
        )
        assert client.codec_options.tz_aware is True
    finally:
        await client.close()


async def test_ping_reports_server_version(settings: Settings) -> None:
    client = await connect(settings)
    try:
        info = await ping(client)
    finally:
        await client.close()
    assert info.version.count(".") >= 1
    assert info.latency_ms >= 0


async def test_unreachable_database_fails_within_the_selection_timeout(settings: Settings) -> None:
    port = free_port()
    unreachable = settings.model_copy(
        update={
            "mongodb_uri": SecretStr(f"mongodb://editor:Pw-Never-Shown@127.0.0.1:{port}/"),
            "mongodb_server_selection_timeout_ms": 400,
        }
    )
    started = time.monotonic()
    with pytest.raises(DatabaseUnreachable) as failed:
        await connect(unreachable)
    elapsed = time.monotonic() - started
    message = str(failed.value)
    assert message.startswith(f"MongoDB at 127.0.0.1:{port} is unreachable (no answer within 0.4s)")
    assert "Pw-Never-Shown" not in message
    assert "\n" not in message
    assert elapsed < 5
