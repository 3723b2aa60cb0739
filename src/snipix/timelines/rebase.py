"""Rebasing a stale JSON Patch onto the revisions saved since its base (operational
transformation for JSON, conservative).

An editor's autosave names the version it was made on (`If-Match`). When other revisions
were saved since, the patch is moved over them instead of refused, if and only if it
touches nothing they touched; array positions are then shifted across their inserts and
removals in the same array, as operational transformation does for lists. Anything this
module cannot prove safe is a conflict, answered 412 as before: a lost edit is worse than
a reload.

How an operation is seen here: each RFC 6902 operation becomes one or two primitives,
resolved against the state it applies to (so an index into an array is known to be one,
and an append `-` has a concrete position):

- `insert` (an `add` into an array; the second half of a `move` or `copy` into one): a new
  element at a position. It touches no existing element; it shifts the later ones.
- `remove` (a `remove` from an array; the first half of a `move` out of one): the element
  and everything inside it; later elements shift back.
- `write` (`replace`; `add`/`remove` of an object member; a `move` or `copy` half on an
  object): the node at the path and everything inside it.
- `read` (`test`; the source of a `copy`): the node and everything inside it, unchanged.

Two primitives clash when one's node is the other's node, ancestor or descendant (a write
under a replaced parent, a test of a changed field, two writes of one field), except that
an insert touches only its array and the array's ancestors, plus the element at its
position (inserting before an element that the other side removes or replaces is taken as
a conflict: which element it meant to precede is no longer clear). Two inserts never
clash; at the same position the one saved first stays first. Reads never clash with reads,
and a revision's own `test` operations are ignored (they already passed).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from jsonpointer import JsonPointer, JsonPointerException

from snipix.errors import SnipixError
from snipix.timelines.patches import Operation, apply_patch

Kind = Literal["insert", "remove", "write", "read"]
# What resolving a path that does not fit the state raises (a patch made on another state).
_UNRESOLVED = (JsonPointerException, LookupError, ValueError, TypeError)
# At most this many clashes are named in an answer: enough to show the editor what
# collided, bounded so a large conflicting patch does not make a large error body.
MAX_CLASHES = 20


@dataclass(frozen=True, slots=True)
class Concurrent:
    """One revision saved after the patch's base: its version, forward patch and inverse."""

    version: int
    forward: list[Operation]
    inverse: list[Operation]


@dataclass(frozen=True, slots=True)
class Clash:
    """An incoming operation's path and the revision (and its path) it collides with."""

    path: str
    version: int
    revision_path: str

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "revision": self.version, "revisionPath": self.revision_path}


@dataclass(frozen=True, slots=True)
class Rebased:
    """The patch transformed to apply at the head."""

    operations: list[Operation]


@dataclass(frozen=True, slots=True)
class Refused:
    """Why the patch cannot be merged: clashes, or a reason when there are none to name."""

    reason: str
    clashes: list[Clash] = field(default_factory=list)


@dataclass(slots=True)
class _Primitive:
    kind: Kind
    path: list[str]
    # The client's `-` (append): kept as `-` in the rebased patch.
    append: bool
    # Where it came from: the operation's index, and for incoming ones its member.
    origin: int
    member: Literal["path", "from"]
    pointer: str
    # An insert's anchor: the element it goes before (its own position until another
    # insert at the same position is kept in front of it).
    anchor: list[str]


