"""What the compatibility routes share: the one retry of a read-then-write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from snipix.errors import VersionMismatch

# A change the web app sends carries no version. The adapter reads the current version,
# writes conditionally on it, and on a lost race reads and applies the change once more; a
# second loss in a row is answered 412 (the web app shows its error and the user retries).
WRITE_ATTEMPTS: Final = 2


async def with_one_retry[T](write: Callable[[], Awaitable[T]]) -> T:
    """Run a read-then-conditional-write; once more if another change won the race."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            return await write()
        except VersionMismatch:
            if attempt == WRITE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")
