"""The embedded engine as a process: one per data directory, durable, never orphaned."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient, WriteConcern
from pymongo.errors import DuplicateKeyError, PyMongoError

from snipix.db.engine import DurableSQLiteEngine
from snipix.db.engine_record import (
    LOCK_FILE,
    RECORD_FILE,
    EngineRecord,
    is_served,
    serving_engine,
)
from snipix.db.launcher import EngineLaunchError, start_engine_process
from tests.support import (
    clean_env,
    engine_command,
    free_port,
    pid_alive,
    wait_for_engine,
    wait_until,
)


def sync_client(uri: str) -> MongoClient[dict[str, Any]]:
    return MongoClient(uri, serverSelectionTimeoutMS=5000)


@pytest.mark.process
def test_engine_records_its_address_and_removes_it_on_stop(tmp_path: Path) -> None:
    """`snipix engine` answers on the recorded address and cleans up after SIGTERM."""
    engine = start_engine_process(tmp_path, env=clean_env())
    record = EngineRecord.read(tmp_path)
    assert record is not None
    assert record.pid == engine.process.pid
    assert is_served(tmp_path)
    with sync_client(record.uri) as client:
        assert client.admin.command("ping")["ok"] == 1
    assert engine.stop() == 0
    assert not (tmp_path / RECORD_FILE).exists()
    assert not is_served(tmp_path)


@pytest.mark.process
def test_second_engine_on_same_data_dir_is_refused_naming_the_holder(tmp_path: Path) -> None:
    """Two engines never open the same files; the second says who holds them."""
    first = start_engine_process(tmp_path, env=clean_env())
    try:
        with pytest.raises(EngineLaunchError) as refused:
            start_engine_process(tmp_path, env=clean_env())
        message = str(refused.value)
        assert f"engine process {first.process.pid}" in message
        assert first.uri in message
        # The first engine is untouched and still serving.
        with sync_client(first.uri) as client:
            assert client.admin.command("ping")["ok"] == 1
    finally:
        first.stop()


@pytest.mark.process
def test_stale_record_of_a_dead_engine_is_ignored(tmp_path: Path) -> None:
    """A record left by a killed engine does not send clients to a dead address."""
    engine = start_engine_process(tmp_path, env=clean_env(), stop_with_parent=False)
    engine.process.kill()
    engine.process.wait()
    stale = json.loads((tmp_path / RECORD_FILE).read_text())
    assert stale["pid"] == engine.process.pid
    assert not is_served(tmp_path)
    assert serving_engine(tmp_path, wait_s=0) is None

    replacement = start_engine_process(tmp_path, env=clean_env())
    try:
        assert serving_engine(tmp_path) == EngineRecord.read(tmp_path)
        assert replacement.record.pid != stale["pid"]
    finally:
        replacement.stop()


@pytest.mark.process
def test_acknowledged_write_survives_engine_kill(tmp_path: Path) -> None:
    """A write acknowledged with w=majority is on disk even if the engine is SIGKILLed."""
    engine = start_engine_process(tmp_path, env=clean_env(), stop_with_parent=False)
    with sync_client(engine.uri) as client:
        projects = client["durability"].get_collection(
            "projects", write_concern=WriteConcern(w="majority")
        )
        projects.insert_many([{"_id": f"p{i}", "name": f"cut {i}"} for i in range(50)])
    os.kill(engine.process.pid, signal.SIGKILL)
    engine.process.wait()

    restarted = start_engine_process(tmp_path, env=clean_env())
    try:
        with sync_client(restarted.uri) as client:
            names = {d["name"] for d in client["durability"]["projects"].find()}
        assert names == {f"cut {i}" for i in range(50)}
    finally:
        restarted.stop()


def test_engine_runs_wal_at_normal_sync_with_group_commit(tmp_path: Path) -> None:
    """Commits themselves are not fsynced (synchronous=NORMAL in WAL mode); durability
    comes from the group commit every write reply waits for (tests/db/test_engine_writes)."""
    engine = DurableSQLiteEngine(str(tmp_path / "probe.sqlite"))
    connection = engine._create_sqlite_connection()
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        connection.close()


@pytest.mark.process
def test_acknowledged_concurrent_writes_survive_a_kill_during_group_commit(
    tmp_path: Path,
) -> None:
    """Sixteen writers keep a group commit pending at all times; the engine is SIGKILLed
    mid-stream. Every write whose acknowledgement arrived is there after the restart (a
    write in flight at the kill may or may not be: its outcome was never reported)."""
    engine = start_engine_process(tmp_path, env=clean_env(), stop_with_parent=False)
    acknowledged: list[set[str]] = [set() for _ in range(16)]
    attempted: list[set[str]] = [set() for _ in range(16)]
    stopped = threading.Event()

    def writer(index: int) -> None:
        with sync_client(engine.uri) as client:
            docs = client.get_database("kill", write_concern=WriteConcern(w=1))["docs"]
            n = 0
            while not stopped.is_set():
                doc_id = f"w{index}-{n}"
                attempted[index].add(doc_id)
                try:
                    if n % 3 == 2:
                        docs.update_one({"_id": f"w{index}-{n - 1}"}, {"$set": {"updated": True}})
                    else:
                        docs.insert_one({"_id": doc_id, "writer": index})
                except PyMongoError:
                    return
                acknowledged[index].add(doc_id)
                n += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    try:
        wait_until(
            lambda: sum(len(acks) for acks in acknowledged) >= 600,
            timeout_s=60,
            what="600 acknowledged writes",
        )
        os.kill(engine.process.pid, signal.SIGKILL)
        engine.process.wait()
    finally:
        stopped.set()
        for thread in threads:
            thread.join(60)

    restarted = start_engine_process(tmp_path, env=clean_env())
    try:
        with sync_client(restarted.uri) as client:
            stored = {d["_id"]: d for d in client["kill"]["docs"].find()}
    finally:
        restarted.stop()
    for index in range(16):
        for doc_id in acknowledged[index]:
            n = int(doc_id.rsplit("-", 1)[1])
            if n % 3 == 2:
                # The acknowledged update of the document inserted just before.
                assert stored[f"w{index}-{n - 1}"].get("updated") is True, doc_id
            else:
                assert doc_id in stored, doc_id
        inserted = {i for i in stored if i.startswith(f"w{index}-")}
        assert inserted <= attempted[index]


@pytest.mark.process
def test_engine_exits_when_its_parent_dies(tmp_path: Path) -> None:
    """An engine started for a command never outlives that command, even a killed one."""
    script = (
        "import sys, time; from pathlib import Path\n"
        "from snipix.db.launcher import start_engine_process\n"
        "e = start_engine_process(Path(sys.argv[1]))\n"
        "print(e.process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert parent.stdout is not None
    engine_pid = int(parent.stdout.readline())
    assert pid_alive(engine_pid)
    parent.kill()
    parent.wait()
    parent.stdout.close()
    wait_until(lambda: not pid_alive(engine_pid), timeout_s=10, what="the orphaned engine to exit")
    assert not is_served(tmp_path)


@pytest.mark.process
def test_engine_command_in_foreground(tmp_path: Path) -> None:
    """`snipix engine --port P` serves like mongod on a fixed port and stops on SIGINT."""
    port = free_port()
    engine = engine_command(tmp_path / "data", port, tmp_path).start()
    try:
        wait_for_engine(tmp_path / "data")
        with sync_client(f"mongodb://127.0.0.1:{port}/?directConnection=true") as client:
            client["fg"]["c"].insert_one({"ok": True})
        engine.signal(signal.SIGINT)
        assert engine.wait() == 0
        assert (tmp_path / "data" / LOCK_FILE).exists()
        assert not (tmp_path / "data" / RECORD_FILE).exists()
    finally:
        engine.kill()


@pytest.mark.process
def test_engine_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    port = free_port()
    first = engine_command(tmp_path / "a", port, tmp_path, "a").start()
    try:
        wait_for_engine(tmp_path / "a")
        second = engine_command(tmp_path / "b", port, tmp_path, "b").start()
        assert second.wait() == 1
        errors = [line for line in second.output().splitlines() if line.startswith("error:")]
        assert errors == [f"error: cannot listen on 127.0.0.1:{port}: address already in use"]
        assert "Traceback" not in second.output()
    finally:
        first.stop()


@pytest.mark.process
def test_unusable_data_dir_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(EngineLaunchError) as failed:
        start_engine_process(blocker / "data", env=clean_env())
    assert str(failed.value) == (
        f"the embedded engine did not start: cannot use data directory {blocker / 'data'}: "
        "not a directory"
    )


def test_duplicate_ids_are_still_refused_without_the_insert_scan(
    mongo: MongoClient[dict[str, Any]], database_name: str
) -> None:
    """Skipping mongoeco's per-insert scan keeps `_id` uniqueness: a repeated string or
    ObjectId id is refused, and numeric ids still compare by value (1 == 1.0)."""
    collection = mongo[database_name]["ids"]
    collection.insert_one({"_id": "p1:1"})
    oid = collection.insert_one({}).inserted_id
    collection.insert_one({"_id": 1})
    for duplicate in ({"_id": "p1:1"}, {"_id": oid}, {"_id": 1.0}, {"_id": {"n": 1}}):
        if duplicate["_id"] == {"n": 1}:
            collection.insert_one({"_id": {"n": 1.0}})
        with pytest.raises(DuplicateKeyError):
            collection.insert_one(duplicate)
    assert collection.count_documents({}) == 4


def test_a_filter_with_an_id_and_more_matches_as_mongodb_does(
    mongo: MongoClient[dict[str, Any]], database_name: str
) -> None:
    """Filters that pair `_id` with other conditions (a timeline claim and commit, an update
    at a version, a key's completion) match exactly when every condition holds: the engine
    reads the one candidate by key (issue 11) without changing what matches."""
    heads = mongo[database_name]["heads"]
    oid = heads.insert_one({"version": 1, "state": {"a": 1}}).inserted_id
    heads.insert_many(
        [
            {"_id": "h1", "version": 3, "pending": None, "tags": ["a"], "nested": {"x": 1}},
            {"_id": "h2", "version": 3, "pending": {"token": "t", "at": 10}},
        ]
    )
    claim = {"$or": [{"pending": None}, {"pending.at": {"$lt": 5}}]}
    assert (
        heads.update_one(
            {"_id": "h1", "version": 3, **claim}, {"$set": {"version": 4}}
        ).modified_count
        == 1
    )
    assert (
        heads.update_one({"_id": "h1", "version": 3}, {"$set": {"version": 5}}).matched_count == 0
    )
    assert (
        heads.update_one(
            {"_id": "h2", "version": 3, **claim}, {"$set": {"version": 4}}
        ).matched_count
        == 0
    )
    assert (
        heads.update_one(
            {"_id": "h2", "pending.token": "other"}, {"$unset": {"pending": ""}}
        ).matched_count
        == 0
    )
    assert (
        heads.update_one(
            {"_id": "h2", "pending.token": "t"}, {"$unset": {"pending": ""}}
        ).modified_count
        == 1
    )
    assert (
        heads.update_one({"_id": "nope", "version": 3}, {"$set": {"version": 4}}).matched_count == 0
    )
    assert (
        heads.update_one({"_id": oid, "version": 1}, {"$inc": {"version": 1}}).modified_count == 1
    )
    assert heads.update_one({"_id": oid, "version": 1}, {"$inc": {"version": 1}}).matched_count == 0

    found = heads.find_one(
        {"_id": "h1", "purgingAt": {"$exists": False}, "tags": "a", "nested.x": 1}
    )
    assert found is not None
    assert found["version"] == 4
    assert heads.find_one({"_id": "h1", "tags": "b"}) is None
    assert heads.find_one({"_id": "h1", "version": {"$gt": 4}}) is None
    before = heads.find_one_and_update({"_id": "h2", "version": 3}, {"$set": {"version": 7}})
    assert before is not None
    assert before["version"] == 3
    assert "pending" not in before

    heads.update_one({"_id": "h3", "version": 0}, {"$set": {"state": 1}}, upsert=True)
    assert heads.find_one({"_id": "h3"}) == {"_id": "h3", "version": 0, "state": 1}
    assert heads.delete_one({"_id": "h1", "version": 99}).deleted_count == 0
    assert heads.delete_one({"_id": "h1", "version": 4}).deleted_count == 1
    assert sorted(str(doc["_id"]) for doc in heads.find({}, {"_id": 1})) == sorted(
        ["h2", "h3", str(oid)]
    )
