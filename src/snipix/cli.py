"""The `snipix` command: serve, the embedded engine, database tools.

Every command fails with one line on stderr (`error: ...`) and a non-zero status: 2 for a bad
setting or option, 1 for anything else that stopped it. SIGTERM and SIGINT stop the service
first (in-flight requests finish) and then every process the command started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import structlog
import typer
import uvicorn
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from snipix.accounts.cli import users_app
from snipix.auth.tokens import TokenVerifier
from snipix.cache.service import Cache
from snipix.catalogue import MIGRATIONS
from snipix.cli_backup import BackupError, backup_app
from snipix.cli_logs import logs_app
from snipix.db.client import DatabaseUnreachable, connected, ping
from snipix.db.engine_record import DataDirInUse, EngineStartError
from snipix.db.indexes import IndexConflict, ensure_catalogue, list_indexes
from snipix.db.launcher import EngineLaunchError, database_endpoint
from snipix.db.leases import Lease
from snipix.db.migrations import MigrationLocked, MigrationRunner, MigrationStatus
from snipix.db.transactions import UnitOfWork
from snipix.legacy.cli import legacy_app
from snipix.media.storage import purge_hook
from snipix.observability.logging import configure_logging
from snipix.projects.retention import LEASE_NAME, RetentionJob, RetentionReport
from snipix.projects.service import project_service
from snipix.settings import Settings, describe_errors, mongodb_hosts

log = structlog.get_logger(__name__)

app = typer.Typer(
    name="snipix",
    help="Snipix backend: the API service, its embedded database engine and tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database tools (use MONGODB_URI, or the embedded engine).")
app.add_typer(db_app, name="db", no_args_is_help=True)
retention_app = typer.Typer(help="Purge projects soft-deleted longer than the retention window.")
app.add_typer(retention_app, name="retention", no_args_is_help=True)
app.add_typer(logs_app, name="logs", no_args_is_help=True)
app.add_typer(backup_app)  # `snipix backup`, `snipix restore`
app.add_typer(users_app, name="users", no_args_is_help=True)  # accounts
app.add_typer(legacy_app)  # `snipix import-legacy`, `snipix export-legacy`

# Failures a person can act on: shown as one line, never as a traceback.
_EXPECTED = (
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


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        for line in describe_errors(error):
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2) from None


@contextmanager
def _command(settings: Settings) -> Iterator[None]:
    """Common frame: logging, stop signals, one-line failures."""
    configure_logging(settings)
    previous = {s: signal.signal(s, _on_stop_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    except _StopRequested:
        pass
    except _EXPECTED as error:
        _fail(str(error))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [SNIPIX_HOST].")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="[SNIPIX_PORT]")] = None,
    workers: Annotated[int | None, typer.Option(min=1, max=64, help="[SNIPIX_WORKERS]")] = None,
) -> None:
    """Run the API (with the embedded engine when MONGODB_URI is not set)."""
    settings = _load_settings()
    host = host or settings.host
    port = settings.port if port is None else port
    try:
        # An unusable JWT key: one line now, not a lifespan traceback in every worker.
        TokenVerifier.from_settings(settings)
    except ValueError as error:
        _fail(f"invalid setting {error}", code=2)
    _ensure_can_listen(host, port)
    with _command(settings), database_endpoint(settings, keep_engine=True) as effective:
        log.info("starting", settings=settings.describe())
        # Fail here, in one line, rather than as a lifespan traceback in every worker.
        asyncio.run(_check_database(effective))
        assert effective.mongodb_uri is not None
        os.environ["MONGODB_URI"] = effective.mongodb_uri.get_secret_value()
        uvicorn.run(
            "snipix.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers or settings.workers,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=settings.shutdown_grace_s,
            server_header=False,
            # Hardening: the client address (rate limits, login limits) comes
            # from X-Forwarded-For only when a trusted proxy sent it.
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )


def _ensure_can_listen(host: str, port: int) -> None:
    """Fail in one line, before any engine starts, if the address cannot be bound.

    uvicorn would find out only after the whole start-up, and say it in a log record.
    """
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        reason = error.strerror.lower() if error.strerror else str(error)
        _fail(f"cannot listen on {host}:{port}: {reason}")


async def _check_database(settings: Settings) -> None:
    async with connected(settings):
        pass


@app.command()
def engine(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data directory (default: SNIPIX_DATA_DIR, ./.snipix/data)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="0 picks a free port.")] = 27017,
    parent_pid: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run the embedded MongoDB-compatible engine in the foreground, like mongod."""
    # Imported here: only this command runs the engine in process (~0.4 s of imports).
    from snipix.db.engine import serve_engine

    settings = _load_settings()
    with _command(settings):
        asyncio.run(
            serve_engine(
                (data_dir or settings.data_dir).resolve(),
                host=host,
                port=port,
                parent_pid=parent_pid,
            )
        )


