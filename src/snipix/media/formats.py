"""Which bytes are a video: container signatures, read from the start of a file.

The name and the declared content type of an upload are the client's word; the first bytes
are the file's. Only the containers below are accepted, and audio-only or still-image
members of the same families (M4A, HEIC/AVIF in an ISO `ftyp`; WAV in RIFF) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Enough for every signature below (a Matroska DocType sits within the first ~40 bytes).
SNIFF_BYTES: Final = 64


@dataclass(frozen=True, slots=True)
class VideoFormat:
    mime_type: str
    extension: str
    # ffmpeg's muxer for writing this container (trimmed renders keep the source's).
    muxer: str


MP4 = VideoFormat("video/mp4", "mp4", "mp4")
QUICKTIME = VideoFormat("video/quicktime", "mov", "mov")
WEBM = VideoFormat("video/webm", "webm", "webm")
MATROSKA = VideoFormat("video/x-matroska", "mkv", "matroska")
AVI = VideoFormat("video/x-msvideo", "avi", "avi")

# ISO base media brands that are not video: audio (M4A/M4B/M4P) and still images (HEIF,
# AVIF, JPEG 2000, Canon raw).
_NOT_VIDEO_BRANDS: Final = frozenset(
    {b"M4A ", b"M4B ", b"M4P ", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
    | {b"mif1", b"msf1", b"avif", b"avis", b"jp2 ", b"jpx ", b"jpm ", b"crx "}
)
# Classic QuickTime files may open with one of these atoms instead of `ftyp`.
_QUICKTIME_ATOMS: Final = frozenset({b"moov", b"mdat", b"wide"})
_EBML_MAGIC: Final = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE: Final = b"\x42\x82"


def sniff_video(head: bytes) -> VideoFormat | None:
    """The container of a file starting with `head` (its first SNIFF_BYTES), or None."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _NOT_VIDEO_BRANDS:
            return None
        return QUICKTIME if brand == b"qt  " else MP4
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
        return QUICKTIME
    if head.startswith(_EBML_MAGIC):
        doctype_at = head.find(_EBML_DOCTYPE)
        if doctype_at < 0:
            return None
        # DocType element: ID 0x4282, a one-byte size (0x80 | n), then n ASCII bytes.
        size_at = doctype_at + 2
        if size_at >= len(head):
            return None
        size = head[size_at] & 0x7F
        doctype = head[size_at + 1 : size_at + 1 + size]
        if doctype == b"webm":
            return WEBM
        return MATROSKA if doctype == b"matroska" else None
    if len(head) >= 12 and head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return AVI
    return None


_BY_EXTENSION: Final = {f.extension: f for f in (MP4, QUICKTIME, WEBM, MATROSKA, AVI)}


def format_of(extension: str) -> VideoFormat | None:
    """The format a stored file's extension names (files are named by `VideoFormat`)."""
    return _BY_EXTENSION.get(extension)
