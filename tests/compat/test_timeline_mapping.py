"""The web app's timeline <-> Snipix's, as pure functions: nothing the web app saves is lost,
and edits made through /api/v1 show in the web app."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from snipix.compat.timeline_mapping import MIN_LENGTH_SEC, snipix_clip_id, to_compat, to_state
from snipix.errors import ValidationFailed
from snipix.timelines.schemas import Effect, Segment, TimelineState
from tests.compat.samples import LONG_ID, assert_same, normalized, web_app_timeline

# --- round trips -------------------------------------------------------------------------------


def test_a_web_app_timeline_comes_back_exactly_as_it_was_sent() -> None:
    """Every field the web app saved reads back the same, zeros, false and "" included."""
    sent = web_app_timeline()
    assert_same(to_compat(to_state(sent)), sent)


def test_the_state_made_from_a_web_app_timeline_survives_the_way_back() -> None:
    """Snipix's state -> the web app's shape -> Snipix's state changes nothing."""
    state = to_state(web_app_timeline())
    assert to_state(to_compat(state)) == state


def test_fields_the_web_app_left_out_come_back_with_the_original_defaults() -> None:
    """A minimal timeline reads back with the original backend's defaults filled in."""
    sent = {
        "layers": [
            {
                "id": "l1",
                "name": "Main",
                "type": "audio",
                "clips": [
                    {"id": "c1", "type": "audio", "start_time": 2, "end_time": 4, "duration": 2}
                ],
            }
        ],
        "markers": [{"id": "m1", "time": 1, "label": "Beat"}],
    }
    back = to_compat(to_state(sent))
    assert_same(back, normalized(sent))
    assert back["is_snapping"] is True
    assert back["markers"][0]["color"] == "#6366f1"
    clip = back["layers"][0]["clips"][0]
    assert (clip["original_start_time"], clip["source_path"], clip["content"]) == (None, None, None)
    assert back["layers"][0]["is_visible"] is True


def test_snipix_fields_carry_the_web_apps_speed_volume_and_source() -> None:
    """/api/v1 clients see the clip's speed, volume, source and trim points."""
    state = to_state(web_app_timeline())
    main = state.clips[0]
    assert (main.speed, main.volume, main.media_ref) == (
        1.5,
        0.8,
        "http://localhost:8001/media/65a1b2c3d4e5f60718293a4b/video",
    )
    assert main.start == 0.0
    assert main.source_in == 0.0
    assert main.duration == pytest.approx(4.25)
    assert main.keyframes is not None
    assert main.keyframes[1].value == {"x": 10, "y": 20}
    assert state.clips[1].volume == 0.0
    assert state.tracks[0].allow_overlap
    assert state.tracks[1].kind.value == "overlay"
    assert state.view is not None
    assert state.view.selected_clip_ids == [LONG_ID]


def test_a_zero_length_clip_is_one_microsecond_in_snipix_and_zero_for_the_web_app() -> None:
    """Zero-length clips are accepted (Snipix needs in < out) and read back as zero."""
    state = to_state(web_app_timeline())
    clip = state.clips[1]
    assert clip.source_out - clip.source_in == pytest.approx(MIN_LENGTH_SEC)
    assert to_compat(state)["layers"][0]["clips"][1]["duration"] == 0


def test_a_clip_id_grown_by_splits_gets_a_stable_stand_in() -> None:
    """The web app's ever longer split ids are kept; Snipix uses a stable short stand-in."""
    state = to_state(web_app_timeline())
    stand_in = state.clips[1].id
    assert stand_in == snipix_clip_id(LONG_ID) != LONG_ID
    assert len(stand_in) <= 100
    assert to_state(web_app_timeline()).clips[1].id == stand_in
    assert to_compat(state)["layers"][0]["clips"][1]["id"] == LONG_ID


# --- generated cases ---------------------------------------------------------------------------


def _number(rng: random.Random) -> float | int:
    return rng.choice([0, 0.0, 1, -0.5, 2.5, 1e-7, 3600.25, 604_799.0, rng.uniform(0, 100)])


