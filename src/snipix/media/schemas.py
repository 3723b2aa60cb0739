"""The media routes on the wire, in the original web app's shapes (snake_case, its envelope).

Unlike `/api/v1` (camelCase `WireModel`s), these routes keep the field names the web app
sends and reads: `project_id`, `file_path`, and `startTime` inside a trim segment.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field

from snipix.projects.schemas import PROJECT_ID_PATTERN
from snipix.wire.models import Instant, SafeJson

# A trim request names one segment per clip of the main video track; a timeline with more
# clips than this is not an edit a person makes by hand.
MAX_SEGMENTS: Final = 500
MAX_SECONDS: Final = 7 * 86_400

ProjectIdField = Annotated[str, Field(pattern=PROJECT_ID_PATTERN, description="The project's id.")]


class _Strict(SafeJson):
    # SafeJson: no `$`/dotted keys, bounded depth, arrays and strings.
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrimSegment(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True)

    start_time: float = Field(
        alias="startTime",
        ge=0,
        le=MAX_SECONDS,
        allow_inf_nan=False,
        description="Where the kept part starts in the uploaded video, in seconds.",
    )
    duration: float = Field(
        gt=0, le=MAX_SECONDS, allow_inf_nan=False, description="How long it lasts, in seconds."
    )


class TrimRequest(_Strict):
    project_id: ProjectIdField
    segments: list[TrimSegment] = Field(
        min_length=1,
        max_length=MAX_SEGMENTS,
        description="The parts of the uploaded video to keep, in the order they are played.",
    )


class UploadResult(_Strict):
    project_id: str
    file_path: str = Field(
        description="The URL the video is served at (`/media/{project_id}/video`), "
        "never a server file path."
    )
    duration: float | None = Field(description="Seconds; null when ffprobe is unavailable.")


class TrimResult(_Strict):
    trimmed_video_path: str = Field(
        description="The URL of the trimmed render (`/media/{project_id}/video/trimmed`)."
    )
    new_duration: float = Field(description="The trimmed render's duration in seconds.")


class MediaLinks(_Strict):
    """Signed URLs for tags that cannot send an Authorization header."""

    video_url: str | None
    trimmed_video_url: str | None
    thumbnail_url: str | None
    expires_at: Instant


class Envelope[T](BaseModel):
    """The web app's success envelope (`snipix.api.envelope.success`), for the docs."""

    success: bool = True
    data: T
    message: str = ""
    error: None = None
