"""Bucketing a transcript (pure, no database): every bucket stays within its word and byte
bounds, holds whole segments in order, and says which time span it covers — so no stored
document grows without limit and a window read can find its buckets by time."""

from __future__ import annotations

import json
import random
from itertools import pairwise
from typing import Any, cast

import bson
import pytest

from snipix.projects.service import ProjectService
from snipix.transcripts.repository import TranscriptRepository
from snipix.transcripts.service import TranscriptService

PROJECT, USER, GENERATION = "p1", "u1", "g1"
# The MongoDB document limit: what the bounds keep every bucket far away from.
MONGODB_MAX_BYTES = 16 * 1024 * 1024


def service(words: int, size: int) -> TranscriptService:
    # `buckets` is pure: the constructor only keeps the repository and the project service.
    return TranscriptService(
        cast(TranscriptRepository, None),
        cast(ProjectService, None),
        bucket_words=words,
        bucket_bytes=size,
    )


def json_size(segment: dict[str, Any]) -> int:
    return len(json.dumps(segment, separators=(",", ":")))


def segments(
    count: int, *, seed: int, max_words: int, max_text: int = 12, speakers: int = 3
) -> list[dict[str, Any]]:
    """Stored segments (as the service builds them) with times increasing; some silent."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    clock = 0.0
    result: list[dict[str, Any]] = []
    for index in range(count):
        start = round(clock, 3)
        words: list[dict[str, Any]] = []
        for _ in range(rng.randint(0, max_words)):
            length = rng.randint(1, max_text)
            word_start = round(clock, 3)
            clock += rng.uniform(0.1, 0.6)
            words.append(
                {
                    "text": "".join(rng.choice("abcdefghij klmnop") for _ in range(length)).strip()
                    or "a",
                    "start": word_start,
                    "end": round(clock, 3),
                    "speaker": None,
                    "confidence": round(rng.random(), 3),
                }
            )
            clock += rng.uniform(0.0, 0.1)
        end = round(max(clock, start + 0.5), 3)
        result.append(
            {
                "id": f"s{index:06d}",
                "start": start,
                "end": end,
                "speaker": f"spk{rng.randrange(speakers)}",
                "text": " ".join(w["text"] for w in words),
                "words": words,
            }
        )
        clock = end + rng.uniform(0.2, 2.0)
    return result


def check(
    buckets: list[dict[str, Any]], given: list[dict[str, Any]], words: int, size: int
) -> None:
    """Every property a stored transcript relies on."""
    assert [s for b in buckets for s in b["segments"]] == given  # whole, in order, none lost
    for seq, bucket in enumerate(buckets):
        held = bucket["segments"]
        held_words = sum(len(s["words"]) for s in held)
        held_bytes = sum(json_size(s) for s in held)
        assert held, "no empty bucket"
        assert bucket["seq"] == seq
        assert bucket["_id"] == f"{PROJECT}:{GENERATION}:{seq:06d}"
        assert (bucket["projectId"], bucket["userId"], bucket["generation"]) == (
            PROJECT,
            USER,
            GENERATION,
        )
        assert bucket["wordCount"] == held_words
        assert bucket["text"] == " ".join(s["text"] for s in held)
        # Only a single oversized segment, or segments starting together, exceed a bound.
        if len(held) > 1 and held[-1]["start"] > held[0]["start"]:
            assert held_words <= words, (seq, held_words)
            assert held_bytes <= size, (seq, held_bytes)
        else:
            assert held_words <= words or len(held[0]["words"]) > words
        assert bucket["start"] == held[0]["start"]
        assert bucket["end"] == max(s["end"] for s in held)
        assert all(bucket["start"] <= s["start"] and s["end"] <= bucket["end"] for s in held)
        assert len(bson.encode(bucket)) < MONGODB_MAX_BYTES
    for before, after in pairwise(buckets):
        assert before["start"] < after["start"]  # reads find a bucket by its start
        # Full: the next segment did not fit (no needlessly small buckets).
        following = after["segments"][0]
        assert (
            before["wordCount"] + len(following["words"]) > words
            or sum(json_size(s) for s in before["segments"]) + json_size(following) > size
        )


@pytest.mark.parametrize(
    ("count", "seed", "max_words", "max_text", "words", "size"),
    [
        (2_000, 1, 40, 12, 500, 65_536),  # the defaults: the word bound decides
        (2_000, 2, 40, 12, 50, 65_536),  # small buckets
        (500, 3, 60, 200, 500, 4_096),  # long words: the byte bound decides
        (800, 4, 30, 60, 120, 8_192),  # both bounds in play
        (300, 5, 10, 12, 10, 4_096),  # the smallest word bound the settings allow
        (50, 6, 0, 1, 10, 4_096),  # silent segments only (no words)
    ],
)
def test_buckets_stay_within_their_bounds_and_keep_segments_whole(
    count: int, seed: int, max_words: int, max_text: int, words: int, size: int
) -> None:
    """However long the transcript and whatever the bounds, no bucket holds more words or
    bytes than allowed, no line is split or reordered, and each bucket's span covers its
    lines."""
    given = segments(count, seed=seed, max_words=max_words, max_text=max_text)

    buckets = list(service(words, size).buckets(PROJECT, USER, GENERATION, given))

    check(buckets, given, words, size)
    assert sum(b["wordCount"] for b in buckets) == sum(len(s["words"]) for s in given)


def test_an_oversized_segment_gets_a_bucket_of_its_own() -> None:
    """A single line bigger than the byte bound (or with more words than the word bound) is
    stored whole, alone in its bucket; its neighbours are bucketed normally."""
    given = segments(60, seed=9, max_words=20)
    big_bytes = segments(1, seed=10, max_words=60, max_text=200)[0]
    many_words = segments(1, seed=11, max_words=2_000)[0]
    assert json_size(big_bytes) > 4_096
    assert len(many_words["words"]) > 100
    shift = given[29]["end"] + 1
    for extra in (big_bytes, many_words):
        extra_span = extra["end"] - extra["start"]
        for word in extra["words"]:
            word["start"] = round(word["start"] - extra["start"] + shift, 3)
            word["end"] = round(word["end"] - extra["start"] + shift, 3)
        extra["start"], extra["end"] = shift, round(shift + extra_span, 3)
        shift = extra["end"] + 1
    tail = given[30:]
    for segment in tail:
        offset = shift
        segment["start"] = round(segment["start"] + offset, 3)
        segment["end"] = round(segment["end"] + offset, 3)
        for word in segment["words"]:
            word["start"] = round(word["start"] + offset, 3)
            word["end"] = round(word["end"] + offset, 3)
    big_bytes["id"], many_words["id"] = "big", "wordy"
    ordered = [*given[:30], big_bytes, many_words, *tail]

    buckets = list(service(100, 4_096).buckets(PROJECT, USER, GENERATION, ordered))

    check(buckets, ordered, 100, 4_096)
    alone = [b["segments"] for b in buckets if len(b["segments"]) == 1]
    assert [big_bytes] in alone
    assert [many_words] in alone


def test_segments_that_start_together_share_a_bucket() -> None:
    """Overlapping speakers: lines starting at a bucket's first instant are never cut off
    from it, even past the word bound, so no two buckets start together (reads find
    buckets by their start)."""
    given = segments(40, seed=13, max_words=8)
    for segment in given[:6]:
        segment["start"] = 0.0
    assert sum(len(segment["words"]) for segment in given[:6]) > 10

    buckets = list(service(10, 65_536).buckets(PROJECT, USER, GENERATION, given))

    assert [s for b in buckets for s in b["segments"]] == given
    assert buckets[0]["segments"][:6] == given[:6]
    assert all(before["start"] < after["start"] for before, after in pairwise(buckets))


def test_no_segments_make_no_buckets() -> None:
    """An empty transcript stores no buckets."""
    assert list(service(500, 65_536).buckets(PROJECT, USER, GENERATION, [])) == []


def test_a_default_bucket_stays_near_its_byte_bound_as_stored() -> None:
    """With the default bounds a full bucket, as MongoDB stores it (BSON, with the text
    index's copy of the words), stays within twice the byte bound."""
    given = segments(2_000, seed=12, max_words=40, max_text=200)

    buckets = list(service(500, 65_536).buckets(PROJECT, USER, GENERATION, given))

    assert max(len(bson.encode(b)) for b in buckets) <= 2 * 65_536
