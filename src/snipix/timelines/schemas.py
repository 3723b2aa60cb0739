"""The timeline state as the editor saves it, validated as a whole.

Playhead, zoom and selection are session state (per user), not timeline state; the one
exception is the optional `view` block, which keeps what the original web app saves with its
timeline (see `snipix.api.compat.timeline_mapping`). Times are seconds as floats. A state is
valid only as a whole: ids unique, clips on existing tracks, in < out, no overlap on a
track that does not allow it — so every stored version, however it was produced (full
save, patch, undo, import), is one the editor can open.
"""

from __future__ import annotations

import math
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    Field,
    JsonValue,
    PrivateAttr,
    StringConstraints,
    model_validator,
)

from snipix.wire.models import Instant, WireModel
from snipix.wire.pages import CursorModel
from snipix.wire.versions import MAX_VERSION

# Bounds that keep one state well below MongoDB's 16 MB document limit and any single
# request cheap to validate; the byte limit (SNIPIX_TIMELINE_MAX_BYTES) is checked too.
MAX_TRACKS = 200
MAX_CLIPS = 20_000
MAX_SEGMENTS = 20_000
MAX_MARKERS = 5_000
MAX_LAYERS = 200
MAX_PARAMS = 32
MAX_EFFECTS = 32
MAX_SECONDS = 7 * 86_400.0
# Two clips that merely touch must not count as overlapping after float arithmetic.
OVERLAP_TOLERANCE = 1e-9

Id = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_:-]+$")]
Label = Annotated[str, StringConstraints(max_length=500)]
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
ParamKey = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]
ParamValue = (
    Annotated[str, StringConstraints(max_length=1_000)]
    | Annotated[float, Field(allow_inf_nan=False)]
    | bool
    | None
)
Params = Annotated[dict[ParamKey, ParamValue], Field(max_length=MAX_PARAMS)]

# --- Optional blocks for the original web app's timeline --------------------------
# Everything below is optional and left out of the stored document when absent, so every
# state saved before it existed validates and serialises exactly as before.
MAX_KEYFRAMES = 1_000
MAX_JSON_DEPTH = 16
MAX_JSON_KEYS = 256
# JavaScript numbers are exact up to 2**53; BSON integers stop at 2**63.
MAX_JSON_INT = 2**53
CompatType = Literal["video", "audio", "text", "effect", "overlay"]
Finite = Annotated[float, Field(allow_inf_nan=False)]
FreeText = Annotated[str, StringConstraints(max_length=1_000)]


def _bounded_json(value: JsonValue, depth: int = 0) -> JsonValue:
    """Free-form client JSON, bounded: finite numbers, safe integers, limited nesting."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_JSON_INT:
            raise ValueError(f"integer {value} is outside +-2**53")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite")
    elif isinstance(value, list):
        for item in value:
            _bounded_json(item, depth + 1)
    elif isinstance(value, dict):
        if len(value) > MAX_JSON_KEYS:
            raise ValueError(f"more than {MAX_JSON_KEYS} keys in one object")
        for item in value.values():
            _bounded_json(item, depth + 1)
    return value


def _absent(value: object) -> bool:
    return value is None


# What another editor's file said about an object that the state has no field for (its
# metadata, effects Snipix does not apply, a marker's range...), kept as JSON text so it
# goes back out on export: text because other tools' keys need not be valid MongoDB field
# names and their numbers need not fit a double.
MAX_INTERCHANGE_CHARS = 200_000
Interchange = Annotated[str, StringConstraints(max_length=MAX_INTERCHANGE_CHARS)]
_INTERCHANGE_DESCRIPTION = (
    "What an imported file (e.g. OpenTimelineIO) said about this object that Snipix has no "
    "field for, as JSON text; written back on export."
)


Json = Annotated[JsonValue, AfterValidator(_bounded_json)]
JsonObject = Annotated[
    dict[Annotated[str, StringConstraints(max_length=200)], JsonValue],
    Field(max_length=MAX_JSON_KEYS),
    AfterValidator(_bounded_json),
]


class Keyframe(WireModel):
    """One animation keyframe: `property` reaches `value` at `time` (seconds)."""

    id: Annotated[str, StringConstraints(max_length=200)]
    time: Finite
    property: Annotated[str, StringConstraints(max_length=200)]
    value: Json
    easing: Annotated[str, StringConstraints(max_length=64)] | None = "linear"


class CompatClipAsSent(WireModel):
    """The clip exactly as the original web app described it, so its saves round-trip.

    Snipix's own fields (`start`, `sourceIn`/`sourceOut`, `speed`, `volume`, `mediaRef`) are
    derived from these on a web-app save and win when they disagree (the clip was changed
    through `/api/v1` since).
    """

    id: Annotated[str, StringConstraints(max_length=1_000)] | None = Field(
        None, description="The web app's id, when it is not a valid Snipix id."
    )
    type: CompatType
    start_time: Finite
    end_time: Finite
    duration: Finite
    original_start_time: Finite | None = None
    source_path: Annotated[str, StringConstraints(max_length=4_096)] | None = None
    content: Annotated[str, StringConstraints(max_length=100_000)] | None = None
    properties: JsonObject = Field(default_factory=dict)


class CompatTrackExtras(WireModel):
    """What the original web app's layer says that a track has no field for."""

    type: CompatType
    is_main_video: bool = False


