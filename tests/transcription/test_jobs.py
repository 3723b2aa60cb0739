"""Transcription jobs end to end: real ffmpeg, real pocketsphinx in worker processes, the
real engine over the wire, and the web app's two calls in its shapes.

The speech is transcribed once for the module's main test (a few seconds of CPU); the
other tests check what happens around a job without recognising anything, except the
takeover test, which kills a real worker process mid-job.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from snipix.app import create_app
from snipix.observability.logging import configure_logging
from snipix.settings import Settings
from tests.media.conftest import probe
from tests.media.test_endpoints import assert_envelope_error, create_project, upload, who
from tests.support import pid_alive, running_app, until
from tests.transcription.conftest import Speech, word_error_rate

Json = dict[str, Any]
# ffmpeg, ffprobe, the recogniser's worker processes, a `snipix transcribe worker`.
pytestmark = pytest.mark.process
# Measured on the two LibriVox sentences: 0.29 ("an ill disposed" heard as "until
# exposed", "amiable" as "a real blow"). The bound leaves room for a model update, not for
# a recogniser that hears something else.
WER_BOUND = 0.5


def database_client(settings: Settings) -> MongoClient[dict[str, Any]]:
    assert settings.mongodb_uri is not None
    return MongoClient(settings.mongodb_uri.get_secret_value())


def with_jobs(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update=changes)


async def uploaded(client: httpx.AsyncClient, video: bytes) -> str:
    project_id = await create_project(client)
    response = await upload(client, project_id, video)
    assert response.status_code == 200, response.text
    return project_id


def transcribe_form(project_id: str) -> dict[str, Any]:
    return {"data": {"project_id": project_id}, "headers": who()}


async def job_of(client: httpx.AsyncClient, location: str) -> Json:
    response = await client.get(location, headers=who())
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def test_web_app_transcribes_then_removes_fillers_as_one_undoable_cut(
    settings: Settings, speech: Speech
) -> None:
    # One chunk: the measured WER is the recogniser's (the takeover test uses 1 s chunks).
    app = create_app(with_jobs(settings, transcribe_poll_s=0.5))
    async with running_app(app) as client:
        project_id = await uploaded(client, speech.video.read_bytes())

        response = await client.post("/media/transcribe", **transcribe_form(project_id))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True
        data = body["data"]
        assert abs(data["duration"] - speech.duration) < 0.01
        words = data["transcript"]
        assert words, "no words recognised"
        for word in words:
            assert set(word) == {"text", "start", "end", "confidence", "isFiller"}
            assert 0 <= word["start"] <= word["end"] <= speech.duration + 1e-6
            assert 0 <= word["confidence"] <= 1
        spoken = [w["text"].lower() for w in words if not w["isFiller"]]
        wer = word_error_rate(speech.reference, spoken)
        assert wer <= WER_BOUND, (wer, spoken)
        low, high = speech.filler_window
        fillers = [w for w in words if w["isFiller"]]
        assert any(w["start"] < high and w["end"] > low for w in fillers), (fillers, low, high)

        # The transcript is stored as version 1, bucketed as any upload.
        header = await client.get(f"/api/v1/projects/{project_id}/transcript", headers=who())
        assert header.status_code == 200, header.text
        assert header.json()["version"] == 1
        assert header.json()["metadata"]["model"] == "pocketsphinx"

        # Every detected filler cut at once: one timeline revision, an exact render.
        response = await client.post(
            "/media/remove-fillers",
            json={"project_id": project_id, "auto_detect": True},
            headers=who(),
        )
        assert response.status_code == 200, response.text
        answer = response.json()["data"]
        assert answer["processedVideoPath"] == f"/media/{project_id}/video/trimmed"
        removed = answer["removedSegments"]
        assert removed
        assert all(set(r) == {"start", "end", "text"} for r in removed)
        assert any(r["start"] < high and r["end"] > low for r in removed)
        cut = sum(r["end"] - r["start"] for r in removed)
        timeline = await client.get(f"/api/v1/projects/{project_id}/timeline", headers=who())
        state = timeline.json()
        cuts = [s for s in state["state"]["segments"] if s["kind"] == "cut"]
        assert [(c["start"], c["end"]) for c in cuts] == [(r["start"], r["end"]) for r in removed]
        assert state["version"] == 1
        assert state["canUndo"] is True
        rendered = await client.get(answer["processedVideoPath"], headers=who())
        assert rendered.status_code == 200
        trimmed = speech.video.parent / f"{project_id}-trimmed.mp4"
        trimmed.write_bytes(rendered.content)
        assert abs(probe(trimmed)[0] - (speech.duration - cut)) < 0.15

        # Undo restores the timeline as it was.
        undo = await client.post(
            f"/api/v1/projects/{project_id}/timeline/undo",
            headers=who(**{"If-Match": timeline.headers["ETag"]}),
        )
        assert undo.status_code == 200, undo.text
        assert undo.json()["state"]["segments"] == []

        # The web app's selection: its `<start>-<end>` ids.
        first = words[0]
        response = await client.post(
            "/media/remove-fillers",
            json={"project_id": project_id, "selectedWords": [f"{first['start']}-{first['end']}"]},
            headers=who(),
        )
        assert response.status_code == 200, response.text
        assert [r["text"] for r in response.json()["data"]["removedSegments"]] == [first["text"]]

        # A word the transcript does not have: 422, nothing cut.
        before = await client.get(f"/api/v1/projects/{project_id}/timeline", headers=who())
        response = await client.post(
            "/media/remove-fillers",
            json={"project_id": project_id, "selectedWords": ["999.5-999.9"]},
            headers=who(),
        )
        assert response.status_code == 422, response.text
        after = await client.get(f"/api/v1/projects/{project_id}/timeline", headers=who())
        assert after.json()["version"] == before.json()["version"]


async def test_a_job_needs_a_video_with_sound_and_one_at_a_time(
    settings: Settings, speech: Speech
) -> None:
    # No runner in this app: jobs stay queued, so the conflicts are deterministic.
    app = create_app(with_jobs(settings, transcribe_workers=0, transcribe_wait_s=0))
    async with running_app(app) as client:
        ready = (await client.get("/health/ready")).json()
        assert ready["components"]["transcriber"] == {
            "status": "disabled",
            "engine": "pocketsphinx",
            "language": "en-US",
            "workers": 0,
        }
        assert settings.describe()["SNIPIX_TRANSCRIBER"] == "pocketsphinx"  # `snipix config`
        bare = await create_project(client)
        response = await client.post(f"/api/v1/projects/{bare}/transcript/jobs", headers=who())
        assert response.status_code == 409, response.text
        assert "upload" in response.json()["error"]["message"]

        silent = await uploaded(client, speech.silent.read_bytes())
        response = await client.post(f"/api/v1/projects/{silent}/transcript/jobs", headers=who())
        assert response.status_code == 422, response.text
        assert "no audio" in response.json()["error"]["message"]

        project_id = await uploaded(client, speech.video.read_bytes())
        first = await client.post(f"/api/v1/projects/{project_id}/transcript/jobs", headers=who())
        assert first.status_code == 202, first.text
        location = first.headers["Location"]
        job = await job_of(client, location)
        assert job["state"] == "queued"
        assert job["progress"] == 0
        assert job["engine"] == "pocketsphinx"
        second = await client.post(f"/api/v1/projects/{project_id}/transcript/jobs", headers=who())
        assert second.status_code == 409, second.text
        assert job["id"] in second.json()["error"]["message"]

        # Another user sees no such job.
        other = await client.get(location, headers=who("mallory"))
        assert other.status_code == 404

        # Cancelled: it ends, and a new job may start.
        cancelled = await client.delete(location, headers=who())
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["state"] == "cancelled"
        again = await client.delete(location, headers=who())
        assert again.status_code == 409
        third = await client.post(f"/api/v1/projects/{project_id}/transcript/jobs", headers=who())
        assert third.status_code == 202, third.text

        # The web app's synchronous call joins the running job; past its wait, it says
        # where to poll (the job goes on).
        pending = await client.post("/media/transcribe", **transcribe_form(project_id))
        body = assert_envelope_error(pending, 503, "transcription_pending")
        assert pending.headers["Location"] == third.headers["Location"]
        assert third.headers["Location"] in body["error"]
        assert (await job_of(client, third.headers["Location"]))["state"] == "queued"


async def test_a_job_for_a_project_deleted_meanwhile_fails_writing_nothing(
    settings: Settings, speech: Speech
) -> None:
    async with running_app(create_app(with_jobs(settings, transcribe_workers=0))) as client:
        project_id = await uploaded(client, speech.video.read_bytes())
        started = await client.post(f"/api/v1/projects/{project_id}/transcript/jobs", headers=who())
        assert started.status_code == 202, started.text
        deleted = await client.delete(f"/api/v1/projects/{project_id}", headers=who())
        assert deleted.status_code in {200, 204}, deleted.text
    # A runner comes up (another replica) and takes the job.
    async with running_app(create_app(with_jobs(settings, transcribe_poll_s=0.2))) as client:
        with database_client(settings) as mongo:
            jobs = mongo[settings.database_name]["jobs"]

            def ended() -> bool:
                job = jobs.find_one({"projectId": project_id})
                return job is not None and job["state"] not in {"queued", "running"}

            await until(ended, what="the job to end", deadline_s=60)
            job = jobs.find_one({"projectId": project_id})
            assert job is not None
            assert job["state"] == "failed"
            assert "deleted" in job["error"]
            transcripts = mongo[settings.database_name]["transcript_segments"]
            assert transcripts.count_documents({"projectId": project_id}) == 0


def children(pid: int) -> list[int]:
    """The processes `pid` started that still run."""
    listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in listed]


async def test_a_worker_killed_mid_job_loses_it_to_another_which_finishes_it_once(
    settings: Settings, speech: Speech
) -> None:
    lease = 2
    async with running_app(create_app(with_jobs(settings, transcribe_workers=0))) as client:
        project_id = await uploaded(client, speech.video.read_bytes())
        started = await client.post(f"/api/v1/projects/{project_id}/transcript/jobs", headers=who())
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
    environment = {
        **os.environ,
        "MONGODB_URI": settings.mongodb_uri.get_secret_value(),  # type: ignore[union-attr]
        "MONGODB_DATABASE": settings.database_name,
        "SNIPIX_DATA_DIR": str(settings.data_dir),
        "SNIPIX_TRANSCRIBE_LEASE_S": str(lease),
        "SNIPIX_TRANSCRIBE_CHUNK_S": "1",
        "SNIPIX_TRANSCRIBE_POLL_S": "0.2",
    }
    worker = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "snipix", "transcribe", "worker"),
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    with database_client(settings) as mongo:
        jobs = mongo[settings.database_name]["jobs"]
        try:
            # Past the extraction (5 %) and at least one 1 s chunk recognised by the
            # worker's own recogniser process.
            def recognising() -> bool:
                job = jobs.find_one({"projectId": project_id})
                return job is not None and job["state"] == "running" and job["progress"] > 0.1

            await until(recognising, what="the worker to be recognising", deadline_s=60)
            # Its recogniser process (and the pool's resource tracker).
            pool = children(worker.pid)
            assert pool, "the worker runs its recogniser in a process of its own"
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
            # Killed outright, the worker could not stop its pool: the pool ends itself.
            await until(
                lambda: not any(pid_alive(pid) for pid in pool),
                what="the killed worker's recogniser processes to exit",
                deadline_s=15,
            )
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        killed = jobs.find_one({"projectId": project_id})
        assert killed is not None
        assert killed["state"] == "running", killed
        assert killed["attempts"] == 1

        app = create_app(with_jobs(settings, transcribe_poll_s=0.2, transcribe_lease_s=lease))
        async with running_app(app) as client:

            async def done() -> bool:
                return (await job_of(client, location))["state"] not in {"queued", "running"}

            await until(done, what="the job to be taken over and finish", deadline_s=90)
            job = await job_of(client, location)
            assert job["state"] == "done", job
            assert job["attempts"] == 2
            assert job["progress"] == 1
            header = await client.get(f"/api/v1/projects/{project_id}/transcript", headers=who())
            assert header.status_code == 200
            # Written once: the first worker wrote nothing before it died.
            assert header.json()["version"] == 1
            assert job["result"]["transcriptVersion"] == 1


async def test_a_running_job_cancelled_stops_at_its_next_chunk_writing_nothing(
    settings: Settings, speech: Speech, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(settings)
    # 1 s chunks: the job is cancelled while it is recognising, several chunks before its end.
    app = create_app(with_jobs(settings, transcribe_chunk_s=1, transcribe_poll_s=0.2))
    async with running_app(app) as client:
        project_id = await uploaded(client, speech.video.read_bytes())
        started = await client.post(f"/api/v1/projects/{project_id}/transcript/jobs", headers=who())
        assert started.status_code == 202, started.text
        location = started.headers["Location"]

        async def recognising() -> bool:
            job = await job_of(client, location)
            return bool(job["state"] == "running" and job["progress"] > 0.1)

        await until(recognising, what="the job to recognise its first chunk", deadline_s=60)
        cancelled = await client.delete(location, headers=who())
        assert cancelled.status_code == 200, cancelled.text
        at_cancel = cancelled.json()["progress"]
        assert at_cancel < 0.95, "the job had recognised everything before the cancel"

        logged: list[str] = []

        def stopped() -> bool:
            logged.append(capsys.readouterr().err)
            return "the job is no longer this worker's" in "".join(logged)

        await until(stopped, what="the worker to stop at its next chunk", deadline_s=60)
        job = await job_of(client, location)
        assert job["state"] == "cancelled", job
        assert job["progress"] == at_cancel  # nothing recorded after the cancel
        assert job["result"] is None
        transcript = await client.get(f"/api/v1/projects/{project_id}/transcript", headers=who())
        assert transcript.status_code == 404, transcript.text
    with database_client(settings) as mongo:
        stored = mongo[settings.database_name]["transcript_segments"]
        assert stored.count_documents({"projectId": project_id}) == 0
