"""Writing a backup: the database (or one user's data) to a new directory, atomically.

The files are written to a hidden sibling directory, the manifest last, and the directory
is renamed into place at the end, so a half-written backup never looks complete. Each
collection's documents are read raw (the server's bytes) in `_id` order, so the file of
an unchanged collection is byte-identical from one backup to the next.

What a user's backup holds, and what no backup holds (`leases`, the migration lock), is
the registry's to say (`snipix.catalogue.COLLECTIONS`); a full backup holds every other
collection the database lists, registered or not.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bson import json_util
from pymongo import ASCENDING
from pymongo.errors import PyMongoError

from snipix.backup.errors import BackupError, first_line
from snipix.backup.files import BATCH, JSON_OPTIONS, LinesWriter, fsync_dir
from snipix.backup.manifest import MANIFEST, SUFFIX, CollectionEntry, Manifest
from snipix.catalogue import BY_NAME, MIGRATIONS, NOT_BACKED_UP
from snipix.db.bulk import raw_collection
from snipix.db.client import Database
from snipix.db.migrations import MigrationRunner
from snipix.progress import NoProgress, Progress
from snipix.projects.repository import PROJECTS


@dataclass(frozen=True, slots=True)
class BackupReport:
    directory: Path
    manifest: Manifest


async def _applied_migrations(db: Database) -> list[str]:
    status = await MigrationRunner(db, MIGRATIONS).status()
    return sorted(status.applied + status.unknown)


async def _selection(db: Database, user_id: str | None) -> dict[str, dict[str, Any]]:
    """The collections to back up, each with the query selecting its documents."""
    names = sorted(
        name
        for name in await db.list_collection_names()
        if not name.startswith("system.") and name not in NOT_BACKED_UP
    )
    queries: dict[str, dict[str, Any]] = {}
    if user_id is None:
        queries = {name: {} for name in names}
    else:
        owner = BY_NAME[PROJECTS].owner_query(user_id)
        projects = [
            doc["_id"]
            async for doc in db[PROJECTS].find(owner, {"_id": 1}, sort=[("_id", ASCENDING)])
        ]
        for name in names:
            registered = BY_NAME.get(name)
            query = registered.user_query(user_id, projects) if registered else None
            if query is not None:
                queries[name] = query
    return {
        name: BY_NAME[name].backup_query(query) if name in BY_NAME else query
        for name, query in queries.items()
    }


async def backup(
    db: Database, out: Path, *, user_id: str | None = None, progress: Progress | None = None
) -> BackupReport:
    """Write the database (or one user's data) to the new or empty directory `out`."""
    progress = progress or NoProgress()
    out, staging = _staging(out)
    try:
        migrations = await _applied_migrations(db)
        entries = []
        for name, query in (await _selection(db, user_id)).items():
            entries.append(await _dump(db, name, query, staging / f"{name}{SUFFIX}", progress))
        manifest = Manifest(
            created_at=datetime.now(UTC),
            database=db.name,
            user_id=user_id,
            migrations=migrations,
            collections=entries,
        )
        _publish(staging, manifest, out)
    except OSError as error:
        raise BackupError(f"cannot write {out}: {error.strerror or error}") from None
    except PyMongoError as error:
        raise BackupError(f"reading the database failed: {first_line(error)}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BackupReport(directory=out, manifest=manifest)


def _staging(out: Path) -> tuple[Path, Path]:
    """`out` made absolute, and a new hidden directory beside it to write the backup in."""
    out = out.absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BackupError(f"{out} already exists and is not an empty directory")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    except OSError as error:
        raise BackupError(f"cannot create {out}: {error.strerror or error}") from None
    return out, Path(staging)


def _publish(staging: Path, manifest: Manifest, out: Path) -> None:
    """The manifest last, everything on disk, then the directory renamed into place."""
    (staging / MANIFEST).write_text(
        json.dumps(manifest.as_json(), indent=2) + "\n", encoding="utf-8"
    )
    fsync_dir(staging)
    # Atomic: `out` is absent, or an empty directory that rename(2) replaces.
    staging.rename(out)
    fsync_dir(out.parent)


async def _dump(
    db: Database, name: str, query: Mapping[str, Any], path: Path, progress: Progress
) -> CollectionEntry:
    collection = raw_collection(db, name)
    total = await collection.count_documents(query) if progress.active else None
    progress.start(name, total)
    writer = LinesWriter(path)
    try:
        lines: list[bytes] = []
        cursor = collection.find(query, sort=[("_id", ASCENDING)], batch_size=BATCH)
        async for doc in cursor:
            lines.append(json_util.dumps(doc, json_options=JSON_OPTIONS).encode() + b"\n")
            if len(lines) >= BATCH:
                writer.write(lines)
                progress.advance(len(lines))
                lines = []
        if lines:
            writer.write(lines)
            progress.advance(len(lines))
    except BaseException:
        writer.abort()
        raise
    return writer.close(name)
