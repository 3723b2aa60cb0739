"""Speech fixtures: a short video whose sound is real recorded speech with a filler
synthesised between its sentences, made by ffmpeg once per session.

The recordings are LibriVox read speech shipped by Debian's `pocketsphinx-testdata`
(public domain); the filler is spoken by espeak-ng. Both are installed by
`scripts/dev.sh test` like ffmpeg; the tests fail, never skip, without them.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.media.conftest import ffmpeg, probe, tool

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
CLIP = "sense_and_sensibility_01_austen_64kb-{}.wav"
# The two sentences, as read (the package's own transcription).
FIRST = "he was not an ill disposed young man"
SECOND = "he might even have been made amiable himself"
FILLER = "um"


@dataclass(frozen=True)
class Speech:
    video: Path  # about 7 s: sentence, spoken filler, sentence; 160x120 picture
    silent: Path  # 1 s of picture without any audio stream
    duration: float
    reference: list[str]  # the words spoken, fillers left out
    filler_window: tuple[float, float]  # where the synthesised filler sits in the audio


def recordings() -> tuple[Path, Path]:
    first, second = LIBRIVOX / CLIP.format("0880"), LIBRIVOX / CLIP.format("0930")
    if not first.is_file() or not second.is_file():
        pytest.fail(
            "The recorded speech is missing: apt-get install -y pocketsphinx-testdata "
            "(scripts/dev.sh test installs it)"
        )
    return first, second


def espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        pytest.fail("espeak-ng is not installed: apt-get install -y espeak-ng")
    return found


def wav_duration(path: Path) -> float:
    return probe(path)[0]


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    folder = tmp_path_factory.mktemp("speech")
    first, second = recordings()
    filler = folder / "filler.wav"
    subprocess.run(
        [espeak(), "-v", "en-us", "-s", "110", "-w", str(filler), FILLER], check=True, timeout=60
    )
    audio = folder / "speech.wav"
    mono = "aresample=16000,aformat=channel_layouts=mono"
    ffmpeg(
        *("-i", str(first), "-i", str(filler), "-i", str(second)),
        "-filter_complex",
        f"[0:a]{mono}[a0];[1:a]{mono}[a1];[2:a]{mono}[a2];[a0][a1][a2]concat=n=3:v=0:a=1[out]",
        *("-map", "[out]", str(audio)),
    )
    duration = wav_duration(audio)
    start = wav_duration(first)
    video = folder / "speech.mp4"
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc=size=160x120:rate=10:duration={duration:.3f}"),
        *("-i", str(audio)),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        *("-c:a", "aac", "-shortest", str(video)),
    )
    silent = folder / "silent.mp4"
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=1"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(silent)),
    )
    tool("ffprobe")
    return Speech(
        video=video,
        silent=silent,
        duration=probe(video)[0],
        reference=f"{FIRST} {SECOND}".split(),
        filler_window=(start, start + wav_duration(filler)),
    )


def word_error_rate(reference: list[str], hypothesis: list[str]) -> float:
    """Word-level edit distance over the reference's length."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1] / max(1, len(reference))
