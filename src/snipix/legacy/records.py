"""Each legacy record validated with the models the API uses, into what would be stored.

Nothing here has rules of its own where the API has one: a project is a `ProjectCreate`
(media through `compat.projects`' field mapping), a timeline goes through
`compat.timeline_mapping.to_state` and the timeline service's own validation and size
limit, a transcription through `compat.transcriptions.transcript_upload` and the
transcript service's segment documents. A record that fails is `Invalid`, with every
problem as (field, reason), the field named in the legacy file's terms.

Every part carries a `digest` of its normalised content (what would be stored, dates
included), so two files that say the same thing in different words (key order, defaults
left out, `Z` or no zone) import as the same checksum.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from pydantic import ValidationError

from snipix.clock import to_millisecond
from snipix.compat.common import checked
from snipix.compat.projects import MEDIA_FIELDS, compat_media_names
from snipix.compat.timeline import MAX_CHANGE_SUMMARY, MAX_DESCRIPTION, revision_label
from snipix.compat.timeline_mapping import to_state
from snipix.compat.transcriptions import CompatTranscription, transcript_upload
from snipix.db.client import Document
from snipix.errors import SnipixError, TooLarge, ValidationFailed
from snipix.projects.schemas import PROJECT_ID_PATTERN, Media, ProjectCreate, ProjectStatus
from snipix.timelines.schemas import state_document
from snipix.timelines.service import validated_state
from snipix.transcripts.schemas import TranscriptUpload
from snipix.transcripts.service import segment_document
from snipix.wire.models import find_unsafe_key

# Owners that name nobody: the simple API's default user, and none at all.
PLACEHOLDER_OWNERS: Final = frozenset({"test_user", ""})
DEFAULT_LABEL: Final = "Imported from the simple API"
# The original backend's statuses (active | processing | archived), and Snipix's own.
STATUS: Final[dict[str, ProjectStatus]] = {
    "active": ProjectStatus.DRAFT,
    "processing": ProjectStatus.RENDERING,
    "archived": ProjectStatus.ARCHIVED,
    **{status.value: status for status in ProjectStatus},
}
# Project fields with a place in Snipix (or none needed); any other field is kept as
# `legacyImport.extra` and written back by the exporter.
PROJECT_FIELDS: Final = frozenset(
    {
        "_id",
        "id",
        "name",
        "description",
        "user_id",
        "created_at",
        "updated_at",
        "status",
        "tags",
        "is_deleted",
        "deleted_at",
        "timeline_state",
        "transcript_state",
        *MEDIA_FIELDS,
        # The compatibility API's copies of the dates, and its version counter (an imported
        # project starts at version 1).
        "createdAt",
        "updatedAt",
        "version",
    }
)
MAX_EXTRA_BYTES: Final = 64 * 1024
# A flat word list (the store's `transcript_state`) becomes segments: a new one at a
# change of speaker, after a pause this long, or at this many words.
SEGMENT_PAUSE_S: Final = 1.0
SEGMENT_WORDS: Final = 100
# The transcript service refuses a transcript that ends after its media (upload()).
DURATION_TOLERANCE_S: Final = 1e-6


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    reason: str


class Invalid(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in problems))
        self.problems = problems


def digest(value: Any) -> str:
    """sha256 of canonical JSON (sorted keys; datetimes as RFC 3339)."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _from_failure(error: SnipixError, *, root: str, replace: str | None = None) -> list[Problem]:
    """The problems of a `ValidationFailed` whose details carry `loc` lists."""
    details = error.details if isinstance(error.details, list) else []
    problems = []
    for item in details:
        loc = [str(part) for part in item.get("loc", []) if str(part)]
        if replace is not None and loc[:1] == [replace]:
            loc = loc[1:]
        problems.append(Problem(".".join(part for part in [root, *loc] if part), item["msg"]))
    return problems or [Problem(root, error.message)]


def _from_pydantic(error: ValidationError, *, root: str) -> list[Problem]:
    return [
        Problem(".".join([root, *(str(part) for part in item["loc"])]).strip("."), item["msg"])
        for item in error.errors(include_input=False, include_url=False)
    ]


def parse_date(value: Any) -> datetime:
    """An ISO 8601 date (no zone = UTC) or epoch seconds, to the millisecond MongoDB keeps."""
    if isinstance(value, bool):
        raise ValueError("not a date")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("not a date")
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date") from None
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    else:
        raise ValueError("not a date")
    return to_millisecond(moment)


