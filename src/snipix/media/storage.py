"""The media root on disk: one folder per project, a file name per stored file.

Layout under the root:

    .incoming/<hex>.part         an upload being received (unique per request)
    .incoming/<hex>.<ext>        a render or thumbnail being written by ffmpeg
    <projectId>/<hex>.<ext>      stored files: uploads, `.jpg` thumbnails, trimmed renders

A file reaches its project folder by an atomic rename within the root (one filesystem), so
a reader never sees half a file. Uploads and thumbnails get random names; a trimmed render
is named by its fingerprint (`service.render_key`), so the same trim finds its render, and
two renders under one name have the same content. Stored files are referenced from the
project's `media` by their path relative to the root (`<projectId>/<hex>.<ext>`);
`resolve` serves only files of the project's own folder, whatever the stored reference
says. A purge removes the folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import structlog

from snipix.settings import Settings

log = structlog.get_logger(__name__)

INCOMING: Final = ".incoming"
_PROJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_STORED = re.compile(r"([A-Za-z0-9_-]{1,64})/([0-9a-f]{32}\.[a-z0-9]{1,8})")


def new_name(extension: str) -> str:
    """A file name no other request can produce: 128 random bits."""
    return f"{uuid.uuid4().hex}.{extension}"


class MediaStorage:
    def __init__(self, root: Path) -> None:
        # Absolute, so paths handed to ffmpeg mean the same whatever its working directory.
        self.root = root.absolute()

    @property
    def incoming(self) -> Path:
        return self.root / INCOMING

    def incoming_path(self, extension: str) -> Path:
        """A fresh path in the incoming folder (created on first use)."""
        self.incoming.mkdir(parents=True, exist_ok=True)
        return self.incoming / new_name(extension)

    def project_dir(self, project_id: str) -> Path:
        if not _PROJECT_ID.fullmatch(project_id):
            raise ValueError(f"not a project id: {project_id!r}")
        return self.root / project_id

    def place(self, temp: Path, project_id: str, name: str) -> str:
        """Move a finished file into the project's folder; its reference (`<id>/<name>`)."""
        folder = self.project_dir(project_id)
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(temp, folder / name)
        return f"{project_id}/{name}"

    def resolve(self, project_id: str, reference: str | None) -> Path | None:
        """The stored file `reference` names, if it is in this project's folder."""
        if reference is None:
            return None
        match = _STORED.fullmatch(reference)
        if match is None or match.group(1) != project_id:
            return None
        return self.project_dir(project_id) / match.group(2)

    def remove(self, *paths: Path | None) -> None:
        """Remove files, ignoring those already gone (cleanup after a failed request)."""
        for path in paths:
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def remove_project(self, project_id: str) -> int:
        """Delete a project's folder and every file in it; the number of files removed."""
        folder = self.project_dir(project_id)
        if not folder.exists():
            return 0
        count = sum(1 for item in folder.iterdir() if item.is_file())
        shutil.rmtree(folder)
        return count


PurgeHook = Callable[[str], Awaitable[None]]


def purge_hook(settings: Settings) -> PurgeHook:
    """What the projects service calls when it purges a project: remove its media files."""
    storage = MediaStorage(settings.media_root)

    async def remove_media(project_id: str) -> None:
        removed = await asyncio.to_thread(storage.remove_project, project_id)
        if removed:
            log.info("project media removed", project_id=project_id, files=removed)

    return remove_media
