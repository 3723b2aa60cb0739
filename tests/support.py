"""Real processes for tests: the `snipix` CLI, its engine, and redis-server."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pymongo import MongoClient

from snipix.clock import utc_now_ms
from snipix.db.engine_record import EngineRecord, is_served

# Environment variables a developer may have set that must not leak into a test's process.
PASSWORD_HASH_COST = "SNIPIX_PASSWORD_HASH_COST"
SETTING_PREFIXES = (
    "SNIPIX_",
    "MONGODB_",
    "REDIS_",
    "JWT_",
    "LOG_",
    "SLOW_QUERY",
    "AUDIT_",
    "SMTP_",
)


def clean_env(**overrides: str) -> dict[str, str]:
    """The current environment minus every Snipix setting, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
    env["LOG_FORMAT"] = "json"
    if overrides.get("SNIPIX_ENV") != "production":
        # argon2id at its lowest cost, as the `settings` fixture (production refuses it).
        env[PASSWORD_HASH_COST] = "minimal"
    env.update(overrides)
    return env


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an HTTP client for it (ASGI, no sockets)."""
    async with (
        # Start-up (migrations, ~25 index builds) on a busy 2-core machine can pass
        # asgi-lifespan's 5 s default; a real server waits as long as it takes.
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://snipix.test"
        ) as http,
    ):
        yield http


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.05, what: str
) -> float:
    """Poll `condition`; return the seconds it took, or fail naming `what`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)
    return time.monotonic() - started


async def until(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    what: str,
    deadline_s: float = 30.0,
    interval_s: float = 0.01,
) -> float:
    """Wait, without blocking the event loop, until `condition()` holds; return the seconds
    it took, or fail naming `what` after `deadline_s`.

    The deadline is only a bound for a broken run, never a timing the test relies on: make
    it generous. `interval_s=0` only yields, for conditions other tasks on this loop make
    true; a condition that asks another process (a query, a log file) polls every
    `interval_s` so the wait does not spin a busy machine's CPU. `condition` may be a
    coroutine function (a read through the app's async client).
    """
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def holds() -> bool:
        result = condition()
        return await result if inspect.isawaitable(result) else result

    while not await holds():
        if loop.time() - started > deadline_s:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        await asyncio.sleep(interval_s)
    return loop.time() - started


async def next_millisecond() -> None:
    """Wait until the wall clock has entered a later millisecond than the one it is in now.

    MongoDB keeps milliseconds, so a time the service stores after this returns is later
    than any it stored before the call (two writes in one millisecond would tie).
    """
    now = utc_now_ms()
    await until(
        lambda: utc_now_ms() > now,
        what=f"the clock to pass {now.isoformat()}",
        interval_s=0.001,
    )


class Clock:
    """The wall clock plus an offset the test moves forward: "ten minutes later" for code
    that takes a clock, without waiting ten minutes (or guessing how long is long enough)."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead

    def advance(self, by: timedelta) -> None:
        self.ahead += by


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child still answers kill(0); it has exited for our purposes.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def wait_for_engine(data_dir: Path, timeout_s: float = 30) -> EngineRecord:
    """Wait until an engine process serves `data_dir`; return its record."""
    found: list[EngineRecord] = []

    def recorded() -> bool:
        record = EngineRecord.read(data_dir)
        if record is not None and is_served(data_dir) and pid_alive(record.pid):
            found.append(record)
            return True
        return False

    wait_until(recorded, timeout_s=timeout_s, what=f"an engine serving {data_dir}")
    return found[-1]


@dataclass
class SnipixProcess:
    """`python -m snipix ARGS...` run as a user would run it, output captured to a file."""

    args: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> SnipixProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "snipix", *self.args],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout_s: float = 30) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"snipix {' '.join(self.args)} did not exit within {timeout_s}s:\n{self.output()}"
            ) from None

    def stop(self, timeout_s: float = 30) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def engine_command(data_dir: Path, port: int, cwd: Path, name: str = "engine") -> SnipixProcess:
    """`snipix engine` in the foreground on a fixed port, as an operator would run it."""
    return SnipixProcess(
        ["engine", "--data-dir", str(data_dir), "--port", str(port)],
        env=clean_env(),
        cwd=cwd,
        log_path=cwd / f"{name}.log",
    )


def run_snipix(
    args: list[str], env: dict[str, str], cwd: Path, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snipix", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def loopback_client(**options: Any) -> httpx.Client:
    """An HTTP client for the plain-HTTP servers tests start on 127.0.0.1.

    No TLS is ever spoken to them, so no CA bundle is loaded: httpx loads one for every
    client it builds with verification on (~50 ms of CPU), which `wait_until` polling
    `http_status` paid on every poll.
    """
    return httpx.Client(verify=False, **options)  # noqa: S501 - plain HTTP, never TLS


def async_loopback_client(**options: Any) -> httpx.AsyncClient:
    """`loopback_client` for async tests."""
    return httpx.AsyncClient(verify=False, **options)  # noqa: S501 - plain HTTP, never TLS


def http_status(url: str, timeout_s: float = 3.0) -> int | None:
    try:
        with loopback_client(timeout=timeout_s) as http:
            return http.get(url).status_code
    except httpx.HTTPError:
        return None


def http_json(url: str, timeout_s: float = 5.0) -> tuple[int, Any]:
    with loopback_client(timeout=timeout_s) as http:
        response = http.get(url)
    return response.status_code, response.json()


@dataclass
class RedisServer:
    """A real redis-server on a free loopback port, without persistence."""

    binary: str
    port: int
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def find(cls) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed; the cache tests need a real Redis: "
                "apt-get install -y redis-server (see README)"
            )
        return cls(binary=binary, port=free_port())

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout_s=10, what=f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def sync_mongo_client(uri: str) -> MongoClient[dict[str, Any]]:
    """A synchronous client for arranging and inspecting data (not bound to an event loop)."""
    return MongoClient(uri, serverSelectionTimeoutMS=5000, tz_aware=True)


@contextmanager
def serving(
    folder: Path,
    env: Mapping[str, str],
    *,
    name: str = "snipix serve",
    args: tuple[str, ...] = (),
    timeout_s: float = 60,
) -> Iterator[str]:
    """`python -m snipix serve` on a free port as an operator starts it, ready (its
    /health/ready answers 200); its base URL. Its data directory and log are in `folder`;
    `env` adds to a clean environment (the retention sweep off). The log's tail is
    printed when it stops, so a failed test shows the service's side."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = SnipixProcess(
        ["serve", "--port", str(port), *args],
        env=clean_env(SNIPIX_DATA_DIR=str(folder / "data"), SNIPIX_RETENTION_INTERVAL_S="0", **env),
        cwd=folder,
        log_path=folder / "serve.log",
    ).start()
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.process is not None and process.process.poll() is not None:
            raise AssertionError(f"{name} exited early:\n{process.output()}")
        return http_status(f"{base}/health/ready") == 200

    try:
        wait_until(ready, timeout_s=timeout_s, what=f"{name} to answer /health/ready with 200")
        yield base
    finally:
        process.stop()
        process.kill()
        print(f"--- {name} log (tail) ---\n{process.output()[-6000:]}")
