"""Password rules and hashing (argon2id through `pwdlib`).

Hashing costs ~100 ms of CPU and 64 MiB by design, so it runs in a worker thread: the
event loop keeps serving other requests while one sign-in is checked.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Final

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

MIN_LENGTH: Final = 8
# Bounded so a megabyte "password" cannot buy a megabyte of hashing work; passphrases fit.
MAX_LENGTH: Final = 256


def password_problems(password: str) -> list[str]:
    """What a new password lacks, in words for a person; empty when it is acceptable."""
    problems: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(f"at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"at most {MAX_LENGTH} characters")
    if not any(c.isupper() for c in password):
        problems.append("an upper-case letter")
    if not any(c.islower() for c in password):
        problems.append("a lower-case letter")
    if not any(c.isdigit() for c in password):
        problems.append("a digit")
    return problems


def weak_password_message(problems: list[str]) -> str:
    return f"The password needs {', '.join(problems)}."


class PasswordHasher:
    """argon2id hashes; verification that costs the same whether or not an account exists."""

    def __init__(self, hasher: PasswordHash | None = None) -> None:
        self._hasher = hasher if hasher is not None else PasswordHash.recommended()
        self._dummy: str | None = None

    @classmethod
    def at_cost(cls, cost: str) -> PasswordHasher:
        """`standard`: pwdlib's recommended argon2id (64 MiB, 3 passes, 4 lanes).
        `minimal`: argon2id over 8 MiB, one pass, one lane, for test suites only (the
        settings refuse it in production): the same code path, a fraction of the CPU."""
        if cost == "minimal":
            return cls(PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8_192, parallelism=1),)))
        return cls()

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password: str, stored: str) -> tuple[bool, str | None]:
        """Whether `password` matches `stored`, and a fresh hash when the parameters changed."""
        try:
            return await asyncio.to_thread(self._hasher.verify_and_update, password, stored)
        except UnknownHashError:
            # An unreadable stored hash (say, from an import) is a failed sign-in, not a 500.
            return False, None

    async def verify_nobody(self, password: str) -> None:
        """The same work as a real verification, for an email without an account.

        Without it an unknown email answers ~100 ms sooner than a wrong password, which
        tells anyone timing the answers which emails have accounts.
        """
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(24))
        await self.verify(password, self._dummy)
