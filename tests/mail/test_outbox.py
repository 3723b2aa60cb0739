"""The outbox against a real SMTP server: background delivery, give-up, bounds, and logs
that never carry a message's body (it holds a single-use token)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from snipix.mail.message import Message
from snipix.mail.outbox import Outbox
from snipix.mail.transport import SmtpServer, SmtpTransport
from tests.mail_server import SmtpCatcher
from tests.support import until

SECRET_TOKEN = "tok-3f9a1c0e7b"


def message(to: str) -> Message:
    return Message(
        to=to,
        subject="Reset your password",
        text=f"https://app.example.com/reset-password?token={SECRET_TOKEN}",
        html=f'<a href="https://app.example.com/reset-password?token={SECRET_TOKEN}">reset</a>',
        kind="password_reset",
    )


def outbox_for(url: str, **options: float) -> Outbox:
    transport = SmtpTransport(
        SmtpServer.from_url(url), sender="Snipix <s@example.com>", timeout_s=5
    )
    values: dict[str, float] = {"capacity": 10, "attempts": 3, "base_s": 0.01, "cap_s": 0.02}
    values.update(options)
    return Outbox(
        transport,
        capacity=int(values["capacity"]),
        attempts=int(values["attempts"]),
        base_s=values["base_s"],
        cap_s=values["cap_s"],
    )


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpCatcher]:
    catcher = SmtpCatcher().start()
    yield catcher
    catcher.stop()


async def test_a_submitted_message_arrives_with_both_parts(smtp: SmtpCatcher) -> None:
    outbox = outbox_for(smtp.url)
    assert outbox.submit(message("both@example.com")) is True
    received = await smtp.next_to("both@example.com")
    assert received.sender == "s@example.com"
    assert SECRET_TOKEN in received.body("plain")
    assert SECRET_TOKEN in received.body("html")
    await until(lambda: outbox.pending == 0, what="the delivery task to end", interval_s=0)
    await outbox.close()


async def test_an_undeliverable_message_is_given_up_and_logged_without_its_body() -> None:
    gone = SmtpCatcher()  # never started: every connection refused
    outbox = outbox_for(gone.url, attempts=2)
    with capture_logs() as logs:
        outbox.submit(message("lost@example.com"))
        await until(lambda: outbox.pending == 0, what="the outbox to give up", interval_s=0.01)
    failed = [e for e in logs if e["event"] == "mail undeliverable"]
    assert len(failed) == 1
    assert failed[0]["to_domain"] == "example.com"
    assert SECRET_TOKEN not in repr(logs)
    assert "lost@" not in repr(logs)
    await outbox.close()


async def test_a_full_outbox_refuses_more_without_waiting() -> None:
    gone = SmtpCatcher()
    # Retries far apart: the first message stays pending for the whole test.
    outbox = outbox_for(gone.url, capacity=1, attempts=5, base_s=60, cap_s=60)
    assert outbox.submit(message("first@example.com")) is True
    with capture_logs() as logs:
        assert outbox.submit(message("second@example.com")) is False
    assert [e["event"] for e in logs] == ["mail dropped: outbox full"]
    assert SECRET_TOKEN not in repr(logs)
    with capture_logs() as logs:
        await outbox.close()  # the waiting one is given up, logged
    assert [e["event"] for e in logs] == ["mail undeliverable"]
    assert outbox.submit(message("late@example.com")) is False
