"""The media rules: who may upload, read and trim a project's video, and what is recorded.

Files are stored under the media root (`storage`); their metadata goes into the project's
`media` through `ProjectService.update`, so each upload and each new trim is a project
change like any other: a new version, a superseded state in `project_versions`, an audit
entry, cache invalidation. A trim already recorded changes nothing (`MediaService.trim`).
Ownership is the projects service's: another user's project is a 404.

Clients only ever see URLs (`/media/{id}/video`), never server paths. `media.sourceFile`
etc. name the stored files relative to the media root; they are resolved only inside the
project's own folder, so a client that writes them can point only at its own files.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG
from typing import Final

import structlog
from starlette.requests import Request

from snipix.auth.actor import Actor
from snipix.errors import (
    Conflict,
    NotFound,
    NotImplementedHere,
    UnsupportedMediaType,
    ValidationFailed,
    VersionMismatch,
)
from snipix.flights import SingleFlight
from snipix.media.formats import format_of
from snipix.media.links import LinkSigner, load_key
from snipix.media.probe import (
    RENDER_EXTENSION,
    RENDER_SETTINGS,
    MediaToolFailed,
    MediaTools,
    ProbeResult,
    Segment,
)
from snipix.media.schemas import MediaLinks, TrimRequest, TrimResult, UploadResult
from snipix.media.storage import MediaStorage, new_name
from snipix.media.upload import receive_upload
from snipix.projects.members import Role
from snipix.projects.schemas import PROJECT_ID_PATTERN, Media, Project, ProjectUpdate
from snipix.projects.service import ProjectService
from snipix.settings import Settings

log = structlog.get_logger(__name__)

# A concurrent change to the same project (a rename, another upload) makes the media update
# retry on top of it; this many tries before giving up with 412.
MEDIA_UPDATE_ATTEMPTS: Final = 5
# Clip ends computed by the web app from the probed duration may overshoot it by rounding.
END_TOLERANCE_SEC: Final = 0.1
# Trim times are kept to the millisecond, well under a frame, so that the web app's floats
# for the same edit give the same render.
_MILLIS: Final = 1_000
_PROJECT_ID = re.compile(PROJECT_ID_PATTERN)
NO_FFMPEG: Final = (
    "Trimming needs ffmpeg, which is not installed on this server. Install ffmpeg "
    "(apt-get install ffmpeg) or set SNIPIX_FFMPEG_PATH."
)


def video_url(project_id: str) -> str:
    return f"/media/{project_id}/video"


def trimmed_video_url(project_id: str) -> str:
    return f"/media/{project_id}/video/trimmed"


def thumbnail_url(project_id: str) -> str:
    return f"/media/{project_id}/thumbnail"


@dataclass
class MediaRuntime:
    """What the media routes of one app share: storage, the tools' semaphore, the link key."""

    settings: Settings
    storage: MediaStorage
    tools: MediaTools
    # Identical trims under way in this app share one render.
    flights: SingleFlight[TrimResult] = field(default_factory=SingleFlight, init=False)
    _signer: LinkSigner | None = field(default=None, init=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaRuntime:
        return cls(settings, MediaStorage(settings.media_root), MediaTools(settings))

    async def signer(self) -> LinkSigner:
        if self._signer is None:
            key = await asyncio.to_thread(load_key, self.storage.root)
            self._signer = LinkSigner(key, self.settings.media_url_ttl_s)
        return self._signer


@dataclass(frozen=True, slots=True)
class _TrimPlan:
    """One trim request, resolved: which file, which parts, and the render's name."""

    project_id: str
    source: Path
    source_file: str
    segments: list[Segment]
    name: str

    @property
    def reference(self) -> str:
        return f"{self.project_id}/{self.name}"


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """A file to send: where it is, its size and time (`os.stat`), and its content type."""

    path: Path
    stat: os.stat_result
    media_type: str
    filename: str


class MediaService:
    def __init__(self, projects: ProjectService, runtime: MediaRuntime) -> None:
        self._projects = projects
        self._storage = runtime.storage
        self._tools = runtime.tools
        self._runtime = runtime
        self._max_bytes = runtime.settings.media_max_bytes

    async def signer(self) -> LinkSigner:
        """The link signer (its key is read on first use)."""
        return await self._runtime.signer()

    # --- upload --------------------------------------------------------------------------

    async def upload(self, actor: Actor, request: Request) -> UploadResult:
        """Receive the body, check the project, probe, thumbnail, store, record."""
        received = await receive_upload(request, self._storage, max_bytes=self._max_bytes)
        thumb_temp: Path | None = None
        placed: list[Path] = []
        try:
            project_id = received.fields["project_id"]
            if not _PROJECT_ID.fullmatch(project_id):
                raise ValidationFailed(
                    "`project_id` is not a project id.",
                    details=[{"loc": ["body", "project_id"], "msg": "invalid", "type": "id"}],
                )
            await self._projects.get(actor, project_id, need=Role.EDITOR)
            probe = await self._probe_upload(received.path)
            duration = probe.duration_sec if probe is not None else None
            name = new_name(received.format.extension)
            thumb_temp = await asyncio.to_thread(self._storage.incoming_path, "jpg")
            at_sec = min(1.0, duration / 2) if duration else 0.0
            has_thumbnail = await self._tools.thumbnail(received.path, thumb_temp, at_sec=at_sec)
            if not has_thumbnail:
                # ffmpeg may have left an empty or partial file behind.
                await asyncio.to_thread(self._storage.remove, thumb_temp)
            source_ref = await asyncio.to_thread(
                self._storage.place, received.path, project_id, name
            )
            placed.append(self._storage.project_dir(project_id) / name)
            thumb_ref = None
            if has_thumbnail:
                thumb_name = name.rsplit(".", 1)[0] + ".jpg"
                thumb_ref = await asyncio.to_thread(
                    self._storage.place, thumb_temp, project_id, thumb_name
                )
                placed.append(self._storage.project_dir(project_id) / thumb_name)
            # A new source replaces the whole media: a trimmed render of the previous video
            # no longer matches it. The previous files stay until the project is purged
            # (a rollback of the project can bring that media back).
            media = Media(
                source=video_url(project_id),
                duration_sec=duration,
                size_bytes=received.size,
                mime_type=received.format.mime_type,
                width=probe.width if probe is not None else None,
                height=probe.height if probe is not None else None,
                fps=probe.fps if probe is not None else None,
                thumbnail=thumbnail_url(project_id) if thumb_ref is not None else None,
                source_file=source_ref,
                thumbnail_file=thumb_ref,
            )
            await self._set_media(actor, project_id, lambda _current: media)
        except BaseException:
            await asyncio.to_thread(self._storage.remove, received.path, thumb_temp, *placed)
            raise
        log.info(
            "video uploaded",
            project_id=project_id,
            size_bytes=received.size,
            mime_type=received.format.mime_type,
            duration_sec=duration,
        )
        return UploadResult(
            project_id=project_id, file_path=video_url(project_id), duration=duration
        )

    async def _probe_upload(self, path: Path) -> ProbeResult | None:
        try:
            probe = await self._tools.probe(path)
        except MediaToolFailed:
            raise UnsupportedMediaType(
                "This file looks like a video container but could not be read as a video "
                "(damaged or incomplete?)."
            ) from None
        if probe is not None and not probe.has_video:
            raise UnsupportedMediaType("This file has no video stream.")
        return probe

    # --- trim ----------------------------------------------------------------------------

    async def trim(self, actor: Actor, request: TrimRequest) -> TrimResult:
        """Keep the given segments of the uploaded video, in order, as one render.

        The web app sends its trim two seconds after every layer change and on every page
        open, mostly unchanged. A render is therefore named by its fingerprint (the source
        file, the normalised segments, the render settings): a request whose render is the
        one recorded answers it with no new version, audit entry or ffmpeg run, and
        identical requests arriving together share one render.
        """
        if self._tools.ffmpeg is None:
            raise NotImplementedHere(NO_FFMPEG)
        project_id = request.project_id
        project = await self._projects.get(actor, project_id, need=Role.EDITOR)
        media = project.media
        source_file = media.source_file if media else None
        source = self._storage.resolve(project_id, source_file)
        stat = await asyncio.to_thread(_stat_file, source) if source is not None else None
        if media is None or source_file is None or source is None or stat is None:
            raise NotFound(
                f"Project {project_id} has no uploaded video to trim; upload one first "
                "(POST /media/upload)."
            )
        duration = media.duration_sec
        if duration is None:
            probe = await self._tools.probe(source)
            duration = probe.duration_sec if probe is not None else None
        if duration is None:
            raise MediaToolFailed("The uploaded video's duration could not be read.")
        segments = _segments_within(request, duration)
        key = render_key(source_file, stat, segments)
        plan = _TrimPlan(
            project_id=project_id,
            source=source,
            source_file=source_file,
            segments=segments,
            name=f"{key}.{RENDER_EXTENSION}",
        )
        done = await self._recorded(media, plan)
        if done is not None:
            return done
        return await self._runtime.flights.run(
            f"{project_id}/{key}", lambda: self._render(actor, plan)
        )

    async def _recorded(self, media: Media | None, plan: _TrimPlan) -> TrimResult | None:
        """The answer for `plan` if `media` already records its render and the file is there."""
        if (
            media is None
            or media.source_file != plan.source_file
            or media.trimmed_file != plan.reference
            or media.trimmed_duration_sec is None
        ):
            return None
        path = self._storage.project_dir(plan.project_id) / plan.name
        if not await asyncio.to_thread(path.is_file):
            return None
        log.debug("trim already rendered", project_id=plan.project_id)
        return TrimResult(
            trimmed_video_path=trimmed_video_url(plan.project_id),
            new_duration=round(media.trimmed_duration_sec, 3),
        )

    async def _render(self, actor: Actor, plan: _TrimPlan) -> TrimResult:
        """Render `plan` (unless its file exists) and record it as the project's trim."""
        project_id = plan.project_id
        # The identical request just before this one may have recorded this very render.
        current = (await self._projects.get(actor, project_id)).media
        done = await self._recorded(current, plan)
        if done is not None:
            return done
        path = self._storage.project_dir(project_id) / plan.name
        rendered: Path | None = None
        if await asyncio.to_thread(path.is_file):
            # Placed by a request that lost the race to record it (another replica): the
            # name is the fingerprint, and a placed file is whole (atomic rename).
            new_duration = await self._duration_of(path, plan.segments)
        else:
            target = await asyncio.to_thread(self._storage.incoming_path, RENDER_EXTENSION)
            try:
                probe = await self._tools.probe(plan.source)
                # Without ffprobe the render is silent rather than failing on a video
                # that has no sound.
                audio = probe.has_audio if probe is not None else False
                fps = probe.fps if probe is not None else None
                await self._tools.render(plan.source, plan.segments, target, audio=audio, fps=fps)
                new_duration = await self._duration_of(target, plan.segments)
                await asyncio.to_thread(self._storage.place, target, project_id, plan.name)
            except BaseException:
                await asyncio.to_thread(self._storage.remove, target)
                raise
            rendered = path
        trimmed = {
            "trimmed_source": trimmed_video_url(project_id),
            "trimmed_duration_sec": new_duration,
            "trimmed_file": plan.reference,
        }

        def with_trim(current: Media | None) -> Media | None:
            if current is None or current.source_file != plan.source_file:
                raise Conflict(
                    f"The video of project {project_id} was replaced while it was being "
                    "trimmed; trim again."
                )
            if all(getattr(current, field) == value for field, value in trimmed.items()):
                return None
            return current.model_copy(update=trimmed)

        try:
            previous = await self._set_media(actor, project_id, with_trim)
        except BaseException:
            await asyncio.to_thread(self._storage.remove, rendered)
            raise
        # The trim it replaces is derived data (remade from the source on demand), so it
        # is removed now rather than kept until the purge: one render per project on disk.
        superseded = self._storage.resolve(project_id, previous.trimmed_file if previous else None)
        if superseded is not None and superseded != path:
            await asyncio.to_thread(self._storage.remove, superseded)
        log.info(
            "video trimmed",
            project_id=project_id,
            segments=len(plan.segments),
            new_duration_sec=new_duration,
            rendered=rendered is not None,
        )
        return TrimResult(
            trimmed_video_path=trimmed_video_url(project_id), new_duration=round(new_duration, 3)
        )

    async def _duration_of(self, path: Path, segments: Sequence[Segment]) -> float:
        probe = await self._tools.probe(path)
        if probe is not None and probe.duration_sec is not None:
            return probe.duration_sec
        return sum(s.duration for s in segments)

    # --- for other domains ---------------------------------------------------------------

    @property
    def ffmpeg(self) -> str | None:
        """The ffmpeg executable this app found (None: not installed)."""
        return self._tools.ffmpeg

    @property
    def job_timeout_s(self) -> float:
        return self._tools.timeout_s

    async def source(self, actor: Actor, project_id: str) -> tuple[Path, ProbeResult | None]:
        """The project's uploaded video on disk and what ffprobe says of it (None without
        ffprobe). Conflict when the project has no video: there is nothing to work on yet."""
        project = await self._projects.get(actor, project_id)
        media = project.media
        source = self._storage.resolve(project_id, media.source_file if media else None)
        stat = await asyncio.to_thread(_stat_file, source) if source is not None else None
        if source is None or stat is None:
            raise Conflict(
                f"Project {project_id} has no uploaded video yet; upload one first "
                "(POST /media/upload)."
            )
        try:
            probe = await self._tools.probe(source)
        except MediaToolFailed:
            raise UnsupportedMediaType("The uploaded video could not be read.") from None
        return source, probe

    # --- reads ---------------------------------------------------------------------------

    async def video(self, actor: Actor, project_id: str, *, trimmed: bool) -> StoredMedia:
        project = await self._projects.get(actor, project_id)
        media = project.media
        reference = (media.trimmed_file if trimmed else media.source_file) if media else None
        path = self._storage.resolve(project_id, reference)
        fmt = format_of(path.suffix.removeprefix(".")) if path is not None else None
        if path is None or fmt is None:
            what = "trimmed render (POST /media/trim-video makes one)" if trimmed else "video"
            raise NotFound(f"Project {project_id} has no {what}.")
        return await self._stored(path, fmt.mime_type, f"{project_id}.{fmt.extension}")

    async def thumbnail(self, actor: Actor, project_id: str) -> StoredMedia:
        project = await self._projects.get(actor, project_id)
        reference = project.media.thumbnail_file if project.media else None
        path = self._storage.resolve(project_id, reference)
        if path is None or path.suffix != ".jpg":
            raise NotFound(f"Project {project_id} has no thumbnail.")
        return await self._stored(path, "image/jpeg", f"{project_id}.jpg")

    async def _stored(self, path: Path, media_type: str, filename: str) -> StoredMedia:
        try:
            stat = await asyncio.to_thread(os.stat, path)
        except FileNotFoundError:
            log.warning("media file missing", path=str(path.relative_to(self._storage.root)))
            raise NotFound("The file is missing from storage; upload the video again.") from None
        return StoredMedia(path=path, stat=stat, media_type=media_type, filename=filename)

    async def links(
        self, actor: Actor, project_id: str, *, generation: int | None = None
    ) -> MediaLinks:
        """Signed URLs of the project's media, for `<video>`/`<img>` tags.

        `generation`: the session generation of the caller's credential, which the links
        carry so that ending the user's sessions ends them too (media/links.py).
        """
        project = await self._projects.get(actor, project_id)
        media = project.media
        signer = await self.signer()
        token, expires = signer.sign(actor.user_id, project_id, generation=generation)

        def link(url: str, reference: str | None) -> str | None:
            if self._storage.resolve(project_id, reference) is None:
                return None
            return f"{url}?token={token}"

        return MediaLinks(
            video_url=link(video_url(project_id), media.source_file if media else None),
            trimmed_video_url=link(
                trimmed_video_url(project_id), media.trimmed_file if media else None
            ),
            thumbnail_url=link(thumbnail_url(project_id), media.thumbnail_file if media else None),
            expires_at=datetime.fromtimestamp(expires, UTC),
        )

    # --- recording -----------------------------------------------------------------------

    async def _set_media(
        self, actor: Actor, project_id: str, build: Callable[[Media | None], Media | None]
    ) -> Media | None:
        """Apply `build` to the current media as a project update; the media it replaced.

        Based on the version just read (never `If-Match: *`), so a concurrent change to the
        project is never overwritten: on a lost race the media is rebuilt on top of it.
        `build` answering None means the media is already as wanted: no update, no version.
        """
        for attempt in range(1, MEDIA_UPDATE_ATTEMPTS + 1):
            project: Project = await self._projects.get(actor, project_id)
            media = build(project.media)
            if media is None:
                return project.media
            try:
                await self._projects.update(
                    actor,
                    project_id,
                    ProjectUpdate(media=media),
                    expected=project.version,
                )
            except VersionMismatch:
                if attempt == MEDIA_UPDATE_ATTEMPTS:
                    raise
                continue
            return project.media
        raise AssertionError("unreachable")


def _segments_within(request: TrimRequest, duration: float) -> list[Segment]:
    """The request's segments, checked against the video and normalised.

    Normalised so that the same edit always names the same render: times to the
    millisecond (well under a frame), ends past the video (allowed by the tolerance)
    clamped to it, and a segment that starts where the previous one ends joined to it.
    """
    problems = []
    for index, segment in enumerate(request.segments):
        end = segment.start_time + segment.duration
        if end > duration + END_TOLERANCE_SEC:
            problems.append(
                {
                    "loc": ["body", "segments", str(index)],
                    "msg": f"ends at {end:.3f} s, after the end of the video ({duration:.3f} s)",
                    "type": "out_of_range",
                }
            )
    if problems:
        first = problems[0]
        raise ValidationFailed(
            f"Invalid request: segments.{first['loc'][2]}: {first['msg']}", details=problems
        )
    limit = round(duration * _MILLIS)
    kept: list[tuple[int, int]] = []
    for segment in request.segments:
        start = round(segment.start_time * _MILLIS)
        end = min(round((segment.start_time + segment.duration) * _MILLIS), limit)
        if end <= start:
            continue
        if kept and kept[-1][1] == start:
            kept[-1] = (kept[-1][0], end)
        else:
            kept.append((start, end))
    if not kept:
        raise ValidationFailed(
            "Invalid request: segments: nothing of the video is kept (every segment is "
            "shorter than a millisecond or starts at its end).",
            details=[{"loc": ["body", "segments"], "msg": "nothing kept", "type": "empty"}],
        )
    return [Segment(start=start / _MILLIS, duration=(end - start) / _MILLIS) for start, end in kept]


def render_key(source_file: str, stat: os.stat_result, segments: Sequence[Segment]) -> str:
    """The fingerprint of a render: 32 hex digits (128 bits of SHA-256), its file's name.

    Over what decides the render's bytes: the source (its stored name, unique per upload,
    with its size and modification time, so a file changed in place is not taken for the
    same), the normalised segments and the render settings (new settings, new renders).
    """
    identity = {
        "source": source_file,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "segments": [[round(s.start * _MILLIS), round(s.duration * _MILLIS)] for s in segments],
        "settings": RENDER_SETTINGS,
    }
    encoded = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def _stat_file(path: Path) -> os.stat_result | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat if S_ISREG(stat.st_mode) else None
