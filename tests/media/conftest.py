"""Media fixtures: real videos made by ffmpeg once per session (tiny, ~0.5 s to encode).

ffmpeg and ffprobe are required, like redis-server: the media tests fail, never skip, when
they are missing (`.ci/run` installs them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

DURATION_SEC = 4


@dataclass(frozen=True)
class Videos:
    mp4: Path  # 4 s, 160x120, 25 fps, a keyframe every second, with AAC audio
    mov: Path
    mkv: Path
    webm: Path
    avi: Path
    m4a: Path  # audio only, M4A brand
    audio_mp4: Path  # audio only, in an ordinary MP4 (isom brand)


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed: the media tests need a real ffmpeg "
            "(apt-get install -y ffmpeg)"
        )
    return found


def ffmpeg(*args: str) -> None:
    subprocess.run(
        [tool("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=120,
    )


def probe(path: Path) -> tuple[float, list[str]]:
    """A file's duration and stream kinds, as ffprobe reads it (proof that it plays)."""
    done = subprocess.run(
        [
            tool("ffprobe"),
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_type",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    info = json.loads(done.stdout)
    return float(info["format"]["duration"]), [s["codec_type"] for s in info["streams"]]


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Videos:
    tool("ffmpeg")
    tool("ffprobe")
    folder = tmp_path_factory.mktemp("videos")
    mp4 = folder / "clip.mp4"
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc=duration={DURATION_SEC}:size=160x120:rate=25"),
        *("-f", "lavfi", "-i", f"sine=duration={DURATION_SEC}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        # A keyframe every second exactly, so stream-copy cuts on whole seconds are exact.
        *("-g", "25", "-keyint_min", "25", "-sc_threshold", "0"),
        *("-c:a", "aac", "-shortest", str(mp4)),
    )
    videos = Videos(
        mp4=mp4,
        mov=folder / "clip.mov",
        mkv=folder / "clip.mkv",
        webm=folder / "clip.webm",
        avi=folder / "clip.avi",
        m4a=folder / "clip.m4a",
        audio_mp4=folder / "audio.mp4",
    )
    ffmpeg("-i", str(mp4), "-c", "copy", str(videos.mov))
    ffmpeg("-i", str(mp4), "-c", "copy", str(videos.mkv))
    ffmpeg("-i", str(mp4), "-t", "1", "-c:v", "libvpx", "-an", str(videos.webm))
    ffmpeg("-i", str(mp4), "-t", "1", "-c:v", "mpeg4", "-an", str(videos.avi))
    ffmpeg("-i", str(mp4), "-vn", "-c:a", "copy", str(videos.m4a))
    ffmpeg("-i", str(mp4), "-vn", "-c:a", "copy", "-f", "mp4", str(videos.audio_mp4))
    return videos
