"""Trimmed renders: how exact the cuts are, and what a render costs per second of video.

    .venv/bin/python benchmarks/trims.py [--trims 20] [--seconds 60] [--seed 1]
    .venv/bin/python benchmarks/trims.py --memory 500 [--seconds 60]

Runs `MediaTools.render` (the service's own ffmpeg command) in this process, and beside it
the stream copy it replaced (concat demuxer, `inpoint`/`outpoint`, `-c copy`) as the
"before" column. Sources are made by ffmpeg in a temporary directory:

- accuracy: 20 s, 240x136, 25 fps, a keyframe every 2 s, AAC audio; every frame shows its
  own number as 12 bars, read back from each render. `--trims` random trims of 1-4
  segments, cuts at random times (almost never on a keyframe), in random order. Reported:
  how many frames each part starts early (a negative figure: late) and ends late, and the
  video stream's duration against the request (ffprobe).
- cost: `--seconds` of 1280x720 at 30 fps (testsrc2 with temporal noise, so it does not
  compress to nothing), keyframes every 2 s, AAC; rendered whole (one segment) and as 10
  parts of 60 % of it. Reported: wall and CPU seconds (ffmpeg's, from `getrusage`) per
  second of video written.
- `--memory N` instead: one render of N segments of 0.1 s spread over the 720p source,
  and the peak resident memory of its ffmpeg processes (`getrusage`, this process's
  children only, so run it alone).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from snipix.media.probe import MediaTools, Segment
from snipix.settings import Settings

FPS = 25
SECONDS = 20
WIDTH, HEIGHT = 240, 136
BITS = 12
GOP_SEC = 2


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not installed (apt-get install -y ffmpeg)")
    return found


def ffmpeg(*args: str) -> None:
    subprocess.run(
        [tool("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=600,
    )


def numbered_source(path: Path) -> None:
    bar = WIDTH // BITS
    lum = f"if(bitand(N\\,pow(2\\,floor(X/{bar})))\\,235\\,16)"
    ffmpeg(
        *("-f", "lavfi", "-i", f"color=c=black:s={WIDTH}x{HEIGHT}:r={FPS}:d={SECONDS}"),
        *("-f", "lavfi", "-i", f"sine=duration={SECONDS}"),
        *("-vf", f"format=yuv420p,geq=lum='{lum}':cb=128:cr=128"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        *("-force_key_frames", f"expr:gte(t,n_forced*{GOP_SEC})", "-g", "1000"),
        *("-sc_threshold", "0", "-c:a", "aac", "-shortest", str(path)),
    )


def camera_source(path: Path, seconds: int) -> None:
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=duration={seconds}"),
        *("-vf", "noise=alls=12:allf=t+u"),
        *("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"),
        *("-g", str(30 * GOP_SEC), "-keyint_min", str(30 * GOP_SEC), "-sc_threshold", "0"),
        *("-c:a", "aac", "-shortest", str(path)),
    )


def frame_numbers(path: Path) -> list[int]:
    raw = subprocess.run(
        [
            *(tool("ffmpeg"), "-v", "error", "-i", str(path)),
            *("-f", "rawvideo", "-pix_fmt", "gray", "-"),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    ).stdout
    size, bar, row = WIDTH * HEIGHT, WIDTH // BITS, (HEIGHT // 2) * WIDTH
    return [
        sum(1 << k for k in range(BITS) if raw[at + row + k * bar + bar // 2] > 128)
        for at in range(0, len(raw) - size + 1, size)
    ]


def video_duration(path: Path) -> float:
    out = subprocess.run(
        [
            *(tool("ffprobe"), "-v", "error", "-select_streams", "v:0"),
            *("-show_entries", "stream=duration", "-of", "json", str(path)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    return float(json.loads(out)["streams"][0]["duration"])


def runs(frames: Sequence[int]) -> list[list[int]]:
    parts: list[list[int]] = []
    for number in frames:
        if parts and number in (parts[-1][-1], parts[-1][-1] + 1):
            parts[-1].append(number)
        else:
            parts.append([number])
    return parts


def stream_copy(source: Path, segments: Sequence[Segment], target: Path) -> None:
    """The render before: the concat demuxer over the same file, streams copied."""
    listing = target.with_suffix(".ffconcat")
    lines = ["ffconcat version 1.0"]
    for s in segments:
        lines += [f"file '{source}'", f"inpoint {s.start:.6f}"]
        lines += [f"outpoint {s.start + s.duration:.6f}"]
    listing.write_text("\n".join(lines) + "\n")
    ffmpeg(
        *("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy"),
        *("-avoid_negative_ts", "make_zero", "-movflags", "+faststart", str(target)),
    )


def random_trim(rng: random.Random) -> list[Segment]:
    segments = []
    for _ in range(rng.randint(1, 4)):
        start = round(rng.uniform(0, SECONDS - 2), 3)
        length = round(rng.uniform(0.3, min(4.0, SECONDS - start)), 3)
        segments.append(Segment(start, length))
    return segments


class Children:
    """CPU seconds used by finished child processes (ffmpeg) since the last reading."""

    def __init__(self) -> None:
        self._last = self._now()

    @staticmethod
    def _now() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def since(self) -> float:
        now = self._now()
        spent, self._last = now - self._last, now
        return spent


async def accuracy(tools: MediaTools, folder: Path, trims: int, seed: int) -> None:
    source = folder / "numbered.mp4"
    numbered_source(source)
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
    errors: dict[str, dict[str, list[float]]] = {
        name: {"start": [], "end": [], "duration_ms": []} for name in ("render", "stream copy")
    }
    for index in range(trims):
        segments = random_trim(rng)
        wanted = sum(s.duration for s in segments)
        for name in errors:
            target = folder / f"trim{index}-{name.replace(' ', '-')}.mp4"
            if name == "render":
                await tools.render(source, segments, target, audio=True, fps=FPS)
            else:
                stream_copy(source, segments, target)
            parts = runs(frame_numbers(target))
            errors[name]["duration_ms"].append((video_duration(target) - wanted) * 1000)
            if len(parts) != len(segments):
                # Overlapping or touching parts merge into one run: compare the ends.
                parts = [parts[0], parts[-1]] if len(parts) > 1 else [parts[0], parts[0]]
                segments = [segments[0], segments[-1]]
            for part, segment in zip(parts, segments, strict=True):
                first = math.ceil(segment.start * FPS - 1e-6)
                last = math.ceil((segment.start + segment.duration) * FPS - 1e-6) - 1
                errors[name]["start"].append(first - part[0])
                errors[name]["end"].append(part[-1] - last)
            target.unlink()
    print(f"accuracy: {trims} random trims of a {SECONDS} s source, keyframe every {GOP_SEC} s")
    print("  frames a part starts early / ends late (max, mean); video duration - request (ms)")
    for name, seen in errors.items():
        print(
            f"  {name:12} start max {max(seen['start']):3.0f} mean "
            f"{statistics.fmean(seen['start']):5.2f} | end max {max(seen['end']):3.0f} mean "
            f"{statistics.fmean(seen['end']):5.2f} | duration max "
            f"{max(map(abs, seen['duration_ms'])):6.0f} ms, mean "
            f"{statistics.fmean(seen['duration_ms']):6.1f} ms"
        )


async def cost(tools: MediaTools, folder: Path, seconds: int) -> None:
    source = folder / "camera.mp4"
    camera_source(source, seconds)
    whole = [Segment(0.0, float(seconds))]
    part = seconds * 0.6 / 10
    parts = [Segment(round(i * seconds / 10 + 0.37, 3), round(part, 3)) for i in range(10)]
    print(f"cost: 1280x720 30 fps, {seconds} s source, keyframe every {GOP_SEC} s")
    children = Children()
    for label, segments in (("whole", whole), ("10 parts", parts)):
        out_seconds = sum(s.duration for s in segments)
        for name in ("render", "stream copy"):
            target = folder / "cost.mp4"
            children.since()
            started = time.perf_counter()
            if name == "render":
                await tools.render(source, segments, target, audio=True, fps=30)
            else:
                stream_copy(source, segments, target)
            wall = time.perf_counter() - started
            cpu = children.since()
            print(
                f"  {label:8} {name:12} {out_seconds:5.1f} s of video: wall {wall:6.2f} s "
                f"({wall / out_seconds * 1000:5.0f} ms per s), CPU {cpu:6.2f} s "
                f"({cpu / out_seconds * 1000:5.0f} ms per s)"
            )
            target.unlink()


async def memory(tools: MediaTools, folder: Path, seconds: int, count: int) -> None:
    source = folder / "camera.mp4"
    camera_source(source, seconds)
    step = (seconds - 0.2) / count
    segments = [Segment(round(i * step, 3), 0.1) for i in range(count)]
    children = Children()
    started = time.perf_counter()
    await tools.render(source, segments, folder / "many.mp4", audio=True, fps=30)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"memory: {count} segments of 0.1 s of a 1280x720 {seconds} s source: wall "
        f"{wall:.2f} s, CPU {children.since():.2f} s, ffmpeg peak RSS {peak:.0f} MB "
        f"(the source's own encode included)"
    )


async def main(trims: int, seconds: int, seed: int, count: int | None) -> None:
    settings = Settings(_env_file=None, media_job_timeout_s=3_600)
    tools = MediaTools(settings)
    with tempfile.TemporaryDirectory() as tmp:
        if count is not None:
            await memory(tools, Path(tmp), seconds, count)
            return
        await accuracy(tools, Path(tmp), trims, seed)
        await cost(tools, Path(tmp), seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trims", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory", type=int, default=None, metavar="SEGMENTS")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.trims, arguments.seconds, arguments.seed, arguments.memory))
