"""Transcription as durable jobs, and filler removal as an undoable timeline edit.

`TranscriptionService` is what the routes call: start a job (checks first: the project has
a video with sound, no other job runs for it), read or cancel it, wait for it (the web
app's synchronous call), remove filler words. `JobRunner` is the worker side: it claims
jobs from the `jobs` collection, at most `SNIPIX_TRANSCRIBE_WORKERS` at once per process,
each recognised chunk by chunk in a worker process, and writes the transcript through the
transcript service as a new version. A runner that dies (crash, SIGKILL, lost host) stops
renewing its lease; another runner claims the job once the lease has expired and starts
it again, so a job ends once, with one transcript written.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
import socket
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

import structlog
from pymongo.errors import PyMongoError

from snipix.auth.actor import Actor
from snipix.clock import Clock, utc_now
from snipix.db.client import Document
from snipix.errors import (
    Conflict,
    NotFound,
    NotImplementedHere,
    SnipixError,
    ValidationFailed,
)
from snipix.media.schemas import TrimRequest, TrimSegment
from snipix.media.service import MediaService, video_url
from snipix.projects.members import Role
from snipix.projects.service import ProjectService
from snipix.settings import Settings
from snipix.timelines.service import TimelineService
from snipix.transcription.audio import chunk_bounds, extract_audio
from snipix.transcription.engines import RecognisedWord, Transcriber, exit_with_parent
from snipix.transcription.fillers import filler_flags
from snipix.transcription.remote import TranscriptionRefused
from snipix.transcription.repository import (
    ACTIVE_STATES,
    DONE,
    FAILED,
    QUEUED,
    JobRepository,
)
from snipix.transcription.schemas import (
    Job,
    JobResult,
    RemovedSegment,
    RemoveFillersAnswer,
    TranscribeAnswer,
    TranscribedWord,
)
from snipix.transcription.segments import transcript_upload
from snipix.transcripts.schemas import SegmentCursor
from snipix.transcripts.service import TranscriptService, cut_operations, merge_spans
from snipix.wire.pages import decode_cursor

log = structlog.get_logger(__name__)

# Padding around a cut filler so the neighbouring words are not clipped at their edges.
CUT_PADDING_S: Final = 0.03
# How often the web app's synchronous call looks at its job.
WAIT_POLL_S: Final = 0.2
# Progress: the audio's extraction is the first few percent, the transcript's write the last.
_EXTRACTED: Final = 0.05
_RECOGNISED: Final = 0.95
_WEB_APP_ID = re.compile(r"^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$")
_WORD_ID = re.compile(r"^([A-Za-z0-9_:-]+):(\d+)$")
# The web app's `<start>-<end>` ids are JavaScript numbers printed back: match to the ms.
_TIME_MATCH_S: Final = 0.0015
_PAGE: Final = 500


class TranscriptionPending(SnipixError):
    """The synchronous call's bound passed; the job goes on."""

    code = "transcription_pending"
    status_code = 503


class JobLost(Exception):
    """This runner no longer holds the job (cancelled, or taken over)."""


def job_url(project_id: str, job_id: str) -> str:
    return f"/api/v1/projects/{project_id}/transcript/jobs/{job_id}"


def job_view(doc: Document) -> Job:
    return Job(
        id=doc["_id"],
        project_id=doc["projectId"],
        state=doc["state"],
        progress=doc.get("progress", 0.0),
        attempts=doc.get("attempts", 0),
        engine=doc["engine"],
        error=doc.get("error"),
        created_at=doc["createdAt"],
        updated_at=doc["updatedAt"],
        started_at=doc.get("startedAt"),
        finished_at=doc.get("finishedAt"),
        result=JobResult.model_validate(doc["result"]) if doc.get("result") else None,
    )


