"""The original web app's timeline version shape and its mapping to and from Snipix's models.

The routes that speak it are `snipix.api.compat.timeline`; the legacy import and export read
and write the same shape (`snipix.legacy`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import Field, field_validator

from snipix.compat.common import CompatRequest, iso
from snipix.compat.timeline_mapping import CompatTimelineState, to_compat
from snipix.projects.schemas import PROJECT_ID_PATTERN
from snipix.timelines.schemas import TimelineState

# Together they fit a revision label (500 characters) with the line break between them.
MAX_DESCRIPTION: Final = 200
MAX_CHANGE_SUMMARY: Final = 299


class CompatTimelineSave(CompatRequest):
    project_id: Annotated[str, Field(pattern=PROJECT_ID_PATTERN)]
    timeline_state: CompatTimelineState
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION)] | None = None
    change_summary: Annotated[str, Field(max_length=MAX_CHANGE_SUMMARY)] | None = None

    @field_validator("description")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        # The line break separates description from change summary in the revision label.
        if value is not None and ("\n" in value or "\r" in value):
            raise ValueError("a description is one line")
        return value


def revision_label(description: str | None, change_summary: str | None) -> str | None:
    """The revision label carrying both: `description`, a line break, `change_summary`."""
    if change_summary is None:
        return description
    return f"{description or ''}\n{change_summary}"


def label_notes(label: str | None) -> tuple[str | None, str | None]:
    """`(description, change_summary)` from a revision label (any label: `/api/v1` ones
    read as a description)."""
    if label is None:
        return None, None
    description, newline, change_summary = label.partition("\n")
    if not newline:
        return label, None
    return description or None, change_summary


def timeline_document(
    project_id: str,
    version: int,
    state: TimelineState,
    *,
    is_current: bool,
    label: str | None,
    created_by: str,
    created_at: datetime | None,
) -> dict[str, Any]:
    """One version in the original shape."""
    description, change_summary = label_notes(label)
    at = iso(created_at)
    return {
        "_id": f"{project_id}:{version}",
        "project_id": project_id,
        "version": version,
        "is_current": is_current,
        "description": description,
        "created_by": created_by,
        "change_summary": change_summary,
        "created_at": at,
        "updated_at": at,
        "timeline_state": to_compat(state),
    }
