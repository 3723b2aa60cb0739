"""OTIO export and import: what another editor sees of a Snipix timeline, and what Snipix
keeps of a timeline made elsewhere. Pure functions, no database."""

from __future__ import annotations

import json
from typing import Any

import opentimelineio as otio
import pytest

from snipix.errors import ValidationFailed
from snipix.timelines.otio import from_otio, to_otio
from snipix.timelines.schemas import (
    Clip,
    Effect,
    Layer,
    Marker,
    Segment,
    SegmentKind,
    TimelineState,
    Track,
    TrackKind,
)

FPS = 30.0
FRAME = 1 / FPS


def realistic_state() -> TimelineState:
    """Two picture tracks and one audio track, with everything an edit usually has."""
    return TimelineState(
        fps=FPS,
        tracks=[
            Track(id="v1", kind=TrackKind.VIDEO, name="V1", order=0),
            Track(id="v2", kind=TrackKind.OVERLAY, name="Titles", order=1, hidden=True),
            Track(id="a1", kind=TrackKind.AUDIO, name="A1", order=2, muted=True, locked=True),
        ],
        clips=[
            Clip(
                id="intro",
                track_id="v1",
                media_ref="s3://media/intro.mp4",
                start=0.0,
                source_in=2.0,
                source_out=6.0,
                name="Intro",
                effects=[
                    Effect(type="blur", id="fx1", params={"radius": 4.5, "enabled": True}),
                    Effect(type="lut", params={"name": "warm", "strength": None}),
                ],
                transition_out=Effect(type="crossfade", duration_sec=1.0),
            ),
            Clip(
                id="fast",
                track_id="v1",
                media_ref="s3://media/broll.mp4",
                start=4.0,
                source_in=10.0,
                source_out=20.0,
                speed=2.0,
                name="B-roll x2",
                transition_in=Effect(type="wipe", duration_sec=0.5, params={"angle": 90.0}),
            ),
            Clip(
                id="title",
                track_id="v2",
                start=1.0,
                source_in=0.0,
                source_out=3.0,
                name="Title card",
                properties={"text": "Hello", "fontSize": 48.0},
            ),
            Clip(
                id="music",
                track_id="a1",
                media_ref="s3://media/music.wav",
                start=0.5,
                source_in=30.0,
                source_out=40.0,
                volume=0.4,
                name="Music",
            ),
        ],
        segments=[
            Segment(id="s1", start=0.0, end=4.0),
            Segment(id="s2", start=4.0, end=5.0, kind=SegmentKind.CUT, source="transcript"),
        ],
        layers=[Layer(id="l1", name="Graphics", track_ids=["v2"], properties={"blend": "add"})],
        markers=[
            Marker(id="mk1", time=1.0, label="Hook", color="red"),
            Marker(id="mk2", time=5.5, label="Beat", color="#00ff10"),
            Marker(id="mk3", time=8.0, label="End"),
        ],
    )


def snipix_metadata(obj: Any) -> dict[str, Any]:
    """What Snipix keeps on an OTIO object (JSON text: OTIO's reader rounds floats)."""
    saved: dict[str, Any] = json.loads(obj.metadata["snipix"])
    return saved


def otio_tracks(document: str) -> tuple[Any, list[Any]]:
    timeline = otio.adapters.read_from_string(document, "otio_json")
    return timeline, list(timeline.tracks)


