"""The timeline rules: versions, patch autosave, idempotency, history, undo/redo.

A change to version v+1 is one update of the head document, conditioned on its version
still being v (a change committed first makes it fail: a stale `If-Match` then answers
412): `$set` on the changed paths, version v+1, the undo/redo stacks, and the revision
(forward patch and its computed inverse) appended to the head's `recent` list. That
update is the commit. Revisions are copied from `recent` into their own collection in
batches (every `STORE_EVERY` small changes, at once for large ones and with a due
snapshot), and a head keeps each until a later change knows it is there: readers of
history look in both places, and a crash after a commit loses nothing. One durable write
per change, plus one batch per several changes.

Undo applies the inverse of the revision on top of the undo stack as a new revision (and
moves it to the redo stack); redo re-applies its forward patch; any other change clears
the redo stack. The stacks live in the head, so they survive restarts and follow the
user to another device.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import posixpath
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from snipix.auth.actor import Actor
from snipix.cache.service import Cache, Loaded
from snipix.clock import Clock, to_millisecond, utc_now
from snipix.db.client import Document
from snipix.db.deferred import DeferredWrites
from snipix.errors import (
    Conflict,
    NotFound,
    PreconditionRequired,
    TooLarge,
    ValidationFailed,
    VersionMismatch,
)
from snipix.events.bus import Event, EventBus
from snipix.events.stream import revision_event
from snipix.projects.members import Role
from snipix.projects.schemas import Project
from snipix.projects.service import ProjectService
from snipix.timelines.interchange import (
    EDL_DEFAULT_FPS,
    Exported,
    Format,
    MediaFiles,
    export_timeline,
    import_timeline,
)
from snipix.timelines.patches import Operation, apply_patch, diff, mongo_update
from snipix.timelines.rebase import Concurrent, Rebased, rebase
from snipix.timelines.repository import TimelineRepository, versioned_id
from snipix.timelines.schemas import (
    HistoryCursor,
    ImportReport,
    Revision,
    RevisionKind,
    Timeline,
    TimelineState,
    TimelineVersion,
    state_document,
)
from snipix.wire.models import from_storage
from snipix.wire.pages import Page, encode_cursor
from snipix.wire.versions import Expected

log = structlog.get_logger(__name__)

STATE = "state"
UNDO_DEPTH = 100
# How long a save without a version check (`If-Match: *`) keeps retrying while other saves
# of the same timeline commit first, before a 409.
COMMIT_WAIT_S = 3.0
# Small revisions (autosaves, undo, redo) stay in the head's `recent` until this many are
# there, then go to their collection in one batch: a change costs one write, plus one
# batch per this many. Larger ones (whole-state saves, imports, rollbacks) are stored
# right after their commit, so the head (read by every change) stays small.
STORE_EVERY = 8
CARRIED_KINDS = frozenset({RevisionKind.PATCH, RevisionKind.UNDO, RevisionKind.REDO})
CARRIED_BYTES_MAX = 16 * 1024
# Revisions a head read from the database may carry before a change stores them before
# its commit (the database kept failing right after earlier commits).
RECENT_MAX = 32
# Heads this process committed last, kept to start the next change of the same timeline
# from (docs/decisions.md, "Timelines"): about 100 active editors per replica, each head a
# few tens of KB.
HEADS_KEPT = 512
# How many revisions a stale autosave may be merged over (SNIPIX_TIMELINE_MERGE_WINDOW).
DEFAULT_MERGE_WINDOW = 50
# Imports and exports in other formats at once per process (see `export_file`).
INTERCHANGE_THREADS = 2

EMPTY_STATE: dict[str, Any] = state_document(TimelineState())


def validated_state(document: Any, max_bytes: int) -> dict[str, Any]:
    """The normalised state, or 422 naming the problem (and 413 past the size limit).

    Public: the legacy import checks a timeline it stores by the same rules as a save."""
    size = len(json.dumps(document, separators=(",", ":")))
    if size > max_bytes:
        raise TooLarge(
            f"The timeline state is {size:,} bytes; the limit is {max_bytes:,} "
            "(SNIPIX_TIMELINE_MAX_BYTES). Split the project or remove unused clips."
        )
    try:
        return state_document(TimelineState.model_validate(document))
    except ValidationError as error:
        problems = [
            {
                "loc": ["state", *(str(part) for part in item["loc"])],
                "msg": item["msg"],
                "type": item["type"],
            }
            for item in error.errors(include_input=False, include_url=False)
        ]
        first = problems[0]
        where = ".".join(first["loc"])
        raise ValidationFailed(
            f"The resulting timeline is not valid: {where}: {first['msg']}. Nothing was saved.",
            details=problems,
        ) from None


def request_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Change:
    """What a change produces before it is written."""

    kind: RevisionKind
    after: dict[str, Any]
    forward: list[Operation]
    inverse: list[Operation]
    sets: dict[str, Any]
    unsets: list[str]
    label: str | None
    undo_stack: list[int]
    redo_stack: list[int]
    idempotency_key: str | None = None
    # The fingerprint of the keyed request, so a repeat with other content is told apart.
    request_hash: str | None = None


class MergeConflict(VersionMismatch):
    """A stale autosave that could not be merged: 412 as any stale `If-Match`, naming
    what collided so the editor can show it."""

    def __init__(
        self, message: str, *, current_version: int, base_version: int, clashes: list[Any]
    ) -> None:
        super().__init__(message, current_version=current_version)
        self.details = {
            "currentVersion": current_version,
            "baseVersion": base_version,
            "conflicts": clashes,
        }


@dataclass(frozen=True, slots=True)
class Keyed:
    """An autosave sent with an Idempotency-Key: the key (scoped to the project) and the
    fingerprint of what the request asked for."""

    key_id: str
    fingerprint: str


def _replacing(after: dict[str, Any], kind: RevisionKind, label: str | None) -> Planner:
    """A change to a whole new state (full saves, imports, rollbacks): the revision
    stores the diff both ways, the head is set whole."""

    async def plan(
        current: dict[str, Any], undo: list[int], redo: list[int], version: int
    ) -> Change:
        forward, inverse = diff(current, after)
        return Change(
            kind=kind,
            after=after,
            forward=forward,
            inverse=inverse,
            sets={STATE: after},
            unsets=[],
            label=label,
            undo_stack=[*undo, version + 1][-UNDO_DEPTH:],
            redo_stack=[],
        )

    return plan


# Given the current head (state, undo stack, redo stack) and version, what to write.
# The cache kind of current timeline states (fenced by the head version). Its name changes
# with the shape of a cached state, so no replica serves an entry in a shape it no longer
# writes (the tracks' and clips' `compat` block was `legacy`).
CACHED_TIMELINE = "timeline2"
Planner = Callable[[dict[str, Any], list[int], list[int], int], Coroutine[Any, Any, Change]]
# Test seam for crash tests: awaited after a change is planned, before its head commit.
BeforeCommit = Callable[[], Coroutine[Any, Any, None]]


class TimelineService:
    def __init__(
        self,
        timelines: TimelineRepository,
        projects: ProjectService,
        cache: Cache,
        *,
        max_bytes: int,
        snapshot_every: int,
        before_commit: BeforeCommit | None = None,
        deferred: DeferredWrites | None = None,
        clock: Clock = utc_now,
        events: EventBus | None = None,
        merge_window: int = DEFAULT_MERGE_WINDOW,
    ) -> None:
        self._timelines = timelines
        # Each committed revision is published to the project's live event streams.
        self._events = events if events is not None else EventBus.unobserved()
        self._projects = projects
        self._cache = cache
        self._max_bytes = max_bytes
        self._snapshot_every = snapshot_every
        # A patch whose If-Match is at most this many versions behind is merged over the
        # revisions in between when it touches nothing they touched (timelines/rebase.py).
        self._merge_window = merge_window
        # Revisions and heads are stamped by this clock.
        self._clock = clock
        self._before_commit = before_commit
        self._deferred = deferred if deferred is not None else DeferredWrites()
        # The head each recent change of this process committed, by project, with `recent`
        # holding only the revisions not yet stored: the next change starts from it instead
        # of reading the head again. Its commit is conditioned on the head still being at
        # that version and time, so a head another writer moved on makes the commit fail
        # and the loop read the head afresh.
        self._committed_heads: OrderedDict[str, Document] = OrderedDict()
        # Interchange runs in worker threads; at most this many at once, so a burst of
        # large exports leaves the default pool to the others (media, cache).
        self._interchange = asyncio.Semaphore(INTERCHANGE_THREADS)

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    async def project(self, actor: Actor, project_id: str) -> Project:
        """The owner's live project (404 otherwise): every timeline route checks it first."""
        return await self._projects.get(actor, project_id)

    # --- reads ----------------------------------------------------------------------------

    async def get(self, actor: Actor, project_id: str) -> Timeline:
        """The current state, through the cache (keyed by project, fenced by version)."""
        found = await self.get_serialized(actor, project_id)
        return Timeline.model_validate(orjson.loads(found.payload))

    async def get_serialized(self, actor: Actor, project_id: str) -> Loaded:
        """The current state's version and JSON as the API answers it (sent as is)."""
        # Cached under the project's owner, whoever reads it (owner or member).
        owner_id = (await self._projects.access(actor, project_id)).owner_id

        async def load() -> Loaded:
            timeline = self._timeline(project_id, await self._timelines.current(project_id))
            return Loaded(timeline.version, timeline.model_dump_json().encode())

        found = await self._cache.entity(CACHED_TIMELINE, project_id, owner_id, load)
        if found is None:
            # Cached for another owner: the project was checked above, so only a project
            # that changed hands (never, today) gets here.
            raise NotFound(f"Project {project_id} was not found.")
        return found

    def _timeline(self, project_id: str, head: Document | None) -> Timeline:
        if head is None or head["version"] == 0:
            state = TimelineState()
            return Timeline(
                project_id=project_id, version=0, state=state, duration_sec=0.0, updated_at=None
            )
        with from_storage():
            state = TimelineState.model_validate(head[STATE])
        return Timeline(
            project_id=project_id,
            version=head["version"],
            state=state,
            duration_sec=state.duration_sec,
            updated_at=head.get("updatedAt"),
            can_undo=bool(head.get("undoStack")),
            can_redo=bool(head.get("redoStack")),
        )

    async def version(self, actor: Actor, project_id: str, version: int) -> TimelineVersion:
        await self._projects.get(actor, project_id)
        head = await self._timelines.head_version(project_id)
        current = head["version"] if head is not None else 0
        if version > current:
            raise NotFound(
                f"The timeline of project {project_id} has no version {version} "
                f"(its current version is {current})."
            )
        stored = await self._state_at(project_id, version, _recent(head))
        with from_storage():
            state = TimelineState.model_validate(stored)
        return TimelineVersion(
            project_id=project_id, version=version, state=state, duration_sec=state.duration_sec
        )

    async def _state_at(
        self, project_id: str, version: int, recent: list[Document]
    ) -> dict[str, Any]:
        """Rebuild version N: the nearest snapshot at or below it plus the patches after it
        (at most K when every snapshot was stored), from the revision collection and the
        head's not yet stored `recent` ones."""
        if version == 0:
            return dict(EMPTY_STATE)
        snapshot = await self._timelines.nearest_snapshot(project_id, version)
        base_version, state = (0, copy.deepcopy(EMPTY_STATE))
        if snapshot is not None:
            base_version, state = snapshot["version"], snapshot["state"]
        stored = await self._timelines.patches_between(project_id, base_version, version)
        revisions = _with_recent(stored, recent, after=base_version, upto=version)
        expected = list(range(base_version + 1, version + 1))
        if [revision["version"] for revision in revisions] != expected:
            raise Conflict(
                f"The history of project {project_id} is missing revisions between "
                f"{base_version} and {version}; it cannot be rebuilt."
            )
        # The snapshot was read for this rebuild alone: patch it in place, no copies.
        for revision in revisions:
            state = apply_patch(state, revision["patch"], in_place=True).document
        return state

    async def revisions_after(
        self, project_id: str, after: int, limit: int
    ) -> tuple[int, list[Event]]:
        """The head version and the revisions after `after` as live events, for an event
        stream whose access was checked; none when more than `limit` were missed (the
        client reloads instead). Reads only up to the head: never an uncommitted one; the
        head's `recent` revisions (not stored yet) included."""
        head = await self._timelines.head_version(project_id)
        current = head["version"] if head is not None else 0
        if current <= after or current - after > limit:
            return current, []
        stored = await self._timelines.revisions_after(project_id, after, current)
        docs = _with_recent(stored, _recent(head), after=after, upto=current)
        if [doc["version"] for doc in docs] != list(range(after + 1, current + 1)):
            raise Conflict(f"The history of project {project_id} is missing revisions.")
        return current, [
            revision_event(
                doc["version"],
                actor=doc["authorId"],
                kind=doc["kind"],
                label=doc.get("label"),
                patch=doc["patch"],
                at=doc.get("createdAt"),
            )
            for doc in docs
        ]

    async def history(
        self, actor: Actor, project_id: str, *, limit: int, cursor: HistoryCursor | None
    ) -> Page[Revision]:
        await self._projects.get(actor, project_id)
        head = await self._timelines.head_version(project_id)
        if head is None:
            return Page[Revision](items=[], next_cursor=None)
        undo, redo = head.get("undoStack") or [], head.get("redoStack") or []
        before = cursor.v if cursor is not None else None
        stored = await self._timelines.history(
            project_id, head_version=head["version"], before=before, limit=limit + 1
        )
        upper = head["version"] if before is None else min(before - 1, head["version"])
        docs = _with_recent(stored, _recent(head), after=0, upto=upper, newest_first=True)
        items = [
            Revision(
                version=doc["version"],
                kind=doc["kind"],
                label=doc.get("label"),
                author_id=doc["authorId"],
                created_at=doc["createdAt"],
                op_count=doc["opCount"],
                undoable=bool(undo) and undo[-1] == doc["version"],
                redoable=bool(redo) and redo[-1] == doc["version"],
            )
            for doc in docs[:limit]
        ]
        more = len(docs) > limit
        next_cursor = encode_cursor(HistoryCursor(v=items[-1].version)) if more else None
        return Page[Revision](items=items, next_cursor=next_cursor)

    # --- changes --------------------------------------------------------------------------

    async def save(
        self,
        actor: Actor,
        project_id: str,
        state: TimelineState,
        *,
        expected: Expected,
        label: str | None,
        kind: RevisionKind = RevisionKind.SAVE,
    ) -> Timeline:
        """A full-state save (also imports): the revision stores the computed diff."""
        if expected is None:
            raise PreconditionRequired(
                'Send If-Match with the timeline\'s ETag (or baseVersion; "0" before the '
                "first save) so this save cannot overwrite someone else's."
            )
        after = validated_state(state_document(state), self._max_bytes)

        return await self._change(actor, project_id, expected, _replacing(after, kind, label))

    async def patch(
        self,
        actor: Actor,
        project_id: str,
        operations: list[Operation],
        *,
        expected: Expected,
        label: str | None,
        idempotency_key: str | None = None,
    ) -> Timeline:
        """Autosave: a JSON Patch applied to the current state; the result is validated.

        A stale `If-Match` within the merge window is merged over the revisions saved
        since, when the patch touches nothing they touched; the answer then says which
        versions it was merged over (`Timeline.merged_over`), also when replayed.
        """
        if expected is None:
            raise PreconditionRequired(
                "Send If-Match with the timeline's ETag (or baseVersion) so this change "
                "applies to the state it was made on."
            )
        if not operations:
            # Nothing to apply: no revision (undo would have nothing to undo), the current
            # state as the answer, under the same version check as any change.
            current = await self.get(actor, project_id)
            _check_expected(expected, current.version)
            return current
        if idempotency_key is None:
            timeline = await self._change(
                actor,
                project_id,
                expected,
                self._patch_plan(operations, label, project_id=project_id, expected=expected),
                merge_window=self._merge_window,
            )
        else:
            timeline = await self._idempotent(
                actor, project_id, operations, expected=expected, label=label, key=idempotency_key
            )
        # Committed at version N over a head at N - 1: anything between the client's
        # version and N - 1 was merged over (also true of a replayed first answer).
        if isinstance(expected, int) and timeline.version - 1 > expected:
            return timeline.merged(expected + 1, timeline.version - 1)
        return timeline

    def _patched(
        self,
        current: dict[str, Any],
        operations: list[Operation],
        *,
        kind: RevisionKind,
        label: str | None,
        undo_stack: list[int],
        redo_stack: list[int],
        key: Keyed | None = None,
    ) -> Change:
        """A change made by applying `operations`: validated, with its inverse and the
        minimal head update (patch autosaves, undo and redo alike)."""
        applied = apply_patch(current, operations)
        after = validated_state(applied.document, self._max_bytes)
        sets, unsets = mongo_update(STATE, applied.roots, after)
        return Change(
            kind=kind,
            after=after,
            forward=operations,
            inverse=applied.inverse,
            sets=sets,
            unsets=unsets,
            label=label,
            undo_stack=undo_stack[-UNDO_DEPTH:],
            redo_stack=redo_stack[-UNDO_DEPTH:],
            idempotency_key=key.key_id if key is not None else None,
            request_hash=key.fingerprint if key is not None else None,
        )

    def _patch_plan(
        self,
        operations: list[Operation],
        label: str | None,
        *,
        project_id: str,
        expected: Expected,
        key: Keyed | None = None,
    ) -> Planner:
        async def plan(
            current: dict[str, Any], undo: list[int], redo: list[int], version: int
        ) -> Change:
            # Stale, and `_change` let it through: merge it over the revisions since.
            base = expected if isinstance(expected, int) and expected < version else None
            applied = operations
            if base is not None:
                applied = await self._rebased(project_id, current, operations, base, version)
            try:
                return self._patched(
                    current,
                    applied,
                    kind=RevisionKind.PATCH,
                    label=label,
                    undo_stack=[*undo, version + 1],
                    redo_stack=[],
                    key=key,
                )
            except (ValidationFailed, Conflict) as error:
                if base is None:
                    raise
                # Valid on its own version, not on the merged one (two clips now overlap,
                # a test no longer holds): a conflict, not a bad patch.
                raise MergeConflict(
                    f"The timeline changed since version {base}; merged with the changes "
                    f"saved since (versions {base + 1}-{version}) it is not valid: "
                    f"{error.message} Reload it and apply your change again.",
                    current_version=version,
                    base_version=base,
                    clashes=[],
                ) from None

        return plan

    async def _rebased(
        self,
        project_id: str,
        current: dict[str, Any],
        operations: list[Operation],
        expected: int,
        version: int,
    ) -> list[Operation]:
        """`operations`, made on version `expected`, rebased onto `current` (version
        `version`), or 412 naming what collided.

        The revisions in between are in their collection or still in the head's `recent`:
        the head this process committed at `version` knows which, else the head is read
        before the collection (a revision a head no longer carries was stored first).
        """
        remembered = self._committed_heads.get(project_id)
        if remembered is None or remembered["version"] != version:
            remembered = await self._timelines.head_version(project_id)
        stored = await self._timelines.revisions_between(project_id, expected, version)
        revisions = _with_recent(stored, _recent(remembered), after=expected, upto=version)
        found = [revision["version"] for revision in revisions]
        result = (
            rebase(
                current,
                [
                    Concurrent(revision["version"], revision["patch"], revision["inverse"])
                    for revision in revisions
                ],
                operations,
            )
            if found == list(range(expected + 1, version + 1))
            else None
        )
        if isinstance(result, Rebased):
            log.info(
                "timeline patch merged",
                project_id=project_id,
                base_version=expected,
                version=version,
            )
            return result.operations
        reason = result.reason if result is not None else "the revisions in between are missing"
        raise MergeConflict(
            f"The timeline changed since version {expected}; it is now at version {version}. "
            f"Your change cannot be merged with versions {expected + 1}-{version}: {reason}. "
            "Reload it and apply your change again.",
            current_version=version,
            base_version=expected,
            clashes=[clash.as_json() for clash in result.clashes] if result is not None else [],
        )

    async def undo(self, actor: Actor, project_id: str, *, expected: Expected) -> Timeline:
        """Apply the inverse of the revision on top of the undo stack, as a new revision."""

        async def plan(
            current: dict[str, Any], undo: list[int], redo: list[int], version: int
        ) -> Change:
            if not undo:
                raise Conflict("There is nothing to undo.")
            target = await self._revision(project_id, undo[-1])
            return self._patched(
                current,
                target["inverse"],
                kind=RevisionKind.UNDO,
                label=f"Undo {target.get('label') or target['kind']} (version {undo[-1]})",
                undo_stack=undo[:-1],
                redo_stack=[*redo, undo[-1]],
            )

        return await self._change(actor, project_id, expected, plan)

    async def redo(self, actor: Actor, project_id: str, *, expected: Expected) -> Timeline:
        """Re-apply the revision on top of the redo stack, as a new revision."""

        async def plan(
            current: dict[str, Any], undo: list[int], redo: list[int], version: int
        ) -> Change:
            if not redo:
                raise Conflict("There is nothing to redo.")
            target = await self._revision(project_id, redo[-1])
            return self._patched(
                current,
                target["patch"],
                kind=RevisionKind.REDO,
                label=f"Redo {target.get('label') or target['kind']} (version {redo[-1]})",
                undo_stack=[*undo, version + 1],
                redo_stack=redo[:-1],
            )

        return await self._change(actor, project_id, expected, plan)

    # --- interchange -------------------------------------------------------------------

    async def export_file(
        self, actor: Actor, project_id: str, fmt: Format, *, version: int | None = None
    ) -> tuple[Exported, int]:
        """The current (or a given) version as a `fmt` file, and the version it is.

        The adapters are CPU-bound Python (XML, timeline walks): they run in a worker
        thread so a large timeline does not stall every other request on this process.
        """
        project = await self.project(actor, project_id)
        if version is None:
            current = await self.get(actor, project_id)
            state, at = current.state, current.version
        else:
            past = await self.version(actor, project_id, version)
            state, at = past.state, past.version
        async with self._interchange:
            exported = await asyncio.to_thread(
                export_timeline, state, name=project.name, fmt=fmt, media=media_files(project)
            )
        return exported, at

    async def import_file(
        self,
        actor: Actor,
        project_id: str,
        data: bytes,
        fmt: Format,
        *,
        expected: Expected,
        fps: float | None = None,
    ) -> ImportReport:
        """Replace the state with a `fmt` file's, as one undoable revision.

        Everything is read and validated before anything is written: a file that does not
        parse, or maps to an invalid state, changes nothing. `fps` is the rate an EDL's
        timecodes count in; by default the project's media rate, else 24 (the EDL
        adapter's own default).
        """
        project = await self._projects.get(actor, project_id, need=Role.EDITOR)
        if len(data) > self._max_bytes:
            raise TooLarge(
                f"The file is {len(data):,} bytes; the limit is {self._max_bytes:,} "
                "(SNIPIX_TIMELINE_MAX_BYTES)."
            )
        media = project.media
        rate = fps or (media.fps if media is not None and media.fps else None) or EDL_DEFAULT_FPS
        async with self._interchange:
            state, unmapped = await asyncio.to_thread(
                import_timeline, data, fmt=fmt, media=media_files(project), fps=rate
            )
        timeline = await self.save(
            actor,
            project_id,
            state,
            expected=expected,
            label=f"Import from {fmt.title}",
            kind=RevisionKind.IMPORT,
        )
        return ImportReport(timeline=timeline, unmapped=unmapped)

    async def rollback(
        self, actor: Actor, project_id: str, version: int, *, expected: Expected, label: str | None
    ) -> Timeline:
        """A new version equal to `version` (the owner only); history is never rewritten."""
        await self._projects.get(actor, project_id, need=Role.OWNER)
        head = await self._timelines.head_version(project_id)
        current = head["version"] if head is not None else 0
        if version > current:
            raise NotFound(f"The timeline of project {project_id} has no version {version}.")
        target = validated_state(
            await self._state_at(project_id, version, _recent(head)), self._max_bytes
        )

        plan = _replacing(target, RevisionKind.ROLLBACK, label or f"Rollback to version {version}")
        return await self._change(actor, project_id, expected, plan)

    async def _revision(self, project_id: str, version: int) -> Document:
        """One revision: from the head this process committed last, whose `recent` holds
        the ones not stored yet (undo's target is usually the latest change), else from
        its collection, else from the head in the database."""
        remembered = self._committed_heads.get(project_id)
        revision = next((r for r in _recent(remembered) if r["version"] == version), None)
        if revision is None:
            revision = await self._timelines.revision(project_id, version)
        if revision is None:
            head = await self._timelines.head_version(project_id)
            revision = next((r for r in _recent(head) if r["version"] == version), None)
        if revision is None:
            raise Conflict(f"Revision {version} of project {project_id} is missing.")
        return revision

    # --- the write path -------------------------------------------------------------------

    async def _change(
        self,
        actor: Actor,
        project_id: str,
        expected: Expected,
        plan: Planner,
        *,
        key: Keyed | None = None,
        merge_window: int = 0,
    ) -> Timeline:
        """Plan the change on the head, commit it in one conditional update, store its
        revision.

        The first attempt starts from the head this process committed last for the
        project, when it remembers one; a head moved on since only makes that commit fail
        and the loop read it afresh.

        `key`: the change's Idempotency-Key. Before each attempt the revisions up to the
        head just read (the head's own `recent` ones first) are searched for it: a repeat
        gets the first answer. The revision carries the key, and is committed with the
        head, so a change committed after that head was read moved the head: the commit
        fails and the loop searches again. A key can never be applied twice.
        """
        owner_id = (await self._projects.get(actor, project_id, need=Role.EDITOR)).user_id
        # Revisions an earlier commit could not store (the database failed right after it):
        # stored first, so the head this change writes need not carry them.
        await self._deferred.run_for(f"store:{project_id}:")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COMMIT_WAIT_S
        remembered = self._committed_heads.get(project_id)
        head: Document | None
        while True:
            if remembered is not None:
                head, remembered, from_memory = remembered, None, True
                if (
                    isinstance(expected, int)
                    and expected != head["version"]
                    and not _merges(expected, head["version"], merge_window)
                ):
                    # The client saw a version this process did not write: look it up.
                    # (One this head is a few versions past is merged; the commit checks
                    # that the head is still this one.)
                    continue
            else:
                head, from_memory = await self._timelines.head(project_id), False
            version = head["version"] if head is not None else 0
            now = to_millisecond(self._clock())
            if key is not None:
                first = await self._keyed_first(actor, project_id, key, head)
                if first is not None:
                    return await self._replay(actor, project_id, first)
            # A stale version within `merge_window` passes: the plan merges it.
            _check_expected(expected, version, merge_window=merge_window)
            carried = await self._unstored(project_id, head, known=from_memory)
            current = head[STATE] if head is not None else dict(EMPTY_STATE)
            undo = list(head.get("undoStack") or []) if head is not None else []
            redo = list(head.get("redoStack") or []) if head is not None else []
            change = await plan(current, undo, redo, version)
            revision = _revision_document(actor, project_id, version + 1, change, now)
            recent = [*carried, revision]
            if self._before_commit is not None:
                await self._before_commit()
            try:
                committed = await self._commit(
                    owner_id, project_id, head, change, recent, now, from_memory=from_memory
                )
            except BaseException:
                # Committed or not (a lost acknowledgement): no replica may serve or store
                # the state below this version any more.
                self._committed_heads.pop(project_id, None)
                await self._cache.invalidate(CACHED_TIMELINE, project_id, version + 1)
                raise
            if committed:
                break
            self._committed_heads.pop(project_id, None)
            if from_memory:
                continue
            # Another change was committed first: look again (a version check now fails).
            if loop.time() > deadline:
                raise Conflict(
                    "Other changes to this timeline keep being saved; retry in a moment."
                )
        committed_head: Document = {
            "_id": project_id,
            "projectId": project_id,
            "userId": head["userId"] if head is not None else owner_id,
            "version": version + 1,
            STATE: change.after,
            "undoStack": change.undo_stack,
            "redoStack": change.redo_stack,
            "updatedAt": now,
        }
        # The committed state is what every reader asks for next (the editor reopening,
        # a collaborator following the events): written through, not just invalidated.
        timeline = self._timeline(project_id, committed_head)
        await self._cache.replace(
            CACHED_TIMELINE,
            project_id,
            owner_id,
            timeline.version,
            lambda: timeline.model_dump_json().encode(),
        )
        snapshots: list[Document] = []
        if (version + 1) % self._snapshot_every == 0:
            snapshots.append(
                {
                    "_id": versioned_id(project_id, version + 1),
                    "projectId": project_id,
                    "version": version + 1,
                    "state": change.after,
                    "createdAt": now,
                }
            )
        keep = (
            not snapshots
            and len(recent) < STORE_EVERY
            and change.kind in CARRIED_KINDS
            and len(orjson.dumps([change.forward, change.inverse])) <= CARRIED_BYTES_MAX
        )
        stored = not keep and await self._store(project_id, version + 1, recent, snapshots)
        self._remember(project_id, {**committed_head, "recent": [] if stored else recent})
        log.info(
            "timeline saved",
            project_id=project_id,
            version=version + 1,
            kind=change.kind.value,
            ops=len(change.forward),
        )
        await self._events.publish(
            project_id,
            revision_event(
                version + 1,
                actor=actor.user_id,
                kind=change.kind.value,
                label=change.label,
                patch=change.forward,
                at=now,
            ),
        )
        return timeline

    async def _commit(
        self,
        owner_id: str,
        project_id: str,
        head: Document | None,
        change: Change,
        recent: list[Document],
        now: datetime,
        *,
        from_memory: bool,
    ) -> bool:
        """The head update that is the change (or the first head); False if another change
        was committed first."""
        if head is None:
            return await self._timelines.create_head(
                {
                    "_id": project_id,
                    "projectId": project_id,
                    "userId": owner_id,
                    "version": 1,
                    STATE: change.after,
                    "undoStack": change.undo_stack,
                    "redoStack": change.redo_stack,
                    "recent": recent,
                    "updatedAt": now,
                }
            )
        return await self._timelines.commit(
            project_id,
            head["version"],
            {
                **change.sets,
                "updatedAt": now,
                "undoStack": change.undo_stack,
                "redoStack": change.redo_stack,
            },
            change.unsets,
            recent,
            updated_at=head.get("updatedAt") if from_memory else None,
        )

    async def _unstored(
        self, project_id: str, head: Document | None, *, known: bool
    ) -> list[Document]:
        """The head's revisions that are not stored yet, to carry into the next head.

        A head this process committed knows (`known`): its `recent` holds only those. A head
        read from the database may carry revisions another writer has stored since: one
        read by `_id` tells. Past `RECENT_MAX` they are stored now instead of carried.
        """
        recent = _recent(head)
        if not recent:
            return []
        if not known:
            stored = await self._timelines.stored_versions(
                project_id, [revision["version"] for revision in recent]
            )
            recent = [revision for revision in recent if revision["version"] not in stored]
        if len(recent) >= RECENT_MAX:
            await self._timelines.store(recent, [])
            return []
        return recent

    async def _store(
        self, project_id: str, version: int, recent: list[Document], snapshots: list[Document]
    ) -> bool:
        """Copy the committed revisions into their collection; False if the database failed
        (the head still carries them: the change is saved, and the copy is retried)."""
        try:
            await self._timelines.store(recent, snapshots)
        except PyMongoError:
            log.warning("timeline revision not stored yet", project_id=project_id, version=version)

            async def store() -> None:
                await self._timelines.store(recent, snapshots)

            self._deferred.add(f"store:{project_id}:{version}", store)
            return False
        return True

    def _remember(self, project_id: str, head: Document) -> None:
        self._committed_heads[project_id] = head
        self._committed_heads.move_to_end(project_id)
        while len(self._committed_heads) > HEADS_KEPT:
            self._committed_heads.popitem(last=False)

    # --- idempotent autosave --------------------------------------------------------------

    async def _idempotent(
        self,
        actor: Actor,
        project_id: str,
        operations: list[Operation],
        *,
        expected: Expected,
        label: str | None,
        key: str,
    ) -> Timeline:
        """An autosave under an Idempotency-Key: the key is stored with the change itself
        (in its revision, committed with the head), so a keyed autosave costs the same
        writes as any other."""
        keyed = Keyed(
            key_id=f"timeline:{project_id}:{key}",
            fingerprint=request_hash({"ops": operations, "expected": expected, "label": label}),
        )
        # `_change` checks the owner before the key: a key another user sent on this
        # project must not tell them anything about it (404, as for every request on a
        # project not theirs).
        return await self._change(
            actor,
            project_id,
            expected,
            self._patch_plan(
                operations, label, project_id=project_id, expected=expected, key=keyed
            ),
            key=keyed,
            merge_window=self._merge_window,
        )

    async def _keyed_first(
        self, actor: Actor, project_id: str, key: Keyed, head: Document | None
    ) -> Document | None:
        """The first answer of a repeated keyed request, if its change is committed at or
        below `head`; 422 for another change under the same key."""
        if head is None or head["version"] == 0:
            return None
        first = next(
            (r for r in _recent(head) if r.get("idempotencyKey") == key.key_id), None
        ) or await self._timelines.revision_with_key(project_id, key.key_id, upto=head["version"])
        if first is None:
            return None
        _same_request(first.get("authorId"), first.get("requestHash"), actor, key)
        # A patch's answer: it can be undone, and it cleared the redo stack.
        return {
            "version": first["version"],
            "updatedAt": first["createdAt"],
            "canUndo": True,
            "canRedo": False,
        }

    async def _replay(self, actor: Actor, project_id: str, first: Document) -> Timeline:
        """The first result of a repeated request, as it was sent the first time."""
        past = await self.version(actor, project_id, first["version"])
        return Timeline(
            project_id=project_id,
            version=first["version"],
            state=past.state,
            duration_sec=past.duration_sec,
            updated_at=first.get("updatedAt"),
            can_undo=bool(first.get("canUndo")),
            can_redo=bool(first.get("canRedo")),
        )


