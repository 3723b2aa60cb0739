"""Configured secrets never leave the process (issue 8).

A real `snipix serve` runs in production mode against a MongoDB that requires a password
(the embedded engine with SCRAM users) and a Redis that requires one, with a JWT secret (or
an RS256 private key), logging at DEBUG. It answers real requests — good ones and failing
ones: bad sign-ins, bad tokens, 404, 413, 422, 429, and then 503s with Redis and the
database killed under it — plus `/health/ready`, `/metrics`, `snipix config` and `snipix db
ping`. Every response (status, headers, body) and everything the processes wrote to stdout
and stderr is then searched for each secret in every form it could take: raw,
percent-encoded, JSON-escaped, and for a PEM key each of its lines.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import (
    SnipixProcess,
    clean_env,
    free_port,
    loopback_client,
    run_snipix,
    wait_until,
)

pytestmark = pytest.mark.process

MONGO_USER = "snipix-app"
# Characters that must be percent-encoded in a URI, and one that JSON logs escape.
MONGO_PASSWORD = "Mongo:P@ss/wörd#1-secret"
REDIS_PASSWORD = "redis/Secret#42+value"
JWT_SECRET = "jwt/Secret+Value=0123456789abcdef-0123456789"
PASSWORD = "Correct-Horse-9"

# The embedded engine with a SCRAM user: a MongoDB that refuses connections without the
# password. Run as its own process, so killing it is a real outage.
ENGINE_SCRIPT = """
import asyncio, os, sys
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.wire.auth import WireAuthUser
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

async def main() -> None:
    user = WireAuthUser(os.environ["ENGINE_USER"], os.environ["ENGINE_PASSWORD"])
    server = AsyncMongoEcoProxyServer(
        engine=SQLiteEngine(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]),
        auth_users=(user,),
    )
    await server.start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Outage:
    """A child process the test can kill to make its service unreachable."""

    process: subprocess.Popen[bytes]
    port: int

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def mongo_with_password(tmp_path: Path) -> Iterator[Outage]:
    script = tmp_path / "engine_with_auth.py"
    script.write_text(ENGINE_SCRIPT)
    port = free_port()
    env = {**clean_env(), "ENGINE_USER": MONGO_USER, "ENGINE_PASSWORD": MONGO_PASSWORD}
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "engine.sqlite"), str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    engine = Outage(process, port)
    try:
        wait_until(lambda: accepts(port), timeout_s=30, what="the engine with auth")
        yield engine
    finally:
        engine.kill()


@pytest.fixture
def redis_with_password() -> Iterator[Outage]:
    port = free_port()
    process = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--requirepass", REDIS_PASSWORD),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    redis = Outage(process, port)
    try:
        wait_until(lambda: accepts(port), timeout_s=10, what="redis-server with a password")
        yield redis
    finally:
        redis.kill()


def rsa_keys() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def forms(secret: str) -> set[str]:
    """Every way a secret could show up in text we captured."""
    found = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        secret.replace("\n", "\\n"),
    }
    if "-----BEGIN" in secret:
        # Any one line of a key's body is a leak (JSON logs would split nothing else).
        found |= {line for line in secret.splitlines() if len(line) >= 32}
    return {form for form in found if form}


