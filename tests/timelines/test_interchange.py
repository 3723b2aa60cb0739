"""Interchange with other editors: published sample timelines (tests/timelines/corpus, see
its README) and generated ones through OTIO, EDL, Final Cut 7/X XML and Kdenlive and back.

What a user checks after a round trip: the same tracks, the same clips cut at the same
frames, the same total length; and where a format cannot carry something, that it says so.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import opentimelineio as otio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snipix.errors import ValidationFailed
from snipix.timelines.interchange import (
    FORMATS,
    Format,
    MediaFiles,
    export_timeline,
    format_for,
    import_timeline,
)
from snipix.timelines.otio import from_otio, to_otio
from snipix.timelines.schemas import Clip, TimelineState, Track, TrackKind

CORPUS = Path(__file__).parent / "corpus"
NATIVE = {".otio": "otio", ".edl": "edl", ".xml": "fcp-xml"}
# An EDL does not say its rate; these are the rates the files were written at.
EDL_RATES = {"25fps.edl": 25.0}
FILES = sorted(path.name for path in CORPUS.iterdir() if path.suffix in NATIVE)

# What each published file is, read by OpenTimelineIO's own adapter: top-level tracks,
# clips (nested ones included) and the timeline's duration in frames. These are the
# numbers the import must keep.
EXPECTED = {
    "25fps.edl": (1, 4, 496),
    "big_int.otio": (1, 1, 24),
    "clip_example.otio": (1, 1, 19),
    "dissolve_test.edl": (1, 3, 20),
    "gap_test.edl": (1, 3, 126),
    "generator_reference_test.otio": (1, 1, 50),
    "hiero_xml_export.xml": (1, 2, 1324),
    "multiple_track.otio": (3, 5, 19),
    "multitrack.otio": (3, 5, 3282),
    "nested_example.otio": (1, 7, 636),
    "preflattened.otio": (1, 5, 3282),
    "premiere_example.otio": (8, 13, 1271),
    "premiere_example.xml": (8, 13, 1271),
    "sample_just_track.xml": (0, 0, 0),
    "screening_example.edl": (1, 9, 1049),
    "screening_example.otio": (1, 9, 1049),
    "simple_cut.otio": (1, 4, 19),
    "speed_effects_small.edl": (1, 5, 16636),
    "transition.otio": (1, 4, 19),
    "transition_test.otio": (1, 3, 170),
}


def native(name: str) -> Format:
    return FORMATS[NATIVE[Path(name).suffix]]


@cache
def imported(name: str) -> tuple[TimelineState, tuple[str, ...]]:
    """A corpus file imported once per test session (the adapters are the slow part)."""
    state, unmapped = import_timeline(
        (CORPUS / name).read_bytes(), fmt=native(name), fps=EDL_RATES.get(name, 24.0)
    )
    return state, tuple(unmapped)


def frames(seconds: float, fps: float) -> int:
    return round(seconds * fps)


def shape(state: TimelineState) -> tuple[int, int, int]:
    return len(state.tracks), len(state.clips), frames(state.duration_sec, state.fps)


def cuts(state: TimelineState) -> list[tuple[str, int, int, int]]:
    """Every clip as the editor sees it: track, timeline in/out and source in, in frames."""
    fps = state.fps
    return sorted(
        (c.track_id, frames(c.start, fps), frames(c.end, fps), frames(c.source_in, fps))
        for c in state.clips
    )


def test_the_corpus_is_every_file_listed() -> None:
    assert sorted(EXPECTED) == FILES


@pytest.mark.parametrize("name", FILES)
def test_a_published_timeline_imports_whole(name: str) -> None:
    """Tracks, clips (nested ones included) and total duration to the frame, as OTIO reads
    the file: nothing dropped, trailing gaps kept."""
    state, _ = imported(name)

    assert shape(state) == EXPECTED[name]


@pytest.mark.parametrize("name", FILES)
def test_import_export_import_is_a_fixed_point(name: str) -> None:
    """An imported file exported as OTIO and imported again is the same state, exactly:
    clip times, other tools' metadata, effects, transitions and references included."""
    state, _ = imported(name)

    again, _ = from_otio(to_otio(state, name="x"))

    assert again == state