def _recent(head: Document | None) -> list[Document]:
    """The revisions a head carries that may not be stored yet (oldest first)."""
    if head is None:
        return []
    recent = head.get("recent")
    return list(recent) if isinstance(recent, list) else []


def _with_recent(
    stored: list[Document],
    recent: list[Document],
    *,
    after: int,
    upto: int,
    newest_first: bool = False,
) -> list[Document]:
    """Stored revisions plus the head's `recent` ones in (after, upto], one per version."""
    by_version = {doc["version"]: doc for doc in stored}
    for revision in recent:
        if after < revision["version"] <= upto:
            by_version.setdefault(revision["version"], revision)
    return [by_version[v] for v in sorted(by_version, reverse=newest_first)]


def _revision_document(
    actor: Actor, project_id: str, version: int, change: Change, now: datetime
) -> Document:
    revision: Document = {
        "_id": versioned_id(project_id, version),
        "projectId": project_id,
        "version": version,
        "kind": change.kind.value,
        "label": change.label,
        "authorId": actor.user_id,
        "requestId": actor.request_id,
        "createdAt": now,
        "patch": change.forward,
        "inverse": change.inverse,
        "opCount": len(change.forward),
    }
    if change.idempotency_key is not None:
        revision["idempotencyKey"] = change.idempotency_key
        revision["requestHash"] = change.request_hash
    return revision


