"""`/transcriptions/{project_id}` as the original API served it, over `TranscriptService`.

- `language`; `speakers {id: name}` <-> `speakers [{id, label}]` (in order);
- `model_used`, `processing_time`, `confidence_score`, `is_complete`, `is_edited`,
  `speaker_count` <-> `metadata` {model, processingTimeSec, confidence, complete, edited,
  speakerCount};
- a segment's `id`, `start_time`, `end_time`, `text`, `speaker_id`, `confidence`,
  `is_edited`, `edited_text` <-> `id`, `start`, `end`, `text`, `speaker`, `confidence`,
  `isEdited`, `editedText`;
- a word's `text`, `start`, `end`, `confidence`, `is_filler`, `speaker_id` <-> `text`,
  `start`, `end`, `confidence`, `isFiller`, `speaker`.

A PUT replaces what it sends (non-null fields) and keeps the rest of the current
transcript, like the original's partial update; it is one upload (a new version) either way.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Depends

from snipix.api.answers import errors
from snipix.api.compat.common import with_one_retry
from snipix.api.envelope import success
from snipix.api.identity import ActorDep
from snipix.api.parameters import ProjectId
from snipix.api.query_guard import reject_unsafe_query
from snipix.api.routes.transcripts import ServiceDep as TranscriptServiceDep
from snipix.auth.actor import Actor
from snipix.compat.transcriptions import (
    CompatTranscription,
    Transcript,
    transcript_upload,
    transcription_document,
)
from snipix.errors import Conflict, NotFound
from snipix.transcripts.schemas import (
    SegmentCursor,
    StoredSegment,
)
from snipix.transcripts.service import TranscriptService
from snipix.wire.pages import decode_cursor

# Segments read per page when the whole transcript is assembled.
PAGE: Final = 500


async def read_transcript(service: TranscriptService, actor: Actor, project_id: str) -> Transcript:
    """The header and all segments of one version (404 without a transcript)."""
    for _attempt in range(2):
        header = await service.header(actor, project_id)
        segments: list[StoredSegment] = []
        cursor: SegmentCursor | None = None
        consistent = True
        while True:
            window = await service.page(actor, project_id, limit=PAGE, cursor=cursor)
            if window.version != header.version:
                consistent = False  # replaced while it was read: read it again
                break
            segments += window.items
            if window.next_cursor is None:
                break
            cursor = decode_cursor(window.next_cursor, SegmentCursor)
        if consistent:
            return Transcript(header, segments)
    raise Conflict("The transcript is being replaced; retry in a moment.")


router = APIRouter(
    prefix="/transcriptions",
    tags=["original web app"],
    dependencies=[Depends(reject_unsafe_query)],
    responses=errors(
        401,
        say={
            404: "No such project for this user, or it has no transcription.",
            409: "The transcription is being replaced; retry in a moment.",
        },
        compat=True,
    ),
)


@router.get("/{project_id}")
async def get_transcription(
    project_id: ProjectId, actor: ActorDep, service: TranscriptServiceDep
) -> dict[str, Any]:
    """The project's transcription; 404 when it has none."""
    transcript = await read_transcript(service, actor, project_id)
    return success(transcription_document(transcript), "Transcription retrieved successfully")


@router.put(
    "/{project_id}",
    responses=errors(
        401,
        404,
        412,
        say={409: "The transcription is being replaced; retry in a moment."},
        compat=True,
    ),
)
async def put_transcription(
    project_id: ProjectId,
    body: CompatTranscription,
    actor: ActorDep,
    service: TranscriptServiceDep,
) -> dict[str, Any]:
    """Create or change the transcription: the fields sent replace the current ones."""

    async def write() -> Transcript:
        current: Transcript | None
        try:
            if body.segments is None:
                current = await read_transcript(service, actor, project_id)
            else:
                current = Transcript(await service.header(actor, project_id), [])
        except NotFound:
            current = None
        upload = transcript_upload(body, current)
        expected = current.header.version if current is not None else 0
        header = await service.upload(actor, project_id, upload, expected=expected)
        stored = [
            StoredSegment.model_validate(
                {**segment.model_dump(by_alias=False), "text": segment.text or ""}
            )
            for segment in upload.segments
        ]
        return Transcript(header, stored)

    transcript = await with_one_retry(write)
    return success(transcription_document(transcript), "Transcription updated successfully")


@router.delete("/{project_id}")
async def delete_transcription(
    project_id: ProjectId, actor: ActorDep, service: TranscriptServiceDep
) -> dict[str, Any]:
    """Delete the transcription; 404 when there is none (as the original answered)."""
    await service.header(actor, project_id)
    await service.delete(actor, project_id)
    return success(None, "Transcription deleted successfully")
