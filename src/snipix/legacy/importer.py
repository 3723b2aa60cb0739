"""`snipix import-legacy`: read, decide, then write.

1. **Read** every file completely before anything is written: its JSON is checked (a
   truncated file stops the run with line and column, and nothing is written), every
   record is validated (`records`), and only small summaries are kept (ids, owners,
   digests), so a file larger than memory imports all the same.
2. **Decide**, per project: its timeline (the newest of its records) and transcription,
   its owner (see `Owners`), a checksum of everything that would be stored, and what the
   database already holds under its id: new, already present (same checksum), or a
   conflict (different checksum, or not imported at all) that is reported and left alone
   unless `--overwrite`.
3. **Write** (not with `--dry-run`): the files are read again and each project to import
   is rebuilt and stored in batches, always in `WRITE_ORDER` — transcript buckets and
   header, timeline revision (and snapshot) and head, audit entry, and the project
   document last, carrying the checksum. A project whose document exists was imported
   whole; a run killed half-way left at most documents of projects that have none yet,
   with the same ids the next run writes (ids come from the project id and the content),
   so the next run overwrites them and the database ends as an uninterrupted run leaves
   it.

A timeline becomes revision 1 of the project's history (kind `import`), stored exactly as
`TimelineService.save` would store a first save, with the original date; a transcript
is bucketed by `TranscriptService.buckets` and published as its first version.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import structlog

from snipix.accounts.repository import UserRepository
from snipix.accounts.schemas import normalize_email
from snipix.audit.repository import COLLECTION as AUDIT
from snipix.audit.repository import audit_document
from snipix.auth.actor import Actor
from snipix.cache.service import Cache
from snipix.catalogue import MIGRATIONS, PURGED
from snipix.clock import utc_now_ms
from snipix.db.client import Database, Document
from snipix.db.indexes import ensure_catalogue
from snipix.db.migrations import MigrationRunner
from snipix.db.transactions import UnitOfWork
from snipix.legacy.formats import (
    DEFAULT_STREAM_ABOVE,
    LegacyFile,
    LegacyFileError,
    Section,
    Shape,
    open_legacy,
)
from snipix.legacy.records import (
    Invalid,
    Problem,
    ProjectRecord,
    TimelinePart,
    TranscriptPart,
    digest,
    export_timeline,
    export_transcript,
    project_record,
    record_id,
    store_transcript,
    timeline_part,
    too_long,
)
from snipix.legacy.report import ConflictEntry, FileInfo, ImportReport, Skipped
from snipix.legacy.repository import (
    HEADERS,
    HEADS,
    REVISIONS,
    SNAPSHOTS,
    WRITE_ORDER,
    LegacyRepository,
)
from snipix.progress import NoProgress, Progress
from snipix.projects.repository import PROJECTS, ProjectRepository
from snipix.projects.service import CACHED_LIST, CACHED_PROJECT, project_service
from snipix.settings import Settings
from snipix.timelines.patches import diff
from snipix.timelines.repository import versioned_id
from snipix.timelines.schemas import RevisionKind
from snipix.timelines.service import CACHED_TIMELINE, EMPTY_STATE
from snipix.transcripts.repository import BUCKETS, TranscriptRepository
from snipix.transcripts.service import TranscriptService

log = structlog.get_logger(__name__)

DEFAULT_BATCH: Final = 100
IMPORTER: Final = Actor.system("legacy-import")
ACTION: Final = "project.imported"

# (file number, section, position in the section): where a record is, on both passes.
RecordKey = tuple[int, str, int]


class LegacyImportError(Exception):
    """The import cannot start or go on; one line for the operator."""


class OptionError(LegacyImportError):
    """A bad option (exit 2)."""


@dataclass(frozen=True, slots=True)
class Options:
    user: str | None = None
    user_email: str | None = None
    map_user: dict[str, str] = field(default_factory=dict)
    shape: Shape | None = None
    dry_run: bool = False
    overwrite: bool = False
    stream_above: int = DEFAULT_STREAM_ABOVE
    batch: int = DEFAULT_BATCH


class Outcome(StrEnum):
    NEW = "new"
    PRESENT = "present"
    CONFLICT = "conflict"
    OVERWRITE = "overwrite"
    SKIPPED = "skipped"


@dataclass(slots=True)
class Choice:
    """A timeline or transcription read for a project: where, and what it holds."""

    key: RecordKey
    file: str
    where: str
    digest: str | None
    problems: list[Problem]
    rank: tuple[int, int] = (0, 0)
    last_end: float = 0.0
    words: int = 0


@dataclass(slots=True)
class Entry:
    """One project read in the first pass, and what the run decided for it."""

    id: str
    key: RecordKey
    file: str
    where: str
    owner: str | None
    owner_written: str | None
    digest: str
    duration: float | None
    updated_at: datetime
    timelines: list[Choice] = field(default_factory=list)
    transcripts: list[Choice] = field(default_factory=list)
    timeline: Choice | None = None
    transcript: Choice | None = None
    resolved: str | None = None
    checksum: str | None = None
    outcome: Outcome = Outcome.NEW

    @property
    def writes(self) -> bool:
        return self.outcome in (Outcome.NEW, Outcome.OVERWRITE)


def _where(section: Section, index: int, key: str | None) -> str:
    if section is Section.STORE:
        return f"[{key!r}]"
    return f"{section.value}[{index}]"


class Owners:
    """Who owns an imported project.

    - a placeholder owner (`test_user`, empty, missing) gets `--user` / `--user-email`;
    - `--map-user OLD=NEW` replaces OLD (explicit, so NEW is taken as given);
    - any other owner is kept when `users` has that account;
    - otherwise the project is skipped: nothing is attached to a made-up user.

    `--user ID` is taken as given even without an account: deployments with the local
    identity (`X-User-Id`) or an outside identity provider have no `users` entries, and
    the operator named it on purpose (a notice says so). `--user-email` must name an
    account.
    """

    def __init__(
        self, db: Database, users: UserRepository, options: Options, report: ImportReport
    ) -> None:
        self._db = db
        self._users = users
        self._map = options.map_user
        self._default = options.user
        self._email = options.user_email
        self._report = report
        self._known: dict[str, bool] = {}

    async def prepare(self) -> None:
        if self._email is not None:
            account = await LegacyRepository(self._db).account(normalize_email(self._email))
            if account is None:
                raise OptionError(f"--user-email: no account with email {self._email}")
            self._default = str(account["_id"])
        elif self._default is not None and not await self._exists(self._default):
            self._report.notices.append(
                f"--user {self._default} has no account in users; its projects are "
                "imported for it as given (deployments without accounts have none)"
            )

    async def _exists(self, user_id: str) -> bool:
        if user_id not in self._known:
            self._known[user_id] = await self._users.by_id(user_id) is not None
        return self._known[user_id]

    async def resolve(self, entry: Entry) -> tuple[str | None, str]:
        """(owner, reason it has none)."""
        if entry.owner is None:
            if self._default is not None:
                return self._default, ""
            written = "missing" if entry.owner_written is None else repr(entry.owner_written)
            return None, f"placeholder owner ({written}): pass --user or --user-email"
        if entry.owner in self._map:
            return self._map[entry.owner], ""
        if await self._exists(entry.owner):
            return entry.owner, ""
        return None, (
            f"owner {entry.owner} has no account in users: create it, or pass "
            f"--map-user {entry.owner}=USER_ID"
        )


class Importer:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        options: Options,
        *,
        cache: Cache | None = None,
        progress: Progress | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._options = options
        self._cache = cache or Cache.disabled()
        self._progress = progress or NoProgress()
        self._repository = LegacyRepository(db)
        self.report = ImportReport(
            database=db.name, dry_run=options.dry_run, overwrite=options.overwrite
        )
        self._owners = Owners(db, UserRepository(db), options, self.report)
        self._entries: dict[str, Entry] = {}
        self._invalid: set[str] = set()
        self._timelines: dict[str | None, list[Choice]] = {}
        self._transcripts: dict[str | None, list[Choice]] = {}
        self._chosen_by_key: dict[tuple[RecordKey, str], Entry] = {}
        # For bucketing only: the service's own code decides the buckets.
        self._bucketing = TranscriptService(
            TranscriptRepository(db),
            project_service(
                db,
                UnitOfWork(db.client, transactions=False),
                cache=Cache.disabled(),
                owned=PURGED,
            ),
            bucket_words=settings.transcript_bucket_words,
            bucket_bytes=settings.transcript_bucket_bytes,
        )

    @property
    def _max_bytes(self) -> int:
        return self._settings.timeline_max_bytes

    # --- the run -------------------------------------------------------------------------

    async def run(self, paths: list[Path]) -> ImportReport:
        """Import the files; `LegacyFileError` (nothing written) when one cannot be read."""
        await self._owners.prepare()
        files = self._open(paths)
        self._read(files)
        if not self._options.dry_run:
            # Only once every file has been read: a file that cannot be imported leaves
            # the database untouched. The same steps as `snipix db migrate` (the projects
            # validator, then the catalogue the queries below name).
            await MigrationRunner(self._db, MIGRATIONS).migrate()
            await ensure_catalogue(self._db, self._settings)
        await self._decide()
        if not self._options.dry_run:
            await self._write(files)
        self.report.finished_at = datetime.now(UTC)
        log.info(
            "legacy import finished",
            dry_run=self._options.dry_run,
            counts={k: v.as_json() for k, v in self.report.counts.items()},
        )
        return self.report

    def _open(self, paths: list[Path]) -> list[LegacyFile]:
        files = []
        for path in paths:
            size = path.stat().st_size if path.is_file() else None
            self._progress.start(f"check {path.name}", size)
            legacy = open_legacy(
                path,
                shape=self._options.shape,
                stream_above=self._options.stream_above,
                advance=self._progress.advance,
            )
            files.append(legacy)
            self.report.files.append(
                FileInfo(str(path), legacy.shape.value, legacy.size, legacy.streamed)
            )
        return files

    # --- pass 1: read and validate --------------------------------------------------------

    def _read(self, files: list[LegacyFile]) -> None:
        for file_no, legacy in enumerate(files):
            self._progress.start(f"read {legacy.path.name}", legacy.count_hint())
            count_bytes = legacy.streamed
            for section in legacy.sections():
                records = legacy.records(
                    section, self._progress.advance if count_bytes else _ignore
                )
                for index, key, value in records:
                    if not count_bytes:
                        self._progress.advance(1)
                    where = _where(section, index, key)
                    record_key = (file_no, section.value, index)
                    if section in (Section.PROJECTS, Section.STORE):
                        self._read_project(legacy, section, record_key, where, key, value)
                    elif section is Section.TIMELINES:
                        self._read_timeline(str(legacy.path), record_key, where, value)
                    else:
                        self._read_transcript(str(legacy.path), record_key, where, value)

    def _skip(
        self, collection: str, record: str | None, file: str, where: str, problems: list[Problem]
    ) -> None:
        for problem in problems or [Problem("", "invalid")]:
            self.report.skipped.append(
                Skipped(collection, record, file, where, problem.field, problem.reason)
            )

    def _read_project(
        self,
        legacy: LegacyFile,
        section: Section,
        record_key: RecordKey,
        where: str,
        key: str | None,
        value: Any,
    ) -> None:
        file = str(legacy.path)
        counts = self.report.counts
        counts["projects"].read += 1
        embedded = section is Section.STORE and isinstance(value, dict)
        has_timeline = embedded and value.get("timeline_state") is not None
        has_transcript = embedded and value.get("transcript_state") is not None
        try:
            record = project_record(value, key=key)
        except Invalid as error:
            written = (
                record_id(value.get("_id")) or record_id(value.get("id"))
                if isinstance(value, dict)
                else None
            )
            project_id = written or key
            self._skip("projects", project_id, file, where, error.problems)
            if project_id is not None:
                self._invalid.add(project_id)
            counts["projects"].skipped += 1
            self._skip_embedded(has_timeline, has_transcript)
            return
        first = self._entries.get(record.id)
        if first is not None:
            self._skip(
                "projects",
                record.id,
                file,
                where,
                [Problem("_id", f"duplicate: already read from {first.file} {first.where}")],
            )
            counts["projects"].skipped += 1
            self._skip_embedded(has_timeline, has_transcript)
            return
        entry = Entry(
            id=record.id,
            key=record_key,
            file=file,
            where=where,
            owner=record.owner,
            owner_written=record.owner_written,
            digest=record.digest,
            duration=record.duration,
            updated_at=record.updated_at,
        )
        self._entries[record.id] = entry
        if not embedded:
            return
        if has_timeline:
            counts["timelines"].read += 1
            choice = Choice(record_key, file, where, None, [])
            try:
                part = timeline_part(value["timeline_state"], max_bytes=self._max_bytes)
                choice.digest, choice.rank = part.digest, part.rank
            except Invalid as error:
                choice.problems = error.problems
            entry.timelines.append(choice)
        try:
            transcript = store_transcript(value.get("transcript_state"))
        except Invalid as error:
            counts["transcripts"].read += 1
            entry.transcripts.append(Choice(record_key, file, where, None, error.problems))
        else:
            if transcript is not None:
                counts["transcripts"].read += 1
                entry.transcripts.append(_transcript_choice(record_key, file, where, transcript))

    def _skip_embedded(self, timeline: bool, transcript: bool) -> None:
        counts = self.report.counts
        counts["timelines"].read += int(timeline)
        counts["timelines"].skipped += int(timeline)
        counts["transcripts"].read += int(transcript)
        counts["transcripts"].skipped += int(transcript)

    def _read_timeline(self, file: str, record_key: RecordKey, where: str, value: Any) -> None:
        self.report.counts["timelines"].read += 1
        project_id = record_id(value.get("project_id")) if isinstance(value, dict) else None
        choice = Choice(record_key, file, where, None, [])
        try:
            project_id, part = export_timeline(value, max_bytes=self._max_bytes)
            choice.digest, choice.rank = part.digest, part.rank
        except Invalid as error:
            choice.problems = error.problems
        self._timelines.setdefault(project_id, []).append(choice)

    def _read_transcript(self, file: str, record_key: RecordKey, where: str, value: Any) -> None:
        self.report.counts["transcripts"].read += 1
        project_id = record_id(value.get("project_id")) if isinstance(value, dict) else None
        try:
            project_id, part = export_transcript(value)
        except Invalid as error:
            choice = Choice(record_key, file, where, None, error.problems)
        else:
            choice = _transcript_choice(record_key, file, where, part)
        self._transcripts.setdefault(project_id, []).append(choice)

    # --- decide --------------------------------------------------------------------------

    async def _decide(self) -> None:
        counts = self.report.counts
        for collection, found in (
            ("timelines", self._timelines),
            ("transcripts", self._transcripts),
        ):
            for project_id, choices in found.items():
                entry = self._entries.get(project_id) if project_id is not None else None
                if entry is not None:
                    target = entry.timelines if collection == "timelines" else entry.transcripts
                    target += choices
                    continue
                counts[collection].skipped += len(choices)
                if project_id is None:
                    orphan = Problem("project_id", "missing")
                elif project_id in self._invalid:
                    orphan = Problem("project_id", "its project record was skipped")
                else:
                    orphan = Problem("project_id", "no project with this id in the input")
                for choice in choices:
                    self._skip(collection, project_id, choice.file, choice.where, [orphan])
        entries = list(self._entries.values())
        for entry in entries:
            self._choose(entry)
        for entry in entries:
            if entry.outcome is Outcome.SKIPPED:
                continue
            owner, reason = await self._owners.resolve(entry)
            if owner is None:
                self._skip(
                    "projects", entry.id, entry.file, entry.where, [Problem("user_id", reason)]
                )
                entry.outcome = Outcome.SKIPPED
                continue
            entry.resolved = owner
            entry.checksum = digest(
                {
                    "owner": owner,
                    "project": entry.digest,
                    "timeline": entry.timeline.digest if entry.timeline else None,
                    "transcript": entry.transcript.digest if entry.transcript else None,
                }
            )
        candidates = [entry for entry in entries if entry.checksum is not None]
        stored = await self._repository.imported([entry.id for entry in candidates])
        for entry in candidates:
            existing = stored.get(entry.id)
            if existing is None:
                continue
            checksum = (existing.get("legacyImport") or {}).get("checksum")
            if checksum == entry.checksum:
                entry.outcome = Outcome.PRESENT
                continue
            if self._options.overwrite:
                entry.outcome = Outcome.OVERWRITE
                continue
            entry.outcome = Outcome.CONFLICT
            if checksum is None:
                why = "a project with this id exists and was not imported from legacy data"
            elif existing.get("userId") != entry.resolved:
                why = (
                    f"imported before for owner {existing.get('userId')} (this run gives it "
                    f"to {entry.resolved}); pass --overwrite to replace it"
                )
            else:
                why = (
                    "imported before from a different record (the file's content differs "
                    "from what was imported); pass --overwrite to replace it"
                )
            self.report.conflicts.append(ConflictEntry(entry.id, entry.file, entry.where, why))
        for entry in entries:
            self._count(entry)

    def _choose(self, entry: Entry) -> None:
        """The newest timeline and the first transcription; the rest is skipped."""
        counts = self.report.counts
        if entry.timelines:
            newest = max(entry.timelines, key=lambda choice: (choice.rank, choice.key))
            entry.timeline = newest
            for choice in entry.timelines:
                if choice is not newest:
                    counts["timelines"].skipped += 1
                    version = f"version {choice.rank[1]}" if choice.rank[1] else "an older one"
                    self._skip(
                        "timelines",
                        entry.id,
                        choice.file,
                        choice.where,
                        [Problem("version", f"{version}; only the newest is imported")],
                    )
        if entry.transcripts:
            entry.transcript = entry.transcripts[0]
            for choice in entry.transcripts[1:]:
                counts["transcripts"].skipped += 1
                self._skip(
                    "transcripts",
                    entry.id,
                    choice.file,
                    choice.where,
                    [Problem("project_id", "another transcription of this project was read first")],
                )
        for collection, chosen in (
            ("timelines", entry.timeline),
            ("transcripts", entry.transcript),
        ):
            if chosen is not None and chosen.problems:
                self._skip(collection, entry.id, chosen.file, chosen.where, chosen.problems)
                entry.outcome = Outcome.SKIPPED
        transcript = entry.transcript
        if transcript is not None and not transcript.problems and entry.duration is not None:
            problem = too_long(transcript.last_end, entry.duration)
            if problem is not None:
                self._skip("transcripts", entry.id, transcript.file, transcript.where, [problem])
                entry.outcome = Outcome.SKIPPED

    def _count(self, entry: Entry) -> None:
        counts = self.report.counts
        column = {
            Outcome.NEW: "imported",
            Outcome.OVERWRITE: "imported",
            Outcome.PRESENT: "present",
            Outcome.CONFLICT: "conflicts",
            Outcome.SKIPPED: "skipped",
        }[entry.outcome]
        for collection, present in (
            ("projects", True),
            ("timelines", entry.timeline is not None),
            ("transcripts", entry.transcript is not None),
        ):
            if present:
                counts_of = counts[collection]
                setattr(counts_of, column, getattr(counts_of, column) + 1)
        if entry.writes and entry.transcript is not None:
            self.report.words += entry.transcript.words

    # --- pass 2: write -------------------------------------------------------------------

    async def _write(self, files: list[LegacyFile]) -> None:
        writing = [entry for entry in self._entries.values() if entry.writes]
        if not writing:
            return
        self._index_choices()
        projects = ProjectRepository(self._db)
        for entry in writing:
            if entry.outcome is Outcome.OVERWRITE:
                # What the project owns goes first (the purge's order); its document stays
                # (with the old checksum) until the new one replaces it, so a run killed in
                # between leaves a conflict the next --overwrite run finishes.
                await projects.purge(entry.id, PURGED)
        writer = _Writer(self, self._options.batch)
        export_files = [(n, f) for n, f in enumerate(files) if f.shape is Shape.EXPORT]
        self._progress.start("write transcripts", None)
        for file_no, legacy in export_files:
            for index, _key, value in legacy.records(Section.TRANSCRIPTIONS):
                owner = self._chosen((file_no, Section.TRANSCRIPTIONS.value, index), "transcript")
                if owner is not None:
                    _project_id, part = export_transcript(value)
                    await writer.transcript(owner, part)
        self._progress.start("write timelines", None)
        for file_no, legacy in export_files:
            for index, _key, value in legacy.records(Section.TIMELINES):
                owner = self._chosen((file_no, Section.TIMELINES.value, index), "timeline")
                if owner is not None:
                    _project_id, timeline = export_timeline(value, max_bytes=self._max_bytes)
                    await writer.timeline(owner, timeline)
        self._progress.start("write projects", len(writing))
        for file_no, legacy in enumerate(files):
            section = Section.PROJECTS if legacy.shape is Shape.EXPORT else Section.STORE
            for index, key, value in legacy.records(section):
                found = self._entries.get(_id_of(value, key) or "")
                if found is None or found.key != (file_no, section.value, index):
                    continue
                if not found.writes:
                    continue
                record = project_record(value, key=key)
                if section is Section.STORE:
                    await self._write_embedded(writer, found, value)
                await writer.project(found, record)
        await writer.flush()

    def _chosen(self, key: RecordKey, kind: str) -> Entry | None:
        """The entry whose chosen timeline/transcript is the record at `key`, if written."""
        return self._chosen_by_key.get((key, kind))

    def _index_choices(self) -> None:
        self._chosen_by_key = {}
        for entry in self._entries.values():
            if not entry.writes:
                continue
            if entry.timeline is not None:
                self._chosen_by_key[(entry.timeline.key, "timeline")] = entry
            if entry.transcript is not None:
                self._chosen_by_key[(entry.transcript.key, "transcript")] = entry

    async def _write_embedded(self, writer: _Writer, entry: Entry, value: dict[str, Any]) -> None:
        if entry.transcript is not None and entry.transcript.key == entry.key:
            transcript = store_transcript(value.get("transcript_state"))
            assert transcript is not None
            await writer.transcript(entry, transcript)
        if entry.timeline is not None and entry.timeline.key == entry.key:
            await writer.timeline(
                entry, timeline_part(value["timeline_state"], max_bytes=self._max_bytes)
            )

    # --- documents -----------------------------------------------------------------------

    def transcript_documents(
        self, entry: Entry, part: TranscriptPart
    ) -> Iterator[tuple[str, Document]]:
        _same(entry, entry.transcript, part.digest)
        owner = entry.resolved
        assert owner is not None
        buckets = list(self._bucketing.buckets(entry.id, owner, part.generation, part.segments))
        for bucket in buckets:
            yield BUCKETS, bucket
        at = part.at or entry.updated_at
        yield HEADERS, part.header(entry.id, owner, buckets=len(buckets), at=at)

    def timeline_documents(
        self, entry: Entry, part: TimelinePart
    ) -> Iterator[tuple[str, Document]]:
        """Revision 1 (and its snapshot when every version has one) and the head, as the
        timeline service's first save stores them (`_write`, `commit`)."""
        _same(entry, entry.timeline, part.digest)
        owner = entry.resolved
        assert owner is not None
        at = part.at or entry.updated_at
        forward, inverse = diff(EMPTY_STATE, part.state)
        yield (
            REVISIONS,
            {
                "_id": versioned_id(entry.id, 1),
                "projectId": entry.id,
                "version": 1,
                "kind": RevisionKind.IMPORT.value,
                "label": part.label,
                "authorId": owner,
                "requestId": None,
                "createdAt": at,
                "patch": forward,
                "inverse": inverse,
                "opCount": len(forward),
            },
        )
        if 1 % self._settings.timeline_snapshot_every == 0:
            yield (
                SNAPSHOTS,
                {
                    "_id": versioned_id(entry.id, 1),
                    "projectId": entry.id,
                    "version": 1,
                    "state": part.state,
                    "createdAt": at,
                },
            )
        yield (
            HEADS,
            {
                "_id": entry.id,
                "projectId": entry.id,
                "userId": owner,
                "version": 1,
                "state": part.state,
                "undoStack": [1],
                "redoStack": [],
                "recent": [],
                "updatedAt": at,
            },
        )

    def project_documents(
        self, entry: Entry, record: ProjectRecord
    ) -> Iterator[tuple[str, Document]]:
        if record.digest != entry.digest:
            raise LegacyImportError(f"{entry.file} changed while it was being imported; run again")
        owner, checksum = entry.resolved, entry.checksum
        assert owner is not None
        assert checksum is not None
        audit = audit_document(
            IMPORTER,
            at=utc_now_ms(),
            action=ACTION,
            entity="project",
            entity_id=entry.id,
            owner_id=owner,
            version=1,
            summary={"checksum": checksum[:16], "overwrite": entry.outcome is Outcome.OVERWRITE},
        )
        # One entry per imported content: a re-run that finishes a killed one adds none.
        audit["_id"] = f"legacy-import:{entry.id}:{checksum[:16]}"
        yield AUDIT, audit
        yield PROJECTS, record.document(owner, checksum)

    async def written(self, projects: list[Entry], raced: list[Document]) -> None:
        """After a batch: the caches, the progress bar, and projects another writer stored
        first under the same id (reported as conflicts, not overwritten)."""
        lost = {doc["_id"] for doc in raced}
        for entry in projects:
            if entry.id in lost:
                self._lost_race(entry)
        for owner in sorted({entry.resolved for entry in projects if entry.resolved}):
            await self._cache.invalidate_pages(CACHED_LIST, owner)
        for entry in projects:
            if entry.outcome is Outcome.OVERWRITE:
                await self._cache.forget(CACHED_PROJECT, entry.id)
                await self._cache.forget(CACHED_TIMELINE, entry.id)
        self._progress.advance(len(projects))

    def _lost_race(self, entry: Entry) -> None:
        self._uncount(entry)
        entry.outcome = Outcome.CONFLICT
        self._count(entry)
        self.report.conflicts.append(
            ConflictEntry(
                entry.id, entry.file, entry.where, "created by another writer during the import"
            )
        )

    def _uncount(self, entry: Entry) -> None:
        counts = self.report.counts
        for collection, present in (
            ("projects", True),
            ("timelines", entry.timeline is not None),
            ("transcripts", entry.transcript is not None),
        ):
            if present:
                counts[collection].imported -= 1
        if entry.transcript is not None:
            self.report.words -= entry.transcript.words


