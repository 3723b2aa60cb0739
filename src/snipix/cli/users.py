"""`snipix users create-admin`: the first administrator, created from a shell.

The password is prompted (twice, hidden) or read from SNIPIX_ADMIN_PASSWORD when that is
set, for scripted installs; there is never a default password. It must meet the same
rules as a registration.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated, Final

import typer
from pydantic import TypeAdapter, ValidationError

from snipix.accounts.metrics import LoginMetrics
from snipix.accounts.passwords import PasswordHasher, password_problems, weak_password_message
from snipix.accounts.repository import RefreshTokenRepository, UserRepository
from snipix.accounts.schemas import Email
from snipix.accounts.service import AccountService, Lifetimes
from snipix.accounts.throttle import LoginThrottle
from snipix.cli.frame import command, fail, load_settings
from snipix.db.client import connected
from snipix.db.indexes import ensure_catalogue
from snipix.db.launcher import database_endpoint
from snipix.errors import Conflict
from snipix.observability.metrics import Metrics
from snipix.security.metrics import RateLimitMetrics
from snipix.settings import Settings

PASSWORD_VARIABLE: Final = "SNIPIX_ADMIN_PASSWORD"  # noqa: S105 (a variable name)

users_app = typer.Typer(help="Accounts: create administrators.")


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
    # The account rules without the HTTP layer: the same document as a registration,
    # with role admin. Signing keys, throttles and metrics play no part here.
    async with connected(settings) as client:
        db = client[settings.database_name]
        # The unique email index must exist before the insert relies on it.
        await ensure_catalogue(db, settings)
        metrics = Metrics("cli")
        service = AccountService(
            UserRepository(db),
            RefreshTokenRepository(db),
            issuer="",
            hasher=PasswordHasher(),
            throttle=LoginThrottle.from_settings(settings),
            lifetimes=Lifetimes.from_settings(settings),
            metrics=LoginMetrics(metrics),
            rate_limits=RateLimitMetrics(metrics),
        )
        doc = await service.create_user(email=email, name=name, password=password, role="admin")
        return str(doc["_id"])
