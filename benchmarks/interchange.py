"""Interchange cost: a generated timeline (two tracks, CLIPS clips) out to each format and
back in, through the adapters (docs/performance.md, "Timeline interchange").

    .venv/bin/python benchmarks/interchange.py [--clips 2000] [--fcpx]

`--fcpx` also times a Final Cut Pro X export past the service's bound (its writer is
quadratic in connected clips; the service refuses such exports).
"""

from __future__ import annotations

import argparse
import time

from snipix.timelines import interchange
from snipix.timelines.interchange import FORMATS, export_timeline, import_timeline
from snipix.timelines.schemas import Clip, TimelineState, Track, TrackKind


def generated(count: int) -> TimelineState:
    clips = [
        Clip(
            id=f"c{i}",
            track_id="v" if i % 2 == 0 else "a",
            media_ref=f"file:///media/shot{i % 50}.mov",
            start=(i // 2) * 2.0,
            source_in=1.0,
            source_out=3.0,
        )
        for i in range(count)
    ]
    tracks = [Track(id="v", kind=TrackKind.VIDEO), Track(id="a", kind=TrackKind.AUDIO)]
    return TimelineState(tracks=tracks, clips=clips, fps=30.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2_000)
    parser.add_argument("--fcpx", action="store_true")
    args = parser.parse_args()
    state = generated(args.clips)
    print("| format | export | import | file | clips back |")
    print("| --- | --- | --- | --- | --- |")
    for fmt in FORMATS.values():
        if fmt.name == "fcpxml":
            continue
        started = time.perf_counter()
        exported = export_timeline(state, name="bench", fmt=fmt)
        middle = time.perf_counter()
        back, _ = import_timeline(exported.document.encode(), fmt=fmt, fps=state.fps)
        done = time.perf_counter()
        print(
            f"| {fmt.name} | {(middle - started) * 1000:.0f} ms | {(done - middle) * 1000:.0f} ms "
            f"| {len(exported.document) // 1024} KB | {len(back.clips)} |"
        )
    if args.fcpx:
        # Past the service's bound, on purpose: what the bound saves.
        interchange.MAX_FCPX_STEPS = 10**12
        started = time.perf_counter()
        export_timeline(state, name="bench", fmt=FORMATS["fcpxml"])
        print(f"fcpxml export, {args.clips} clips: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
