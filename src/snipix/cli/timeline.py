"""`snipix timeline export|import`: a project's timeline to and from other editors' files.

The same service calls as `GET .../timeline/export` and `POST .../timeline/import`, acting
as the project's owner: the formats, the media mapping and what is listed as not carried
are the API's. An import is one undoable revision, like one made over HTTP, and reaches
every replica's cache through the shared cache when there is one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import typer

from snipix.auth.actor import Actor
from snipix.cli.frame import command, fail, invalidation_cache, load_settings
from snipix.cli.services import command_services
from snipix.db.client import connected
from snipix.db.launcher import database_endpoint
from snipix.errors import SnipixError
from snipix.projects.repository import ProjectRepository
from snipix.services import Services
from snipix.settings import Settings
from snipix.timelines.interchange import FORMATS, Exported, Format
from snipix.timelines.schemas import ImportReport

timeline_app = typer.Typer(help="Export or import a project's timeline (OTIO, EDL, XML...).")

_FORMAT_HELP = "otio, edl, fcp-xml, fcpxml or kdenlive."
_SUFFIXES = {"otio": "otio", "edl": "edl", "fcpxml": "fcpxml", "kdenlive": "kdenlive"}


def _format(name: str | None, path: Path | None = None) -> Format:
    if name is None and path is not None:
        # By file suffix; plain .xml is Final Cut Pro 7 XML (Premiere, Resolve).
        suffix = path.suffix.lower().lstrip(".")
        name = _SUFFIXES.get(suffix, "fcp-xml" if suffix == "xml" else None)
    if name is None or name not in FORMATS:
        fail(f"--format must be one of: {_FORMAT_HELP}", code=2)
    return FORMATS[name]


@timeline_app.command("export")
def export_command(
    project: Annotated[str, typer.Argument(metavar="PROJECT", help="The project's id.")],
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="The file to write.")],
    format: Annotated[
        str | None,
        typer.Option("--format", metavar="F", help=f"{_FORMAT_HELP} Default: by --out's suffix."),
    ] = None,
    version: Annotated[
        int | None, typer.Option("--version", min=0, help="A past version (default: current).")
    ] = None,
) -> None:
    """Write the project's timeline as a file another editor opens."""
    fmt = _format(format, out)
    settings = load_settings()
    with command(settings), database_endpoint(settings) as effective:
        exported, at = asyncio.run(_export(effective, project, fmt, version))
    out.write_text(exported.document, encoding="utf-8")
    typer.echo(f"wrote version {at} of project {project} as {fmt.title} to {out}")
    _echo_unmapped(exported.unmapped, "not carried by the format")


@timeline_app.command("import")
def import_command(
    project: Annotated[str, typer.Argument(metavar="PROJECT", help="The project's id.")],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The file to import.")],
    format: Annotated[
        str | None,
        typer.Option("--format", metavar="F", help=f"{_FORMAT_HELP} Default: by the suffix."),
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option("--fps", min=0.001, max=1_000, help="The rate an EDL's timecodes count in."),
    ] = None,
) -> None:
    """Replace the project's timeline with a file's, as one undoable revision."""
    fmt = _format(format, file)
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    settings = load_settings()
    with command(settings), database_endpoint(settings) as effective:
        report = asyncio.run(_import(effective, project, data, fmt, fps))
    timeline = report.timeline
    typer.echo(
        f"imported {file} ({fmt.title}) into project {project}: version {timeline.version}, "
        f"{len(timeline.state.tracks)} tracks, {len(timeline.state.clips)} clips, "
        f"{timeline.duration_sec:.3f} s"
    )
    _echo_unmapped(report.unmapped, "not mapped")


def _echo_unmapped(unmapped: list[str], what: str) -> None:
    if unmapped:
        typer.echo(f"{len(unmapped)} item(s) {what}:")
        for item in unmapped:
            typer.echo(f"  - {item}")


async def _export(
    settings: Settings, project_id: str, fmt: Format, version: int | None
) -> tuple[Exported, int]:
    async with _owner_services(settings, project_id) as (services, actor):
        try:
            return await services.timelines.export_file(actor, project_id, fmt, version=version)
        except SnipixError as exc:
            fail(str(exc))


async def _import(
    settings: Settings, project_id: str, data: bytes, fmt: Format, fps: float | None
) -> ImportReport:
    async with _owner_services(settings, project_id) as (services, actor):
        try:
            return await services.timelines.import_file(
                actor, project_id, data, fmt, expected="*", fps=fps
            )
        except SnipixError as exc:
            fail(str(exc))


@asynccontextmanager
async def _owner_services(
    settings: Settings, project_id: str
) -> AsyncIterator[tuple[Services, Actor]]:
    """The services on `settings`' database, and the project's owner to act as."""
    async with connected(settings) as client, invalidation_cache(settings) as cache:
        db = client[settings.database_name]
        doc = await ProjectRepository(db).get(project_id, None)
        if doc is None:
            fail(f"no live project {project_id}")
        services = await command_services(settings, client, cache=cache, name="cli")
        yield services, Actor(user_id=str(doc["userId"]))