def _json(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "float", "bool", "none", "str"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.choice([0, 1, -3, 2**53])
    if kind == "float":
        return rng.choice([0.0, 0.5, -12.25, 1e300])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "none":
        return None
    if kind == "str":
        return rng.choice(["", "linear", "ease-in", "ünïcødé", "x" * 300])
    if kind == "list":
        return [_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}": _json(rng, depth + 1) for i in range(rng.randint(0, 3))}


def _properties(rng: random.Random) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    options: dict[str, list[Any]] = {
        "volume": [0, 0.0, 1, 0.35, 10, 11, -1, True, "loud", None],
        "speed": [0, 0.25, 1, 1.0, 2, 100, 150, False, "fast", None],
        "easing": ["linear", "ease-in-out", "", None],
        "opacity": [0, 0.5, 1],
        "scale": [0, 1, 2.5],
        "rotation": [0, -90, 359.5],
        "position": [{"x": 0, "y": 0}, {"x": -5.5, "y": 12}],
    }
    for name, choices in options.items():
        if rng.random() < 0.6:
            properties[name] = rng.choice(choices)
    for index in range(rng.randint(0, 2)):
        properties[f"extra{index}"] = _json(rng)
    return properties


def _clip(rng: random.Random, index: int) -> dict[str, Any]:
    clip: dict[str, Any] = {
        "id": rng.choice([f"clip_{index}", f"clip_{index}" + "_split_1700000000000" * 6]),
        "type": rng.choice(["video", "audio", "text", "effect", "overlay"]),
        "start_time": _number(rng),
        "end_time": _number(rng),
        "duration": _number(rng),
        "properties": _properties(rng),
        "keyframes": [
            {
                "id": rng.choice(["", f"kf{k}"]),
                "time": _number(rng),
                "property": rng.choice(["opacity", "position", "volume"]),
                "value": _json(rng),
                "easing": rng.choice(["linear", "ease-out", None]),
            }
            for k in range(rng.randint(0, 3))
        ],
    }
    optional: dict[str, list[Any]] = {
        "original_start_time": [0, 0.0, 12.75, -1, None],
        "source_path": ["", "/media/a.mp4", None],
        "content": ["", "Title", None],
    }
    for name, choices in optional.items():
        if rng.random() < 0.7:
            clip[name] = rng.choice(choices)
    return clip


def _timeline(rng: random.Random) -> dict[str, Any]:
    counter = iter(range(10_000))
    return {
        "layers": [
            {
                "id": f"layer_{position}",
                "name": rng.choice(["", "Video", "Audio 2"]),
                "type": rng.choice(["video", "audio", "text", "effect", "overlay"]),
                "clips": [_clip(rng, next(counter)) for _ in range(rng.randint(0, 4))],
                "is_visible": rng.choice([True, False]),
                "is_locked": rng.choice([True, False]),
                "is_muted": rng.choice([True, False]),
                "order": rng.randint(0, 5),
                "is_main_video": rng.choice([True, False]),
            }
            for position in range(rng.randint(0, 4))
        ],
        "playhead_time": _number(rng),
        "zoom": rng.choice([0.1, 1, 4.5]),
        "duration": _number(rng),
        "markers": [
            {
                "id": f"marker_{m}",
                "time": rng.choice([0, 1.5, 3600]),
                "label": rng.choice(["", "Cut here"]),
                "color": rng.choice(["", "#ff0000"]),
            }
            for m in range(rng.randint(0, 3))
        ],
        "selected_clips": rng.choice([[], ["clip_0"], ["gone", "x" * 150]]),
        "is_playing": rng.choice([True, False]),
        "is_snapping": rng.choice([True, False]),
    }


@pytest.mark.parametrize("seed", range(150))
def test_generated_timelines_round_trip_both_ways(seed: int) -> None:
    """Any timeline the web app can produce comes back field by field, and its state is
    stable through the web app's shape (150 generated timelines)."""
    sent = _timeline(random.Random(seed))  # noqa: S311 - reproducible test data
    state = to_state(sent)
    assert_same(to_compat(state), normalized(sent))
    assert to_state(to_compat(state)) == state


# --- edits made through /api/v1 ---------------------------------------------------------------


def _edited(state: TimelineState, index: int, **changes: Any) -> TimelineState:
    document = state.model_dump(mode="json", by_alias=False)
    document["clips"][index].update(changes)
    return TimelineState.model_validate(document)


def test_a_clip_moved_through_api_v1_shows_moved_in_the_web_app() -> None:
    """Timing changed in Snipix's fields wins; the rest of the clip stays as the web app sent."""
    sent = web_app_timeline()
    state = _edited(to_state(sent), 0, start=20.0, source_in=1.0, source_out=7.0)
    clip = to_compat(state)["layers"][0]["clips"][0]
    assert clip["start_time"] == 20.0
    assert clip["original_start_time"] == 1.0
    assert clip["duration"] == pytest.approx(4.0)  # 6 s of source at speed 1.5
    assert clip["end_time"] == pytest.approx(24.0)
    original = sent["layers"][0]["clips"][0]
    assert clip["properties"] == original["properties"]
    assert (clip["content"], clip["source_path"]) == (original["content"], original["source_path"])


def test_a_volume_changed_through_api_v1_shows_in_the_clips_properties() -> None:
    """Only the property that changed is replaced; exact timings are kept."""
    sent = web_app_timeline()
    state = _edited(to_state(sent), 0, volume=0.0, media_ref="media/other.mp4")
    clip = to_compat(state)["layers"][0]["clips"][0]
    original = sent["layers"][0]["clips"][0]
    assert clip["properties"] == {**original["properties"], "volume": 0.0}
    assert clip["source_path"] == "media/other.mp4"
    assert (clip["start_time"], clip["end_time"], clip["duration"]) == (0, 12.5, 4.25)


def test_a_timeline_made_through_api_v1_reads_in_the_web_apps_shape() -> None:
    """Tracks become layers of their kind; a clip's timing comes from its trim points."""
    state = TimelineState.model_validate(
        {
            "tracks": [{"id": "a1", "kind": "audio", "name": "Music", "muted": True}],
            "clips": [
                {
                    "id": "c1",
                    "trackId": "a1",
                    "mediaRef": "music.mp3",
                    "start": 2.0,
                    "sourceIn": 10.0,
                    "sourceOut": 14.0,
                    "speed": 2.0,
                }
            ],
        }
    )
    back = to_compat(state)
    layer = back["layers"][0]
    assert (layer["type"], layer["is_muted"], layer["is_main_video"]) == ("audio", True, False)
    assert layer["clips"][0] == {
        "id": "c1",
        "type": "audio",
        "start_time": 2.0,
        "end_time": 4.0,
        "duration": 2.0,
        "original_start_time": 10.0,
        "source_path": "music.mp3",
        "content": None,
        "properties": {"speed": 2.0},
        "keyframes": [],
    }
    assert back["duration"] == 4.0
    assert back["zoom"] == 1.0
    assert back["is_snapping"] is True


def test_a_web_app_save_keeps_what_its_shape_cannot_say() -> None:
    """Cut segments, fps, and a clip's effects survive a save from the web app."""
    first = to_state(web_app_timeline())
    document = first.model_dump(mode="json", by_alias=False)
    document["segments"] = [Segment(id="cut1", start=1.0, end=2.0, kind="cut").model_dump()]
    document["fps"] = 25.0
    document["clips"][0]["effects"] = [Effect(type="blur", params={"radius": 3.0}).model_dump()]
    document["layers"] = [{"id": "group", "track_ids": [first.tracks[0].id, first.tracks[1].id]}]
    current = TimelineState.model_validate(document)
    changed = web_app_timeline()
    del changed["layers"][1]  # the web app removes a layer
    saved = to_state(changed, base=current)
    assert saved.segments == current.segments
    assert saved.fps == 25.0
    assert saved.clips[0].effects == current.clips[0].effects
    assert saved.layers[0].track_ids == [first.tracks[0].id]


# --- what Snipix cannot hold ----------------------------------------------------------------


def test_an_invalid_timeline_is_refused_naming_the_place_in_the_web_apps_shape() -> None:
    """A 422 points at the web app's layer and clip, not at Snipix's lists."""
    sent = web_app_timeline()
    sent["layers"][1]["clips"][1]["properties"] = {"bad.key": 1}
    with pytest.raises(ValidationFailed) as raised:
        to_state(sent)
    assert "timeline_state.layers.1.clips.1.properties.bad.key" in raised.value.message
    sent = web_app_timeline()
    sent["layers"][1]["id"] = "no spaces allowed"
    with pytest.raises(ValidationFailed, match=r"timeline_state\.layers\.1\.id"):
        to_state(sent)
    broken = copy.deepcopy(web_app_timeline())
    broken["markers"][0]["time"] = -1
    with pytest.raises(ValidationFailed, match=r"timeline_state\.markers\.0\.time"):
        to_state(broken)
    twice = web_app_timeline()
    twice["layers"][1]["clips"][1]["id"] = twice["layers"][1]["clips"][0]["id"]
    with pytest.raises(ValidationFailed, match="used twice"):
        to_state(twice)
