"""Transcript rules: bucketing, whole uploads, window reads, edits, search, cuts.

Buckets hold consecutive whole segments, at most `bucket_words` words and about
`bucket_bytes` bytes each, so no document approaches MongoDB's 16 MB limit and a window
read fetches only the buckets it overlaps. Edits take the next version on the header
first (the header is the lock, 412 on a stale version), then rewrite the one or two
buckets they touch.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import structlog
from pydantic import ValidationError

from snipix.auth.actor import Actor
from snipix.clock import utc_now_ms
from snipix.db.client import Document
from snipix.errors import (
    Conflict,
    NotFound,
    PreconditionRequired,
    TooLarge,
    ValidationFailed,
    VersionMismatch,
)
from snipix.events.bus import Event, EventBus
from snipix.projects.members import Role
from snipix.projects.service import ProjectService
from snipix.transcripts.repository import TranscriptRepository
from snipix.transcripts.schemas import (
    CutRange,
    SearchHit,
    Segment,
    SegmentCursor,
    SegmentEdit,
    SegmentWindow,
    StoredSegment,
    TranscriptHeader,
    TranscriptUpload,
    Word,
)
from snipix.wire.models import from_storage
from snipix.wire.pages import encode_cursor
from snipix.wire.versions import Expected

log = structlog.get_logger(__name__)

# Buckets written per insert: an upload is a stream of batches, not one giant insert.
INSERT_BATCH = 20
MAX_SEARCH_BUCKETS = 200
SEARCH_BATCH = 10
_TOKEN = re.compile(r"\w+", re.UNICODE)


def segment_document(segment: Segment, segment_id: str) -> Document:
    """A segment as stored in a bucket. Public: the legacy import stores its segments in
    exactly this shape, so one function decides it for both writers."""
    words = [word.model_dump(mode="json") for word in segment.words]
    text = segment.text if segment.text is not None else " ".join(w.text for w in segment.words)
    return {
        "id": segment_id,
        "start": segment.start,
        "end": segment.end,
        "speaker": segment.speaker,
        "text": text,
        "words": words,
        # Optional, stored only when given.
        **{
            key: value
            for key, value in (
                ("confidence", segment.confidence),
                ("isEdited", segment.is_edited),
                ("editedText", segment.edited_text),
            )
            if value is not None
        },
    }


def _size(segment: Document) -> int:
    return len(json.dumps(segment, separators=(",", ":")))


class TranscriptService:
    def __init__(
        self,
        transcripts: TranscriptRepository,
        projects: ProjectService,
        *,
        bucket_words: int,
        bucket_bytes: int,
        max_segments: int | None = None,
        max_words: int | None = None,
        events: EventBus | None = None,
    ) -> None:
        self._transcripts = transcripts
        # Each change is published to the project's live event streams.
        self._events = events if events is not None else EventBus.unobserved()
        self._projects = projects
        self._bucket_words = bucket_words
        self._bucket_bytes = bucket_bytes
        # one upload's bounds (SNIPIX_TRANSCRIPT_MAX_SEGMENTS / _MAX_WORDS); None
        # for callers that bound their input themselves (the legacy importer).
        self._max_segments = max_segments
        self._max_words = max_words

    # --- upload ---------------------------------------------------------------------------

    def _check_size(self, upload: TranscriptUpload) -> None:
        """413 for an upload over the configured bounds, before anything is read or written."""
        segments = len(upload.segments)
        words = sum(len(segment.words) for segment in upload.segments)
        for count, limit, what, setting in (
            (segments, self._max_segments, "segments", "SNIPIX_TRANSCRIPT_MAX_SEGMENTS"),
            (words, self._max_words, "words", "SNIPIX_TRANSCRIPT_MAX_WORDS"),
        ):
            if limit is not None and count > limit:
                raise TooLarge(
                    f"The transcript has {count:,} {what}; one upload may hold at most "
                    f"{limit:,} ({setting}). Nothing was saved.",
                    details={what: count, "limit": limit},
                )

    def buckets(
        self, project_id: str, user_id: str, generation: str, segments: list[Document]
    ) -> Iterator[Document]:
        """Group consecutive segments into bounded buckets.

        Each bucket starts strictly after the one before it: reads find a bucket by its
        start (window, page and merge walk the start index), so a cut never falls before a
        segment that starts no later than the bucket's first one (speakers overlapping);
        such a segment stays in the bucket, past its bound if it must.
        """
        seq = 0
        current: list[Document] = []
        words = size = 0
        for segment in segments:
            segment_words, segment_size = len(segment["words"]), _size(segment)
            if (
                current
                and segment["start"] > current[0]["start"]
                and (
                    words + segment_words > self._bucket_words
                    or size + segment_size > self._bucket_bytes
                )
            ):
                yield self._bucket(project_id, user_id, generation, seq, current)
                seq += 1
                current, words, size = [], 0, 0
            current.append(segment)
            words += segment_words
            size += segment_size
        if current:
            yield self._bucket(project_id, user_id, generation, seq, current)

    @staticmethod
    def _bucket(
        project_id: str, user_id: str, generation: str, seq: int, segments: list[Document]
    ) -> Document:
        return {
            "_id": f"{project_id}:{generation}:{seq:06d}",
            "projectId": project_id,
            "userId": user_id,
            "generation": generation,
            "seq": seq,
            "start": segments[0]["start"],
            "end": max(segment["end"] for segment in segments),
            "wordCount": sum(len(segment["words"]) for segment in segments),
            "text": " ".join(segment["text"] for segment in segments),
            "segments": segments,
        }

    async def upload(
        self, actor: Actor, project_id: str, upload: TranscriptUpload, *, expected: Expected
    ) -> TranscriptHeader:
        """Replace the whole transcript: new buckets in batches, then the header flips."""
        self._check_size(upload)
        project = await self._projects.get(actor, project_id, need=Role.EDITOR)
        duration = project.media.duration_sec if project.media is not None else None
        last_end = max((segment.end for segment in upload.segments), default=0.0)
        if duration is not None and last_end > duration + 1e-6:
            raise ValidationFailed(
                f"The transcript ends at {last_end:.3f} s but the media lasts {duration:.3f} s."
            )
        generation = uuid.uuid4().hex[:12]
        segments = [
            segment_document(segment, segment.id or f"s{index:06d}")
            for index, segment in enumerate(upload.segments)
        ]
        ids = {segment["id"] for segment in segments}
        if len(ids) != len(segments):
            raise ValidationFailed(
                "Segment ids collide with generated ids (s000000...); send all ids or none."
            )
        # Stored under the project's owner (whoever uploads it): searches across one's
        # transcripts select by it.
        buckets = list(self.buckets(project_id, project.user_id, generation, segments))
        for start in range(0, len(buckets), INSERT_BATCH):
            await self._transcripts.insert_buckets(buckets[start : start + INSERT_BATCH])
        existing = await self._transcripts.header(project_id)
        version = (existing["version"] if existing is not None else 0) + 1
        if isinstance(expected, int) and expected != version - 1:
            await self._transcripts.delete_generations_only(project_id, generation)
            raise VersionMismatch(
                f"The transcript changed since version {expected}; it is now at version "
                f"{version - 1}.",
                current_version=version - 1,
            )
        header = {
            "_id": project_id,
            "projectId": project_id,
            "userId": project.user_id,
            "language": upload.language,
            "speakers": [speaker.model_dump(mode="json") for speaker in upload.speakers],
            "wordCount": sum(len(segment["words"]) for segment in segments),
            "segmentCount": len(segments),
            "durationSec": last_end,
            "bucketCount": len(buckets),
            "generation": generation,
            "version": version,
            "updatedAt": utc_now_ms(),
        }
        if upload.metadata is not None:
            header["metadata"] = upload.metadata.model_dump(mode="json")
        published = await self._transcripts.publish(
            header, expected_version=existing["version"] if existing is not None else 0
        )
        if not published:
            await self._transcripts.delete_generations_only(project_id, generation)
            latest = await self._transcripts.header(project_id)
            current = latest["version"] if latest is not None else 0
            raise VersionMismatch(
                "Another upload of this transcript finished first.", current_version=current
            )
        removed = await self._transcripts.delete_generations(project_id, keep=generation)
        log.info(
            "transcript uploaded",
            project_id=project_id,
            words=header["wordCount"],
            buckets=len(buckets),
            replaced_buckets=removed,
        )
        await self._changed(actor, project_id, "uploaded", header)
        return transcript_header(header)

    # --- reads ----------------------------------------------------------------------------

    async def _current(
        self, actor: Actor, project_id: str, *, need: Role = Role.VIEWER
    ) -> Document:
        await self._projects.get(actor, project_id, need=need)
        header = await self._transcripts.header(project_id)
        if header is None:
            raise NotFound(f"Project {project_id} has no transcript.")
        return header

    async def header(self, actor: Actor, project_id: str) -> TranscriptHeader:
        return transcript_header(await self._current(actor, project_id))

    async def window(
        self, actor: Actor, project_id: str, start: float, end: float
    ) -> tuple[SegmentWindow, int]:
        """Segments overlapping [start, end), and how many buckets were read."""
        if not start < end:
            raise ValidationFailed("`from` must be before `to`.")
        header = await self._current(actor, project_id)
        buckets = await self._transcripts.window(project_id, header["generation"], start, end)
        items = [
            stored_segment(segment)
            for bucket in buckets
            for segment in bucket["segments"]
            if segment["end"] >= start and segment["start"] < end
        ]
        return SegmentWindow(items=items, version=header["version"]), len(buckets)

    async def page(
        self, actor: Actor, project_id: str, *, limit: int, cursor: SegmentCursor | None
    ) -> SegmentWindow:
        """Segments in time order, `limit` at a time."""
        header = await self._current(actor, project_id)
        items: list[StoredSegment] = []
        after: float | None = None
        if cursor is not None:
            # The cursor's segment may sit in the middle of a bucket that starts earlier.
            after = await self._transcripts.start_of_bucket_at(
                project_id, header["generation"], cursor.s
            )
        # Bucket sizes vary; read a few at a time until the page is full.
        while len(items) <= limit:
            buckets = await self._transcripts.page(
                project_id, header["generation"], after_start=after, limit=4
            )
            if not buckets:
                break
            for bucket in buckets:
                for segment in bucket["segments"]:
                    if cursor is not None and (segment["start"], segment["id"]) <= (
                        cursor.s,
                        cursor.id,
                    ):
                        continue
                    items.append(stored_segment(segment))
            if len(buckets) < 4:
                break
            after = buckets[-1]["start"] + 1e-9
        more = len(items) > limit
        items = items[:limit]
        next_cursor = (
            encode_cursor(SegmentCursor(s=items[-1].start, id=items[-1].id)) if more else None
        )
        return SegmentWindow(items=items, next_cursor=next_cursor, version=header["version"])

    async def search(
        self, actor: Actor, text: str, *, project_id: str | None, limit: int
    ) -> list[SearchHit]:
        """Segment hits for `text` in one project (or all the caller's), with times."""
        generations: dict[str, str] = {}
        if project_id is not None:
            header = await self._current(actor, project_id)
            generations[project_id] = header["generation"]
        terms = {token.casefold() for token in _TOKEN.findall(text)}
        if not terms:
            raise ValidationFailed("Search for at least one word.")
        ranked = await self._transcripts.search(
            text, project_id=project_id, user_id=actor.user_id, limit=MAX_SEARCH_BUCKETS
        )
        hits: list[SearchHit] = []
        live: set[str] = set(generations)
        # Buckets are loaded a few at a time, best first, until there are enough hits: a
        # common word matches hundreds of 40 KB buckets.
        for offset in range(0, len(ranked), SEARCH_BATCH):
            buckets = await self._transcripts.buckets_by_id(ranked[offset : offset + SEARCH_BATCH])
            unknown = {bucket["projectId"] for bucket in buckets} - live
            if unknown:
                live |= await self._projects.live_ids(actor, sorted(unknown))
            for bucket in buckets:
                owner = bucket["projectId"]
                if owner not in live:
                    continue  # a deleted project's transcript is not searchable
                if owner not in generations:
                    other = await self._transcripts.header(owner)
                    if other is None:
                        continue
                    generations[owner] = other["generation"]
                if bucket["generation"] != generations[owner]:
                    continue  # an upload replaced it a moment ago
                hits += _hits(owner, bucket, terms)
                if len(hits) >= limit:
                    return hits[:limit]
        return hits

    # --- edits ----------------------------------------------------------------------------

    async def _lock(self, actor: Actor, project_id: str, expected: Expected) -> Document:
        """Take the next version (the header is the lock); 412 if `expected` is stale."""
        if expected is None:
            raise PreconditionRequired(
                "Send If-Match with the transcript's ETag (or baseVersion) so this edit "
                "cannot overwrite someone else's."
            )
        header = await self._current(actor, project_id, need=Role.EDITOR)
        version = header["version"] if not isinstance(expected, int) else expected
        if version != header["version"]:
            raise VersionMismatch(
                f"The transcript changed since version {expected}; it is now at version "
                f"{header['version']}. Reload it and edit again.",
                current_version=header["version"],
            )
        bumped = await self._transcripts.bump(project_id, version)
        if bumped is None:
            latest = await self._transcripts.header(project_id)
            current = latest["version"] if latest is not None else 0
            raise VersionMismatch(
                "The transcript changed while this edit was being saved.", current_version=current
            )
        return bumped

    async def _segment(
        self, project_id: str, header: Document, segment_id: str
    ) -> tuple[Document, int]:
        bucket = await self._transcripts.bucket_of(project_id, header["generation"], segment_id)
        if bucket is None:
            raise NotFound(f"Segment {segment_id} was not found in this transcript.")
        index = next(i for i, s in enumerate(bucket["segments"]) if s["id"] == segment_id)
        return bucket, index

    async def edit(
        self,
        actor: Actor,
        project_id: str,
        segment_id: str,
        edit: SegmentEdit,
        *,
        expected: Expected,
    ) -> TranscriptHeader:
        header = await self._current(actor, project_id)
        bucket, index = await self._segment(project_id, header, segment_id)
        old = bucket["segments"][index]
        words = (
            edit.words if edit.words is not None else [Word.model_validate(w) for w in old["words"]]
        )
        speaker = edit.speaker if "speaker" in edit.model_fields_set else old["speaker"]
        declared = {item["id"] for item in header["speakers"]}
        for name in [speaker, *(word.speaker for word in words)]:
            if name is not None and declared and name not in declared:
                raise ValidationFailed(
                    f"Speaker {name!r} is not one of this transcript's speakers "
                    f"({', '.join(sorted(declared))})."
                )
        if edit.text is not None:
            text: str | None = edit.text
        else:
            text = None if edit.words is not None else old["text"]
        try:
            candidate = Segment(
                id=segment_id,
                start=old["start"],
                end=old["end"],
                speaker=speaker,
                text=text,
                words=words,
            )
        except ValidationError as error:
            problem = error.errors(include_input=False, include_url=False)[0]
            raise ValidationFailed(
                f"The edited segment is not valid: {problem['msg']}. Nothing was changed."
            ) from None
        new = segment_document(candidate, segment_id)
        header = await self._lock(actor, project_id, expected)
        bucket["segments"][index] = new
        await self._save_bucket(bucket)
        delta = len(new["words"]) - len(old["words"])
        if delta:
            await self._transcripts.set_counts(
                project_id, {"wordCount": header["wordCount"] + delta}
            )
            header["wordCount"] += delta
        await self._changed(actor, project_id, "edited", header, segment_id=segment_id)
        return transcript_header(header)

    async def split(
        self, actor: Actor, project_id: str, segment_id: str, at_word: int, *, expected: Expected
    ) -> TranscriptHeader:
        header = await self._current(actor, project_id)
        bucket, index = await self._segment(project_id, header, segment_id)
        old = bucket["segments"][index]
        if not 0 < at_word < len(old["words"]):
            raise ValidationFailed(
                f"Split at a word between 1 and {len(old['words']) - 1} (the segment has "
                f"{len(old['words'])} words)."
            )
        first_words, second_words = old["words"][:at_word], old["words"][at_word:]
        boundary = second_words[0]["start"]
        new_id = f"{segment_id}-{uuid.uuid4().hex[:6]}"
        first = {
            **old,
            "end": boundary,
            "words": first_words,
            "text": " ".join(w["text"] for w in first_words),
        }
        second = {
            **old,
            "id": new_id,
            "start": boundary,
            "words": second_words,
            "text": " ".join(w["text"] for w in second_words),
        }
        header = await self._lock(actor, project_id, expected)
        bucket["segments"][index : index + 1] = [first, second]
        await self._save_bucket(bucket)
        await self._transcripts.set_counts(project_id, {"segmentCount": header["segmentCount"] + 1})
        header["segmentCount"] += 1
        await self._changed(actor, project_id, "split", header, segment_id=segment_id)
        return transcript_header(header)

    async def merge(
        self, actor: Actor, project_id: str, segment_id: str, *, expected: Expected
    ) -> TranscriptHeader:
        """Merge a segment with the next one (also across a bucket boundary)."""
        header = await self._current(actor, project_id)
        bucket, index = await self._segment(project_id, header, segment_id)
        if index + 1 < len(bucket["segments"]):
            other_bucket, other_index = bucket, index + 1
        else:
            following = await self._transcripts.next_bucket(
                project_id, header["generation"], bucket["start"]
            )
            if following is None:
                raise Conflict(
                    f"Segment {segment_id} is the last one; there is nothing to merge it with."
                )
            other_bucket, other_index = following, 0
        first, second = bucket["segments"][index], other_bucket["segments"][other_index]
        merged = {
            **first,
            "end": max(first["end"], second["end"]),
            "words": first["words"] + second["words"],
            "text": f"{first['text']} {second['text']}".strip(),
        }
        header = await self._lock(actor, project_id, expected)
        bucket["segments"][index] = merged
        if other_bucket is bucket:
            del bucket["segments"][other_index]
            await self._save_bucket(bucket)
        else:
            # The merged segment is written first: a crash in between leaves the words twice
            # (visible, repairable by an edit), never lost.
            await self._save_bucket(bucket)
            del other_bucket["segments"][other_index]
            await self._save_bucket(other_bucket)
        await self._transcripts.set_counts(project_id, {"segmentCount": header["segmentCount"] - 1})
        header["segmentCount"] -= 1
        await self._changed(actor, project_id, "merged", header, segment_id=segment_id)
        return transcript_header(header)

    async def _changed(
        self,
        actor: Actor,
        project_id: str,
        action: str,
        header: Document | None,
        *,
        segment_id: str | None = None,
    ) -> None:
        """Tell the project's live streams (after the change is written)."""
        await self._events.publish(
            project_id,
            Event(
                "transcript",
                {
                    "action": action,
                    "version": header.get("version") if header is not None else None,
                    "segmentId": segment_id,
                    "actor": actor.user_id,
                },
            ),
        )

    async def _save_bucket(self, bucket: Document) -> None:
        if not bucket["segments"]:
            await self._transcripts.delete_bucket(bucket["_id"])
            return
        bucket["start"] = bucket["segments"][0]["start"]
        bucket["end"] = max(segment["end"] for segment in bucket["segments"])
        bucket["wordCount"] = sum(len(segment["words"]) for segment in bucket["segments"])
        bucket["text"] = " ".join(segment["text"] for segment in bucket["segments"])
        await self._transcripts.replace_bucket(bucket)

    async def delete(self, actor: Actor, project_id: str) -> None:
        await self._projects.get(actor, project_id, need=Role.EDITOR)
        # Header first: from then on no reader sees the transcript; the buckets follow.
        await self._transcripts.delete_header(project_id)
        await self._transcripts.delete_generations(project_id, keep=None)
        await self._changed(actor, project_id, "deleted", None)

    # --- cuts -----------------------------------------------------------------------------

    async def ranges_for(
        self, actor: Actor, project_id: str, ranges: list[CutRange], word_ids: list[str]
    ) -> list[tuple[float, float]]:
        """The time ranges to cut: given ranges, plus the spans of the given words."""
        header = await self._current(actor, project_id)
        spans = [(r.start, r.end) for r in ranges]
        by_segment: dict[str, list[int]] = {}
        for word_id in word_ids:
            segment_id, _, position_text = word_id.rpartition(":")
            if not segment_id or not position_text.isdigit():
                raise ValidationFailed(f"Word id {word_id!r} is not `<segmentId>:<wordIndex>`.")
            by_segment.setdefault(segment_id, []).append(int(position_text))
        for segment_id, indexes in by_segment.items():
            bucket, position = await self._segment(project_id, header, segment_id)
            words = bucket["segments"][position]["words"]
            for index in indexes:
                if index >= len(words):
                    raise ValidationFailed(f"Segment {segment_id} has no word {index}.")
                spans.append((words[index]["start"], words[index]["end"]))
        for start, end in spans:
            if end > header["durationSec"] + 1e-6:
                raise ValidationFailed(
                    f"Range {start}-{end} ends after the transcript ({header['durationSec']} s)."
                )
        return _merge_spans(spans)


def cut_operations(spans: list[tuple[float, float]], *, source: str) -> list[Document]:
    """The timeline JSON Patch that cuts `spans` of the source: one `cut` segment each.

    Public: the transcript's cuts and the filler removal make the same edit, so one
    function decides its shape."""
    return [
        {
            "op": "add",
            "path": "/segments/-",
            "value": {
                "id": f"cut-{uuid.uuid4().hex[:10]}",
                "start": start,
                "end": end,
                "kind": "cut",
                "source": source,
            },
        }
        for start, end in spans
    ]


def merge_spans(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Public name of the span merge the cuts use (filler removal merges the same way)."""
    return _merge_spans(spans)


def _hits(project_id: str, bucket: Document, terms: set[str]) -> list[SearchHit]:
    """The segments of a bucket that contain one of `terms`, with the matching words."""
    hits: list[SearchHit] = []
    for segment in bucket["segments"]:
        matched = [
            word
            for word in segment["words"]
            if {token.casefold() for token in _TOKEN.findall(word["text"])} & terms
        ]
        in_text = {token.casefold() for token in _TOKEN.findall(segment["text"])} & terms
        if not matched and not in_text:
            continue
        hits.append(
            SearchHit(
                project_id=project_id,
                segment_id=segment["id"],
                text=segment["text"],
                start=segment["start"],
                end=segment["end"],
                matched=[Word.model_validate(word) for word in matched],
            )
        )
    return hits


def _merge_spans(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted, with touching or overlapping spans joined (and empty ones dropped)."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(span for span in spans if span[1] > span[0]):
        if merged and start <= merged[-1][1] + 1e-9:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def stored_segment(segment: Document) -> StoredSegment:
    """A stored segment as the API returns it. Public: the legacy export reads segments
    the way the API does."""
    # What the service stored passed the request bounds on the way in; walking it again on
    # every read was most of a transcript window's time (docs/performance.md).
    with from_storage():
        return StoredSegment(
            id=segment["id"],
            start=segment["start"],
            end=segment["end"],
            speaker=segment.get("speaker"),
            text=segment["text"],
            words=[Word.model_validate(word) for word in segment["words"]],
            confidence=segment.get("confidence"),
            is_edited=segment.get("isEdited"),
            edited_text=segment.get("editedText"),
        )


def transcript_header(doc: Document) -> TranscriptHeader:
    """A stored header as the API returns it. Public: the legacy export reads headers the
    way the API does."""
    return TranscriptHeader(
        project_id=doc["projectId"],
        language=doc["language"],
        speakers=doc["speakers"],
        word_count=doc["wordCount"],
        segment_count=doc["segmentCount"],
        duration_sec=doc["durationSec"],
        bucket_count=doc["bucketCount"],
        version=doc["version"],
        updated_at=doc["updatedAt"],
        metadata=doc.get("metadata"),
    )