@db_app.command("ping")
def db_ping() -> None:
    """Check that the database answers, and how fast."""
    settings = _load_settings()
    with _command(settings), database_endpoint(settings) as effective:
        version, latency_ms = asyncio.run(_ping(effective))
        assert effective.mongodb_uri is not None
        hosts = mongodb_hosts(effective.mongodb_uri.get_secret_value())
        typer.echo(
            f"ok: MongoDB {version} at {hosts} answered in {latency_ms:.1f} ms "
            f"(database {effective.database_name})"
        )


async def _ping(settings: Settings) -> tuple[str, float]:
    async with connected(settings) as client:
        info = await ping(client)  # a second round trip, on a warm connection
    return info.version, info.latency_ms


@db_app.command("indexes")
def db_indexes() -> None:
    """Create every index of the data model (idempotent) and list the database's indexes."""
    settings = _load_settings()
    with _command(settings), database_endpoint(settings) as effective:
        for line in asyncio.run(_indexes(effective)):
            typer.echo(line)


async def _indexes(settings: Settings) -> list[str]:
    async with connected(settings) as client:
        db = client[settings.database_name]
        created = await ensure_catalogue(db, settings)
        listing = await list_indexes(db)
    lines = [f"ensured {len(created)} indexes in database {settings.database_name}"]
    for collection, indexes in listing.items():
        for index in indexes:
            keys = ", ".join(f"{k}:{v}" for k, v in dict(index["key"]).items())
            extras = [
                f"{option}={index[option]}"
                for option in ("unique", "sparse", "partialFilterExpression", "expireAfterSeconds")
                if index.get(option)
            ]
            lines.append(
                f"{collection:<22} {index['name']:<26} {keys}  {' '.join(extras)}".rstrip()
            )
    return lines


@db_app.command("status")
def db_status() -> None:
    """List applied, pending and unknown migrations; change nothing.

    Exits 0 whatever the state: it answers "what would `db migrate` do?" (readiness reports
    the same state), it is not a gate.
    """
    settings = _load_settings()
    with _command(settings), database_endpoint(settings) as effective:
        status = asyncio.run(_migration_status(effective))
        for line in _status_lines(status):
            typer.echo(line)
        typer.echo(_status_summary(status, effective.database_name))


async def _migration_status(settings: Settings) -> MigrationStatus:
    async with connected(settings) as client:
        return await MigrationRunner(client[settings.database_name], MIGRATIONS).status()


_DESCRIPTIONS = {migration.id: migration.description for migration in MIGRATIONS}


def _status_lines(status: MigrationStatus) -> list[str]:
    width = max((len(i) for i in [*status.applied, *status.pending, *status.unknown]), default=0)
    return [
        *(f"applied  {i:<{width}}  {_DESCRIPTIONS[i]}" for i in status.applied),
        *(f"pending  {i:<{width}}  {_DESCRIPTIONS[i]}" for i in status.pending),
        *(f"unknown  {i:<{width}}  (applied by a newer build)" for i in status.unknown),
    ]


