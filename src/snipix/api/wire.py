"""The base of every model a client sends or receives.

camelCase on the wire (and in MongoDB), unknown fields rejected by name, and no key that
MongoDB could read as an operator (`$where`) or a path (`a.b`) anywhere in user JSON: the
check runs on the raw input before any field is parsed, so it also covers free-form
mappings (timeline effect parameters, preferences) that `extra="forbid"` cannot see.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from snipix.errors import ValidationFailed

# Deep enough for any legitimate document, shallow enough that a hostile one cannot make
# the check itself expensive.
MAX_DEPTH = 64


def find_unsafe_key(value: Any, path: tuple[str, ...] = (), depth: int = 0) -> str | None:
    """The dotted location of the first key starting with `$` or containing `.`, if any."""
    if depth > MAX_DEPTH:
        return ".".join(path) or "(root)"
    if isinstance(value, dict):
        for key, item in value.items():
            key_text = str(key)
            if key_text.startswith("$") or "." in key_text or "\x00" in key_text:
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


class WireModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _reject_operator_keys(cls, data: Any) -> Any:
        where = find_unsafe_key(data)
        if where is not None:
            raise PydanticCustomError(
                "unsafe_key",
                "Field names may not start with '$' or contain '.': {where}",
                {"where": where},
            )
        return data


def unsafe_query_parameter(params: list[tuple[str, str]]) -> str | None:
    """The first query parameter that could smuggle an operator, if any.

    Query values are only ever used as typed scalars, never parsed into a filter, but a
    client that sends `?status[$ne]=draft` or `?q={"$gt": ""}` is either probing or broken
    and deserves a 422 rather than a silently literal match.
    """
    for name, value in params:
        if any(mark in name for mark in ("$", ".", "[", "]")):
            return name
        stripped = value.lstrip()
        if stripped[:1] in {"{", "["}:
            try:
                parsed = json.loads(stripped)
            except ValueError:
                continue
            if find_unsafe_key(parsed) is not None:
                return name
    return None


async def reject_unsafe_query(request: Request) -> None:
    """Router dependency: 422 for a query parameter shaped like an operator injection."""
    name = unsafe_query_parameter(request.query_params.multi_items())
    if name is not None:
        raise ValidationFailed(
            f"Query parameter {name[:100]!r} is not accepted: names and values may not carry "
            "'$' operators or dotted paths.",
            details=[{"loc": ["query", name], "msg": "unsafe parameter", "type": "unsafe_key"}],
        )
