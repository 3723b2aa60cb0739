"""Audit entries as clients read them (admins, and owners for their own projects)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from snipix.wire.models import Instant, WireModel
from snipix.wire.pages import CursorModel


class AuditEntry(WireModel):
    id: str
    at: Instant
    user_id: str = Field(description="Who made the change (`system:<job>` for the service).")
    owner_id: str | None = Field(None, description="Whose resource it is.")
    action: str = Field(examples=["project.updated"])
    entity: str = Field(examples=["project"])
    entity_id: str
    version: int | None = Field(None, description="The version the change produced.")
    request_id: str | None = None
    summary: dict[str, Any] = Field(
        default_factory=dict, description="What changed (field names, versions), never payloads."
    )

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> AuditEntry:
        fields = {key: value for key, value in doc.items() if key != "_id"}
        return cls.model_validate({**fields, "id": str(doc["_id"])})


class AuditCursor(CursorModel):
    at: Instant
    id: str
