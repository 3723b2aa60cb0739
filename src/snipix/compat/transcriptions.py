"""The original web app's transcription shape and its mapping to and from Snipix's models.

The routes that speak it are `snipix.api.compat.transcriptions`; the legacy import and export read
and write the same shape (`snipix.legacy`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Final

from pydantic import Field

from snipix.compat.common import CompatRequest, checked, iso
from snipix.transcripts.schemas import (
    MAX_SEGMENT_WORDS,
    MAX_SPEAKERS,
    StoredSegment,
    TranscriptHeader,
    TranscriptUpload,
)

# The transcript's `metadata` fields -> the original transcription's.
_METADATA_NAMES: Final = {
    "model": "model_used",
    "processing_time_sec": "processing_time",
    "confidence": "confidence_score",
    "complete": "is_complete",
    "edited": "is_edited",
    "speaker_count": "speaker_count",
}


def _compat_names(loc: list[str]) -> list[str]:
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


class CompatWord(CompatRequest):
    text: ShortText
    start: float
    end: float
    confidence: float | None = None
    is_filler: bool | None = False
    speaker_id: SpeakerId | None = None


class CompatSegment(CompatRequest):
    # The original backend gave a segment sent without an id a random UUID.
    id: Annotated[str, Field(max_length=100)] = Field(default_factory=lambda: str(uuid.uuid4()))
    start_time: float
    end_time: float
    text: SegmentText
    words: Annotated[list[CompatWord], Field(max_length=MAX_SEGMENT_WORDS)] = Field(
        default_factory=list
    )
    speaker_id: SpeakerId | None = None
    confidence: float | None = None
    is_edited: bool = False
    edited_text: SegmentText | None = None


class CompatTranscription(CompatRequest):
    """A PUT body: every field optional; a field left out (or null) keeps its value."""

    segments: list[CompatSegment] | None = None
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


def _compat_segment(segment: StoredSegment) -> dict[str, Any]:
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
        "segments": [_compat_segment(segment) for segment in transcript.segments],
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


def transcript_upload(body: CompatTranscription, current: Transcript | None) -> TranscriptUpload:
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
    return checked(TranscriptUpload, upload, where="body", rename=_compat_names)
