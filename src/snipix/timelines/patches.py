"""JSON Patch (RFC 6902) applied with its exact inverse, and the MongoDB update it implies.

The inverse is computed here, op by op against the state each op sees (a removal shifts
later indices, so an inverse computed against the original state would be wrong), never
taken from the client. The MongoDB update touches only what changed: `$set` on the
changed field, or on the enclosing array when an op inserts into or removes from one.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from jsonpointer import JsonPointer, JsonPointerException

from snipix.errors import Conflict, ValidationFailed

Operation = dict[str, Any]
# Past this many separately changed places, one `$set` of the whole state is cheaper.
MAX_UPDATE_PATHS = 64


class PatchFailed(ValidationFailed):
    """The patch does not apply to the state it was sent for."""


_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})
_WITH_VALUE = frozenset({"add", "replace", "test"})
_WITH_FROM = frozenset({"move", "copy"})


def check_operations(operations: list[Operation], roots: frozenset[str]) -> None:
    """Reject, before anything is read or applied, an operation that is malformed or aims
    outside the document it applies to: every `path` and `from` must be a JSON Pointer
    whose first member is one of `roots` (the timeline state's fields), or the whole
    document (""). Server-owned fields (`/version`, `/userId`, `/_id`, ...) are no member
    of the state, so a patch naming one is refused here, with the operation's index.

    a `move` or `copy` without `from` (or with a non-string one) raised a
    KeyError/TypeError deep in the apply loop: a 500.
    """
    for index, operation in enumerate(operations):
        op = operation.get("op")
        if not isinstance(op, str) or op not in _OPS:
            raise PatchFailed(
                f"operation {index}: `op` must be one of {', '.join(sorted(_OPS))}; "
                "nothing was changed"
            )
        members = ["path", *(["from"] if op in _WITH_FROM else [])]
        if op in _WITH_VALUE and "value" not in operation:
            raise PatchFailed(f"operation {index} ({op}): needs a `value`; nothing was changed")
        for member in members:
            pointer = operation.get(member)
            if not isinstance(pointer, str):
                raise PatchFailed(
                    f"operation {index} ({op}): `{member}` must be a JSON Pointer string; "
                    "nothing was changed"
                )
            parts = _parts(pointer)
            if parts and parts[0] not in roots:
                raise PatchFailed(
                    f"operation {index} ({op} {pointer[:200]}): {parts[0][:100]!r} is not a "
                    f"field of the timeline state ({', '.join(sorted(roots))}); "
                    "nothing was changed"
                )


def _parts(path: str) -> list[str]:
    try:
        return list(JsonPointer(path).parts)
    except JsonPointerException as error:
        raise PatchFailed(f"Invalid JSON Pointer {path!r}: {error}") from None


def _resolve(document: Any, parts: list[str]) -> tuple[bool, Any]:
    node = document
    for part in parts:
        if isinstance(node, dict):
            if part not in node:
                return False, None
            node = node[part]
        elif isinstance(node, list):
            if not (part.isascii() and part.isdigit()) or int(part) >= len(node):
                return False, None
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _pointer(parts: list[str]) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


class AppliedPatch:
    """The result of applying a patch: the new document, the inverse, the changed roots."""

    def __init__(self, document: Any, inverse: list[Operation], roots: list[list[str]]) -> None:
        self.document = document
        self.inverse = inverse
        self.roots = roots


def apply_patch(
    document: Any, operations: list[Operation], *, in_place: bool = False
) -> AppliedPatch:
    """Apply `operations` in order to a copy of `document` (or to `document` itself when
    the caller owns it, as a rebuild does: copying a large state is not free)."""
    try:
        jsonpatch.JsonPatch(operations)  # validates op names and required members
    except (jsonpatch.InvalidJsonPatch, TypeError) as error:
        raise PatchFailed(f"Invalid JSON Patch: {error}") from None
    current = document if in_place else copy.deepcopy(document)
    inverse: list[Operation] = []
    roots: list[list[str]] = []
    for index, operation in enumerate(operations):
        try:
            current, undo, changed = _apply_one(current, operation, index)
        except PatchFailed as error:
            raise PatchFailed(
                f"operation {index} ({operation.get('op')} {operation.get('path')}): "
                f"{error.message}; nothing was changed"
            ) from None
        roots += changed
        inverse = undo + inverse
    return AppliedPatch(current, inverse, _collapse(roots))


def _apply_one(
    current: Any, operation: Operation, index: int
) -> tuple[Any, list[Operation], list[list[str]]]:
    op = operation["op"]
    undo: list[Operation] = []
    roots: list[list[str]] = []
    if op in {"add", "replace", "remove"}:
        undo, root = _inverse_of(current, op, _parts(operation["path"]))
        roots.append(root)
    elif op == "copy":
        undo, root = _inverse_of(current, "add", _parts(operation["path"]))
        roots.append(root)
    elif op == "move":
        # RFC 6902: a move is a removal followed by an add of the removed value, done here
        # in those two steps so each inverse is computed against the state it meets.
        source = _parts(operation["from"])
        target = _parts(operation["path"])
        if target[: len(source)] == source and target != source:
            raise PatchFailed("cannot move a value into itself")
        found, value = _resolve(current, source)
        if not found:
            raise PatchFailed(f"path {operation['from']} does not exist")
        removal = {"op": "remove", "path": operation["from"]}
        current, undo_remove, root_from = _apply_one(current, removal, index)
        addition = {"op": "add", "path": operation["path"], "value": value}
        current, undo_add, root_to = _apply_one(current, addition, index)
        return current, undo_add + undo_remove, root_from + root_to
    try:
        current = jsonpatch.JsonPatch([operation]).apply(current, in_place=True)
    except jsonpatch.JsonPatchTestFailed as error:
        raise Conflict(
            f"The patch's test operation {index} failed ({error}); nothing was changed."
        ) from None
    except (jsonpatch.JsonPatchException, JsonPointerException, TypeError, IndexError) as error:
        raise PatchFailed(str(error)) from None
    return current, undo, roots


def _inverse_of(document: Any, op: str, parts: list[str]) -> tuple[list[Operation], list[str]]:
    """The ops that undo `op` at `parts` on `document`, and the root the op changes."""
    if not parts:
        return [{"op": "replace", "path": "", "value": copy.deepcopy(document)}], []
    parent_found, parent = _resolve(document, parts[:-1])
    if not parent_found:
        raise PatchFailed(f"path {_pointer(parts)}: its parent does not exist")
    key = parts[-1]
    if isinstance(parent, list):
        root = parts[:-1]
        if op == "add":
            position = len(parent) if key == "-" else _index(key, len(parent) + 1, parts)
            return [{"op": "remove", "path": _pointer([*root, str(position)])}], root
        position = _index(key, len(parent), parts)
        old = copy.deepcopy(parent[position])
        if op == "remove":
            return [{"op": "add", "path": _pointer(parts), "value": old}], root
        return [{"op": "replace", "path": _pointer(parts), "value": old}], parts
    if not isinstance(parent, dict):
        raise PatchFailed(f"path {_pointer(parts)}: its parent is not an object or array")
    exists = key in parent
    if op == "add":
        if exists:
            return [
                {"op": "replace", "path": _pointer(parts), "value": copy.deepcopy(parent[key])}
            ], parts
        return [{"op": "remove", "path": _pointer(parts)}], parts
    if not exists:
        raise PatchFailed(f"path {_pointer(parts)} does not exist")
    old = copy.deepcopy(parent[key])
    if op == "remove":
        return [{"op": "add", "path": _pointer(parts), "value": old}], parts
    return [{"op": "replace", "path": _pointer(parts), "value": old}], parts


def _index(key: str, size: int, parts: list[str]) -> int:
    if (
        not (key.isascii() and key.isdigit())
        or (len(key) > 1 and key.startswith("0"))
        or int(key) >= size
    ):
        raise PatchFailed(f"path {_pointer(parts)}: no array element {key}")
    return int(key)


def _collapse(roots: list[list[str]]) -> list[list[str]]:
    """Drop every root inside another one (the outer `$set` covers it)."""
    unique = {tuple(root) for root in roots}
    kept: list[list[str]] = []
    for root in sorted(unique, key=len):
        if not any(root[: len(outer)] == tuple(outer) for outer in kept):
            kept.append(list(root))
    return kept


def mongo_update(
    field: str, roots: list[list[str]], after: Any
) -> tuple[dict[str, Any], list[str]]:
    """`$set` values and `$unset` paths that turn the stored `field` into `after`.

    Each changed root is set from the (validated, normalised) new state, so what is
    stored is exactly what a full save would have stored.
    """
    if not roots or [] in roots or len(roots) > MAX_UPDATE_PATHS:
        return {field: after}, []
    sets: dict[str, Any] = {}
    unsets: list[str] = []
    for root in roots:
        found, value = _resolve(after, root)
        path = ".".join([field, *root])
        if found:
            sets[path] = value
        else:
            unsets.append(path)
    return sets, unsets


def diff(before: Any, after: Any) -> tuple[list[Operation], list[Operation]]:
    """Forward and inverse patches between two states (full saves, rollbacks, imports)."""
    forward: list[Operation] = jsonpatch.make_patch(before, after).patch
    inverse: list[Operation] = jsonpatch.make_patch(after, before).patch
    return forward, inverse
