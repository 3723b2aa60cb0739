"""Every query on `transcripts` (headers) and `transcript_segments` (buckets).

A transcript is a small header plus buckets of consecutive segments, each bucket bounded
(words and bytes), with the time span it covers. An upload writes a new generation of
buckets, then points the header at it, then removes the old generation: readers follow
the header, so they see the old transcript or the new one, never a mix.
"""

from __future__ import annotations

import math
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from snipix.db.client import Database, Document

HEADERS = "transcripts"
BUCKETS = "transcript_segments"

_HEADER_FIELDS = {
    "_id": 1,
    "projectId": 1,
    "userId": 1,
    "language": 1,
    "speakers": 1,
    "wordCount": 1,
    "segmentCount": 1,
    "durationSec": 1,
    "bucketCount": 1,
    "generation": 1,
    "version": 1,
    "updatedAt": 1,
    "metadata": 1,  # optional: what the transcript's producer said about it
}
_BUCKET_FIELDS = {"_id": 1, "seq": 1, "start": 1, "end": 1, "segments": 1, "projectId": 1}
# Every field: an edit rewrites the whole bucket.
_BUCKET_ALL = {
    **_BUCKET_FIELDS,
    "userId": 1,
    "generation": 1,
    "wordCount": 1,
    "text": 1,
}


