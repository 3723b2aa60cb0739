"""Who is making a change, as every service method that writes receives it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: str
    request_id: str | None = None
    is_admin: bool = False

    @classmethod
    def system(cls, job: str) -> Actor:
        """Changes made by the service itself (retention), recorded under a named job."""
        return cls(user_id=f"system:{job}", request_id=None, is_admin=True)