def _status_summary(status: MigrationStatus, database: str) -> str:
    return (
        f"{status.as_dict()['status']}: {len(status.applied)} applied, "
        f"{len(status.pending)} pending, {len(status.unknown)} unknown in database {database}"
    )


@db_app.command("migrate")
def db_migrate(
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            max=3600,
            metavar="SECONDS",
            help="How long to wait for a lock another migrator holds before giving up.",
        ),
    ] = 120.0,
) -> None:
    """Apply pending migrations (each once, under the lock), then ensure the indexes.

    The same steps in the same order as start-up, so a deploy job running this with
    SNIPIX_MIGRATE_ON_START=false leaves the database as a starting replica would.
    """
    settings = _load_settings()
    with _command(settings), database_endpoint(settings) as effective:
        try:
            applied, status, indexes = asyncio.run(_migrate(effective, wait_s=wait))
        except PyMongoError as error:
            # Not recorded, so it stays pending: migrations are idempotent and run again.
            _fail(f"migration failed (it stays pending; fix and run again): {error}")
        for migration_id in applied:
            typer.echo(f"applied  {migration_id}  {_DESCRIPTIONS[migration_id]}")
        if not applied:
            typer.echo("nothing to apply")
        if status.unknown:
            typer.echo(
                f"warning: database has migrations this build does not know: "
                f"{', '.join(status.unknown)}",
                err=True,
            )
        typer.echo(f"{_status_summary(status, effective.database_name)}; ensured {indexes} indexes")


async def _migrate(settings: Settings, *, wait_s: float) -> tuple[list[str], MigrationStatus, int]:
    async with connected(settings) as client:
        db = client[settings.database_name]
        runner = MigrationRunner(db, MIGRATIONS, wait_s=wait_s)
        try:
            applied = await runner.migrate()
        except MigrationLocked as error:
            raise MigrationLocked(
                f"{error}; gave up after {wait_s:g} s (retry, or pass a longer --wait)"
            ) from None
        # After migrations, as at start-up: a migration may create a collection with
        # options that creating its indexes first would have made impossible.
        indexes = await ensure_catalogue(db, settings)
        return applied, await runner.status(), len(indexes)


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be purged; delete nothing.")
    ] = False,
) -> None:
    """Purge (or, with --dry-run, list) projects deleted more than SNIPIX_RETENTION_DAYS ago."""
    settings = _load_settings()
    with _command(settings), database_endpoint(settings) as effective:
        report = asyncio.run(_retention(effective, dry_run=dry_run))
        if report is None:
            _fail("another process is running the retention sweep; try again later")
        verb = "would purge" if dry_run else "purged"
        typer.echo(
            f"{verb} {report.count} project(s) deleted before {report.cutoff.isoformat()} "
            f"(retention {settings.retention_days} days)"
        )
        for project in report.projects:
            line = f"  {project['id']}  owner={project['userId']}  deleted={project['deletedAt']}"
            if "deleted" in project:
                removed = sum(project["deleted"].values())
                line += f"  documents={removed}"
            typer.echo(line)


async def _retention(settings: Settings, *, dry_run: bool) -> RetentionReport | None:
    async with connected(settings) as client:
        db = client[settings.database_name]
        # The sweep's queries name catalogue indexes; a database the service never started
        # against has none yet (creating existing ones is free).
        await ensure_catalogue(db, settings)
        job = RetentionJob(
            # Purges only soft-deleted projects, which no cache serves; the in-service
            # sweep (app.py) invalidates through the app's cache all the same.
            project_service(
                db,
                await UnitOfWork.for_server(client),
                cache=Cache.disabled(),
                on_purge=[purge_hook(settings)],  # media: files go with the project
            ),
            Lease(db, LEASE_NAME, ttl=timedelta(minutes=10)),
            retention=timedelta(days=settings.retention_days),
        )
        return await job.run(dry_run=dry_run)


@app.command("config")
def show_config() -> None:
    """Print the effective settings, secrets masked."""
    settings = _load_settings()
    for name, value in settings.describe().items():
        typer.echo(f"{name}={value}")


def main() -> None:
    app()