class TranscriptionService:
    def __init__(
        self,
        jobs: JobRepository,
        *,
        projects: ProjectService,
        transcripts: TranscriptService,
        timelines: TimelineService,
        media: MediaService,
        transcriber: Transcriber,
        settings: Settings,
        clock: Clock = utc_now,
    ) -> None:
        self.jobs = jobs
        self.projects = projects
        self.transcripts = transcripts
        self.timelines = timelines
        self.media = media
        self.transcriber = transcriber
        self.settings = settings
        self.clock = clock
        # Set when a job is queued here, so this process's runner claims it at once
        # instead of at its next poll.
        self.wake = asyncio.Event()

    # --- jobs ----------------------------------------------------------------------------

    async def start(self, actor: Actor, project_id: str, *, language: str | None = None) -> Job:
        """Queue a transcription of the project's video. 409 without a video or while
        another job runs for the project; 422 when the video has no sound."""
        if self.media.ffmpeg is None:
            raise NotImplementedHere(
                "Transcription needs ffmpeg, which is not installed on this server."
            )
        # The job writes the transcript: an editor's to start.
        await self.projects.get(actor, project_id, need=Role.EDITOR)
        await self.source_with_audio(actor, project_id)
        now = self.clock()
        job_id = uuid.uuid4().hex
        doc: Document = {
            "_id": job_id,
            "kind": "transcribe",
            "projectId": project_id,
            "userId": actor.user_id,
            "activeKey": project_id,
            "state": QUEUED,
            "progress": 0.0,
            "attempts": 0,
            "engine": self.transcriber.name,
            "language": language or self.transcriber.language,
            "error": None,
            "createdAt": now,
            "updatedAt": now,
        }
        active = await self.jobs.insert(doc)
        if active is not None:
            raise Conflict(
                f"A transcription of this project is already {active['state']}: job "
                f"{active['_id']} ({job_url(project_id, active['_id'])}). Wait for it or "
                "cancel it.",
                details={"jobId": active["_id"], "location": job_url(project_id, active["_id"])},
            )
        self.wake.set()
        log.info("transcription queued", project_id=project_id, job_id=job_id)
        return job_view(doc)

    async def source_with_audio(self, actor: Actor, project_id: str) -> Path:
        source, probe = await self.media.source(actor, project_id)
        if probe is not None and not probe.has_audio:
            raise ValidationFailed(
                "The project's video has no audio track, so there is nothing to transcribe."
            )
        return source

    async def get(self, actor: Actor, project_id: str, job_id: str) -> Job:
        await self.projects.get(actor, project_id)
        doc = await self.jobs.get(job_id, user_id=actor.user_id, project_id=project_id)
        if doc is None:
            raise NotFound(f"Project {project_id} has no transcription job {job_id}.")
        return job_view(doc)

    async def cancel(self, actor: Actor, project_id: str, job_id: str) -> Job:
        """Cancel a queued or running job (its worker stops at its next chunk and writes
        nothing); 409 for a job that has ended."""
        await self.projects.get(actor, project_id, need=Role.EDITOR)
        current = await self.get(actor, project_id, job_id)
        doc = await self.jobs.cancel(
            job_id, user_id=actor.user_id, project_id=project_id, now=self.clock()
        )
        if doc is None:
            raise Conflict(f"Job {job_id} has already ended ({current.state}).")
        log.info("transcription cancelled", project_id=project_id, job_id=job_id)
        return job_view(doc)

    async def wait(self, actor: Actor, project_id: str, job_id: str, *, timeout_s: float) -> Job:
        """The job once it has ended; TranscriptionPending after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = await self.get(actor, project_id, job_id)
            if job.state not in ACTIVE_STATES:
                return job
            if time.monotonic() >= deadline:
                location = job_url(project_id, job_id)
                raise TranscriptionPending(
                    f"The transcription is still {job.state} ({round(job.progress * 100)}%) "
                    f"after {timeout_s:g} s; it goes on. Poll GET {location} and read the "
                    "transcript when it is done.",
                    details={"jobId": job_id, "location": location},
                    headers={"Location": location, "Retry-After": "10"},
                )
            await asyncio.sleep(WAIT_POLL_S)

    async def transcribe_now(self, actor: Actor, project_id: str) -> TranscribeAnswer:
        """The web app's synchronous transcription: a job (or the one already running for
        the project), waited for up to SNIPIX_TRANSCRIBE_WAIT_S, in the web app's shape."""
        try:
            job = await self.start(actor, project_id)
        except Conflict as conflict:
            details = conflict.details if isinstance(conflict.details, dict) else {}
            if "jobId" not in details:
                raise
            job = await self.get(actor, project_id, details["jobId"])
        ended = await self.wait(
            actor, project_id, job.id, timeout_s=self.settings.transcribe_wait_s
        )
        if ended.state != DONE:
            raise Conflict(
                f"The transcription job {ended.id} ended {ended.state}: "
                f"{ended.error or 'no reason recorded'}",
                details={"jobId": ended.id, "location": job_url(project_id, ended.id)},
            )
        words = [
            TranscribedWord(
                text=word["text"],
                start=word["start"],
                end=word["end"],
                confidence=word.get("confidence") or 0.0,
                is_filler=bool(word.get("isFiller")),
            )
            for _, _, word in await self._words(actor, project_id)
        ]
        project = await self.projects.get(actor, project_id)
        duration = project.media.duration_sec if project.media is not None else None
        return TranscribeAnswer(transcript=words, duration=duration or 0.0)

    async def _words(self, actor: Actor, project_id: str) -> list[tuple[str, int, Document]]:
        """Every word of the transcript, in order: (segment id, index, word)."""
        found: list[tuple[str, int, Document]] = []
        cursor = None
        while True:
            page = await self.transcripts.page(actor, project_id, limit=_PAGE, cursor=cursor)
            for segment in page.items:
                for index, word in enumerate(segment.words):
                    found.append((segment.id, index, word.model_dump(mode="json", by_alias=True)))
            if page.next_cursor is None:
                return found
            cursor = decode_cursor(page.next_cursor, SegmentCursor)

    # --- fillers -------------------------------------------------------------------------

    async def remove_fillers(
        self,
        actor: Actor,
        project_id: str,
        *,
        selected: list[str] | None,
        auto_detect: bool,
    ) -> RemoveFillersAnswer:
        """Cut the chosen words (or every detected filler) from the timeline as one
        undoable revision, then render the edited video."""
        if not selected and not auto_detect:
            raise ValidationFailed("Send selectedWords, or auto_detect: true.")
        # It cuts the timeline: an editor's to ask, refused before any work.
        await self.projects.get(actor, project_id, need=Role.EDITOR)
        header = await self.transcripts.header(actor, project_id)
        words = await self._words(actor, project_id)
        chosen: list[Document] = []
        if selected:
            chosen = _select(words, selected)
        if auto_detect:
            flags = filler_flags([word["text"] for _, _, word in words], header.language)
            chosen += [
                word
                for (_, _, word), flag in zip(words, flags, strict=True)
                if flag or word.get("isFiller")
            ]
        project = await self.projects.get(actor, project_id)
        duration = (
            project.media.duration_sec if project.media and project.media.duration_sec else None
        ) or header.duration_sec
        spans = merge_spans(
            [
                (
                    round(max(0.0, word["start"] - CUT_PADDING_S), 3),
                    round(min(duration, word["end"] + CUT_PADDING_S), 3),
                )
                for word in chosen
            ]
        )
        removed = [
            RemovedSegment(
                start=start,
                end=end,
                text=" ".join(w["text"] for w in chosen if w["start"] < end and w["end"] > start),
            )
            for start, end in spans
        ]
        if not spans:
            return RemoveFillersAnswer(
                processed_video_path=video_url(project_id), removed_segments=[]
            )
        timeline = await self.timelines.patch(
            actor,
            project_id,
            cut_operations(spans, source="fillers"),
            expected="*",
            label=f"Remove {len(chosen)} filler word(s)",
        )
        cuts = merge_spans([(s.start, s.end) for s in timeline.state.segments if s.kind == "cut"])
        kept = _complement(cuts, duration)
        if not kept:
            raise ValidationFailed("These cuts would remove the whole video.")
        trimmed = await self.media.trim(
            actor,
            TrimRequest(
                project_id=project_id,
                segments=[
                    TrimSegment(start_time=start, duration=round(end - start, 3))
                    for start, end in kept
                ],
            ),
        )
        log.info("fillers removed", project_id=project_id, cuts=len(spans))
        return RemoveFillersAnswer(
            processed_video_path=trimmed.trimmed_video_path, removed_segments=removed
        )


