"""The manifest of a backup: what it holds, under which schema, and the checksums that
let a restore refuse a damaged file before it writes anything.

`manifest.json` is written last (see `snipix.backup.dump`): a directory without one is
not a complete backup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from snipix.backup.errors import BackupError
from snipix.catalogue import COLLECTIONS, NOT_BACKED_UP

FORMAT = "snipix-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SUFFIX = ".jsonl.gz"


@dataclass(frozen=True, slots=True)
class CollectionEntry:
    name: str
    file: str
    count: int
    sha256: str
    content_sha256: str
    size: int

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "count": self.count,
            "sha256": self.sha256,
            "contentSha256": self.content_sha256,
            "bytes": self.size,
        }


@dataclass(frozen=True, slots=True)
class Manifest:
    created_at: datetime
    database: str
    user_id: str | None
    migrations: list[str]
    collections: list[CollectionEntry]
    format_version: int = FORMAT_VERSION

    @property
    def documents(self) -> int:
        return sum(entry.count for entry in self.collections)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "formatVersion": self.format_version,
            "createdAt": self.created_at.isoformat().replace("+00:00", "Z"),
            "database": self.database,
            "scope": {"userId": self.user_id} if self.user_id else "all",
            "schema": {
                "migrations": self.migrations,
                "latest": self.migrations[-1] if self.migrations else None,
            },
            "collections": {entry.name: entry.as_json() for entry in self.collections},
            "totals": {"documents": self.documents, "collections": len(self.collections)},
            "notIncluded": {
                "indexes": "rebuilt from the catalogue (ensure_catalogue) on restore",
                "collections": [*sorted(NOT_BACKED_UP), "system.*"],
                "documents": [
                    f"{collection.name}/{collection.excluded_id}"
                    for collection in COLLECTIONS
                    if collection.excluded_id is not None
                ],
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """Read a manifest; `BackupError` naming what is missing or malformed."""
        try:
            if data.get("format") != FORMAT:
                raise BackupError(f"{MANIFEST} is not a snipix backup manifest")
            version = data["formatVersion"]
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise BackupError(
                    f"backup format version {version} is newer than this build reads "
                    f"({FORMAT_VERSION}); restore it with a newer snipix"
                )
            scope = data["scope"]
            migrations = data["schema"]["migrations"]
            if not isinstance(migrations, list) or not all(isinstance(m, str) for m in migrations):
                raise TypeError("schema.migrations")
            entries = [
                CollectionEntry(
                    name=_collection_name(name),
                    file=_file_name(entry["file"]),
                    count=int(entry["count"]),
                    sha256=str(entry["sha256"]),
                    content_sha256=str(entry["contentSha256"]),
                    size=int(entry["bytes"]),
                )
                for name, entry in data["collections"].items()
            ]
            return cls(
                created_at=datetime.fromisoformat(data["createdAt"]),
                database=str(data["database"]),
                user_id=scope.get("userId") if isinstance(scope, dict) else None,
                migrations=migrations,
                collections=entries,
                format_version=version,
            )
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise BackupError(
                f"{MANIFEST} is malformed ({type(error).__name__}: {error})"
            ) from None


def _collection_name(name: Any) -> str:
    if not isinstance(name, str) or not name or name.startswith("system.") or "\0" in name:
        raise ValueError(f"bad collection name {name!r}")
    return name


def _file_name(name: Any) -> str:
    # A manifest names files inside its own directory, never a path elsewhere.
    if not isinstance(name, str) or not name.endswith(SUFFIX) or Path(name).name != name:
        raise ValueError(f"bad file name {name!r}")
    return name


def read_manifest(directory: Path) -> Manifest:
    if not directory.is_dir():
        raise BackupError(f"{directory} is not a directory")
    path = directory / MANIFEST
    if not path.is_file():
        raise BackupError(f"{directory} is not a complete snipix backup (no {MANIFEST})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BackupError(f"cannot read {path}: {error}") from None
    return Manifest.from_json(data)
