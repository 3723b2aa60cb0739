"""Window reads walk back from the window's end to the bucket holding its start: the same
buckets as every bucket checked one by one, for windows anywhere (in a gap, before the
first bucket, past the last, on a boundary, across many buckets)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from snipix.db.client import Database
from snipix.db.indexes import catalogue, ensure_indexes
from snipix.transcripts import repository
from snipix.transcripts.repository import BUCKETS, TranscriptRepository


def buckets(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Consecutive buckets of uneven length, some with silence between them, some
    overlapping the next."""
    made: list[dict[str, Any]] = []
    at = rng.uniform(0, 5)
    for seq in range(count):
        length = rng.choice((2.0, 10.0, 45.0, 120.0, 300.0))
        made.append(
            {
                "_id": f"p1:g1:{seq:06d}",
                "projectId": "p1",
                "userId": "u1",
                "generation": "g1",
                "seq": seq,
                "start": round(at, 3),
                "end": round(at + length, 3),
                "segments": [],
            }
        )
        # Mostly back to back, some silence, and now and then a bucket of a moment (a
        # short line) right before the next; never two starting together (uploads keep
        # segments that start together in one bucket).
        at += rng.choice((length, length, length + 0.5, length + 30.0, 0.001))
    return made


def overlapping(stored: list[dict[str, Any]], start: float, end: float) -> list[str]:
    """What the window must return: the bucket holding `start` (the last starting at or
    before it) and every later one starting before `end`, if it reaches `start`."""
    lower = max((b["start"] for b in stored if b["start"] <= start), default=0.0)
    return [b["_id"] for b in stored if lower <= b["start"] < end and b["end"] >= start]


@pytest.fixture
async def transcripts(db: Database) -> TranscriptRepository:
    await ensure_indexes(db, [spec for spec in catalogue() if spec.collection == BUCKETS])
    return TranscriptRepository(db)


async def test_windows_anywhere_return_exactly_the_buckets_they_overlap(
    db: Database, transcripts: TranscriptRepository
) -> None:
    rng = random.Random(17)  # noqa: S311 - reproducible data, not a secret
    stored = buckets(rng, 60)
    await db[BUCKETS].insert_many(stored)
    last = stored[-1]["end"]
    edges = [b["start"] for b in stored] + [b["end"] for b in stored]
    windows = [(0.0, 1.0), (last + 1, last + 60), (0.0, last + 1), (stored[3]["end"], 9e9)]
    windows += [(edge, edge + rng.choice((0.001, 60.0, 900.0))) for edge in rng.sample(edges, 40)]
    for _ in range(60):
        start = rng.uniform(-10, last + 10)
        windows.append((start, start + rng.choice((1.0, 60.0, 600.0, 3600.0))))
    for start, end in windows:
        got = await transcripts.window("p1", "g1", start, end)
        assert [b["_id"] for b in got] == overlapping(stored, start, end), (start, end)


async def test_a_window_wider_than_the_bound_returns_its_first_buckets(
    db: Database, transcripts: TranscriptRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repository, "MAX_WINDOW_BUCKETS", 5)
    stored = buckets(random.Random(5), 20)  # noqa: S311 - reproducible data
    await db[BUCKETS].insert_many(stored)
    start = stored[2]["start"] + 0.5
    got = await transcripts.window("p1", "g1", start, 9e9)
    assert [b["_id"] for b in got] == overlapping(stored, start, 9e9)[:5]