class TimelineView(WireModel):
    """The editor's view as the original web app saves it with its timeline."""

    playhead_sec: Finite = 0.0
    zoom: Finite = 1.0
    duration_sec: Finite = Field(0.0, description="The duration the editor showed.")
    selected_clip_ids: Annotated[list[FreeText], Field(max_length=MAX_CLIPS)] = Field(
        default_factory=list
    )
    playing: bool = False
    snapping: bool = True


class TrackKind(StrEnum):
    VIDEO = "video"
    AUDIO = "audio"
    TEXT = "text"
    OVERLAY = "overlay"


class SegmentKind(StrEnum):
    KEEP = "keep"
    CUT = "cut"


class Track(WireModel):
    id: Id
    kind: TrackKind
    name: Label = ""
    order: int = Field(0, ge=0, le=10_000)
    muted: bool = False
    locked: bool = False
    hidden: bool = False
    allow_overlap: bool = False
    compat: CompatTrackExtras | None = Field(None, exclude_if=_absent)
    interchange: Interchange | None = Field(
        None, exclude_if=_absent, description=_INTERCHANGE_DESCRIPTION
    )


class Effect(WireModel):
    """An effect or a transition: a type and bounded key-value parameters."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    id: Id | None = None
    duration_sec: Seconds | None = None
    params: Params = Field(default_factory=dict)


class Clip(WireModel):
    id: Id
    track_id: Id
    media_ref: Annotated[str, StringConstraints(max_length=2_048)] = ""
    start: Seconds = Field(description="Where the clip starts on the timeline.")
    source_in: Seconds = Field(description="Trim point: first second of the source used.")
    source_out: Seconds = Field(description="Trim point: end of the source used.")
    speed: float = Field(1.0, gt=0, le=100, allow_inf_nan=False)
    volume: float = Field(1.0, ge=0, le=10, allow_inf_nan=False)
    effects: Annotated[list[Effect], Field(max_length=MAX_EFFECTS)] = Field(default_factory=list)
    transition_in: Effect | None = None
    transition_out: Effect | None = None
    name: Label = ""
    properties: Params = Field(default_factory=dict, description="Other client properties.")
    keyframes: Annotated[list[Keyframe], Field(max_length=MAX_KEYFRAMES)] | None = Field(
        None, exclude_if=_absent
    )
    compat: CompatClipAsSent | None = Field(None, exclude_if=_absent)
    interchange: Interchange | None = Field(
        None, exclude_if=_absent, description=_INTERCHANGE_DESCRIPTION
    )

    @model_validator(mode="after")
    def _trim_points_in_order(self) -> Self:
        if not self.source_in < self.source_out:
            raise ValueError(
                f"clip {self.id}: sourceIn ({self.source_in}) must be before sourceOut "
                f"({self.source_out})"
            )
        return self

    @property
    def duration(self) -> float:
        return (self.source_out - self.source_in) / self.speed

    @property
    def end(self) -> float:
        return self.start + self.duration


class Segment(WireModel):
    """A kept or removed range of the source (e.g. from transcript-based cuts)."""

    id: Id
    start: Seconds
    end: Seconds
    kind: SegmentKind = SegmentKind.KEEP
    source: Annotated[str, StringConstraints(max_length=200)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.start < self.end:
            raise ValueError(
                f"segment {self.id}: start ({self.start}) must be before end ({self.end})"
            )
        return self


class Layer(WireModel):
    id: Id
    name: Label = ""
    order: int = Field(0, ge=0, le=10_000)
    track_ids: Annotated[list[Id], Field(max_length=MAX_TRACKS)] = Field(default_factory=list)
    hidden: bool = False
    locked: bool = False
    properties: Params = Field(default_factory=dict)


class Marker(WireModel):
    id: Id
    time: Seconds
    label: Label = ""
    color: Annotated[str, StringConstraints(max_length=32)] = ""
    interchange: Interchange | None = Field(
        None, exclude_if=_absent, description=_INTERCHANGE_DESCRIPTION
    )


class TimelineState(WireModel):
    tracks: Annotated[list[Track], Field(max_length=MAX_TRACKS)] = Field(default_factory=list)
    clips: Annotated[list[Clip], Field(max_length=MAX_CLIPS)] = Field(default_factory=list)
    segments: Annotated[list[Segment], Field(max_length=MAX_SEGMENTS)] = Field(default_factory=list)
    layers: Annotated[list[Layer], Field(max_length=MAX_LAYERS)] = Field(default_factory=list)
    markers: Annotated[list[Marker], Field(max_length=MAX_MARKERS)] = Field(default_factory=list)
    fps: float = Field(30.0, gt=0, le=1_000, allow_inf_nan=False)
    view: TimelineView | None = Field(None, exclude_if=_absent)
    length_sec: Seconds | None = Field(
        None,
        exclude_if=_absent,
        description=(
            "Where the timeline ends when that is after its last clip (a trailing gap, as "
            "other editors' timelines have); absent: at the end of the last clip."
        ),
    )
    interchange: Interchange | None = Field(
        None, exclude_if=_absent, description=_INTERCHANGE_DESCRIPTION
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for name, items in (
            ("track", self.tracks),
            ("clip", self.clips),
            ("segment", self.segments),
            ("layer", self.layers),
            ("marker", self.markers),
        ):
            seen: set[str] = set()
            for item in items:
                if item.id in seen:
                    raise ValueError(f"{name} id {item.id!r} is used twice")
                seen.add(item.id)
        tracks = {track.id: track for track in self.tracks}
        for layer in self.layers:
            for track_id in layer.track_ids:
                if track_id not in tracks:
                    raise ValueError(f"layer {layer.id}: no track {track_id!r}")
        by_track: dict[str, list[Clip]] = {}
        for clip in self.clips:
            if clip.track_id not in tracks:
                raise ValueError(f"clip {clip.id}: no track {clip.track_id!r}")
            by_track.setdefault(clip.track_id, []).append(clip)
        for track_id, clips in by_track.items():
            if tracks[track_id].allow_overlap:
                continue
            ordered = sorted(clips, key=lambda clip: clip.start)
            for before, after in pairwise(ordered):
                if after.start < before.end - OVERLAP_TOLERANCE:
                    raise ValueError(
                        f"clips {before.id} and {after.id} overlap on track {track_id} "
                        "(set allowOverlap on the track to allow it)"
                    )
        return self

    @property
    def duration_sec(self) -> float:
        last = max((clip.end for clip in self.clips), default=0.0)
        return max(last, self.length_sec or 0.0)


# What a JSON Patch may address: the state's own fields. `/version`, `/userId`, `/_id` and
# anything else the stored head carries beside the state are not in it.
STATE_FIELDS: frozenset[str] = frozenset(
    field.alias or name for name, field in TimelineState.model_fields.items()
)


def state_document(state: TimelineState) -> dict[str, Any]:
    """The state as stored and patched: camelCase JSON, defaults included."""
    return state.model_dump(mode="json")


class Timeline(WireModel):
    """The current state of a project's timeline."""

    project_id: str
    version: int = Field(description="0 before the first save.")
    state: TimelineState
    duration_sec: float = Field(
        description="End of the last clip, or `lengthSec` when later (derived)."
    )
    updated_at: Instant | None = None
    can_undo: bool = False
    can_redo: bool = False
    # The versions a stale autosave was merged over (first, last), for the edge's
    # `X-Merged-Over`; not part of the body.
    _merged_over: tuple[int, int] | None = PrivateAttr(None)

    @property
    def merged_over(self) -> tuple[int, int] | None:
        return self._merged_over

    def merged(self, first: int, last: int) -> Timeline:
        """This answer, marked as merged over versions first..last."""
        self._merged_over = (first, last)
        return self


class SaveTimeline(WireModel):
    """A full-state save."""

    state: TimelineState
    label: Label | None = None
    base_version: int | None = Field(None, ge=0, le=MAX_VERSION)


class RevisionKind(StrEnum):
    SAVE = "save"
    PATCH = "patch"
    UNDO = "undo"
    REDO = "redo"
    ROLLBACK = "rollback"
    IMPORT = "import"


class Revision(WireModel):
    version: int
    kind: RevisionKind
    label: str | None
    author_id: str
    created_at: Instant
    op_count: int
    undoable: bool = Field(description="The next undo would undo this revision.")
    redoable: bool = Field(description="The next redo would redo this revision.")


class TimelineVersion(WireModel):
    project_id: str
    version: int
    state: TimelineState
    duration_sec: float


class RollbackTimeline(WireModel):
    version: int = Field(ge=0, le=MAX_VERSION)
    label: Label | None = None


class HistoryCursor(CursorModel):
    v: int = Field(ge=1, le=MAX_VERSION + 1)


class ImportReport(WireModel):
    timeline: Timeline
    unmapped: list[str] = Field(
        description="What the imported file had that Snipix does not: path and reason each."
    )
