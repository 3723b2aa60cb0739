"""The base of every model a client sends or receives.

camelCase on the wire (and in MongoDB), unknown fields rejected by name, and no key that
MongoDB could read as an operator (`$where`) or a path (`a.b`) anywhere in user JSON: the
check runs on the raw input before any field is parsed, so it also covers free-form
mappings (timeline effect parameters, preferences) that `extra="forbid"` cannot see.

The same walk bounds the shape of every request body: nesting depth, array
length, string length and integers (64 bits), whatever the fields say, so no body can
make validation (or anything after it) expensive or reach the driver with a value it
cannot encode. Each field has its own, smaller limits on top of these.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from snipix.clock import iso_instant
from snipix.errors import ValidationFailed

# Input bounds. Deep enough for any document of the API (a timeline state with a
# keyframe's free-form value is ~10 levels), shallow enough that recursive code after the
# check never nears a recursion limit.
MAX_DEPTH: Final = 32
# The longest list a request may carry: a cut of 50,000 transcript word ids.
MAX_ARRAY_ITEMS: Final = 50_000
# The longest string a request may carry: a web-app clip's text content (100,000).
MAX_STRING_CHARS: Final = 100_000
# The largest integer MongoDB can store (BSON int64).
MAX_INT: Final = 2**63 - 1


def _unsafe(key: str) -> bool:
    return key.startswith("$") or "." in key or "\x00" in key


def json_problem(value: Any, *, max_depth: int = MAX_DEPTH) -> tuple[str, str, str] | None:
    """The first bound `value` breaks, as (error type, message, dotted location), or None.

    Checked: nesting deeper than `max_depth`, an array over MAX_ARRAY_ITEMS items, a string
    (or key) over MAX_STRING_CHARS characters, an integer outside 64 bits, a key starting
    with `$` or holding a `.` or NUL. Recursion stops at `max_depth`, so the walk itself is
    bounded.
    """
    if _within(value, 0, max_depth):
        return None
    # Rare: walk again, keeping the path, to name the place.
    return _walk(value, (), 0, max_depth)


_LEAVES: Final = frozenset({float, bool, type(None)})


def _within(value: Any, depth: int, max_depth: int) -> bool:
    """Whether `value` keeps every bound: `_walk`'s verdict without its bookkeeping.

    Every request body and imported document goes through this: it builds no path and
    checks the common leaves (exact str, int, float, bool, None) inline instead of calling
    itself for each. Anything of another type (a subclass) gets `_walk`'s own answer.
    """
    kind = type(value)
    if kind is str:
        return len(value) <= MAX_STRING_CHARS
    if kind is int:
        return bool(-MAX_INT <= value <= MAX_INT)
    if kind in _LEAVES:
        return True
    if kind is not list and kind is not dict:
        return _walk(value, (), depth, max_depth) is None
    if depth >= max_depth or len(value) > MAX_ARRAY_ITEMS:
        return False
    if kind is dict:
        for key in value:
            if type(key) is not str or len(key) > MAX_STRING_CHARS or _unsafe(key):
                return _walk(value, (), depth, max_depth) is None
        items = value.values()
    else:
        items = value
    deeper = depth + 1
    for item in items:
        item_kind = type(item)
        if item_kind is str:
            if len(item) > MAX_STRING_CHARS:
                return False
        elif item_kind is int:
            if not -MAX_INT <= item <= MAX_INT:
                return False
        elif item_kind not in _LEAVES and not _within(item, deeper, max_depth):
            return False
    return True


def _where(path: tuple[str, ...]) -> str:
    return ".".join(path) or "(root)"


def _walk(
    value: Any, path: tuple[str, ...], depth: int, max_depth: int
) -> tuple[str, str, str] | None:
    # The location is joined only for a problem: this walk runs over every request body.
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            return "string_too_long", f"longer than {MAX_STRING_CHARS:,} characters", _where(path)
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if not -MAX_INT <= value <= MAX_INT:
            # MongoDB stores 64-bit integers; the driver raised OverflowError (a 500) for
            # a larger one reaching a query or a document (preferences, version fields).
            return "int_too_large", "integers must fit in 64 bits", _where(path)
        return None
    if not isinstance(value, dict | list):
        return None
    if depth >= max_depth:
        return "json_too_deep", f"nested deeper than {max_depth} levels", _where(path)
    if len(value) > MAX_ARRAY_ITEMS:
        what = "items" if isinstance(value, list) else "keys"
        return "too_long", f"more than {MAX_ARRAY_ITEMS:,} {what}", _where(path)
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _walk(item, (*path, str(index)), depth + 1, max_depth)
            if found is not None:
                return found
        return None
    for key, item in value.items():
        key_text = str(key)
        if _unsafe(key_text):
            return (
                "unsafe_key",
                "field names may not start with '$' or contain '.'",
                _where((*path, key_text[:100])),
            )
        if len(key_text) > MAX_STRING_CHARS:
            return (
                "string_too_long",
                f"a key longer than {MAX_STRING_CHARS:,} characters",
                _where(path),
            )
        found = _walk(item, (*path, key_text), depth + 1, max_depth)
        if found is not None:
            return found
    return None


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether parsed JSON nests arrays/objects more than `limit` levels (an explicit stack:
    no recursion, whatever the input)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def find_unsafe_key(value: Any, path: tuple[str, ...] = (), depth: int = 0) -> str | None:
    """The dotted location of the first key starting with `$` or containing `.`, if any."""
    if depth > 64:
        return ".".join(path) or "(root)"
    if isinstance(value, dict):
        for key, item in value.items():
            key_text = str(key)
            if _unsafe(key_text):
                return ".".join((*path, key_text))
            found = find_unsafe_key(item, (*path, key_text), depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find_unsafe_key(item, (*path, str(index)), depth + 1)
            if found is not None:
                return found
    return None


def check_json(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """`ValidationFailed` (422) naming the place when `value` breaks a bound of
    `json_problem`: for JSON a route parses itself (a JSON Patch, an .otio document)."""
    problem = json_problem(value, max_depth=max_depth)
    if problem is not None:
        kind, message, where = problem
        raise ValidationFailed(
            f"Invalid request: {where}: {message}.",
            details=[{"loc": ["body", *where.split(".")], "msg": message, "type": kind}],
        )


# Set while a model's input is being validated: the walk below covers the whole input, so
# the models nested inside it need not walk their part again. Walking at every level cost
# O(size x depth), most of the legacy import's validation time (docs/performance.md).
_WALKED: ContextVar[bool] = ContextVar("snipix_json_walked", default=False)


@contextmanager
def from_storage() -> Iterator[None]:
    """Models built from what the service itself stored skip the bounds walk below (the
    data passed it on the way in; the walk was a visible share of an uncached read). The
    models' own validation still runs."""
    token = _WALKED.set(True)
    try:
        yield
    finally:
        _WALKED.reset(token)


