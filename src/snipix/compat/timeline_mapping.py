"""The original web app's `timeline_state` <-> the `/api/v1` `TimelineState`, both ways.

The web app keeps a timeline as layers of clips; Snipix as tracks and clips. The mapping:

- a layer is a track (same id, `allowOverlap`: the web app lets clips overlap) with
  `compat` {type, isMainVideo}; an `effect` layer is an `overlay` track;
- a clip is a clip on that track: `start` = `start_time`, trim points `sourceIn` =
  `original_start_time` and `sourceOut` = in + duration x speed, `speed` and `volume` from
  its properties (when Snipix can hold them), `mediaRef` = `source_path`, `keyframes`, and
  `compat`: the clip as it was sent;
- a marker is a marker;
- `playhead_time`, `zoom`, `duration`, `selected_clips`, `is_playing`, `is_snapping` are
  the state's `view`.

Exactness comes from `compat`: the original numbers and properties are kept as sent, so
`to_compat(to_state(x))` gives back every field of `x` (the original backend's defaults
for fields it left out). Snipix's own fields are derived from `compat` and win when they
disagree with it — that is, when the clip was changed through `/api/v1` after the web app
saved it — field group by field group (timing, source, speed, volume).

A clip id that is not a valid Snipix id (the web app makes ids grow by `_split_<ms>` on every
split, past Snipix's 100 characters after a few) gets a stable stand-in, `legacy-<hash>`, and
the original id is kept in `compat.id`.

What the original shape cannot say (transcript cut segments, fps, the `/api/v1` layer
groups, a clip's effects, transitions, name and parameters) is taken from `base`, the
current state, so a web-app save does not drop what it could not see.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from snipix.errors import ValidationFailed
from snipix.timelines.schemas import (
    MAX_CLIPS,
    MAX_JSON_KEYS,
    MAX_KEYFRAMES,
    MAX_MARKERS,
    MAX_SECONDS,
    MAX_TRACKS,
    Clip,
    CompatClipAsSent,
    CompatType,
    TimelineState,
    Track,
    TrackKind,
)
from snipix.wire.models import find_unsafe_key

# The shortest clip Snipix can hold (its trim points must differ): a zero-length clip of the
# web app becomes one microsecond long in Snipix's fields, and stays zero in `compat`.
MIN_LENGTH_SEC = 1e-6
MAX_SPEED = 100.0
MAX_VOLUME = 10.0
_VALID_ID = re.compile(r"[A-Za-z0-9_:-]{1,100}")
_KIND: dict[str, TrackKind] = {
    "video": TrackKind.VIDEO,
    "audio": TrackKind.AUDIO,
    "text": TrackKind.TEXT,
    "overlay": TrackKind.OVERLAY,
    "effect": TrackKind.OVERLAY,
}
# What carries over from the current state, by clip id: what the original clip cannot say.
_KEPT_CLIP_FIELDS = {"effects", "transition_in", "transition_out", "name", "properties"}

Number = Annotated[float, Field(allow_inf_nan=False)]

# Strings bounded by the Snipix field each maps to, so an over-long value is
# refused when the body is read, before anything else happens.
ShortId = Annotated[str, Field(max_length=100)]
ClipId = Annotated[str, Field(max_length=1_000)]
Key = Annotated[str, Field(max_length=200)]
Easing = Annotated[str, Field(max_length=64)]
Label = Annotated[str, Field(max_length=500)]
Color = Annotated[str, Field(max_length=32)]
SourcePath = Annotated[str, Field(max_length=4_096)]
Content = Annotated[str, Field(max_length=100_000)]


# --- the original shape (as the original backend's models define it) ------------------------


class _Compat(BaseModel):
    # Unknown fields are ignored, as the original backend did; its defaults are kept.
    model_config = ConfigDict(extra="ignore", frozen=True)


class CompatKeyframe(_Compat):
    id: Key
    time: Number
    property: Key
    value: JsonValue
    easing: Easing | None = "linear"


class CompatClip(_Compat):
    id: ClipId
    type: CompatType
    start_time: Number
    end_time: Number
    duration: Number
    original_start_time: Number | None = None
    source_path: SourcePath | None = None
    content: Content | None = None
    properties: Annotated[dict[Key, JsonValue], Field(max_length=MAX_JSON_KEYS)] = Field(
        default_factory=dict
    )
    keyframes: Annotated[list[CompatKeyframe], Field(max_length=MAX_KEYFRAMES)] = Field(
        default_factory=list
    )


class CompatLayer(_Compat):
    id: ShortId
    name: Label
    type: CompatType
    clips: Annotated[list[CompatClip], Field(max_length=MAX_CLIPS)] = Field(default_factory=list)
    is_visible: bool = True
    is_locked: bool = False
    is_muted: bool = False
    order: int = 0
    is_main_video: bool = False


class CompatMarker(_Compat):
    id: ShortId
    time: Number
    label: Label
    color: Color = "#6366f1"


class CompatTimelineState(_Compat):
    layers: Annotated[list[CompatLayer], Field(max_length=MAX_TRACKS)] = Field(default_factory=list)
    playhead_time: Number = 0.0
    zoom: Number = 1.0
    duration: Number = 0.0
    markers: Annotated[list[CompatMarker], Field(max_length=MAX_MARKERS)] = Field(
        default_factory=list
    )
    selected_clips: Annotated[list[ClipId], Field(max_length=MAX_CLIPS)] = Field(
        default_factory=list
    )
    is_playing: bool = False
    is_snapping: bool = True


# --- original -> TimelineState -----------------------------------------------------------------


def snipix_clip_id(original_id: str) -> str:
    """The clip's id in Snipix: the same when it is valid there, else a stable stand-in."""
    if _VALID_ID.fullmatch(original_id):
        return original_id
    return "legacy-" + hashlib.sha256(original_id.encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class _Derived:
    """Snipix's own clip fields as derived from a `compat` block."""

    start: float
    source_in: float
    source_out: float
    speed: float
    volume: float
    media_ref: str


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _property(
    properties: Mapping[str, Any], name: str, *, above: float, up_to: float, inclusive: bool
) -> float | None:
    """A numeric property inside Snipix's range for it, else None (it stays in `compat`)."""
    value = properties.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    if not math.isfinite(number) or number > up_to:
        return None
    if number < above or (number == above and not inclusive):
        return None
    return number


def _derived(compat: CompatClipAsSent) -> _Derived:
    props = compat.properties
    speed = _property(props, "speed", above=0.0, up_to=MAX_SPEED, inclusive=False) or 1.0
    volume = _property(props, "volume", above=0.0, up_to=MAX_VOLUME, inclusive=True)
    source_in = _clamp(compat.original_start_time or 0.0, 0.0, MAX_SECONDS - MIN_LENGTH_SEC)
    length = max(compat.duration, 0.0) * speed
    source_out = min(source_in + max(length, MIN_LENGTH_SEC), MAX_SECONDS)
    path = compat.source_path
    return _Derived(
        start=_clamp(compat.start_time, 0.0, MAX_SECONDS),
        source_in=source_in,
        source_out=source_out,
        speed=speed,
        volume=1.0 if volume is None else volume,
        media_ref=path if path is not None and len(path) <= 2_048 else "",
    )


def _clip_document(clip: CompatClip, track_id: str, base: Mapping[str, Clip]) -> dict[str, Any]:
    clip_id = snipix_clip_id(clip.id)
    compat: dict[str, Any] = {
        "id": clip.id if clip_id != clip.id else None,
        "type": clip.type,
        "start_time": clip.start_time,
        "end_time": clip.end_time,
        "duration": clip.duration,
        "original_start_time": clip.original_start_time,
        "source_path": clip.source_path,
        "content": clip.content,
        "properties": clip.properties,
    }
    try:
        derived = _derived(CompatClipAsSent.model_validate(compat))
    except ValidationError:
        # Reported with its place by the validation of the whole state below.
        derived = _Derived(0.0, 0.0, MIN_LENGTH_SEC, 1.0, 1.0, "")
    kept = base.get(clip_id)
    document: dict[str, Any] = (
        kept.model_dump(mode="json", by_alias=False, include=_KEPT_CLIP_FIELDS)
        if kept is not None
        else {}
    )
    document.update(
        id=clip_id,
        track_id=track_id,
        media_ref=derived.media_ref,
        start=derived.start,
        source_in=derived.source_in,
        source_out=derived.source_out,
        speed=derived.speed,
        volume=derived.volume,
        keyframes=[keyframe.model_dump(mode="json") for keyframe in clip.keyframes],
        compat=compat,
    )
    return document


def _place(loc: tuple[int | str, ...], clip_places: list[tuple[int, int]]) -> list[str]:
    """A validation error's location in the original shape's terms."""
    parts = [str(part) for part in loc]
    if len(loc) >= 2 and loc[0] == "tracks" and isinstance(loc[1], int):
        return ["layers", str(loc[1]), *parts[2:]]
    if (
        len(loc) >= 2
        and loc[0] == "clips"
        and isinstance(loc[1], int)
        and loc[1] < len(clip_places)
    ):
        layer, position = clip_places[loc[1]]
        return ["layers", str(layer), "clips", str(position), *parts[2:]]
    return parts


def to_state(
    original: CompatTimelineState | Mapping[str, Any], base: TimelineState | None = None
) -> TimelineState:
    """The web app's timeline as a `TimelineState`; 422 (`ValidationFailed`) when Snipix
    cannot hold it, naming the place in the original shape.

    `base` (the current state) supplies what the original shape has no field for.
    """
    parsed = (
        original
        if isinstance(original, CompatTimelineState)
        else CompatTimelineState.model_validate(original)
    )
    unsafe = find_unsafe_key(parsed.model_dump(mode="json"))
    if unsafe is not None:
        raise ValidationFailed(
            f"Invalid timeline: field names may not start with '$' or contain '.': "
            f"timeline_state.{unsafe}. Nothing was saved.",
            details=[
                {
                    "loc": ["timeline_state", *unsafe.split(".")],
                    "msg": "unsafe key",
                    "type": "unsafe_key",
                }
            ],
        )
    base_clips = {clip.id: clip for clip in base.clips} if base is not None else {}
    tracks: list[dict[str, Any]] = []
    clips: list[dict[str, Any]] = []
    clip_places: list[tuple[int, int]] = []
    for layer_index, layer in enumerate(parsed.layers):
        tracks.append(
            {
                "id": layer.id,
                "kind": _KIND[layer.type],
                "name": layer.name,
                "order": layer.order,
                "muted": layer.is_muted,
                "locked": layer.is_locked,
                "hidden": not layer.is_visible,
                "allow_overlap": True,
                "compat": {"type": layer.type, "is_main_video": layer.is_main_video},
            }
        )
        for position, clip in enumerate(layer.clips):
            clips.append(_clip_document(clip, layer.id, base_clips))
            clip_places.append((layer_index, position))
    track_ids = {layer.id for layer in parsed.layers}
    document: dict[str, Any] = {
        "tracks": tracks,
        "clips": clips,
        "markers": [marker.model_dump(mode="json") for marker in parsed.markers],
        "view": {
            "playhead_sec": parsed.playhead_time,
            "zoom": parsed.zoom,
            "duration_sec": parsed.duration,
            "selected_clip_ids": parsed.selected_clips,
            "playing": parsed.is_playing,
            "snapping": parsed.is_snapping,
        },
    }
    if base is not None:
        document["segments"] = [s.model_dump(mode="json") for s in base.segments]
        document["fps"] = base.fps
        document["layers"] = [
            {
                **layer.model_dump(mode="json", by_alias=False),
                "track_ids": [t for t in layer.track_ids if t in track_ids],
            }
            for layer in base.layers
        ]
    try:
        return TimelineState.model_validate(document)
    except ValidationError as error:
        problems = [
            {
                "loc": ["timeline_state", *_place(item["loc"], clip_places)],
                "msg": item["msg"],
                "type": item["type"],
            }
            for item in error.errors(include_input=False, include_url=False)
        ]
        first = problems[0]
        raise ValidationFailed(
            f"Invalid timeline: {'.'.join(first['loc'])}: {first['msg']}. Nothing was saved.",
            details=problems,
        ) from None


# --- TimelineState -> original -----------------------------------------------------------------


def _compat_clip(clip: Clip, track: Track) -> dict[str, Any]:
    compat = clip.compat
    derived = _derived(compat) if compat is not None else None
    timing = (clip.start, clip.source_in, clip.source_out, clip.speed)
    if (
        compat is not None
        and derived is not None
        and timing
        == (
            derived.start,
            derived.source_in,
            derived.source_out,
            derived.speed,
        )
    ):
        start_time, end_time = compat.start_time, compat.end_time
        duration, original_start = compat.duration, compat.original_start_time
    else:
        start_time, end_time = clip.start, clip.end
        duration, original_start = clip.duration, clip.source_in
    if compat is not None and derived is not None and clip.media_ref == derived.media_ref:
        source_path = compat.source_path
    else:
        source_path = clip.media_ref or None
    properties: dict[str, Any] = dict(compat.properties) if compat is not None else {}
    if clip.speed != (derived.speed if derived is not None else 1.0):
        properties["speed"] = clip.speed
    if clip.volume != (derived.volume if derived is not None else 1.0):
        properties["volume"] = clip.volume
    original_id = clip.id
    if compat is not None and compat.id is not None and snipix_clip_id(compat.id) == clip.id:
        original_id = compat.id
    return {
        "id": original_id,
        "type": compat.type if compat is not None else track.kind.value,
        "start_time": start_time,
        "end_time": end_time,
        "duration": duration,
        "original_start_time": original_start,
        "source_path": source_path,
        "content": compat.content if compat is not None else None,
        "properties": properties,
        "keyframes": [
            keyframe.model_dump(mode="json", by_alias=False) for keyframe in clip.keyframes or []
        ],
    }


def to_compat(state: TimelineState) -> dict[str, Any]:
    """The state in the web app's shape, every field present (snake_case, JSON-ready)."""
    by_track: dict[str, list[Clip]] = {}
    for clip in state.clips:
        by_track.setdefault(clip.track_id, []).append(clip)
    layers = []
    for track in state.tracks:
        compat = track.compat
        kept_type = compat is not None and _KIND[compat.type] == track.kind
        layers.append(
            {
                "id": track.id,
                "name": track.name,
                "type": compat.type if compat is not None and kept_type else track.kind.value,
                "clips": [_compat_clip(clip, track) for clip in by_track.get(track.id, [])],
                "is_visible": not track.hidden,
                "is_locked": track.locked,
                "is_muted": track.muted,
                "order": track.order,
                "is_main_video": compat.is_main_video if compat is not None else False,
            }
        )
    view = state.view
    document = {
        "layers": layers,
        "playhead_time": view.playhead_sec if view is not None else 0.0,
        "zoom": view.zoom if view is not None else 1.0,
        "duration": view.duration_sec if view is not None else state.duration_sec,
        "markers": [marker.model_dump(mode="json", by_alias=False) for marker in state.markers],
        "selected_clips": list(view.selected_clip_ids) if view is not None else [],
        "is_playing": view.playing if view is not None else False,
        "is_snapping": view.snapping if view is not None else True,
    }
    return CompatTimelineState.model_validate(document).model_dump(mode="json")