@pytest.mark.parametrize("target", ["edl", "fcp-xml", "fcpxml", "kdenlive"])
@pytest.mark.parametrize(
    "name", ["simple_cut.otio", "gap_test.edl", "screening_example.otio", "hiero_xml_export.xml"]
)
def test_single_track_cuts_survive_every_format(name: str, target: str) -> None:
    """One video track through each adapter and back with the same adapter: the same clips
    at the same frames; a trailing gap a format drops is listed, not lost silently."""
    state, _ = imported(name)
    fmt = FORMATS[target]

    exported = export_timeline(state, name="x", fmt=fmt)
    back, _ = import_timeline(exported.document.encode(), fmt=fmt, fps=state.fps)

    assert [(c[1], c[2]) for c in cuts(back)] == [(c[1], c[2]) for c in cuts(state)]
    if frames(back.duration_sec, state.fps) != frames(state.duration_sec, state.fps):
        assert any("gap after the last clip" in item for item in exported.unmapped)


def test_what_an_edl_cannot_carry_is_listed() -> None:
    """Three video tracks to an EDL: the first goes out, the other two are named."""
    state, _ = imported("multiple_track.otio")

    exported = export_timeline(state, name="x", fmt=FORMATS["edl"])
    back, _ = import_timeline(exported.document.encode(), fmt=FORMATS["edl"], fps=state.fps)

    assert len(back.tracks) == 1
    dropped = [item for item in exported.unmapped if "an EDL holds one video track" in item]
    assert dropped == [
        "video track #2 'Track-002' with 1 clip(s): an EDL holds one video track",
        "video track #3 'Track-003' with 1 clip(s): an EDL holds one video track",
    ]
    lost = len(state.clips) - len(back.clips)
    assert lost == sum(int(item.split(" with ")[1].split(" ")[0]) for item in dropped)


def test_trailing_gaps_and_single_clip_duration_are_kept() -> None:
    """136.75 s with a trailing gap stays 136.75 s; a lone clip between gaps keeps 19
    frames, not 11."""
    multitrack, _ = imported("multitrack.otio")
    single, _ = imported("clip_example.otio")

    assert multitrack.duration_sec == pytest.approx(136.75)
    assert multitrack.length_sec == pytest.approx(136.75)
    assert frames(single.duration_sec, single.fps) == 19


def visible(clip: otio.schema.Clip) -> otio.opentime.TimeRange | None:
    """Where OTIO says a clip plays on the timeline: its range mapped up through every
    parent, cut to each parent's own trimmed window; None when nothing of it shows."""
    shown = clip.trimmed_range()
    item = clip
    while item.parent() is not None:
        parent = item.parent()
        shown = item.transformed_time_range(shown, parent)
        window = parent.trimmed_range()
        start = max(shown.start_time, window.start_time)
        end = min(shown.end_time_exclusive(), window.end_time_exclusive())
        if not start < end:
            return None
        shown = otio.opentime.TimeRange.range_from_start_end_time(start, end)
        item = parent
    return shown


def test_nested_stacks_are_flattened_with_each_clip_where_it_plays() -> None:
    """Seven clips in, seven out, each at the time and for the length OTIO plays it."""
    state, unmapped = imported("nested_example.otio")
    timeline = otio.adapters.read_from_file(str(CORPUS / "nested_example.otio"))
    expected = []
    for clip in timeline.find_clips():
        shown = visible(clip)
        assert shown is not None
        start = round(shown.start_time.to_seconds() * state.fps)
        expected.append((start, start + round(shown.duration.to_seconds() * state.fps), clip.name))
    ours = [(frames(c.start, state.fps), frames(c.end, state.fps), c.name) for c in state.clips]

    assert sorted(ours) == sorted(expected)
    assert sum("flattened" in item for item in unmapped) == 3


