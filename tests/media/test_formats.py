"""Which files count as videos: decided by their first bytes, never by their name."""

from __future__ import annotations

import pytest

from snipix.media.formats import SNIFF_BYTES, sniff_video
from tests.media.conftest import Videos


@pytest.mark.parametrize(
    ("name", "mime_type"),
    [
        ("mp4", "video/mp4"),
        ("mov", "video/quicktime"),
        ("mkv", "video/x-matroska"),
        ("webm", "video/webm"),
        ("avi", "video/x-msvideo"),
    ],
)
def test_real_videos_are_recognised_by_content(videos: Videos, name: str, mime_type: str) -> None:
    """Files ffmpeg wrote in each accepted container are recognised from their first bytes."""
    head = getattr(videos, name).read_bytes()[:SNIFF_BYTES]
    found = sniff_video(head)
    assert found is not None
    assert found.mime_type == mime_type


def test_audio_only_m4a_is_not_a_video(videos: Videos) -> None:
    """An M4A (same family as MP4) is refused: it has no picture."""
    assert sniff_video(videos.m4a.read_bytes()[:SNIFF_BYTES]) is None


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"hello, this is a text file pretending to be an mp4\n", id="text"),
        pytest.param(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", id="heic-photo"),
        pytest.param(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1", id="avif-photo"),
        pytest.param(b"RIFF\x24\x08\x00\x00WAVEfmt ", id="wav"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", id="png"),
        pytest.param(b"\x1aE\xdf\xa3\x9fB\x86\x81\x01", id="ebml-without-doctype"),
        pytest.param(b"\x00\x00\x00\x1cftyp", id="truncated-ftyp"),
    ],
)
def test_other_files_are_refused(head: bytes) -> None:
    """Text, photos, audio and truncated headers are not videos."""
    assert sniff_video(head) is None
