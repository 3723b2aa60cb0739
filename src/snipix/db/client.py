"""The one `AsyncMongoClient` of a process: its options and its first contact.

Built in the app lifespan (or a CLI command's event loop), never at import: the client is
bound to the event loop it first runs on.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError, ConnectionFailure, OperationFailure, PyMongoError

from snipix.db.monitoring import Listener
from snipix.settings import MASK, Settings, mongodb_hosts

Document = dict[str, Any]
MongoClient = AsyncMongoClient[Document]
Database = AsyncDatabase[Document]

# MongoDB's error code for failed authentication.
_AUTH_FAILED = 18


class DatabaseUnreachable(Exception):
    """The database did not answer at start-up; the message names the host, never a password."""


@dataclass(frozen=True, slots=True)
class ServerInfo:
    version: str
    latency_ms: float


def create_client(settings: Settings, listeners: Sequence[Listener] = ()) -> MongoClient:
    """A client with the production options: majority writes, retries, bounded waits.

    Keyword options override the same options in the URI, so durability (w=majority,
    retryable writes) holds even if a connection string copied from a tutorial says w=1.
    """
    if settings.mongodb_uri is None:
        raise ValueError("MONGODB_URI is not set and no embedded engine was started")
    options: dict[str, Any] = {
        "appName": settings.mongodb_app_name,
        "retryWrites": True,
        "retryReads": True,
        "w": "majority",
        "maxPoolSize": settings.mongodb_max_pool_size,
        "minPoolSize": settings.mongodb_min_pool_size,
        "maxIdleTimeMS": settings.mongodb_max_idle_time_ms,
        "serverSelectionTimeoutMS": settings.mongodb_server_selection_timeout_ms,
        "connectTimeoutMS": settings.mongodb_connect_timeout_ms,
        "socketTimeoutMS": settings.mongodb_socket_timeout_ms,
        "waitQueueTimeoutMS": settings.mongodb_wait_queue_timeout_ms,
        "tz_aware": True,
        "event_listeners": list(listeners),
    }
    if settings.mongodb_tls_ca_file is not None:
        options["tlsCAFile"] = str(settings.mongodb_tls_ca_file)
    return AsyncMongoClient(settings.mongodb_uri.get_secret_value(), **options)


async def ping(client: MongoClient) -> ServerInfo:
    """Round-trip `ping` and read the server version (waits up to server selection timeout)."""
    started = time.perf_counter()
    await client.admin.command("ping")
    latency_ms = (time.perf_counter() - started) * 1000
    info = await client.admin.command("buildInfo")
    return ServerInfo(version=str(info.get("version", "unknown")), latency_ms=latency_ms)


def describe_failure(settings: Settings, error: PyMongoError) -> str:
    """A one-line, password-free account of why the database did not answer."""
    assert settings.mongodb_uri is not None
    uri = settings.mongodb_uri.get_secret_value()
    hosts = mongodb_hosts(uri)
    timeout_s = settings.mongodb_server_selection_timeout_ms / 1000
    if isinstance(error, OperationFailure) and error.code == _AUTH_FAILED:
        message = (
            f"MongoDB at {hosts} refused the credentials in MONGODB_URI "
            "(check the database user and password)"
        )
    elif isinstance(error, ConnectionFailure):
        message = (
            f"MongoDB at {hosts} is unreachable (no answer within {timeout_s:g}s): "
            f"{_first_reason(str(error))}"
        )
    elif isinstance(error, ConfigurationError):
        # mongodb+srv:// resolves its hosts through DNS at first contact.
        message = (
            f"MongoDB at {hosts} is unreachable (DNS lookup failed): {_first_reason(str(error))}"
        )
    else:
        message = f"MongoDB at {hosts} failed: {type(error).__name__}: {_first_reason(str(error))}"
    for secret in settings.secret_values():
        message = message.replace(secret, MASK)
    return message


def _first_reason(text: str) -> str:
    # ServerSelectionTimeoutError text is "<host>: <reason> (configured timeouts...), Timeout:
    # 5s, Topology Description: <...>": the first clause is what a person needs.
    reason = text.split(", Timeout:", 1)[0]
    reason = reason.split(" (configured timeouts:", 1)[0]
    return reason.strip()[:300]


async def connect(settings: Settings, listeners: Sequence[Listener] = ()) -> MongoClient:
    """Create the client and prove the database answers, or raise `DatabaseUnreachable`."""
    client = create_client(settings, listeners)
    try:
        await ping(client)
    except PyMongoError as error:
        await client.close()
        raise DatabaseUnreachable(describe_failure(settings, error)) from None
    return client


@asynccontextmanager
async def connected(
    settings: Settings, listeners: Sequence[Listener] = ()
) -> AsyncIterator[MongoClient]:
    """`connect` for a command's lifetime: the client is closed however the block ends."""
    client = await connect(settings, listeners)
    try:
        yield client
    finally:
        await client.close()
