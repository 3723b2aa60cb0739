"""The two legacy file shapes, detected and read record by record.

1. The export file of the original migration script (`sample_data.json`): an object with
   `projects`, `timeline_states` and `transcriptions` arrays (and `export_timestamp`,
   `user_id`).
2. The simple API's file-backed store (`temp_projects.json`): an object keyed by project
   id, each value a project with its `timeline_state` and `transcript_state` inside.

A file up to `stream_above` bytes is parsed whole (orjson: fast, and its errors carry line
and column). A larger one is never held in memory: `scan` checks its syntax in one
streaming pass first (so a truncated file is refused before anything is written), and the
records are then read with `ijson`, one array (or one project) at a time. yajl, under
ijson, reports no position, so an error is placed by parsing again up to the chunk that
failed and then feeding that chunk one byte at a time: exact, and paid only on failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Final

import ijson
import orjson

# Files up to this size are parsed whole; larger ones are streamed (two passes).
DEFAULT_STREAM_ABOVE: Final = 32 * 1024 * 1024
CHUNK: Final = 1 << 16
_CONTINUATION: Final = bytes(range(0x80, 0xC0))
# Bytes of JSON numbers and literals (true, false, null).
_TOKEN_BYTES: Final = frozenset(bytes([b]) for b in b"0123456789+-.eEtrufalsn")
# What only the export shape has at its top level.
EXPORT_KEYS: Final = frozenset(
    {"projects", "timeline_states", "transcriptions", "export_timestamp", "user_id"}
)

TRUNCATED: Final = "unexpected end of file (is it truncated?)"
_JSON_TYPES: Final[dict[type, str]] = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}

# Called with the number of bytes (or records) just read.
Advance = Callable[[int], None]


class Shape(StrEnum):
    EXPORT = "export"
    STORE = "store"


class Section(StrEnum):
    """What a record is: an element of one of the export file's arrays, or a store entry."""

    PROJECTS = "projects"
    TIMELINES = "timeline_states"
    TRANSCRIPTIONS = "transcriptions"
    STORE = "store"


EXPORT_SECTIONS: Final = (Section.PROJECTS, Section.TIMELINES, Section.TRANSCRIPTIONS)


class LegacyFileError(Exception):
    """A file that cannot be imported at all (unreadable, not JSON, not an object)."""

    def __init__(
        self, path: Path, message: str, *, line: int | None = None, column: int | None = None
    ) -> None:
        where = f" at line {line}, column {column}" if line is not None else ""
        super().__init__(f"{path}: {message}{where}")
        self.path = path
        self.reason = message
        self.line = line
        self.column = column


def _no_progress(_count: int) -> None:
    pass


@dataclass(frozen=True, slots=True)
class LegacyFile:
    path: Path
    shape: Shape
    size: int
    streamed: bool
    data: dict[str, Any] | None = None

    def records(
        self, section: Section, advance: Advance = _no_progress
    ) -> Iterator[tuple[int, str | None, Any]]:
        """(position in the section, store key or None, value) of each record."""
        if self.data is not None:
            yield from self._in_memory(section, advance)
            return
        with self.path.open("rb") as raw:
            stream = _Counting(raw, advance)
            if section is Section.STORE:
                pairs = ijson.kvitems(stream, "", use_float=True)
                for index, (key, value) in enumerate(pairs):
                    yield index, str(key), value
            else:
                for index, value in enumerate(
                    ijson.items(stream, f"{section.value}.item", use_float=True)
                ):
                    yield index, None, value

    def _in_memory(
        self, section: Section, advance: Advance
    ) -> Iterator[tuple[int, str | None, Any]]:
        assert self.data is not None
        if section is Section.STORE:
            for index, (key, value) in enumerate(self.data.items()):
                advance(1)
                yield index, key, value
            return
        values = self.data.get(section.value)
        if values is None:
            return
        if not isinstance(values, list):
            raise LegacyFileError(self.path, f"`{section.value}` is not an array")
        for index, value in enumerate(values):
            advance(1)
            yield index, None, value

    def sections(self) -> tuple[Section, ...]:
        return EXPORT_SECTIONS if self.shape is Shape.EXPORT else (Section.STORE,)

    def count_hint(self) -> int | None:
        """How many records a progress bar can expect (known for parsed files only)."""
        if self.data is None:
            return None
        if self.shape is Shape.STORE:
            return len(self.data)
        return sum(
            len(values)
            for s in EXPORT_SECTIONS
            if isinstance(values := self.data.get(s.value), list)
        )


