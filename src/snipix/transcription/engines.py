"""The speech recognisers behind the `Transcriber` interface, and the code their worker
processes run.

Recognition is CPU-bound for seconds to minutes, so it never runs on the event loop: the
job runner hands one chunk of 16 kHz mono audio at a time to a worker process
(`recognise_chunk`, a module-level function so a process pool can pickle it) and awaits
the words. Each worker process loads its engine's model once, on its first chunk.

pocketsphinx is the default: its wheel ships the US English acoustic model, dictionary and
language model, so it works offline with nothing to download, and it reports each word's
start and end frame and posterior probability. faster-whisper (`SNIPIX_TRANSCRIBER=
faster-whisper`, a local model in SNIPIX_WHISPER_MODEL) is the better-quality choice.
An OpenAI-compatible service (`SNIPIX_TRANSCRIBER=openai`, `remote.py`) recognises
elsewhere: its chunks are HTTP requests awaited on the event loop, no worker process.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import threading
import time
import wave
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

# 16-bit samples at 16 kHz, one channel: what the extraction writes and the models expect.
SAMPLE_RATE: Final = 16_000
SAMPLE_BYTES: Final = 2
# pocketsphinx counts time in frames of 10 ms.
_FRAMES_PER_SECOND: Final = 100
# "read(2)": the second pronunciation of "read" in the dictionary; the word is "read".
_ALTERNATIVE = re.compile(r"\(\d+\)$")
# Tokens that mark the utterance's edges and silence, never words.
_SILENCE: Final = frozenset({"<s>", "</s>", "<sil>"})


@dataclass(frozen=True, slots=True)
class RecognisedWord:
    """One word as an engine heard it: times in seconds from the start of the media."""

    text: str
    start: float
    end: float
    confidence: float


# The runner's process pool, created on first use: an engine that needs none never
# starts worker processes.
PoolFactory = Callable[[], Executor]


class Transcriber(Protocol):
    """An engine: its name (shown by /health/ready and `snipix config`), its model's
    language, what else /health/ready shows of it, and the recognition of one chunk."""

    @property
    def name(self) -> str: ...

    @property
    def language(self) -> str: ...

    def describe(self) -> dict[str, str]:
        """What /health/ready shows besides the name: never a secret."""
        ...

    async def recognise(
        self, wav: Path, start: float, end: float, *, language: str, pool: PoolFactory
    ) -> list[RecognisedWord]:
        """The words of [start, end) of `wav`, timed from the start of the media."""
        ...


class LocalTranscriber:
    """An engine that decodes in the runner's worker processes (CPU-bound)."""

    name = ""

    def describe(self) -> dict[str, str]:
        return {}

    def chunk_task(self, wav: Path, start: float, end: float) -> tuple[Any, ...]:
        """The picklable arguments of `recognise_chunk` for [start, end) of `wav`."""
        return (self.name, str(wav), start, end)

    async def recognise(
        self, wav: Path, start: float, end: float, *, language: str, pool: PoolFactory
    ) -> list[RecognisedWord]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            pool(), recognise_chunk, *self.chunk_task(wav, start, end)
        )


class PocketsphinxTranscriber(LocalTranscriber):
    """CMU pocketsphinx with the English model its wheel ships."""

    name = "pocketsphinx"
    language = "en-US"


class WhisperTranscriber(LocalTranscriber):
    """faster-whisper (CTranslate2) with a model from a local directory, on the CPU with
    8-bit weights; words with their times and probabilities. Installed with the `whisper`
    extra (`pip install 'snipix[whisper]'`); imported only in the worker processes."""

    name = "faster-whisper"
    # Whisper detects the language of each chunk; the transcript says "und" (undetermined,
    # BCP 47) unless the job names one.
    language = "und"

    def __init__(self, model: Path) -> None:
        if importlib.util.find_spec("faster_whisper") is None:
            raise RuntimeError(
                "SNIPIX_TRANSCRIBER=faster-whisper needs the faster-whisper package: "
                "pip install 'snipix[whisper]'"
            )
        self.model = model

    def describe(self) -> dict[str, str]:
        return {"model": self.model.name}

    def chunk_task(self, wav: Path, start: float, end: float) -> tuple[Any, ...]:
        return (f"{self.name}:{self.model}", str(wav), start, end)


