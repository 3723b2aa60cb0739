"""Sign out everywhere across replicas: two `snipix serve` processes as production runs
them (SNIPIX_ENV=production, a real JWT secret, one database, one real Redis), so the only
way the second learns of the change is the shared cache and its tracking."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.accounts.helpers import API, registration
from tests.support import (
    RedisServer,
    loopback_client,
    serving,
    wait_until,
)

SECRET = "replicas-test-secret-" + "r" * 40
# What the change must take to reach every replica.
BOUND_S = 1.0


@contextmanager
def replica(tmp_path: Path, name: str, env: dict[str, str]) -> Iterator[str]:
    """`python -m snipix serve` (one worker) on a free port, ready; its base URL."""
    with serving(tmp_path / name, env, name=name, args=("--workers", "1")) as base:
        yield base


def production(
    tmp_path: Path, mongodb_uri: str, database_name: str, redis: RedisServer
) -> dict[str, str]:
    """Two replicas as production runs them: one database, one Redis, a real JWT secret."""
    return {
        "SNIPIX_ENV": "production",
        "MONGODB_URI": mongodb_uri,
        "MONGODB_DATABASE": database_name,
        "REDIS_URL": redis.url,
        "SNIPIX_CACHE_PREFIX": f"test_{uuid.uuid4().hex[:12]}",
        "JWT_SECRET": SECRET,
        "SNIPIX_MEDIA_DIR": str(tmp_path / "media"),
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.process
def test_logout_all_on_one_replica_ends_the_session_on_another_within_a_second(
    tmp_path: Path, mongodb_uri: str, database_name: str, redis_server: RedisServer
) -> None:
    env = production(tmp_path, mongodb_uri, database_name, redis_server)
    with ExitStack() as stack:
        first = stack.enter_context(replica(tmp_path, "replica-1", env))
        second = stack.enter_context(replica(tmp_path, "replica-2", env))
        http = stack.enter_context(loopback_client(timeout=10))

        signed_in = http.post(f"{first}{API}/register", json=registration())
        assert signed_in.status_code == 201, signed_in.text
        tokens = signed_in.json()
        access = bearer(tokens["access_token"])
        created = http.post(f"{first}/api/v1/projects", json={"name": "Cut"}, headers=access)
        assert created.status_code == 201, created.text
        project = f"{second}/api/v1/projects/{created.json()['id']}"

        # Replica 2 reads the project (and the session's standing) until both come from
        # its own memory: the first read fills Redis, the next ones the local layer.
        reads = [http.get(project, headers=access) for _ in range(3)]
        assert [r.status_code for r in reads] == [200, 200, 200], reads[-1].text
        assert reads[-1].headers["X-Cache"] == "hit"

        ended = http.post(f"{first}{API}/logout-all", headers=access)
        assert ended.status_code == 204, ended.text

        def refused() -> bool:
            return http.get(project, headers=access).status_code == 401

        took = wait_until(refused, timeout_s=BOUND_S, interval_s=0.02, what="replica 2's 401")
        print(f"replica 2 refused the old token {took * 1000:.0f} ms after the sign-out")
        assert http.get(f"{second}/api/v1/projects", headers=access).status_code == 401
        renewed = http.post(
            f"{second}{API}/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert renewed.status_code == 401, renewed.text

        again = http.post(
            f"{second}{API}/login",
            json={"email": "alice@example.com", "password": registration()["password"]},
        )
        assert again.status_code == 200, again.text
        fresh = bearer(again.json()["access_token"])
        assert http.get(project, headers=fresh).status_code == 200
        assert http.get(f"{first}/api/v1/projects", headers=fresh).status_code == 200


@pytest.mark.process
def test_a_replayed_refresh_token_never_forks_the_session_across_replicas(
    tmp_path: Path, mongodb_uri: str, database_name: str, redis_server: RedisServer
) -> None:
    """The client refreshes on one replica, a thief replays the used token on the other:
    the thief gets only the token the client already holds; once the client moves on, the
    replay signs the whole session out on both."""
    env = production(tmp_path, mongodb_uri, database_name, redis_server)
    with ExitStack() as stack:
        client_side = stack.enter_context(replica(tmp_path, "replica-1", env))
        thief_side = stack.enter_context(replica(tmp_path, "replica-2", env))
        http = stack.enter_context(loopback_client(timeout=10))

        def refresh(base: str, token: str) -> tuple[int, str | None]:
            answer = http.post(f"{base}{API}/refresh", json={"refresh_token": token})
            body = answer.json() if answer.status_code == 200 else {}
            return answer.status_code, body.get("refresh_token")

        signed_in = http.post(f"{client_side}{API}/register", json=registration())
        assert signed_in.status_code == 201, signed_in.text
        first = signed_in.json()["refresh_token"]
        status, second = refresh(client_side, first)
        assert status == 200
        assert second is not None
        assert refresh(thief_side, first) == (200, second), "the replay got a second chain"
        status, third = refresh(client_side, second)
        assert status == 200
        assert third is not None
        assert refresh(thief_side, first)[0] == 401
        assert refresh(client_side, third)[0] == 401, "the session was not ended"
