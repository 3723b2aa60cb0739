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

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends
from pydantic import Field

from snipix.api.envelope import failure_responses, success
from snipix.api.identity import ActorDep
from snipix.api.query_guard import reject_unsafe_query
from snipix.auth.actor import Actor
from snipix.compat.common import OriginalRequest, checked, iso, with_one_retry
from snipix.errors import Conflict, NotFound
from snipix.transcripts.endpoints import ProjectId
from snipix.transcripts.endpoints import ServiceDep as TranscriptServiceDep
from snipix.transcripts.schemas import (
    MAX_SEGMENT_WORDS,
    MAX_SPEAKERS,
    SegmentCursor,
    StoredSegment,
    TranscriptHeader,
    TranscriptUpload,
)
from snipix.transcripts.service import TranscriptService
from snipix.wire.pages import decode_cursor

# Segments read per page when the whole transcript is assembled.
PAGE: Final = 500
# The transcript's `metadata` fields -> the original transcription's.
_METADATA_NAMES: Final = {
    "model": "model_used",
    "processing_time_sec": "processing_time",
    "confidence": "confidence_score",
    "complete": "is_complete",
    "edited": "is_edited",
    "speaker_count": "speaker_count",
}


def _original_names(loc: list[str]) -> list[str]:
    """A validation error's location in the original field names."""
    renamed = ["speaker_id" if part == "speaker" else part for part in loc]
    if len(renamed) == 3 and renamed[0] == "segments" and renamed[2] in {"start", "end"}:
        renamed[2] += "_time"
    if renamed[:1] == ["metadata"] and len(renamed) > 1:
        renamed = [_METADATA_NAMES.get(renamed[1], renamed[1]), *renamed[2:]]
    return renamed


# Bounded like the transcript fields they map to: refused when the body is read.
SpeakerId = Annotated[str, Field(max_length=100)]
SegmentText = Annotated[str, Field(max_length=20_000)]
ShortText = Annotated[str, Field(max_length=200)]


class OriginalWord(OriginalRequest):
    text: ShortText
    start: float
    end: float
    confidence: float | None = None
    is_filler: bool | None = False
    speaker_id: SpeakerId | None = None


class OriginalSegment(OriginalRequest):
    # The original backend gave a segment sent without an id a random UUID.
    id: Annotated[str, Field(max_length=100)] = Field(default_factory=lambda: str(uuid.uuid4()))
    start_time: float
    end_time: float
    text: SegmentText
    words: Annotated[list[OriginalWord], Field(max_length=MAX_SEGMENT_WORDS)] = Field(
        default_factory=list
    )
    speaker_id: SpeakerId | None = None
    confidence: float | None = None
    is_edited: bool = False
    edited_text: SegmentText | None = None


class OriginalTranscription(OriginalRequest):
    """A PUT body: every field optional; a field left out (or null) keeps its value."""

    segments: list[OriginalSegment] | None = None
    language: Annotated[str, Field(max_length=35)] | None = None
    model_used: ShortText | None = None
    processing_time: float | None = None
    confidence_score: float | None = None
    is_complete: bool | None = None
    is_edited: bool | None = None
    speaker_count: int | None = None
    speakers: Annotated[dict[SpeakerId, ShortText], Field(max_length=MAX_SPEAKERS)] | None = None


@dataclass(frozen=True, slots=True)
class Transcript:
    """A whole transcript: its header and every segment in time order."""

    header: TranscriptHeader
    segments: list[StoredSegment]


def _original_segment(segment: StoredSegment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "start_time": segment.start,
        "end_time": segment.end,
        "text": segment.text,
        "words": [
            {
                "text": word.text,
                "start": word.start,
                "end": word.end,
                "confidence": word.confidence,
                "is_filler": word.is_filler if word.is_filler is not None else False,
                "speaker_id": word.speaker,
            }
            for word in segment.words
        ],
        "speaker_id": segment.speaker,
        "confidence": segment.confidence,
        "is_edited": segment.is_edited if segment.is_edited is not None else False,
        "edited_text": segment.edited_text,
    }


def transcription_document(transcript: Transcript) -> dict[str, Any]:
    """The transcript in the original shape (and its `version`)."""
    header = transcript.header
    meta = header.metadata
    return {
        "_id": header.project_id,
        "project_id": header.project_id,
        "segments": [_original_segment(segment) for segment in transcript.segments],
        "language": header.language,
        "model_used": meta.model if meta is not None else None,
        "processing_time": meta.processing_time_sec if meta is not None else None,
        "confidence_score": meta.confidence if meta is not None else None,
        "is_complete": meta.complete if meta is not None else False,
        "is_edited": meta.edited if meta is not None else False,
        "speaker_count": meta.speaker_count if meta is not None else len(header.speakers) or 1,
        "speakers": {speaker.id: speaker.label for speaker in header.speakers},
        "updated_at": iso(header.updated_at),
        "version": header.version,
    }


def transcript_upload(body: OriginalTranscription, current: Transcript | None) -> TranscriptUpload:
    """The whole-transcript upload an original PUT makes of `current` (None: no transcript
    yet, so what is not sent takes the original backend's defaults)."""
    before = transcription_document(current) if current is not None else None

    def value(name: str, default: Any) -> Any:
        sent = getattr(body, name)
        if sent is not None:
            return sent
        return before[name] if before is not None else default

    if body.segments is not None:
        segments = [segment.model_dump() for segment in body.segments]
    else:
        segments = before["segments"] if before is not None else []
    speakers: dict[str, str] = value("speakers", {})
    upload = {
        "language": value("language", "en"),
        "speakers": [{"id": key, "label": label} for key, label in speakers.items()],
        "segments": [
            {
                "id": segment["id"],
                "start": segment["start_time"],
                "end": segment["end_time"],
                "speaker": segment["speaker_id"],
                "text": segment["text"],
                "words": [
                    {
                        "text": word["text"],
                        "start": word["start"],
                        "end": word["end"],
                        "speaker": word["speaker_id"],
                        "confidence": word["confidence"],
                        "is_filler": word["is_filler"],
                    }
                    for word in segment["words"]
                ],
                "confidence": segment["confidence"],
                "is_edited": segment["is_edited"],
                "edited_text": segment["edited_text"],
            }
            for segment in segments
        ],
        "metadata": {
            "model": value("model_used", None),
            "processing_time_sec": value("processing_time", None),
            "confidence": value("confidence_score", None),
            "complete": value("is_complete", False),
            "edited": value("is_edited", False),
            "speaker_count": value("speaker_count", 1),
        },
    }
    return checked(TranscriptUpload, upload, where="body", rename=_original_names)


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
    responses=failure_responses(
        {
            401: "No or invalid identity.",
            404: "No such project for this user, or it has no transcription.",
            409: "The transcription is being replaced; retry in a moment.",
        }
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
    responses=failure_responses(
        {
            401: "No or invalid identity.",
            404: "No such project for this user.",
            409: "The transcription is being replaced; retry in a moment.",
            412: "Other changes won the race twice in a row; reload and retry.",
        }
    ),
)
async def put_transcription(
    project_id: ProjectId,
    body: OriginalTranscription,
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