def test_export_is_an_otio_timeline_other_editors_can_read() -> None:
    """Another editor opens the export with the tracks, trims, gaps and markers in place."""
    state = realistic_state()

    timeline, tracks = otio_tracks(to_otio(state, name="My cut"))

    assert isinstance(timeline, otio.schema.Timeline)
    assert timeline.name == "My cut"
    assert timeline.global_start_time.rate == FPS
    assert abs(timeline.duration().to_seconds() - state.duration_sec) <= FRAME
    assert [(t.name, t.kind, t.enabled) for t in tracks] == [
        ("V1", otio.schema.TrackKind.Video, True),
        ("Titles", otio.schema.TrackKind.Video, False),
        ("A1", otio.schema.TrackKind.Audio, False),
    ]
    v1, titles, audio = tracks
    # The cut between the two clips carries one transition: the first clip's fade out (the
    # second clip's wipe in has no item of its own to sit next to, so only Snipix keeps it).
    assert [type(item).__name__ for item in v1] == ["Clip", "Transition", "Clip"]
    intro, fade, fast = v1
    assert intro.source_range == otio.opentime.range_from_start_end_time(
        otio.opentime.from_seconds(2.0, FPS), otio.opentime.from_seconds(6.0, FPS)
    )
    assert intro.media_reference.target_url == "s3://media/intro.mp4"
    assert [(e.effect_name, snipix_metadata(e)["params"]) for e in intro.effects] == [
        ("blur", {"radius": 4.5, "enabled": True}),
        ("lut", {"name": "warm", "strength": None}),
    ]
    assert fade.transition_type == otio.schema.TransitionTypes.SMPTE_Dissolve
    assert fade.in_offset.to_seconds() == 1.0
    assert fade.out_offset.to_seconds() == 0.0
    # OTIO's source range lasts as long as the clip is on the track; the warp says how much
    # media plays in that time, so the trim is source start + duration x time scalar.
    (warp,) = fast.effects
    assert isinstance(warp, otio.schema.LinearTimeWarp)
    assert warp.time_scalar == 2.0
    assert fast.source_range.start_time.to_seconds() == 10.0
    assert fast.source_range.duration.to_seconds() == 5.0
    assert fast.source_range.duration.to_seconds() * warp.time_scalar == 20.0 - 10.0
    assert v1.range_of_child_at_index(2).start_time.to_seconds() == 4.0

    assert [type(item).__name__ for item in titles] == ["Gap", "Clip"]
    assert titles[0].duration().to_seconds() == 1.0
    assert isinstance(titles[1].media_reference, otio.schema.MissingReference)
    assert [type(item).__name__ for item in audio] == ["Gap", "Clip"]
    assert audio[0].duration().to_seconds() == 0.5
    assert audio[1].source_range.start_time.to_seconds() == 30.0
    assert audio[1].source_range.duration.to_seconds() == 10.0

    markers = timeline.tracks.markers
    assert [(m.name, m.marked_range.start_time.to_seconds(), m.color) for m in markers] == [
        ("Hook", 1.0, otio.schema.MarkerColor.RED),
        ("Beat", 5.5, otio.schema.MarkerColor.GREEN),
        ("End", 8.0, otio.schema.MarkerColor.RED),
    ]


def test_round_trip_gives_back_the_same_timeline() -> None:
    """Exporting to OTIO and importing the file again changes nothing in the timeline."""
    state = realistic_state()

    restored, unmapped = from_otio(to_otio(state, name="cut"))

    assert restored == state
    assert unmapped == []


def test_round_trip_keeps_sub_frame_times_and_overlapping_clips() -> None:
    """Times between frames and clips stacked on an overlap track survive the round trip."""
    state = TimelineState(
        fps=23.976,
        tracks=[
            Track(id="fx", kind=TrackKind.TEXT, name="Captions", order=3, allow_overlap=True),
            Track(id="main", kind=TrackKind.VIDEO, name="Main", order=1),
        ],
        clips=[
            Clip(id="b", track_id="fx", start=1.0, source_in=0.0, source_out=4.0),
            Clip(id="m1", track_id="main", start=0.0123, source_in=0.3333, source_out=1.01),
            Clip(id="a", track_id="fx", start=0.001, source_in=0.1, source_out=3.3),
            Clip(
                id="m2",
                track_id="main",
                start=0.6893,
                source_in=5.0,
                source_out=5.0001,
                speed=1.37,
            ),
            Clip(id="c", track_id="fx", start=2.5, source_in=0.0, source_out=0.7),
            # Doubles that OTIO's JSON reader (RapidJSON, fast mode) reads back one bit off.
            Clip(
                id="m3",
                track_id="main",
                start=1.2088995980580641,
                source_in=0.1,
                source_out=0.9524673882682695,
                volume=0.9524673882682695,
            ),
        ],
        markers=[Marker(id="x", time=0.0101, color="teal-ish")],
    )

    document = to_otio(state, name="sub-frame")
    restored, unmapped = from_otio(document)

    assert restored == state
    assert unmapped == []
    _, tracks = otio_tracks(document)
    # Overlapping captions need three OTIO tracks (a, b and c all overlap at 2.5-3.2 s).
    assert [t.name for t in tracks] == [
        "Main",
        "Captions",
        "Captions (overlap 1)",
        "Captions (overlap 2)",
    ]


