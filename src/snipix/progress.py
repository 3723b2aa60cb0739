"""How a long run (backup, restore, legacy import/export) reports how far it got.

The runs take a `Progress`; the CLI passes a bar, everything else `NoProgress`. Kept apart
from the runs so a command can hold the protocol without importing what reports through it.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Where a long run reports how far it got (a progress bar, or nothing)."""

    @property
    def active(self) -> bool:
        """Whether totals are wanted (counting documents costs a query)."""
        ...

    def start(self, label: str, total: int | None) -> None: ...

    def advance(self, count: int) -> None: ...


class NoProgress:
    active = False

    def start(self, label: str, total: int | None) -> None:
        pass

    def advance(self, count: int) -> None:
        pass
