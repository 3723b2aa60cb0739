"""Email verification and password reset, end to end over real SMTP.

The app sends through its outbox to an aiosmtpd server in this process; each test follows
the link in the message it received (as a person would click it, then the web app posts
the token), and checks what the account can and cannot do afterwards.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from snipix.accounts.email_flows import (
    FORGOT_ANSWER,
    RESET_TTL,
    VERIFY_TTL,
    EmailFlows,
    InvalidLink,
)
from snipix.accounts.email_tokens import EmailTokenRepository
from snipix.accounts.passwords import PasswordHasher
from snipix.accounts.repository import UserRepository
from snipix.accounts.schemas import RegisterRequest
from snipix.app import create_app
from snipix.db.client import Database
from snipix.mail.outbox import Outbox
from snipix.mail.transport import SmtpServer, SmtpTransport
from snipix.security.limiter import Limiter
from snipix.settings import Settings
from tests.accounts.helpers import (
    API,
    PASSWORD,
    WEB,
    Json,
    Store,
    accounts_settings,
    bearer,
    login,
    refresh,
    registration,
)
from tests.accounts.test_service import service as account_service_with
from tests.mail_server import SmtpCatcher
from tests.support import Clock, running_app

NEW_PASSWORD = "Battery-Staple-42"
WEB_APP = "https://app.snipix.test"
RESET = "Reset your Snipix password"
CONFIRM = "Confirm your email address"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpCatcher]:
    catcher = SmtpCatcher().start()
    yield catcher
    catcher.stop()


def mail_settings(
    mongodb_uri: str, database_name: str, tmp_path: Path, smtp_url: str, **overrides: Any
) -> Settings:
    return accounts_settings(
        mongodb_uri,
        database_name,
        tmp_path,
        smtp_url=smtp_url,
        web_app_url=WEB_APP,
        # A retry within milliseconds: the outage test waits for the server, not backoff.
        mail_retry_base_ms=20,
        mail_retry_cap_ms=200,
        mail_retry_attempts=100,
        **overrides,
    )


@pytest.fixture
def settings(mongodb_uri: str, database_name: str, tmp_path: Path, smtp: SmtpCatcher) -> Settings:
    return mail_settings(mongodb_uri, database_name, tmp_path, smtp.url)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(create_app(settings)) as http:
        yield http


async def web_register(client: httpx.AsyncClient, email: str) -> Json:
    """Sign up through the web app's path; its tokens (the envelope's `data`)."""
    response = await client.post(f"{WEB}/register", json=registration(email))
    assert response.status_code == 201, response.text
    data: Json = response.json()["data"]
    return data


def account(store: Store, email: str) -> Json:
    doc = store["users"].find_one({"email": email})
    assert doc is not None
    return doc


def stable(response: httpx.Response) -> tuple[int, Any, list[str]]:
    """What a caller can compare between two answers: status, body and header names
    (without the per-request id and timing headers)."""
    names = sorted(
        name
        for name in response.headers
        if name not in {"x-request-id", "date", "server-timing", "content-length"}
    )
    return response.status_code, response.json(), names


async def test_the_link_in_the_verification_mail_verifies_the_address(
    client: httpx.AsyncClient, smtp: SmtpCatcher, store: Store
) -> None:
    email = "verify-me@example.com"
    tokens = await web_register(client, email)
    assert tokens["user"]["is_email_verified"] is False

    mail = await smtp.next_to(email)
    assert mail.link.startswith(f"{WEB_APP}/verify-email?token=")
    assert mail.link in mail.body("html")  # the HTML part has the same link
    assert mail.token not in str(account(store, email))  # only its hash is stored
    verified = await client.post(f"{WEB}/verify-email", json={"token": mail.token})
    assert verified.status_code == 200, verified.text
    assert verified.json()["success"] is True

    me = await client.get(f"{WEB}/me", headers=bearer(tokens["access_token"]))
    assert me.json()["data"]["is_email_verified"] is True
    # What the web app's ProtectedRoute lets through.
    assert me.json()["data"]["status"] == "active"

    again = await client.post(f"{WEB}/verify-email", json={"token": mail.token})
    assert again.status_code == 400
    assert again.json()["success"] is False
    resend = await client.post(f"{WEB}/resend-verification", headers=bearer(tokens["access_token"]))
    assert resend.status_code == 200
    assert "verified already" in resend.json()["message"]
    assert len(smtp.to(email)) == 1  # a verified address gets no new link


async def test_a_reset_from_the_mail_sets_the_password_and_ends_every_session(
    client: httpx.AsyncClient, smtp: SmtpCatcher, store: Store
) -> None:
    email = "forgetful@example.com"
    await web_register(client, email)
    old = (await login(client, email)).json()

    answer = await client.post(f"{WEB}/forgot-password", json={"email": email.upper()})
    assert answer.status_code == 200
    assert answer.json()["message"] == FORGOT_ANSWER
    mail = await smtp.titled(email, RESET)
    assert mail.link.startswith(f"{WEB_APP}/reset-password?token=")

    reset = await client.post(
        f"{WEB}/reset-password",
        json={"token": mail.token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
    )
    assert reset.status_code == 200, reset.text
    assert reset.json()["success"] is True

    assert (await client.get(f"{API}/me", headers=bearer(old["access_token"]))).status_code == 401
    assert (await refresh(client, old["refresh_token"])).status_code == 401
    assert (await login(client, email)).status_code == 401
    signed_in = await login(client, email, NEW_PASSWORD)
    assert signed_in.status_code == 200
    assert signed_in.json()["user"]["is_email_verified"] is True  # the link proved the mailbox

    # The same link again: refused, and the password stays the one just set.
    reuse = await client.post(
        f"{API}/reset-password",
        json={"token": mail.token, "new_password": PASSWORD, "confirm_password": PASSWORD},
    )
    assert reuse.status_code == 400
    assert reuse.json()["error"]["code"] == "invalid_token"
    assert (await login(client, email, NEW_PASSWORD)).status_code == 200


async def test_a_reset_lifts_the_lockout_that_guessing_the_old_password_caused(
    client: httpx.AsyncClient, smtp: SmtpCatcher, settings: Settings
) -> None:
    email = "locked-out@example.com"
    await web_register(client, email)
    for _ in range(settings.login_failures_per_account):
        assert (await login(client, email, "Wrong-Guess-1")).status_code == 401
    assert (await login(client, email)).status_code == 429
    await client.post(f"{WEB}/forgot-password", json={"email": email})
    mail = await smtp.titled(email, RESET)
    reset = await client.post(
        f"{WEB}/reset-password",
        json={"token": mail.token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
    )
    assert reset.status_code == 200
    assert (await login(client, email, NEW_PASSWORD)).status_code == 200


async def test_a_wrong_token_or_a_weak_password_changes_nothing(
    client: httpx.AsyncClient, smtp: SmtpCatcher, store: Store
) -> None:
    email = "careful@example.com"
    await web_register(client, email)
    await client.post(f"{API}/forgot-password", json={"email": email})
    mail = await smtp.titled(email, RESET)
    before = account(store, email)

    wrong = await client.post(
        f"{API}/reset-password",
        json={
            "token": mail.token[:-2] + "xx",
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    )
    weak = await client.post(
        f"{API}/reset-password",
        json={"token": mail.token, "new_password": "short", "confirm_password": "short"},
    )
    bad_verify = await client.post(f"{API}/verify-email", json={"token": mail.token})

    assert wrong.status_code == 400
    assert weak.status_code == 422
    assert bad_verify.status_code == 400  # a reset token does not verify
    assert account(store, email) == before
    # The link still works after those: none of them used it up.
    good = await client.post(
        f"{API}/reset-password",
        json={"token": mail.token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
    )
    assert good.status_code == 200


async def test_forgot_password_answers_an_unknown_address_exactly_as_a_known_one(
    client: httpx.AsyncClient, smtp: SmtpCatcher
) -> None:
    known = "someone@example.com"
    await web_register(client, known)
    for prefix in (WEB, API):
        for_known = await client.post(f"{prefix}/forgot-password", json={"email": known})
        for_unknown = await client.post(
            f"{prefix}/forgot-password", json={"email": "nobody@example.com"}
        )
        known_view, unknown_view = stable(for_known), stable(for_unknown)
        if prefix == WEB:  # the envelope's timestamp is per answer
            for view in (known_view, unknown_view):
                view[1].pop("timestamp", None)
        assert known_view == unknown_view
    await smtp.next_to(known, after=2)
    assert smtp.to("nobody@example.com") == []


async def test_concurrent_resends_hold_the_per_account_limit(
    client: httpx.AsyncClient, smtp: SmtpCatcher, settings: Settings
) -> None:
    """Ten resends at once: the account's limit (its sign-up mail included) lets exactly
    the rest of it through, the others are 429 with Retry-After, and no more mail goes out."""
    email = "impatient@example.com"
    tokens = await web_register(client, email)
    answers = await asyncio.gather(
        *(
            client.post(f"{WEB}/resend-verification", headers=bearer(tokens["access_token"]))
            for _ in range(10)
        )
    )
    codes = sorted(a.status_code for a in answers)
    allowed = settings.mail_per_account - 1
    assert codes == [200] * allowed + [429] * (10 - allowed)
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused.headers["Retry-After"]) > 0
    await smtp.next_to(email, after=allowed)
    # Forgot-password over the limit: the same answer, and nothing sent.
    over = await client.post(f"{WEB}/forgot-password", json={"email": email})
    assert over.json()["message"] == FORGOT_ANSWER
    assert len(smtp.to(email)) == settings.mail_per_account


async def test_one_client_address_gets_a_bounded_number_of_mail_requests(
    mongodb_uri: str, database_name: str, tmp_path: Path, smtp: SmtpCatcher
) -> None:
    """Past SNIPIX_MAIL_PER_IP from one address: 429 for a known and an unknown email
    alike (the limit is the caller's, it says nothing about accounts)."""
    settings = mail_settings(mongodb_uri, database_name, tmp_path, smtp.url, mail_per_ip=2)
    email = "busy@example.com"
    async with running_app(create_app(settings)) as client:
        await web_register(client, email)
        answers = await asyncio.gather(
            *(
                client.post(f"{API}/forgot-password", json={"email": f"guess{i}@example.com"})
                for i in range(5)
            )
        )
        assert sorted(a.status_code for a in answers) == [200, 200, 429, 429, 429]
        known = await client.post(f"{API}/forgot-password", json={"email": email})
        assert known.status_code == 429
        assert int(known.headers["Retry-After"]) > 0
        # Before the app stops: its outbox gives up what it has not sent at shutdown.
        await smtp.titled(email, CONFIRM)
    assert not [m for m in smtp.to(email) if RESET in m.subject]


async def test_a_request_answers_while_the_mail_server_hangs_and_the_mail_follows(
    mongodb_uri: str, database_name: str, tmp_path: Path
) -> None:
    """A mail server that takes connections and never greets: the answer does not wait
    for it (well under one SMTP timeout), and once a working server takes its place the
    queued messages arrive."""
    later = SmtpCatcher()
    settings = mail_settings(mongodb_uri, database_name, tmp_path, later.url, mail_timeout_s=2.0)
    email = "patient@example.com"
    with socket.create_server(("127.0.0.1", later.port)) as hung:  # listens, never answers
        async with running_app(create_app(settings)) as client:
            await web_register(client, email)
            started = time.monotonic()
            answer = await client.post(f"{WEB}/forgot-password", json={"email": email})
            took = time.monotonic() - started
            assert answer.status_code == 200
            assert took < settings.mail_timeout_s, took
            hung.close()
            later.start()
            try:
                reset = await later.titled(email, RESET)
                assert reset.link.startswith(f"{WEB_APP}/reset-password?token=")
                await later.titled(email, CONFIRM)
            finally:
                later.stop()


async def test_links_expire_by_the_service_clock(
    db: Database, settings: Settings, smtp: SmtpCatcher, store: Store
) -> None:
    clock = Clock()
    accounts = account_service_with(db, settings, clock)
    outbox = Outbox(
        SmtpTransport(SmtpServer.from_url(smtp.url), sender="t@example.com", timeout_s=5),
        capacity=10,
        attempts=3,
        base_s=0.01,
        cap_s=0.05,
    )
    flows = EmailFlows.from_settings(
        settings,
        UserRepository(db),
        EmailTokenRepository(db),
        accounts,
        hasher=PasswordHasher(),
        outbox=outbox,
        limiter=Limiter.in_process(),
        clock=clock,
    )
    email = "slow-reader@example.com"
    signed_up = await accounts.register(RegisterRequest.model_validate(registration(email)))
    user = signed_up.user
    await flows.send_verification(user.id, user.email, user.name)
    await flows.forgot_password(email, "127.0.0.1")
    verify = (await smtp.titled(email, CONFIRM)).token
    reset = (await smtp.titled(email, RESET)).token
    before = account(store, email)

    clock.advance(RESET_TTL + timedelta(seconds=1))
    with pytest.raises(InvalidLink):
        await flows.reset_password(reset, NEW_PASSWORD)
    clock.advance(VERIFY_TTL - RESET_TTL)
    with pytest.raises(InvalidLink):
        await flows.verify_email(verify)
    assert account(store, email) == before
    await outbox.close()


async def test_required_verification_refuses_sign_in_until_the_link_is_followed(
    mongodb_uri: str, database_name: str, tmp_path: Path, smtp: SmtpCatcher
) -> None:
    settings = mail_settings(
        mongodb_uri, database_name, tmp_path, smtp.url, require_email_verification=True
    )
    email = "strict@example.com"
    async with running_app(create_app(settings)) as client:
        tokens = await web_register(client, email)
        refused = await login(client, email)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "email_not_verified"
        assert (await refresh(client, tokens["refresh_token"])).status_code == 403
        # The refused sign-in sent a fresh link (the password was right).
        second = await smtp.next_to(email, after=1)
        wrong_password = await login(client, email, NEW_PASSWORD)
        assert wrong_password.status_code == 401
        assert len(smtp.to(email)) == 2

        assert (await client.post(f"{WEB}/verify-email", json={"token": second.token})).is_success
        assert (await login(client, email)).status_code == 200
