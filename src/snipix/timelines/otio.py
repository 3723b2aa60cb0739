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
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Final

import opentimelineio as otio
from pydantic import BaseModel, ValidationError

from snipix.errors import ValidationFailed
from snipix.timelines.schemas import (
    MAX_INTERCHANGE_CHARS,
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

__all__ = ["METADATA_KEY", "OTIO_JSON", "build_otio", "from_otio", "timeline_from_otio", "to_otio"]

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
    document: str = otio.adapters.write_to_string(build_otio(state, name=name), OTIO_JSON)
    return document


def build_otio(state: TimelineState, *, name: str) -> Any:
    """The state as an OTIO `Timeline` object, for any OTIO adapter to write."""
    fps = state.fps
    timeline = otio.schema.Timeline(name=name, global_start_time=_time(0, fps))
    timeline.metadata[METADATA_KEY] = _encode(
        {
            "formatVersion": FORMAT_VERSION,
            "fps": fps,
            "segments": [segment.model_dump(mode="json") for segment in state.segments],
            "layers": [layer.model_dump(mode="json") for layer in state.layers],
            "lengthSec": state.length_sec,
        }
    )
    kept = _restore(timeline, state.interchange)
    _restore_effects(timeline.tracks, kept)
    start = kept.get("globalStartTime")
    if isinstance(start, list) and len(start) == 2:
        timeline.global_start_time = otio.opentime.RationalTime(*start)
    # A trailing gap: every track runs to the timeline's end, as editors write it.
    length = _frame(state.length_sec, fps) if state.length_sec is not None else 0
    clips_by_track: dict[str, list[tuple[int, Clip]]] = {}
    for index, clip in enumerate(state.clips):
        clips_by_track.setdefault(clip.track_id, []).append((index, clip))
    ordered = sorted(enumerate(state.tracks), key=lambda pair: (pair[1].order, pair[0]))
    for index, track in ordered:
        lanes = _lanes(clips_by_track.get(track.id, []))
        for lane, clips in enumerate(lanes):
            timeline.tracks.append(_export_track(track, index, lane, clips, fps, length))
    for index, marker in enumerate(state.markers):
        timeline.tracks.markers.append(_export_marker(marker, index, fps))
    return timeline


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
    track: Track, index: int, lane: int, clips: list[tuple[int, Clip]], fps: float, length: int
) -> Any:
    audio = track.kind is TrackKind.AUDIO
    otio_track = otio.schema.Track(
        name=track.name if lane == 0 else f"{track.name} (overlap {lane})",
        kind=otio.schema.TrackKind.Audio if audio else otio.schema.TrackKind.Video,
    )
    # `enabled` is the one track switch OTIO readers honour: a muted audio track, a hidden
    # picture track.
    otio_track.enabled = not _switched_off(track)
    if lane == 0:
        _restore_effects(otio_track, _restore(otio_track, track.interchange))
    otio_track.metadata[METADATA_KEY] = _encode(
        {**track.model_dump(mode="json", exclude={"interchange"}), "index": index, "lane": lane}
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
        kept = _kept(clip.interchange)
        transition_in = _export_transition(clip, clip.transition_in, "in", frames, fps)
        if transition_in is None:
            transition_in = _kept_item(kept, "transitionBefore", otio.schema.Transition)
        # Two transitions in a row have no item between them to apply to.
        if transition_in is not None and not _ends_with_transition(otio_track):
            otio_track.append(transition_in)
        otio_track.append(_export_clip(clip, clip_index, frames, fps))
        transition_out = _export_transition(clip, clip.transition_out, "out", frames, fps)
        if transition_out is None:
            transition_out = _kept_item(kept, "transitionAfter", otio.schema.Transition)
        if transition_out is not None:
            otio_track.append(transition_out)
        cursor = end
    _pad(otio_track, length, fps)
    return otio_track


def _pad(otio_track: Any, length: int, fps: float) -> None:
    """A trailing gap so the track lasts `length` frames.

    Measured on the OTIO track, not from the last clip's end: a transition at either end
    of a track counts towards its duration in OTIO, and stops counting at the end once a
    gap follows it.
    """
    gap = None
    for _ in range(2):
        short = length - round(otio_track.duration().rescaled_to(fps).value)
        if short <= 0:
            return
        if gap is None:
            gap = otio.schema.Gap(duration=_time(short, fps))
            otio_track.append(gap)
        else:
            gap.source_range = otio.opentime.TimeRange(
                start_time=_time(0, fps), duration=gap.duration() + _time(short, fps)
            )


def _switched_off(track: Track) -> bool:
    return track.muted if track.kind is TrackKind.AUDIO else track.hidden


def _ends_with_transition(otio_track: Any) -> bool:
    return len(otio_track) > 0 and isinstance(otio_track[-1], otio.schema.Transition)


def _export_clip(clip: Clip, index: int, frames: int, fps: float) -> Any:
    kept = _kept(clip.interchange)
    reference = _kept_reference(kept, clip.media_ref)
    if reference is None:
        reference = (
            otio.schema.ExternalReference(target_url=clip.media_ref)
            if clip.media_ref
            else otio.schema.MissingReference()
        )
    start = _time(_frame(clip.source_in, fps), fps)
    available = reference.available_range
    if available is not None:
        # Source times count from the media's first frame; OTIO's from its first timecode.
        start = start + available.start_time
    otio_clip = otio.schema.Clip(
        name=clip.name,
        media_reference=reference,
        source_range=otio.opentime.TimeRange(start_time=start, duration=_time(frames, fps)),
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
    kept = _restore(otio_clip, clip.interchange)
    _restore_effects(otio_clip, kept)
    for text in kept.get("markers") or []:
        marker = _parse_kept(text, otio.schema.Marker)
        if marker is not None:
            otio_clip.markers.append(marker)
    if kept.get("enabled") is False:
        otio_clip.enabled = False
    # Effects, track, media and name are carried by OTIO itself; the rest only here.
    saved = clip.model_dump(
        mode="json", exclude={"effects", "track_id", "media_ref", "name", "interchange"}
    )
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
    otio_marker = otio.schema.Marker(
        name=marker.label,
        marked_range=otio.opentime.TimeRange(
            start_time=_time(_frame(marker.time, fps), fps), duration=_time(0, fps)
        ),
        color=_otio_color(marker.color),
    )
    kept = _restore(otio_marker, marker.interchange)
    duration = kept.get("duration")
    if isinstance(duration, list) and len(duration) == 2:
        otio_marker.marked_range = otio.opentime.TimeRange(
            start_time=otio_marker.marked_range.start_time,
            duration=otio.opentime.RationalTime(*duration),
        )
    otio_marker.metadata[METADATA_KEY] = _encode(
        {**marker.model_dump(mode="json", exclude={"interchange"}), "index": index}
    )
    return otio_marker


def _kept(interchange: str | None) -> dict[str, Any]:
    """The kept interchange JSON as a dict; {} when absent or unreadable.

    Kept text that no longer parses (edited by hand) is skipped: it only ever adds to an
    export, and the export must not fail because of it.
    """
    if not interchange:
        return {}
    try:
        kept = json.loads(interchange)
    except (ValueError, RecursionError):
        return {}
    return kept if isinstance(kept, dict) else {}


def _parse_kept(text: Any, kind: Any) -> Any | None:
    """One kept OTIO object (JSON text) of type `kind`, or None."""
    if not isinstance(text, str):
        return None
    try:
        item = otio.adapters.read_from_string(text, OTIO_JSON)
    except (ValueError, RuntimeError, otio.exceptions.OTIOError):
        return None
    return item if isinstance(item, kind) else None


def _kept_item(kept: Mapping[str, Any], key: str, kind: Any) -> Any | None:
    return _parse_kept(kept.get(key), kind)


def _kept_reference(kept: Mapping[str, Any], media_ref: str) -> Any | None:
    """The media reference the imported file had, while the clip still points at it.

    It carries what `mediaRef` cannot: the media's available range (its first timecode),
    a generator's kind and parameters, an image sequence, the reference's metadata. A
    clip since pointed at other media (in Snipix, or mapped to a project file) gets a
    plain reference instead.
    """
    text = kept.get("mediaReference")
    if not isinstance(text, str):
        return None
    try:
        reference = otio.adapters.read_from_string(text, OTIO_JSON)
    except (ValueError, RuntimeError, otio.exceptions.OTIOError):
        return None
    if not isinstance(reference, otio.core.MediaReference):
        return None
    if isinstance(reference, otio.schema.ExternalReference):
        return reference if reference.target_url == media_ref else None
    return reference if not media_ref else None


def _restore(obj: Any, interchange: str | None) -> dict[str, Any]:
    """Other tools' metadata written back onto `obj`; the rest of what was kept returned."""
    kept = _kept(interchange)
    metadata = kept.get("metadata")
    if isinstance(metadata, dict):
        for key, value in metadata.items():
            if key != METADATA_KEY:
                try:
                    obj.metadata[key] = value
                except (TypeError, ValueError):
                    continue
    return kept


def _restore_effects(obj: Any, kept: Mapping[str, Any]) -> None:
    """Effects kept as OTIO JSON appended to `obj` (after Snipix's own)."""
    effects = kept.get("effects")
    if not isinstance(effects, list):
        return
    for text in effects:
        try:
            effect = otio.adapters.read_from_string(str(text), OTIO_JSON)
        except (ValueError, RuntimeError, otio.exceptions.OTIOError):
            continue
        if isinstance(effect, otio.schema.Effect):
            obj.effects.append(effect)


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
    timeline, notes = _read_timeline(document)
    return _Importer(timeline, notes).run()


def timeline_from_otio(timeline: Any) -> tuple[TimelineState, list[str]]:
    """`from_otio` for an OTIO `Timeline` object another adapter read (EDL, XML...)."""
    return _Importer(timeline).run()


def _read_timeline(document: str) -> tuple[Any, list[str]]:
    """The one timeline of an OTIO JSON document, and notes on what reading it changed.

    OTIO's C++ JSON reader recurses per nesting level and crashed the whole process
    (SIGSEGV) on ~100,000 nested brackets (a 200 KB body). Python's parser stops at its
    recursion limit instead, and real documents nest ~15 levels (nested stacks and other
    tools' metadata a few more): anything past MAX_OTIO_DEPTH never reaches OTIO. The
    parsed document is also checked for what OTIO would refuse with a bare "malformed":
    schema versions newer than the installed OTIO reads (named, with where they are) and
    integers beyond int64 (valid JSON; kept as their decimal text and listed).
    """
    try:
        parsed = json.loads(_INF.sub(_infinity, document))
    except (ValueError, RecursionError) as exc:
        where = (
            f" (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise ValidationFailed(
            f"This is not an OpenTimelineIO (.otio) file: it is not valid JSON{where}."
        ) from None
    if nested_deeper_than(parsed, MAX_OTIO_DEPTH):
        raise ValidationFailed(
            f"This OpenTimelineIO file nests deeper than {MAX_OTIO_DEPTH} levels; "
            "no timeline needs that."
        )
    notes: list[str] = []
    _check_schema_versions(parsed)
    if _replace_unrepresentable(parsed, "$", notes):
        document = json.dumps(parsed, ensure_ascii=False)
    try:
        loaded = otio.adapters.read_from_string(document, OTIO_JSON)
    except (ValueError, KeyError, TypeError, RuntimeError, otio.exceptions.OTIOError) as exc:
        # OTIO's own text names C++ types; keep only its "near line N" for the user.
        text = str(exc)
        near = text[text.find("near line") :] if "near line" in text else ""
        reason = f"it is malformed ({near})" if near else "it is malformed"
        raise ValidationFailed(f"This is not an OpenTimelineIO (.otio) file: {reason}.") from exc
    if isinstance(loaded, otio.schema.SerializableCollection):
        timelines = [item for item in loaded if isinstance(item, otio.schema.Timeline)]
        if len(timelines) == 1:
            return timelines[0], notes
        raise ValidationFailed(
            f"The OpenTimelineIO file holds {len(timelines)} timelines; export exactly one."
        )
    if not isinstance(loaded, otio.schema.Timeline):
        what = loaded.schema_name() if isinstance(loaded, otio.core.SerializableObject) else "?"
        raise ValidationFailed(
            f"The OpenTimelineIO file holds a {what or type(loaded).__name__}, not a Timeline."
        )
    return loaded, notes


def _check_schema_versions(parsed: Any) -> None:
    """Refuse, naming them, schema versions newer than the installed OTIO can read.

    OTIO upgrades old versions itself but cannot downgrade a newer one (a file written by
    a newer OTIO); its own error says only "unsupported schema version: near line N".
    """
    known: Mapping[str, int] = otio.core.type_version_map()
    newer: dict[str, str] = {}
    stack: list[tuple[Any, str]] = [(parsed, "$")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            schema = item.get("OTIO_SCHEMA")
            if isinstance(schema, str) and "." in schema:
                name, _, version = schema.rpartition(".")
                if name in known and version.isdigit() and int(version) > known[name]:
                    newer.setdefault(
                        schema,
                        f"{schema} at {path} (this server reads "
                        f"{name} up to version {known[name]})",
                    )
            stack.extend((child, f"{path}.{key}") for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    if newer:
        raise ValidationFailed(
            "This OpenTimelineIO file was written by a newer OpenTimelineIO than this server "
            f"(version {otio.__version__}) reads: unsupported schema version "
            + "; ".join(sorted(newer.values()))
            + ". Export it for an older OpenTimelineIO (most editors can)."
        )


INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
# OTIO writes and reads non-finite doubles as Inf, -Inf, Infinity, NaN (RapidJSON's
# extension); Python reads all but the bare `Inf`. A JSON string is matched first so
# nothing inside one is touched.
_INF: Final = re.compile(r'"(?:[^"\\]|\\.)*"|(?<![A-Za-z0-9_])Inf(?![A-Za-z0-9_])')


def _infinity(match: re.Match[str]) -> str:
    text = match.group(0)
    return text if text.startswith('"') else "Infinity"


def _replace_unrepresentable(item: Any, path: str, notes: list[str]) -> bool:
    """Numbers the state cannot hold replaced by their text, in place, each noted.

    Integers beyond int64 (OTIO's limit; e.g. another tool's 128-bit id) and non-finite
    floats (JSON answers cannot carry them) are valid in an OTIO file: the value is kept
    exactly as text and the note names the field.
    """
    changed = False
    stack: list[tuple[Any, str]] = [(item, path)]
    while stack:
        node, where = stack.pop()
        entries: Iterable[tuple[Any, Any, str]]
        if isinstance(node, dict):
            entries = [(node, key, f"{where}.{key}") for key in node]
        elif isinstance(node, list):
            entries = [(node, index, f"{where}[{index}]") for index in range(len(node))]
        else:
            continue
        for container, key, child_path in entries:
            value = container[key]
            if isinstance(value, int) and not isinstance(value, bool):
                if not INT64_MIN <= value <= INT64_MAX:
                    container[key] = str(value)
                    notes.append(f"{child_path}: integer beyond 64 bits (kept as its decimal text)")
                    changed = True
            elif isinstance(value, float) and not math.isfinite(value):
                container[key] = str(value)
                notes.append(f"{child_path}: non-finite number {value} (kept as text)")
                changed = True
            elif isinstance(value, dict | list):
                stack.append((value, child_path))
    notes.sort()
    return changed


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

    def __init__(self, timeline: Any, notes: Sequence[str] = ()) -> None:
        self.timeline = timeline
        self.unmapped: list[str] = list(notes)
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
        # The clip the last item placed (None: it was no clip), for transitions.
        self.last_clip: _Placed[Clip] | None = None
        self.last_track: str | None = None

    def note(self, text: str) -> None:
        self.unmapped.append(text)

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def run(self) -> tuple[TimelineState, list[str]]:
        stack = self.timeline.tracks
        kept: dict[str, Any] = {}
        effects = self.foreign_effects(stack.effects, "the whole timeline")
        if effects:
            kept["effects"] = effects
        start = self.timeline.global_start_time
        if start is not None and start.value != 0:
            # Timecode the timeline starts at (e.g. 01:00:00:00): Snipix starts at 0.
            kept["globalStartTime"] = [start.value, start.rate]
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
                length_sec=self.length(stack),
                interchange=_interchange(self.timeline, kept, self.note),
            )
        except ValidationError as exc:
            raise ValidationFailed(
                "The OpenTimelineIO timeline cannot be opened in Snipix: "
                + "; ".join(str(error["msg"]) for error in exc.errors()[:5]),
                details=exc.errors(include_url=False, include_context=False, include_input=False),
            ) from exc
        return state, list(dict.fromkeys(self.unmapped))

    # -- timeline --------------------------------------------------------------------

    def length(self, stack: Any) -> float | None:
        """Where the timeline ends when that is after its last clip (a trailing gap).

        The saved exact seconds win while the OTIO structure still ends there (to within
        the export's frame rounding); an end that is only the last clip's end rounded to a
        frame is no trailing gap.
        """
        try:
            seconds = float(stack.duration().to_seconds())
        except (otio.exceptions.OTIOError, ValueError):
            return None
        last = max((placed.item.end for placed in self.clips), default=0.0)
        if not seconds > last + self.half_frame:
            return None
        saved = self.saved.get("lengthSec") if self.saved is not None else None
        if isinstance(saved, int | float) and abs(float(saved) - seconds) <= self.half_frame:
            seconds = float(saved)
        if seconds > MAX_SECONDS:
            self.note(f"the timeline's end at {seconds:g} s (past {MAX_SECONDS:g} s, dropped)")
            return None
        return seconds

    def foreign_effects(self, effects: Iterable[Any], where: str) -> list[str]:
        """Effects Snipix does not apply, as OTIO JSON kept for export (each noted)."""
        kept: list[str] = []
        for effect in effects:
            self.note(f"effect {_effect_name(effect)!r} on {where} (kept for export, not applied)")
            kept.append(otio.adapters.write_to_string(effect, OTIO_JSON))
        return kept

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
        effects = self.foreign_effects(otio_track.effects, f"track {label}")
        interchange = _interchange(otio_track, {"effects": effects} if effects else {}, self.note)
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
                interchange=interchange,
            )
        else:
            update: dict[str, Any] = {
                "id": self.track_ids.take(saved.id),
                "kind": kind,
                "name": _label(otio_track.name),
                "interchange": interchange,
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

    def import_items(
        self,
        otio_track: Any,
        track_id: str,
        label: str,
        *,
        offset: Any = None,
        window: Any = None,
        depth: int = 0,
    ) -> None:
        """Clips placed where OTIO puts them: each item starts where the previous ends.

        Inside a nested stack or track, `window` is the part of the nested item's own time
        that shows (its trimmed range) and `offset` maps that time onto the timeline, so
        every clip lands at the time it plays, trimmed to what shows.
        """
        zero = _time(0, self.fps)
        offset = zero if offset is None else offset
        cursor = zero
        # Another editor's transition spans two items; the state's transitions belong to
        # one clip. It is kept on the clip before it (or, first on a track, the clip after
        # it) and written back there on export.
        pending: str | None = None
        for item in otio_track:
            if isinstance(item, otio.schema.Transition):
                # Snipix's own transitions come back from their clip's metadata.
                if _snipix(item) is None:
                    kind = item.transition_type or item.name or "unnamed"
                    if kind == otio.schema.TransitionTypes.Custom and item.name:
                        kind = item.name
                    text = otio.adapters.write_to_string(item, OTIO_JSON)
                    previous = self.last_clip if self.last_track == track_id else None
                    if previous is not None and _keep(previous, "transitionAfter", text):
                        where = f"after clip {previous.item.name or previous.item.id!r}"
                    else:
                        pending = text
                        where = "before the next clip"
                    self.note(
                        f"transition {kind!r} on track {label} (kept {where} for export, not shown)"
                    )
                continue
            if not isinstance(item, otio.core.Item):
                self.note(f"{_describe(item)} on track {label}")
                continue
            try:
                duration = item.duration()
            except (otio.exceptions.OTIOError, ValueError):
                self.note(f"{_describe(item)} on track {label}: no duration (skipped)")
                continue
            self.last_clip = None
            self.place_item(item, track_id, label, cursor, duration, offset, window, depth)
            placed = self.last_clip
            if pending is not None and placed is not None:
                _keep(placed, "transitionBefore", pending)
                pending = None
            self.last_track = track_id
            cursor = cursor + duration
        if pending is not None:
            self.note(f"a transition at the end of track {label} (no clip to keep it on)")

    def place_item(
        self,
        item: Any,
        track_id: str,
        label: str,
        local: Any,
        duration: Any,
        offset: Any,
        window: Any,
        depth: int,
    ) -> None:
        """One item at `local` (its parent's time), cut to the visible `window` if any."""
        begin, end = local, local + duration
        if window is not None:
            begin = max(begin, window.start_time)
            end = min(end, window.end_time_exclusive())
            if not begin < end:
                return
        front = begin - local
        if isinstance(item, otio.schema.Clip):
            self.import_clip(item, track_id, (offset + begin).to_seconds(), end - begin, front)
        elif isinstance(item, otio.schema.Gap):
            pass
        elif isinstance(item, otio.schema.Stack | otio.schema.Track):
            self.import_nested(item, track_id, label, offset + begin - front, depth)
        else:
            self.note(f"{_describe(item)} on track {label}")

    def import_nested(
        self, item: Any, track_id: str, label: str, placed_at: Any, depth: int
    ) -> None:
        """A nested stack or track flattened onto the track that holds it.

        The state has no compound clips, so each clip inside goes on the holding track at
        the time it plays (overlapping lanes turn on allowOverlap, which the export splits
        into lanes again); only the grouping is lost, and that is listed.
        """
        kind = "nested stack" if isinstance(item, otio.schema.Stack) else "nested track"
        name = item.name or "(unnamed)"
        self.note(
            f"{kind} {name!r} on track {label}: flattened (its clips placed on the track at "
            "the times they play)"
        )
        for effect in item.effects:
            self.note(f"effect {_effect_name(effect)!r} on {kind} {name!r} (not applied)")
        window = item.trimmed_range()
        # The nested item's time `window.start_time` plays at `placed_at`.
        offset = placed_at - window.start_time
        for marker in item.markers:
            self.import_marker(marker, offset=offset.to_seconds())
        if isinstance(item, otio.schema.Track):
            self.import_items(item, track_id, label, offset=offset, window=window, depth=depth + 1)
            return
        for child in item:
            if isinstance(child, otio.schema.Track):
                self.import_items(
                    child, track_id, label, offset=offset, window=window, depth=depth + 1
                )
            elif isinstance(child, otio.core.Item):
                try:
                    duration = child.duration()
                except (otio.exceptions.OTIOError, ValueError):
                    self.note(f"{_describe(child)} in {kind} {name!r}: no duration (skipped)")
                    continue
                zero = _time(0, self.fps)
                self.place_item(child, track_id, label, zero, duration, offset, window, depth + 1)
            else:
                self.note(f"{_describe(child)} in {kind} {name!r}")

    # -- clips -----------------------------------------------------------------------

    def import_clip(
        self, otio_clip: Any, track_id: str, start: float, duration: Any, front: Any = None
    ) -> None:
        """One clip at `start` for `duration`; `front` is what a nested window cut off its
        head (in its parent's time), so its source starts that much later."""
        label = f"clip {otio_clip.name or '(unnamed)'!r}"
        kept: dict[str, Any] = {}
        if not otio_clip.enabled:
            self.note(f"{label} is disabled (imported as enabled; kept disabled for export)")
            kept["enabled"] = False
        speed, effects, foreign = self.clip_effects(otio_clip, label)
        if foreign:
            kept["effects"] = foreign
        media_ref = self.media_ref(otio_clip, label)
        reference = otio_clip.media_reference
        if not isinstance(reference, otio.schema.MissingReference) and (
            not isinstance(reference, otio.schema.ExternalReference)
            or reference.available_range is not None
            or reference.name
            or reference.metadata
        ):
            kept["mediaReference"] = otio.adapters.write_to_string(reference, OTIO_JSON)
        trimmed = otio_clip.trimmed_range()
        available = otio_clip.media_reference.available_range
        # Source times count from the start of the media, whatever its first timecode.
        media_start = available.start_time if available is not None else None
        source_in = (
            (trimmed.start_time - media_start).to_seconds()
            if media_start is not None
            else trimmed.start_time.to_seconds()
        )
        cut = front.to_seconds() if front is not None else 0.0
        source_in += cut * speed
        if source_in < 0:
            self.note(f"{label}: trimmed to before the start of its media (skipped)")
            return
        seconds = duration.to_seconds()
        source_out = source_in + seconds * speed
        outside: list[str] = []
        for marker in otio_clip.markers:
            offset = start - cut - trimmed.start_time.to_seconds()
            if not self.import_marker(marker, offset=offset, on_clip=True):
                self.note(
                    f"marker {marker.name or '(unnamed)'!r} on {label}: before the timeline's "
                    "start (kept on the clip for export, not shown)"
                )
                outside.append(otio.adapters.write_to_string(marker, OTIO_JSON))
        if outside:
            kept["markers"] = outside

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
            "interchange": _interchange(otio_clip, kept, self.note),
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
        placed = _Placed(clip, _index(meta if saved is not None else None), self.next_sequence())
        self.clips.append(placed)
        self.last_clip = placed

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

    def clip_effects(self, otio_clip: Any, label: str) -> tuple[float, list[Effect], list[str]]:
        """Speed, Snipix effects, and other effects kept (as OTIO JSON) for export."""
        speed = 1.0
        effects: list[Effect] = []
        foreign: list[Any] = []
        for effect in otio_clip.effects:
            name = _effect_name(effect)
            if isinstance(effect, otio.schema.FreezeFrame) or (
                isinstance(effect, otio.schema.LinearTimeWarp) and effect.time_scalar <= 0
            ):
                foreign.append(effect)
            elif isinstance(effect, otio.schema.LinearTimeWarp):
                speed *= effect.time_scalar
            elif isinstance(effect, otio.schema.TimeEffect):
                foreign.append(effect)
            else:
                # Snipix effect types are Snipix's own vocabulary: only effects it wrote
                # (its metadata present) can be trusted to mean what their name says.
                meta = _snipix(effect)
                saved = self.saved_model(meta, Effect, f"effect {name!r} on {label}")
                if saved is None:
                    if meta is None:
                        foreign.append(effect)
                elif effect.effect_name and effect.effect_name != saved.type:
                    effects.append(saved.model_copy(update={"type": effect.effect_name[:64]}))
                else:
                    effects.append(saved)
        if not (math.isfinite(speed) and 0 < speed <= 100):
            self.note(f"speed {speed:g} on {label} (imported at normal speed)")
            speed = 1.0
        return speed, effects, self.foreign_effects(foreign, label)

    def media_ref(self, otio_clip: Any, label: str) -> str:
        reference = otio_clip.media_reference
        if isinstance(reference, otio.schema.ExternalReference):
            url: str = reference.target_url or ""
            if len(url) <= MAX_MEDIA_REF:
                return url
            self.note(f"{label}: media URL longer than {MAX_MEDIA_REF} characters")
        elif isinstance(reference, otio.schema.ImageSequenceReference):
            self.note(f"{label} with an image sequence reference (kept for export, not played)")
        elif isinstance(reference, otio.schema.GeneratorReference):
            kind = reference.generator_kind or "generator"
            self.note(f"{label} with a generated source ({kind!r}; kept for export, not played)")
        elif not isinstance(reference, otio.schema.MissingReference):
            self.note(f"{label} with a {_schema(reference)} media reference (kept for export)")
        return ""

    # -- markers ---------------------------------------------------------------------

    def import_marker(self, otio_marker: Any, *, offset: float, on_clip: bool = False) -> bool:
        """One marker at `offset` + its time; False when it lies outside the timeline.

        A clip's marker outside the timeline (in media the clip does not use) is kept on
        the clip by the caller rather than listed as lost.
        """
        label = otio_marker.name or "(unnamed)"
        marked = otio_marker.marked_range
        time = offset + marked.start_time.to_seconds()
        kept: dict[str, Any] = {}
        if marked.duration.value > 0:
            # Snipix shows a point; the range goes back out on export.
            kept["duration"] = [marked.duration.value, marked.duration.rate]
        if not 0 <= time <= MAX_SECONDS:
            if not on_clip:
                self.note(f"marker {label!r} outside the timeline")
            return False
        meta = _snipix(otio_marker)
        saved = self.saved_model(meta, Marker, f"marker {label!r}", extra=("index",))
        color = str(otio_marker.color or "").lower()[:MAX_COLOR]
        fields: dict[str, Any] = {
            "label": _label(otio_marker.name),
            "time": time,
            "color": color,
            "interchange": _interchange(otio_marker, kept, self.note),
        }
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
            return True
        self.markers.append(
            _Placed(marker, _index(meta if saved is not None else None), self.next_sequence())
        )
        return True

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


def _keep(placed: _Placed[Clip], key: str, text: str) -> bool:
    """Add `key: text` to a placed clip's kept interchange; False if it has one already or
    the result would exceed the bound."""
    kept = _kept(placed.item.interchange)
    if key in kept:
        return False
    kept[key] = text
    encoded = json.dumps(kept, ensure_ascii=False, separators=(",", ":"))
    if len(encoded) > MAX_INTERCHANGE_CHARS:
        return False
    placed.item = placed.item.model_copy(update={"interchange": encoded})
    return True


def _interchange(
    obj: Any, kept: dict[str, Any], note: Callable[[str], None] | None = None
) -> str | None:
    """What `obj` carries that the state has no field for, as JSON text (None: nothing).

    Other tools' metadata (everything but ours) plus `kept` (effects, ranges, switches);
    `_restore` writes it back on export. More than the state bounds is dropped, noted.
    """
    metadata = {
        str(key): _plain(value) for key, value in obj.metadata.items() if key != METADATA_KEY
    }
    payload = {**({"metadata": metadata} if metadata else {}), **kept}
    if not payload:
        return None
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        text = None
    if text is None or len(text) > MAX_INTERCHANGE_CHARS:
        if note is not None:
            note(
                f"{_describe(obj)}: metadata and effects larger than {MAX_INTERCHANGE_CHARS} "
                "characters or not finite (dropped)"
            )
        return None
    return text


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
