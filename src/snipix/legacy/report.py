"""What an import did, for the terminal (a summary table) and for `--report` (JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from snipix.clock import iso_instant
from snipix.projects.repository import PROJECTS
from snipix.timelines.repository import HEADS
from snipix.transcripts.repository import HEADERS

FORMAT: Final = "snipix-legacy-import-report"
# What the import counts, by the registered collection (`snipix.catalogue`) a record of
# the original app's export becomes one document of: a project, its timeline head, its
# transcript header.
COLLECTIONS: Final = (PROJECTS, HEADS, HEADERS)
# Lines of skipped records and conflicts printed; the report has them all.
PRINTED: Final = 20


@dataclass(slots=True)
class Counts:
    read: int = 0
    imported: int = 0
    present: int = 0
    conflicts: int = 0
    skipped: int = 0

    def as_json(self) -> dict[str, int]:
        return {
            "read": self.read,
            "imported": self.imported,
            "alreadyPresent": self.present,
            "conflicts": self.conflicts,
            "skipped": self.skipped,
        }


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record not imported, and why: the field (in the file's terms) and the reason."""

    collection: str
    id: str | None
    file: str
    where: str
    field: str
    reason: str

    def line(self) -> str:
        field_text = f"{self.field}: " if self.field else ""
        return (
            f"skipped {self.collection} {self.id or '(no id)'} ({self.file} {self.where}): "
            f"{field_text}{self.reason}"
        )


@dataclass(frozen=True, slots=True)
class ConflictEntry:
    id: str
    file: str
    where: str
    reason: str

    def line(self) -> str:
        return f"conflict: project {self.id} ({self.file} {self.where}): {self.reason}"


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    shape: str
    bytes: int
    streamed: bool


@dataclass(slots=True)
class ImportReport:
    database: str
    dry_run: bool
    overwrite: bool
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    files: list[FileInfo] = field(default_factory=list)
    counts: dict[str, Counts] = field(default_factory=lambda: {c: Counts() for c in COLLECTIONS})
    words: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    conflicts: list[ConflictEntry] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    # Set when the input could not be read at all (nothing was written).
    error: dict[str, Any] | None = None

    @property
    def duration_s(self) -> float:
        end = self.finished_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()

    @property
    def complete(self) -> bool:
        """Every record read is in the database (imported now or before)."""
        return self.error is None and not self.skipped and not self.conflicts

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "database": self.database,
            "dryRun": self.dry_run,
            "overwrite": self.overwrite,
            "startedAt": _iso(self.started_at),
            "finishedAt": _iso(self.finished_at),
            "durationSec": round(self.duration_s, 3),
            "files": [asdict(info) for info in self.files],
            "counts": {name: counts.as_json() for name, counts in self.counts.items()},
            "wordsImported": self.words,
            "skipped": [asdict(entry) for entry in self.skipped],
            "conflicts": [asdict(entry) for entry in self.conflicts],
            "notices": self.notices,
            "error": self.error,
        }

    def write(self, path: Path) -> None:
        import json

        path.write_text(json.dumps(self.as_json(), indent=2) + "\n", encoding="utf-8")

    def table(self) -> Table:
        verb = "would import" if self.dry_run else "imported"
        table = Table(title=None, show_edge=False, pad_edge=False)
        table.add_column("collection")
        for heading in ("read", verb, "already present", "conflicts", "skipped"):
            table.add_column(heading, justify="right")
        for name, counts in self.counts.items():
            table.add_row(
                name,
                *(
                    f"{value:,}"
                    for value in (
                        counts.read,
                        counts.imported,
                        counts.present,
                        counts.conflicts,
                        counts.skipped,
                    )
                ),
            )
        return table

    def summary(self) -> str:
        projects = self.counts["projects"]
        timelines = self.counts["timelines"]
        transcripts = self.counts["transcripts"]
        verb = "would import" if self.dry_run else "imported"
        line = (
            f"{verb} {projects.imported} projects, {timelines.imported} timelines and "
            f"{transcripts.imported} transcripts ({self.words:,} words) from "
            f"{len(self.files)} file(s) into database {self.database} in "
            f"{self.duration_s:.1f} s: {projects.present} already present, "
            f"{projects.conflicts} conflicts, {projects.skipped} skipped"
        )
        return line + ("; nothing written" if self.dry_run else "")

    def print(self, console: Console) -> None:
        for notice in self.notices:
            console.print(f"notice: {notice}", markup=False, highlight=False)
        for entries in (self.skipped, self.conflicts):
            for entry in entries[:PRINTED]:
                console.print(entry.line(), markup=False, highlight=False)
            if len(entries) > PRINTED:
                console.print(f"... and {len(entries) - PRINTED} more (see --report)")
        console.print(self.table())
        console.print(self.summary(), markup=False, highlight=False)


def _iso(moment: datetime | None) -> str | None:
    return iso_instant(moment) if moment is not None else None
