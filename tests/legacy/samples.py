"""Legacy files as the original app wrote them, and what the tests compare them with."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

from bson import json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.database import Database as SyncDatabase

from snipix.backup.files import JSON_OPTIONS
from tests.compat.samples import web_app_timeline
from tests.support import clean_env, run_snipix

Mongo = MongoClient[dict[str, Any]]
SyncDb = SyncDatabase[dict[str, Any]]

# The sample export's owner (an ObjectId of the original users collection).
ORIGINAL_OWNER = "68bece20fe5513fae995fef2"
WORDS = ("so", "we", "started", "the", "edit", "in", "march", "and", "um", "honestly")


def sample_projects() -> list[dict[str, Any]]:
    """The three projects of the original `sample_data.json`, verbatim."""
    return [
        {
            "_id": "68bece27fe5513fae995fef9",
            "name": "Sample Project 3",
            "description": "Third sample project",
            "user_id": ORIGINAL_OWNER,
            "created_at": "2025-09-08T05:37:59.792000",
            "updated_at": "2025-09-08T05:37:59.792000",
            "thumbnail": None,
            "duration": None,
        },
        {
            "_id": "68bece27fe5513fae995fef7",
            "name": "Sample Project 2",
            "description": "Second sample project",
            "user_id": ORIGINAL_OWNER,
            "created_at": "2025-09-08T05:37:59.383000",
            "updated_at": "2025-09-08T05:37:59.383000",
            "thumbnail": None,
            "duration": None,
        },
        {
            "_id": "68bece26fe5513fae995fef5",
            "name": "Sample Project 1",
            "description": "First sample project",
            "user_id": ORIGINAL_OWNER,
            "created_at": "2025-09-08T05:37:58.987000",
            "updated_at": "2025-09-08T05:37:58.987000",
            "thumbnail": None,
            "duration": None,
        },
    ]


def words(
    count: int, *, start: float = 0.0, speakers: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """`count` words of the original shape, in time order, with pauses now and then."""
    rng = random.Random(count)  # noqa: S311 - reproducible test data
    clock = start
    spoken = []
    for index in range(count):
        begin = round(clock, 3)
        end = round(begin + rng.uniform(0.1, 0.4), 3)
        word: dict[str, Any] = {
            "text": rng.choice(WORDS),
            "start": begin,
            "end": end,
            "confidence": round(rng.uniform(0.5, 1.0), 3),
            "is_filler": False,
            "speaker_id": speakers[(index // 40) % len(speakers)] if speakers else None,
        }
        word["is_filler"] = word["text"] == "um"
        spoken.append(word)
        clock = end + (1.5 if index % 57 == 56 else rng.uniform(0.01, 0.1))
    return spoken


def transcription(project_id: str, count: int) -> dict[str, Any]:
    """A transcription as the original export wrote it: segments of words."""
    spoken = words(count, speakers=("host", "guest"))
    segments = []
    for number, first in enumerate(range(0, count, 25)):
        group = spoken[first : first + 25]
        segments.append(
            {
                "id": f"seg-{number}",
                "start_time": group[0]["start"],
                "end_time": group[-1]["end"],
                "text": " ".join(word["text"] for word in group),
                "words": group,
                "speaker_id": group[0]["speaker_id"],
                "confidence": 0.9,
                "is_edited": number == 1,
                "edited_text": "corrected" if number == 1 else None,
            }
        )
    return {
        "project_id": project_id,
        "language": "en",
        "segments": segments,
        "model_used": "whisper-base",
        "processing_time": 12.5,
        "confidence_score": 0.91,
        "is_complete": True,
        "is_edited": True,
        "speaker_count": 2,
        "speakers": {"host": "Host", "guest": "Guest"},
        "created_at": "2025-09-08T06:00:00.250000",
    }


def timeline_state(variant: int = 0) -> dict[str, Any]:
    """The web app's timeline (layers of clips, keyframes, a long split id), varied."""
    state = web_app_timeline()
    state = copy.deepcopy(state)
    state["playhead_time"] = 1.25 + variant
    state["markers"] = [{"id": f"m{variant}", "time": 2.0, "label": "Cut here", "color": "red"}]
    return state


