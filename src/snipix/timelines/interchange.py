"""Timelines to and from other editors' files, through OpenTimelineIO's adapter plugins.

Every format goes through the OTIO mapping in `snipix.timelines.otio`: an export builds the
OTIO timeline and hands it to the format's adapter (CMX 3600 EDL, Final Cut Pro 7 XML as
Premiere and Resolve read it, Final Cut Pro X XML, Kdenlive); an import reads the file with
the adapter and maps the OTIO timeline it yields exactly as an `.otio` file. So what the
state can hold, and what is listed in `unmapped`, is one set of rules for every format.

A format carries less than OTIO: an EDL has one picture track and no audio tracks, Final
Cut XML keeps no gap after the last clip, and none of them keep Snipix's own metadata
(exact seconds, volumes, segments, layers). Those losses are reported, never silent: an
export lists what the format dropped, found by reading the written file back with the same
adapter and comparing it with what was written.

Pure functions, CPU-bound (the adapters parse XML and walk the timeline in Python): the
HTTP edge runs them in a worker thread, off the event loop.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final
from urllib.parse import unquote, urlparse
from xml.parsers import expat

import opentimelineio as otio

from snipix.errors import ValidationFailed
from snipix.timelines.otio import OTIO_JSON, build_otio, from_otio, timeline_from_otio
from snipix.timelines.schemas import TimelineState, TrackKind

__all__ = [
    "EDL_DEFAULT_FPS",
    "FORMATS",
    "Exported",
    "Format",
    "MediaFiles",
    "export_timeline",
    "format_for",
    "import_timeline",
]


@dataclass(frozen=True)
class Format:
    """One interchange format: its name in the API, OTIO adapter, file suffix, media type."""

    name: str
    title: str
    adapter: str
    suffix: str
    media_type: str


FORMATS: Final[dict[str, Format]] = {
    fmt.name: fmt
    for fmt in (
        Format("otio", "OpenTimelineIO", OTIO_JSON, "otio", "application/json"),
        Format("edl", "CMX 3600 EDL", "cmx_3600", "edl", "text/plain"),
        Format("fcp-xml", "Final Cut Pro 7 XML", "fcp_xml", "xml", "application/xml"),
        Format("fcpxml", "Final Cut Pro X XML", "fcpx_xml", "fcpxml", "application/xml"),
        Format("kdenlive", "Kdenlive project", "kdenlive", "kdenlive", "application/xml"),
    )
}
# Content types that name one format; plain XML is told apart by its root element.
_MEDIA_TYPES: Final[dict[str, str]] = {
    "application/json": "otio",
    "application/vnd.opentimelineio+json": "otio",
    "application/x-otio+json": "otio",
    "text/x-edl": "edl",
    "application/x-edl": "edl",
    "text/plain": "edl",
    "application/x-fcp-xml": "fcp-xml",
    "application/x-fcpxml": "fcpxml",
    "application/vnd.apple.fcpxml": "fcpxml",
    "application/x-kdenlive": "kdenlive",
    "application/x-kdenlive+xml": "kdenlive",
}
# The rate an EDL's timecodes are read at when nothing better is known (the adapter's).
EDL_DEFAULT_FPS: Final = 24.0
# The longest time before an EDL's first event taken as a leading gap (see
# _restore_edl_start).
EDL_MAX_LEAD: Final = 600.0
_XML_TYPES: Final = frozenset({"application/xml", "text/xml"})
_XML_ROOTS: Final[dict[str, str]] = {"xmeml": "fcp-xml", "fcpxml": "fcpxml", "mlt": "kdenlive"}
_ROOT: Final = re.compile(r"<\s*([A-Za-z_][\w.-]*)")


def format_for(requested: str | None, content_type: str | None, head: bytes) -> Format:
    """The format of an uploaded file: `?format=` first, else its Content-Type.

    Generic XML content types are narrowed by the root element, since Final Cut 7, Final
    Cut X and Kdenlive files are all served as XML.
    """
    if requested is not None:
        fmt = FORMATS.get(requested)
        if fmt is None:
            raise ValidationFailed(
                f"Unknown timeline format {requested!r}; use one of: {', '.join(FORMATS)}."
            )
        return fmt
    media_type = (content_type or "application/json").split(";")[0].strip().lower()
    if media_type in _MEDIA_TYPES:
        return FORMATS[_MEDIA_TYPES[media_type]]
    if media_type in _XML_TYPES:
        root = _xml_root(head)
        if root in _XML_ROOTS:
            return FORMATS[_XML_ROOTS[root]]
        raise ValidationFailed(
            f"This XML file's root element is <{root or '?'}>; a timeline is <xmeml> "
            "(Final Cut Pro 7 XML), <fcpxml> (Final Cut Pro X) or <mlt> (Kdenlive). "
            "Or name the format with ?format=."
        )
    raise ValidationFailed(
        f"Cannot tell the timeline format from Content-Type {media_type!r}; "
        f"name it with ?format= ({', '.join(FORMATS)})."
    )


def _xml_root(head: bytes) -> str | None:
    text = head[:4_096].decode("utf-8", errors="replace")
    # Past the XML declaration, comments and the doctype.
    text = re.sub(r"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", "", text, flags=re.DOTALL)
    match = _ROOT.search(text)
    return match.group(1).lower() if match else None


@dataclass(frozen=True)
class MediaFiles:
    """The project's own files, by file name, so media paths of other tools map to them.

    Editors write absolute paths of their machine (`file:///Volumes/x/interview.mov`);
    what identifies the file across machines is its name. `default` is what a clip
    without a media reference plays (the project's source) when exported.
    """

    by_name: Mapping[str, str] = field(default_factory=dict)
    default: str | None = None

    def match(self, url: str) -> str | None:
        name = _file_name(url)
        return self.by_name.get(name) if name else None


def _file_name(url: str) -> str:
    path = unquote(urlparse(url).path) if "://" in url else url
    return posixpath.basename(path.replace("\\", "/")).lower()


@dataclass(frozen=True)
class Exported:
    """An export: the file's text and what the format could not carry."""

    document: str
    format: Format
    unmapped: list[str]


def export_timeline(
    state: TimelineState, *, name: str, fmt: Format, media: MediaFiles | None = None
) -> Exported:
    """The state as a `fmt` file, and what of it that format could not carry."""
    timeline = build_otio(state, name=name)
    if fmt.adapter == OTIO_JSON:
        return Exported(otio.adapters.write_to_string(timeline, OTIO_JSON), fmt, [])
    unmapped: list[str] = []
    _map_media_out(timeline, media or MediaFiles())
    _prepare(timeline, state.fps, fmt, unmapped)
    if fmt.name == "edl":
        _keep_one_video_track(timeline, state, unmapped)
        _name_reels(timeline)
        if not any(True for _ in timeline.find_clips()):
            # The EDL writer fails on a track with no event; an EDL of nothing is a title.
            return Exported(f"TITLE: {_edl_title(name)}\n", fmt, unmapped)
    if fmt.name == "fcpxml":
        _primary_storyline(timeline, state.fps)
        _bound_connected_clips(timeline)
    written = _write(timeline, fmt, state.fps)
    back = _read(written, fmt, state.fps)
    if fmt.name == "edl":
        _restore_edl_start(back, written, state.fps)
    unmapped.extend(_losses(timeline, back, fmt))
    unmapped.append(
        f"Snipix's own details (exact sub-frame times, volume, segments, layers, text/overlay "
        f"track kinds) are not carried by {fmt.title}; cuts are kept to the frame"
    )
    return Exported(written, fmt, list(dict.fromkeys(unmapped)))


def import_timeline(
    data: bytes,
    *,
    fmt: Format,
    media: MediaFiles | None = None,
    fps: float = EDL_DEFAULT_FPS,
) -> tuple[TimelineState, list[str]]:
    """The state a `fmt` file describes, and what of it Snipix could not keep.

    `fps` is the frame rate an EDL's timecodes count in (an EDL does not say); the other
    formats carry their own. Raises `ValidationFailed` naming the format and, where the
    parser says, the line or element, when the file is not a readable `fmt` file.
    """
    text = _decode(data, fmt)
    if fmt.adapter == OTIO_JSON:
        state, unmapped = from_otio(text)
    else:
        timeline = _read(text, fmt, fps)
        if fmt.name == "edl":
            _restore_edl_start(timeline, text, fps)
        state, unmapped = timeline_from_otio(timeline)
    if media is not None and media.by_name:
        state, notes = _map_media_in(state, media)
        unmapped.extend(notes)
    return state, unmapped


def _decode(data: bytes, fmt: Format) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if fmt.name == "edl":
            # EDLs predate UTF-8; Latin-1 reads any byte.
            return data.decode("latin-1")
        raise ValidationFailed(
            f"This is not a {fmt.title} file: it is not UTF-8 text (byte {exc.start})."
        ) from None


# Adapters report a bad file with whatever their parser raises: ElementTree's ParseError (with
# line and column), the EDL parser's EDLParseError, or plain Python errors from walking an
# element that is not there. None of it may escape as a 500.
_READ_ERRORS: Final = (
    # xml.etree's ParseError is a SyntaxError.
    SyntaxError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    RuntimeError,
    ArithmeticError,
    otio.exceptions.OTIOError,
)


# Deepest XML element nesting read (real files: ~12 for Final Cut X, ~20 for Final Cut 7
# with nested sequences); the adapters walk elements recursively.
MAX_XML_DEPTH: Final = 64


def _check_xml(text: str, fmt: Format) -> None:
    """Well-formed XML within the depth bound, checked by expat before any adapter walks it,
    so a broken file is named by line and column and a deep one never reaches them."""
    parser = expat.ParserCreate()
    depth = 0

    def start(_name: str, _attributes: Any) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_XML_DEPTH:
            raise ValidationFailed(
                f"This {fmt.title} file nests elements deeper than {MAX_XML_DEPTH} levels "
                f"(line {parser.CurrentLineNumber}); no timeline needs that."
            )

    def end(_name: str) -> None:
        nonlocal depth
        depth -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        raise ValidationFailed(
            f"This is not a valid {fmt.title} file: {expat.errors.messages[exc.code]} "
            f"(line {exc.lineno}, column {exc.offset + 1})",
            details=[{"format": fmt.name}],
        ) from None


def _read(text: str, fmt: Format, fps: float) -> Any:
    _quiet(fmt)
    if fmt.suffix != "edl":
        _check_xml(text, fmt)
    options: dict[str, Any] = {"rate": fps} if fmt.name == "edl" else {}
    try:
        loaded = otio.adapters.read_from_string(text, fmt.adapter, **options)
    except _READ_ERRORS as exc:
        hint = ""
        if fmt.name == "edl" and "frames beyond" in str(exc):
            hint = f" (read at {fps:g} fps; an EDL does not say its rate: pass ?fps=)"
        raise ValidationFailed(
            f"This is not a valid {fmt.title} file: {_where(exc)}{hint}",
            details=[{"format": fmt.name}],
        ) from None
    if isinstance(loaded, otio.schema.SerializableCollection):
        timelines = [item for item in loaded if isinstance(item, otio.schema.Timeline)]
        if len(timelines) != 1:
            raise ValidationFailed(
                f"The {fmt.title} file holds {len(timelines)} timelines; export exactly one."
            )
        loaded = timelines[0]
    if not isinstance(loaded, otio.schema.Timeline):
        raise ValidationFailed(f"The {fmt.title} file holds no timeline.")
    return loaded


def _where(exc: BaseException) -> str:
    """The parser's message, one line, bounded: it names the line or element at fault."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, KeyError | AttributeError | IndexError):
        text = f"an expected element or field is missing ({text})"
    return text[:300] + ("…" if len(text) > 300 else "")


def _write(timeline: Any, fmt: Format, fps: float) -> str:
    _quiet(fmt)
    options: dict[str, Any] = {"rate": fps} if fmt.name == "edl" else {}
    try:
        written: str = otio.adapters.write_to_string(timeline, fmt.adapter, **options)
    except (*_READ_ERRORS, otio.exceptions.NotSupportedError) as exc:
        raise ValidationFailed(
            f"This timeline cannot be written as {fmt.title}: {_where(exc)}"
        ) from None
    return written


_PATCHED: set[str] = set()
_PATCH_LOCK = threading.Lock()


def _quiet(fmt: Format) -> None:
    """Two fixes to pinned adapter versions, made once, before their first use.

    - Kdenlive (0.0.3) `print`s a deprecation banner to stdout on every read and write; a
      server's stdout is its log. A module-level `print` shadows the builtin for that
      module alone.
    - Final Cut Pro X (1.0) reads a time "29/25s" as `int(29 / 25 * 25)`, 28 frames: float
      noise truncated, so a clip comes back a frame early. Its module-level
      `to_rational_time` and its reader's `FcpxXml._number_of_frames` are replaced by the
      same conversions in exact fractions, rounded.
    """
    if fmt.adapter not in ("kdenlive", "fcpx_xml") or fmt.adapter in _PATCHED:
        return
    with _PATCH_LOCK:
        module = otio.adapters.from_name(fmt.adapter).module()
        if fmt.adapter == "kdenlive":
            module.print = lambda *args, **kwargs: None
        else:
            module.to_rational_time = _fcpx_rational_time
            module.FcpxXml._number_of_frames = _fcpx_number_of_frames
        _PATCHED.add(fmt.adapter)


def _fcpx_seconds(value: str) -> Fraction:
    numerator, _, denominator = value.removesuffix("s").partition("/")
    return Fraction(numerator) / Fraction(denominator or "1")


def _fcpx_number_of_frames(reader: Any, time_value: str | None, format_id: str) -> int:
    """`FcpxXml._number_of_frames` in exact fractions (see `_quiet`)."""
    if time_value is None or time_value == "0s":
        return 0
    total, rate = reader._format_frame_duration(format_id)
    return round(_fcpx_seconds(time_value) * Fraction(rate) / Fraction(total))


def _fcpx_rational_time(rational_number: str | None, fps: float) -> Any:
    """FCP X's "n/ds" (or "ns") as whole frames at `fps`, exactly (see `_quiet`)."""
    if rational_number is None or rational_number == "0s":
        return otio.opentime.RationalTime(0, int(fps))
    seconds = _fcpx_seconds(rational_number)
    return otio.opentime.RationalTime(round(seconds * Fraction(fps)), int(fps))


def _prepare(timeline: Any, fps: float, fmt: Format, unmapped: list[str]) -> None:
    """What the adapters need that a plain OTIO timeline may lack.

    The XML writers read every media reference's available range (a missing one is an
    AttributeError deep inside them) and only file references, and the EDL writer counts
    every timecode at one rate: source ranges are given at the timeline's rate,
    references without a range get one that covers what the clip uses, and generated
    sources (bars, slugs) go out as offline media, listed.
    """
    for clip in timeline.find_clips():
        used = clip.source_range
        if used is None:
            continue
        start = used.start_time.rescaled_to(fps).round()
        duration = used.duration.rescaled_to(fps).round()
        clip.source_range = otio.opentime.TimeRange(start_time=start, duration=duration)
        reference = clip.media_reference
        if not isinstance(reference, otio.schema.ExternalReference | otio.schema.MissingReference):
            unmapped.append(
                f"clip {clip.name or '(unnamed)'!r}: its {reference.schema_name()} source is "
                f"written as offline media ({fmt.title} files name media files only)"
            )
            clip.media_reference = otio.schema.MissingReference(
                available_range=reference.available_range
            )
            reference = clip.media_reference
        if reference.available_range is None:
            reference.available_range = otio.opentime.TimeRange(
                start_time=otio.opentime.RationalTime(0, fps),
                duration=start + duration,
            )


def _edl_title(name: str) -> str:
    return re.sub(r"[\r\n]+", " ", name)[:70]


def _primary_storyline(timeline: Any, fps: float) -> None:
    """Final Cut X hangs every other track's clips on the first video track (the primary
    storyline) as connected clips, and its writer fails on a clip with nothing under it:
    the primary storyline runs, with a gap, to the timeline's end."""
    stack = timeline.tracks
    if len(stack) == 0:
        return
    video = [track for track in stack if track.kind == otio.schema.TrackKind.Video]
    if video:
        primary = video[0]
    else:
        primary = otio.schema.Track(name="", kind=otio.schema.TrackKind.Video)
        stack.insert(0, primary)
    length = stack.duration().rescaled_to(fps).round()
    short = length - primary.duration().rescaled_to(fps).round()
    if short.value > 0:
        primary.append(otio.schema.Gap(duration=short))


# The Final Cut Pro X writer finds each connected clip's parent by scanning the whole
# primary storyline: connected times primary items steps of Python (2,000 clips on two tracks,
# a million steps, took 50 s; docs/performance.md). Past this product the export is
# refused rather than holding a worker thread for minutes.
# Not Final: benchmarks/interchange.py lifts it to time what it saves.
MAX_FCPX_STEPS = 100_000


def _bound_connected_clips(timeline: Any) -> None:
    tracks = list(timeline.tracks)
    if not tracks:
        return
    primary = len(tracks[0])
    connected = sum(len(track) for track in tracks[1:])
    if primary * connected > MAX_FCPX_STEPS:
        raise ValidationFailed(
            f"This timeline is too large for the Final Cut Pro X writer: {connected} items on "
            f"other tracks times {primary} on the first video track is over {MAX_FCPX_STEPS:,}. "
            "Export it as otio or fcp-xml instead."
        )


_REEL_CHARS: Final = re.compile(r"[^A-Za-z0-9]+")


def _name_reels(timeline: Any) -> None:
    """Every EDL event a reel name: the adapter writes an empty one (a line with a missing
    field, which no reader parses) for a clip whose name has no letters or digits."""
    for clip in timeline.find_clips():
        reference = clip.media_reference
        source = getattr(reference, "target_url", "") or clip.name or ""
        reel = _REEL_CHARS.sub("", posixpath.splitext(_file_name(source))[0])[:8]
        clip.metadata["cmx_3600"] = {"reel": reel.upper() or "AX"}


# An EDL event line: number, reel, channels, transition (and its length), then source
# in/out and record in/out timecodes.
_EDL_EVENT: Final = re.compile(
    r"^\s*\d+\s+\S+\s+\S+\s+\S+(?:\s+\d+)?\s+"
    r"(\d\d:\d\d:\d\d[:;]\d\d)\s+(\d\d:\d\d:\d\d[:;]\d\d)\s+"
    r"(\d\d:\d\d:\d\d[:;]\d\d)\s+(\d\d:\d\d:\d\d[:;]\d\d)",
    re.MULTILINE,
)


def _restore_edl_start(timeline: Any, text: str, fps: float) -> None:
    """Put back the time before the first event, which the EDL reader drops.

    Record timecodes count from the sequence's start, by convention a whole hour
    (00:00:00:00 or 01:00:00:00): the first event's distance from that hour is a gap at
    the head of every track. A first event more than `EDL_MAX_LEAD` past the hour is
    taken as the start (a sequence with a leader, e.g. starting at 00:59:53:11).
    """
    records = [match.group(3) for match in _EDL_EVENT.finditer(text)]
    if not records:
        return
    try:
        first = min(otio.opentime.from_timecode(tc.replace(";", ":"), fps) for tc in records)
    except ValueError:
        return
    frames = round(first.value)
    hour = round(3_600 * fps)
    offset = otio.opentime.RationalTime(frames - hour * math.floor(frames / hour), fps)
    if not 0 < offset.to_seconds() <= EDL_MAX_LEAD:
        return
    for track in timeline.tracks:
        if len(track) > 0:
            track.insert(0, otio.schema.Gap(duration=offset))
            # The reader fixes each track's range to its events: it grows with the gap.
            if track.source_range is not None:
                track.source_range = otio.opentime.TimeRange(
                    start_time=track.source_range.start_time,
                    duration=track.source_range.duration + offset,
                )


def _keep_one_video_track(timeline: Any, state: TimelineState, unmapped: list[str]) -> None:
    """An EDL is one picture track: the first visible video track with clips goes out
    (else the first video track, else an empty one), the others are listed.

    CMX 3600 audio lives on the picture events (channels), not in tracks of its own, so
    audio tracks are listed as well.
    """
    stack = timeline.tracks
    video = [track for track in stack if track.kind == otio.schema.TrackKind.Video]
    ranked = sorted(video, key=lambda track: (not track.enabled, len(track) == 0))
    kept = ranked[0] if ranked else otio.schema.Track(kind=otio.schema.TrackKind.Video)
    for position, track in enumerate(list(stack)):
        if track is kept:
            continue
        clips = len(list(track.find_clips()))
        kind = "audio" if track.kind == otio.schema.TrackKind.Audio else "video"
        # Numbered: two unnamed tracks must not read as one.
        label = f"#{position + 1}" + (f" {track.name!r}" if track.name else "")
        unmapped.append(f"{kind} track {label} with {clips} clip(s): an EDL holds one video track")
    if not kept.enabled:
        unmapped.append(f"track {kept.name or '(unnamed)'!r} is hidden: written as shown")
        kept.enabled = True
    while len(stack) > 0:
        stack.pop()
    stack.append(kept)
    _edl_transitions(kept, unmapped)
    for clip in kept.find_clips():
        available = clip.media_reference.available_range
        if available is not None and available.start_time.value != 0:
            unmapped.append(
                f"clip {clip.name or '(unnamed)'!r}: its media starts at timecode "
                f"{otio.opentime.to_timecode(available.start_time)}; an EDL's source timecodes "
                "do not say where the media starts, so source in points read back from there"
            )
    if any(track.kind in (TrackKind.TEXT, TrackKind.OVERLAY) for track in state.tracks):
        unmapped.append("text and overlay track kinds are written as video tracks")


def _edl_transitions(track: Any, unmapped: list[str]) -> None:
    """An EDL dissolve goes from one event to the next, starting the incoming source
    early: a transition at a track's end, next to a gap or with no media before the
    incoming clip cannot be written (the writer fails on it), so it is left out, listed."""
    items = list(track)
    for index in reversed(range(len(items))):
        item = items[index]
        if not isinstance(item, otio.schema.Transition):
            continue
        before = items[index - 1] if index > 0 else None
        after = items[index + 1] if index + 1 < len(items) else None
        name = item.name or item.transition_type
        if not (isinstance(before, otio.schema.Clip) and isinstance(after, otio.schema.Clip)):
            reason = "not between two clips (an EDL dissolves from one clip to the next)"
        elif after.trimmed_range().start_time < item.in_offset:
            # The dissolve's event starts its source that much earlier: a negative timecode.
            reason = f"needs media before the start of clip {after.name or '(unnamed)'!r}"
        else:
            if item.in_offset.value > 0:
                unmapped.append(
                    f"transition {name!r} into clip {after.name or '(unnamed)'!r}: an EDL "
                    f"dissolve starts at the cut, so read back the cut is "
                    f"{round(item.in_offset.value)} frame(s) earlier"
                )
            continue
        del track[index]
        unmapped.append(f"transition {name!r} {reason}")


def _losses(written: Any, back: Any, fmt: Format) -> list[str]:
    """What reading the written file back shows the format lost, track by track."""
    notes: list[str] = []
    before = list(written.tracks)
    after = list(back.tracks)
    if len(after) < len(before):
        notes.append(f"{len(before) - len(after)} track(s) not carried by {fmt.title}")
    for index, (old, new) in enumerate(zip(before, after, strict=False)):
        label = old.name or f"#{index + 1}"
        old_clips = len(list(old.find_clips()))
        new_clips = len(list(new.find_clips()))
        if new_clips < old_clips:
            notes.append(f"track {label!r}: {old_clips - new_clips} clip(s) not carried")
        if len(old.markers) > len(new.markers):
            notes.append(f"track {label!r}: markers not carried")
    markers_before = len(written.tracks.markers) + sum(len(t.markers) for t in before)
    markers_after = (
        len(back.tracks.markers)
        + sum(len(t.markers) for t in after)
        + sum(len(clip.markers) for clip in back.find_clips())
    )
    if markers_after < markers_before:
        notes.append(f"{markers_before - markers_after} marker(s) not carried by {fmt.title}")
    try:
        length_before = written.duration().to_seconds()
        length_after = back.duration().to_seconds()
    except (otio.exceptions.OTIOError, ValueError):
        return notes
    rate = written.duration().rate or 30.0
    if length_after < length_before - 0.5 / rate:
        notes.append(
            f"the gap after the last clip ({length_before - length_after:.3f} s): "
            f"{fmt.title} ends the timeline at its last clip"
        )
    for track in before:
        for effect in track.effects:
            notes.append(f"effect {effect.name or effect.effect_name!r} on track {track.name!r}")
    return notes


def _map_media_out(timeline: Any, media: MediaFiles) -> None:
    """Media references other editors can relink: the project's files by name."""
    for clip in timeline.find_clips():
        reference = clip.media_reference
        if isinstance(reference, otio.schema.MissingReference) and media.default:
            clip.media_reference = otio.schema.ExternalReference(target_url=media.default)
        elif isinstance(reference, otio.schema.ExternalReference):
            matched = media.match(reference.target_url or "")
            if matched is not None:
                reference.target_url = matched


def _map_media_in(state: TimelineState, media: MediaFiles) -> tuple[TimelineState, list[str]]:
    """Clips whose media file is one of the project's point at that file."""
    notes: list[str] = []
    clips = []
    for clip in state.clips:
        if clip.media_ref:
            matched = media.match(clip.media_ref)
            if matched is not None:
                clip = clip.model_copy(update={"media_ref": matched})
            else:
                notes.append(
                    f"clip {clip.name or clip.id!r}: media {json.dumps(clip.media_ref)} is not "
                    "one of the project's files (kept as written)"
                )
        clips.append(clip)
    return state.model_copy(update={"clips": clips}), notes
