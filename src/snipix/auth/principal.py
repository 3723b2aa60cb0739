"""The identity a request acts as, independent of how it was proven."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in user: the token's `sub` (or the dev header) and the roles granted.

    Frozen, so a dependency cached for the request cannot be altered by one endpoint and
    seen differently by another.
    """

    user_id: str
    roles: frozenset[str] = frozenset()
    # The session generation of a token this service issued (its `gen` claim; 0 when a
    # token from before the claim names a session). None for a principal this service
    # keeps no sessions for (an identity provider's token, the dev header): nothing to
    # check it against.
    generation: int | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles
