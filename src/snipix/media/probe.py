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
        self,
        source: Path,
        segments: Sequence[Segment],
        target: Path,
        *,
        audio: bool,
        fps: float | None,
    ) -> None:
        """Write `segments` of `source`, in order, to `target` (MP4), re-encoded.

        Re-encoded because stream copy can only start a part on a keyframe: the render
        would open with up to a GOP of what was cut (`_cut_and_join` says how each part
        is cut to the frame). Every segment is an ffmpeg input with its own decoder, so
        beyond MAX_INPUTS_PER_RUN segments the groups are first cut to lossless
        intermediate files in `target`'s folder, then joined and encoded in one pass.
        With the source's frame rate (`fps`) known, each part fills a whole number of
        frames, ending where the requested times add up to on the frame grid: a part
        cannot be 3.75 frames long, and rounding each one up would make the render drift
        a frame later per part.
        """
        assert self.ffmpeg is not None
        parts = _parts(segments, fps)
        final = [*RENDER_ARGS, "-movflags", "+faststart", "-f", "mp4", str(target)]
        if len(parts) <= MAX_INPUTS_PER_RUN:
            await self._cut_and_join(source, parts, audio=audio, output=final)
            return
        pieces: list[Path] = []
        listing = target.with_suffix(".ffconcat")
        try:
            for start in range(0, len(parts), MAX_INPUTS_PER_RUN):
                piece = target.with_name(f"{target.stem}.{len(pieces)}.mkv")
                pieces.append(piece)
                group = parts[start : start + MAX_INPUTS_PER_RUN]
                await self._cut_and_join(
                    source, group, audio=audio, output=[*_INTERMEDIATE_ARGS, str(piece)]
                )
            lines = ["ffconcat version 1.0", *(f"file {_concat_quote(str(p))}" for p in pieces)]
            await asyncio.to_thread(listing.write_text, "\n".join(lines) + "\n", "utf-8")
            # Whole files, each decoded from its start: the concat demuxer joins them
            # exactly (the keyframe caveat is for `inpoint` only).
            maps = ["-map", "0:v:0"] + (["-map", "0:a:0"] if audio else [])
            await self._run(
                [
                    *(self.ffmpeg, *_QUIET, "-f", "concat", "-safe", "0"),
                    *("-i", str(listing), *maps, *final),
                ],
                what="trim",
            )
        finally:
            await asyncio.to_thread(_remove, listing, *pieces)

    async def _cut_and_join(
        self, source: Path, parts: Sequence[_Part], *, audio: bool, output: list[str]
    ) -> None:
        """One ffmpeg run: `parts` of `source` cut to the frame, joined, then `output`.

        Each segment is its own input, seeked with `-ss` before `-i`: ffmpeg jumps to the
        keyframe before the start and decodes, dropping the frames before it (its accurate
        seek), so only the kept parts (plus up to a GOP each) are decoded, in any order.
        A part's timestamps then count from its requested start, and `trim`/`atrim` end
        it at its length (`_parts`): at a constant rate that keeps exactly its number of
        frames whatever the phase of the first one, and by time it still holds for a
        variable rate. The sound is padded with silence if the file ends first, so both
        streams of a part last the same and the concat filter (which moves on at the
        longer one's end) keeps to the frame grid. The input's own `-t` counts from the
        first frame kept and only bounds the reading; `setpts`/`asetpts` restart each
        part at zero for the concat filter. One decoding thread per input: a decoder's
        frame threads multiply its memory, and the inputs are decoded one after the other.
        """
        assert self.ffmpeg is not None
        inputs: list[str] = []
        chains: list[str] = []
        joined = ""
        for index, part in enumerate(parts):
            end = f"{part.length:.6f}"
            inputs += ["-ss", f"{part.start:.6f}"]
            inputs += ["-t", f"{part.length + _READ_MARGIN_SEC:.6f}", "-threads", "1"]
            inputs += ["-i", str(source)]
            # `V`: the first video stream that is not a cover picture.
            chains.append(f"[{index}:V:0]trim=end={end},setpts=PTS-STARTPTS[v{index}]")
            joined += f"[v{index}]"
            if audio:
                pad = "apad," if part.padded else ""
                chains.append(f"[{index}:a:0]{pad}atrim=end={end},asetpts=PTS-STARTPTS[a{index}]")
                joined += f"[a{index}]"
        streams = "[v][a]" if audio else "[v]"
        chains.append(f"{joined}concat=n={len(parts)}:v=1:a={int(audio)}{streams}")
        # H.264 needs even dimensions in 4:2:0; a no-op for almost every video.
        chains.append(f"[v]scale=trunc(iw/2)*2:trunc(ih/2)*2,format={_PIXEL_FORMAT}[vout]")
        maps = ["-map", "[vout]"] + (["-map", "[a]"] if audio else [])
        await self._run(
            [self.ffmpeg, *_QUIET, *inputs, "-filter_complex", ";".join(chains), *maps, *output],
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
# Segments cut in one ffmpeg run. Each is an input with its own decoder, so the memory of
# a run grows with them: 500 in one run would need gigabytes (docs/performance.md).
MAX_INPUTS_PER_RUN: Final = 16
# Groups of a long trim, before the final encode: lossless, so the render is encoded
# lossily once; fast to write and read back.
_INTERMEDIATE_ARGS: Final = (
    *("-c:v", "libx264", "-preset", "ultrafast", "-qp", "0"),
    *("-c:a", "pcm_s16le", "-f", "matroska"),
)
# How a trimmed render is encoded: H.264 and AAC in MP4 play in every browser, whatever
# the upload's container; `veryfast` for the cost per second of video (docs/performance.md).
# Part of a render's fingerprint, with the grouping: changing them renders anew.
RENDER_ARGS: Final = (
    *("-c:v", "libx264", "-preset", "veryfast", "-crf", "23"),
    *("-c:a", "aac", "-b:a", "128k"),
)
RENDER_EXTENSION: Final = "mp4"
RENDER_SETTINGS: Final = " ".join(
    (
        *RENDER_ARGS,
        _PIXEL_FORMAT,
        RENDER_EXTENSION,
        *_INTERMEDIATE_ARGS,
        f"groups={MAX_INPUTS_PER_RUN}",
        "frame-grid",
    )
)


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    # Shielded: reaping must finish even while the caller is being cancelled.
    with contextlib.suppress(Exception):
        await asyncio.shield(process.wait())


@dataclass(frozen=True, slots=True)
class _Part:
    """A segment as rendered: where it starts in the source, how long it lasts in the
    render, and whether that length is in whole frames (its sound then padded to it)."""

    start: float
    length: float
    padded: bool


def _parts(segments: Sequence[Segment], fps: float | None) -> list[_Part]:
    """Each segment's slot in the render: its frames counted from the rounded running
    total of the requested durations, so the render's length never drifts from their sum
    by more than half a frame, and each part ends within a frame of its request."""
    if fps is None:
        return [_Part(s.start, s.duration, padded=False) for s in segments]
    parts = []
    elapsed = 0.0
    for segment in segments:
        before = round(elapsed * fps)
        elapsed += segment.duration
        frames = max(1, round(elapsed * fps) - before)
        parts.append(_Part(segment.start, frames / fps, padded=True))
    return parts


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _concat_quote(path: str) -> str:
    # ffconcat quoting: single quotes, a quote inside written as '\''.
    return "'" + path.replace("'", "'\\''") + "'"


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
