"""The embedded engine's document codec, validating each value once instead of once per level.

mongoeco turns every document it stores (and every document it takes in, through
`DocumentCodec.to_internal`) into its tagged-JSON form with `DocumentCodec.encode`. That
function starts each container by calling `validate_bson_value` on it, which walks the
whole subtree below, and then recurses into the children, each of which walks *its* subtree
again: a value at depth d is validated d times, and each time a number is wrapped in a new
BSON wrapper object only to be thrown away. For a transcript bucket (segments, words) that
was most of the engine's time on an insert.

`single_pass_encode` gives the same result and raises the same errors: it validates the
whole document first, with the stock walk's order and checks (the JSON scalars, checked
inline, take no wrapper), then encodes the plain JSON shapes (dicts, lists, strings,
numbers, booleans, null; mongoeco's own immutable documents and arrays) itself and hands
every other value (dates, ids, binary, SON, the BSON wrappers...) to the stock `encode`.
`tests/db/test_engine_contract_codec.py` compares the two on every BSON type and on
generated documents.

Installed process-wide by `install_single_pass_codec()` (idempotent) when the engine is
built: the codec is a class of static methods that mongoeco calls by name.

The same goes for copying. An `update_one` on the engine's write path deep-copies the
document about ten times (the working copy, the update plan's "before" and "after", the
mutation outcome's images, which its `__post_init__` copies again and again on every
`dataclasses.replace`, and the change record's image): for a timeline head that was a
third of the engine's time on an autosave. `document_copy` is `copy.deepcopy` for what a
document is made of: plain dicts and lists are rebuilt, immutable scalars shared, and
anything else (SON, mongoeco's own immutable containers, ids, BSON wrappers, objects that
are not documents) goes to `copy.deepcopy` itself. `install_document_copy()` makes it the
`deepcopy` of the mongoeco modules on that path.

And for the wire: every command the proxy receives and every reply it sends goes through
`decode_wire_value` / `encode_wire_value` (mongoeco's BSON types to and from PyMongo's),
which test each value against a score of types, strings included. `wire_decode` and
`wire_encode` rebuild plain dicts and lists and pass the JSON scalars and dates through
as the stock functions do, handing any other value to them.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

import mongoeco.api._async.collection
import mongoeco.api._async.raw_batch_cursor
import mongoeco.core.operators
import mongoeco.core.projections
import mongoeco.engines._sqlite_modify_ops
import mongoeco.engines.results
import mongoeco.engines.sqlite
import mongoeco.wire.bson_bridge
import mongoeco.wire.protocol
from mongoeco.core.bson_scalars import (
    INT64_MAX,
    INT64_MIN,
    BsonScalarOverflowError,
    validate_bson_value,
)
from mongoeco.core.codec import DocumentCodec, _InternalBsonArray, _InternalBsonDocument

# The stock functions, kept before anything is replaced.
STOCK_ENCODE: Final = DocumentCodec.encode
_is_tagged_value: Final = DocumentCodec._is_tagged_value
_tagged_value: Final = DocumentCodec._tagged_value

# Exact types encoded here. A subclass of dict (SON, a user's mapping) goes to the stock
# encode, which knows how mongoeco treats each.
_DOCUMENTS: Final[frozenset[type]] = frozenset((dict, _InternalBsonDocument))
_ARRAYS: Final[frozenset[type]] = frozenset((list, tuple, _InternalBsonArray))
_AS_IS: Final[frozenset[type]] = frozenset((str, float, bool, int, type(None)))


def validate_once(value: Any) -> None:
    """`validate_bson_value` over the whole of `value`, with its order and errors.

    The stock walk pops from the end of a stack and pushes a container's children; so
    does this one, so the first bad value found (and the error raised) is the same. JSON
    scalars are checked inline; every other scalar goes through the stock check.
    """
    pending = [value]
    pop = pending.pop
    push = pending.extend
    while pending:
        current = pop()
        kind = type(current)
        if kind is str or kind is float or kind is bool or current is None:
            continue
        if kind is int:
            if current < INT64_MIN or current > INT64_MAX:
                raise BsonScalarOverflowError("integer exceeds BSON int64 range")
            continue
        if isinstance(current, dict):
            for key in current:
                if not isinstance(key, str):
                    raise TypeError("BSON document keys must be strings")
            push(current.values())
            continue
        if isinstance(current, list | tuple):
            push(current)
            continue
        validate_bson_value(current)


def _encode_validated(data: Any) -> Any:
    kind = type(data)
    if kind in _AS_IS:
        return data
    if kind in _DOCUMENTS:
        encoded = {key: _encode_validated(value) for key, value in data.items()}
        if _is_tagged_value(encoded):
            return _tagged_value("dict", encoded)
        return encoded
    if kind in _ARRAYS:
        return [_encode_validated(item) for item in data]
    return STOCK_ENCODE(data)


def single_pass_encode(data: Any) -> Any:
    """`DocumentCodec.encode(data)`, validating each value once (see module).

    Only a document is taken here: the stock encode validates a document's whole subtree
    before anything else, which is what `validate_once` repeats. Anything else (an array,
    whose elements the stock encode validates one by one, a scalar, SON) goes to the stock
    encode, whose recursion comes back here for each document inside it.
    """
    if type(data) not in _DOCUMENTS:
        return STOCK_ENCODE(data)
    validate_once(data)
    return _encode_validated(data)


def install_single_pass_codec() -> None:
    """Route `DocumentCodec.encode` through `single_pass_encode` (idempotent)."""
    DocumentCodec.encode = staticmethod(single_pass_encode)  # type: ignore[method-assign]


# --- copying documents -------------------------------------------------------------------

STOCK_DEEPCOPY: Final = copy.deepcopy

# The mongoeco modules on the read and write paths of a document that call
# `deepcopy(...)` by that module-level name (`from copy import deepcopy`).
COPYING_MODULES: Final[tuple[ModuleType, ...]] = (
    mongoeco.engines.results,
    mongoeco.engines._sqlite_modify_ops,
    mongoeco.engines.sqlite,
    mongoeco.core.operators,
    mongoeco.core.projections,
    mongoeco.api._async.collection,
)

# Values a copy may share with the original: nothing can change them in place.
_IMMUTABLE: Final[frozenset[type]] = frozenset(
    (str, int, float, bool, type(None), bytes, datetime.datetime)
)


def _copied(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                return STOCK_DEEPCOPY(value)
            out[key] = item if type(item) in _IMMUTABLE else _copied(item)
        return out
    if kind is list:
        return [item if type(item) in _IMMUTABLE else _copied(item) for item in value]
    if kind in _IMMUTABLE:
        return value
    return STOCK_DEEPCOPY(value)


def document_copy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """`copy.deepcopy(value)`, several times faster on documents (see module).

    Equal to the stock copy and sharing no mutable container with `value`. Two places
    where it differs, neither possible in a BSON document: a container referenced twice
    is copied twice (the stock copy keeps the sharing), and a cycle through plain dicts
    and lists is a `RecursionError`. A call with a `memo` (a copy in progress elsewhere)
    is the stock copy's.
    """
    if memo is not None:
        return STOCK_DEEPCOPY(value, memo)
    return _copied(value)


def install_document_copy() -> None:
    """Make `document_copy` the `deepcopy` of every module in `COPYING_MODULES` (idempotent).

    Refuses, naming the module, if one of them no longer holds the stock `deepcopy` under
    that name: mongoeco changed how it copies and the override must be looked at again.
    """
    for module in COPYING_MODULES:
        current = getattr(module, "deepcopy", None)
        if current is not STOCK_DEEPCOPY and current is not document_copy:
            raise RuntimeError(f"{module.__name__}.deepcopy is not copy.deepcopy any more")
    for module in COPYING_MODULES:
        module.deepcopy = document_copy  # type: ignore[attr-defined]


# --- mutation outcomes take ownership of their images ---------------------------------------

STOCK_OUTCOME_POST_INIT: Final = mongoeco.engines.results.MutationOutcome.__post_init__


class _Owned:
    """An image the outcome's copy must not copy: the engine made it for this outcome."""

    __slots__ = ("document",)

    def __init__(self, document: Any) -> None:
        self.document = document

    def __deepcopy__(self, memo: dict[int, Any]) -> _Owned:
        return self


