"""`snipix backup` and `snipix restore` (the format: `snipix.backup.archive`; how to use them:
docs/operations.md). A progress bar on stderr when it is a terminal; quiet otherwise."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from snipix.backup.archive import (
    BackupError,
    BackupReport,
    NoProgress,
    Progress,
    RestoreReport,
    backup,
    restore,
)
from snipix.db.client import connected
from snipix.db.launcher import database_endpoint
from snipix.settings import Settings

__all__ = ["BackupError", "backup_app"]

# Registered on the main app without a name: `snipix backup`, `snipix restore`.
backup_app = typer.Typer()


class _Bar:
    """One bar per collection, on stderr."""

    active = True

    def __init__(self, progress: RichProgress) -> None:
        self._progress = progress
        self._task: TaskID | None = None

    def start(self, label: str, total: int | None) -> None:
        self._task = self._progress.add_task(label, total=total)

    def advance(self, count: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, count)


@contextmanager
def _progress() -> Iterator[Progress]:
    if not sys.stderr.isatty():
        yield NoProgress()
        return
    with RichProgress(
        TextColumn("{task.description:<30}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        yield _Bar(bar)


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
    # Imported here: `snipix.cli` registers this module, so it is loaded by the time we run.
    from snipix.cli import _command, _fail, _load_settings

    if user is not None and not user.strip():
        _fail("--user needs a user id", code=2)
    settings = _load_settings()
    report: BackupReport | None = None
    with _command(settings), database_endpoint(settings) as effective, _progress() as progress:
        report = asyncio.run(_backup(effective, out, user, progress))
    if report is None:
        _fail("backup interrupted; nothing was written")
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
    from snipix.cli import _command, _fail, _load_settings

    settings = _load_settings()
    report: RestoreReport | None = None
    with _command(settings), database_endpoint(settings) as effective, _progress() as progress:
        report = asyncio.run(_restore(effective, directory, dry_run, progress))
    if report is None:
        _fail(
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