def format_date(moment: datetime | None) -> str | None:
    """As the original export wrote dates: ISO 8601, UTC, no zone."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds")


def _date(
    record: Mapping[str, Any], name: str, problems: list[Problem], *, required: bool
) -> datetime | None:
    value = record.get(name)
    if value is None:
        if required:
            problems.append(Problem(name, "missing"))
        return None
    try:
        return parse_date(value)
    except ValueError as error:
        problems.append(Problem(name, str(error)))
        return None


def record_id(value: Any) -> str | None:
    """A record's id as written (`"..."` or Extended JSON `{"$oid": "..."}`), if any."""
    if isinstance(value, dict) and isinstance(value.get("$oid"), str):
        return str(value["$oid"])
    if isinstance(value, str):
        return value
    return None


# --- projects ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    id: str
    # The owner as written in the file; None for a placeholder (`test_user`, empty, none).
    owner: str | None
    owner_written: str | None
    fields: dict[str, Any]
    extra: dict[str, Any]
    duration: float | None
    digest: str

    @property
    def updated_at(self) -> datetime:
        moment: datetime = self.fields["updatedAt"]
        return moment

    def document(self, owner: str, checksum: str) -> Document:
        """The project as the service's create stores it (same fields, same order), with
        the original id and dates, and the import's checksum (and unplaced fields)."""
        imported: Document = {"checksum": checksum}
        if self.extra:
            imported["extra"] = self.extra
        return {"_id": self.id, "userId": owner, **self.fields, "legacyImport": imported}


def project_record(value: Any, *, key: str | None) -> ProjectRecord:
    """A project record of either shape (`key`: its key in the store shape)."""
    if not isinstance(value, dict):
        raise Invalid([Problem("", "a project record must be a JSON object")])
    problems: list[Problem] = []
    project_id = record_id(value.get("_id")) or record_id(value.get("id")) or key
    if project_id is None:
        raise Invalid([Problem("_id", "missing")])
    if not re.fullmatch(PROJECT_ID_PATTERN, project_id):
        problems.append(Problem("_id", "must be 1-64 letters, digits, '_' or '-'"))
    if key is not None and project_id != key:
        problems.append(Problem("id", f"{project_id!r} differs from its key {key!r}"))
    written = value.get("user_id")
    if written is not None and not isinstance(written, str):
        problems.append(Problem("user_id", "must be a string"))
        written = None
    owner = written.strip() if isinstance(written, str) else None
    if owner in PLACEHOLDER_OWNERS:
        owner = None

    status_written = value.get("status")
    status = STATUS.get(status_written) if isinstance(status_written, str) else None
    if status_written is not None and status is None:
        problems.append(
            Problem("status", f"unknown status {status_written!r} (active, processing, archived)")
        )
    media_values = {
        target: (None if value.get(source) == "" else value.get(source))
        for source, target in MEDIA_FIELDS.items()
    }
    media: Media | None = None
    if any(item is not None for item in media_values.values()):
        try:
            media = checked(Media, media_values, where="", rename=compat_media_names)
        except ValidationFailed as error:
            problems += _from_failure(error, root="")
    data: ProjectCreate | None = None
    try:
        data = checked(
            ProjectCreate,
            {
                "name": value.get("name") if value.get("name") is not None else "",
                "description": value.get("description") or "",
                "tags": value.get("tags") if value.get("tags") is not None else [],
                "status": status or ProjectStatus.DRAFT,
            },
            where="",
        )
    except ValidationFailed as error:
        problems += _from_failure(error, root="")

    created = _date(value, "created_at", problems, required=True)
    updated = _date(value, "updated_at", problems, required=False) or created
    deleted = value.get("is_deleted", False)
    if deleted is None:
        deleted = False
    if not isinstance(deleted, bool):
        problems.append(Problem("is_deleted", "must be true or false"))
        deleted = False
    deleted_at = _date(value, "deleted_at", problems, required=False) if deleted else None

    extra = {name: item for name, item in value.items() if name not in PROJECT_FIELDS}
    unsafe = find_unsafe_key(extra)
    if unsafe is not None:
        problems.append(Problem(unsafe, "field names may not start with '$' or contain '.'"))
    elif len(orjson.dumps(extra)) > MAX_EXTRA_BYTES:
        problems.append(
            Problem(
                ",".join(sorted(extra)), f"unknown fields larger than {MAX_EXTRA_BYTES:,} bytes"
            )
        )
    if problems or data is None or created is None or updated is None:
        raise Invalid(problems)
    fields: dict[str, Any] = {
        "name": data.name,
        "description": data.description,
        "status": data.status.value,
        "tags": data.tags,
        "media": media.model_dump(mode="python") if media is not None else None,
        "createdAt": created,
        "updatedAt": updated,
        "version": 1,
        "isDeleted": deleted,
        "deletedAt": (deleted_at or updated) if deleted else None,
    }
    return ProjectRecord(
        id=project_id,
        owner=owner,
        owner_written=written,
        fields=fields,
        extra=extra,
        duration=media.duration_sec if media is not None else None,
        digest=digest({"id": project_id, "fields": fields, "extra": extra}),
    )


