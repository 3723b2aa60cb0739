"""OpenTimelineIO (OTIO) interchange: timeline states out to other editors and back in.

OTIO is how a cut moves between editors (Resolve, Premiere, Avid, Hiero, scripts), so the
export has to be a plain, faithful OTIO timeline that those tools understand: one OTIO track
per Snipix track, gaps between clips, trims as source ranges, speed as a `LinearTimeWarp`,
transitions and markers where OTIO has them. OTIO cannot say everything Snipix can
(sub-frame times, text/overlay tracks, volume, overlapping clips on one track, segments,
layers...), so each object also carries what Snipix needs under `metadata["snipix"]`
(JSON text, see `_encode`), which other OTIO readers ignore, and a Snipix → OTIO → Snipix
round trip is exact.

The OTIO structure stays the source of truth on import: exact seconds from the metadata
are used only while they still agree with where OTIO puts the clip (to within the frame
rounding of the export), so a clip moved or trimmed in another tool that kept our metadata
comes back where that tool put it, not where it was before.

Both functions are pure: no I/O, no database; callers store the result.

Time conventions (OTIO's, see the `LinearTimeWarp` schema docs): a clip's `source_range`
starts at its first media frame and lasts as long as the clip occupies its track; a time
warp does not change that duration, it changes how much media plays. So a Snipix clip
trimmed to 0-10 s at speed 2 becomes `source_range` (0 s, 5 s) with `time_scalar` 2, and
`source_in + duration * time_scalar == source_out`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Final

import opentimelineio as otio
from pydantic import BaseModel, ValidationError

from snipix.errors import ValidationFailed
from snipix.timelines.schemas import (
    MAX_SECONDS,
    OVERLAP_TOLERANCE,
    Clip,
    Effect,
    Layer,
    Marker,
    Segment,
    TimelineState,
    Track,
    TrackKind,
)
from snipix.wire.models import nested_deeper_than

__all__ = ["METADATA_KEY", "from_otio", "to_otio"]

METADATA_KEY: Final = "snipix"
# Bumped if the metadata layout ever changes incompatibly, so an importer can tell.
FORMAT_VERSION: Final = 1
OTIO_JSON: Final = "otio_json"
DEFAULT_FPS: Final = 30.0
MAX_LABEL = 500
# Deepest nesting of an imported document (see _read_timeline).
MAX_OTIO_DEPTH: Final = 64
MAX_MEDIA_REF = 2_048
MAX_COLOR = 32
# Exact seconds from metadata are trusted while OTIO's frame-rounded value is within half a
# frame of them (what the export's rounding can produce) plus float noise.
FLOAT_SLACK = 1e-6

# OTIO's marker colours with a representative RGB, to map "#rrggbb" to the nearest name.
MARKER_COLORS: Final[dict[str, tuple[int, int, int]]] = {
    "RED": (255, 0, 0),
    "PINK": (255, 192, 203),
    "ORANGE": (255, 165, 0),
    "YELLOW": (255, 255, 0),
    "GREEN": (0, 128, 0),
    "CYAN": (0, 255, 255),
    "BLUE": (0, 0, 255),
    "PURPLE": (128, 0, 128),
    "MAGENTA": (255, 0, 255),
    "BLACK": (0, 0, 0),
    "WHITE": (255, 255, 255),
}
DEFAULT_MARKER_COLOR: Final = "RED"
VISUAL_KINDS: Final = frozenset({TrackKind.VIDEO, TrackKind.TEXT, TrackKind.OVERLAY})


# --------------------------------------------------------------------------- export


def to_otio(state: TimelineState, *, name: str) -> str:
    """The state as an OTIO JSON document (a `Timeline` named `name`, rate = `state.fps`)."""
    fps = state.fps
    timeline = otio.schema.Timeline(name=name, global_start_time=_time(0, fps))
    timeline.metadata[METADATA_KEY] = _encode(
        {
            "formatVersion": FORMAT_VERSION,
            "fps": fps,
            "segments": [segment.model_dump(mode="json") for segment in state.segments],
            "layers": [layer.model_dump(mode="json") for layer in state.layers],
        }
    )
    clips_by_track: dict[str, list[tuple[int, Clip]]] = {}
    for index, clip in enumerate(state.clips):
        clips_by_track.setdefault(clip.track_id, []).append((index, clip))
    ordered = sorted(enumerate(state.tracks), key=lambda pair: (pair[1].order, pair[0]))
    for index, track in ordered:
        lanes = _lanes(clips_by_track.get(track.id, []))
        for lane, clips in enumerate(lanes):
            timeline.tracks.append(_export_track(track, index, lane, clips, fps))
    for index, marker in enumerate(state.markers):
        timeline.tracks.markers.append(_export_marker(marker, index, fps))
    document: str = otio.adapters.write_to_string(timeline, OTIO_JSON)
    return document


def _lanes(clips: list[tuple[int, Clip]]) -> list[list[tuple[int, Clip]]]:
    """Clips split into non-overlapping lanes (first fit by start), at least one lane.

    An OTIO track is a sequence, so clips that overlap (allowed on `allowOverlap` tracks)
    need extra OTIO tracks; tracks that do not allow overlap always fit in one lane.
    """
    lanes: list[list[tuple[int, Clip]]] = []
    ends: list[float] = []
    for index, clip in sorted(clips, key=lambda pair: (pair[1].start, pair[0])):
        for lane, end in enumerate(ends):
            if clip.start >= end - OVERLAP_TOLERANCE:
                lanes[lane].append((index, clip))
                ends[lane] = clip.end
                break
        else:
            lanes.append([(index, clip)])
            ends.append(clip.end)
    return lanes or [[]]


def _export_track(
    track: Track, index: int, lane: int, clips: list[tuple[int, Clip]], fps: float
) -> Any:
    audio = track.kind is TrackKind.AUDIO
    otio_track = otio.schema.Track(
        name=track.name if lane == 0 else f"{track.name} (overlap {lane})",
        kind=otio.schema.TrackKind.Audio if audio else otio.schema.TrackKind.Video,
    )
    # `enabled` is the one track switch OTIO readers honour: a muted audio track, a hidden
    # picture track.
    otio_track.enabled = not _switched_off(track)
    otio_track.metadata[METADATA_KEY] = _encode(
        {**track.model_dump(mode="json"), "index": index, "lane": lane}
    )
    cursor = 0
    for clip_index, clip in clips:
        # Both ends are rounded independently, so no position drifts by more than half a
        # frame however many clips precede it.
        start = max(_frame(clip.start, fps), cursor)
        end = max(_frame(clip.end, fps), start)
        if start > cursor:
            otio_track.append(otio.schema.Gap(duration=_time(start - cursor, fps)))
        frames = end - start
        transition_in = _export_transition(clip, clip.transition_in, "in", frames, fps)
        # Two transitions in a row have no item between them to apply to.
        if transition_in is not None and not _ends_with_transition(otio_track):
            otio_track.append(transition_in)
        otio_track.append(_export_clip(clip, clip_index, frames, fps))
        transition_out = _export_transition(clip, clip.transition_out, "out", frames, fps)
        if transition_out is not None:
            otio_track.append(transition_out)
        cursor = end
    return otio_track


def _switched_off(track: Track) -> bool:
    return track.muted if track.kind is TrackKind.AUDIO else track.hidden


def _ends_with_transition(otio_track: Any) -> bool:
    return len(otio_track) > 0 and isinstance(otio_track[-1], otio.schema.Transition)


def _export_clip(clip: Clip, index: int, frames: int, fps: float) -> Any:
    reference = (
        otio.schema.ExternalReference(target_url=clip.media_ref)
        if clip.media_ref
        else otio.schema.MissingReference()
    )
    otio_clip = otio.schema.Clip(
        name=clip.name,
        media_reference=reference,
        source_range=otio.opentime.TimeRange(
            start_time=_time(_frame(clip.source_in, fps), fps), duration=_time(frames, fps)
        ),
    )
    if clip.speed != 1.0:
        otio_clip.effects.append(otio.schema.LinearTimeWarp(name="speed", time_scalar=clip.speed))
    for effect in clip.effects:
        otio_clip.effects.append(
            otio.schema.Effect(
                name=effect.id or "",
                effect_name=effect.type,
                metadata={METADATA_KEY: _encode(effect.model_dump(mode="json"))},
            )
        )
    # Effects, track, media and name are carried by OTIO itself; the rest only here.
    saved = clip.model_dump(mode="json", exclude={"effects", "track_id", "media_ref", "name"})
    otio_clip.metadata[METADATA_KEY] = _encode({**saved, "index": index})
    return otio_clip


def _export_transition(
    clip: Clip, transition: Effect | None, edge: str, clip_frames: int, fps: float
) -> Any | None:
    """An OTIO transition inside the clip's edge, or None when OTIO cannot show it.

    It never reaches into the neighbour (in/out offset 0 on that side): Snipix transitions
    belong to one clip, and a gap or another clip's media may be next to it.
    """
    if transition is None or transition.duration_sec is None:
        return None
    frames = min(_frame(transition.duration_sec, fps), clip_frames)
    if frames <= 0:
        return None
    kind = transition.type.lower()
    dissolve = "dissolve" in kind or "fade" in kind
    zero, length = _time(0, fps), _time(frames, fps)
    return otio.schema.Transition(
        name=transition.type,
        transition_type=(
            otio.schema.TransitionTypes.SMPTE_Dissolve
            if dissolve
            else otio.schema.TransitionTypes.Custom
        ),
        in_offset=zero if edge == "in" else length,
        out_offset=length if edge == "in" else zero,
        metadata={METADATA_KEY: _encode({"clipId": clip.id, "edge": edge})},
    )


def _export_marker(marker: Marker, index: int, fps: float) -> Any:
    return otio.schema.Marker(
        name=marker.label,
        marked_range=otio.opentime.TimeRange(
            start_time=_time(_frame(marker.time, fps), fps), duration=_time(0, fps)
        ),
        color=_otio_color(marker.color),
        metadata={METADATA_KEY: _encode({**marker.model_dump(mode="json"), "index": index})},
    )


def _otio_color(color: str) -> str:
    """The OTIO marker colour for a Snipix colour: its name, or the nearest to "#rrggbb"."""
    named = color.strip().upper()
    if named in MARKER_COLORS:
        return named
    rgb = _parse_hex(color.strip())
    if rgb is None:
        return DEFAULT_MARKER_COLOR
    return min(
        MARKER_COLORS,
        key=lambda name: sum((a - b) ** 2 for a, b in zip(MARKER_COLORS[name], rgb, strict=True)),
    )


def _parse_hex(color: str) -> tuple[int, int, int] | None:
    digits = color.removeprefix("#")
    if len(digits) == 3:
        digits = "".join(digit * 2 for digit in digits)
    if len(digits) != 6:
        return None
    try:
        value = int(digits, 16)
    except ValueError:
        return None
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def _encode(payload: dict[str, Any]) -> str:
    """Snipix metadata as JSON text, because OTIO's reader rounds numbers.

    OTIO writes doubles exactly but parses them with RapidJSON's fast (not full precision)
    mode, so 1.2088995980580641 comes back as 1.208899598058064. Text survives untouched,
    and Python's `json` round-trips every float exactly.
    """
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _frame(seconds: float, fps: float) -> int:
    return round(seconds * fps)


def _time(frames: float, fps: float) -> Any:
    return otio.opentime.RationalTime(frames, fps)


# --------------------------------------------------------------------------- import


def from_otio(document: str) -> tuple[TimelineState, list[str]]:
    """The state an OTIO JSON document describes, and what of it Snipix could not keep.

    A document exported by Snipix comes back exactly; one from another editor is mapped as
    far as Snipix can show it (tracks, clips, trims, speed, markers), and everything else
    is listed for the user rather than silently dropped. Raises `ValidationFailed` when the
    document is not an OTIO timeline or cannot make a valid Snipix timeline.
    """
    return _Importer(_read_timeline(document)).run()


def _read_timeline(document: str) -> Any:
    # OTIO's C++ JSON reader recurses per nesting level and crashed the whole
    # process (SIGSEGV) on ~100,000 nested brackets (a 200 KB body). Python's parser stops
    # at its recursion limit instead, and real documents nest ~15 levels (nested stacks and
    # other tools' metadata a few more): anything past MAX_OTIO_DEPTH never reaches OTIO.
    try:
        parsed = json.loads(document)
    except (ValueError, RecursionError):
        raise ValidationFailed(
            "This is not an OpenTimelineIO (.otio) file: it is not valid JSON."
        ) from None
    if nested_deeper_than(parsed, MAX_OTIO_DEPTH):
        raise ValidationFailed(
            f"This OpenTimelineIO file nests deeper than {MAX_OTIO_DEPTH} levels; "
            "no timeline needs that."
        )
    try:
        loaded = otio.adapters.read_from_string(document, OTIO_JSON)
    except (ValueError, KeyError, TypeError, RuntimeError, otio.exceptions.OTIOError) as exc:
        # OTIO's own text names C++ types; the user needs to know what to fix.
        reason = "it is not valid JSON" if "JSON parse error" in str(exc) else "it is malformed"
        raise ValidationFailed(f"This is not an OpenTimelineIO (.otio) file: {reason}.") from exc
    if isinstance(loaded, otio.schema.SerializableCollection):
        timelines = [item for item in loaded if isinstance(item, otio.schema.Timeline)]
        if len(timelines) == 1:
            return timelines[0]
        raise ValidationFailed(
            f"The OpenTimelineIO file holds {len(timelines)} timelines; export exactly one."
        )
    if not isinstance(loaded, otio.schema.Timeline):
        what = loaded.schema_name() if isinstance(loaded, otio.core.SerializableObject) else "?"
        raise ValidationFailed(
            f"The OpenTimelineIO file holds a {what or type(loaded).__name__}, not a Timeline."
        )
    return loaded


@dataclass
class _Ids:
    """Ids unique within one kind: the saved ones when free, else `<prefix><n>`."""

    prefix: str
    used: set[str] = field(default_factory=set)
    counter: int = 0

    def take(self, wanted: str | None = None) -> str:
        if wanted is not None and wanted not in self.used:
            self.used.add(wanted)
            return wanted
        while True:
            self.counter += 1
            candidate = f"{self.prefix}{self.counter}"
            if candidate not in self.used:
                self.used.add(candidate)
                return candidate


@dataclass
class _Placed[T]:
    """An imported object with where it sorts: saved index first, then document order."""

    item: T
    index: int | None
    sequence: int

    @property
    def key(self) -> tuple[int, int]:
        return (0, self.index) if self.index is not None else (1, self.sequence)


def _ordered[T](placed: Iterable[_Placed[T]]) -> list[T]:
    return [entry.item for entry in sorted(placed, key=lambda entry: entry.key)]


class _Importer:
    """One import: walks the OTIO timeline once, collecting state and unmapped notes."""

    def __init__(self, timeline: Any) -> None:
        self.timeline = timeline
        self.unmapped: list[str] = []
        self.saved = _snipix(timeline)
        self.fps = self._fps()
        self.half_frame = 0.5 / self.fps + FLOAT_SLACK
        self.track_ids = _Ids("t")
        self.clip_ids = _Ids("c")
        self.marker_ids = _Ids("m")
        self.tracks: dict[str, _Placed[Track]] = {}
        self.clips: list[_Placed[Clip]] = []
        self.markers: list[_Placed[Marker]] = []
        self.sequence = 0

    def note(self, text: str) -> None:
        self.unmapped.append(text)

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def run(self) -> tuple[TimelineState, list[str]]:
        stack = self.timeline.tracks
        for effect in stack.effects:
            self.note(f"effect {_effect_name(effect)!r} on the whole timeline")
        for position, child in enumerate(stack):
            if isinstance(child, otio.schema.Track):
                self.import_track(child, position)
            else:
                self.note(f"{_describe(child)} at the top level")
        for marker in stack.markers:
            self.import_marker(marker, offset=0.0)
        self.allow_found_overlaps()
        segments = self.saved_list("segments", Segment)
        layers = self.layers()
        try:
            state = TimelineState(
                tracks=_ordered(self.tracks.values()),
                clips=_ordered(self.clips),
                segments=segments,
                layers=layers,
                markers=_ordered(self.markers),
                fps=self.fps,
            )
        except ValidationError as exc:
            raise ValidationFailed(
                "The OpenTimelineIO timeline cannot be opened in Snipix: "
                + "; ".join(str(error["msg"]) for error in exc.errors()[:5]),
                details=exc.errors(include_url=False, include_context=False, include_input=False),
            ) from exc
        return state, list(dict.fromkeys(self.unmapped))

    # -- timeline --------------------------------------------------------------------

    def _fps(self) -> float:
        """The saved rate, else OTIO's global rate, else the first clip's, else 30."""
        for candidate in self._rates():
            if (
                isinstance(candidate, int | float)
                and not isinstance(candidate, bool)
                and math.isfinite(candidate)
                and 0 < candidate <= 1_000
            ):
                return float(candidate)
        return DEFAULT_FPS

    def _rates(self) -> Iterator[Any]:
        # Lazy: walking every clip of a large timeline is only worth it as a last resort.
        if self.saved is not None:
            yield self.saved.get("fps")
        start = self.timeline.global_start_time
        if start is not None:
            yield start.rate
        for clip in self.timeline.find_clips():
            if clip.source_range is not None:
                yield clip.source_range.duration.rate
                return

    def saved_list[M: BaseModel](self, key: str, model: type[M]) -> list[M]:
        entries = self.saved.get(key) if self.saved is not None else None
        if not isinstance(entries, list):
            return []
        kept: list[M] = []
        for entry in entries:
            try:
                kept.append(model.model_validate(entry))
            except ValidationError:
                self.note(f"an invalid saved {model.__name__.lower()} (ignored)")
        return kept

    def layers(self) -> list[Layer]:
        """Saved layers, without tracks that no longer exist (e.g. deleted elsewhere)."""
        kept: list[Layer] = []
        for layer in self.saved_list("layers", Layer):
            track_ids = [track_id for track_id in layer.track_ids if track_id in self.tracks]
            if len(track_ids) != len(layer.track_ids):
                self.note(f"layer {layer.name or layer.id!r}: tracks missing from the file")
                layer = layer.model_copy(update={"track_ids": track_ids})
            kept.append(layer)
        return kept

    # -- tracks ----------------------------------------------------------------------

    def import_track(self, otio_track: Any, position: int) -> None:
        label = otio_track.name or f"#{position + 1}"
        for effect in otio_track.effects:
            self.note(f"effect {_effect_name(effect)!r} on track {label}")
        meta = _snipix(otio_track)
        saved = self.saved_model(meta, Track, f"track {label}", extra=("index", "lane"))
        lane = meta.get("lane") if meta is not None else None
        if saved is not None and isinstance(lane, int) and lane > 0 and saved.id in self.tracks:
            # An overlap lane of a track already imported: its clips go back on that track.
            self.import_items(otio_track, saved.id, label)
            return
        kind = self.track_kind(otio_track, saved, label)
        switched_off = not otio_track.enabled
        if saved is None:
            track = Track(
                id=self.track_ids.take(),
                kind=kind,
                name=_label(otio_track.name),
                order=min(len(self.tracks), 10_000),
                muted=switched_off and kind is TrackKind.AUDIO,
                hidden=switched_off and kind is not TrackKind.AUDIO,
            )
        else:
            update: dict[str, Any] = {
                "id": self.track_ids.take(saved.id),
                "kind": kind,
                "name": _label(otio_track.name),
            }
            # Only a switch flipped in another editor overrides the saved flags.
            if switched_off != _switched_off(saved):
                update["muted" if kind is TrackKind.AUDIO else "hidden"] = switched_off
            track = saved.model_copy(update=update)
        self.tracks[track.id] = _Placed(
            track, _index(meta if saved is not None else None), self.next_sequence()
        )
        for marker in otio_track.markers:
            self.import_marker(marker, offset=0.0)
        self.import_items(otio_track, track.id, label)

    def track_kind(self, otio_track: Any, saved: Track | None, label: str) -> TrackKind:
        if otio_track.kind == otio.schema.TrackKind.Audio:
            return TrackKind.AUDIO
        if otio_track.kind != otio.schema.TrackKind.Video:
            self.note(f"track {label} of kind {otio_track.kind!r} (imported as video)")
        if saved is not None and saved.kind in VISUAL_KINDS:
            return saved.kind
        return TrackKind.VIDEO

    def import_items(self, otio_track: Any, track_id: str, label: str) -> None:
        """Clips placed where OTIO puts them: each item starts where the previous ends."""
        cursor = _time(0, self.fps)
        for item in otio_track:
            if isinstance(item, otio.schema.Transition):
                # Snipix's own transitions come back from their clip's metadata.
                if _snipix(item) is None:
                    kind = item.transition_type or item.name or "unnamed"
                    if kind == otio.schema.TransitionTypes.Custom and item.name:
                        kind = item.name
                    self.note(f"transition {kind!r} on track {label}")
                continue
            if not isinstance(item, otio.core.Item):
                self.note(f"{_describe(item)} on track {label}")
                continue
            try:
                duration = item.duration()
            except (otio.exceptions.OTIOError, ValueError):
                self.note(f"{_describe(item)} on track {label}: no duration (skipped)")
                continue
            if isinstance(item, otio.schema.Clip):
                self.import_clip(item, track_id, cursor.to_seconds(), duration)
            elif isinstance(item, otio.schema.Gap):
                pass
            elif isinstance(item, otio.schema.Stack):
                self.note(f"nested stack {item.name or '(unnamed)'!r} on track {label}")
            elif isinstance(item, otio.schema.Track):
                self.note(f"nested track {item.name or '(unnamed)'!r} on track {label}")
            else:
                self.note(f"{_describe(item)} on track {label}")
            cursor = cursor + duration

    # -- clips -----------------------------------------------------------------------

    def import_clip(self, otio_clip: Any, track_id: str, start: float, duration: Any) -> None:
        label = f"clip {otio_clip.name or '(unnamed)'!r}"
        if not otio_clip.enabled:
            self.note(f"{label} is disabled (imported as enabled)")
        speed, effects = self.clip_effects(otio_clip, label)
        media_ref = self.media_ref(otio_clip, label)
        trimmed = otio_clip.trimmed_range()
        available = otio_clip.media_reference.available_range
        # Source times count from the start of the media, whatever its first timecode.
        media_start = available.start_time if available is not None else None
        source_in = (
            (trimmed.start_time - media_start).to_seconds()
            if media_start is not None
            else trimmed.start_time.to_seconds()
        )
        if source_in < 0:
            self.note(f"{label}: trimmed to before the start of its media (skipped)")
            return
        seconds = duration.to_seconds()
        source_out = source_in + seconds * speed
        for marker in otio_clip.markers:
            self.import_marker(marker, offset=start - trimmed.start_time.to_seconds())

        meta = _snipix(otio_clip)
        saved = self.saved_model(
            meta,
            Clip,
            label,
            extra=("index",),
            fill={"trackId": track_id, "mediaRef": "", "name": ""},
        )
        fields: dict[str, Any] = {
            "track_id": track_id,
            "media_ref": media_ref,
            "name": _label(otio_clip.name),
            "effects": effects,
        }
        if saved is None or not self.unchanged(saved, start, source_in, seconds, speed):
            fields |= {
                "start": start,
                "source_in": source_in,
                "source_out": source_out,
                "speed": speed,
            }
        clip_id = saved.id if saved is not None else None
        base = saved.model_dump(by_alias=False) if saved is not None else {}
        try:
            clip = Clip.model_validate(base | fields | {"id": self.clip_ids.take(clip_id)})
        except ValidationError as exc:
            self.note(f"{label}: {_first_error(exc)}")
            return
        self.clips.append(
            _Placed(clip, _index(meta if saved is not None else None), self.next_sequence())
        )

    def unchanged(
        self, saved: Clip, start: float, source_in: float, seconds: float, speed: float
    ) -> bool:
        """Whether OTIO still places the clip where the saved exact seconds do."""
        return (
            abs(start - saved.start) <= self.half_frame
            and abs(source_in - saved.source_in) <= self.half_frame
            and abs(seconds - saved.duration) <= 2 * self.half_frame
            and math.isclose(speed, saved.speed, rel_tol=1e-12)
        )

    def clip_effects(self, otio_clip: Any, label: str) -> tuple[float, list[Effect]]:
        speed = 1.0
        effects: list[Effect] = []
        for effect in otio_clip.effects:
            name = _effect_name(effect)
            if isinstance(effect, otio.schema.FreezeFrame) or (
                isinstance(effect, otio.schema.LinearTimeWarp) and effect.time_scalar <= 0
            ):
                self.note(f"effect {name!r} on {label} (unsupported)")
            elif isinstance(effect, otio.schema.LinearTimeWarp):
                speed *= effect.time_scalar
            elif isinstance(effect, otio.schema.TimeEffect):
                self.note(f"effect {name!r} on {label} (unsupported)")
            else:
                # Snipix effect types are Snipix's own vocabulary: only effects it wrote
                # (its metadata present) can be trusted to mean what their name says.
                meta = _snipix(effect)
                saved = self.saved_model(meta, Effect, f"effect {name!r} on {label}")
                if saved is None:
                    if meta is None:
                        self.note(f"effect {name!r} on {label} (unsupported)")
                elif effect.effect_name and effect.effect_name != saved.type:
                    effects.append(saved.model_copy(update={"type": effect.effect_name[:64]}))
                else:
                    effects.append(saved)
        if not (math.isfinite(speed) and 0 < speed <= 100):
            self.note(f"speed {speed:g} on {label} (imported at normal speed)")
            speed = 1.0
        return speed, effects

    def media_ref(self, otio_clip: Any, label: str) -> str:
        reference = otio_clip.media_reference
        if isinstance(reference, otio.schema.ExternalReference):
            url: str = reference.target_url or ""
            if len(url) <= MAX_MEDIA_REF:
                return url
            self.note(f"{label}: media URL longer than {MAX_MEDIA_REF} characters")
        elif isinstance(reference, otio.schema.ImageSequenceReference):
            self.note(f"{label} with an image sequence reference")
        elif isinstance(reference, otio.schema.GeneratorReference):
            kind = reference.generator_kind or "generator"
            self.note(f"{label} with a generated source ({kind!r})")
        elif not isinstance(reference, otio.schema.MissingReference):
            self.note(f"{label} with a {_schema(reference)} media reference")
        return ""

    # -- markers ---------------------------------------------------------------------

    def import_marker(self, otio_marker: Any, *, offset: float) -> None:
        label = otio_marker.name or "(unnamed)"
        marked = otio_marker.marked_range
        time = offset + marked.start_time.to_seconds()
        if marked.duration.value > 0:
            self.note(f"marker {label!r}: duration dropped (Snipix markers are points in time)")
        if not 0 <= time <= MAX_SECONDS:
            self.note(f"marker {label!r} outside the timeline")
            return
        meta = _snipix(otio_marker)
        saved = self.saved_model(meta, Marker, f"marker {label!r}", extra=("index",))
        color = str(otio_marker.color or "").lower()[:MAX_COLOR]
        fields: dict[str, Any] = {"label": _label(otio_marker.name), "time": time, "color": color}
        if saved is not None:
            if abs(time - saved.time) <= self.half_frame:
                fields["time"] = saved.time
            if str(otio_marker.color or "").upper() == _otio_color(saved.color):
                fields["color"] = saved.color
        base = saved.model_dump(by_alias=False) if saved is not None else {}
        marker_id = self.marker_ids.take(saved.id if saved is not None else None)
        try:
            marker = Marker.model_validate(base | fields | {"id": marker_id})
        except ValidationError as exc:
            self.note(f"marker {label!r}: {_first_error(exc)}")
            return
        self.markers.append(
            _Placed(marker, _index(meta if saved is not None else None), self.next_sequence())
        )

    # -- helpers ---------------------------------------------------------------------

    def saved_model[M: BaseModel](
        self,
        meta: dict[str, Any] | None,
        model: type[M],
        label: str,
        *,
        extra: Sequence[str] = (),
        fill: Mapping[str, Any] | None = None,
    ) -> M | None:
        """The Snipix object saved in an object's metadata, or None (noted if it is broken)."""
        if meta is None:
            return None
        data = {key: value for key, value in meta.items() if key not in extra}
        try:
            return model.model_validate({**data, **(fill or {})})
        except ValidationError:
            self.note(f"{label}: invalid Snipix metadata (ignored)")
            return None

    def allow_found_overlaps(self) -> None:
        """Tracks whose imported clips overlap get `allowOverlap` rather than failing."""
        by_track: dict[str, list[Clip]] = {}
        for placed in self.clips:
            by_track.setdefault(placed.item.track_id, []).append(placed.item)
        for track_id, clips in by_track.items():
            placed_track = self.tracks[track_id]
            if placed_track.item.allow_overlap:
                continue
            ordered = sorted(clips, key=lambda clip: clip.start)
            if any(b.start < a.end - OVERLAP_TOLERANCE for a, b in pairwise(ordered)):
                track = placed_track.item
                placed_track.item = track.model_copy(update={"allow_overlap": True})
                self.note(
                    f"overlapping clips on track {track.name or track.id} (allowOverlap turned on)"
                )


