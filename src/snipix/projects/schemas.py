"""Projects on the wire. Server-owned fields (ids, owner, times, version) are never read
from a client: they are absent from the create and update models, so sending one is a 422
naming the field."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from snipix.accounts.schemas import Email
from snipix.projects.members import Role
from snipix.wire.models import Instant, WireModel, from_storage
from snipix.wire.pages import CursorModel
from snipix.wire.versions import MAX_VERSION

MAX_TAGS = 20
MAX_DESCRIPTION = 5_000
PROJECT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION)]
# A tag never starts with `$`, so `?tag=` can never read as an operator.
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50, pattern=r"^[^$]")
]
Location = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2_048)]
# A media file's place under the media root: `<projectId>/<hex name>.<extension>`.
StoredFile = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}/[0-9a-f]{32}\.[a-z0-9]{1,8}$")
]


def _unique_tags(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_unique_tags)]


class ProjectStatus(StrEnum):
    DRAFT = "draft"
    EDITING = "editing"
    RENDERING = "rendering"
    READY = "ready"
    ARCHIVED = "archived"


class Media(WireModel):
    """The project's source video: a reference and its metadata, never the bytes."""

    source: Location | None = Field(None, description="Path or URL of the source video.")
    # Strict: a boolean (or a numeric string) is not a size or a duration.
    duration_sec: float | None = Field(None, ge=0, le=7 * 86_400, allow_inf_nan=False, strict=True)
    size_bytes: int | None = Field(None, ge=0, le=2**53, strict=True)
    mime_type: str | None = Field(None, pattern=r"^[\w.+-]{1,64}/[\w.+-]{1,64}$")
    width: int | None = Field(None, ge=1, le=16_384, strict=True)
    height: int | None = Field(None, ge=1, le=16_384, strict=True)
    fps: float | None = Field(None, gt=0, le=1_000, allow_inf_nan=False, strict=True)
    thumbnail: Location | None = Field(None, description="Path or URL of a thumbnail image.")
    trimmed_source: Location | None = Field(
        None, description="Path or URL of the trimmed render of the source (the web app's trim)."
    )
    trimmed_duration_sec: float | None = Field(
        None, ge=0, le=7 * 86_400, allow_inf_nan=False, strict=True
    )
    # Set by the media service (POST /media/upload, /media/trim-video): where the stored
    # files are, relative to the media root, as `<projectId>/<name>`. Only files in the
    # project's own folder are ever served, whatever a client writes here.
    source_file: StoredFile | None = Field(
        None, description="The uploaded video, relative to the media root (server-set)."
    )
    thumbnail_file: StoredFile | None = Field(
        None, description="The upload's JPEG thumbnail, relative to the media root (server-set)."
    )
    trimmed_file: StoredFile | None = Field(
        None, description="The trimmed render, relative to the media root (server-set)."
    )


class ProjectCreate(WireModel):
    name: Name
    description: Description = ""
    tags: Tags = Field(default_factory=list)
    media: Media | None = None
    status: ProjectStatus = ProjectStatus.DRAFT


