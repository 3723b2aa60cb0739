"""What the compatibility routes share: the original request models' base, times on the
wire, Snipix models built from original values, and the one retry of a read-then-write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

from snipix.errors import ValidationFailed, VersionMismatch
from snipix.wire.models import SafeJson

# A change the web app sends carries no version. The adapter reads the current version,
# writes conditionally on it, and on a lost race reads and applies the change once more; a
# second loss in a row is answered 412 (the web app shows its error and the user retries).
WRITE_ATTEMPTS: Final = 2


class OriginalRequest(SafeJson):
    """A request body of the original API: snake_case, unknown fields ignored (as the
    original backend did, so the unchanged web app's extra fields never fail a request).

    Ignored or not, no key anywhere may start with `$` or hold a `.`, and the body's shape
    is bounded (depth, arrays, strings) like every request's (`SafeJson`).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with `Z`, as JavaScript's `Date` parses it unambiguously."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def checked[M: BaseModel](
    model: type[M],
    data: dict[str, Any],
    *,
    where: str,
    rename: Callable[[list[str]], list[str]] | None = None,
) -> M:
    """`model` built from original values, or 422 naming the place under `where` (with
    `rename` turning a location in Snipix's names into the original one)."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = [
            {
                "loc": [where, *_renamed([str(part) for part in item["loc"]], rename)],
                "msg": item["msg"],
                "type": item["type"],
            }
            for item in error.errors(include_input=False, include_url=False)
        ]
        first = problems[0]
        raise ValidationFailed(
            f"Invalid request: {'.'.join(first['loc'])}: {first['msg']}", details=problems
        ) from None


def _renamed(loc: list[str], rename: Callable[[list[str]], list[str]] | None) -> list[str]:
    return rename(loc) if rename is not None else loc


async def with_one_retry[T](write: Callable[[], Awaitable[T]]) -> T:
    """Run a read-then-conditional-write; once more if another change won the race."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            return await write()
        except VersionMismatch:
            if attempt == WRITE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")
