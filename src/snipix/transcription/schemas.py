"""Transcription jobs on the wire, and the original web app's filler-removal shapes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from snipix.compat.common import CompatRequest
from snipix.projects.schemas import PROJECT_ID_PATTERN
from snipix.wire.models import Instant, WireModel

JobState = Literal["queued", "running", "done", "failed", "cancelled"]


class JobResult(WireModel):
    transcript_version: int
    word_count: int
    segment_count: int
    duration_sec: float


class Job(WireModel):
    """A transcription job: poll it until `state` is done, failed or cancelled."""

    id: str
    project_id: str
    state: JobState
    progress: float = Field(description="0 to 1.")
    attempts: int = Field(description="Workers that took it (more than 1: taken over).")
    engine: str
    error: str | None = None
    created_at: Instant
    updated_at: Instant
    started_at: Instant | None = None
    finished_at: Instant | None = None
    result: JobResult | None = None


class StartTranscription(WireModel):
    """Optional body of `POST .../transcript/jobs` (nothing needs to be sent)."""

    language: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] | None
    ) = Field(None, description="The engine's own language when absent (en-US).")


WordRef = Annotated[str, StringConstraints(min_length=1, max_length=120)]


class RemoveFillersRequest(CompatRequest):
    """The web app's body: the words it selected, or `auto_detect` for every filler."""

    model_config = ConfigDict(extra="ignore", frozen=True, validate_by_name=True)

    project_id: Annotated[str, Field(pattern=PROJECT_ID_PATTERN)]
    selected_words: Annotated[list[WordRef], Field(max_length=50_000)] | None = Field(
        None,
        alias="selectedWords",
        description="The words to cut: the web app's `<start>-<end>` ids (seconds), or "
        "`<segmentId>:<wordIndex>`.",
    )
    auto_detect: bool = False


class TranscribedWord(BaseModel):
    """One word of the web app's transcript list."""

    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    text: str
    start: float
    end: float
    confidence: float
    is_filler: bool = Field(False, alias="isFiller")


class TranscribeAnswer(BaseModel):
    transcript: list[TranscribedWord]
    duration: float


class RemovedSegment(BaseModel):
    start: float
    end: float
    text: str


class RemoveFillersAnswer(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    processed_video_path: str = Field(alias="processedVideoPath")
    removed_segments: list[RemovedSegment] = Field(alias="removedSegments")