@dataclass
class Capture:
    """Everything the outside world saw."""

    parts: list[str] = field(default_factory=list)

    def response(self, response: httpx.Response) -> httpx.Response:
        self.parts.append(
            f"{response.request.method} {response.request.url} -> {response.status_code}\n"
            + "".join(f"{k}: {v}\n" for k, v in response.headers.items())
            + response.text
        )
        return response

    def command(self, result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
        self.parts.append(result.stdout + result.stderr)
        return result

    @property
    def text(self) -> str:
        return "\n".join(self.parts)


def exercise(base: str, capture: Capture, foreign_token: str) -> str:
    """Good and failing requests while the database and Redis answer; returns an access
    token for the requests made during the outages."""
    with loopback_client(base_url=base, timeout=30) as http:

        def call(method: str, path: str, **kw: object) -> httpx.Response:
            return capture.response(http.request(method, path, **kw))  # type: ignore[arg-type]

        assert call("GET", "/health/live").status_code == 200
        assert call("GET", "/health/ready").status_code == 200
        registration = {
            "email": "alice@example.com",
            "name": "Alice",
            "password": PASSWORD,
            "confirm_password": PASSWORD,
        }
        tokens = call("POST", "/api/v1/auth/register", json=registration).json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        login = {"email": "alice@example.com", "password": "Wrong-Horse-1"}
        failed = [call("POST", "/api/v1/auth/login", json=login).status_code for _ in range(3)]
        assert failed == [401, 401, 429]
        assert call("POST", "/auth/login", json={**login, "email": "x@example.com"}).is_error
        assert call("POST", "/api/v1/auth/refresh", json={"refresh_token": "nope"}).is_error
        created = call("POST", "/api/v1/projects", json={"name": "Secret-free"}, headers=bearer)
        assert created.status_code == 201, created.text
        project_id = created.json()["id"]
        assert call("GET", f"/api/v1/projects/{project_id}", headers=bearer).status_code == 200
        assert call("POST", "/api/v1/projects", json={"name": 5}, headers=bearer).status_code == 422
        assert call("GET", "/api/v1/projects?limit=abc", headers=bearer).status_code == 422
        assert call("GET", "/api/v1/projects?status[$ne]=x", headers=bearer).status_code == 422
        big = {"name": "big", "description": "x" * 4_000}
        assert call("POST", "/api/v1/projects", json=big, headers=bearer).status_code == 413
        searches = [
            call("GET", "/api/v1/projects?q=secret", headers=bearer).status_code for _ in range(3)
        ]
        assert searches == [200, 200, 429]
        forged = jwt.encode({"sub": "admin", "exp": int(time.time()) + 60}, "guess" * 8)
        for bad in ("garbage", forged, foreign_token):
            headers = {"Authorization": f"Bearer {bad}"}
            assert call("GET", "/api/v1/projects", headers=headers).status_code == 401
        assert call("GET", "/no/such/route").status_code == 404
        assert call("GET", "/metrics").status_code == 200
        signed_in = call("POST", "/api/v1/auth/login", json={**login, "password": PASSWORD})
        assert signed_in.status_code == 429  # the account's failures are still counted
        refreshed = call(
            "POST", "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        token: str = refreshed.json()["access_token"]
        return token


def exercise_outages(
    base: str,
    capture: Capture,
    redis: Outage,
    mongo: Outage,
    token: str,
    logs: Callable[[], str],
) -> None:
    """Redis killed, then the database: the answers (and logs) of a service in trouble."""
    bearer = {"Authorization": f"Bearer {token}"}
    with loopback_client(base_url=base, timeout=30) as http:
        redis.kill()
        capture.response(http.get("/api/v1/projects", headers=bearer))
        capture.response(http.post("/api/v1/projects", json={"name": "p"}, headers=bearer))
        ready = capture.response(http.get("/health/ready"))
        assert ready.json()["status"] == "degraded"
        mongo.kill()
        capture.response(http.post("/api/v1/projects", json={"name": "q"}, headers=bearer))
        capture.response(http.get("/api/v1/projects?sort=createdAt", headers=bearer))
        assert capture.response(http.get("/health/ready")).status_code == 503
        # The driver's heartbeat failures (its error text names the server) reach the log.
        wait_until(
            lambda: "database heartbeat failed" in logs(),
            timeout_s=60,
            what="a failed database heartbeat in the service's log",
        )
        assert capture.response(http.get("/metrics")).status_code == 200


@pytest.mark.parametrize("signing", ["hs256", "rs256"])
def test_no_configured_secret_reaches_a_response_a_log_or_a_command(
    tmp_path: Path, mongo_with_password: Outage, redis_with_password: Outage, signing: str
) -> None:
    """Passwords, JWT secret and private key: absent from everything the service shows."""
    uri = (
        f"mongodb://{MONGO_USER}:{quote(MONGO_PASSWORD, safe='')}@127.0.0.1:"
        f"{mongo_with_password.port}/snipix_secrets?directConnection=true"
        "&authSource=admin&authMechanism=SCRAM-SHA-256"
    )
    redis_url = f"redis://:{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:{redis_with_password.port}/0"
    secrets = [MONGO_PASSWORD, REDIS_PASSWORD]
    keys: dict[str, str]
    if signing == "hs256":
        keys = {"JWT_SECRET": JWT_SECRET}
        secrets.append(JWT_SECRET)
    else:
        private, public = rsa_keys()
        keys = {"JWT_PRIVATE_KEY": private, "JWT_PUBLIC_KEY": public}
        secrets.append(private)
    port = free_port()
    env = clean_env(
        SNIPIX_ENV="production",
        LOG_LEVEL="DEBUG",
        MONGODB_URI=uri,
        REDIS_URL=redis_url,
        SNIPIX_DATA_DIR=str(tmp_path / "data"),
        MONGODB_SERVER_SELECTION_TIMEOUT_MS="1000",
        SNIPIX_MAX_BODY_BYTES="2048",
        SNIPIX_RATE_LIMIT_SEARCHES="2",
        SNIPIX_LOGIN_FAILURES_PER_ACCOUNT="2",
        SNIPIX_RETENTION_INTERVAL_S="0",
        **keys,
    )
    capture = Capture()
    capture.command(run_snipix(["config"], env=env, cwd=tmp_path))
    ping = capture.command(run_snipix(["db", "ping"], env=env, cwd=tmp_path))
    assert ping.returncode == 0, ping.stderr
    service = SnipixProcess(
        ["serve", "--port", str(port)], env=env, cwd=tmp_path, log_path=tmp_path / "serve.log"
    ).start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: accepts(port), timeout_s=90, what="snipix serve to listen")
        # Someone else's key: a token this service must refuse.
        other = jwt.encode({"sub": "u", "exp": int(time.time()) + 60}, "x" * 40)
        token = exercise(base, capture, other)
        exercise_outages(
            base, capture, redis_with_password, mongo_with_password, token, service.output
        )
        down = capture.command(run_snipix(["db", "ping"], env=env, cwd=tmp_path))
        assert down.returncode == 1
    finally:
        if service.process is not None and service.process.poll() is None:
            service.signal(signal.SIGTERM)
            try:
                service.wait(30)
            finally:
                service.kill()
    logs = service.output()
    # The capture worked: the service logged its requests and its trouble.
    assert any(line.get("event") == "request" for line in json_lines(logs))
    assert "cache unavailable" in logs
    assert "database unavailable" in logs or "database heartbeat failed" in logs
    assert "rate limit storage unavailable" in logs
    everything = capture.text + "\n" + logs
    assert "****" in capture.text  # `snipix config` masked what it printed
    for secret in secrets:
        leaked = sorted(form for form in forms(secret) if form in everything)
        assert not leaked, f"a configured secret appeared in captured output: {leaked[0][:6]}..."


def json_lines(text: str) -> list[dict[str, object]]:
    """The JSON log lines of a captured output (anything else skipped)."""
    lines: list[dict[str, object]] = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines
