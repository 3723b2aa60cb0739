"""Schema migrations of the timeline collections.

`compat_blocks`: a track's and a clip's block of what the original web app sent is stored
as `compat` (the one name the code gives that app's API); timelines written before were
stored with it as `legacy`. The block lives in the heads' and snapshots' `state`, and in
the revisions' JSON Patches: in an operation's `path`/`from` (`/clips/3/legacy/...`) and in
the values of operations that add or replace a whole clip, track, list or state. Undo and
redo apply those patches to the state, so they are renamed with it.

`timeline_keys_in_revisions`: an autosave's Idempotency-Key is stored with its change (in
the head's claim while it is written, in its revision once committed), no longer in a
collection of its own. The revisions already carried each key, so a repeat of a key used
before the upgrade is still found; the old collection is dropped.

The rename reads every document of the three collections in `_id` order, in batches,
and writes back only the ones that change: a second run (after an interruption) finds
nothing left to rename and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from pymongo import ASCENDING, UpdateOne

from snipix.db.client import Database, Document
from snipix.timelines.repository import HEADS, RETIRED_KEYS, REVISIONS, SNAPSHOTS

OLD: Final = "legacy"
NEW: Final = "compat"
_ITEMS: Final = ("tracks", "clips")
_BATCH: Final = 200


def _item(value: Any) -> Any:
    """A track or a clip with its block renamed (the field order kept)."""
    if not isinstance(value, dict) or OLD not in value:
        return value
    return {(NEW if key == OLD else key): item for key, item in value.items()}


def _state(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    renamed = dict(value)
    for name in _ITEMS:
        items = value.get(name)
        if isinstance(items, list):
            renamed[name] = [_item(item) for item in items]
    return renamed


def _value_at(tokens: list[str], value: Any) -> Any:
    """`value` renamed where it sits: the whole state, a list of items, or one item."""
    if not tokens:
        return _state(value)
    if tokens[0] not in _ITEMS:
        return value
    if len(tokens) == 1:
        return [_item(item) for item in value] if isinstance(value, list) else value
    if len(tokens) == 2:
        return _item(value)
    return value


def _pointer(path: str) -> tuple[str, list[str]]:
    """The path renamed, and its tokens after the rename (`legacy` needs no unescaping)."""
    tokens = path.split("/")[1:] if path.startswith("/") else []
    if len(tokens) > 2 and tokens[0] in _ITEMS and tokens[2] == OLD:
        tokens[2] = NEW
        return "/" + "/".join(tokens), tokens
    return path, tokens


def rename_in_patch(patch: list[Any]) -> list[Any]:
    """A JSON Patch over a timeline state, with every `legacy` block renamed."""
    renamed: list[Any] = []
    for operation in patch:
        if not isinstance(operation, dict) or not isinstance(operation.get("path"), str):
            renamed.append(operation)
            continue
        op = dict(operation)
        op["path"], tokens = _pointer(op["path"])
        if isinstance(op.get("from"), str):
            op["from"], _ = _pointer(op["from"])
        if "value" in op:
            op["value"] = _value_at(tokens, op["value"])
        renamed.append(op)
    return renamed


def rename_in_state(state: Any) -> Any:
    """A timeline state with every track's and clip's `legacy` block renamed."""
    return _state(state)


async def _rename(db: Database, collection: str, fields: dict[str, Callable[[Any], Any]]) -> None:
    after: Any = None
    projection = dict.fromkeys(fields, 1)
    while True:
        query: Document = {} if after is None else {"_id": {"$gt": after}}
        batch = await (
            db[collection].find(query, projection).sort("_id", ASCENDING).limit(_BATCH).to_list()
        )
        if not batch:
            return
        updates: list[UpdateOne] = []
        for doc in batch:
            changed = {
                field: renamed
                for field, rename in fields.items()
                if field in doc and (renamed := rename(doc[field])) != doc[field]
            }
            if changed:
                updates.append(UpdateOne({"_id": doc["_id"]}, {"$set": changed}))
        if updates:
            await db[collection].bulk_write(updates, ordered=False)
        after = batch[-1]["_id"]


async def rename_compat_blocks(db: Database) -> None:
    """Stored `legacy` blocks of tracks and clips become `compat` (module docstring)."""
    await _rename(db, HEADS, {"state": rename_in_state})
    await _rename(db, SNAPSHOTS, {"state": rename_in_state})
    await _rename(db, REVISIONS, {"patch": rename_in_patch, "inverse": rename_in_patch})


async def drop_retired_keys(db: Database) -> None:
    """Drop the collection autosaves' keys were kept in (module docstring); a no-op when
    it is already gone."""
    await db.drop_collection(RETIRED_KEYS)
