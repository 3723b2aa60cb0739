"""The engine's write path: replies wait for a shared fsync, batched inserts keep MongoDB's
outcomes, change dispatch costs nothing while no stream watches.

Real engines and real PyMongo clients throughout; the only thing a test substitutes is the
fsync system call itself (held or failed), to observe what a reply waits for.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from mongoeco.api import AsyncMongoClient as EmbeddedClient
from pymongo import MongoClient
from pymongo.errors import BulkWriteError, ConnectionFailure

from snipix.db.engine import (
    FSYNC_FAILURE_EXIT,
    INSERT_BATCH_DOCUMENTS,
    DurableProxyServer,
    DurableSQLiteEngine,
)
from snipix.db.launcher import start_engine_process
from tests.support import clean_env, wait_until


def sync_client(uri: str, **options: Any) -> MongoClient[dict[str, Any]]:
    options.setdefault("serverSelectionTimeoutMS", 5000)
    return MongoClient(uri, **options)


@contextmanager
def served(engine: DurableSQLiteEngine) -> Iterator[str]:
    """`engine` behind the durable proxy, on an event loop in a thread of this process."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-engine-loop", daemon=True)
    thread.start()
    server = DurableProxyServer(engine=engine, host="127.0.0.1", port=0)
    try:
        address = asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
        yield address.uri
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


class HeldFsync:
    """fdatasync that waits for the test to let it through, recording when it returned."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.calls = 0
        self.returned_at: list[float] = []

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self.entered.set()
        assert self.released.wait(30), "the test never released the fsync"
        os.fdatasync(fd)
        self.returned_at.append(time.monotonic())


def test_a_write_is_acknowledged_only_after_its_fsync_and_reads_do_not_wait(
    tmp_path: Path,
) -> None:
    fsync = HeldFsync()
    engine = DurableSQLiteEngine(str(tmp_path / "held.sqlite"), fsync=fsync)
    with served(engine) as uri, sync_client(uri) as writer, sync_client(uri) as reader:
        # Collection created and one document stored, before the fsync is held.
        fsync.released.set()
        writer["db"]["docs"].insert_one({"_id": "before", "n": 0})
        fsync.released.clear()
        fsync.entered.clear()

        acked_at: list[float] = []

        def write() -> None:
            writer["db"]["docs"].update_one({"_id": "before"}, {"$set": {"n": 1}})
            acked_at.append(time.monotonic())

        pending = threading.Thread(target=write)
        pending.start()
        wait_until(fsync.entered.is_set, timeout_s=10, what="the write's fsync to start")
        # Committed, its fsync held: no reply yet, and reads are served meanwhile (they
        # see the committed value: durability gates the reply, not visibility).
        assert acked_at == []
        assert reader["db"]["docs"].find_one({"_id": "before"}) == {"_id": "before", "n": 1}
        assert reader["db"]["docs"].count_documents({}) == 1
        assert acked_at == []
        fsync.released.set()
        pending.join(10)
        assert len(acked_at) == 1
        assert acked_at[0] >= fsync.returned_at[-1]


def test_an_fsync_started_before_a_commit_does_not_acknowledge_it(tmp_path: Path) -> None:
    """A write committed while an fsync is in flight waits for the next fsync."""
    fsync = HeldFsync()
    engine = DurableSQLiteEngine(str(tmp_path / "next.sqlite"), fsync=fsync)
    with served(engine) as uri, sync_client(uri) as first, sync_client(uri) as second:
        fsync.released.set()
        first["db"]["docs"].insert_one({"_id": "seed"})
        fsync.released.clear()
        fsync.entered.clear()
        done: list[str] = []

        def insert(client: MongoClient[dict[str, Any]], doc_id: str) -> None:
            client["db"]["docs"].insert_one({"_id": doc_id})
            done.append(doc_id)

        one = threading.Thread(target=insert, args=(first, "one"))
        one.start()
        wait_until(fsync.entered.is_set, timeout_s=10, what="the first write's fsync")
        calls_before = fsync.calls
        two = threading.Thread(target=insert, args=(second, "two"))
        two.start()
        wait_until(
            lambda: engine.group_commit.committed > engine.group_commit.durable + 1,
            timeout_s=10,
            what="the second write to commit while the first fsync is held",
        )
        fsync.released.set()
        one.join(10)
        two.join(10)
        assert sorted(done) == ["one", "two"]
        # The second write needed an fsync that began after it committed.
        assert fsync.calls >= calls_before + 1
        assert engine.group_commit.durable == engine.group_commit.committed


@pytest.mark.process
def test_concurrent_writes_share_fsyncs(tmp_path: Path) -> None:
    """N concurrent acknowledged writes cost at least one and fewer than N fsyncs."""
    engine = start_engine_process(tmp_path, env=clean_env())
    try:
        with sync_client(engine.uri, maxPoolSize=20) as client:
            docs = client["db"]["docs"]
            docs.insert_many([{"_id": f"d{n}", "n": 0} for n in range(16)])

            def status() -> dict[str, int]:
                runtime = client.admin.command("serverStatus")["mongoeco"]["engineRuntime"]
                found: dict[str, int] = runtime["groupCommit"]
                return found

            before = status()
            barrier = threading.Barrier(16)

            def writer(index: int) -> None:
                barrier.wait()
                for _ in range(10):
                    docs.update_one({"_id": f"d{index}"}, {"$inc": {"n": 1}})

            threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            after = status()
            assert sum(d["n"] for d in docs.find()) == 160
        writes = 160
        waits = after["waits"] - before["waits"]
        syncs = after["syncs"] - before["syncs"]
        assert waits == writes
        assert 1 <= syncs < writes, (syncs, writes)
        # Every acknowledged write's commit is covered by a completed sync, and no write
        # paid for change dispatch.
        assert after["durableCommits"] >= before["commits"] + writes
        assert after["changeDispatchesSkipped"] - before["changeDispatchesSkipped"] >= writes
    finally:
        engine.stop()


FAILING_ENGINE = """
import asyncio, errno, sys
from pathlib import Path
from snipix.db.engine import DurableProxyServer, DurableSQLiteEngine

