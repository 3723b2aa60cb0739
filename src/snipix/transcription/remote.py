"""An OpenAI-compatible transcription service as an engine (`SNIPIX_TRANSCRIBER=openai`).

Each chunk of the extracted 16 kHz mono audio is POSTed as a WAV file to
`{SNIPIX_TRANSCRIBE_URL}/audio/transcriptions` (multipart: `file`, `model`,
`response_format=verbose_json`, `timestamp_granularities[]=word` and `segment`, and
`language` when the job knows it). The answer's `words[]` ({word, start, end}, chunk
times) become the media's words. OpenAI gives no per-word confidence: a word takes its
own `probability` when the service sends one (faster-whisper based servers do), else
exp(avg_logprob) of the segment it falls in, else 0 (unknown).

The work is I/O, not CPU, so it runs on the event loop (the WAV chunk is read in a
thread) and needs no worker process. Failures:

- 429, 5xx, a timeout or a connection error: retried here with exponential backoff (the
  service's Retry-After when it sends one, up to a bound), then `TranscriptionUnavailable`,
  which the job runner treats like any transient failure (the job is tried again later);
- any other 4xx: `TranscriptionRefused` at once (401/403: the service refused the key),
  which fails the job: no attempt will do better.

The key is sent only in the Authorization header. It is never put in an error or a log
line, and any text the service sends back is scrubbed of it before it is shown.
"""

from __future__ import annotations

import asyncio
import io
import math
import random
import wave
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Final

import httpx
import structlog

from snipix.clock import utc_now
from snipix.errors import SnipixError
from snipix.settings import Settings
from snipix.transcription.engines import (
    SAMPLE_BYTES,
    SAMPLE_RATE,
    PoolFactory,
    RecognisedWord,
    read_samples,
)

log = structlog.get_logger(__name__)

# Attempts per chunk (the first and the retries) before the job runner's own retry.
ATTEMPTS: Final = 4
BACKOFF_BASE_S: Final = 0.5
BACKOFF_MAX_S: Final = 8.0
# A Retry-After longer than this is cut to it: the lease and the web app's wait are short.
RETRY_AFTER_MAX_S: Final = 30.0
_RETRIED_STATUS: Final = frozenset({408, 409, 429})
_SHOWN_TEXT: Final = 300

Sleep = Callable[[float], Awaitable[None]]


class TranscriptionRefused(SnipixError):
    """The service refused the request (key, model, audio): the job fails."""

    code = "transcription_refused"
    status_code = 502


class TranscriptionUnavailable(SnipixError):
    """The service could not be reached or kept failing: the job is tried again."""

    code = "transcription_unavailable"
    status_code = 503