def export_file(*, transcript_words: int = 20_000) -> dict[str, Any]:
    """The sample export, grown: placeholder owners, timelines in the original shape (two
    versions of one), a long transcript, a deleted project, fields Snipix has no place for,
    and one invalid project."""
    projects = sample_projects()
    projects.append(
        {
            "_id": "68bece27fe5513fae995ff01",
            "name": "Wedding edit",
            "description": "Placeholder owner",
            "user_id": "test_user",
            "created_at": "2025-09-01T10:00:00.123456",
            "updated_at": "2025-09-02T11:30:00",
            "thumbnail": "/media/thumbnails/thumb_0834.jpg",
            "duration": 9000.0,
            "video_path": "media/videos/0834de0a.mp4",
            "trimmed_video_path": "media/videos/0834de0a_trimmed.mp4",
            "trimmed_duration": 3000.5,
            "status": "processing",
            "tags": ["client", "wedding"],
            "collaborators": ["someone"],
            "metadata": {"fps": 25},
        }
    )
    projects.append(
        {
            "_id": "68bece27fe5513fae995ff02",
            "name": "Old trailer",
            "description": "",
            "created_at": "2025-08-01T09:00:00Z",
            "updated_at": "2025-08-05T09:00:00+02:00",
            "status": "archived",
            "is_deleted": True,
            "deleted_at": "2025-08-06T00:00:00",
        }
    )
    projects.append(
        {
            "_id": "68bece27fe5513fae995ff03",
            "name": "",
            "user_id": "test_user",
            "created_at": "2025-09-03T00:00:00",
            "duration": -4,
        }
    )
    first = projects[0]["_id"]
    return {
        "projects": projects,
        "timeline_states": [
            {
                "project_id": first,
                "timeline_state": timeline_state(0),
                "version": 1,
                "created_at": "2025-09-08T05:40:00",
            },
            {
                "project_id": first,
                "timeline_state": timeline_state(1),
                "version": 2,
                "created_at": "2025-09-08T05:45:00.500000",
            },
            {
                "project_id": "68bece27fe5513fae995ff01",
                "timeline_state": timeline_state(2),
                "version": 7,
                "created_at": "2025-09-02T11:29:00",
                "description": "Quick Save",
                "change_summary": "Timeline saved via quick save",
            },
        ],
        "transcriptions": [transcription("68bece27fe5513fae995ff01", transcript_words)],
        "export_timestamp": "2025-09-08T05:38:05.885506",
        "user_id": ORIGINAL_OWNER,
    }


def store_file(count: int = 3, *, transcript_words: int = 300) -> dict[str, Any]:
    """The simple API's keyed store: `test_user` owners, timelines and flat word lists."""
    store: dict[str, Any] = {}
    for number in range(count):
        project_id = f"project_{number + 1}_{1757329653 + number}"
        store[project_id] = {
            "id": project_id,
            "name": f"Store project {number + 1}",
            "description": "From the simple API",
            "user_id": "test_user",
            "created_at": f"2025-09-08T11:{number % 60:02d}:53.{number:06d}",
            "updated_at": f"2025-09-08T12:{number % 60:02d}:00",
            "thumbnail": None,
            "duration": 600.0,
            "video_path": f"media/videos/{number}.mp4",
            "timeline_state": timeline_state(number) if number % 3 != 2 else None,
            "transcript_state": (
                {"words": words(transcript_words), "selected_words": ["0"]}
                if number % 2 == 0
                else None
            ),
        }
    return store


def write(path: Path, data: Any, *, indent: int | None = 2) -> Path:
    path.write_text(json.dumps(data, indent=indent), encoding="utf-8")
    return path


def snipix(
    args: list[str], mongodb_uri: str, database: str, cwd: Path, timeout_s: float = 300
) -> tuple[int, str, str]:
    result = run_snipix(
        args,
        env=clean_env(MONGODB_URI=mongodb_uri, MONGODB_DATABASE=database, LOG_LEVEL="WARNING"),
        cwd=cwd,
        timeout_s=timeout_s,
    )
    return result.returncode, result.stdout, result.stderr


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def contents(data: SyncDb) -> dict[str, list[str]]:
    """Every collection's documents in `_id` order as canonical Extended JSON (exact types,
    field order and values). The time an audit entry was written and when a migration was
    applied are the two clocks of a run, and are masked."""
    result: dict[str, list[str]] = {}
    for name in sorted(data.list_collection_names()):
        raw = data.get_collection(name, codec_options=CodecOptions(RawBSONDocument))
        docs = []
        for doc in raw.find({"_id": {"$ne": "__lock__"}}).sort("_id", 1):
            decoded = json_util.loads(json_util.dumps(doc, json_options=JSON_OPTIONS))
            if name == "audit_log":
                decoded["at"] = "<masked>"
            if name == "migrations":
                decoded.pop("appliedAt", None)
                decoded.pop("durationMs", None)
            docs.append(json_util.dumps(decoded, json_options=JSON_OPTIONS))
        if docs:
            result[name] = docs
    return result