failing = {"armed": False}

def fsync(fd):
    if failing["armed"]:
        raise OSError(errno.EIO, "Input/output error")
    import os
    os.fdatasync(fd)

async def main():
    engine = DurableSQLiteEngine(sys.argv[1], fsync=fsync)
    server = DurableProxyServer(engine=engine, host="127.0.0.1", port=0)
    address = await server.start()
    print(address.port, flush=True)
    failing["armed"] = sys.stdin.readline() == "arm\\n"
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.mark.process
def test_a_failed_fsync_stops_the_engine_without_acknowledging(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", FAILING_ENGINE, str(tmp_path / "eio.sqlite")],
        env=clean_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdin is not None
        port = int(process.stdout.readline())
        process.stdin.write("arm\n")
        process.stdin.flush()
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        with sync_client(uri, retryWrites=False, serverSelectionTimeoutMS=2000) as client:
            assert client.admin.command("ping")["ok"] == 1
            with pytest.raises(ConnectionFailure):
                client["db"]["docs"].insert_one({"_id": "never acknowledged"})
        assert process.wait(30) == FSYNC_FAILURE_EXIT
        assert "engine fsync failed" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()


# --- Batched wire inserts --------------------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False])
def test_insert_many_with_a_duplicate_in_the_middle(
    mongo: MongoClient[dict[str, Any]], database_name: str, ordered: bool
) -> None:
    """MongoDB's outcomes: ordered stops at the duplicate (earlier documents inserted),
    unordered inserts every other document; each error carries its index."""
    docs = mongo[database_name]["docs"]
    docs.insert_one({"_id": 3, "original": True})
    with pytest.raises(BulkWriteError) as failed:
        docs.insert_many([{"_id": n} for n in range(6)] + [{"_id": 3}, {"_id": 9}], ordered=ordered)
    details = failed.value.details
    errors = [(e["index"], e["code"], e["keyValue"]) for e in details["writeErrors"]]
    if ordered:
        assert errors == [(3, 11000, {"_id": 3})]
        assert details["nInserted"] == 3
        assert sorted(d["_id"] for d in docs.find()) == [0, 1, 2, 3]
    else:
        assert errors == [(3, 11000, {"_id": 3}), (6, 11000, {"_id": 3})]
        assert details["nInserted"] == 6
        assert sorted(d["_id"] for d in docs.find()) == [0, 1, 2, 3, 4, 5, 9]
    assert docs.find_one({"_id": 3}) == {"_id": 3, "original": True}


@pytest.mark.parametrize("ordered", [True, False])
def test_insert_many_with_an_invalid_document_in_the_middle(
    mongo: MongoClient[dict[str, Any]], database_name: str, ordered: bool
) -> None:
    """A document the collection's validator refuses fails alone, at its index."""
    database = mongo[database_name]
    database.create_collection("named", validator={"$jsonSchema": {"required": ["name"]}})
    with pytest.raises(BulkWriteError) as failed:
        database["named"].insert_many(
            [{"_id": 1, "name": "a"}, {"_id": 2}, {"_id": 3, "name": "c"}], ordered=ordered
        )
    errors = [(e["index"], e["code"]) for e in failed.value.details["writeErrors"]]
    assert errors == [(1, 121)]
    stored = sorted(d["_id"] for d in database["named"].find())
    assert stored == ([1] if ordered else [1, 3])


def test_insert_many_commits_once_per_batch(tmp_path: Path) -> None:
    engine = DurableSQLiteEngine(str(tmp_path / "batch.sqlite"))
    with served(engine) as uri, sync_client(uri) as client:
        docs = client["db"]["docs"]
        docs.insert_one({"_id": "first"})
        before = engine.group_commit.committed
        result = docs.insert_many([{"_id": f"d{n}", "n": n} for n in range(500)])
        assert len(result.inserted_ids) == 500
        assert engine.group_commit.committed - before == 500 // INSERT_BATCH_DOCUMENTS
        assert docs.count_documents({}) == 501


def test_a_collection_with_a_unique_index_keeps_one_commit_per_document(tmp_path: Path) -> None:
    """Short transactions where mongoeco's unique check scans the collection per document."""
    engine = DurableSQLiteEngine(str(tmp_path / "unique.sqlite"))
    with served(engine) as uri, sync_client(uri) as client:
        docs = client["db"]["docs"]
        docs.create_index([("project", 1), ("version", 1)], unique=True)
        before = engine.group_commit.committed
        docs.insert_many([{"_id": n, "project": "p", "version": n} for n in range(20)])
        assert engine.group_commit.committed - before == 20
        with pytest.raises(BulkWriteError) as failed:
            docs.insert_many(
                [{"project": "q", "version": 1}, {"project": "p", "version": 3}], ordered=False
            )
        assert [e["index"] for e in failed.value.details["writeErrors"]] == [1]


@pytest.mark.parametrize("ordered", [True, False])
def test_insert_errors_keep_their_command_index_across_batches(
    mongo: MongoClient[dict[str, Any]], database_name: str, ordered: bool
) -> None:
    docs = mongo[database_name]["docs"]
    size = INSERT_BATCH_DOCUMENTS
    batch = [{"_id": n} for n in range(3 * size)]
    batch[size + 5] = {"_id": 0}
    batch[2 * size + 7] = {"_id": 1}
    with pytest.raises(BulkWriteError) as failed:
        docs.insert_many(batch, ordered=ordered)
    details = failed.value.details
    indexes = [e["index"] for e in details["writeErrors"]]
    if ordered:
        assert indexes == [size + 5]
        assert details["nInserted"] == size + 5
        assert docs.count_documents({}) == size + 5
    else:
        assert indexes == [size + 5, 2 * size + 7]
        assert details["nInserted"] == 3 * size - 2
        assert docs.count_documents({}) == 3 * size - 2


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
            if change["operationType"] == "insert":
                # A watched change is an event with its document, not a lean gap.
                assert change["fullDocument"] == {"_id": "after"}
        assert seen == [("insert", "after"), ("update", 2)]
        assert engine.change_dispatches_skipped == skipped
        stream.close()
        await docs.insert_one({"_id": "unwatched"})
        assert engine.change_dispatches_skipped == skipped + 1


def test_a_write_nobody_watches_serialises_its_document_once(tmp_path: Path) -> None:
    """With no stream open, a write's change is recorded as a gap: its document is
    serialised for storage, not a second time to fingerprint the gap."""
    engine = DurableSQLiteEngine(str(tmp_path / "gaps.sqlite"))
    serialised: list[dict[str, Any]] = []
    stock = engine._serialize_document

    def recording(self: DurableSQLiteEngine, document: dict[str, Any]) -> str:
        serialised.append(document)
        return stock(document)

    engine._serialize_document = types.MethodType(recording, engine)  # type: ignore[method-assign]
    with served(engine) as uri, sync_client(uri) as client:
        docs = client["db"]["docs"]
        docs.insert_one({"_id": "p", "clips": [f"clip-{n}" for n in range(50)]})
        inserted = [d for d in serialised if "clip-7" in repr(d)]
        serialised.clear()
        docs.update_one({"_id": "p"}, {"$push": {"clips": "clip-50"}})
        updated = [d for d in serialised if "clip-7" in repr(d)]
        assert docs.find_one({"_id": "p"}) == {
            "_id": "p",
            "clips": [f"clip-{n}" for n in range(51)],
        }
    assert len(inserted) == 1
    assert len(updated) == 1


def test_reads_are_answered_while_every_query_thread_is_busy(tmp_path: Path) -> None:
    """Every thread of the engine's query pool is busy (a burst of writes holds them): a
    read by `_id`, a count and a sorted find are still answered, on the read lane, instead
    of queueing behind the work the pool has yet to finish."""
    engine = DurableSQLiteEngine(str(tmp_path / "lane.sqlite"), executor_workers=2)
    release = threading.Event()
    both_busy = threading.Barrier(3)

    def occupy() -> None:
        both_busy.wait(30)
        release.wait(30)

    with served(engine) as uri, sync_client(uri, socketTimeoutMS=5000) as client:
        docs = client["db"]["docs"]
        docs.insert_many([{"_id": n, "n": n} for n in range(10)])
        pool = engine._ensure_executor()  # mongoeco's pool, two threads
        held = [pool.submit(occupy) for _ in range(2)]
        try:
            both_busy.wait(30)
            assert docs.find_one({"_id": 3}) == {"_id": 3, "n": 3}
            assert docs.count_documents({"n": {"$gte": 5}}) == 5
            assert [doc["_id"] for doc in docs.find().sort("_id", 1).limit(3)] == [0, 1, 2]
        finally:
            release.set()
            for job in held:
                job.result(30)


def test_reads_are_answered_while_a_write_holds_the_engine_lock(tmp_path: Path) -> None:
    """A write in progress holds the engine's lock for its whole update: reads on the lane
    do not wait for it (their own snapshot, on a lane connection), and see only what was
    committed before they began."""
    engine = DurableSQLiteEngine(str(tmp_path / "lane-lock.sqlite"))
    holding = threading.Event()
    release = threading.Event()

    def write_in_progress() -> None:
        with engine._lock:
            holding.set()
            release.wait(30)

    with served(engine) as uri, sync_client(uri, socketTimeoutMS=5000) as client:
        docs = client["db"]["docs"]
        docs.insert_many([{"_id": n, "n": n, "owner": "a" if n % 2 else "b"} for n in range(10)])
        docs.create_index([("owner", 1), ("n", 1)])
        writer = threading.Thread(target=write_in_progress)
        writer.start()
        try:
            assert holding.wait(30)
            assert docs.find_one({"_id": 3}) == {"_id": 3, "n": 3, "owner": "a"}
            page = docs.find({"owner": "a"}).sort("n", -1).limit(2)
            assert [doc["_id"] for doc in page] == [9, 7]
        finally:
            release.set()
            writer.join(30)
        assert engine._read_pool is not None
        assert engine._read_pool.idle, "the lane keeps its connection for the next read"


def test_a_lane_read_never_plans_on_features_another_snapshot_saw(tmp_path: Path) -> None:
    """mongoeco plans a read on what it knows of a collection (is there an array at this
    path?). A read on the lane learns that on its own snapshot and keeps it to its own
    connection: after a commit stores the first array there, the next read finds the
    document by an element of it, and the writers' shared cache holds nothing the lane
    learned."""
    engine = DurableSQLiteEngine(str(tmp_path / "lane-features.sqlite"))
    with served(engine) as uri, sync_client(uri, socketTimeoutMS=5000) as client:
        docs = client["db"]["docs"]
        docs.insert_many([{"_id": n, "n": n} for n in range(6)])
        assert sorted(doc["_id"] for doc in docs.find({"n": {"$gt": 2}})) == [3, 4, 5]
        assert engine._read_pool is not None
        learned = {key for connection in engine._read_pool.idle for key in connection.features}
        assert ("db", "docs", "top_level_array:n") in learned
        shared = engine._cache_state.collection_features_cache
        assert not any(key[:2] == ("db", "docs") for key in shared)
        docs.insert_one({"_id": 6, "n": [1, 9]})
        assert sorted(doc["_id"] for doc in docs.find({"n": {"$gt": 2}})) == [3, 4, 5, 6]


def test_stopping_the_engine_closes_the_lane_connections(tmp_path: Path) -> None:
    engine = DurableSQLiteEngine(str(tmp_path / "lane-close.sqlite"))
    with served(engine) as uri, sync_client(uri) as client:
        client["db"]["docs"].insert_one({"_id": 1})
        assert client["db"]["docs"].find_one({"_id": 1}) == {"_id": 1}
        assert engine._read_pool is not None
        kept = list(engine._read_pool.idle)
    assert kept
    assert engine._read_pool is None
    for connection in kept:
        with pytest.raises(sqlite3.ProgrammingError):
            connection.execute("SELECT 1")
