"""`snipix import-legacy` and `snipix export-legacy` (how to use them: docs/operations.md,
"Legacy import/export"). A progress bar on stderr only when stdout and stderr are both
terminals; the summary table and lines on stdout.

Exit status of an import: 0 when every record read is in the database (imported now or
before), 3 when it finished but some records were skipped or left in conflict (see the
lines printed and `--report`), 1 when nothing could be imported (a file that is not valid
JSON: nothing is written), 2 for a bad option.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Final

import typer
from pymongo.errors import PyMongoError
from rich.console import Console

from snipix.cli.frame import command, fail, invalidation_cache, load_settings, progress_bar
from snipix.db.client import connected
from snipix.db.launcher import database_endpoint
from snipix.legacy.exporter import ExportError, ExportReport, export
from snipix.legacy.formats import DEFAULT_STREAM_ABOVE, LegacyFileError, Shape
from snipix.legacy.importer import (
    DEFAULT_BATCH,
    Importer,
    LegacyImportError,
    OptionError,
    Options,
)
from snipix.legacy.report import ImportReport
from snipix.progress import Progress
from snipix.settings import Settings

# Registered on the main app without a name: `snipix import-legacy`, `snipix export-legacy`.
legacy_app = typer.Typer()

INCOMPLETE: Final = 3


def _progress() -> AbstractContextManager[Progress]:
    # One bar at a time (each step replaces the last); only when stdout is a terminal
    # too, since the report goes there.
    return progress_bar(label_width=32, keep_finished=False, stdout_too=True)


def _user_map(values: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for value in values:
        old, sep, new = value.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise OptionError(f"--map-user {value!r}: expected OLD=NEW (two user ids)")
        mapping[old.strip()] = new.strip()
    return mapping


@legacy_app.command("import-legacy")
def import_legacy(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE", help="Legacy files: the export file or the keyed store."),
    ],
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            metavar="ID",
            help="Owner of projects whose user_id is a placeholder (test_user, empty, none).",
        ),
    ] = None,
    user_email: Annotated[
        str | None,
        typer.Option(
            "--user-email", metavar="EMAIL", help="As --user, naming an existing account."
        ),
    ] = None,
    map_user: Annotated[
        list[str] | None,
        typer.Option(
            "--map-user",
            metavar="OLD=NEW",
            help="Give OLD's projects to NEW (repeatable); for owners without an account.",
        ),
    ] = None,
    shape: Annotated[
        Shape | None,
        typer.Option("--format", help="The file shape (detected when left out)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Read, validate and compare; write nothing."),
    ] = False,
    report_path: Annotated[
        Path | None,
        typer.Option("--report", metavar="PATH", help="Write the migration report as JSON."),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace projects imported before from a different record (conflicts).",
        ),
    ] = False,
    stream_above: Annotated[
        int, typer.Option("--stream-above", metavar="BYTES", min=0, hidden=True)
    ] = DEFAULT_STREAM_ABOVE,
    batch: Annotated[int, typer.Option("--batch", min=1, max=10_000, hidden=True)] = DEFAULT_BATCH,
) -> None:
    """Import projects, timelines and transcriptions from the original simple API's files."""

    if user is not None and user_email is not None:
        fail("pass --user or --user-email, not both", code=2)
    if user is not None and not user.strip():
        fail("--user needs a user id", code=2)
    try:
        mapping = _user_map(map_user or [])
    except OptionError as error:
        fail(str(error), code=2)
    options = Options(
        user=user.strip() if user else None,
        user_email=user_email,
        map_user=mapping,
        shape=shape,
        dry_run=dry_run,
        overwrite=overwrite,
        stream_above=stream_above,
        batch=batch,
    )
    settings = load_settings()
    outcome: ImportReport | str | None = None
    with (
        command(settings),
        database_endpoint(settings) as effective,
        _progress() as progress,
    ):
        try:
            outcome = asyncio.run(_import(effective, files, options, progress))
        except OptionError as error:
            fail(str(error), code=2)
        except PyMongoError as error:
            first = str(error).split("\n", 1)[0][:300]
            outcome = (
                f"the database failed: {first}; what was imported so far stays (each "
                "project whole), run the same command again to finish"
            )
        except LegacyImportError as error:
            outcome = str(error)
        except LegacyFileError as error:
            outcome = f"{error}; nothing was written"
            if report_path is not None:
                _failed_report(effective.database_name, options, error).write(report_path)
    if outcome is None:
        fail("import interrupted; run it again to finish (it imports nothing twice)")
    if isinstance(outcome, str):
        fail(outcome)
    outcome.print(Console(highlight=False, soft_wrap=True))
    if report_path is not None:
        outcome.write(report_path)
    if not outcome.complete:
        skipped = outcome.counts["projects"].skipped
        typer.echo(
            f"incomplete: {skipped} project(s) skipped and {len(outcome.conflicts)} "
            f"conflict(s); {len(outcome.skipped)} problem(s) listed"
            + (f" in {report_path}" if report_path else " above"),
            err=True,
        )
        raise typer.Exit(INCOMPLETE)


def _failed_report(database: str, options: Options, error: LegacyFileError) -> ImportReport:
    report = ImportReport(database, options.dry_run, options.overwrite)
    report.error = {
        "file": str(error.path),
        "line": error.line,
        "column": error.column,
        "message": error.reason,
    }
    report.finished_at = report.started_at
    return report


async def _import(
    settings: Settings, files: list[Path], options: Options, progress: Progress
) -> ImportReport:
    async with connected(settings) as client, invalidation_cache(settings) as cache:
        importer = Importer(
            client[settings.database_name], settings, options, cache=cache, progress=progress
        )
        return await importer.run(files)


@legacy_app.command("export-legacy")
def export_legacy(
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="A new file for the export.")],
    user: Annotated[
        str | None,
        typer.Option("--user", metavar="ID", help="Only this user's projects."),
    ] = None,
) -> None:
    """Write projects, current timelines and transcriptions in the simple API's export shape."""

    if user is not None and not user.strip():
        fail("--user needs a user id", code=2)
    settings = load_settings()
    report: ExportReport | str | None = None
    with (
        command(settings),
        database_endpoint(settings) as effective,
        _progress() as progress,
    ):
        try:
            report = asyncio.run(_export(effective, out, user, progress))
        except ExportError as error:
            report = str(error)
    if report is None:
        fail("export interrupted; nothing was written")
    if isinstance(report, str):
        fail(report)
    scope = f" (user {user} only)" if user else ""
    typer.echo(
        f"exported {report.projects} projects, {report.timelines} timelines and "
        f"{report.transcripts} transcripts ({report.words:,} words) to {report.path}{scope}"
    )


async def _export(
    settings: Settings, out: Path, user: str | None, progress: Progress
) -> ExportReport:
    async with connected(settings) as client:
        return await export(client[settings.database_name], out, user_id=user, progress=progress)