def rebase(
    head: Any, concurrent: list[Concurrent], operations: list[Operation]
) -> Rebased | Refused:
    """`operations`, made on the state before the `concurrent` revisions (oldest first),
    transformed to apply on `head` (the state after them), or why they cannot be.

    The base state is not read: it is `head` with the revisions' inverses applied, newest
    first. Each revision's forward operations are resolved against the exact state they
    were applied to: its inverse turns the head of its version into the one before, the
    forward patch is replayed from there, and the inverse applied again (it undoes the
    replay exactly, whereas the stored head is the replay validated, with defaults filled
    in, so a replay alone would drift from what later revisions were made on).
    """
    state = copy.deepcopy(head)
    theirs: list[_Primitive] = []
    versions: list[int] = []
    for revision in reversed(concurrent):
        try:
            state = _applied(state, revision.inverse)
            # A move or copy (full saves' diffs have them) is where a replay could differ
            # from the original application; then it is checked to undo exactly.
            before = copy.deepcopy(state) if _moves(revision.forward) else None
            found, state = _primitives(state, revision.forward, skip_reads=True)
            state = _applied(state, revision.inverse)
        except (SnipixError, *_UNRESOLVED):
            return Refused(f"revision {revision.version} cannot be replayed")
        if before is not None and state != before:
            return Refused(f"revision {revision.version} cannot be replayed exactly")
        theirs = found + theirs
        versions = [revision.version] * len(found) + versions
    try:
        incoming, _ = _primitives(state, operations)
    except SnipixError as error:
        return Refused(f"the patch does not apply to the version it names ({error.message})")
    except _UNRESOLVED:
        return Refused("the patch does not apply to the version it names")
    clashes: list[Clash] = []
    for index, mine in enumerate(incoming):
        for position, other in enumerate(theirs):
            if _clash(mine, other):
                clashes.append(Clash(mine.pointer, versions[position], other.pointer))
            # After a clash the merge is refused; shifting on where possible keeps the
            # later comparisons meaningful, so every clashing path can be named.
            moved = _shifted(mine, other, first=False) or mine
            theirs[position] = _shifted(other, mine, first=True) or other
            mine = moved
        incoming[index] = mine
    if clashes:
        unique = list(dict.fromkeys(clashes))
        return Refused("it changes what a later revision changed", unique[:MAX_CLASHES])
    return Rebased(_reassembled(operations, incoming))


def _moves(operations: list[Operation]) -> bool:
    return any(operation.get("op") in {"move", "copy"} for operation in operations)


def _applied(state: Any, operations: list[Operation]) -> Any:
    return apply_patch(state, operations, in_place=True).document


# --- primitives -----------------------------------------------------------------------------


def _parts(pointer: str) -> list[str]:
    return list(JsonPointer(pointer).parts)


def _pointer(parts: list[str]) -> str:
    return str(JsonPointer.from_parts(parts).path)


def _is_array_slot(state: Any, parts: list[str]) -> bool:
    """Whether the last member of `parts` indexes an array (resolved in `state`)."""
    if not parts:
        return False
    node = state
    for part in parts[:-1]:
        if isinstance(node, dict):
            node = node[part]
        elif isinstance(node, list):
            node = node[int(part)]
        else:
            raise JsonPointerException(f"{_pointer(parts)}: no such container")
    return isinstance(node, list)


def _array_len(state: Any, parts: list[str]) -> int:
    node = state
    for part in parts[:-1]:
        node = node[part] if isinstance(node, dict) else node[int(part)]
    return len(node)


def _primitives(
    state: Any, operations: list[Operation], *, skip_reads: bool = False
) -> tuple[list[_Primitive], Any]:
    """The primitives of `operations`, each resolved against the state it applies to, and
    the patched state (`state` is patched in place as they are)."""
    found: list[_Primitive] = []

    def at(kind: Kind, parts: list[str], origin: int, member: Literal["path", "from"]) -> None:
        pointer = _pointer(parts)
        append = False
        if kind in {"insert", "remove"} and not _is_array_slot(state, parts):
            kind = "write"
        if kind == "insert" and parts[-1] == "-":
            parts = [*parts[:-1], str(_array_len(state, parts))]
            append = True
        if kind == "read" and skip_reads:
            return
        found.append(_Primitive(kind, parts, append, origin, member, pointer, parts))

    def step(operation: Operation) -> None:
        nonlocal state
        state = apply_patch(state, [operation], in_place=True).document

    for index, operation in enumerate(operations):
        op = operation.get("op")
        path = _parts(operation["path"])
        if op == "add":
            at("insert", path, index, "path")
        elif op == "remove":
            at("remove", path, index, "path")
        elif op == "replace":
            at("write", path, index, "path")
        elif op == "test":
            at("read", path, index, "path")
        elif op in {"move", "copy"}:
            source = _parts(operation["from"])
            found_value, value = _resolve(state, source)
            if not found_value:
                raise JsonPointerException(f"{operation['from']} does not exist")
            if op == "move":
                if path[: len(source)] == source and path != source:
                    raise JsonPointerException("cannot move a value into itself")
                at("remove", source, index, "from")
                step({"op": "remove", "path": operation["from"]})
                at("insert", path, index, "path")
                step({"op": "add", "path": operation["path"], "value": value})
                continue
            at("read", source, index, "from")
            at("insert", path, index, "path")
            step({"op": "add", "path": operation["path"], "value": copy.deepcopy(value)})
            continue
        else:
            raise JsonPointerException(f"unknown operation {op!r}")
        step(operation)
    return found, state