# --- timelines ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelinePart:
    # The state as the timeline service stores it (validated, normalised).
    state: dict[str, Any]
    label: str
    # When it was saved; None: when its project was last updated.
    at: datetime | None
    # Newest wins when a project has several: (is current, version).
    rank: tuple[int, int]
    digest: str


def timeline_part(
    original: Any,
    *,
    max_bytes: int,
    description: Any = None,
    change_summary: Any = None,
    at: datetime | None = None,
    rank: tuple[int, int] = (0, 0),
) -> TimelinePart:
    """A `timeline_state` in the web app's shape, validated as the service validates a save."""
    if not isinstance(original, dict):
        raise Invalid([Problem("timeline_state", "must be an object")])
    try:
        state = to_state(original)
        stored = validated_state(state_document(state), max_bytes)
    except ValidationError as error:
        raise Invalid(_from_pydantic(error, root="timeline_state")) from None
    except ValidationFailed as error:
        raise Invalid(
            _from_failure(error, root="timeline_state", replace="timeline_state")
        ) from None
    except TooLarge as error:
        raise Invalid([Problem("timeline_state", error.message)]) from None
    problems: list[Problem] = []
    for name, value, limit in (
        ("description", description, MAX_DESCRIPTION),
        ("change_summary", change_summary, MAX_CHANGE_SUMMARY),
    ):
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            problems.append(Problem(name, f"must be a string of at most {limit} characters"))
    if isinstance(description, str) and ("\n" in description or "\r" in description):
        problems.append(Problem("description", "a description is one line"))
    if problems:
        raise Invalid(problems)
    label = revision_label(description, change_summary) or DEFAULT_LABEL
    return TimelinePart(
        state=stored,
        label=label,
        at=at,
        rank=rank,
        digest=digest({"state": stored, "label": label, "at": at}),
    )


def export_timeline(value: Any, *, max_bytes: int) -> tuple[str | None, TimelinePart]:
    """A `timeline_states` element: its project id and its part (`Invalid` names the id)."""
    if not isinstance(value, dict):
        raise Invalid([Problem("", "a timeline record must be a JSON object")])
    project_id = record_id(value.get("project_id"))
    problems: list[Problem] = []
    at = _date(value, "updated_at", problems, required=False) or _date(
        value, "created_at", problems, required=False
    )
    version = value.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        problems.append(Problem("version", "must be an integer"))
        version = None
    current = value.get("is_current") is True
    if problems:
        raise Invalid(problems)
    part = timeline_part(
        value.get("timeline_state"),
        max_bytes=max_bytes,
        description=value.get("description"),
        change_summary=value.get("change_summary"),
        at=at,
        rank=(int(current), version or 0),
    )
    return project_id, part


# --- transcripts -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TranscriptPart:
    upload: TranscriptUpload
    # The segments as the transcript service stores them, in order.
    segments: list[Document]
    at: datetime | None
    last_end: float
    words: int
    digest: str

    @property
    def generation(self) -> str:
        """Derived from the content: a re-run writes the same buckets under the same ids,
        and a different transcript never mixes with a leftover of another."""
        return self.digest[:12]

    def header(self, project_id: str, owner: str, *, buckets: int, at: datetime) -> Document:
        """The header as the service's upload publishes it (first version)."""
        upload = self.upload
        header: Document = {
            "_id": project_id,
            "projectId": project_id,
            "userId": owner,
            "language": upload.language,
            "speakers": [speaker.model_dump(mode="json") for speaker in upload.speakers],
            "wordCount": self.words,
            "segmentCount": len(self.segments),
            "durationSec": self.last_end,
            "bucketCount": buckets,
            "generation": self.generation,
            "version": 1,
            "updatedAt": at,
        }
        if upload.metadata is not None:
            header["metadata"] = upload.metadata.model_dump(mode="json")
        return header


