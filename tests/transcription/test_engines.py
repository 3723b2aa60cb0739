"""The engine choice, the filler lexicon and the chunking, without recognising anything."""

from __future__ import annotations

import importlib.util
import itertools
import wave
from pathlib import Path

import pytest
from pydantic import ValidationError

from snipix.settings import Settings
from snipix.transcription.audio import chunk_bounds
from snipix.transcription.engines import SAMPLE_RATE, build_transcriber
from snipix.transcription.fillers import filler_flags


def test_faster_whisper_needs_a_local_model_directory(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SNIPIX_WHISPER_MODEL"):
        Settings(_env_file=None, transcriber="faster-whisper")
    with pytest.raises(ValidationError, match="SNIPIX_WHISPER_MODEL"):
        Settings(_env_file=None, transcriber="faster-whisper", whisper_model=tmp_path / "none")
    configured = Settings(_env_file=None, transcriber="faster-whisper", whisper_model=tmp_path)
    assert configured.describe()["SNIPIX_WHISPER_MODEL"] == str(tmp_path)
    if importlib.util.find_spec("faster_whisper") is None:
        # Without the `whisper` extra the service refuses to start, saying what to install.
        with pytest.raises(RuntimeError, match=r"snipix\[whisper\]"):
            build_transcriber("faster-whisper", whisper_model=tmp_path)
    else:
        assert build_transcriber("faster-whisper", whisper_model=tmp_path).name == "faster-whisper"


def test_fillers_by_lexicon_phrase_and_recogniser_token() -> None:
    words = ["Um,", "so", "you", "know", "it", "was", "[NOISE]", "uh", "<sil>", "umbrella", "er"]
    assert filler_flags(words, "en-US") == [
        True,  # "Um," (case and punctuation do not matter)
        False,  # "so" is too often meant
        True,
        True,  # "you know"
        False,
        False,
        True,  # the recogniser's noise token
        True,
        True,  # its silence token
        False,  # a word starting like a filler is not one
        True,
    ]
    assert filler_flags(["euh", "um"], "fr-FR") == [True, False]
    assert filler_flags(["um"], "und") == [True]  # English when the language is unknown


def test_chunks_end_at_the_quietest_moment_near_their_length(tmp_path: Path) -> None:
    """10 s of loud samples with 50 ms of silence at 4.0 s: the first 5 s chunk ends there."""
    loud = (b"\xff\x3f\x01\xc0") * (SAMPLE_RATE // 2)  # +/- 16383, 1 s
    silence = b"\x00\x00" * (SAMPLE_RATE // 20)
    samples = loud * 4 + silence + loud * 6
    path = tmp_path / "audio.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(samples)
    duration = len(samples) / 2 / SAMPLE_RATE
    bounds = chunk_bounds(path, duration, 5)
    assert 4.0 <= bounds[0][1] <= 4.05, bounds
    assert bounds[0][0] == 0
    assert bounds[-1][1] == duration
    assert all(before[1] == after[0] for before, after in itertools.pairwise(bounds))
    assert all(end - start <= 5 for start, end in bounds)
