"""What every benchmark needs: a database (a fresh embedded engine, or `--mongodb-uri`),
the app behind an in-process HTTP client, a description of the engine, and percentiles."""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from snipix.db.launcher import start_engine_process

# Settings a developer may have exported must not change what a benchmark measures.
SETTING_PREFIXES = ("SNIPIX_", "MONGODB_", "REDIS_", "JWT_", "LOG_", "SLOW_QUERY", "AUDIT_")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
    env.update(LOG_FORMAT="json", LOG_LEVEL="WARNING")
    return env


@contextmanager
def database(mongodb_uri: str | None) -> Iterator[tuple[str, bool, Path]]:
    """(uri, embedded?, a scratch directory): a fresh embedded engine unless a URI is given."""
    with tempfile.TemporaryDirectory(prefix="snipix-bench-") as tmp:
        if mongodb_uri is not None:
            yield mongodb_uri, False, Path(tmp)
            return
        engine = start_engine_process(Path(tmp) / "engine", env=clean_env(), stop_with_parent=True)
        try:
            yield engine.uri, True, Path(tmp)
        finally:
            engine.stop()


@asynccontextmanager
async def running_app(app: FastAPI, *, timeout_s: float = 600) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, behind an in-process HTTP client (as tests/support)."""
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app),
            base_url="http://snipix.bench",
            timeout=timeout_s,
        ) as http,
    ):
        yield http


async def describe_engine(uri: str, embedded: bool) -> str:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        info = await client.admin.command("buildInfo")
        hello = await client.admin.command("hello")
    finally:
        await client.close()
    topology = (
        f"replica set {hello['setName']} (transactions)"
        if "setName" in hello
        else "standalone (ordered writes, no transactions)"
    )
    reported = f"reports MongoDB {info.get('version', '?')}"
    if embedded:
        return (
            f"embedded snipix engine (DurableSQLiteEngine, mongoeco "
            f"{package_version('mongoeco')}), {reported}, {topology}"
        )
    return f"{reported}, {topology}"


async def drop_database(uri: str, name: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        await client.drop_database(name)
    finally:
        await client.close()


def expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(condition: Any, timeout_s: float, what: str) -> float:
    """Seconds until `condition()` held; RuntimeError past `timeout_s`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started


@contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    """`url` when given, else a redis-server of our own on a free loopback port."""
    if url is not None:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: apt-get install -y redis-server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: connects(port), 10, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
