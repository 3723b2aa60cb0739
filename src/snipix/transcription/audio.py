"""The audio a recogniser reads: extracted by ffmpeg (a subprocess) to 16 kHz mono WAV,
and cut into chunks at quiet moments.

A chunk boundary in the middle of a word would split or lose it, so each boundary is moved
to the quietest 10 ms within the last few seconds before the nominal chunk length.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import sys
import wave
from pathlib import Path
from typing import Final

import structlog

from snipix.errors import SnipixError
from snipix.transcription.engines import SAMPLE_RATE

log = structlog.get_logger(__name__)

# How far back from the nominal chunk end a boundary may move to find a pause.
BOUNDARY_WINDOW_S: Final = 3.0
_FRAME: Final = SAMPLE_RATE // 100
_STDERR_TAIL: Final = 2_000


class AudioExtractionFailed(SnipixError):
    code = "media_processing_failed"
    status_code = 500


async def extract_audio(ffmpeg: str, source: Path, target: Path, *, timeout_s: float) -> float:
    """Write `source`'s first audio stream to `target` as 16 kHz mono 16-bit WAV; its
    duration in seconds. The process is killed on timeout or cancellation."""
    process = await asyncio.create_subprocess_exec(
        ffmpeg,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(source),
        "-map",
        "0:a:0",
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        "-c:a",
        "pcm_s16le",
        "-f",
        "wav",
        str(target),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout_s):
            _, stderr = await process.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        tail = stderr.decode(errors="replace")[-_STDERR_TAIL:]
        log.warning("audio extraction failed", source=source.name, stderr=tail)
        raise AudioExtractionFailed("The video's audio could not be extracted for transcription.")
    return await asyncio.to_thread(wav_duration, target)


def wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as reader:
        return reader.getnframes() / reader.getframerate()


def chunk_bounds(path: Path, duration: float, chunk_s: float) -> list[tuple[float, float]]:
    """[start, end) pairs covering the audio, each at most `chunk_s` long, ending at the
    quietest moment near their nominal end."""
    bounds: list[tuple[float, float]] = []
    start = 0.0
    while start < duration - 1e-6:
        nominal = start + chunk_s
        if nominal >= duration:
            bounds.append((start, duration))
            break
        window = min(BOUNDARY_WINDOW_S, chunk_s / 2)
        end = _quietest(path, nominal - window, nominal)
        bounds.append((start, end))
        start = end
    return bounds


def _quietest(path: Path, start: float, end: float) -> float:
    """The start of the quietest 10 ms frame in [start, end) (energy of the samples)."""
    with wave.open(str(path), "rb") as reader:
        reader.setpos(round(start * SAMPLE_RATE))
        samples = array.array("h")
        samples.frombytes(reader.readframes(round((end - start) * SAMPLE_RATE)))
    if sys.byteorder == "big":
        samples.byteswap()
    best_index, best_energy = len(samples) // _FRAME, None
    for index in range(len(samples) // _FRAME):
        frame = samples[index * _FRAME : (index + 1) * _FRAME]
        energy = sum(sample * sample for sample in frame)
        if best_energy is None or energy < best_energy:
            best_index, best_energy = index, energy
    return round(start + best_index * _FRAME / SAMPLE_RATE, 3)
