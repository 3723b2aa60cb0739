"""What every `snipix` command shares: settings, one-line failures, stop signals, progress.

Every command fails with one line on stderr (`error: ...`) and a non-zero status: 2 for a bad
setting or option, 1 for anything else that stopped it. SIGTERM and SIGINT unwind the
command, so every `finally` stops what it started (the service first, then its processes).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from snipix.backup.errors import BackupError
from snipix.db.client import DatabaseUnreachable
from snipix.db.engine_record import DataDirInUse, EngineStartError
from snipix.db.indexes import IndexConflict
from snipix.db.launcher import EngineLaunchError
from snipix.db.migrations import MigrationLocked
from snipix.observability.logging import configure_logging
from snipix.progress import NoProgress, Progress
from snipix.settings import Settings, describe_errors

if TYPE_CHECKING:
    from snipix.cache.service import Cache

# Failures a person can act on: shown as one line, never as a traceback.
EXPECTED: tuple[type[Exception], ...] = (
    BackupError,
    DatabaseUnreachable,
    DataDirInUse,
    EngineLaunchError,
    EngineStartError,
    IndexConflict,
    MigrationLocked,
)


class _StopRequested(Exception):
    """SIGTERM/SIGINT arrived; unwind so every `finally` stops what it started."""


def _on_stop_signal(signum: int, _frame: FrameType | None) -> None:
    raise _StopRequested(signal.Signals(signum).name)


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, then exit with `code`."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """The environment's settings, or one line per bad variable and exit 2."""
    try:
        return Settings()
    except ValidationError as error:
        for line in describe_errors(error):
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2) from None


@contextmanager
def command(settings: Settings) -> Iterator[None]:
    """The frame of a command: logging, stop signals, one-line failures."""
    configure_logging(settings)
    previous = {s: signal.signal(s, _on_stop_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    except _StopRequested:
        pass
    except EXPECTED as error:
        fail(str(error))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Bar:
    """Progress of one step at a time, as a bar on stderr."""

    active = True

    def __init__(self, progress: RichProgress, *, keep_finished: bool) -> None:
        self._progress = progress
        self._keep_finished = keep_finished
        self._task: TaskID | None = None

    def start(self, label: str, total: int | None) -> None:
        if self._task is not None and not self._keep_finished:
            self._progress.update(self._task, visible=False)
        self._task = self._progress.add_task(label, total=total)

    def advance(self, count: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, count)


@contextmanager
def progress_bar(
    *, label_width: int = 30, keep_finished: bool = True, stdout_too: bool = False
) -> Iterator[Progress]:
    """A bar per step on stderr when it is a terminal (`stdout_too`: and stdout is one);
    otherwise nothing, so redirected output and CI logs stay clean."""
    terminal = sys.stderr.isatty() and (sys.stdout.isatty() or not stdout_too)
    if not terminal:
        yield NoProgress()
        return
    with RichProgress(
        TextColumn(f"{{task.description:<{label_width}}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        yield _Bar(bar, keep_finished=keep_finished)


@asynccontextmanager
async def invalidation_cache(settings: Settings) -> AsyncIterator[Cache]:
    """The shared cache (Redis) when the service uses one, so a command's change reaches
    every replica (what an import replaced, an account's ended sessions); nothing otherwise
    (an in-process cache is another process's)."""
    # Imported here: the cache pulls in the metrics stack (FastAPI, Prometheus), which
    # every other command would pay for at start-up.
    from snipix.app import _redis_client
    from snipix.cache.metrics import CacheMetrics
    from snipix.cache.service import Cache
    from snipix.cache.store import RedisStore
    from snipix.observability.metrics import Metrics
    from snipix.retry import RetryMetrics, RetryPolicy

    redis = _redis_client(settings) if settings.cache_enabled else None
    if redis is None:
        yield Cache.disabled()
        return
    metrics = Metrics("cli")
    try:
        yield Cache(
            RedisStore(redis),
            prefix=settings.cache_prefix,
            ttl_s=settings.cache_ttl_s,
            jitter=settings.cache_ttl_jitter,
            stale_s=settings.cache_stale_s,
            policy=RetryPolicy.from_settings(settings, RetryMetrics(metrics)),
            metrics=CacheMetrics(metrics),
        )
    finally:
        await redis.aclose()
