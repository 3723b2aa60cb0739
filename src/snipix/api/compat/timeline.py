"""`/timeline` as the original web app calls it, over `TimelineService`.

Every version of the original API is a version of the one timeline history `/api/v1`
keeps: a save here is a full-state save (a revision `/api/v1/.../timeline/history` lists
and `/undo` can undo), a restore is a rollback. A version in the original shape, a
`TimelineStateDocument`: `_id` (`<projectId>:<version>`), `project_id`, `version`,
`is_current`, `description`, `created_by`, `change_summary`, `created_at`, `updated_at`,
`timeline_state` (see `timeline_mapping`).

`description` and `change_summary` travel in the revision's label, one per line
(`"Quick Save\\nTimeline saved via quick save"`), which `/api/v1` shows as it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Query

from snipix.api.answers import errors
from snipix.api.compat.common import with_one_retry
from snipix.api.envelope import success
from snipix.api.identity import ActorDep
from snipix.api.parameters import ProjectId
from snipix.api.query_guard import reject_unsafe_query
from snipix.api.routes.timelines import ServiceDep as TimelineServiceDep
from snipix.auth.actor import Actor
from snipix.compat.timeline import (
    CompatTimelineSave,
    label_notes,
    revision_label,
    timeline_document,
)
from snipix.compat.timeline_mapping import to_state
from snipix.timelines.schemas import HistoryCursor, Revision, TimelineState
from snipix.timelines.service import TimelineService
from snipix.wire.versions import MAX_VERSION

# The original backend's history page size, and a bound: each listed version carries its
# whole state, rebuilt from a snapshot and at most SNIPIX_TIMELINE_SNAPSHOT_EVERY patches.
DEFAULT_HISTORY: Final = 20
MAX_HISTORY: Final = 100


async def _revision(
    service: TimelineService, actor: Actor, project_id: str, version: int
) -> Revision | None:
    """The revision that made `version` (None for version 0, the empty timeline)."""
    if version < 1:
        return None
    page = await service.history(actor, project_id, limit=1, cursor=HistoryCursor(v=version + 1))
    return page.items[0] if page.items and page.items[0].version == version else None


async def _head_version(service: TimelineService, actor: Actor, project_id: str) -> int:
    page = await service.history(actor, project_id, limit=1, cursor=None)
    return page.items[0].version if page.items else 0


async def _document(
    service: TimelineService,
    actor: Actor,
    project_id: str,
    version: int,
    state: TimelineState,
    *,
    is_current: bool,
) -> dict[str, Any]:
    revision = await _revision(service, actor, project_id, version)
    if revision is not None:
        return timeline_document(
            project_id,
            version,
            state,
            is_current=is_current,
            label=revision.label,
            created_by=revision.author_id,
            created_at=revision.created_at,
        )
    # Version 0: the empty timeline every project starts with.
    project = await service.project(actor, project_id)
    return timeline_document(
        project_id,
        version,
        state,
        is_current=is_current,
        label=None,
        created_by=project.user_id,
        created_at=project.created_at,
    )


router = APIRouter(
    prefix="/timeline",
    tags=["original web app"],
    dependencies=[Depends(reject_unsafe_query)],
    responses=errors(
        401,
        say={
            404: "No such project (or version) for this user.",
            409: "The history cannot rebuild a version.",
        },
        compat=True,
    ),
)
_WRITE = errors(
    401,
    412,
    say={
        404: "No such project (or version) for this user.",
        409: "Another save of this timeline is in progress; retry.",
        413: "The state exceeds SNIPIX_TIMELINE_MAX_BYTES.",
    },
    compat=True,
)
Version = Annotated[
    int, Path(ge=0, le=MAX_VERSION, description="A version of the project's timeline.")
]


@router.post("/", responses=_WRITE)
@router.post("", include_in_schema=False)
async def save_timeline(
    body: CompatTimelineSave, actor: ActorDep, service: TimelineServiceDep
) -> dict[str, Any]:
    """Save the whole timeline as a new version (undoable through `/api/v1`)."""
    label = revision_label(body.description, body.change_summary)

    async def write() -> tuple[int, TimelineState, datetime | None]:
        current = await service.get(actor, body.project_id)
        state = to_state(body.timeline_state, base=current.state)
        saved = await service.save(
            actor, body.project_id, state, expected=current.version, label=label
        )
        return saved.version, saved.state, saved.updated_at

    version, state, at = await with_one_retry(write)
    document = timeline_document(
        body.project_id,
        version,
        state,
        is_current=True,
        label=label,
        created_by=actor.user_id,
        created_at=at,
    )
    return success(document, "Timeline state saved successfully")


@router.get("/{project_id}")
async def get_timeline(
    project_id: ProjectId, actor: ActorDep, service: TimelineServiceDep
) -> dict[str, Any]:
    """The current version; a project never saved has the empty timeline, version 0."""
    timeline = await service.get(actor, project_id)
    document = await _document(
        service, actor, project_id, timeline.version, timeline.state, is_current=True
    )
    return success(document, "Timeline state retrieved successfully")


@router.get("/{project_id}/history")
async def timeline_history(
    project_id: ProjectId,
    actor: ActorDep,
    service: TimelineServiceDep,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = DEFAULT_HISTORY,
    skip: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> dict[str, Any]:
    """Versions, newest first, each with its state."""
    head = await _head_version(service, actor, project_id)
    # Versions are 1..head without gaps, so `skip` is a version number, not a scan.
    before = head + 1 - skip
    revisions: list[Revision] = []
    if before > 1:
        page = await service.history(actor, project_id, limit=limit, cursor=HistoryCursor(v=before))
        revisions = page.items
    documents = []
    for revision in revisions:
        past = await service.version(actor, project_id, revision.version)
        documents.append(
            timeline_document(
                project_id,
                revision.version,
                past.state,
                is_current=revision.version == head,
                label=revision.label,
                created_by=revision.author_id,
                created_at=revision.created_at,
            )
        )
    return success(documents, f"Retrieved {len(documents)} timeline states from history")


@router.get("/{project_id}/version/{version}")
async def timeline_version(
    project_id: ProjectId, version: Version, actor: ActorDep, service: TimelineServiceDep
) -> dict[str, Any]:
    """One version as it was."""
    past = await service.version(actor, project_id, version)
    head = await _head_version(service, actor, project_id)
    document = await _document(
        service, actor, project_id, version, past.state, is_current=version == head
    )
    return success(document, f"Timeline state version {version} retrieved successfully")


@router.post("/{project_id}/restore/{version}", responses=_WRITE)
async def restore_timeline(
    project_id: ProjectId, version: Version, actor: ActorDep, service: TimelineServiceDep
) -> dict[str, Any]:
    """Make version `version` current again, as a new version (history is kept).

    Restoring the current version changes nothing: the web app restores the newest saved
    version every time it opens a project.
    """
    head = await _head_version(service, actor, project_id)
    if version == head:
        timeline = await service.get(actor, project_id)
        document = await _document(
            service, actor, project_id, timeline.version, timeline.state, is_current=True
        )
        return success(document, f"Timeline state version {version} is already current")
    target = await _revision(service, actor, project_id, version)
    description = label_notes(target.label)[0] if target is not None else None
    label = revision_label(description, f"Restored version {version}")
    timeline = await service.rollback(actor, project_id, version, expected=None, label=label)
    document = timeline_document(
        project_id,
        timeline.version,
        timeline.state,
        is_current=True,
        label=label,
        created_by=actor.user_id,
        created_at=timeline.updated_at,
    )
    return success(document, f"Timeline state version {version} restored successfully")
