"""The `snipix` command as a user runs it: real processes, real engine, real signals."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from snipix.db.engine_record import RECORD_FILE, EngineRecord, is_served
from snipix.db.indexes import catalogue
from snipix.db.launcher import start_engine_process
from tests.support import (
    SnipixProcess,
    clean_env,
    engine_command,
    free_port,
    http_json,
    http_status,
    loopback_client,
    pid_alive,
    run_snipix,
    wait_for_engine,
    wait_until,
)

pytestmark = pytest.mark.process

MONGO_PASSWORD = "Sup3r-Secret-Pass"
# The local profile accepts X-User-Id as identity.
OWNER = {"X-User-Id": "editor-1"}


def serve(tmp_path: Path, name: str = "serve", **env: str) -> tuple[SnipixProcess, str]:
    port = free_port()
    process = SnipixProcess(
        ["serve", "--port", str(port)],
        env=clean_env(**env),
        cwd=tmp_path,
        log_path=tmp_path / f"{name}.log",
    ).start()
    return process, f"http://127.0.0.1:{port}"


def wait_ready(process: SnipixProcess, base: str, timeout_s: float = 60) -> None:
    def ready() -> bool:
        if process.process is not None and process.process.poll() is not None:
            raise AssertionError(f"snipix serve exited early:\n{process.output()}")
        return http_status(f"{base}/health/ready") == 200

    wait_until(ready, timeout_s=timeout_s, what="/health/ready to answer 200")


def serve_embedded(
    tmp_path: Path, data_dir: Path, name: str = "serve"
) -> tuple[SnipixProcess, str, EngineRecord]:
    """`snipix serve` on the embedded default, ready, with the engine it started."""
    service, base = serve(tmp_path, name, SNIPIX_DATA_DIR=str(data_dir))
    try:
        wait_ready(service, base)
    except BaseException:
        service.kill()
        raise
    engine = EngineRecord.read(data_dir)
    assert engine is not None
    return service, base, engine


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_data_survives_service_and_engine_restart(tmp_path: Path) -> None:
    """A project created through the API is there, identical, after a full restart.

    `snipix serve` with no MONGODB_URI starts the embedded engine; SIGTERM stops the service
    and then the engine; starting again serves the same data directory.
    """
    data_dir = tmp_path / "data"
    service, base, first_engine = serve_embedded(tmp_path, data_dir)
    try:
        with loopback_client(timeout=10) as http:
            created = http.post(
                f"{base}/api/v1/projects",
                json={"name": "Wedding cut", "tags": ["client"], "media": {"durationSec": 93.5}},
                headers=OWNER,
            )
        assert created.status_code == 201, created.text
        assert service.stop() == 0
    finally:
        service.kill()
    assert not pid_alive(first_engine.pid), "the engine must stop with the service"
    assert not is_served(data_dir)
    assert not (data_dir / RECORD_FILE).exists()

    service, base, second_engine = serve_embedded(tmp_path, data_dir, "serve-again")
    try:
        assert second_engine.pid != first_engine.pid
        location = created.headers["Location"]
        with loopback_client(timeout=10) as http:
            loaded = http.get(f"{base}{location}", headers=OWNER)
        assert loaded.status_code == 200
        assert loaded.json() == created.json()
        assert loaded.headers["ETag"] == created.headers["ETag"] == '"1"'
    finally:
        service.stop()


def test_ready_follows_the_engine_without_a_service_restart(tmp_path: Path) -> None:
    """/health/ready: 200 with the engine up, 503 naming the database when it is killed,
    200 again once it is back, all without restarting the service."""
    engine_port = free_port()
    data_dir = tmp_path / "engine-data"

    def start_engine(name: str) -> SnipixProcess:
        process = engine_command(data_dir, engine_port, tmp_path, name).start()
        wait_for_engine(data_dir)
        return process

    engine = start_engine("engine")
    service, base = serve(
        tmp_path,
        MONGODB_URI=f"mongodb://127.0.0.1:{engine_port}/?directConnection=true",
        SNIPIX_HEALTH_TIMEOUT_MS="500",
    )
    try:
        wait_ready(service, base)
        engine.signal(signal.SIGKILL)
        engine.wait()

        status, body = http_json(f"{base}/health/ready")
        assert status == 503
        # The in-process cache still serves cached reads: degraded, and it says why.
        assert body["status"] == "degraded"
        assert body["failing"] == ["database"]
        assert body["reasons"][0].startswith("database unreachable: cached reads are served")
        assert body["components"]["database"]["status"] == "down"

        engine = start_engine("engine-again")
        recovered_in = wait_until(
            lambda: http_status(f"{base}/health/ready") == 200,
            timeout_s=30,
            what="readiness to recover",
        )
        status, body = http_json(f"{base}/health/ready")
        assert status == 200
        assert body["components"]["database"]["status"] == "ok"
        assert service.process is not None
        assert service.process.poll() is None, "the service was not restarted"
        print(f"readiness recovered {recovered_in:.2f}s after the engine returned")
    finally:
        service.stop()
        engine.stop()


def test_crashed_engine_is_replaced_while_the_service_runs(tmp_path: Path) -> None:
    """Local default: if the engine dies, `snipix serve` starts a new one on the same address
    and the service recovers by itself, with every acknowledged write still there."""
    data_dir = tmp_path / "data"
    service, base, engine = serve_embedded(tmp_path, data_dir)
    try:
        with loopback_client(timeout=10) as http:
            created = http.post(
                f"{base}/api/v1/projects", json={"name": "Before the crash"}, headers=OWNER
            )
        assert created.status_code == 201
        os.kill(engine.pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(engine.pid), timeout_s=5, what="the engine to die")
        recovered_in = wait_until(
            lambda: replaced(data_dir, engine) and http_status(f"{base}/health/ready") == 200,
            timeout_s=30,
            what="a replacement engine and readiness",
        )
        replacement = EngineRecord.read(data_dir)
        assert replacement is not None
        assert (replacement.host, replacement.port) == (engine.host, engine.port)
        with loopback_client(timeout=10) as http:
            loaded = http.get(f"{base}{created.headers['Location']}", headers=OWNER)
        assert loaded.json() == created.json()
        print(f"service ready again {recovered_in:.2f}s after the engine was killed")
        assert service.stop() == 0
    finally:
        service.kill()
    assert not pid_alive(replacement.pid), "the replacement engine stops with the service"


def test_service_takes_over_when_the_engine_owner_exits(tmp_path: Path) -> None:
    """A service sharing an engine another command started keeps its database when that
    command ends (e.g. a long import finishing while the service runs)."""
    data_dir = tmp_path / "data"
    owner = start_engine_process(data_dir, env=clean_env())
    service, base, engine = serve_embedded(tmp_path, data_dir)
    try:
        assert engine == owner.record
        owner.stop()
        wait_until(
            lambda: replaced(data_dir, engine) and http_status(f"{base}/health/ready") == 200,
            timeout_s=30,
            what="the service to start its own engine",
        )
        assert service.stop() == 0
    finally:
        service.kill()
        owner.stop()
    assert not is_served(data_dir)


def replaced(data_dir: Path, old: EngineRecord) -> bool:
    current = EngineRecord.read(data_dir)
    return current is not None and current.pid != old.pid and is_served(data_dir)


def test_invalid_setting_exits_with_one_line(tmp_path: Path) -> None:
    """A bad variable stops start-up before anything starts: one line, non-zero status."""
    result = run_snipix(["serve"], env=clean_env(MONGODB_MAX_POOL_SIZE="plenty"), cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: invalid setting MONGODB_MAX_POOL_SIZE: "
        "Input should be a valid integer, unable to parse string as an integer"
    ]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".snipix").exists(), "no engine may start on a bad setting"


def test_port_in_use_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_snipix(["serve", "--port", str(port)], env=clean_env(), cwd=tmp_path)
    assert result.returncode == 1
    assert error_lines(result.stderr) == [
        f"error: cannot listen on 127.0.0.1:{port}: address already in use"
    ]
    assert not (tmp_path / ".snipix").exists(), "no engine may start"


def test_production_without_uri_refuses_to_start(tmp_path: Path) -> None:
    result = run_snipix(
        ["serve"], env=clean_env(SNIPIX_ENV="production", JWT_SECRET="k" * 40), cwd=tmp_path
    )
    assert result.returncode == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1
    assert lines[0].startswith("error: invalid setting MONGODB_URI: is required")


def test_production_with_dev_auth_refuses_to_start(tmp_path: Path) -> None:
    result = run_snipix(
        ["serve"],
        env=clean_env(
            SNIPIX_ENV="production",
            MONGODB_URI="mongodb://db.internal:27017",
            JWT_SECRET="k" * 40,
            SNIPIX_DEV_AUTH="true",
        ),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert [line.split(":")[1] for line in error_lines(result.stderr)] == [
        " invalid setting SNIPIX_DEV_AUTH"
    ]


@pytest.mark.parametrize(
    ("uri", "host"),
    [
        (f"mongodb://editor:{MONGO_PASSWORD}@127.0.0.1:{{port}}/snipix", "127.0.0.1:{port}"),
        (
            f"mongodb+srv://editor:{MONGO_PASSWORD}@cluster0.snipix.invalid/",
            "cluster0.snipix.invalid",
        ),
    ],
)
def test_unreachable_database_fails_within_timeout_naming_host_not_password(
    tmp_path: Path, uri: str, host: str
) -> None:
    """With the cluster unreachable, start-up gives up after the configured wait."""
    port = free_port()  # nothing listens here
    uri, host = uri.format(port=port), host.format(port=port)
    started = time.monotonic()
    result = run_snipix(
        ["serve"],
        env=clean_env(
            MONGODB_URI=uri,
            MONGODB_SERVER_SELECTION_TIMEOUT_MS="1500",
            MONGODB_CONNECT_TIMEOUT_MS="1500",  # also bounds the SRV DNS lookup
        ),
        cwd=tmp_path,
        timeout_s=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert host in lines[0]
    assert "unreachable" in lines[0]
    assert MONGO_PASSWORD not in result.stderr + result.stdout
    # 1.5 s selection timeout plus interpreter start-up; far below the 30 s driver default.
    assert elapsed < 15, f"start-up took {elapsed:.1f}s to give up"


def test_ctrl_c_stops_the_service_and_its_engine(tmp_path: Path) -> None:
    """SIGINT (Ctrl-C) is a clean stop too: no process outlives `snipix serve`."""
    service, _, engine = serve_embedded(tmp_path, tmp_path / "data")
    try:
        service.signal(signal.SIGINT)
        assert service.wait() == 0
    finally:
        service.kill()
    wait_until(lambda: not pid_alive(engine.pid), timeout_s=5, what="the engine to stop")
    assert "embedded engine stopped" in service.output()


def test_serve_reuses_an_engine_already_serving_the_data_dir(tmp_path: Path) -> None:
    """One data directory, one engine: a second service shares it and leaves it running."""
    data_dir = tmp_path / "data"
    engine = start_engine_process(data_dir, env=clean_env())
    service, base = serve(tmp_path, SNIPIX_DATA_DIR=str(data_dir))
    try:
        wait_ready(service, base)
        assert EngineRecord.read(data_dir) == engine.record
        assert service.stop() == 0
        assert engine.process.poll() is None, "the service must not stop an engine it did not start"
    finally:
        service.kill()
        engine.stop()


def test_db_ping_starts_an_engine_for_the_command(tmp_path: Path) -> None:
    result = run_snipix(["db", "ping"], env=clean_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: MongoDB 7.0.0 at 127.0.0.1:")
    assert "(database snipix)" in result.stdout
    assert not is_served(tmp_path / ".snipix" / "data"), "the command's engine stopped"


def test_db_indexes_creates_the_catalogue_idempotently(tmp_path: Path) -> None:
    """`snipix db indexes` creates every catalogue index and lists them; twice is the same."""
    first = run_snipix(["db", "indexes"], env=clean_env(), cwd=tmp_path)
    second = run_snipix(["db", "indexes"], env=clean_env(), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert first.stdout == second.stdout
    expected = catalogue()
    assert first.stdout.splitlines()[0] == f"ensured {len(expected)} indexes in database snipix"
    for spec in expected:
        assert any(
            line.split()[:2] == [spec.collection, spec.name] for line in first.stdout.splitlines()
        ), f"{spec.collection}.{spec.name} missing from:\n{first.stdout}"


def test_db_command_uses_mongodb_uri_when_set(
    tmp_path: Path, mongodb_uri: str, mongo: MongoClient[dict[str, Any]], database_name: str
) -> None:
    result = run_snipix(
        ["db", "indexes"],
        env=clean_env(MONGODB_URI=mongodb_uri, MONGODB_DATABASE=database_name),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "active_by_updated" in mongo[database_name]["projects"].index_information()
    assert not (tmp_path / ".snipix").exists(), "no embedded engine when MONGODB_URI is set"


def test_config_prints_settings_with_secrets_masked(tmp_path: Path) -> None:
    result = run_snipix(
        ["config"],
        env=clean_env(
            MONGODB_URI=f"mongodb+srv://editor:{MONGO_PASSWORD}@cluster0.example.net/",
            JWT_SECRET="j" * 40,
        ),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "MONGODB_URI=mongodb+srv://editor:****@cluster0.example.net/" in result.stdout
    assert "JWT_SECRET=****" in result.stdout
    assert MONGO_PASSWORD not in result.stdout
    assert "j" * 40 not in result.stdout


def test_unusable_jwt_key_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    """A JWT public key that is not a readable PEM stops `serve` with one line, exit 2,
    before an engine starts or a worker boots."""
    key = "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----"
    result = run_snipix(["serve"], env=clean_env(JWT_PUBLIC_KEY=key), cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "error: invalid setting JWT_PUBLIC_KEY: is not a readable PEM public key"
    ]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".snipix").exists()