def _resolve(state: Any, parts: list[str]) -> tuple[bool, Any]:
    node = state
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and _is_index(part) and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _is_index(token: str) -> bool:
    """An array index as JSON Pointer writes one (ASCII digits: `"²".isdigit()` is true)."""
    return token.isascii() and token.isdigit()


# --- the transform ----------------------------------------------------------------------------


def _prefix(short: list[str], long: list[str]) -> bool:
    return len(short) <= len(long) and long[: len(short)] == short


def _clash(mine: _Primitive, other: _Primitive) -> bool:
    """Whether two primitives on the same state touch the same thing (module docstring)."""
    if mine.kind == "read" and other.kind == "read":
        return False
    if mine.kind == "insert" and other.kind == "insert":
        return False
    if mine.kind == "insert":
        return _insert_meets(mine, other.path)
    if other.kind == "insert":
        return _insert_meets(other, mine.path)
    return _prefix(mine.path, other.path) or _prefix(other.path, mine.path)


def _insert_meets(insert: _Primitive, path: list[str]) -> bool:
    """An insert touches its array and the array's ancestors, and the element it goes
    before: `path` is one of those."""
    return _prefix(path, insert.path[:-1]) or path == insert.anchor


def _shifted(moving: _Primitive, by: _Primitive, *, first: bool) -> _Primitive | None:
    """`moving` as it reads after `by` (both on the same state) was applied; None when
    `by` removed what it names (which `_clash` reports first).

    `first`: `moving` was saved before `by`, so at an equal insert position it stays in
    front; otherwise it goes after the element `by` inserted. Either way an insert's
    anchor (the element it goes before) moves as any element does.
    """
    if by.kind not in {"insert", "remove"}:
        return moving
    own_slot = moving.kind == "insert"
    path = _shifted_path(moving.path, by, own_slot=own_slot, first=first)
    anchor = _shifted_path(moving.anchor, by, own_slot=False, first=first)
    if path is None or anchor is None:
        return None
    if path is moving.path and anchor is moving.anchor:
        return moving
    return replace(moving, path=path, anchor=anchor)


def _shifted_path(
    path: list[str], by: _Primitive, *, own_slot: bool, first: bool
) -> list[str] | None:
    array, position = by.path[:-1], int(by.path[-1])
    depth = len(array)
    if len(path) <= depth or path[:depth] != array or not _is_index(path[depth]):
        return path
    index = int(path[depth])
    # The new element's own position, rather than an existing element or inside one.
    own_slot = own_slot and len(path) == depth + 1
    if by.kind == "insert":
        if index > position or (index == position and not (own_slot and first)):
            index += 1
    elif index > position:
        index -= 1
    elif index == position:
        return None
    if index == int(path[depth]):
        return path
    return [*path[:depth], str(index), *path[depth + 1 :]]


def _reassembled(operations: list[Operation], primitives: list[_Primitive]) -> list[Operation]:
    """The patch again, each operation's path (and `from`) replaced by its primitive's."""
    rebased = [dict(operation) for operation in operations]
    for primitive in primitives:
        parts = primitive.path
        if primitive.append:
            parts = [*parts[:-1], "-"]
        rebased[primitive.origin][primitive.member] = _pointer(parts)
    return rebased
