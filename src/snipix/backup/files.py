"""The files of a backup: gzip MongoDB Extended JSON lines, and their checksums.

One `<collection>.jsonl.gz` per collection, canonical Extended JSON, one document a line
(so Int64/Double, dates to the millisecond, ObjectIds and nested documents come back
exactly). Read and written in batches: no collection is ever held in memory.

Plain blocking I/O: the commands run one task on their loop, and a file write is far
shorter than the database round trip it follows.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC
from pathlib import Path
from typing import IO

from bson.codec_options import DatetimeConversion
from bson.json_util import JSONMode, JSONOptions

from snipix.backup.errors import BackupError
from snipix.backup.manifest import CollectionEntry, Manifest
from snipix.progress import NoProgress, Progress

# Documents per cursor batch and per line batch of a file.
BATCH = 500

# Canonical mode keeps every BSON type distinct (Int32/Int64/Double, dates as ms).
JSON_OPTIONS = JSONOptions(
    json_mode=JSONMode.CANONICAL,
    tz_aware=True,
    tzinfo=UTC,
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
)
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class LinesWriter:
    """A gzip file of lines, byte-identical for identical lines (no name or time in it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._content = hashlib.sha256()
        self._raw: IO[bytes] = path.open("xb")
        self._gzip = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)

    def write(self, lines: Sequence[bytes]) -> None:
        data = b"".join(lines)
        self._gzip.write(data)
        self._content.update(data)
        self.count += len(lines)

    def close(self, name: str) -> CollectionEntry:
        self._gzip.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        return CollectionEntry(
            name=name,
            file=self.path.name,
            count=self.count,
            sha256=file_sha256(self.path),
            content_sha256=self._content.hexdigest(),
            size=self.path.stat().st_size,
        )

    def abort(self) -> None:
        self._gzip.close()
        self._raw.close()


def read_batches(path: Path, size: int = BATCH) -> Iterator[list[bytes]]:
    with gzip.open(path, "rb") as stream:
        batch: list[bytes] = []
        for line in stream:
            batch.append(line)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch


def verify(directory: Path, manifest: Manifest, progress: Progress | None = None) -> None:
    """Check every file against the manifest (file checksum, readable gzip, line count,
    lines checksum); `BackupError` naming the first file that does not match."""
    progress = progress or NoProgress()
    for entry in manifest.collections:
        path = directory / entry.file
        broken = f"{entry.file} does not match the manifest"
        if not path.is_file():
            raise BackupError(f"{entry.file} is missing from {directory}")
        progress.start(f"verify {entry.name}", entry.count)
        if file_sha256(path) != entry.sha256:
            raise BackupError(f"{broken}: sha256 differs (the file is corrupted or truncated)")
        content = hashlib.sha256()
        lines = 0
        try:
            for batch in read_batches(path):
                for line in batch:
                    content.update(line)
                lines += len(batch)
                progress.advance(len(batch))
        except (OSError, EOFError, zlib.error) as error:
            raise BackupError(f"{broken}: unreadable gzip ({error})") from None
        if lines != entry.count or content.hexdigest() != entry.content_sha256:
            raise BackupError(
                f"{broken}: {lines} lines for {entry.count} documents or their checksum differs"
            )