def _owning_post_init(self: Any) -> None:
    """`MutationOutcome.__post_init__` without its copies of the two images.

    Every SQLite-engine path that builds an outcome hands it images it has just copied for
    it (`_sqlite_modify_ops`: `deepcopy(original_document)`, `deepcopy(document)`,
    `deepcopy(new_doc)`), and `dataclasses.replace` (adding the commit sequence) hands it
    its own: copying them again, twice per update, was a third of the engine's time on an
    autosave of a large timeline. The stock checks run unchanged (on stand-ins that are
    None exactly where the images are), then the images are put back as they were given.
    """
    before, after = self.before_document, self.after_document
    object.__setattr__(self, "before_document", None if before is None else _Owned(before))
    object.__setattr__(self, "after_document", None if after is None else _Owned(after))
    try:
        STOCK_OUTCOME_POST_INIT(self)
    finally:
        object.__setattr__(self, "before_document", before)
        object.__setattr__(self, "after_document", after)


def install_owning_outcomes() -> None:
    """Make mutation outcomes keep the images they are given (idempotent)."""
    outcome = mongoeco.engines.results.MutationOutcome
    if outcome.__post_init__ not in (STOCK_OUTCOME_POST_INIT, _owning_post_init):
        raise RuntimeError("mongoeco's MutationOutcome.__post_init__ changed")
    outcome.__post_init__ = _owning_post_init  # type: ignore[method-assign]


