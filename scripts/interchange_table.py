"""The interchange table: each corpus file through each format and back.

    .venv/bin/python scripts/interchange_table.py [--markdown]

For every file of tests/timelines/corpus: what OpenTimelineIO's own adapter reads in it
(top-level tracks, clips including nested ones, duration in frames), what Snipix imports,
and, for each export format, what comes back when that export is read by the same
adapter and imported again. A row is `equal` when tracks, clips, duration and every
clip's frames match; otherwise the export's `unmapped` list must name the losses. Also
checks that import → OTIO export → import is a fixed point (the state, exactly).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import opentimelineio as otio

from snipix.timelines.interchange import FORMATS, export_timeline, import_timeline
from snipix.timelines.otio import from_otio, to_otio
from snipix.timelines.schemas import TimelineState

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "timelines" / "corpus"
NATIVE = {".otio": "otio", ".edl": "edl", ".xml": "fcp-xml"}
EDL_RATES = {"25fps.edl": 25.0}
CLIP_COUNT = re.compile(r"(\d+) clip\(s\)")


def shape(state: TimelineState) -> str:
    return f"{len(state.tracks)}/{len(state.clips)}/{round(state.duration_sec * state.fps)}"


def cuts(state: TimelineState) -> list[tuple[int, int]]:
    fps = state.fps
    return sorted((round(c.start * fps), round(c.end * fps)) for c in state.clips)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args()
    rows: list[list[str]] = []
    problems = 0
    for path in sorted(CORPUS.iterdir()):
        if path.suffix not in NATIVE:
            continue
        source = FORMATS[NATIVE[path.suffix]]
        fps = EDL_RATES.get(path.name, 24.0)
        options = {"rate": fps} if source.name == "edl" else {}
        raw = otio.adapters.read_from_file(str(path), source.adapter, **options)
        state, unmapped = import_timeline(path.read_bytes(), fmt=source, fps=fps)
        frames = round(raw.duration().to_seconds() * state.fps)
        before = f"{len(raw.tracks)}/{len(list(raw.find_clips()))}/{frames}"
        imported_ok = before == shape(state)
        fixed = from_otio(to_otio(state, name=path.stem))[0] == state
        if not (imported_ok and fixed):
            problems += 1
        rows.append(
            [
                path.name,
                f"{source.name} (import)",
                before,
                shape(state),
                "equal" if imported_ok else "DIFFERENT",
                "fixed point" if fixed else "NOT A FIXED POINT",
                f"{len(unmapped)} listed",
            ]
        )
        for target in FORMATS.values():
            exported = export_timeline(state, name=path.stem, fmt=target)
            back, _ = import_timeline(exported.document.encode(), fmt=target, fps=state.fps)
            same = shape(back) == shape(state) and cuts(back) == cuts(state)
            # The generic note on Snipix's own details is always there; a difference needs
            # a specific one.
            losses = [item for item in exported.unmapped if "Snipix's own details" not in item]
            # Clips that did not come back must each be counted in a listed loss.
            lost = len(state.clips) - len(back.clips)
            counted = sum(int(n) for item in losses for n in CLIP_COUNT.findall(item))
            if (not same and not losses) or lost > counted:
                problems += 1
            rows.append(
                [
                    path.name,
                    target.name,
                    shape(state),
                    shape(back),
                    "equal"
                    if same
                    else "UNLISTED LOSS"
                    if lost > counted or not losses
                    else "losses listed",
                    "",
                    "; ".join(losses),
                ]
            )
    header = ["file", "format", "before t/c/frames", "after", "result", "otio", "unmapped"]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + " --- |" * len(header))
        for row in rows:
            print("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    else:
        for row in rows:
            print("  ".join(row))
    print(f"\n{len(rows)} rows, {problems} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