def transcript_part(value: Any, *, root: str = "transcription") -> TranscriptPart:
    """A transcription in the original shape (segments with words), validated as the
    compatibility route's upload validates it."""
    if not isinstance(value, dict):
        raise Invalid([Problem(root, "must be an object")])
    problems: list[Problem] = []
    at = _date(value, "updated_at", problems, required=False) or _date(
        value, "created_at", problems, required=False
    )
    raw = dict(value)
    segments = raw.get("segments")
    if isinstance(segments, list):
        # The original backend gave a segment without an id a random UUID; here it gets
        # the id the transcript service assigns (s000000...), the same on every run.
        raw["segments"] = [
            {**segment, "id": f"s{index:06d}"}
            if isinstance(segment, dict) and segment.get("id") is None
            else segment
            for index, segment in enumerate(segments)
        ]
    try:
        body = CompatTranscription.model_validate(raw)
        upload = transcript_upload(body, None)
    except ValidationError as error:
        raise Invalid(_from_pydantic(error, root=root)) from None
    except ValidationFailed as error:
        raise Invalid(_from_failure(error, root=root, replace="body")) from None
    if problems:
        raise Invalid(problems)
    documents = [
        segment_document(segment, segment.id or f"s{index:06d}")
        for index, segment in enumerate(upload.segments)
    ]
    if len({segment["id"] for segment in documents}) != len(documents):
        raise Invalid([Problem(f"{root}.segments", "segment ids are used twice")])
    return TranscriptPart(
        upload=upload,
        segments=documents,
        at=at,
        last_end=max((segment.end for segment in upload.segments), default=0.0),
        words=sum(len(segment["words"]) for segment in documents),
        digest=digest({"upload": upload.model_dump(mode="json"), "at": at}),
    )


def export_transcript(value: Any) -> tuple[str | None, TranscriptPart]:
    """A `transcriptions` element: its project id and its part."""
    if not isinstance(value, dict):
        raise Invalid([Problem("", "a transcription record must be a JSON object")])
    return record_id(value.get("project_id")), transcript_part(value)


def segments_from_words(words: Iterable[Any]) -> list[dict[str, Any]]:
    """The store's flat word list as original segments (see SEGMENT_PAUSE_S)."""
    segments: list[dict[str, Any]] = []
    current: list[Any] = []

    def close() -> None:
        if not current:
            return
        texts = [word.get("text") for word in current if isinstance(word, dict)]
        segments.append(
            {
                "id": f"s{len(segments):06d}",
                "start_time": _number(current[0], "start"),
                "end_time": max(_number(word, "end") for word in current),
                "text": " ".join(text for text in texts if isinstance(text, str)),
                "words": current,
                "speaker_id": current[0].get("speaker_id")
                if isinstance(current[0], dict)
                else None,
            }
        )

    for word in words:
        if current:
            previous = current[-1]
            speaker = word.get("speaker_id") if isinstance(word, dict) else None
            before = previous.get("speaker_id") if isinstance(previous, dict) else None
            pause = _number(word, "start") - _number(previous, "end")
            if speaker != before or pause >= SEGMENT_PAUSE_S or len(current) >= SEGMENT_WORDS:
                close()
                current = []
        current.append(word)
    close()
    return segments


def _number(word: Any, name: str) -> float:
    value = word.get(name) if isinstance(word, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return 0.0  # the word's own validation reports it


def store_transcript(value: Any) -> TranscriptPart | None:
    """The store's `transcript_state` ({words, selected_words}, or a transcription);
    None when it holds no words. The selection (`selected_words`) is editor state."""
    if value is None:
        return None
    if isinstance(value, list):
        value = {"words": value}
    if not isinstance(value, dict):
        raise Invalid([Problem("transcript_state", "must be an object")])
    if "segments" in value:
        return transcript_part(value, root="transcript_state")
    words = value.get("words")
    if words is None or words == []:
        return None
    if not isinstance(words, list):
        raise Invalid([Problem("transcript_state.words", "must be an array")])
    return transcript_part(
        {"language": value.get("language") or "en", "segments": segments_from_words(words)},
        root="transcript_state",
    )


def too_long(last_end: float, duration: float | None) -> Problem | None:
    """The transcript service's rule (`upload`): a transcript may not end after its media."""
    if duration is not None and last_end > duration + DURATION_TOLERANCE_S:
        return Problem(
            "segments",
            f"The transcript ends at {last_end:.3f} s but the media lasts {duration:.3f} s.",
        )
    return None