def test_big_integers_and_non_finite_numbers_are_kept_as_text_and_named() -> None:
    """A valid file with a 128-bit integer imports; the field is named and keeps its value."""
    state, unmapped = imported("big_int.otio")

    (clip,) = state.clips
    kept = json.loads(clip.interchange or "{}")
    assert kept["metadata"]["int_test"]["int128"] == "170141183460469231731687303715884105728"
    assert (
        "$.tracks.children[0].children[0].metadata.int_test.int128: integer beyond 64 bits "
        "(kept as its decimal text)"
    ) in unmapped


def test_other_tools_metadata_goes_back_out() -> None:
    """Metadata another editor wrote on the timeline, a track and a clip is in the export."""
    document = (CORPUS / "premiere_example.otio").read_text()
    original = otio.adapters.read_from_string(document, "otio_json")
    state, _ = imported("premiere_example.otio")

    exported = otio.adapters.read_from_string(to_otio(state, name="x"), "otio_json")

    def foreign(obj: otio.core.SerializableObject) -> dict[str, object]:
        return {
            k: v
            for k, v in json.loads(otio.core.serialize_json_to_string(obj.metadata)).items()
            if k != "snipix"
        }

    assert foreign(exported) == foreign(original)
    assert foreign(exported.find_clips()[0]) == foreign(original.find_clips()[0])


def test_a_newer_schema_version_is_named() -> None:
    """A file from a newer OpenTimelineIO: 422 naming the schema, its place and what this
    server reads, not "malformed"."""
    document = re.sub(
        r'"OTIO_SCHEMA": "Clip\.\d+"',
        '"OTIO_SCHEMA": "Clip.9"',
        (CORPUS / "simple_cut.otio").read_text(),
        count=1,
    )

    with pytest.raises(ValidationFailed) as refused:
        from_otio(document)

    message = str(refused.value)
    assert "unsupported schema version Clip.9 at $.tracks.children[0].children[0]" in message
    assert "reads Clip up to version 2" in message


