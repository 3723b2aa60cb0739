"""`snipix retention run`: purge projects soft-deleted longer than the retention window."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

import typer

from snipix.cache.service import Cache
from snipix.cli.frame import command, fail, load_settings
from snipix.cli.services import command_services
from snipix.db.client import connected
from snipix.db.indexes import ensure_catalogue
from snipix.db.launcher import database_endpoint
from snipix.db.leases import Lease
from snipix.projects.retention import LEASE_NAME, RetentionJob, RetentionReport
from snipix.settings import Settings

retention_app = typer.Typer(help="Purge projects soft-deleted longer than the retention window.")


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be purged; delete nothing.")
    ] = False,
) -> None:
    """Purge (or, with --dry-run, list) projects deleted more than SNIPIX_RETENTION_DAYS ago."""
    settings = load_settings()
    with command(settings), database_endpoint(settings) as effective:
        report = asyncio.run(sweep(effective, dry_run=dry_run))
        if report is None:
            fail("another process is running the retention sweep; try again later")
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


async def sweep(settings: Settings, *, dry_run: bool) -> RetentionReport | None:
    """One retention sweep against `settings`' database; None if another process holds it."""
    async with connected(settings) as client:
        db = client[settings.database_name]
        # The sweep's queries name catalogue indexes; a database the service never started
        # against has none yet (creating existing ones is free).
        await ensure_catalogue(db, settings)
        # Purges only soft-deleted projects, which no cache serves; the in-service sweep
        # (app.py) invalidates through the app's cache all the same.
        services = await command_services(settings, client, cache=Cache.disabled(), name="cli")
        job = RetentionJob(
            services.projects,  # media: files go with the project
            Lease(db, LEASE_NAME, ttl=timedelta(minutes=10)),
            retention=timedelta(days=settings.retention_days),
        )
        return await job.run(dry_run=dry_run)