class _Counting:
    """A binary file that reports how many bytes were read from it."""

    def __init__(self, raw: IO[bytes], advance: Advance) -> None:
        self._raw = raw
        self._advance = advance

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._advance(len(data))
        return data


def _shape_of(first_key: str | None) -> Shape:
    # An empty object has nothing to import either way.
    return Shape.EXPORT if first_key in EXPORT_KEYS else Shape.STORE


def open_legacy(
    path: Path,
    *,
    shape: Shape | None = None,
    stream_above: int = DEFAULT_STREAM_ABOVE,
    advance: Advance = _no_progress,
) -> LegacyFile:
    """The file, checked to be one JSON object (`LegacyFileError` with line and column
    otherwise) and its shape detected (or `shape`)."""
    try:
        size = path.stat().st_size
        if size > stream_above:
            detected = scan(path, advance)
            return LegacyFile(path, shape or detected, size, streamed=True)
        raw = path.read_bytes()
    except OSError as error:
        raise LegacyFileError(path, f"cannot read it ({error.strerror or error})") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        reason = TRUNCATED if error.pos >= len(raw.rstrip()) else f"invalid JSON: {error.msg}"
        raise LegacyFileError(path, reason, line=error.lineno, column=error.colno) from None
    advance(size)
    if not isinstance(data, dict):
        kind = _JSON_TYPES.get(type(data), type(data).__name__)
        raise LegacyFileError(path, f"holds a JSON {kind}, not an object of projects")
    return LegacyFile(path, shape or _shape_of(next(iter(data), None)), size, False, data)


def scan(path: Path, advance: Advance = _no_progress) -> Shape:
    """Check a file's JSON syntax in one streaming pass; its shape from the first key."""
    events = ijson.sendable_list()
    parser = ijson.parse_coro(events)
    first: list[tuple[str, str, Any]] = []
    offset = 0
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            try:
                parser.send(chunk)
            except ijson.JSONError:
                raise _located(path, offset, len(chunk)) from None
            if len(first) < 2:
                first += events[: 2 - len(first)]
            events.clear()
            offset += len(chunk)
            advance(len(chunk))
        try:
            parser.close()
        except ijson.JSONError:
            raise _located(path, offset, 0) from None
    if not first or first[0][1] != "start_map":
        kind = first[0][1].replace("start_", "") if first else "nothing"
        raise LegacyFileError(path, f"holds a JSON {kind}, not an object of projects")
    key = first[1][2] if len(first) > 1 and first[1][1] == "map_key" else None
    return _shape_of(key)


def _located(path: Path, start: int, length: int) -> LegacyFileError:
    """The error of the chunk at `start`, placed exactly: parse again up to the chunk,
    then feed it one byte at a time (`length` 0: the file ended too early)."""
    position = start
    reason = TRUNCATED
    if length:
        parser = ijson.parse_coro(ijson.sendable_list())
        with path.open("rb") as stream:
            fed = 0
            while fed < start:
                chunk = stream.read(min(CHUNK, start - fed))
                parser.send(chunk)
                fed += len(chunk)
            suspect = stream.read(length)
        for index in range(len(suspect)):
            try:
                parser.send(suspect[index : index + 1])
            except ijson.JSONError as error:
                position = start + _token_start(suspect, index)
                # yajl: "parse error: <what>" then a picture of the place.
                what = str(error).split("\n", 1)[0].removeprefix("parse error: ")
                reason = f"invalid JSON: {what}"
                break
    line, column = _line_column(path, position)
    return LegacyFileError(path, reason, line=line, column=column)


def _token_start(data: bytes, index: int) -> int:
    """Where the offending token starts, given the byte yajl failed on: it notices a bad
    number or literal (`7`, `tru`) only at the byte after it, and may fail on whitespace
    before a token."""
    start = index
    while start > 0 and data[start - 1 : start] in _TOKEN_BYTES:
        start -= 1
    if start < index:
        return start
    while index + 1 < len(data) and data[index : index + 1].isspace():
        index += 1
    return index


def _line_column(path: Path, position: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a byte offset, read in chunks (a
    minified file is one long line: nothing of it is kept)."""
    line, column, read = 1, 0, 0
    with path.open("rb") as stream:
        while read < position:
            chunk = stream.read(min(CHUNK, position - read))
            if not chunk:
                break
            read += len(chunk)
            if b"\n" in chunk:
                line += chunk.count(b"\n")
                chunk = chunk[chunk.rindex(b"\n") + 1 :]
                column = 0
            # Characters, not bytes: UTF-8 continuation bytes do not start one.
            column += len(chunk.translate(None, _CONTINUATION))
    return line, column + 1