class TranscriptRepository:
    def __init__(self, db: Database) -> None:
        self._headers = db[HEADERS]
        self._buckets = db[BUCKETS]

    async def header(self, project_id: str) -> Document | None:
        return await self._headers.find_one({"_id": project_id}, _HEADER_FIELDS)

    async def insert_buckets(self, buckets: list[Document]) -> None:
        await self._buckets.insert_many(buckets, ordered=True)

    async def publish(self, header: Document, *, expected_version: int | None) -> bool:
        """Point the header at a new generation (create it, or replace it at a version)."""
        if expected_version in (None, 0):
            existing = await self.header(header["_id"])
            if existing is None:
                try:
                    await self._headers.insert_one(header)
                except DuplicateKeyError:  # a concurrent first upload won
                    return False
                return True
            if expected_version == 0:
                return False
            expected_version = existing["version"]
        result = await self._headers.replace_one(
            {"_id": header["_id"], "version": expected_version}, header
        )
        return result.modified_count == 1

    async def bump(self, project_id: str, version: int) -> Document | None:
        """Take the next version for an edit (the header is the lock); None if stale."""
        return await self._headers.find_one_and_update(
            {"_id": project_id, "version": version},
            {"$inc": {"version": 1}, "$currentDate": {"updatedAt": True}},
            projection=_HEADER_FIELDS,
            return_document=ReturnDocument.AFTER,
        )

    async def set_counts(self, project_id: str, changes: dict[str, Any]) -> None:
        await self._headers.update_one({"_id": project_id}, {"$set": changes})

    async def delete_header(self, project_id: str) -> int:
        return (await self._headers.delete_one({"_id": project_id})).deleted_count

    async def delete_generations(self, project_id: str, *, keep: str | None) -> int:
        """Remove buckets of every generation but `keep` (all of them with None)."""
        query: dict[str, Any] = {"projectId": project_id}
        if keep is not None:
            query["generation"] = {"$ne": keep}
        result = await self._buckets.delete_many(query, hint="project_generation_start")
        return result.deleted_count

    async def delete_generations_only(self, project_id: str, generation: str) -> int:
        """Remove one generation's buckets (an upload that lost its race)."""
        result = await self._buckets.delete_many(
            {"projectId": project_id, "generation": generation}, hint="project_generation_start"
        )
        return result.deleted_count

    async def window(
        self, project_id: str, generation: str, start: float, end: float
    ) -> list[Document]:
        """The buckets overlapping [start, end), in time order: walked back from `end` to
        the one holding `start` (the last starting at or before it) — never a scan from
        time zero.

        A window within one bucket (the usual 60-second read) is one indexed query that
        reads that bucket alone. Each further query asks for as many buckets as the span
        still to cover needs at the length of the buckets read so far.
        """
        found: list[Document] = []
        bound: dict[str, float] = {"$lt": end}
        wanted = 1
        while True:
            # From the second query on the bound is inclusive (buckets may share a start);
            # the ones already read at it are asked for again and skipped.
            again = sum(1 for bucket in found if bucket["start"] == bound.get("$lte"))
            query = {"projectId": project_id, "generation": generation, "start": bound}
            batch = await (
                self._buckets.find(query, _BUCKET_FIELDS, hint="project_generation_start")
                .sort("start", DESCENDING)
                .limit(wanted + again)
                .to_list()
            )
            seen = {bucket["_id"] for bucket in found}
            fresh = [bucket for bucket in batch if bucket["_id"] not in seen]
            found.extend(fresh)
            if len(fresh) < wanted or found[-1]["start"] <= start:
                break
            if len(found) >= MAX_WINDOW_BUCKETS:
                # Wider than the bound: its first buckets, as a walk forward finds them.
                return await self._window_forward(project_id, generation, start, end)
            before = found[-1]["start"]
            bound = {"$lte": before}
            covered = end - before
            per_bucket = covered / len(found) if covered > 0 else 0.0
            missing = before - start
            wanted = min(
                MAX_WINDOW_BUCKETS - len(found),
                max(1, math.ceil(missing / per_bucket)) if per_bucket > 0 else 1,
            )
        # A batch may reach past the bucket holding `start`: those before it are not read
        # (as a walk forward from that bucket would not).
        holding = next((i for i, bucket in enumerate(found) if bucket["start"] <= start), None)
        if holding is not None:
            del found[holding + 1 :]
        found.sort(key=_in_time_order)
        return [bucket for bucket in found if bucket["end"] >= start]

    async def _window_forward(
        self, project_id: str, generation: str, start: float, end: float
    ) -> list[Document]:
        lower = await self.start_of_bucket_at(project_id, generation, start)
        found = self._buckets.find(
            {
                "projectId": project_id,
                "generation": generation,
                "start": {"$gte": lower, "$lt": end},
            },
            _BUCKET_FIELDS,
            hint="project_generation_start",
        )
        buckets = await found.sort("start", ASCENDING).limit(MAX_WINDOW_BUCKETS).to_list()
        buckets.sort(key=_in_time_order)
        return [bucket for bucket in buckets if bucket["end"] >= start]

    async def page(
        self, project_id: str, generation: str, *, after_start: float | None, limit: int
    ) -> list[Document]:
        query: dict[str, Any] = {"projectId": project_id, "generation": generation}
        if after_start is not None:
            query["start"] = {"$gte": after_start}
        found = self._buckets.find(query, _BUCKET_FIELDS, hint="project_generation_start")
        return await found.sort("start", ASCENDING).limit(limit).to_list()

    async def bucket_of(self, project_id: str, generation: str, segment_id: str) -> Document | None:
        return await self._buckets.find_one(
            {"projectId": project_id, "generation": generation, "segments.id": segment_id},
            _BUCKET_ALL,
            hint="project_segment",
        )

    async def next_bucket(self, project_id: str, generation: str, after: float) -> Document | None:
        found = self._buckets.find(
            {"projectId": project_id, "generation": generation, "start": {"$gt": after}},
            _BUCKET_ALL,
            hint="project_generation_start",
        )
        buckets = await found.sort("start", ASCENDING).limit(1).to_list()
        return buckets[0] if buckets else None

    async def replace_bucket(self, bucket: Document) -> None:
        await self._buckets.replace_one({"_id": bucket["_id"]}, bucket)

    async def delete_bucket(self, bucket_id: str) -> None:
        await self._buckets.delete_one({"_id": bucket_id})

    async def search(
        self, text: str, *, project_id: str | None, user_id: str, limit: int
    ) -> list[str]:
        """Ids of the buckets whose text matches, best first."""
        query: dict[str, Any] = {"$text": {"$search": text}, "userId": user_id}
        if project_id is not None:
            query["projectId"] = project_id
        found = self._buckets.find(query, {"_id": 1, "score": {"$meta": "textScore"}}).sort(
            [("score", {"$meta": "textScore"})]
        )
        return [str(doc["_id"]) for doc in await found.limit(limit).to_list()]

    async def buckets_by_id(self, ids: list[str]) -> list[Document]:
        """These buckets, in the order given."""
        found = self._buckets.find({"_id": {"$in": ids}}, {**_BUCKET_FIELDS, "generation": 1})
        by_id = {doc["_id"]: doc async for doc in found.limit(len(ids))}
        return [by_id[i] for i in ids if i in by_id]

    async def start_of_bucket_at(self, project_id: str, generation: str, at: float) -> float:
        """The start of the bucket that holds time `at` (0 if none starts before it)."""
        first = (
            await self._buckets.find(
                {"projectId": project_id, "generation": generation, "start": {"$lte": at}},
                {"_id": 0, "start": 1},
                hint="project_generation_start",
            )
            .sort("start", DESCENDING)
            .limit(1)
            .to_list()
        )
        return float(first[0]["start"]) if first else 0.0


def _in_time_order(bucket: Document) -> tuple[float, int]:
    """Buckets that start together (overlapping speech) in the order they were cut."""
    return (bucket["start"], bucket["seq"])


# A 60-second window normally spans one or two buckets; a bound keeps a wide one cheap.
MAX_WINDOW_BUCKETS = 200
