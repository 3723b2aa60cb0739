"""Accounts on the wire: snake_case on both surfaces, as the original web app sends them.

The request models list only what a client may set. Server-owned fields (`role`, `status`,
`is_email_verified`, `id`, `_id`, `created_at`, ...) are unknown fields there, so sending
one is a 422 naming it and nothing is written (`extra="forbid"`, inherited from
`WireModel` together with its check for `$`/dotted keys at any depth).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from snipix.accounts.passwords import MAX_LENGTH, password_problems, weak_password_message
from snipix.db.client import Document
from snipix.wire.models import Instant, WireModel

Role = Literal["user", "admin"]
Status = Literal["active", "inactive", "pending", "suspended", "deleted"]

MAX_EMAIL = 254  # RFC 5321's limit on a forward path
MAX_PREFERENCES_BYTES = 16_384
# Deliberately loose: one @, something before it, a dotted domain after it, no spaces.
# Whether the mailbox exists is only known by mailing it (out of scope here).
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_USERNAME = re.compile(r"[A-Za-z0-9_-]{3,50}")


def normalize_email(value: str) -> str:
    """The one form an email is stored and compared in: trimmed, lower-cased."""
    return value.strip().lower()


def _email(value: str) -> str:
    email = normalize_email(value)
    if len(email) > MAX_EMAIL or not _EMAIL.fullmatch(email):
        raise PydanticCustomError("email", "Enter an email address such as name@example.com.")
    return email


def _blank_is_none(value: object) -> object:
    # The web app's forms send "" for an optional field left empty.
    return None if isinstance(value, str) and not value.strip() else value


def _username(value: str) -> str:
    if not _USERNAME.fullmatch(value):
        raise PydanticCustomError(
            "username", "A username is 3-50 letters, digits, underscores or hyphens."
        )
    return value


def _avatar_url(value: str) -> str:
    if not value.lower().startswith(("https://", "http://")):
        raise PydanticCustomError("avatar_url", "The avatar must be an http(s) URL.")
    return value


def _preferences(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, separators=(",", ":"))) > MAX_PREFERENCES_BYTES:
        raise PydanticCustomError(
            "too_large",
            "Preferences may hold at most {limit} bytes of JSON.",
            {"limit": MAX_PREFERENCES_BYTES},
        )
    return value


def _strong(value: str) -> str:
    problems = password_problems(value)
    if problems:
        raise PydanticCustomError("weak_password", weak_password_message(problems))
    return value


Email = Annotated[str, StringConstraints(max_length=1_000), AfterValidator(_email)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Username = Annotated[
    # Bounded by length too, so the limit is in the OpenAPI document.
    Annotated[str, StringConstraints(max_length=50)] | None,
    BeforeValidator(_blank_is_none),
    AfterValidator(lambda v: None if v is None else _username(v)),
]
AvatarUrl = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=2_048)] | None,
    BeforeValidator(_blank_is_none),
    AfterValidator(lambda v: None if v is None else _avatar_url(v)),
]
Preferences = Annotated[dict[str, Any], AfterValidator(_preferences)]
NewPassword = Annotated[str, StringConstraints(max_length=MAX_LENGTH), AfterValidator(_strong)]
# Any string up to the bound: a sign-in never explains why a password is wrong.
Password = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LENGTH)]
RefreshToken = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class AuthModel(WireModel):
    """WireModel with the field names as they are: snake_case, like the original web app."""

    model_config = ConfigDict(alias_generator=None)


class RegisterRequest(AuthModel):
    email: Email
    name: Name
    password: NewPassword
    confirm_password: Password
    username: Username = None

    @model_validator(mode="after")
    def _passwords_match(self) -> Self:
        if self.confirm_password != self.password:
            raise PydanticCustomError("password_mismatch", "The two passwords do not match.")
        return self


class PasswordChange(AuthModel):
    """A new password for the signed-in account; the current one proves it is its owner."""

    current_password: Password
    new_password: NewPassword
    confirm_password: Password

    @model_validator(mode="after")
    def _checked(self) -> Self:
        if self.confirm_password != self.new_password:
            raise PydanticCustomError("password_mismatch", "The two new passwords do not match.")
        if self.new_password == self.current_password:
            raise PydanticCustomError(
                "same_password", "The new password must differ from the current one."
            )
        return self


EmailToken = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class EmailTokenRequest(AuthModel):
    """The token of a verification link (`/verify-email?token=...` in the web app)."""

    token: EmailToken


class ForgotPasswordRequest(AuthModel):
    email: Email


class PasswordReset(AuthModel):
    """The token of a reset link and the new password (the web app's field names)."""

    token: EmailToken
    new_password: NewPassword
    confirm_password: Password

    @model_validator(mode="after")
    def _passwords_match(self) -> Self:
        if self.confirm_password != self.new_password:
            raise PydanticCustomError("password_mismatch", "The two new passwords do not match.")
        return self


class Notice(AuthModel):
    """An answer with nothing to return but what happened."""

    message: str


class StatusChange(AuthModel):
    """An administrator suspends an account or lets it sign in again."""

    status: Literal["active", "suspended"]


class LoginRequest(AuthModel):
    # Not format-checked: a sign-in with a malformed email is just a failed sign-in.
    email: Annotated[str, StringConstraints(min_length=1, max_length=1_000)]
    password: Password
    remember_me: bool = False


class RefreshRequest(AuthModel):
    refresh_token: RefreshToken


class LogoutRequest(AuthModel):
    """Optional: without it, the session of the bearer access token is ended."""

    refresh_token: RefreshToken | None = None


class ProfileUpdate(AuthModel):
    """Only the fields sent change; `""` or null clears `username` and `avatar_url`."""

    name: Name | None = None
    username: Username = None
    avatar_url: AvatarUrl = None
    preferences: Preferences | None = None

    @field_validator("name", "preferences", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise PydanticCustomError("not_null", "May be left out, but not null.")
        return value

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.model_fields_set:
            raise PydanticCustomError(
                "empty_update", "Send at least one of name, username, avatar_url, preferences."
            )
        return self

    def changes(self) -> Document:
        """The stored fields this update sets (camelCase, as in the database)."""
        return {_STORED[field]: getattr(self, field) for field in self.model_fields_set}


_STORED: Final = {
    "name": "name",
    "username": "username",
    "avatar_url": "avatarUrl",
    "preferences": "preferences",
}


class User(AuthModel):
    """An account as its owner sees it; the fields the original web app's `UserResponse` reads.

    `id` and `_id` carry the same value (the web app reads `id`, its other models `_id`).
    """

    id: str
    mongo_id: str = Field(alias="_id")
    email: str
    name: str
    username: str | None
    avatar_url: str | None
    role: Role
    status: Status
    auth_provider: Literal["email", "google"] = "email"
    is_email_verified: bool
    last_login: Instant | None
    login_count: int
    total_session_time: int = Field(0, description="Not tracked by this service: always 0.")
    preferences: dict[str, Any]
    created_at: Instant
    updated_at: Instant

    @classmethod
    def from_document(cls, doc: Document) -> User:
        return cls(
            id=doc["_id"],
            mongo_id=doc["_id"],
            email=doc["email"],
            name=doc["name"],
            username=doc.get("username"),
            avatar_url=doc.get("avatarUrl"),
            role=doc.get("role", "user"),
            status=doc.get("status", "active"),
            is_email_verified=doc.get("emailVerified", False),
            last_login=doc.get("lastLoginAt"),
            login_count=doc.get("loginCount", 0),
            preferences=doc.get("preferences") or {},
            created_at=doc["createdAt"],
            updated_at=doc["updatedAt"],
        )


class TokenResponse(AuthModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth token type)
    expires_in: int = Field(description="Seconds until the access token expires.")
    user: User


class Enveloped[T](AuthModel):
    """The original web app's success envelope (`snipix.api.envelope.success`)."""

    success: Literal[True] = True
    data: T
    message: str = ""
    error: None = None
