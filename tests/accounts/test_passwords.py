"""Password rules and hashes: what a weak password lacks, and old hashes upgraded on use."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from snipix.accounts.passwords import PasswordHasher, password_problems
from snipix.settings import Settings
from tests.accounts.helpers import PASSWORD, Store, accounts_settings, login, register


@pytest.mark.parametrize(
    ("password", "problems"),
    [
        ("Abcdefg1", []),
        ("Äbcdéfg1", []),
        ("abc", ["at least 8 characters", "an upper-case letter", "a digit"]),
        ("A" * 300 + "a1", ["at most 256 characters"]),
        ("12345678", ["an upper-case letter", "a lower-case letter"]),
    ],
)
def test_password_rules_name_what_is_missing(password: str, problems: list[str]) -> None:
    """A person is told every rule the password breaks, at once."""
    assert password_problems(password) == problems


async def test_unreadable_stored_hash_is_a_failed_check() -> None:
    """A damaged or foreign hash never matches (and never crashes a sign-in)."""
    assert await PasswordHasher().verify(PASSWORD, "not-a-hash") == (False, None)


@pytest.fixture
def settings(mongodb_uri: str, database_name: str, tmp_path: Path) -> Settings:
    """The service's own argon2id cost (the suite runs at `minimal`)."""
    return accounts_settings(mongodb_uri, database_name, tmp_path, password_hash_cost="standard")


async def test_weaker_hash_is_upgraded_on_the_next_sign_in(
    client: httpx.AsyncClient, store: Store
) -> None:
    """An account hashed with older, cheaper parameters gets today's hash when it signs in."""
    await register(client)
    weak = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8_192, parallelism=1),))
    old_hash = weak.hash(PASSWORD)
    store["users"].update_one({"email": "alice@example.com"}, {"$set": {"passwordHash": old_hash}})
    assert (await login(client)).status_code == 200
    stored = store["users"].find_one({"email": "alice@example.com"})
    assert stored is not None
    assert stored["passwordHash"] != old_hash
    assert "m=65536" in stored["passwordHash"]
    assert (await login(client)).status_code == 200