class ProjectUpdate(WireModel):
    """Only the fields sent change; `null` clears `description` or `media`."""

    name: Name | None = None
    description: Description | None = None
    tags: Tags | None = None
    media: Media | None = None
    status: ProjectStatus | None = None
    base_version: int | None = Field(
        None,
        ge=1,
        le=MAX_VERSION,
        description="Alternative to `If-Match`: the version this change is based on.",
    )

    @model_validator(mode="after")
    def _required_fields_stay_set(self) -> Self:
        for name in ("name", "tags", "status"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null; leave it out to keep it unchanged")
        if not self.model_fields_set - {"base_version"}:
            raise ValueError("nothing to change: send at least one field")
        return self

    def changes(self) -> dict[str, Any]:
        """The stored fields this update sets (camelCase); `description: null` clears it."""
        sent = self.model_fields_set - {"base_version"}
        changes = self.model_dump(mode="json", include=sent)
        if "description" in changes and changes["description"] is None:
            changes["description"] = ""
        return changes


# The metadata a version snapshot keeps and a rollback restores.
METADATA_FIELDS = ("name", "description", "status", "tags", "media")


class Project(WireModel):
    id: str
    user_id: str
    name: str
    description: str
    status: ProjectStatus
    tags: list[str]
    media: Media | None
    created_at: Instant
    updated_at: Instant
    version: int
    is_deleted: bool
    deleted_at: Instant | None = None

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Project:
        with from_storage():
            return cls._from_document(doc)

    @classmethod
    def _from_document(cls, doc: dict[str, Any]) -> Project:
        return cls(
            id=doc["_id"],
            user_id=doc["userId"],
            name=doc["name"],
            description=doc.get("description", ""),
            status=doc["status"],
            tags=doc.get("tags", []),
            media=doc.get("media"),
            created_at=doc["createdAt"],
            updated_at=doc["updatedAt"],
            version=doc["version"],
            is_deleted=doc.get("isDeleted", False),
            deleted_at=doc.get("deletedAt"),
        )


class ProjectVersion(WireModel):
    """A project's metadata as it was at one version."""

    version: int
    name: str
    description: str
    status: ProjectStatus
    tags: list[str]
    media: Media | None
    is_deleted: bool
    created_at: Instant = Field(description="When this version was made.")
    current: bool = Field(description="True for the project's current version.")

    @classmethod
    def from_snapshot(
        cls, version: int, snapshot: dict[str, Any], *, created_at: datetime, current: bool
    ) -> ProjectVersion:
        return cls(
            version=version,
            name=snapshot["name"],
            description=snapshot.get("description", ""),
            status=snapshot["status"],
            tags=snapshot.get("tags", []),
            media=snapshot.get("media"),
            is_deleted=snapshot.get("isDeleted", False),
            created_at=created_at,
            current=current,
        )


class Rollback(WireModel):
    version: int = Field(
        ge=1, le=MAX_VERSION, description="The version whose metadata becomes current again."
    )


class SortField(StrEnum):
    UPDATED_AT = "updatedAt"
    CREATED_AT = "createdAt"


class ListCursor(CursorModel):
    t: datetime
    id: str


class SearchCursor(CursorModel):
    # Ranked results have no stable key to resume from; the offset is bounded (MAX_SEARCH).
    o: int = Field(ge=0, le=MAX_VERSION)


class VersionCursor(CursorModel):
    v: int = Field(ge=1, le=MAX_VERSION)


class PurgeReport(WireModel):
    project_id: str
    deleted: dict[str, int] = Field(description="Documents removed, by collection.")


# --- sharing ---------------------------------------------------------------------------

# A user id as the identity layer accepts it (a token's `sub`, the dev header).
UserId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:@-]{1,200}$")]


class MemberRole(StrEnum):
    """What a member other than the owner may be given (the owner is the project's)."""

    EDITOR = "editor"
    VIEWER = "viewer"


class RoleFilter(StrEnum):
    """`?role=` of the project list: the caller's own, one shared role, or every share."""

    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"
    SHARED = "shared"


class ProjectEntry(Project):
    """A project in the caller's list or search, with the caller's role in it."""

    role: Role

    @classmethod
    def listed(cls, doc: dict[str, Any], role: Role) -> ProjectEntry:
        with from_storage():
            return cls(**Project._from_document(doc).model_dump(), role=role)


class Member(WireModel):
    """One person a project is shared with; the owner is listed first, from the project."""

    user_id: str
    role: Role
    added_at: Instant | None = None
    added_by: str | None = None
    updated_at: Instant | None = None

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Member:
        with from_storage():
            return cls(
                user_id=doc["userId"],
                role=Role(doc["role"]),
                added_at=doc.get("addedAt"),
                added_by=doc.get("addedBy"),
                updated_at=doc.get("updatedAt"),
            )


class MemberInvite(WireModel):
    """Share the project with an existing account, named by its id or its email."""

    user_id: UserId | None = None
    email: Email | None = None
    role: MemberRole

    @model_validator(mode="after")
    def _one_account(self) -> Self:
        if (self.user_id is None) == (self.email is None):
            raise ValueError("send exactly one of userId and email")
        return self


class MemberUpdate(WireModel):
    role: MemberRole


class MemberList(WireModel):
    items: list[Member]
