"""The transcript through HTTP: whole uploads stored in bounded buckets, window reads that
touch only the buckets they need, versioned edits, split/merge, search, cuts into the
timeline, and who may see what — what the editor's transcript panel relies on."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import MongoClient
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from snipix.app import create_app
from snipix.settings import Settings
from tests.support import running_app

OWNER = {"X-User-Id": "transcriber-1"}
INTRUDER = {"X-User-Id": "intruder-2"}
ADMIN = {"X-User-Id": "ops", "X-User-Roles": "admin"}
SPEAKERS: list[dict[str, str]] = [
    {"id": "host", "label": "Host"},
    {"id": "guest", "label": "Guest"},
    {"id": "caller", "label": "Caller"},
]
SPOKEN = (
    "so we started the project back in march and honestly nobody knew what the footage "
    "would look like after the first edit because the camera kept drifting out of focus "
    "every time the light changed near the window I think that is why we reshot the whole "
    "interview twice and then the audio was great but the picture was not quite there yet "
    "you know what I mean right yeah absolutely and the colourist spent three days on it"
)
VOCABULARY = tuple(SPOKEN.split())
BUCKETS = "transcript_segments"
HEADERS = "transcripts"


# --- transcripts a speech-to-text service could have produced ---------------------------


def make_transcript(words: int, *, seed: int = 1, offset: float = 0.0) -> dict[str, Any]:
    """`words` words in segments of ~25 (12-38), three speakers taking turns, word times
    increasing with small gaps and a pause between segments, confidences, no ids."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    segments: list[dict[str, Any]] = []
    clock = offset + rng.uniform(0.2, 1.0)
    speaker = "host"
    left = words
    while left > 0:
        count = min(left, rng.randint(12, 38))
        left -= count
        if rng.random() < 0.4:
            speaker = rng.choice([s["id"] for s in SPEAKERS if s["id"] != speaker])
        segment_words: list[dict[str, Any]] = []
        for _ in range(count):
            start = round(clock, 3)
            end = round(clock + rng.uniform(0.12, 0.55), 3)
            word: dict[str, Any] = {
                "text": rng.choice(VOCABULARY),
                "start": start,
                "end": end,
                "confidence": round(rng.uniform(0.55, 1.0), 3),
            }
            if rng.random() < 0.1:
                word["speaker"] = speaker
            segment_words.append(word)
            clock = end + rng.uniform(0.01, 0.12)
        segment: dict[str, Any] = {
            "start": segment_words[0]["start"],
            "end": segment_words[-1]["end"],
            "speaker": speaker,
            "words": segment_words,
        }
        if rng.random() < 0.05:  # a human-corrected line keeps its own text
            segment["text"] = " ".join(w["text"] for w in segment_words).capitalize() + "."
        segments.append(segment)
        clock += rng.uniform(0.3, 1.8)
    return {"language": "en-GB", "speakers": SPEAKERS, "segments": segments}


