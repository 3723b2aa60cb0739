"""Receiving an upload: the multipart body streamed straight to a new file in the media root.

The request body is read chunk by chunk (`request.stream()`) and fed to python-multipart's
streaming parser; the file part's bytes go to `.incoming/<random>.part`, in ~1 MiB writes
made off the event loop. Nothing holds the whole file in memory, and the limits hold while
it streams:

- the file part's size is counted as it arrives: past `max_bytes` the partial file is
  deleted and the answer is 413 (a `Content-Length` already over the limit is refused
  before a byte is read);
- the first bytes are sniffed before anything is written (`formats.sniff_video`): a file
  that is not a video container is refused with 415 and nothing touches the disk;
- the other fields are bounded (`project_id` only, 200 bytes), so a client cannot make
  the server buffer anything else.

The web app sends the `file` part before `project_id`, so ownership is checked after the
body has been received (by the service), and the temp file is removed if it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from snipix.errors import TooLarge, UnsupportedMediaType, ValidationFailed
from snipix.media.formats import SNIFF_BYTES, VideoFormat, sniff_video
from snipix.media.storage import MediaStorage

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FILE_FIELD: Final = "file"
TEXT_FIELDS: Final = frozenset({"project_id"})
_MAX_FIELD_BYTES: Final = 200
# Boundaries, part headers and the project_id field around the file: far less than this.
_ENVELOPE_BYTES: Final = 64 * 1024
_FLUSH_BYTES: Final = 1024 * 1024
_EXPECTED = "Send the video as multipart/form-data with the fields `file` and `project_id`."


@dataclass
class ReceivedUpload:
    path: Path
    size: int
    format: VideoFormat
    fields: dict[str, str]


def _invalid(message: str, where: str) -> ValidationFailed:
    return ValidationFailed(
        message, details=[{"loc": ["body", where], "msg": message, "type": "multipart"}]
    )


@dataclass
class _Parts:
    """python-multipart's callbacks (synchronous): route each part's bytes, check limits."""

    max_bytes: int
    fields: dict[str, str] = field(default_factory=dict)
    pending: bytearray = field(default_factory=bytearray)
    size: int = 0
    file_seen: bool = False
    file_done: bool = False
    ended: bool = False
    format: VideoFormat | None = None
    _head: bytearray = field(default_factory=bytearray)
    _header_name: bytearray = field(default_factory=bytearray)
    _header_value: bytearray = field(default_factory=bytearray)
    _headers: dict[str, str] = field(default_factory=dict)
    _part: str | None = None
    _value: bytearray = field(default_factory=bytearray)

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._part = None
        self._value = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        name = self._header_name.decode("latin-1").strip().lower()
        self._headers[name] = self._header_value.decode("latin-1").strip()
        self._header_name = bytearray()
        self._header_value = bytearray()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", ""))
        name = options.get(b"name", b"").decode("latin-1")
        if name == FILE_FIELD:
            if self.file_seen:
                raise _invalid("Send one file per upload.", FILE_FIELD)
            self.file_seen = True
        elif name in TEXT_FIELDS:
            if name in self.fields:
                raise _invalid(f"Send `{name}` once.", name)
        else:
            raise _invalid(f"Unexpected form field {name[:50]!r}. {_EXPECTED}", name[:50])
        self._part = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == FILE_FIELD:
            self.size += end - start
            if self.size > self.max_bytes:
                raise too_large(self.max_bytes)
            chunk = data[start:end]
            if self.format is None:
                self._head += chunk[: SNIFF_BYTES - len(self._head)]
                if len(self._head) >= SNIFF_BYTES:
                    self.sniff()
            self.pending += chunk
        elif self._part is not None:
            self._value += data[start:end]
            if len(self._value) > _MAX_FIELD_BYTES:
                raise _invalid(f"`{self._part}` is too long.", self._part)

    def _part_end(self) -> None:
        if self._part == FILE_FIELD:
            self.file_done = True
            if self.format is None:
                self.sniff()
        elif self._part is not None:
            try:
                self.fields[self._part] = self._value.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise _invalid(f"`{self._part}` must be UTF-8 text.", self._part) from None
        self._part = None

    def _end(self) -> None:
        self.ended = True

    def sniff(self) -> None:
        self.format = sniff_video(bytes(self._head))
        if self.format is None:
            raise UnsupportedMediaType(
                "This file is not a video this service accepts (MP4, MOV, WebM, MKV or AVI, "
                "recognised by its content, not its name)."
            )


def too_large(max_bytes: int) -> TooLarge:
    return TooLarge(
        f"The video is larger than this server accepts ({max_bytes:,} bytes).",
        details={"maxBytes": max_bytes},
    )


def _boundary(request: Request) -> bytes:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType(_EXPECTED)
    return boundary


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


async def receive_upload(
    request: Request, storage: MediaStorage, *, max_bytes: int
) -> ReceivedUpload:
    """Stream the body's `file` part to a new temp file; the caller owns (and removes) it."""
    boundary = _boundary(request)
    declared = _declared_length(request)
    if declared is not None and declared > max_bytes + _ENVELOPE_BYTES:
        raise too_large(max_bytes)
    parts = _Parts(max_bytes=max_bytes)
    parser = MultipartParser(boundary, parts.callbacks())
    path = await asyncio.to_thread(storage.incoming_path, "part")
    out: IO[bytes] | None = None
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + _ENVELOPE_BYTES:
                raise too_large(max_bytes)
            try:
                parser.write(chunk)
            except MultipartParseError:
                raise _invalid(f"The multipart body is malformed. {_EXPECTED}", "body") from None
            if parts.format is not None and len(parts.pending) >= _FLUSH_BYTES:
                if out is None:
                    out = await asyncio.to_thread(_create, path)
                await _flush(out, parts.pending)
        if not parts.ended:
            raise _invalid(f"The upload ended early (incomplete body). {_EXPECTED}", "body")
        if not parts.file_seen:
            raise _invalid(f"The `file` field is missing. {_EXPECTED}", FILE_FIELD)
        if "project_id" not in parts.fields:
            raise _invalid(f"The `project_id` field is missing. {_EXPECTED}", "project_id")
        assert parts.format is not None  # sniffed at the file part's end at the latest
        if out is None:
            out = await asyncio.to_thread(_create, path)
        await _flush(out, parts.pending)
        await asyncio.to_thread(out.close)
        return ReceivedUpload(path=path, size=parts.size, format=parts.format, fields=parts.fields)
    except BaseException:
        # Too large, not a video, malformed, or the client went away (ClientDisconnect):
        # whatever was written goes.
        if out is not None:
            with contextlib.suppress(OSError):
                out.close()
        path.unlink(missing_ok=True)
        raise


def _create(path: Path) -> IO[bytes]:
    # "x": a new file or an error, never someone else's (the name is random anyway).
    return path.open("xb")


async def _flush(out: IO[bytes], pending: bytearray) -> None:
    if pending:
        data = bytes(pending)
        pending.clear()
        await asyncio.to_thread(out.write, data)