@pytest.mark.parametrize(
    ("fmt", "body", "needle"),
    [
        ("edl", b"TITLE: x\n001  AX V C 00:00:00:00 00:00:01:00 00:00:00:00\n", "EDL"),
        ("fcp-xml", b"<xmeml><sequence><name>x</name>", "line 1"),
        ("fcpxml", b'<?xml version="1.0"?>\n<fcpxml version="1.8">\n<resources>', "line 3"),
        ("kdenlive", b"<mlt><tractor", "line 1"),
        ("fcp-xml", b"<xmeml>" + b"<sequence>" * 100, "nests elements deeper than 64"),
        ("otio", b'{"OTIO_SCHEMA": "Timeline.1",\n "tracks": [}', "line 2"),
    ],
)
def test_a_broken_file_is_refused_naming_the_format_and_where(
    fmt: str, body: bytes, needle: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        import_timeline(body, fmt=FORMATS[fmt])

    message = str(refused.value)
    assert FORMATS[fmt].title in message or "OpenTimelineIO" in message
    assert needle in message


def test_a_file_of_another_format_is_refused() -> None:
    """An EDL sent as Final Cut XML, an XML file sent as OTIO: 422 naming the format."""
    edl = (CORPUS / "gap_test.edl").read_bytes()
    xml = (CORPUS / "sample_just_track.xml").read_bytes()

    with pytest.raises(ValidationFailed, match="Final Cut Pro 7 XML"):
        import_timeline(edl, fmt=FORMATS["fcp-xml"])
    with pytest.raises(ValidationFailed, match="not valid JSON \\(line 1, column 1\\)"):
        import_timeline(xml, fmt=FORMATS["otio"])


def test_the_format_comes_from_the_query_else_the_content_type_and_root() -> None:
    fcpx = b'<?xml version="1.0"?>\n<!DOCTYPE fcpxml>\n<fcpxml version="1.8"/>'
    assert format_for("edl", "application/json", b"").name == "edl"
    assert format_for(None, "application/json; charset=utf-8", b"").name == "otio"
    assert format_for(None, "text/x-edl", b"").name == "edl"
    assert format_for(None, "application/xml", fcpx).name == "fcpxml"
    assert format_for(None, "text/xml", b"<xmeml version='5'/>").name == "fcp-xml"
    assert format_for(None, "application/xml", b"<mlt/>").name == "kdenlive"
    with pytest.raises(ValidationFailed, match="root element is <html>"):
        format_for(None, "application/xml", b"<html/>")
    with pytest.raises(ValidationFailed, match="Unknown timeline format 'aaf'"):
        format_for("aaf", None, b"")


def test_media_paths_map_to_the_projects_files() -> None:
    """An editor's absolute path to a file of the project comes back as the project's
    reference; another file is kept as written and listed."""
    state, _ = imported("hiero_xml_export.xml")
    media = MediaFiles(by_name={"a160c005_171213_r0mn.mxf": "p1/A160C005_171213_R0MN.mxf"})

    document = export_timeline(state, name="x", fmt=FORMATS["fcp-xml"]).document
    back, unmapped = import_timeline(document.encode(), fmt=FORMATS["fcp-xml"], media=media)

    assert back.clips[0].media_ref == "p1/A160C005_171213_R0MN.mxf"
    assert not any("A160C005" in item for item in unmapped)


# --------------------------------------------------------------------------- property


@st.composite
def states(draw: st.DrawFn) -> TimelineState:
    """One video track of whole-frame clips with gaps between them, at a common rate."""
    fps = draw(st.sampled_from([24.0, 25.0, 30.0]))
    count = draw(st.integers(min_value=1, max_value=6))
    clips = []
    cursor = draw(st.integers(min_value=0, max_value=48))
    for index in range(count):
        length = draw(st.integers(min_value=1, max_value=200))
        source = draw(st.integers(min_value=0, max_value=5_000))
        clips.append(
            Clip(
                id=f"c{index}",
                track_id="v",
                media_ref=f"file:///media/shot{index}.mov",
                name=f"shot{index}",
                start=cursor / fps,
                source_in=source / fps,
                source_out=(source + length) / fps,
            )
        )
        cursor += length + draw(st.integers(min_value=0, max_value=48))
    return TimelineState(
        tracks=[Track(id="v", kind=TrackKind.VIDEO, name="V1")], clips=clips, fps=fps
    )


@pytest.mark.parametrize("target", sorted(FORMATS))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=states())
def test_generated_cuts_survive_each_format(target: str, state: TimelineState) -> None:
    """Generated timelines → each format → back: every clip at the same frames, with the
    same source in point."""
    fmt = FORMATS[target]

    exported = export_timeline(state, name="gen", fmt=fmt)
    back, _ = import_timeline(exported.document.encode(), fmt=fmt, fps=state.fps)

    assert [c[1:] for c in cuts(back)] == [c[1:] for c in cuts(state)]


def test_a_final_cut_x_export_too_large_for_its_writer_is_refused() -> None:
    """The FCP X writer is quadratic in connected clips: past its bound, 422 naming the
    formats that work, before any time is spent."""
    clips = [
        Clip(id=f"c{i}", track_id="va"[i % 2], start=(i // 2) * 2.0, source_in=0.0, source_out=2.0)
        for i in range(800)
    ]
    state = TimelineState(
        tracks=[Track(id="v", kind=TrackKind.VIDEO), Track(id="a", kind=TrackKind.AUDIO)],
        clips=clips,
    )

    with pytest.raises(ValidationFailed, match="Export it as otio or fcp-xml instead"):
        export_timeline(state, name="x", fmt=FORMATS["fcpxml"])
