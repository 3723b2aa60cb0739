"""What the web app's shapes share: the original request models' base, times on the wire,
and Snipix models built from original values (a 422 that names the original field)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from snipix.clock import iso_instant
from snipix.errors import ValidationFailed
from snipix.wire.models import SafeJson


class CompatRequest(SafeJson):
    """A request body of the original API: snake_case, unknown fields ignored (as the
    original backend did, so the unchanged web app's extra fields never fail a request).

    Ignored or not, no key anywhere may start with `$` or hold a `.`, and the body's shape
    is bounded (depth, arrays, strings) like every request's (`SafeJson`).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with `Z`, as JavaScript's `Date` parses it unambiguously."""
    return None if moment is None else iso_instant(moment)


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