def _select(words: list[tuple[str, int, Document]], selected: list[str]) -> list[Document]:
    """The words named by the web app's `<start>-<end>` ids or `<segmentId>:<index>`."""
    chosen: list[Document] = []
    by_ref = {f"{segment}:{index}": word for segment, index, word in words}
    for ref in selected:
        if ref in by_ref:
            chosen.append(by_ref[ref])
            continue
        match = _WEB_APP_ID.match(ref)
        found = None
        if match is not None:
            start, end = float(match.group(1)), float(match.group(2))
            found = next(
                (
                    word
                    for _, _, word in words
                    if abs(word["start"] - start) <= _TIME_MATCH_S
                    and abs(word["end"] - end) <= _TIME_MATCH_S
                ),
                None,
            )
        elif _WORD_ID.match(ref) is None:
            raise ValidationFailed(
                f"Word {ref!r} is neither `<start>-<end>` nor `<segmentId>:<wordIndex>`. "
                "Nothing was cut."
            )
        if found is None:
            raise ValidationFailed(f"No word {ref!r} in this transcript. Nothing was cut.")
        chosen.append(found)
    return chosen


def _complement(cuts: list[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    kept: list[tuple[float, float]] = []
    position = 0.0
    for start, end in cuts:
        if start > position + 1e-3:
            kept.append((round(position, 3), round(min(start, duration), 3)))
        position = max(position, end)
    if duration > position + 1e-3:
        kept.append((round(position, 3), round(duration, 3)))
    return kept


def worker_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class JobRunner:
    """Claims and runs transcription jobs in this process, at most `workers` at once,
    each recognised in a worker process of its own pool."""

    service: TranscriptionService
    workers: int
    owner: str = ""

    def __post_init__(self) -> None:
        self.owner = self.owner or worker_owner()
        settings = self.service.settings
        self._lease = timedelta(seconds=settings.transcribe_lease_s)
        self._slots = asyncio.Semaphore(self.workers)
        self._pool: ProcessPoolExecutor | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Spawned, not forked: this process has threads (the driver's, asyncio's) and a
            # fork would copy their locks in whatever state they are.
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=exit_with_parent,
                initargs=(os.getpid(),),
            )
        return self._pool

    async def run(self, stop: asyncio.Event) -> None:
        """Claim jobs until `stop`: at once when woken (a job queued here), else every
        SNIPIX_TRANSCRIBE_POLL_S (jobs queued elsewhere, leases that expired)."""
        poll = self.service.settings.transcribe_poll_s
        try:
            while not stop.is_set():
                try:
                    await self.run_available(stop)
                except Exception:
                    log.exception("transcription claim failed")
                wake = self.service.wake
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(poll):
                        waiters = [
                            asyncio.ensure_future(stop.wait()),
                            asyncio.ensure_future(wake.wait()),
                        ]
                        try:
                            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                        finally:
                            for waiter in waiters:
                                waiter.cancel()
                wake.clear()
        finally:
            await self.close()

    async def run_available(self, stop: asyncio.Event | None = None) -> int:
        """Start every job that can be claimed while a slot is free; how many started."""
        started = 0
        while stop is None or not stop.is_set():
            if self._slots.locked():
                return started
            await self._slots.acquire()
            now = self.service.clock()
            try:
                job = await self.service.jobs.claim(self.owner, now, now + self._lease)
            except BaseException:
                self._slots.release()
                raise
            if job is None:
                self._slots.release()
                return started
            task = asyncio.create_task(self._run_job(job), name=f"transcribe-{job['_id']}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def drain(self) -> None:
        """Wait for the jobs this runner started (tests, `snipix` one-shot runs)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def _run_job(self, job: Document) -> None:
        job_id, project_id = job["_id"], job["projectId"]
        service = self.service
        jobs = service.jobs
        actor = Actor(user_id=job["userId"], request_id=f"job:{job_id}")
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(job_id, lost))
        workdir = tempfile.TemporaryDirectory(
            prefix="snipix-transcribe-", ignore_cleanup_errors=True
        )
        log.info(
            "transcription started",
            project_id=project_id,
            job_id=job_id,
            attempt=job.get("attempts"),
        )
        try:
            started = time.perf_counter()
            attempts = job.get("attempts", 1)
            if attempts > service.settings.transcribe_max_attempts:
                # Taken over again and again: its workers keep dying on it (out of memory?).
                await jobs.finish(
                    job_id,
                    self.owner,
                    service.clock(),
                    state=FAILED,
                    error=f"Given up after {attempts - 1} attempts whose workers stopped "
                    "before finishing it.",
                )
                return
            source = await service.source_with_audio(actor, project_id)
            ffmpeg = service.media.ffmpeg
            if ffmpeg is None:
                raise NotImplementedHere("ffmpeg is not installed on this server.")
            wav = Path(workdir.name) / "audio.wav"
            duration = await extract_audio(
                ffmpeg, source, wav, timeout_s=service.media.job_timeout_s
            )
            await self._progress(job_id, _EXTRACTED, lost)
            bounds = await asyncio.to_thread(
                chunk_bounds, wav, duration, service.settings.transcribe_chunk_s
            )
            words: list[RecognisedWord] = []
            language = job.get("language") or service.transcriber.language
            for index, (start, end) in enumerate(bounds):
                words += await service.transcriber.recognise(
                    wav, start, end, language=language, pool=self._executor
                )
                done = _EXTRACTED + (_RECOGNISED - _EXTRACTED) * (index + 1) / len(bounds)
                await self._progress(job_id, done, lost)
            upload = transcript_upload(
                words,
                language=language,
                duration=duration,
                model=service.transcriber.name,
                processing_time_sec=time.perf_counter() - started,
            )
            # The last moment to notice a cancel or a takeover before anything is written.
            await self._progress(job_id, _RECOGNISED, lost)
            header = await service.transcripts.upload(actor, project_id, upload, expected=None)
            result = {
                "transcriptVersion": header.version,
                "wordCount": header.word_count,
                "segmentCount": header.segment_count,
                "durationSec": round(duration, 3),
            }
            await jobs.finish(job_id, self.owner, service.clock(), state=DONE, result=result)
            log.info("transcription done", project_id=project_id, job_id=job_id, words=len(words))
        except JobLost:
            log.info("transcription stopped: the job is no longer this worker's", job_id=job_id)
        except NotFound:
            await jobs.finish(
                job_id,
                self.owner,
                service.clock(),
                state=FAILED,
                error="The project was deleted (or is no longer this user's) before its "
                "transcript was saved; nothing was written.",
            )
        except (Conflict, ValidationFailed, NotImplementedHere, TranscriptionRefused) as error:
            # The project lost its video or sound meanwhile, or the transcription service
            # refused the request (its key, the audio): no attempt will do better.
            await jobs.finish(
                job_id, self.owner, service.clock(), state=FAILED, error=error.message
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("transcription failed", job_id=job_id)
            reason = error.message if isinstance(error, SnipixError) else type(error).__name__
            if job.get("attempts", 1) >= service.settings.transcribe_max_attempts:
                await jobs.finish(
                    job_id,
                    self.owner,
                    service.clock(),
                    state=FAILED,
                    error=f"Transcription failed after {job.get('attempts')} attempt(s): {reason}",
                )
            else:
                await jobs.requeue(job_id, self.owner, service.clock(), error=reason)
                service.wake.set()
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            try:
                await asyncio.to_thread(workdir.cleanup)
            except asyncio.CancelledError:
                # Stopping: a thread not started yet never runs, and the directory would
                # be left to the garbage collector (with a ResourceWarning). It goes now.
                workdir.cleanup()
                raise
            finally:
                self._slots.release()

    async def _progress(self, job_id: str, progress: float, lost: asyncio.Event) -> None:
        now = self.service.clock()
        renewed = await self.service.jobs.renew(
            job_id, self.owner, now, now + self._lease, progress=progress
        )
        if lost.is_set() or not renewed:
            raise JobLost(job_id)

    async def _heartbeat(self, job_id: str, lost: asyncio.Event) -> None:
        """Renew the lease a few times per lease period while a chunk is decoded."""
        interval = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            now = self.service.clock()
            try:
                renewed = await self.service.jobs.renew(job_id, self.owner, now, now + self._lease)
            except (PyMongoError, SnipixError):
                # The next beat tries again; a lease that runs out meanwhile goes to
                # another runner, and this one notices at its next progress write.
                log.warning("transcription heartbeat failed", job_id=job_id)
                continue
            if not renewed:
                lost.set()
                return


def transcription_runner(service: TranscriptionService) -> JobRunner | None:
    """This process's runner; None when SNIPIX_TRANSCRIBE_WORKERS is 0."""
    workers = service.settings.transcribe_workers
    return JobRunner(service, workers) if workers > 0 else None