def _same_request(author: Any, fingerprint: Any, actor: Actor, key: Keyed) -> None:
    """422 when a key is repeated by another user or for another change. A revision from
    before fingerprints were stored (`None`) is taken as the same change."""
    if author != actor.user_id or fingerprint not in (None, key.fingerprint):
        raise ValidationFailed(
            "This Idempotency-Key was already used for a different change; "
            "use a new key for a new change."
        )


def _merges(expected: int, version: int, merge_window: int) -> bool:
    """Whether a change made on `expected` is merged at a head at `version`."""
    return 0 < version - expected <= merge_window


def _check_expected(expected: Expected, version: int, *, merge_window: int = 0) -> None:
    """412 when the client's `If-Match` version is not the current one (`*` matches any),
    unless it is at most `merge_window` versions behind (the change is then merged)."""
    if not isinstance(expected, int) or expected == version:
        return
    if _merges(expected, version, merge_window):
        return
    behind = version - expected
    beyond = (
        f" It is {behind} versions behind, more than a change is merged over ({merge_window})."
        if merge_window > 0 and behind > 0
        else ""
    )
    raise VersionMismatch(
        f"The timeline changed since version {expected}; it is now at version "
        f"{version}.{beyond} Reload it and apply your change again.",
        current_version=version,
    )


def media_files(project: Project) -> MediaFiles:
    """The project's files by name (its source, upload, trimmed render), for mapping the
    media paths of another editor's file to them and back."""
    media = project.media
    if media is None:
        return MediaFiles()
    references = [
        ref
        for ref in (media.source, media.source_file, media.trimmed_source, media.trimmed_file)
        if ref
    ]
    by_name: dict[str, str] = {}
    for ref in references:
        name = posixpath.basename(ref.replace("\\", "/").split("?")[0]).lower()
        if name:
            by_name.setdefault(name, ref)
    return MediaFiles(by_name=by_name, default=media.source or media.source_file)
