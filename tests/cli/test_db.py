"""`snipix db status` and `snipix db migrate` as an operator runs them: real processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from snipix.catalogue import MIGRATIONS
from snipix.db.migrations import COLLECTION, LOCK_ID
from tests.support import SnipixProcess, clean_env, run_snipix

pytestmark = pytest.mark.process

IDS = [migration.id for migration in MIGRATIONS]
_WIDTH = max(len(migration_id) for migration_id in IDS)


def listed(state: str, *, width: int = _WIDTH) -> list[str]:
    """Every migration's line in this state: `db status` aligns the ids, `db migrate`
    (width 0) names each one it applied as it goes."""
    return [f"{state}  {m.id:<{width}}  {m.description}" for m in MIGRATIONS]


OTHER_OWNER = "deploy-job-7:4242:beef"


@pytest.fixture
def database_name(empty_database_name: str) -> str:
    """A database nothing has touched: these commands report and apply migrations."""
    return empty_database_name


@pytest.fixture
def env(mongodb_uri: str, database_name: str) -> dict[str, str]:
    return clean_env(MONGODB_URI=mongodb_uri, MONGODB_DATABASE=database_name)


def out_lines(text: str) -> list[str]:
    """stdout without the JSON log lines the command also writes (to stderr, normally)."""
    return [line for line in text.splitlines() if line and not line.startswith("{")]


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def applied_records(mongo: MongoClient[dict[str, Any]], database_name: str) -> list[str]:
    return [
        str(doc["_id"])
        for doc in mongo[database_name][COLLECTION].find({"appliedAt": {"$exists": True}})
    ]


def test_status_then_migrate_then_nothing_to_apply(
    tmp_path: Path, env: dict[str, str], mongo: MongoClient[dict[str, Any]], database_name: str
) -> None:
    """Empty database: status lists the migration as pending, migrate applies it once."""
    before = run_snipix(["db", "status"], env=env, cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    pending = len(MIGRATIONS)
    assert out_lines(before.stdout) == [
        *listed("pending"),
        f"pending: 0 applied, {pending} pending, 0 unknown in database {database_name}",
    ]

    first = run_snipix(["db", "migrate"], env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = out_lines(first.stdout)
    assert lines[:pending] == listed("applied", width=0)
    assert lines[pending].startswith(
        f"ok: {pending} applied, 0 pending, 0 unknown in database {database_name}"
    )
    assert "ensured" in lines[pending]
    assert applied_records(mongo, database_name) == IDS
    # The index catalogue is ensured too, as at start-up.
    assert "projects" in mongo[database_name].list_collection_names()
    assert len(list(mongo[database_name]["projects"].list_indexes())) > 1

    second = run_snipix(["db", "migrate"], env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert out_lines(second.stdout)[0] == "nothing to apply"
    assert applied_records(mongo, database_name) == IDS

    after = run_snipix(["db", "status"], env=env, cwd=tmp_path)
    assert after.returncode == 0
    assert out_lines(after.stdout)[:pending] == listed("applied")
    assert mongo[database_name][COLLECTION].find_one({"_id": LOCK_ID}) is None


def test_status_names_migrations_from_a_newer_build(
    tmp_path: Path, env: dict[str, str], mongo: MongoClient[dict[str, Any]], database_name: str
) -> None:
    """A migration recorded by a newer build shows as unknown; status still exits 0."""
    mongo[database_name][COLLECTION].insert_one(
        {"_id": "0099_future", "description": "later", "appliedAt": datetime.now(UTC)}
    )
    result = run_snipix(["db", "status"], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = out_lines(result.stdout)
    assert f"unknown  {'0099_future':<{_WIDTH}}  (applied by a newer build)" in lines
    assert lines[-1].startswith(f"pending: 0 applied, {len(MIGRATIONS)} pending, 1 unknown")


def test_migrate_gives_up_on_a_held_lock_naming_the_holder(
    tmp_path: Path, env: dict[str, str], mongo: MongoClient[dict[str, Any]], database_name: str
) -> None:
    """Another owner's live lock: `--wait 1` exits 1 with one line naming it, applies nothing."""
    expires = datetime.now(UTC) + timedelta(minutes=5)
    mongo[database_name][COLLECTION].insert_one(
        {"_id": LOCK_ID, "owner": OTHER_OWNER, "expiresAt": expires}
    )
    result = run_snipix(["db", "migrate", "--wait", "1"], env=env, cwd=tmp_path)
    assert result.returncode == 1
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert OTHER_OWNER in errors[0]
    assert errors[0].startswith("error: migrations are locked by")
    assert "Traceback" not in result.stderr
    assert applied_records(mongo, database_name) == []
    assert "projects" not in mongo[database_name].list_collection_names()
    lock = mongo[database_name][COLLECTION].find_one({"_id": LOCK_ID})
    assert lock is not None
    assert lock["owner"] == OTHER_OWNER, "the holder's lock is left alone"


def test_bad_wait_is_a_usage_error(tmp_path: Path, env: dict[str, str]) -> None:
    """A negative --wait is refused before anything touches the database."""
    result = run_snipix(["db", "migrate", "--wait", "-1"], env=env, cwd=tmp_path)
    assert result.returncode == 2


def test_concurrent_migrate_commands_apply_once(
    tmp_path: Path, env: dict[str, str], mongo: MongoClient[dict[str, Any]], database_name: str
) -> None:
    """Two `db migrate` at once on an empty database: one application recorded, both exit 0."""
    processes = [
        SnipixProcess(
            ["db", "migrate"], env=env, cwd=tmp_path, log_path=tmp_path / f"migrate-{n}.log"
        ).start()
        for n in range(2)
    ]
    try:
        codes = [process.wait(timeout_s=120) for process in processes]
    finally:
        for process in processes:
            process.kill()
    outputs = [out_lines(process.output()) for process in processes]
    assert codes == [0, 0], outputs
    applied_lines = [line for out in outputs for line in out if line.startswith("applied  ")]
    assert applied_lines == listed("applied", width=0)
    assert sum("nothing to apply" in out for out in outputs) == 1
    assert applied_records(mongo, database_name) == IDS
    assert mongo[database_name][COLLECTION].find_one({"_id": LOCK_ID}) is None
