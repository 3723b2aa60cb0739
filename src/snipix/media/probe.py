"""ffprobe and ffmpeg, run as asyncio subprocesses: bounded in number, time and output.

Every run waits for a slot (`SNIPIX_MEDIA_MAX_JOBS`, an `asyncio.Semaphore` per app), is
stopped after `SNIPIX_MEDIA_JOB_TIMEOUT_S`, and is killed if the request that started it
is cancelled, so a slow or stuck ffmpeg never blocks the event loop or outlives its caller.
Both tools are optional: `MediaTools.ffmpeg`/`ffprobe` are None when missing (one logged
notice per app), and callers degrade (null duration, no thumbnail, trim 501).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog

from snipix.errors import SnipixError
from snipix.settings import Settings

log = structlog.get_logger(__name__)

# What a failed run leaves in the log: the end of ffmpeg's stderr, which names the problem.
_STDERR_TAIL: Final = 2_000
# ffprobe's JSON for one file is small; a bound keeps a pathological file from flooding us.
_STDOUT_LIMIT: Final = 1024 * 1024
THUMBNAIL_WIDTH: Final = 320


class MediaToolFailed(SnipixError):
    code = "media_processing_failed"
    status_code = 500


class MediaToolTimedOut(SnipixError):
    code = "media_timeout"
    status_code = 503


@dataclass(frozen=True, slots=True)
class ProbeResult:
    duration_sec: float | None
    has_video: bool
    has_audio: bool = False
    width: int | None = None
    height: int | None = None
    fps: float | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    start: float
    duration: float


class MediaTools:
    """The ffmpeg/ffprobe of one app: located once, run under one semaphore."""

    def __init__(self, settings: Settings) -> None:
        self.ffmpeg = shutil.which(settings.ffmpeg_path)
        self.ffprobe = shutil.which(settings.ffprobe_path)
        self.timeout_s = settings.media_job_timeout_s
        self._slots = asyncio.Semaphore(settings.media_max_jobs)
        missing = [
            f"{name} ({configured})"
            for name, configured, found in (
                ("ffmpeg", settings.ffmpeg_path, self.ffmpeg),
                ("ffprobe", settings.ffprobe_path, self.ffprobe),
            )
            if found is None
        ]
        if missing:
            log.warning(
                "media tools missing: uploads get no duration or thumbnail, trimming answers 501",
                missing=", ".join(missing),
            )

    # --- the three jobs ------------------------------------------------------------------

    async def probe(self, path: Path) -> ProbeResult | None:
        """Duration and picture of a file; None without ffprobe. Raises if ffprobe fails."""
        if self.ffprobe is None:
            return None
        out = await self._run(
            [
                self.ffprobe,
                "-v",
                "error",
                "-show_entries",
                "format=duration:stream=codec_type,width,height,avg_frame_rate,duration",
                "-of",
                "json",
                str(path),
            ],
            what="probe",
        )
        try:
            info = json.loads(out)
        except ValueError:
            raise MediaToolFailed("The video's information could not be read.") from None
        return _probe_result(info)

    async def thumbnail(self, source: Path, target: Path, *, at_sec: float) -> bool:
        """Write one JPEG frame of `source` at `at_sec`; False (logged) when it cannot."""
        if self.ffmpeg is None:
            return False
        try:
            await self._run(
                [
                    self.ffmpeg,
                    *_QUIET,
                    "-ss",
                    f"{at_sec:.3f}",
                    "-i",
                    str(source),
                    "-frames:v",
                    "1",
                    "-vf",
                    f"scale={THUMBNAIL_WIDTH}:-2",
                    "-q:v",
                    "4",
                    "-f",
                    "image2",
                    "-c:v",
                    "mjpeg",
                    str(target),
                ],
                what="thumbnail",
            )
        except (MediaToolFailed, MediaToolTimedOut):
            return False
        return await asyncio.to_thread(_non_empty, target)

    async def render(
        self, source: Path, segments: Sequence[Segment], target: Path, *, audio: bool
    ) -> None:
        """Write `segments` of `source`, in order, to `target` (MP4), re-encoded.

        Re-encoded because stream copy can only start a part on a keyframe: the render
        would open with up to a GOP of what was cut. Each segment is its own input, seeked
        with `-ss` before `-i`: ffmpeg jumps to the keyframe before the start and decodes,
        dropping the frames before it (its accurate seek), so only the kept parts (plus up
        to a GOP each) are decoded, in any order. A part's timestamps then count from its
        requested start, and `trim`/`atrim` end it there exactly (the input's own `-t`
        counts from the first frame kept, a frame late at worst, and only bounds the
        reading); `setpts`/`asetpts` restart each part at zero for the concat filter.
        """
        assert self.ffmpeg is not None
        inputs: list[str] = []
        chains: list[str] = []
        joined = ""
        for index, segment in enumerate(segments):
            end = f"{segment.duration:.6f}"
            inputs += ["-ss", f"{segment.start:.6f}"]
            inputs += ["-t", f"{segment.duration + _READ_MARGIN_SEC:.6f}", "-i", str(source)]
            # `V`: the first video stream that is not a cover picture.
            chains.append(f"[{index}:V:0]trim=end={end},setpts=PTS-STARTPTS[v{index}]")
            joined += f"[v{index}]"
            if audio:
                chains.append(f"[{index}:a:0]atrim=end={end},asetpts=PTS-STARTPTS[a{index}]")
                joined += f"[a{index}]"
        streams = "[v][a]" if audio else "[v]"
        chains.append(f"{joined}concat=n={len(segments)}:v=1:a={int(audio)}{streams}")
        # H.264 needs even dimensions in 4:2:0; a no-op for almost every video.
        chains.append(f"[v]scale=trunc(iw/2)*2:trunc(ih/2)*2,format={_PIXEL_FORMAT}[vout]")
        maps = ["-map", "[vout]"] + (["-map", "[a]"] if audio else [])
        await self._run(
            [
                self.ffmpeg,
                *_QUIET,
                *inputs,
                "-filter_complex",
                ";".join(chains),
                *maps,
                *RENDER_ARGS,
                # The index first, so a browser can start playing before the end arrives.
                "-movflags",
                "+faststart",
                "-f",
                "mp4",
                str(target),
            ],
            what="trim",
        )

    # --- running a tool ------------------------------------------------------------------

    async def _run(self, args: list[str], *, what: str) -> bytes:
        async with self._slots:
            process = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                stdout, stderr = await asyncio.wait_for(
                    process.communicate(), timeout=self.timeout_s
                )
            except TimeoutError:
                await _kill(process)
                log.warning("media tool timed out", job=what, timeout_s=self.timeout_s)
                raise MediaToolTimedOut(
                    f"Processing the video ({what}) took longer than {self.timeout_s:g} s and "
                    "was stopped. Try again later, or with a shorter video."
                ) from None
            except BaseException:
                # The request was cancelled (client gone, shutdown): the tool goes with it.
                await _kill(process)
                raise
        if process.returncode != 0:
            log.warning(
                "media tool failed",
                job=what,
                returncode=process.returncode,
                stderr=stderr[-_STDERR_TAIL:].decode("utf-8", "replace"),
            )
            raise MediaToolFailed(f"The video could not be processed ({what} failed).")
        return stdout[:_STDOUT_LIMIT]


_QUIET: Final = ("-hide_banner", "-nostdin", "-loglevel", "error", "-y")
_PIXEL_FORMAT: Final = "yuv420p"
# A trim's input is read this far past its end; the trim filter cuts it exactly.
_READ_MARGIN_SEC: Final = 1.0
# How a trimmed render is encoded: H.264 and AAC in MP4 play in every browser, whatever
# the upload's container; `veryfast` keeps a render well under real time on one core
# (docs/performance.md). Part of a render's fingerprint: changing these renders anew.
RENDER_ARGS: Final = (
    *("-c:v", "libx264", "-preset", "veryfast", "-crf", "23"),
    *("-c:a", "aac", "-b:a", "128k"),
)
RENDER_EXTENSION: Final = "mp4"
RENDER_SETTINGS: Final = " ".join((*RENDER_ARGS, _PIXEL_FORMAT, RENDER_EXTENSION, "render-v2"))


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    # Shielded: reaping must finish even while the caller is being cancelled.
    with contextlib.suppress(Exception):
        await asyncio.shield(process.wait())


def _non_empty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _rate(value: Any) -> float | None:
    if not isinstance(value, str) or "/" not in value:
        return None
    numerator, _, denominator = value.partition("/")
    top, bottom = _number(numerator), _number(denominator)
    if top is None or not bottom:
        return None
    fps = top / bottom
    return round(fps, 3) if 0 < fps <= 1_000 else None


def _probe_result(info: Any) -> ProbeResult:
    streams = info.get("streams", []) if isinstance(info, dict) else []
    video = next(
        (s for s in streams if isinstance(s, dict) and s.get("codec_type") == "video"), None
    )
    fmt = info.get("format", {}) if isinstance(info, dict) else {}
    duration = _number(fmt.get("duration")) if isinstance(fmt, dict) else None
    if duration is None:
        durations = [_number(s.get("duration")) for s in streams if isinstance(s, dict)]
        duration = max((d for d in durations if d is not None), default=None)
    has_audio = any(isinstance(s, dict) and s.get("codec_type") == "audio" for s in streams)
    if video is None:
        return ProbeResult(duration_sec=duration, has_video=False, has_audio=has_audio)
    width, height = video.get("width"), video.get("height")
    return ProbeResult(
        duration_sec=round(duration, 3) if duration is not None else None,
        has_video=True,
        has_audio=has_audio,
        width=width if isinstance(width, int) and 1 <= width <= 16_384 else None,
        height=height if isinstance(height, int) and 1 <= height <= 16_384 else None,
        fps=_rate(video.get("avg_frame_rate")),
    )