class _Writer:
    """Buffers documents and stores them in `WRITE_ORDER`, a batch at a time."""

    def __init__(self, importer: Importer, batch: int) -> None:
        self._importer = importer
        self._repository = importer._repository
        self._batch = batch
        self._buffers: dict[str, list[Document]] = {name: [] for name in WRITE_ORDER}
        self._replace: set[str] = set()
        self._units = 0
        self._projects: list[Entry] = []

    async def transcript(self, entry: Entry, part: TranscriptPart) -> None:
        await self._add(entry, self._importer.transcript_documents(entry, part))

    async def timeline(self, entry: Entry, part: TimelinePart) -> None:
        await self._add(entry, self._importer.timeline_documents(entry, part))

    async def project(self, entry: Entry, record: ProjectRecord) -> None:
        self._projects.append(entry)
        if entry.outcome is Outcome.OVERWRITE:
            self._replace.add(entry.id)
        await self._add(entry, self._importer.project_documents(entry, record))

    async def _add(self, entry: Entry, documents: Iterator[tuple[str, Document]]) -> None:
        for collection, document in documents:
            self._buffers[collection].append(document)
        self._units += 1
        if self._units >= self._batch or len(self._buffers[BUCKETS]) >= 4 * self._batch:
            await self.flush()

    async def flush(self) -> None:
        raced: list[Document] = []
        for collection in WRITE_ORDER:
            documents = self._buffers[collection]
            if documents:
                replace = self._replace if collection == PROJECTS else set()
                raced += await self._repository.write(collection, documents, replace=replace)
                self._buffers[collection] = []
        projects, self._projects, self._units = self._projects, [], 0
        self._replace = set()
        await self._importer.written(projects, raced)


def _transcript_choice(key: RecordKey, file: str, where: str, part: TranscriptPart) -> Choice:
    return Choice(key, file, where, part.digest, [], last_end=part.last_end, words=part.words)


def _same(entry: Entry, choice: Choice | None, found: str) -> None:
    if choice is None or choice.digest != found:
        raise LegacyImportError(f"{entry.file} changed while it was being imported; run again")


def _id_of(value: Any, key: str | None) -> str | None:
    if not isinstance(value, dict):
        return key
    return record_id(value.get("_id")) or record_id(value.get("id")) or key


def _ignore(_count: int) -> None:
    pass


__all__ = ["Importer", "LegacyFileError", "LegacyImportError", "OptionError", "Options"]
