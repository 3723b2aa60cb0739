"""The OpenAI-compatible HTTP engine against a real HTTP service in this process.

The service is a Starlette app served by uvicorn on a loopback port. It implements
`POST /v1/audio/transcriptions` as OpenAI documents it (multipart form, bearer key,
`verbose_json` with word timestamps) and recognises the uploaded audio with the project's
own pocketsphinx decoder, so the whole path is real: extraction, chunk upload, the
service's answer, the words mapped back to media time and stored as a transcript.
"""

from __future__ import annotations

import io
import json
import math
import socket
import tempfile
import threading
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from snipix.app import create_app
from snipix.observability.logging import configure_logging
from snipix.settings import Settings
from snipix.transcription.engines import recognise_chunk
from snipix.transcription.remote import retry_after
from tests.media.test_endpoints import who
from tests.support import running_app, until, wait_until
from tests.transcription.conftest import Speech, word_error_rate
from tests.transcription.test_jobs import (
    WER_BOUND,
    database_client,
    job_of,
    transcribe_form,
    uploaded,
)

pytestmark = pytest.mark.process
KEY = "sk-test-" + "k3y" * 12
WRONG_KEY = "sk-wrong-" + "x" * 30


@dataclass
class Heard:
    authorization: str | None
    fields: dict[str, list[str]]
    audio: bytes


@dataclass
class TranscriptionService:
    """What the fake service received, and the failures it answers before recognising."""

    url: str = ""
    requests: list[Heard] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)


