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
from snipix.media.formats import VideoFormat
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

    async def cut(
        self, source: Path, segments: Sequence[Segment], target: Path, fmt: VideoFormat
    ) -> None:
        """Concatenate `segments` of `source` into `target` without re-encoding.

        The concat demuxer reads the same file once per segment between `inpoint` and
        `outpoint`; with stream copy each segment starts at the keyframe at or before its
        start (ffmpeg's documented behaviour), so cuts are exact on keyframes.
        """
        assert self.ffmpeg is not None
        listing = target.with_suffix(".ffconcat")
        # Absolute (the storage root is): ffconcat resolves relative names against the
        # listing's own folder.
        assert source.is_absolute()
        quoted = _concat_quote(str(source))
        lines = ["ffconcat version 1.0"]
        for segment in segments:
            lines += [
                f"file {quoted}",
                f"inpoint {segment.start:.6f}",
                f"outpoint {segment.start + segment.duration:.6f}",
            ]
        await asyncio.to_thread(listing.write_text, "\n".join(lines) + "\n", "utf-8")
        faststart = ["-movflags", "+faststart"] if fmt.muxer in {"mp4", "mov"} else []
        try:
            await self._run(
                [
                    self.ffmpeg,
                    *_QUIET,
                    "-f",
                    "concat",
                    "-safe",
                    "0",
                    "-i",
                    str(listing),
                    "-c",
                    "copy",
                    "-avoid_negative_ts",
                    "make_zero",
                    *faststart,
                    "-f",
                    fmt.muxer,
                    str(target),
                ],
                what="trim",
            )
        finally:
            await asyncio.to_thread(listing.unlink, missing_ok=True)

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


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    # Shielded: reaping must finish even while the caller is being cancelled.
    with contextlib.suppress(Exception):
        await asyncio.shield(process.wait())


def _non_empty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _concat_quote(path: str) -> str:
    # ffconcat quoting: single quotes, a quote inside written as '\''.
    return "'" + path.replace("'", "'\\''") + "'"


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
    if video is None:
        return ProbeResult(duration_sec=duration, has_video=False)
    width, height = video.get("width"), video.get("height")
    return ProbeResult(
        duration_sec=round(duration, 3) if duration is not None else None,
        has_video=True,
        width=width if isinstance(width, int) and 1 <= width <= 16_384 else None,
        height=height if isinstance(height, int) and 1 <= height <= 16_384 else None,
        fps=_rate(video.get("avg_frame_rate")),
    )
