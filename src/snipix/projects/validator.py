"""The server-side `$jsonSchema` for `projects`: the last line of defence.

The service validates every field with Pydantic first; this mirrors the rules that matter
most (required fields, types, bounds, the status set) so that no other writer — a script,
a future bug, a shell session — can store a project the API could not read back.
"""

from __future__ import annotations

from typing import Any

import structlog
from pymongo.errors import OperationFailure

from snipix.db.client import Database
from snipix.projects.schemas import MAX_DESCRIPTION, MAX_TAGS, ProjectStatus

log = structlog.get_logger(__name__)

_STRING_ID = {"bsonType": "string", "minLength": 1, "maxLength": 200}

PROJECT_SCHEMA: dict[str, Any] = {
    "bsonType": "object",
    "required": [
        "_id",
        "userId",
        "name",
        "status",
        "tags",
        "createdAt",
        "updatedAt",
        "version",
        "isDeleted",
    ],
    "properties": {
        "_id": _STRING_ID,
        "userId": _STRING_ID,
        "name": {"bsonType": "string", "minLength": 1, "maxLength": 200},
        "description": {"bsonType": "string", "maxLength": MAX_DESCRIPTION},
        "status": {"enum": [member.value for member in ProjectStatus]},
        "tags": {
            "bsonType": "array",
            "maxItems": MAX_TAGS,
            "items": {"bsonType": "string", "minLength": 1, "maxLength": 50},
        },
        "media": {"bsonType": ["object", "null"]},
        "createdAt": {"bsonType": "date"},
        "updatedAt": {"bsonType": "date"},
        "version": {"bsonType": ["int", "long"], "minimum": 1},
        "isDeleted": {"bsonType": "bool"},
        "deletedAt": {"bsonType": ["date", "null"]},
    },
}

_OPTIONS: dict[str, Any] = {
    "validator": {"$jsonSchema": PROJECT_SCHEMA},
    "validationLevel": "strict",
    "validationAction": "error",
}


async def install_project_validator(db: Database) -> None:
    """Create `projects` with the validator, or attach it to the existing collection.

    The embedded engine has no `collMod`: there an existing but empty collection is
    recreated with the validator (start-up builds the indexes after migrations), and a
    non-empty one keeps working without it, with a logged notice.
    """
    if not await db.list_collection_names(filter={"name": "projects"}):
        await db.create_collection("projects", **_OPTIONS)
        return
    try:
        await db.command({"collMod": "projects", **_OPTIONS})
    except OperationFailure as error:
        if "collMod" not in str(error):
            raise
        if await db["projects"].find_one({}, {"_id": 1}) is None:
            await db.drop_collection("projects")
            await db.create_collection("projects", **_OPTIONS)
            return
        log.warning(
            "project validator not installed",
            reason="the database engine does not support collMod; the service still "
            "validates every write",
        )
