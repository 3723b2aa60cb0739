"""`snipix db`: ping, indexes, migration status, migrate (MONGODB_URI or the embedded engine)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from pymongo.errors import PyMongoError

from snipix.catalogue import MIGRATIONS
from snipix.cli.frame import command, fail, load_settings
from snipix.db.client import connected, ping
from snipix.db.indexes import ensure_catalogue, list_indexes
from snipix.db.launcher import database_endpoint
from snipix.db.migrations import MigrationLocked, MigrationRunner, MigrationStatus
from snipix.settings import Settings, mongodb_hosts

db_app = typer.Typer(help="Database tools (use MONGODB_URI, or the embedded engine).")


@db_app.command("ping")
def db_ping() -> None:
    """Check that the database answers, and how fast."""
    settings = load_settings()
    with command(settings), database_endpoint(settings) as effective:
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
    settings = load_settings()
    with command(settings), database_endpoint(settings) as effective:
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
    settings = load_settings()
    with command(settings), database_endpoint(settings) as effective:
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
    settings = load_settings()
    with command(settings), database_endpoint(settings) as effective:
        try:
            applied, status, indexes = asyncio.run(_migrate(effective, wait_s=wait))
        except PyMongoError as error:
            # Not recorded, so it stays pending: migrations are idempotent and run again.
            fail(f"migration failed (it stays pending; fix and run again): {error}")
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