class HttpTranscriber:
    """The engine behind `SNIPIX_TRANSCRIBER=openai`."""

    name = "openai"
    # The service detects the language unless the job names one.
    language = "und"

    def __init__(
        self,
        url: str,
        *,
        model: str,
        api_key: str | None,
        timeout_s: float,
        sleep: Sleep = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/audio/transcriptions"
        self.model = model
        self._key = api_key or None
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        self._sleep = sleep
        self._transport = transport

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpTranscriber:
        if settings.transcribe_url is None:
            raise ValueError("SNIPIX_TRANSCRIBE_URL is required for SNIPIX_TRANSCRIBER=openai")
        key = settings.transcribe_api_key
        return cls(
            settings.transcribe_url,
            model=settings.transcribe_model,
            api_key=key.get_secret_value() if key is not None else None,
            timeout_s=settings.transcribe_timeout_s,
        )

    def describe(self) -> dict[str, str]:
        return {"endpoint": self.endpoint, "model": self.model}

    async def recognise(
        self, wav: Path, start: float, end: float, *, language: str, pool: PoolFactory
    ) -> list[RecognisedWord]:
        audio = await asyncio.to_thread(_wav_chunk, wav, start, end)
        if audio is None:
            return []
        form: dict[str, Any] = {
            "model": self.model,
            "response_format": "verbose_json",
            "timestamp_granularities[]": ["word", "segment"],
        }
        primary = language.split("-", 1)[0].casefold()
        if primary and primary != "und":
            form["language"] = primary
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        async with httpx.AsyncClient(
            timeout=self._timeout, transport=self._transport, follow_redirects=False
        ) as client:
            body = await self._post(client, form, audio, headers)
        return words_of(body, offset=start, end=end)

    async def _post(
        self,
        client: httpx.AsyncClient,
        form: dict[str, Any],
        audio: bytes,
        headers: dict[str, str],
    ) -> dict[str, Any]:
        reason = ""
        for attempt in range(1, ATTEMPTS + 1):
            wait: float | None = None
            try:
                response = await client.post(
                    self.endpoint,
                    data=form,
                    files={"file": ("audio.wav", audio, "audio/wav")},
                    headers=headers,
                )
            except httpx.TransportError as error:
                # Connection refused or reset, a timeout: the request may be repeated.
                reason = f"{type(error).__name__} talking to the transcription service"
            else:
                status = response.status_code
                if status < 300:
                    return self._json(response)
                if status >= 500 or status in _RETRIED_STATUS:
                    reason = f"the transcription service answered HTTP {status}"
                    wait = retry_after(response.headers.get("Retry-After"))
                else:
                    raise self._refused(response)
            if attempt == ATTEMPTS:
                break
            if wait is None:
                ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
                wait = random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret
            log.warning(
                "transcription service retry",
                endpoint=self.endpoint,
                attempt=attempt,
                reason=reason,
                wait_s=round(wait, 3),
            )
            await self._sleep(wait)
        raise TranscriptionUnavailable(
            f"The transcription service failed {ATTEMPTS} times: {reason}."
        )

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as error:
            raise TranscriptionUnavailable(
                "The transcription service answered something other than JSON."
            ) from error
        if not isinstance(body, dict):
            raise TranscriptionUnavailable("The transcription service's answer is not an object.")
        return body

    def _refused(self, response: httpx.Response) -> TranscriptionRefused:
        status = response.status_code
        if status in {401, 403}:
            return TranscriptionRefused(
                f"The transcription service refused the key (HTTP {status}): check "
                "SNIPIX_TRANSCRIBE_API_KEY."
            )
        text = _service_message(response)
        if self._key:
            text = text.replace(self._key, "****")
        return TranscriptionRefused(
            f"The transcription service rejected the request (HTTP {status})"
            + (f": {text}" if text else ".")
        )


def _service_message(response: httpx.Response) -> str:
    """The service's own explanation: OpenAI's `{"error": {"message"}}`, else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:_SHOWN_TEXT]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:_SHOWN_TEXT]
        if isinstance(error, str):
            return error[:_SHOWN_TEXT]
    return response.text.strip()[:_SHOWN_TEXT]


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), bounded; None if absent
    or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - utc_now()).total_seconds()
    if math.isnan(seconds):
        return None
    return min(RETRY_AFTER_MAX_S, max(0.0, seconds))


def _wav_chunk(wav: Path, start: float, end: float) -> bytes | None:
    """[start, end) of the extracted audio as a WAV file of its own, or None if empty."""
    samples = read_samples(wav, start, end)
    if not samples:
        return None
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(SAMPLE_BYTES)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(samples)
    return buffer.getvalue()


def words_of(body: dict[str, Any], *, offset: float, end: float) -> list[RecognisedWord]:
    """The `verbose_json` answer's words, in media time (chunk time + `offset`)."""
    segments = [
        (float(s["start"]), float(s["end"]), float(s["avg_logprob"]))
        for s in body.get("segments") or []
        if isinstance(s, dict) and _numbers(s, "start", "end", "avg_logprob")
    ]
    words: list[RecognisedWord] = []
    for item in body.get("words") or []:
        if not isinstance(item, dict) or not _numbers(item, "start", "end"):
            continue
        text = str(item.get("word", "")).strip()
        if not text:
            continue
        start, stop = float(item["start"]), float(item["end"])
        probability = item.get("probability")
        if isinstance(probability, int | float):
            confidence = float(probability)
        else:
            middle = (start + stop) / 2
            confidence = next(
                (math.exp(logprob) for low, high, logprob in segments if low <= middle <= high),
                0.0,
            )
        first = min(end, offset + max(0.0, start))
        words.append(
            RecognisedWord(
                text=text,
                start=round(first, 3),
                end=round(max(first, min(end, offset + stop)), 3),
                confidence=round(min(1.0, max(0.0, confidence)), 4),
            )
        )
    return words


def _numbers(item: dict[str, Any], *keys: str) -> bool:
    return all(
        isinstance(item.get(key), int | float) and not isinstance(item.get(key), bool)
        for key in keys
    )
