"""`snipix users`: the first administrator, and disabling, enabling or deleting accounts.

`create-admin`: the password is prompted (twice, hidden) or read from SNIPIX_ADMIN_PASSWORD
when that is set, for scripted installs; there is never a default password. It must meet
the same rules as a registration.

`disable`, `enable`, `delete EMAIL`: the account rules of `AccountService`; disabling and
deleting end every session of the account. The change reaches running services through
the shared cache (Redis): without REDIS_URL each service caches in its own memory, which
this command cannot reach, so it says how long the old sessions may still be accepted.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Final

import typer
from pydantic import TypeAdapter, ValidationError

from snipix.accounts.metrics import LoginMetrics
from snipix.accounts.passwords import PasswordHasher, password_problems, weak_password_message
from snipix.accounts.repository import RefreshTokenRepository, UserRepository
from snipix.accounts.revocation import SessionGate
from snipix.accounts.schemas import Email
from snipix.accounts.service import AccountService, Lifetimes
from snipix.accounts.throttle import LoginThrottle
from snipix.cache.service import Cache
from snipix.cli.frame import command, fail, invalidation_cache, load_settings
from snipix.db.client import Document, connected
from snipix.db.indexes import ensure_catalogue
from snipix.db.launcher import database_endpoint
from snipix.errors import Conflict, NotFound
from snipix.observability.metrics import Metrics
from snipix.security.metrics import RateLimitMetrics
from snipix.settings import Settings

PASSWORD_VARIABLE: Final = "SNIPIX_ADMIN_PASSWORD"  # noqa: S105 (a variable name)

users_app = typer.Typer(help="Accounts: create administrators; disable, enable or delete accounts.")


@users_app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option("--email", metavar="EMAIL", help="The admin's email.")],
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="Display name (default: the email's name)."),
    ] = None,
) -> None:
    """Create an account with the admin role (password prompted, or SNIPIX_ADMIN_PASSWORD)."""

    try:
        address = TypeAdapter(Email).validate_python(email)
    except ValidationError:
        fail(f"--email: {email!r} is not an email address", code=2)
    display_name = (name or address.split("@", 1)[0]).strip()
    if not display_name or len(display_name) > 100:
        fail("--name: must be 1-100 characters", code=2)
    settings = load_settings()
    password = _password()
    problems = password_problems(password)
    if problems:
        fail(weak_password_message(problems))
    with command(settings), database_endpoint(settings) as effective:
        try:
            user_id = asyncio.run(_create(effective, address, display_name, password))
        except Conflict:
            fail(f"an account with email {address} already exists")
        typer.echo(f"created admin {address} (id {user_id})")


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _password() -> str:

    from_env = os.environ.get(PASSWORD_VARIABLE)
    if from_env:
        return from_env
    if not _interactive():
        # A hidden prompt would read the controlling terminal, or hang a script waiting
        # for one: without a terminal on stdin, the variable is the only way in.
        fail(f"no password: run this in a terminal to be prompted, or set {PASSWORD_VARIABLE}")
    try:
        password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    except typer.Abort:
        fail(f"no password: type it at the prompt, or set {PASSWORD_VARIABLE}")
    return password


async def _create(settings: Settings, email: str, name: str, password: str) -> str:
    # The same document as a registration, with role admin.
    async with _accounts(settings, Cache.disabled()) as service:
        doc = await service.create_user(email=email, name=name, password=password, role="admin")
        return str(doc["_id"])


@asynccontextmanager
async def _accounts(settings: Settings, cache: Cache) -> AsyncIterator[AccountService]:
    """The account rules without the HTTP layer. Signing keys, throttles and metrics play
    no part here; `cache` is where ended sessions are announced."""
    async with connected(settings) as client:
        db = client[settings.database_name]
        # The unique email index must exist before an insert relies on it.
        await ensure_catalogue(db, settings)
        metrics = Metrics("cli")
        users = UserRepository(db)
        yield AccountService(
            users,
            RefreshTokenRepository(db),
            issuer="",
            hasher=PasswordHasher.at_cost(settings.password_hash_cost),
            throttle=LoginThrottle.from_settings(settings),
            lifetimes=Lifetimes.from_settings(settings),
            metrics=LoginMetrics(metrics),
            rate_limits=RateLimitMetrics(metrics),
            gate=SessionGate(users, cache),
        )


Change = Callable[[AccountService, str], Awaitable[Document]]

_EMAIL_ARGUMENT = typer.Argument(metavar="EMAIL", help="The account's email.")


@users_app.command("disable")
def disable(email: Annotated[str, _EMAIL_ARGUMENT]) -> None:
    """Suspend an account: it can no longer sign in, and every session ends."""
    _change(email, "disabled", lambda service, user_id: service.set_status(user_id, "suspended"))


@users_app.command("enable")
def enable(email: Annotated[str, _EMAIL_ARGUMENT]) -> None:
    """Let a disabled account sign in again (the sessions it had stay ended)."""
    _change(email, "enabled", lambda service, user_id: service.set_status(user_id, "active"))


@users_app.command("delete")
def delete(email: Annotated[str, _EMAIL_ARGUMENT]) -> None:
    """Delete an account: every session ends, its email is freed, its projects are kept."""
    _change(email, "deleted", AccountService.delete_account)


def _change(email: str, done: str, change: Change) -> None:
    if not email.strip() or len(email) > 1_000:
        fail("EMAIL: give the account's email address", code=2)
    settings = load_settings()
    with command(settings), database_endpoint(settings) as effective:
        try:
            user_id, reached = asyncio.run(_apply(effective, email, change))
        except NotFound as error:
            fail(error.message)
        typer.echo(f"{done} {email.strip().lower()} (id {user_id})")
        if not reached:
            typer.echo(
                "warning: the running services could not be told through a shared cache "
                f"({'Redis did not answer' if settings.redis_url else 'no REDIS_URL'}); "
                f"they may accept the account's sessions for up to {settings.cache_ttl_s:g} s "
                "(SNIPIX_CACHE_TTL_S), or until restarted",
                err=True,
            )


async def _apply(settings: Settings, email: str, change: Change) -> tuple[str, bool]:
    """The account's id, and whether every running service was told (Redis reached)."""
    async with invalidation_cache(settings) as cache, _accounts(settings, cache) as service:
        user_id = str((await service.account_by_email(email))["_id"])
        await change(service, user_id)
        return user_id, cache.available and cache.pending_invalidations == 0
