"""`snipix backup` and `snipix restore` (the format: the `snipix.backup` package; how to use
them: docs/operations.md). A progress bar on stderr when it is a terminal; quiet otherwise."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from snipix.backup.dump import BackupReport, backup
from snipix.backup.errors import BackupError
from snipix.backup.restore import RestoreReport, restore
from snipix.cli.frame import command, fail, load_settings, progress_bar
from snipix.db.client import connected
from snipix.db.launcher import database_endpoint
from snipix.progress import Progress
from snipix.settings import Settings

__all__ = ["BackupError", "backup_app"]

# Registered on the main app without a name: `snipix backup`, `snipix restore`.
backup_app = typer.Typer()


@backup_app.command("backup")
def backup_command(
    out: Annotated[
        Path,
        typer.Option("--out", metavar="DIR", help="A new (or empty) directory for the backup."),
    ],
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            metavar="ID",
            help="Only this user's projects, what they own, audit entries and idempotency keys.",
        ),
    ] = None,
) -> None:
    """Write every collection (or one user's data) as gzip Extended JSON lines + a manifest."""

    if user is not None and not user.strip():
        fail("--user needs a user id", code=2)
    settings = load_settings()
    report: BackupReport | None = None
    with (
        command(settings),
        database_endpoint(settings) as effective,
        progress_bar() as progress,
    ):
        report = asyncio.run(_backup(effective, out, user, progress))
    if report is None:
        fail("backup interrupted; nothing was written")
    manifest = report.manifest
    for entry in manifest.collections:
        typer.echo(f"  {entry.name:<24} {entry.count:>9}")
    scope = f" (user {user} only)" if user else ""
    typer.echo(
        f"backed up {manifest.documents} documents in {len(manifest.collections)} "
        f"collections to {report.directory}{scope}"
    )


async def _backup(
    settings: Settings, out: Path, user: str | None, progress: Progress
) -> BackupReport:
    async with connected(settings) as client:
        return await backup(client[settings.database_name], out, user_id=user, progress=progress)


@backup_app.command("restore")
def restore_command(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="A directory written by `snipix backup`.")
    ],
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Count what would be inserted or replaced; write nothing."),
    ] = False,
) -> None:
    """Restore a backup: every file checked first, then upserted by _id (idempotent)."""

    settings = load_settings()
    report: RestoreReport | None = None
    with (
        command(settings),
        database_endpoint(settings) as effective,
        progress_bar() as progress,
    ):
        report = asyncio.run(_restore(effective, directory, dry_run, progress))
    if report is None:
        fail(
            "restore interrupted; the database may hold part of the backup "
            "(run the restore again to finish it)"
        )
    insert, replace = ("to insert", "to replace") if dry_run else ("inserted", "replaced")
    for entry in report.collections:
        typer.echo(
            f"  {entry.name:<24} {entry.inserted} {insert}, {entry.replaced} {replace}, "
            f"{entry.unchanged} unchanged"
        )
    counts = (
        f"{report.total('inserted')} {insert}, {report.total('replaced')} {replace}, "
        f"{report.total('unchanged')} unchanged"
    )
    where = (
        f"{report.total('documents')} documents in {len(report.collections)} collections "
        f"from {directory} into database {report.database}"
    )
    if dry_run:
        typer.echo(f"dry run: would restore {where}: {counts}; nothing written")
    else:
        typer.echo(f"restored {where}: {counts}")
    if report.later_migrations:
        verb = "would then apply" if dry_run else "then applied"
        typer.echo(f"{verb} migration(s) {', '.join(report.later_migrations)}")


async def _restore(
    settings: Settings, directory: Path, dry_run: bool, progress: Progress
) -> RestoreReport:
    async with connected(settings) as client:
        return await restore(
            client[settings.database_name],
            directory,
            settings,
            dry_run=dry_run,
            progress=progress,
        )