def stored(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """What the server should give back for `payload`: ids `s000000`... when absent, the
    text defaulting to the words, every optional field present."""
    result = []
    for index, segment in enumerate(payload["segments"]):
        words = [
            {
                "text": w["text"],
                "start": w["start"],
                "end": w["end"],
                "speaker": w.get("speaker"),
                "confidence": w.get("confidence"),
            }
            for w in segment["words"]
        ]
        result.append(
            {
                "id": segment.get("id", f"s{index:06d}"),
                "start": segment["start"],
                "end": segment["end"],
                "speaker": segment.get("speaker"),
                "text": segment.get("text", " ".join(w["text"] for w in segment["words"])),
                "words": words,
            }
        )
    return result


def last_end(payload: dict[str, Any]) -> float:
    return float(payload["segments"][-1]["end"])


def word_total(payload: dict[str, Any]) -> int:
    return sum(len(segment["words"]) for segment in payload["segments"])


# --- HTTP helpers ----------------------------------------------------------------------


async def new_project(
    client: httpx.AsyncClient, *, duration: float, headers: dict[str, str] = OWNER
) -> str:
    created = await client.post(
        "/api/v1/projects",
        json={
            "name": "Interview",
            "media": {"source": "media/interview.mp4", "durationSec": duration},
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def transcript_path(project_id: str) -> str:
    return f"/api/v1/projects/{project_id}/transcript"


def if_match(version: int, headers: dict[str, str] = OWNER) -> dict[str, str]:
    return {**headers, "If-Match": f'"{version}"'}


async def upload(
    client: httpx.AsyncClient,
    project_id: str,
    payload: dict[str, Any],
    *,
    version: int | None = None,
    headers: dict[str, str] = OWNER,
) -> httpx.Response:
    sent = headers if version is None else if_match(version, headers)
    return await client.put(
        transcript_path(project_id),
        content=json.dumps(payload),
        headers={**sent, "Content-Type": "application/json"},
        timeout=120,
    )


async def project_with_transcript(
    client: httpx.AsyncClient, payload: dict[str, Any], headers: dict[str, str] = OWNER
) -> str:
    project_id = await new_project(client, duration=last_end(payload) + 30, headers=headers)
    response = await upload(client, project_id, payload, headers=headers)
    assert response.status_code == 200, response.text
    return project_id


async def read_all(
    client: httpx.AsyncClient, project_id: str, headers: dict[str, str] = OWNER
) -> list[dict[str, Any]]:
    """Every segment, page by page (200 at a time)."""
    items: list[dict[str, Any]] = []
    params = {"limit": "200"}
    for _ in range(10_000):
        response = await client.get(
            f"{transcript_path(project_id)}/segments", params=params, headers=headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        if body["nextCursor"] is None:
            return items
        params = {"limit": "200", "cursor": body["nextCursor"]}
    raise AssertionError("paging did not end")


async def window(
    client: httpx.AsyncClient, project_id: str, start: float, end: float
) -> httpx.Response:
    return await client.get(
        f"{transcript_path(project_id)}/segments",
        params={"from": str(start), "to": str(end)},
        headers=OWNER,
    )


async def header(client: httpx.AsyncClient, project_id: str) -> dict[str, Any]:
    response = await client.get(transcript_path(project_id), headers=OWNER)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def overlapping(segments: list[dict[str, Any]], start: float, end: float) -> list[str]:
    return [s["id"] for s in segments if s["end"] > start and s["start"] < end]


# --- a command recorder on the app -----------------------------------------------------


class BucketReads(CommandListener):
    """Documents returned by `find`/`getMore` on `transcript_segments` while recording."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: set[int] = set()
        self.recording = False
        self.documents = 0
        self.commands = 0

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()
            self.documents = self.commands = 0

    def started(self, event: CommandStartedEvent) -> None:
        if not self.recording or event.command_name not in {"find", "getMore"}:
            return
        target = event.command.get(event.command_name)
        if event.command_name == "getMore":
            target = event.command.get("collection")
        if target == BUCKETS:
            with self._lock:
                self._pending.add(event.request_id)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        with self._lock:
            if event.request_id not in self._pending:
                return
            self._pending.discard(event.request_id)
            cursor = event.reply.get("cursor", {})
            batch = cursor.get("firstBatch", cursor.get("nextBatch", []))
            self.documents += len(batch)
            self.commands += 1

    def failed(self, event: CommandFailedEvent) -> None:
        with self._lock:
            self._pending.discard(event.request_id)


@pytest.fixture
def bucket_reads() -> BucketReads:
    return BucketReads()


@pytest.fixture
def app(settings: Settings, bucket_reads: BucketReads) -> FastAPI:
    return create_app(settings, command_listeners=[bucket_reads])


@pytest.fixture
async def small_buckets(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with buckets of at most 50 words."""
    small = settings.model_copy(update={"transcript_bucket_words": 50})
    async with running_app(create_app(small)) as http:
        yield http


# --- 1. a long transcript round trip ---------------------------------------------------


@pytest.mark.slow
async def test_a_50000_word_transcript_reads_back_exactly_as_uploaded(
    client: httpx.AsyncClient, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """A five-hour interview's 50,000 words upload in one request and read back, page by
    page, exactly as sent (ids s000000... assigned, texts, times, speakers, words)."""
    payload = make_transcript(50_000, seed=50)
    expected = stored(payload)
    project_id = await new_project(client, duration=last_end(payload) + 60)

    response = await upload(client, project_id, payload)

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"1"'
    body = response.json()
    assert body["wordCount"] == 50_000
    assert body["segmentCount"] == len(expected)
    assert body["version"] == 1
    assert body["durationSec"] == last_end(payload)
    assert body["speakers"] == SPEAKERS
    assert body["language"] == "en-GB"
    buckets = mongo[settings.database_name][BUCKETS].count_documents({"projectId": project_id})
    assert body["bucketCount"] == buckets >= 100
    got = await header(client, project_id)
    assert (got["wordCount"], got["segmentCount"]) == (50_000, len(expected))

    windowed: list[dict[str, Any]] = []
    step = 1_800.0
    for index in range(int(last_end(payload) // step) + 1):
        shown = await window(client, project_id, index * step, (index + 1) * step)
        assert shown.status_code == 200, shown.text
        for segment in shown.json()["items"]:
            if not windowed or segment != windowed[-1]:  # a line across two windows
                windowed.append(segment)
    assert windowed == expected

    segments = await read_all(client, project_id)

    assert [s["id"] for s in segments] == [s["id"] for s in expected]
    assert segments == expected


# --- 2. window reads touch only their buckets ------------------------------------------


@pytest.mark.parametrize("where", ["start", "middle", "end"])
async def test_a_minute_window_reads_at_most_three_buckets(
    client: httpx.AsyncClient, bucket_reads: BucketReads, where: str
) -> None:
    """Scrolling the transcript panel to any minute of a long interview fetches at most 3
    buckets and shows exactly the segments spoken in that minute."""
    payload = make_transcript(15_000, seed=60)
    expected = stored(payload)
    project_id = await project_with_transcript(client, payload)
    duration = last_end(payload)
    start = {"start": 0.0, "middle": duration / 2 + 0.0004, "end": duration - 59.9996}[where]
    end = start + 60

    bucket_reads.reset()
    bucket_reads.recording = True
    response = await window(client, project_id, start, end)
    bucket_reads.recording = False

    assert response.status_code == 200, response.text
    assert 1 <= int(response.headers["X-Buckets-Read"]) <= 3
    assert 1 <= bucket_reads.documents <= 3, bucket_reads.documents
    items = response.json()["items"]
    assert [s["id"] for s in items] == overlapping(expected, start, end)
    by_id = {s["id"]: s for s in expected}
    assert items == [by_id[s["id"]] for s in items]
    assert response.headers["ETag"] == '"1"'


# --- 3. edits, split and merge ---------------------------------------------------------


async def test_a_segment_edit_needs_the_current_version_and_shows_in_the_window(
    client: httpx.AsyncClient,
) -> None:
    """Correcting a line (text, speaker, words) with the current ETag is saved and bumps
    the version; a stale ETag gets 412, none gets 428, words outside the line's times get
    422, an unknown line 404 — and none of those change anything."""
    payload = make_transcript(1_500, seed=3)
    expected = stored(payload)
    project_id = await project_with_transcript(client, payload)
    target = expected[4]
    path = f"{transcript_path(project_id)}/segments/{target['id']}"
    span = (target["start"], target["end"])
    first, second = target["words"][0], target["words"][1]
    new_words = [
        {"text": "Honestly,", "start": first["start"], "end": first["end"], "confidence": 1.0},
        {"text": "nobody", "start": second["start"], "end": target["end"], "speaker": "guest"},
    ]
    edit = {"text": "Honestly, nobody.", "speaker": "guest", "words": new_words}

    response = await client.patch(path, json=edit, headers=if_match(1))

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    assert response.json()["version"] == 2
    assert response.json()["wordCount"] == 1_500 - len(target["words"]) + 2
    shown = (await window(client, project_id, *span)).json()
    changed = next(s for s in shown["items"] if s["id"] == target["id"])
    assert changed["text"] == "Honestly, nobody."
    assert changed["speaker"] == "guest"
    assert [(w["text"], w["start"], w["end"]) for w in changed["words"]] == [
        ("Honestly,", first["start"], first["end"]),
        ("nobody", second["start"], target["end"]),
    ]
    assert (changed["start"], changed["end"]) == span
    assert shown["version"] == 2
    after_edit = await read_all(client, project_id)

    stale = await client.patch(path, json={"text": "overwrite"}, headers=if_match(1))
    assert stale.status_code == 412, stale.text
    assert stale.json()["error"]["details"] == {"currentVersion": 2}

    missing = await client.patch(path, json={"text": "overwrite"}, headers=OWNER)
    assert missing.status_code == 428, missing.text

    unknown = await client.patch(
        f"{transcript_path(project_id)}/segments/s999999", json={"text": "x"}, headers=if_match(2)
    )
    assert unknown.status_code == 404, unknown.text
    assert (await header(client, project_id))["version"] == 2
    assert await read_all(client, project_id) == after_edit

    outside = [{"text": "late", "start": target["end"] + 5, "end": target["end"] + 6}]
    invalid = await client.patch(path, json={"words": outside}, headers=if_match(2))
    unchanged = await read_all(client, project_id)
    version = (await header(client, project_id))["version"]
    assert (invalid.status_code, version, unchanged == after_edit) == (422, 2, True), invalid.text


async def test_an_edit_cannot_name_a_speaker_the_transcript_does_not_have(
    client: httpx.AsyncClient,
) -> None:
    """Giving a line (or one of its words) a speaker that is not in the transcript's
    speaker list is refused with 422, as it is on upload; nothing changes."""
    payload = make_transcript(400, seed=6)
    project_id = await project_with_transcript(client, payload)
    target = stored(payload)[2]
    path = f"{transcript_path(project_id)}/segments/{target['id']}"
    words = [{**target["words"][0], "speaker": "narrator"}, *target["words"][1:]]

    line = await client.patch(path, json={"speaker": "narrator"}, headers=if_match(1))
    current = (await header(client, project_id))["version"]
    word = await client.patch(path, json={"words": words}, headers=if_match(current))

    assert (line.status_code, word.status_code) == (422, 422), (line.text, word.text)
    assert (await header(client, project_id))["version"] == 1
    assert await read_all(client, project_id) == stored(payload)


async def test_split_then_merge_gives_back_the_original_segment(
    client: httpx.AsyncClient,
) -> None:
    """Splitting a line before word 7 makes two lines (the first ending where the second
    starts) and one more segment; merging them restores the original line."""
    payload = make_transcript(1_500, seed=4)
    expected = stored(payload)
    project_id = await project_with_transcript(client, payload)
    target = next(
        s for i, s in enumerate(expected) if i > 3 and "text" not in payload["segments"][i]
    )
    assert len(target["words"]) > 8
    base = f"{transcript_path(project_id)}/segments/{target['id']}"
    count = len(expected)

    split = await client.post(f"{base}/split", json={"atWord": 7}, headers=if_match(1))

    assert split.status_code == 200, split.text
    assert split.json()["segmentCount"] == count + 1
    assert split.json()["wordCount"] == 1_500
    assert split.headers["ETag"] == '"2"'
    segments = await read_all(client, project_id)
    assert len(segments) == count + 1
    index = next(i for i, s in enumerate(segments) if s["id"] == target["id"])
    first, second = segments[index], segments[index + 1]
    boundary = target["words"][7]["start"]
    assert first["words"] == target["words"][:7]
    assert second["words"] == target["words"][7:]
    assert (first["start"], first["end"]) == (target["start"], boundary)
    assert (second["start"], second["end"]) == (boundary, target["end"])
    assert first["text"] == " ".join(w["text"] for w in target["words"][:7])
    assert second["text"] == " ".join(w["text"] for w in target["words"][7:])
    assert second["id"] != target["id"]
    assert first["speaker"] == second["speaker"] == target["speaker"]
    assert segments[:index] + segments[index + 2 :] == [s for s in expected if s is not target]

    merged = await client.post(f"{base}/merge", json={}, headers=if_match(2))

    assert merged.status_code == 200, merged.text
    assert merged.json()["segmentCount"] == count
    assert merged.headers["ETag"] == '"3"'
    assert await read_all(client, project_id) == expected


async def test_merge_across_a_bucket_boundary_moves_the_words_into_one_segment(
    small_buckets: httpx.AsyncClient, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """With 50-word buckets, merging the last line of one bucket with the first of the
    next gives one line holding both lines' words, one fewer segment, nothing lost."""
    client = small_buckets
    payload = make_transcript(600, seed=5)
    expected = stored(payload)
    project_id = await project_with_transcript(client, payload)
    buckets = list(
        mongo[settings.database_name][BUCKETS].find({"projectId": project_id}).sort("seq", 1)
    )
    assert len(buckets) >= 10
    last_of_first = buckets[1]["segments"][-1]["id"]
    first_of_next = buckets[2]["segments"][0]["id"]
    position = next(i for i, s in enumerate(expected) if s["id"] == last_of_first)
    assert expected[position + 1]["id"] == first_of_next
    one, two = expected[position], expected[position + 1]

    response = await client.post(
        f"{transcript_path(project_id)}/segments/{last_of_first}/merge",
        json={},
        headers=if_match(1),
    )

    assert response.status_code == 200, response.text
    assert response.json()["segmentCount"] == len(expected) - 1
    assert response.json()["wordCount"] == 600
    merged = {
        **one,
        "end": two["end"],
        "words": one["words"] + two["words"],
        "text": f"{one['text']} {two['text']}",
    }
    want = [*expected[:position], merged, *expected[position + 2 :]]
    assert await read_all(client, project_id) == want
    shown = await client.get(
        f"{transcript_path(project_id)}/segments",
        params={"from": str(two["start"] + 0.0004), "to": str(two["end"] + 1)},
        headers=OWNER,
    )
    assert merged in shown.json()["items"]
    assert first_of_next not in [s["id"] for s in shown.json()["items"]]
    again = list(
        mongo[settings.database_name][BUCKETS].find({"projectId": project_id}).sort("seq", 1)
    )
    assert sum(len(b["segments"]) for b in again) == len(expected) - 1
    assert sum(b["wordCount"] for b in again) == 600


# --- 4. search -------------------------------------------------------------------------


def plant(payload: dict[str, Any], segment: int, word: int, text: str) -> dict[str, Any]:
    """`payload` with one word's text replaced (and the segment's own text dropped)."""
    planted: dict[str, Any] = json.loads(json.dumps(payload))
    planted["segments"][segment]["words"][word]["text"] = text
    planted["segments"][segment].pop("text", None)
    return planted


async def test_search_finds_a_word_with_its_times_in_the_callers_projects_only(
    client: httpx.AsyncClient,
) -> None:
    """Searching "zeppelin" finds the line and the word's own times in this project; the
    search across projects finds it in both of the user's interviews, never in another
    user's; after a re-upload without it, the old text is no longer found."""
    first = plant(make_transcript(1_200, seed=7), 20, 3, "Zeppelin")
    second = plant(make_transcript(900, seed=8), 5, 0, "zeppelin,")
    a = await project_with_transcript(client, first)
    b = await project_with_transcript(client, second)
    c = await project_with_transcript(
        client, plant(make_transcript(300, seed=9), 2, 1, "zeppelin"), INTRUDER
    )
    planted_segment = stored(first)[20]
    planted_word = first["segments"][20]["words"][3]

    found = await client.get(
        f"{transcript_path(a)}/search", params={"q": "zeppelin"}, headers=OWNER
    )

    assert found.status_code == 200, found.text
    hits = found.json()
    assert len(hits) == 1
    hit = hits[0]
    assert hit["projectId"] == a
    assert hit["segmentId"] == planted_segment["id"] == "s000020"
    assert (hit["start"], hit["end"]) == (planted_segment["start"], planted_segment["end"])
    assert hit["text"] == planted_segment["text"]
    assert [(w["text"], w["start"], w["end"]) for w in hit["matched"]] == [
        ("Zeppelin", planted_word["start"], planted_word["end"])
    ]

    everywhere = await client.get(
        "/api/v1/transcripts/search", params={"q": "zeppelin"}, headers=OWNER
    )
    assert everywhere.status_code == 200, everywhere.text
    assert sorted((h["projectId"], h["segmentId"]) for h in everywhere.json()) == sorted(
        [(a, "s000020"), (b, "s000005")]
    )
    theirs = await client.get(
        "/api/v1/transcripts/search", params={"q": "zeppelin"}, headers=INTRUDER
    )
    assert [(h["projectId"], h["segmentId"]) for h in theirs.json()] == [(c, "s000002")]

    replaced = await upload(client, a, make_transcript(1_200, seed=7), version=1)
    assert replaced.status_code == 200, replaced.text
    gone = await client.get(f"{transcript_path(a)}/search", params={"q": "zeppelin"}, headers=OWNER)
    assert gone.status_code == 200
    assert gone.json() == []
    left = await client.get("/api/v1/transcripts/search", params={"q": "zeppelin"}, headers=OWNER)
    assert [(h["projectId"], h["segmentId"]) for h in left.json()] == [(b, "s000005")]


async def test_a_deleted_projects_lines_are_not_found_by_search(
    client: httpx.AsyncClient,
) -> None:
    """Once the user deletes a project, searching all their transcripts no longer lists
    its lines (opening one would only give 404)."""
    kept = await project_with_transcript(
        client, plant(make_transcript(300, seed=12), 1, 0, "zeppelin")
    )
    deleted = await project_with_transcript(
        client, plant(make_transcript(300, seed=13), 2, 0, "zeppelin")
    )
    assert (await client.delete(f"/api/v1/projects/{deleted}", headers=OWNER)).status_code == 204
    assert (await client.get(transcript_path(deleted), headers=OWNER)).status_code == 404

    found = await client.get("/api/v1/transcripts/search", params={"q": "zeppelin"}, headers=OWNER)

    assert found.status_code == 200, found.text
    hits = [(h["projectId"], h["segmentId"]) for h in found.json()]
    assert (kept, "s000001") in hits
    assert [hit for hit in hits if hit[0] == deleted] == [], "the deleted project is listed"


# --- 5. validation on upload -----------------------------------------------------------


def _mutated(case: str) -> tuple[dict[str, Any], float | None]:
    """A transcript broken in one way, and the media duration its project gets."""
    payload = make_transcript(300, seed=11)
    segments = payload["segments"]
    duration: float | None = None
    if case == "segment ends before it starts":
        segments[3]["end"] = segments[3]["start"] - 0.5
    elif case == "word ends before it starts":
        word = segments[3]["words"][2]
        word["end"] = word["start"] - 0.1
    elif case == "word outside its segment":
        segments[3]["words"][-1]["end"] = segments[3]["end"] + 2.0
    elif case == "segments out of order":
        segments[4], segments[5] = segments[5], segments[4]
    elif case == "duplicate segment ids":
        for index, segment in enumerate(segments):
            segment["id"] = f"line-{index}"
        segments[6]["id"] = "line-5"
    elif case == "unknown speaker":
        segments[2]["speaker"] = "narrator"
    elif case == "unknown word speaker":
        segments[2]["words"][0]["speaker"] = "narrator"
    elif case == "longer than the media":
        duration = last_end(payload) - 10
    elif case == "operator key in a segment":
        segments[1]["$where"] = 1
    elif case == "operator key in a word":
        segments[1]["words"][0]["$gt"] = ""
    elif case == "dotted key":
        segments[1]["a.b"] = 1
    else:  # pragma: no cover - a typo in the parametrize list
        raise AssertionError(case)
    return payload, duration


@pytest.mark.parametrize(
    "case",
    [
        "segment ends before it starts",
        "word ends before it starts",
        "word outside its segment",
        "segments out of order",
        "duplicate segment ids",
        "unknown speaker",
        "unknown word speaker",
        "longer than the media",
        "operator key in a segment",
        "operator key in a word",
        "dotted key",
    ],
)
async def test_an_invalid_transcript_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, mongo: MongoClient[dict[str, Any]], settings: Settings, case: str
) -> None:
    """A transcript with broken times, order, ids, speakers, a length past the video, or
    operator keys gets 422 and leaves no transcript behind."""
    payload, duration = _mutated(case)
    project_id = await new_project(
        client, duration=duration if duration is not None else last_end(payload) + 30
    )

    response = await upload(client, project_id, payload)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert (await client.get(transcript_path(project_id), headers=OWNER)).status_code == 404
    database = mongo[settings.database_name]
    assert database[HEADERS].count_documents({}) == 0
    assert database[BUCKETS].count_documents({}) == 0


# --- 6. replace ------------------------------------------------------------------------


async def test_a_reupload_replaces_the_transcript_and_a_stale_one_changes_nothing(
    client: httpx.AsyncClient, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """Uploading a new take with If-Match "1" replaces everything (version 2, no old
    buckets left); an upload still based on version 1 gets 412 and the new take stays."""
    original = make_transcript(3_000, seed=21)
    project_id = await project_with_transcript(client, original)
    database = mongo[settings.database_name]
    old_generation = database[HEADERS].find_one({"_id": project_id}, {"generation": 1})
    assert old_generation is not None
    replacement = make_transcript(2_000, seed=22)

    replaced = await upload(client, project_id, replacement, version=1)

    assert replaced.status_code == 200, replaced.text
    assert replaced.headers["ETag"] == '"2"'
    assert replaced.json()["wordCount"] == 2_000
    assert await read_all(client, project_id) == stored(replacement)
    current = database[HEADERS].find_one({"_id": project_id}, {"generation": 1, "bucketCount": 1})
    assert current is not None
    assert current["generation"] != old_generation["generation"]
    assert database[BUCKETS].count_documents({"generation": old_generation["generation"]}) == 0
    assert database[BUCKETS].count_documents({}) == current["bucketCount"]

    stale = await upload(client, project_id, make_transcript(500, seed=23), version=1)

    assert stale.status_code == 412, stale.text
    assert stale.json()["error"]["details"] == {"currentVersion": 2}
    assert await read_all(client, project_id) == stored(replacement)
    assert (await header(client, project_id))["version"] == 2
    assert database[BUCKETS].count_documents({}) == current["bucketCount"]
    assert database[BUCKETS].distinct("generation") == [current["generation"]]


# --- 7. cuts into the timeline ---------------------------------------------------------


TIMELINE: dict[str, Any] = {
    "tracks": [{"id": "v1", "kind": "video", "name": "Main"}],
    "clips": [
        {
            "id": "c1",
            "trackId": "v1",
            "mediaRef": "media/interview.mp4",
            "start": 0.0,
            "sourceIn": 0.0,
            "sourceOut": 120.0,
        }
    ],
}


async def test_cuts_from_the_transcript_are_one_undoable_timeline_revision(
    client: httpx.AsyncClient,
) -> None:
    """Selecting ranges (overlaps joined) or words in the transcript and cutting them adds
    exactly those cuts to the timeline as one revision; undo removes exactly them; a range
    past the transcript's end is refused and the timeline is untouched."""
    payload = make_transcript(600, seed=31)
    expected = stored(payload)
    project_id = await project_with_transcript(client, payload)
    timeline = f"/api/v1/projects/{project_id}/timeline"
    cuts = f"{transcript_path(project_id)}/cuts"
    saved = await client.put(timeline, json={"state": TIMELINE}, headers=if_match(0))
    assert saved.status_code == 200, saved.text

    by_ranges = await client.post(
        cuts,
        json={
            "ranges": [
                {"start": 30, "end": 31.5},
                {"start": 10, "end": 12},
                {"start": 11, "end": 15},
            ]
        },
        headers=OWNER,
    )

    assert by_ranges.status_code == 200, by_ranges.text
    assert by_ranges.json()["version"] == 2
    assert by_ranges.headers["ETag"] == '"2"'
    ranged = by_ranges.json()["state"]
    assert [(s["start"], s["end"], s["kind"]) for s in ranged["segments"]] == [
        (10.0, 15.0, "cut"),
        (30.0, 31.5, "cut"),
    ]
    assert ranged["clips"] == saved.json()["state"]["clips"]

    words = expected[3]["words"]
    word_ids = [f"{expected[3]['id']}:1", f"{expected[3]['id']}:4"]
    by_words = await client.post(cuts, json={"wordIds": word_ids}, headers=if_match(2))

    assert by_words.status_code == 200, by_words.text
    assert by_words.json()["version"] == 3
    added = by_words.json()["state"]["segments"][len(ranged["segments"]) :]
    assert [(s["start"], s["end"], s["kind"]) for s in added] == [
        (words[1]["start"], words[1]["end"], "cut"),
        (words[4]["start"], words[4]["end"], "cut"),
    ]
    history = (await client.get(f"{timeline}/history", headers=OWNER)).json()["items"]
    assert [item["version"] for item in history] == [3, 2, 1]

    undone = await client.post(f"{timeline}/undo", headers=OWNER)

    assert undone.status_code == 200, undone.text
    assert undone.json()["state"] == ranged
    undone_again = await client.post(f"{timeline}/undo", headers=OWNER)
    assert undone_again.json()["state"] == saved.json()["state"]
    version = undone_again.json()["version"]

    beyond = await client.post(
        cuts, json={"ranges": [{"start": 10, "end": last_end(payload) + 5}]}, headers=OWNER
    )
    assert beyond.status_code == 422, beyond.text
    unknown_word = await client.post(cuts, json={"wordIds": ["s000003:999"]}, headers=OWNER)
    assert unknown_word.status_code == 422, unknown_word.text
    after = await client.get(timeline, headers=OWNER)
    assert after.json()["version"] == version
    assert after.json()["state"] == saved.json()["state"]


# --- 8. access, delete, purge ----------------------------------------------------------


async def test_another_user_cannot_see_or_change_the_transcript(
    client: httpx.AsyncClient,
) -> None:
    """Someone else gets 404 for every transcript route of the project and finds nothing
    in their own search; the transcript is untouched."""
    payload = make_transcript(400, seed=41)
    project_id = await project_with_transcript(client, payload)
    path = transcript_path(project_id)
    segment = f"{path}/segments/s000001"
    theirs = if_match(1, INTRUDER)
    attempts = [
        await client.get(path, headers=INTRUDER),
        await client.get(f"{path}/segments", headers=INTRUDER),
        await client.get(f"{path}/segments", params={"from": "0", "to": "60"}, headers=INTRUDER),
        await client.patch(segment, json={"text": "mine"}, headers=theirs),
        await client.post(f"{segment}/split", json={"atWord": 2}, headers=theirs),
        await client.post(f"{segment}/merge", json={}, headers=theirs),
        await client.get(f"{path}/search", params={"q": "camera"}, headers=INTRUDER),
        await client.post(
            f"{path}/cuts", json={"ranges": [{"start": 1, "end": 2}]}, headers=INTRUDER
        ),
        await upload(
            client, project_id, make_transcript(100, seed=42), version=1, headers=INTRUDER
        ),
        await client.delete(path, headers=INTRUDER),
    ]
    assert [r.status_code for r in attempts] == [404] * len(attempts), [r.text for r in attempts]
    searched = await client.get(
        "/api/v1/transcripts/search", params={"q": "camera"}, headers=INTRUDER
    )
    assert searched.status_code == 200
    assert searched.json() == []
    assert (await header(client, project_id))["version"] == 1
    assert await read_all(client, project_id) == stored(payload)
    timeline = await client.get(f"/api/v1/projects/{project_id}/timeline", headers=OWNER)
    assert timeline.json()["version"] == 0


async def test_deleting_the_transcript_removes_it_and_its_buckets(
    client: httpx.AsyncClient, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """Deleting the transcript answers 204; afterwards it is 404 and nothing is stored."""
    project_id = await project_with_transcript(client, make_transcript(1_000, seed=51))

    deleted = await client.delete(transcript_path(project_id), headers=OWNER)

    assert deleted.status_code == 204, deleted.text
    assert (await client.get(transcript_path(project_id), headers=OWNER)).status_code == 404
    assert (await window(client, project_id, 0, 60)).status_code == 404
    database = mongo[settings.database_name]
    assert database[HEADERS].count_documents({}) == 0
    assert database[BUCKETS].count_documents({}) == 0
    project = await client.get(f"/api/v1/projects/{project_id}", headers=OWNER)
    assert project.status_code == 200


async def test_purging_a_project_removes_its_transcript(
    client: httpx.AsyncClient, mongo: MongoClient[dict[str, Any]], settings: Settings
) -> None:
    """An admin purge of a deleted project removes its transcript header and buckets; the
    user's other transcript stays."""
    doomed = await project_with_transcript(client, make_transcript(1_200, seed=61))
    kept = await project_with_transcript(client, make_transcript(700, seed=62))
    database = mongo[settings.database_name]
    buckets = database[BUCKETS].count_documents({"projectId": doomed})
    assert buckets >= 2

    assert (await client.delete(f"/api/v1/projects/{doomed}", headers=OWNER)).status_code == 204
    purged = await client.delete(f"/api/v1/admin/projects/{doomed}", headers=ADMIN)

    assert purged.status_code == 200, purged.text
    assert purged.json()["deleted"][BUCKETS] == buckets
    assert purged.json()["deleted"][HEADERS] == 1
    assert database[HEADERS].count_documents({"_id": doomed}) == 0
    assert database[BUCKETS].count_documents({"projectId": doomed}) == 0
    assert await read_all(client, kept) == stored(make_transcript(700, seed=62))