def test_clip_moved_in_another_editor_comes_back_where_it_was_put() -> None:
    """A clip moved elsewhere (our metadata kept) lands where that editor put it."""
    state = realistic_state()
    timeline = otio.adapters.read_from_string(to_otio(state, name="cut"), "otio_json")
    titles = timeline.tracks[1]
    titles[0].source_range = otio.opentime.TimeRange(duration=otio.opentime.RationalTime(90, FPS))

    restored, _ = from_otio(otio.adapters.write_to_string(timeline, "otio_json"))

    title = next(clip for clip in restored.clips if clip.id == "title")
    assert title.start == 3.0
    assert (title.source_in, title.source_out) == (0.0, 3.0)
    assert title.properties == {"text": "Hello", "fontSize": 48.0}


def foreign_timeline() -> Any:
    """A timeline as another editor writes it: no Snipix metadata anywhere."""
    rate = 24.0

    def rt(frames: float) -> Any:
        return otio.opentime.RationalTime(frames, rate)

    def clip(name: str, url: str, start: float, frames: float) -> Any:
        return otio.schema.Clip(
            name=name,
            media_reference=otio.schema.ExternalReference(target_url=url),
            source_range=otio.opentime.TimeRange(rt(start), rt(frames)),
        )

    timeline = otio.schema.Timeline(name="Sequence 1", global_start_time=rt(86_400))
    v1 = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    v1.append(clip("Shot 1", "file:///media/shot1.mov", 24, 48))
    v1.append(otio.schema.Gap(duration=rt(24)))
    fast = clip("Shot 2", "file:///media/shot2.mov", 0, 24)
    fast.effects.append(otio.schema.LinearTimeWarp(time_scalar=2.0))
    v1.append(fast)
    v2 = otio.schema.Track(name="V2", kind=otio.schema.TrackKind.Video)
    v2.append(otio.schema.Gap(duration=rt(12)))
    v2.append(clip("Logo", "file:///media/logo.png", 0, 36))
    v2.append(
        otio.schema.Transition(
            transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
            in_offset=rt(6),
            out_offset=rt(6),
        )
    )
    nested = otio.schema.Stack(name="Sequence 3")
    nested_track = otio.schema.Track()
    nested_track.append(clip("Inner", "file:///media/inner.mov", 0, 48))
    nested.append(nested_track)
    v2.append(nested)
    v2.append(clip("After", "file:///media/after.mov", 0, 24))
    a1 = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    a1.append(clip("Dialog", "file:///media/shot1.wav", 24, 96))
    for track in (v1, v2, a1):
        timeline.tracks.append(track)
    timeline.tracks.markers.append(
        otio.schema.Marker(
            name="Check this",
            marked_range=otio.opentime.TimeRange(rt(36), rt(0)),
            color=otio.schema.MarkerColor.BLUE,
        )
    )
    return timeline


def test_timeline_from_another_editor_is_imported() -> None:
    """A cut from another editor opens with its tracks, clips, trims, speed and markers."""
    document = otio.adapters.write_to_string(foreign_timeline(), "otio_json")

    state, unmapped = from_otio(document)

    assert state.fps == 24.0
    assert [(t.id, t.kind, t.name, t.order) for t in state.tracks] == [
        ("t1", TrackKind.VIDEO, "V1", 0),
        ("t2", TrackKind.VIDEO, "V2", 1),
        ("t3", TrackKind.AUDIO, "A1", 2),
    ]
    clips = [
        (c.id, c.track_id, c.name, c.media_ref, c.start, c.source_in, c.source_out, c.speed)
        for c in state.clips
    ]
    assert clips == [
        ("c1", "t1", "Shot 1", "file:///media/shot1.mov", 0.0, 1.0, 3.0, 1.0),
        ("c2", "t1", "Shot 2", "file:///media/shot2.mov", 3.0, 0.0, 2.0, 2.0),
        ("c3", "t2", "Logo", "file:///media/logo.png", 0.5, 0.0, 1.5, 1.0),
        # The nested stack's clip, flattened onto the track where it plays.
        ("c4", "t2", "Inner", "file:///media/inner.mov", 2.0, 0.0, 2.0, 1.0),
        ("c5", "t2", "After", "file:///media/after.mov", 4.0, 0.0, 1.0, 1.0),
        ("c6", "t3", "Dialog", "file:///media/shot1.wav", 0.0, 1.0, 5.0, 1.0),
    ]
    assert state.markers == [Marker(id="m1", time=1.5, label="Check this", color="blue")]
    assert unmapped == [
        "transition 'SMPTE_Dissolve' on track V2 (kept after clip 'Logo' for export, not shown)",
        "nested stack 'Sequence 3' on track V2: flattened (its clips placed on the track at "
        "the times they play)",
    ]


