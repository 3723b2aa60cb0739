"""Sample data in the web app's shapes, and a comparison that names the field that differs."""

from __future__ import annotations

from typing import Any

from snipix.compat.timeline_mapping import CompatTimelineState

LONG_ID = "video-clip-65a1b2c3d4e5f60718293a4b" + "_split_1700000000000" * 5


def web_app_timeline() -> dict[str, Any]:
    """A timeline as the web app's `convertToBackendTimelineState` sends it."""
    return {
        "layers": [
            {
                "id": "video-layer-65a1b2c3d4e5f60718293a4b",
                "name": "Video",
                "type": "video",
                "clips": [
                    {
                        "id": "video-clip-65a1b2c3d4e5f60718293a4b",
                        "type": "video",
                        "start_time": 0,
                        "end_time": 12.5,
                        "duration": 4.25,
                        "source_path": "http://localhost:8001/media/65a1b2c3d4e5f60718293a4b/video",
                        "content": "Wedding",
                        "properties": {
                            "volume": 0.8,
                            "speed": 1.5,
                            "opacity": 1.0,
                            "easing": "ease-in-out",
                            "position": {"x": 0, "y": -12.5},
                            "rotation": 0,
                        },
                        "keyframes": [
                            {
                                "id": "kf_1",
                                "time": 0,
                                "property": "opacity",
                                "value": 0,
                                "easing": "linear",
                            },
                            {
                                "id": "kf_2",
                                "time": 1.5,
                                "property": "position",
                                "value": {"x": 10, "y": 20},
                                "easing": None,
                            },
                        ],
                        "original_start_time": 0,
                    },
                    {
                        "id": LONG_ID,
                        "type": "video",
                        "start_time": 4.25,
                        "end_time": 12.5,
                        "duration": 0,
                        "source_path": "",
                        "content": "",
                        "properties": {"volume": 0, "speed": 1.0, "customFlag": False},
                        "keyframes": [],
                        "original_start_time": 4.25,
                    },
                ],
                "is_visible": True,
                "is_locked": False,
                "is_muted": False,
                "order": 0,
                "is_main_video": True,
            },
            {
                "id": "layer_1700000000001_abcdefghi",
                "name": "Titles",
                "type": "effect",
                "clips": [
                    {
                        "id": "clip_1700000000002_jklmnopqr",
                        "type": "text",
                        "start_time": 1,
                        "end_time": 3,
                        "duration": 2,
                        "source_path": "",
                        "content": "Hello",
                        "properties": {},
                        "keyframes": [],
                        "original_start_time": 1,
                    },
                    {
                        "id": "clip_1700000000003_overlaps",
                        "type": "overlay",
                        "start_time": 2,
                        "end_time": 2,
                        "duration": 0,
                        "source_path": "",
                        "content": "",
                        "properties": {"opacity": 0},
                        "keyframes": [],
                        "original_start_time": 0,
                    },
                ],
                "is_visible": False,
                "is_locked": True,
                "is_muted": True,
                "order": 1,
                "is_main_video": False,
            },
        ],
        "playhead_time": 0,
        "zoom": 1,
        "duration": 12.5,
        "markers": [{"id": "marker_1", "time": 0, "label": "", "color": "#6366f1"}],
        "selected_clips": [LONG_ID],
        "is_playing": False,
        "is_snapping": False,
    }


def normalized(original: dict[str, Any]) -> dict[str, Any]:
    """What the original backend would have given back: its defaults for left-out fields."""
    return CompatTimelineState.model_validate(original).model_dump(mode="json")


def assert_same(got: Any, expected: Any, path: str = "data") -> None:
    """Equal field by field (a failure names the field)."""
    if isinstance(expected, dict):
        assert isinstance(got, dict), path
        assert set(got) == set(expected), f"{path}: keys {sorted(got)} != {sorted(expected)}"
        for key, value in expected.items():
            assert_same(got[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list), path
        assert len(got) == len(expected), f"{path}: {len(got)} items, expected {len(expected)}"
        for index, (item, value) in enumerate(zip(got, expected, strict=True)):
            assert_same(item, value, f"{path}.{index}")
    else:
        assert type(got) is type(expected) or {type(got), type(expected)} <= {int, float}, path
        assert got == expected, f"{path}: {got!r} != {expected!r}"
