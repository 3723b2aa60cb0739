"""Recognised words into a transcript: segments split at pauses, fillers marked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from snipix.transcription.engines import RecognisedWord
from snipix.transcription.fillers import filler_flags
from snipix.transcripts.schemas import Segment, TranscriptMetadata, TranscriptUpload, Word

# A silence at least this long between two words starts a new segment (a sentence or a
# breath, as a reader sees it); a segment never holds more than MAX_WORDS words.
PAUSE_S: Final = 0.5
MAX_WORDS: Final = 60


def transcript_upload(
    words: Sequence[RecognisedWord],
    *,
    language: str,
    duration: float,
    model: str,
    processing_time_sec: float,
) -> TranscriptUpload:
    """The transcript of `words` (in time order), every time inside [0, duration]."""
    flags = filler_flags([word.text for word in words], language)
    groups: list[list[Word]] = []
    previous_end: float | None = None
    for word, filler in zip(words, flags, strict=True):
        start = min(max(0.0, word.start), duration)
        end = min(max(start, word.end), duration)
        item = Word(
            text=word.text,
            start=start,
            end=end,
            confidence=word.confidence,
            is_filler=True if filler else None,
        )
        if (
            not groups
            or previous_end is None
            or start - previous_end >= PAUSE_S
            or len(groups[-1]) >= MAX_WORDS
        ):
            groups.append([])
        groups[-1].append(item)
        previous_end = end
    segments = [
        Segment(
            id=f"s{index:06d}",
            start=group[0].start,
            end=max(word.end for word in group),
            words=group,
            confidence=round(sum(w.confidence or 0.0 for w in group) / len(group), 4),
        )
        for index, group in enumerate(groups)
    ]
    mean = sum(w.confidence or 0.0 for g in groups for w in g) / max(1, len(words))
    return TranscriptUpload(
        language=language,
        segments=segments,
        metadata=TranscriptMetadata(
            model=model,
            processing_time_sec=round(processing_time_sec, 3),
            confidence=round(mean, 4),
            complete=True,
        ),
    )