def _snipix(obj: Any) -> dict[str, Any] | None:
    """`obj.metadata["snipix"]` as plain Python: None when absent, {} when unreadable.

    Our exports hold JSON text (see `_encode`); a mapping written by hand or by a script
    is accepted too. Unreadable metadata is not absent: validating {} fails, and the user
    hears that it was ignored.
    """
    value = obj.metadata.get(METADATA_KEY)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            loaded = json.loads(value)
        except (ValueError, RecursionError):
            return {}
        return loaded if isinstance(loaded, dict) else {}
    try:
        plain = _plain(value)
    except RecursionError:
        return {}
    return plain if isinstance(plain, dict) else {}


def _index(meta: dict[str, Any] | None) -> int | None:
    """Where the object stood in its state list, to restore the list order exactly."""
    index = meta.get("index") if meta is not None else None
    return index if isinstance(index, int) and not isinstance(index, bool) else None


def _plain(value: Any) -> Any:
    """OTIO's AnyDictionary/AnyVector as dicts and lists, which pydantic validates."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(item) for item in value]
    return value


def _label(name: str | None) -> str:
    return (name or "")[:MAX_LABEL]


def _schema(obj: Any) -> str:
    if isinstance(obj, otio.core.SerializableObject):
        name: str = obj.schema_name()
        return name
    return type(obj).__name__


def _describe(obj: Any) -> str:
    """E.g. "clip 'Shot 4'", "Wobble 'x'": OTIO's schema name, lower case when it is ours."""
    name = getattr(obj, "name", "") or "(unnamed)"
    schema = _schema(obj)
    return f"{schema.lower() if schema in {'Clip', 'Gap'} else schema} {name!r}"


def _effect_name(effect: Any) -> str:
    name: str = getattr(effect, "effect_name", "") or effect.name or _schema(effect)
    return name


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    return str(errors[0]["msg"]) if errors else "invalid"
