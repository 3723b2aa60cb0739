"""Contracts with the adapter internals `snipix.timelines.interchange` replaces.

`_quiet` swaps two conversion functions of the Final Cut Pro X adapter and shadows the
Kdenlive adapter's `print`. Each test here names one thing it relies on, so an upgrade
of an adapter that renames or reshapes it fails here, loudly, instead of silently
bringing back truncated times or a banner in the server's log.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata
import inspect
import io
from pathlib import Path
from typing import Any

import opentimelineio as otio

from snipix.timelines.interchange import FORMATS, export_timeline, import_timeline
from snipix.timelines.schemas import TimelineState

STATE = TimelineState.model_validate(
    {
        "fps": 25.0,
        "tracks": [{"id": "v1", "kind": "video", "name": "V1"}],
        "clips": [
            {
                "id": "c1",
                "trackId": "v1",
                "mediaRef": "media/a.mp4",
                "start": 0.0,
                "sourceIn": 0.0,
                "sourceOut": 1.16,
            },
            {
                "id": "c2",
                "trackId": "v1",
                "mediaRef": "media/b.mp4",
                "start": 1.16,
                "sourceIn": 0.0,
                "sourceOut": 1.16,
            },
        ],
    }
)


def test_the_pinned_adapter_versions_are_the_tested_ones() -> None:
    assert importlib.metadata.version("otio-fcpx-xml-adapter").startswith("1.0.")
    assert importlib.metadata.version("otio-kdenlive-adapter") == "0.0.3"


def _upstream_parameters(module: Any, qualified: str) -> list[str]:
    """The parameters of `qualified` as the module's source declares it (read from the
    file: once `_quiet` ran in this process, the attribute is the replacement)."""
    tree = ast.parse(Path(inspect.getfile(module)).read_text())
    *owners, name = qualified.split(".")
    scope: Any = tree
    for owner in owners:
        scope = next(n for n in scope.body if isinstance(n, ast.ClassDef) and n.name == owner)
    function = next(n for n in scope.body if isinstance(n, ast.FunctionDef) and n.name == name)
    return [argument.arg for argument in function.args.args]


def test_the_fcpx_reader_converts_times_where_the_override_replaces_it() -> None:
    module = otio.adapters.from_name("fcpx_xml").module()
    assert _upstream_parameters(module, "to_rational_time") == ["rational_number", "fps"]
    assert _upstream_parameters(module, "FcpxXml._number_of_frames") == [
        "self",
        "time_value",
        "format_id",
    ]
    # The override asks the reader for the format's frame duration through this.
    assert _upstream_parameters(module, "FcpxXml._format_frame_duration") == [
        "self",
        "format_id",
    ]
    assert callable(module.FcpxXml._format_frame_duration)


def test_an_fcpx_round_trip_keeps_cuts_that_upstream_truncates_a_frame_early() -> None:
    """29 frames at 25 fps is "29/25s"; upstream reads it as int(29 / 25 * 25) = 28."""
    exported = export_timeline(STATE, name="cut", fmt=FORMATS["fcpxml"])
    back, _unmapped = import_timeline(exported.document.encode(), fmt=FORMATS["fcpxml"])
    cuts = sorted(
        round((clip.start + clip.source_out - clip.source_in) * 25) for clip in back.clips
    )
    assert cuts == [29, 58]


def test_the_kdenlive_adapter_prints_nothing_once_quietened() -> None:
    module = otio.adapters.from_name("kdenlive").module()
    assert "print(" in inspect.getsource(module), "the banner is gone: drop the override"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exported = export_timeline(STATE, name="cut", fmt=FORMATS["kdenlive"])
        import_timeline(exported.document.encode(), fmt=FORMATS["kdenlive"])
    assert out.getvalue() == ""