def build_transcriber(name: str, *, whisper_model: Path | None = None) -> Transcriber:
    """The local engine `SNIPIX_TRANSCRIBER` names (validated by the settings); the
    HTTP engine is built from its settings by `remote.HttpTranscriber`."""
    if name == "pocketsphinx":
        return PocketsphinxTranscriber()
    if name == "faster-whisper" and whisper_model is not None:
        return WhisperTranscriber(whisper_model)
    raise ValueError(f"unknown transcriber {name!r}")


# --- in the worker process --------------------------------------------------------------

# The worker process's own decoder, loaded on its first chunk and kept for the next ones
# (loading the model takes about a quarter of a second). A worker process runs one chunk
# at a time, so nothing shares it.
_decoders: dict[str, Any] = {}


def _pocketsphinx() -> Any:
    decoder = _decoders.get("pocketsphinx")
    if decoder is None:
        import pocketsphinx

        pocketsphinx.set_loglevel("FATAL")
        decoder = pocketsphinx.Decoder(samprate=SAMPLE_RATE)
        _decoders["pocketsphinx"] = decoder
    return decoder


def read_samples(wav: Path, start: float, end: float) -> bytes:
    """The raw 16-bit samples of [start, end) of a 16 kHz mono WAV file: only that part is
    read, so a worker's memory is bounded by the chunk, not the media."""
    with wave.open(str(wav), "rb") as reader:
        total = reader.getnframes()
        first = min(total, round(start * SAMPLE_RATE))
        last = min(total, round(end * SAMPLE_RATE))
        reader.setpos(first)
        return reader.readframes(max(0, last - first))


def _whisper(model: str) -> Any:
    key = f"faster-whisper:{model}"
    loaded = _decoders.get(key)
    if loaded is None:
        from faster_whisper import WhisperModel  # optional, worker only

        loaded = WhisperModel(model, device="cpu", compute_type="int8")
        _decoders[key] = loaded
    return loaded


def _recognise_whisper(model: str, samples: bytes, start: float) -> list[RecognisedWord]:
    import numpy  # installed with faster-whisper

    audio = numpy.frombuffer(samples, dtype="<i2").astype(numpy.float32) / 32768.0
    segments, _info = _whisper(model).transcribe(audio, word_timestamps=True)
    return [
        RecognisedWord(
            text=word.word.strip(),
            start=round(start + word.start, 3),
            end=round(start + word.end, 3),
            confidence=round(min(1.0, max(0.0, float(word.probability))), 4),
        )
        for segment in segments
        for word in segment.words or []
        if word.word.strip()
    ]


def recognise_chunk(engine: str, wav: str, start: float, end: float) -> list[RecognisedWord]:
    """Recognise [start, end) of `wav` (in a worker process); word times are the media's."""
    name, _, model = engine.partition(":")
    if name not in {"pocketsphinx", "faster-whisper"}:
        raise ValueError(f"unknown transcriber {engine!r}")
    samples = read_samples(Path(wav), start, end)
    if not samples:
        return []
    if name == "faster-whisper":
        return _recognise_whisper(model, samples, start)
    decoder = _pocketsphinx()
    decoder.start_utt()
    decoder.process_raw(samples, full_utt=True)
    decoder.end_utt()
    words: list[RecognisedWord] = []
    for segment in decoder.seg():
        token = segment.word
        if token in _SILENCE:
            continue
        words.append(
            RecognisedWord(
                text=_ALTERNATIVE.sub("", token),
                start=round(start + segment.start_frame / _FRAMES_PER_SECOND, 3),
                # A segment's last frame is inclusive.
                end=round(start + (segment.end_frame + 1) / _FRAMES_PER_SECOND, 3),
                # The word's posterior probability in the lattice, 0..1.
                confidence=round(min(1.0, max(0.0, float(segment.prob))), 4),
            )
        )
    return words


# How often a recogniser process checks that the process that started it is alive.
PARENT_CHECK_S: Final = 1.0


def exit_with_parent(parent_pid: int) -> None:
    """The recogniser pool's initializer: end this process when its parent is gone.

    A worker killed outright (SIGKILL, the OOM killer) cannot stop its pool, whose
    processes would live on, orphaned, each holding a recogniser's memory. A daemon thread
    here notices the parent's death (the process is re-parented) within
    `PARENT_CHECK_S`, or once the chunk being decoded lets it run, and exits at once.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)  # a poll interval, not synchronisation
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