def test_unsupported_parts_of_a_foreign_file_are_listed() -> None:
    """Freeze frames, image sequences and foreign effects are reported, not silently lost."""
    rate = 25.0
    timeline = otio.schema.Timeline(name="x")
    track = otio.schema.Track(name="V1")
    frozen = otio.schema.Clip(
        name="Frozen",
        media_reference=otio.schema.ImageSequenceReference(
            target_url_base="file:///frames/", name_prefix="f.", name_suffix=".exr"
        ),
        source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(25, rate)
        ),
    )
    frozen.effects.append(otio.schema.FreezeFrame())
    frozen.effects.append(otio.schema.Effect(effect_name="Glow"))
    track.append(frozen)
    timeline.tracks.append(track)

    state, unmapped = from_otio(otio.adapters.write_to_string(timeline, "otio_json"))

    assert [(c.name, c.media_ref, c.speed, c.effects) for c in state.clips] == [
        ("Frozen", "", 1.0, [])
    ]
    assert unmapped == [
        "effect 'FreezeFrame' on clip 'Frozen' (kept for export, not applied)",
        "effect 'Glow' on clip 'Frozen' (kept for export, not applied)",
        "clip 'Frozen' with an image sequence reference (kept for export, not played)",
    ]
    # ...and written back out as they came in.
    back = otio.adapters.read_from_string(to_otio(state, name="x"), "otio_json")
    (clip,) = back.find_clips()
    assert [type(effect).__name__ for effect in clip.effects] == ["FreezeFrame", "Effect"]
    assert isinstance(clip.media_reference, otio.schema.ImageSequenceReference)
    assert clip.media_reference.target_url_base == "file:///frames/"


def test_foreign_clips_merged_onto_one_track_may_overlap() -> None:
    """Clips that end up overlapping on one track turn allowOverlap on instead of failing."""
    state = TimelineState(
        tracks=[Track(id="v", kind=TrackKind.VIDEO, name="V", allow_overlap=True)],
        clips=[
            Clip(id="a", track_id="v", start=0.0, source_in=0.0, source_out=2.0),
            Clip(id="b", track_id="v", start=1.0, source_in=0.0, source_out=2.0),
        ],
    )
    timeline = otio.adapters.read_from_string(to_otio(state, name="x"), "otio_json")
    track = timeline.tracks[0]
    track.metadata["snipix"] = json.dumps(snipix_metadata(track) | {"allowOverlap": False})

    restored, unmapped = from_otio(otio.adapters.write_to_string(timeline, "otio_json"))

    assert restored.tracks[0].allow_overlap
    assert [c.id for c in restored.clips] == ["a", "b"]
    assert unmapped == ["overlapping clips on track V (allowOverlap turned on)"]


@pytest.mark.parametrize(
    "document",
    [
        "",
        "not json at all",
        "{}",
        "[1, 2, 3]",
        '{"OTIO_SCHEMA": "Timeline.1"}',
        '{"OTIO_SCHEMA": "Clip.1", "name": "just a clip"}',
        '{"OTIO_SCHEMA": "Timeline.1", "tracks": 5}',
    ],
)
def test_garbage_is_rejected_with_a_clear_error(document: str) -> None:
    """Uploading something that is not an OTIO timeline gives a validation error."""
    with pytest.raises(ValidationFailed, match=r"OpenTimelineIO"):
        from_otio(document)