def recognise(audio: bytes) -> dict[str, Any]:
    """OpenAI's verbose_json for the uploaded WAV, heard by pocketsphinx."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as handle:
        handle.write(audio)
        handle.flush()
        with wave.open(handle.name, "rb") as reader:
            duration = reader.getnframes() / reader.getframerate()
        words = recognise_chunk("pocketsphinx", handle.name, 0.0, duration)
    logprob = sum(math.log(max(w.confidence, 1e-6)) for w in words) / max(1, len(words))
    text = " ".join(w.text for w in words)
    return {
        "task": "transcribe",
        "language": "english",
        "duration": duration,
        "text": text,
        "words": [{"word": w.text, "start": w.start, "end": w.end} for w in words],
        "segments": [
            {"id": 0, "start": 0.0, "end": duration, "text": text, "avg_logprob": logprob}
        ],
    }


def service_app(state: TranscriptionService) -> Starlette:
    async def transcriptions(request: Request) -> JSONResponse:
        async with request.form() as form:
            upload = form["file"]
            assert isinstance(upload, UploadFile)
            heard = Heard(
                authorization=request.headers.get("authorization"),
                fields={key: [str(v) for v in form.getlist(key)] for key in form if key != "file"},
                audio=await upload.read(),
            )
        state.requests.append(heard)
        if heard.authorization != f"Bearer {KEY}":
            return JSONResponse(
                {"error": {"message": "Incorrect API key provided.", "code": "invalid_api_key"}},
                status_code=401,
            )
        if state.failures:
            status = state.failures.pop(0)
            return JSONResponse(
                {"error": {"message": "The server is overloaded."}},
                status_code=status,
                headers={"Retry-After": "0"},
            )
        return JSONResponse(await run_in_threadpool(recognise, heard.audio))

    return Starlette(routes=[Route("/v1/audio/transcriptions", transcriptions, methods=["POST"])])


@pytest.fixture(scope="module")
def transcription_service() -> Iterator[TranscriptionService]:
    state = TranscriptionService()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(service_app(state), log_config=None, lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout_s=30, what="the transcription service to start")
    state.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield state
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


def http_engine(settings: Settings, service: TranscriptionService, key: str) -> Settings:
    return settings.model_copy(
        update={
            "transcriber": "openai",
            "transcribe_url": service.url,
            "transcribe_api_key": SecretStr(key),
            "transcribe_poll_s": 0.2,
            "log_level": "DEBUG",
        }
    )


async def test_a_job_through_the_http_engine_is_retried_past_a_503_and_gives_the_words(
    settings: Settings,
    speech: Speech,
    transcription_service: TranscriptionService,
    capsys: pytest.CaptureFixture[str],
) -> None:
    configured = http_engine(settings, transcription_service, KEY)
    configure_logging(configured)
    # Overloaded once: the engine retries after the service's Retry-After, within the job.
    transcription_service.requests.clear()
    transcription_service.failures[:] = [503]
    async with running_app(create_app(configured)) as client:
        ready = (await client.get("/health/ready")).json()
        assert ready["components"]["transcriber"] == {
            "status": "ok",
            "engine": "openai",
            "language": "und",
            "workers": 1,
            "endpoint": f"{transcription_service.url}/audio/transcriptions",
            "model": "whisper-1",
        }
        shown = configured.describe()  # `snipix config`
        assert shown["SNIPIX_TRANSCRIBER"] == "openai"
        assert shown["SNIPIX_TRANSCRIBE_API_KEY"] == "****"

        project_id = await uploaded(client, speech.video.read_bytes())
        response = await client.post("/media/transcribe", **transcribe_form(project_id))
        assert response.status_code == 200, response.text
        words = response.json()["data"]["transcript"]
        spoken = [w["text"].lower() for w in words if not w["isFiller"]]
        wer = word_error_rate(speech.reference, spoken)
        assert wer <= WER_BOUND, (wer, spoken)
        for word in words:
            assert 0 <= word["start"] <= word["end"] <= speech.duration + 1e-6
            assert 0 < word["confidence"] <= 1
        header = await client.get(f"/api/v1/projects/{project_id}/transcript", headers=who())
        assert header.json()["metadata"]["model"] == "openai"
    assert [r.authorization for r in transcription_service.requests] == [f"Bearer {KEY}"] * 2
    fields = transcription_service.requests[-1].fields
    assert fields == {
        "model": ["whisper-1"],
        "response_format": ["verbose_json"],
        "timestamp_granularities[]": ["word", "segment"],
    }
    with wave.open(io.BytesIO(transcription_service.requests[-1].audio), "rb") as reader:
        assert (reader.getframerate(), reader.getnchannels()) == (16_000, 1)
        assert abs(reader.getnframes() / 16_000 - speech.duration) < 0.1
    with database_client(settings) as mongo:
        job = mongo[settings.database_name]["jobs"].find_one({"projectId": project_id})
    assert job is not None
    assert (job["state"], job["attempts"]) == ("done", 1)  # retried within the attempt
    output = capsys.readouterr().err
    retries = [
        json.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and "transcription service retry" in line
    ]
    assert [line["reason"] for line in retries] == ["the transcription service answered HTTP 503"]
    assert KEY not in output
    assert KEY not in response.text


async def test_a_refused_key_fails_the_job_clearly_writing_nothing(
    settings: Settings,
    speech: Speech,
    transcription_service: TranscriptionService,
    capsys: pytest.CaptureFixture[str],
) -> None:
    configured = http_engine(settings, transcription_service, WRONG_KEY)
    configure_logging(configured)
    transcription_service.requests.clear()
    transcription_service.failures.clear()
    async with running_app(create_app(configured)) as client:
        project_id = await uploaded(client, speech.video.read_bytes())
        started = await client.post(f"/api/v1/projects/{project_id}/transcript/jobs", headers=who())
        assert started.status_code == 202, started.text
        location = started.headers["Location"]

        async def ended() -> bool:
            return (await job_of(client, location))["state"] not in {"queued", "running"}

        await until(ended, what="the job to end", deadline_s=60)
        job = await job_of(client, location)
        assert job["state"] == "failed", job
        assert "refused the key" in job["error"], job
        assert job["attempts"] == 1  # not retried: no attempt would do better
        transcript = await client.get(f"/api/v1/projects/{project_id}/transcript", headers=who())
        assert transcript.status_code == 404, transcript.text
        web_app = await client.post("/media/transcribe", **transcribe_form(project_id))
    # One request: a 401 is not retried.
    assert [r.authorization for r in transcription_service.requests][:1] == [f"Bearer {WRONG_KEY}"]
    with database_client(settings) as mongo:
        stored = mongo[settings.database_name]["transcript_segments"]
        assert stored.count_documents({"projectId": project_id}) == 0
    output = capsys.readouterr().err
    for text in (output, json.dumps(job), web_app.text):
        assert WRONG_KEY not in text


def test_retry_after_is_read_in_seconds_or_as_a_date_and_bounded() -> None:
    assert retry_after(None) is None
    assert retry_after("2") == 2.0
    assert retry_after("100000") == 30.0
    assert retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_the_http_engine_needs_an_http_url() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="SNIPIX_TRANSCRIBE_URL"):
        Settings(transcriber="openai")
    with pytest.raises(ValidationError, match="not in the URL"):
        Settings(transcriber="openai", transcribe_url=f"https://user:{KEY}@api.example/v1")
    ok = Settings(
        transcriber="openai", transcribe_url="https://api.example/v1", transcribe_api_key=KEY
    )
    assert KEY in ok.secret_values()
    assert KEY not in json.dumps(ok.describe())
