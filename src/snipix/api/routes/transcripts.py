"""HTTP for a project's transcript (`/api/v1/projects/{id}/transcript`) and the search
across a user's transcripts (`/api/v1/transcripts/search`): HTTP only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from snipix.api.answers import errors
from snipix.api.etags import IfMatchHeader, set_etag
from snipix.api.identity import ActorDep
from snipix.api.pagination import CursorParam, Limit
from snipix.api.parameters import ProjectId
from snipix.api.query_guard import reject_unsafe_query
from snipix.api.routes.timelines import ServiceDep as TimelineServiceDep
from snipix.errors import ValidationFailed
from snipix.resources import get_resources
from snipix.timelines.schemas import Timeline
from snipix.transcripts.schemas import (
    CutRequest,
    MergeSegment,
    SearchHit,
    SegmentCursor,
    SegmentEdit,
    SegmentWindow,
    SplitSegment,
    TranscriptHeader,
    TranscriptUpload,
)
from snipix.transcripts.service import TranscriptService, cut_operations
from snipix.wire.pages import DEFAULT_LIMIT, decode_cursor
from snipix.wire.versions import expected_version, parse_if_match


async def get_transcript_service(request: Request) -> TranscriptService:
    return get_resources(request).services.transcripts


ServiceDep = Annotated[TranscriptService, Depends(get_transcript_service)]
SegmentId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_:-]{1,120}$")]
SearchText = Annotated[str, Query(min_length=1, max_length=200, description="Words to find.")]

_ERRORS = errors(401, say={404: "No such project, transcript or segment."})
_WRITE = errors(
    412,
    428,
    say={
        # Merging the last segment, a timeline save in progress (cuts), and the
        # timeline's size limit (cuts).
        409: "Nothing to merge with, or a save in progress.",
        413: "Over SNIPIX_TRANSCRIPT_MAX_SEGMENTS / _MAX_WORDS (upload), or the "
        "cuts make the timeline too large.",
        422: "Invalid transcript or edit.",
    },
)

router = APIRouter(
    prefix="/api/v1/projects/{project_id}/transcript",
    tags=["transcript"],
    dependencies=[Depends(reject_unsafe_query)],
    responses=_ERRORS,
)
search_router = APIRouter(
    prefix="/api/v1/transcripts",
    tags=["transcript"],
    dependencies=[Depends(reject_unsafe_query)],
    responses=_ERRORS,
)


def _respond(response: Response, header: TranscriptHeader) -> TranscriptHeader:
    set_etag(response, header.version)
    return header


@router.put("", response_model=TranscriptHeader, responses=_WRITE)
async def upload_transcript(
    project_id: ProjectId,
    body: TranscriptUpload,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> TranscriptHeader:
    """Upload or replace the whole transcript (stored in bounded buckets, in batches)."""
    expected = expected_version(if_match, body.base_version)
    header = await service.upload(actor, project_id, body, expected=expected)
    return _respond(response, header)


@router.get("", response_model=TranscriptHeader)
async def get_transcript(
    project_id: ProjectId, actor: ActorDep, service: ServiceDep, response: Response
) -> TranscriptHeader:
    """Language, speakers, counts, duration and version (`ETag`)."""
    return _respond(response, await service.header(actor, project_id))


@router.get("/segments", response_model=SegmentWindow)
async def get_segments(
    project_id: ProjectId,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
    from_: Annotated[
        float | None, Query(alias="from", ge=0, description="Window start (s).")
    ] = None,
    to: Annotated[float | None, Query(gt=0, description="Window end (s).")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> SegmentWindow:
    """Segments overlapping a time window (`from`, `to`), or all of them in pages."""
    if (from_ is None) != (to is None):
        raise ValidationFailed("Send both `from` and `to` for a window, or neither for pages.")
    if from_ is not None and to is not None:
        window, buckets = await service.window(actor, project_id, from_, to)
        response.headers["X-Buckets-Read"] = str(buckets)
        set_etag(response, window.version)
        return window
    decoded = decode_cursor(cursor, SegmentCursor) if cursor is not None else None
    page = await service.page(actor, project_id, limit=limit, cursor=decoded)
    set_etag(response, page.version)
    return page


@router.patch("/segments/{segment_id}", response_model=TranscriptHeader, responses=_WRITE)
async def edit_segment(
    project_id: ProjectId,
    segment_id: SegmentId,
    body: SegmentEdit,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> TranscriptHeader:
    """Correct a segment's text, words or speaker (needs `If-Match`)."""
    expected = expected_version(if_match, body.base_version)
    header = await service.edit(actor, project_id, segment_id, body, expected=expected)
    return _respond(response, header)


@router.post("/segments/{segment_id}/split", response_model=TranscriptHeader, responses=_WRITE)
async def split_segment(
    project_id: ProjectId,
    segment_id: SegmentId,
    body: SplitSegment,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> TranscriptHeader:
    """Split a segment before one of its words."""
    expected = expected_version(if_match, body.base_version)
    header = await service.split(actor, project_id, segment_id, body.at_word, expected=expected)
    return _respond(response, header)


@router.post("/segments/{segment_id}/merge", response_model=TranscriptHeader, responses=_WRITE)
async def merge_segment(
    project_id: ProjectId,
    segment_id: SegmentId,
    body: MergeSegment,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> TranscriptHeader:
    """Merge a segment with the one after it."""
    expected = expected_version(if_match, body.base_version)
    header = await service.merge(actor, project_id, segment_id, expected=expected)
    return _respond(response, header)


@router.delete("", status_code=204)
async def delete_transcript(
    project_id: ProjectId, actor: ActorDep, service: ServiceDep
) -> Response:
    """Delete the transcript (the project stays)."""
    await service.delete(actor, project_id)
    return Response(status_code=204)


@router.get("/search", response_model=list[SearchHit])
async def search_project(
    project_id: ProjectId,
    q: SearchText,
    actor: ActorDep,
    service: ServiceDep,
    limit: Limit = DEFAULT_LIMIT,
) -> list[SearchHit]:
    """Segments of this transcript containing the words, with their times."""
    return await service.search(actor, q, project_id=project_id, limit=limit)


@router.post("/cuts", response_model=Timeline, responses=_WRITE)
async def cut_from_transcript(
    project_id: ProjectId,
    body: CutRequest,
    actor: ActorDep,
    service: ServiceDep,
    timelines: TimelineServiceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> Timeline:
    """Turn transcript ranges (or words) into timeline cuts: one undoable timeline revision.

    `If-Match` refers to the timeline's version; without it the cuts apply to the current one.
    """
    spans = await service.ranges_for(actor, project_id, body.ranges, body.word_ids)
    operations = cut_operations(spans, source="transcript")
    expected = parse_if_match(if_match)
    timeline = await timelines.patch(
        actor,
        project_id,
        operations,
        expected="*" if expected is None else expected,
        label=body.label or f"Cut {len(spans)} range(s) from the transcript",
    )
    set_etag(response, timeline.version)
    return timeline


@search_router.get("/search", response_model=list[SearchHit])
async def search_all(
    q: SearchText, actor: ActorDep, service: ServiceDep, limit: Limit = DEFAULT_LIMIT
) -> list[SearchHit]:
    """Segments containing the words across all of the caller's transcripts."""
    return await service.search(actor, q, project_id=None, limit=limit)
