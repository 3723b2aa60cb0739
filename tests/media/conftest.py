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
# The frame-numbered video (`keyed`): 6 s at 25 fps, a keyframe every 2 s.
KEYED_FPS = 25
KEYED_SECONDS = 6
KEYFRAME_EVERY_SEC = 2
_KEYED_SIZE = (160, 120)
_BITS = 8


@dataclass(frozen=True)
class Videos:
    mp4: Path  # 4 s, 160x120, 25 fps, a keyframe every second, with AAC audio
    mov: Path
    mkv: Path
    webm: Path
    avi: Path
    m4a: Path  # audio only, M4A brand
    audio_mp4: Path  # audio only, in an ordinary MP4 (isom brand)
    # 6 s, 25 fps, keyframes at 0, 2 and 4 s only, AAC audio; each frame shows its own
    # number in binary (`frame_numbers` reads it back), so a render's frames can be traced
    # to the source frames they came from.
    keyed: Path


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
        keyed=folder / "keyed.mp4",
    )
    width, height = _KEYED_SIZE
    bar = width // _BITS
    # Bit k of the frame number N is the k-th vertical bar, white when set: sharp edges
    # that survive lossy encoding, unlike a grey level.
    numbered = (
        f"color=c=black:s={width}x{height}:r={KEYED_FPS}:d={KEYED_SECONDS},format=yuv420p,"
        f"geq=lum='if(bitand(N\\,pow(2\\,floor(X/{bar})))\\,235\\,16)':cb=128:cr=128"
    )
    ffmpeg(
        *("-f", "lavfi", "-i", numbered),
        *("-f", "lavfi", "-i", f"sine=duration={KEYED_SECONDS}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        *("-force_key_frames", f"expr:gte(t,n_forced*{KEYFRAME_EVERY_SEC})"),
        *("-g", "1000", "-sc_threshold", "0"),
        *("-c:a", "aac", "-shortest", str(videos.keyed)),
    )
    ffmpeg("-i", str(mp4), "-c", "copy", str(videos.mov))
    ffmpeg("-i", str(mp4), "-c", "copy", str(videos.mkv))
    ffmpeg("-i", str(mp4), "-t", "1", "-c:v", "libvpx", "-an", str(videos.webm))
    ffmpeg("-i", str(mp4), "-t", "1", "-c:v", "mpeg4", "-an", str(videos.avi))
    ffmpeg("-i", str(mp4), "-vn", "-c:a", "copy", str(videos.m4a))
    ffmpeg("-i", str(mp4), "-vn", "-c:a", "copy", "-f", "mp4", str(videos.audio_mp4))
    return videos


def keyframe_times(path: Path) -> list[float]:
    """The times of a file's video keyframes, as ffprobe reads its packets."""
    done = subprocess.run(
        [
            tool("ffprobe"),
            *("-v", "error", "-select_streams", "v:0"),
            *("-show_entries", "packet=pts_time,flags", "-of", "json", str(path)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    packets = json.loads(done.stdout)["packets"]
    return [float(p["pts_time"]) for p in packets if "K" in p.get("flags", "")]


@dataclass(frozen=True)
class VideoStream:
    start_sec: float  # the first frame's timestamp
    duration_sec: float


def video_stream(path: Path) -> VideoStream:
    """Where a file's video stream starts and how long it lasts, by ffprobe."""
    done = subprocess.run(
        [
            tool("ffprobe"),
            *("-v", "error", "-select_streams", "v:0"),
            *("-show_entries", "stream=start_time,duration", "-of", "json", str(path)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    stream = json.loads(done.stdout)["streams"][0]
    return VideoStream(float(stream["start_time"]), float(stream["duration"]))


def frame_numbers(path: Path) -> list[int]:
    """The source frame number each frame of a render of `keyed` shows, in order."""
    width, height = _KEYED_SIZE
    done = subprocess.run(
        [tool("ffmpeg"), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    size = width * height
    bar = width // _BITS
    row = (height // 2) * width
    return [
        sum(1 << k for k in range(_BITS) if done.stdout[at + row + k * bar + bar // 2] > 128)
        for at in range(0, len(done.stdout) - size + 1, size)
    ]