class SafeJson(BaseModel):
    """Any request model: its raw input is bounded and free of operator keys (see module)."""

    @model_validator(mode="wrap")
    @classmethod
    def _reject_unsafe_json(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if _WALKED.get():
            return handler(data)
        problem = json_problem(data)
        if problem is not None:
            kind, message, where = problem
            if kind == "unsafe_key":
                raise PydanticCustomError(
                    "unsafe_key",
                    "Field names may not start with '$' or contain '.': {where}",
                    {"where": where},
                )
            raise PydanticCustomError(
                kind, "{where}: {message}", {"where": where, "message": message}
            )
        token = _WALKED.set(True)
        try:
            return handler(data)
        finally:
            _WALKED.reset(token)


class WireModel(SafeJson):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )


# A time a client receives: always the same ISO 8601 shape (`iso_instant`), so clients may
# compare two as strings. Pydantic's own form drops the fraction on a whole second.
Instant = Annotated[
    datetime,
    PlainSerializer(iso_instant, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _written_time(value: Any) -> Any:
    if isinstance(value, datetime) or (isinstance(value, str) and not _NUMBER.fullmatch(value)):
        return value
    raise ValueError("expected an ISO 8601 date-time, such as 2026-01-31T12:00:00Z")


# A time a client sends: ISO 8601 text only. Pydantic's own datetime also reads a number
# (or a numeric string such as `?until=0.5`) as seconds since 1970, which no client means.
IsoTime = Annotated[datetime, BeforeValidator(_written_time)]
