"""Transcripts on the wire: words with times and speakers, grouped in segments.

Validated as a whole on upload: times in order, words inside their segment, segments in
time order and not overlapping, ids unique, and every time within the media's duration
when the project knows it.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from snipix.wire.models import Instant, WireModel
from snipix.wire.pages import CursorModel
from snipix.wire.versions import MAX_VERSION

MAX_SEGMENT_WORDS = 2_000
MAX_SPEAKERS = 100
# A word's or segment's times may disagree with its neighbours' by float noise.
TIME_TOLERANCE = 1e-6

Id = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_:-]+$")]
Seconds = Annotated[float, Field(ge=0, le=7 * 86_400, allow_inf_nan=False)]
Language = Annotated[
    str, StringConstraints(min_length=2, max_length=35, pattern=r"^[A-Za-z0-9-]+$")
]
Confidence = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def _absent(value: object) -> bool:
    # Optional fields added later are left out when unset, so every transcript
    # stored or answered before them looks exactly as it did.
    return value is None


class Speaker(WireModel):
    id: Id
    label: Annotated[str, StringConstraints(max_length=200)] = ""


class Word(WireModel):
    text: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    start: Seconds
    end: Seconds
    speaker: Id | None = None
    confidence: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    is_filler: bool | None = Field(
        None, exclude_if=_absent, description="A filler word (um, uh), as marked by its source."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"word {self.text!r}: end ({self.end}) is before start ({self.start})")
        return self


class Segment(WireModel):
    id: Id | None = Field(None, description="Assigned by the server when absent.")
    start: Seconds
    end: Seconds
    speaker: Id | None = None
    text: Annotated[str, StringConstraints(max_length=20_000)] | None = Field(
        None, description="Defaults to the words joined by spaces."
    )
    words: Annotated[list[Word], Field(max_length=MAX_SEGMENT_WORDS)] = Field(default_factory=list)
    confidence: Confidence | None = Field(None, exclude_if=_absent)
    is_edited: bool | None = Field(None, exclude_if=_absent)
    edited_text: Annotated[str, StringConstraints(max_length=20_000)] | None = Field(
        None, exclude_if=_absent, description="A person's correction of `text`."
    )

    @model_validator(mode="after")
    def _words_inside(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"segment {self.id}: end ({self.end}) is before start ({self.start})")
        for word in self.words:
            if word.start < self.start - TIME_TOLERANCE or word.end > self.end + TIME_TOLERANCE:
                raise ValueError(
                    f"segment {self.id}: word {word.text!r} ({word.start}-{word.end}) is "
                    f"outside the segment ({self.start}-{self.end})"
                )
        for before, after in pairwise(self.words):
            if after.start < before.start - TIME_TOLERANCE:
                raise ValueError(f"segment {self.id}: words are not in time order")
        return self


class TranscriptMetadata(WireModel):
    """What the transcript's producer said about it (the original web app's fields)."""

    model: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        None, description="The speech recognition model that produced it."
    )
    processing_time_sec: float | None = Field(None, ge=0, le=7 * 86_400, allow_inf_nan=False)
    confidence: Confidence | None = None
    complete: bool = False
    edited: bool = False
    speaker_count: int = Field(1, ge=0, le=10_000)


class TranscriptUpload(WireModel):
    language: Language
    speakers: Annotated[list[Speaker], Field(max_length=MAX_SPEAKERS)] = Field(default_factory=list)
    segments: list[Segment]
    base_version: int | None = Field(None, ge=0, le=MAX_VERSION)
    metadata: TranscriptMetadata | None = Field(None, exclude_if=_absent)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        speakers = {speaker.id for speaker in self.speakers}
        if len(speakers) != len(self.speakers):
            raise ValueError("speaker ids must be unique")
        ids: set[str] = set()
        for index, segment in enumerate(self.segments):
            if segment.id is not None:
                if segment.id in ids:
                    raise ValueError(f"segment id {segment.id!r} is used twice")
                ids.add(segment.id)
            for name in [segment.speaker, *(word.speaker for word in segment.words)]:
                if name is not None and speakers and name not in speakers:
                    raise ValueError(f"segment {index}: unknown speaker {name!r}")
        for index, (before, after) in enumerate(pairwise(self.segments)):
            if after.start < before.start - TIME_TOLERANCE:
                raise ValueError(f"segment {index + 1} starts before segment {index}")
        return self


class SegmentEdit(WireModel):
    """Correct a segment: its text, its words, or its speaker."""

    text: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    words: Annotated[list[Word], Field(max_length=MAX_SEGMENT_WORDS)] | None = None
    speaker: Id | None = None
    base_version: int | None = Field(None, ge=0, le=MAX_VERSION)


class SplitSegment(WireModel):
    at_word: int = Field(
        ge=1, le=MAX_SEGMENT_WORDS, description="The first word of the new second segment."
    )
    base_version: int | None = Field(None, ge=0, le=MAX_VERSION)


class MergeSegment(WireModel):
    """Merge this segment with the one that follows it."""

    base_version: int | None = Field(None, ge=0, le=MAX_VERSION)


class StoredSegment(WireModel):
    id: str
    start: float
    end: float
    speaker: str | None
    text: str
    words: list[Word]
    confidence: float | None = Field(None, exclude_if=_absent)
    is_edited: bool | None = Field(None, exclude_if=_absent)
    edited_text: str | None = Field(None, exclude_if=_absent)


class TranscriptHeader(WireModel):
    project_id: str
    language: str
    speakers: list[Speaker]
    word_count: int
    segment_count: int
    duration_sec: float
    bucket_count: int
    version: int
    updated_at: Instant
    metadata: TranscriptMetadata | None = Field(None, exclude_if=_absent)


class SegmentWindow(WireModel):
    items: list[StoredSegment]
    next_cursor: str | None = None
    version: int


class SegmentCursor(CursorModel):
    s: float = Field(allow_inf_nan=False)
    id: str


class SearchHit(WireModel):
    project_id: str
    segment_id: str
    text: str
    start: float
    end: float
    matched: list[Word] = Field(description="The words that matched, with their times.")


class CutRange(WireModel):
    start: Seconds
    end: Seconds

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.start < self.end:
            raise ValueError(f"range start ({self.start}) must be before its end ({self.end})")
        return self


class CutRequest(WireModel):
    ranges: Annotated[list[CutRange], Field(max_length=10_000)] = Field(default_factory=list)
    word_ids: Annotated[
        list[Annotated[str, StringConstraints(max_length=120)]], Field(max_length=50_000)
    ] = Field(
        default_factory=list,
        description="`<segmentId>:<wordIndex>` of words to remove (alternative to ranges).",
    )
    label: Annotated[str, StringConstraints(max_length=500)] | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.ranges and not self.word_ids:
            raise ValueError("send ranges or wordIds to cut")
        return self