# --- wire values ---------------------------------------------------------------------------

STOCK_WIRE_ENCODE: Final = mongoeco.wire.bson_bridge.encode_wire_value
STOCK_WIRE_DECODE: Final = mongoeco.wire.bson_bridge.decode_wire_value

# Values both stock functions return as they are (none of their type tests matches them).
_WIRE_AS_IS: Final[frozenset[type]] = frozenset(
    (str, int, float, bool, type(None), datetime.datetime)
)


def _json_first(stock: Callable[[Any], Any], name: str) -> Callable[[Any], Any]:
    """`stock` with plain dicts, lists and JSON scalars handled before it is asked."""

    def convert(value: Any) -> Any:
        kind = type(value)
        if kind is dict:
            return {
                key: item if type(item) in _WIRE_AS_IS else convert(item)
                for key, item in value.items()
            }
        if kind is list:
            return [item if type(item) in _WIRE_AS_IS else convert(item) for item in value]
        if kind in _WIRE_AS_IS:
            return value
        return stock(value)

    convert.__name__ = convert.__qualname__ = name
    return convert


# `encode_wire_value` (mongoeco's values as PyMongo's BSON types) and `decode_wire_value`
# (PyMongo's as mongoeco's), JSON first.
wire_encode: Final = _json_first(STOCK_WIRE_ENCODE, "wire_encode")
wire_decode: Final = _json_first(STOCK_WIRE_DECODE, "wire_decode")


# Where each function is looked up by name: the bridge itself (its recursion), the
# protocol (every command and reply) and raw cursor batches.
_WIRE_NAMES: Final[tuple[tuple[ModuleType, str, Any, Any], ...]] = (
    (mongoeco.wire.bson_bridge, "encode_wire_value", STOCK_WIRE_ENCODE, wire_encode),
    (mongoeco.wire.bson_bridge, "decode_wire_value", STOCK_WIRE_DECODE, wire_decode),
    (mongoeco.wire.protocol, "encode_wire_value", STOCK_WIRE_ENCODE, wire_encode),
    (mongoeco.wire.protocol, "decode_wire_value", STOCK_WIRE_DECODE, wire_decode),
    (mongoeco.api._async.raw_batch_cursor, "encode_wire_value", STOCK_WIRE_ENCODE, wire_encode),
)


def install_wire_values() -> None:
    """Route the wire conversions through `wire_encode` / `wire_decode` (idempotent);
    refuses, naming the place, if one no longer holds the stock function."""
    for module, name, stock, ours in _WIRE_NAMES:
        current = getattr(module, name, None)
        if current is not stock and current is not ours:
            raise RuntimeError(f"{module.__name__}.{name} is not mongoeco's own any more")
    for module, name, _stock, ours in _WIRE_NAMES:
        setattr(module, name, ours)
