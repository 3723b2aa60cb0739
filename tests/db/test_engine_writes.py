"""The engine's write path: change dispatch costs nothing while no stream watches."""

from __future__ import annotations

from pathlib import Path

from mongoeco.api import AsyncMongoClient as EmbeddedClient

from snipix.db.engine import DurableSQLiteEngine

# --- Change streams while dispatch is skipped ------------------------------------------


async def test_a_stream_opened_later_sees_the_changes_after_it_opens(tmp_path: Path) -> None:
    """Writes with no stream open skip dispatch (a gap no one reads); a stream opened
    later, even after the outbox pruned what was never dispatched, sees exactly the
    changes made after it opened."""
    engine = DurableSQLiteEngine(str(tmp_path / "streams.sqlite"))
    client = EmbeddedClient(engine)
    client._change_hub = engine.change_hub
    async with client:
        docs = client["db"]["docs"]
        # More than the outbox keeps (10,000), none of it dispatched.
        await docs.insert_many([{"_id": n} for n in range(10_500)])
        await docs.update_one({"_id": 1}, {"$set": {"before": True}})
        skipped = engine.change_dispatches_skipped
        assert skipped >= 2
        stream = docs.watch(max_await_time_ms=200)
        await docs.insert_one({"_id": "after"})
        await docs.update_one({"_id": 2}, {"$set": {"after": True}})
        seen = []
        while (change := await stream.try_next()) is not None:
            seen.append((change["operationType"], change["documentKey"]["_id"]))
        assert seen == [("insert", "after"), ("update", 2)]
        assert engine.change_dispatches_skipped == skipped
        stream.close()
        await docs.insert_one({"_id": "unwatched"})
        assert engine.change_dispatches_skipped == skipped + 1
