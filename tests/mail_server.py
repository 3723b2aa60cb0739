"""A real SMTP server in the test process (aiosmtpd, on its own thread and loop).

Messages are parsed and kept in arrival order; tests find theirs by recipient (each test
registers its own addresses), follow the link in it, and wait for arrival by polling
(`tests.support.until`). `stop()` and `start()` on the same port model a mail server that
goes away and comes back.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller

from tests.support import free_port, until, wait_until

_LINK: Final = re.compile(r"https?://\S+")


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def body(self, subtype: str) -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        assert part is not None, f"no text/{subtype} part"
        return str(part.get_content())

    @property
    def link(self) -> str:
        """The one link of the plain-text body."""
        links = _LINK.findall(self.body("plain"))
        assert len(links) == 1, links
        return str(links[0])

    @property
    def token(self) -> str:
        """The `token` query parameter of the link (what the web app's screen reads)."""
        return parse_qs(urlsplit(self.link).query)["token"][0]


class _Collect:
    def __init__(self, server: SmtpCatcher) -> None:
        self._server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self._server.add(
            Received(envelope.mail_from, tuple(envelope.rcpt_tos), parsed),
        )
        return "250 OK"


class SmtpCatcher:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SmtpCatcher:
        controller = Controller(_Collect(self), hostname="127.0.0.1", port=self.port)
        controller.start()
        self._controller = controller
        return self

    def __enter__(self) -> SmtpCatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(
        self, address: str, subject: str, *, count: int = 1, timeout_s: float = 30
    ) -> Received:
        """From synchronous code: the latest message to `address` with `subject`, once
        `count` of them have arrived."""

        def found() -> list[Received]:
            return [m for m in self.to(address) if subject in m.subject]

        wait_until(
            lambda: len(found()) >= count,
            timeout_s=timeout_s,
            what=f"{count} mail {subject!r} to {address}",
        )
        return found()[-1]

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def add(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)

    def to(self, address: str) -> list[Received]:
        with self._lock:
            return [m for m in self._received if address in m.recipients]

    async def titled(self, address: str, subject: str, *, deadline_s: float = 30) -> Received:
        """The latest message to `address` with `subject`, once one has arrived."""

        def found() -> list[Received]:
            return [m for m in self.to(address) if subject in m.subject]

        await until(
            lambda: bool(found()),
            what=f"mail {subject!r} to {address}",
            deadline_s=deadline_s,
            interval_s=0.02,
        )
        return found()[-1]

    async def next_to(self, address: str, *, after: int = 0, deadline_s: float = 30) -> Received:
        """The (`after` + 1)-th message to `address`, once it has arrived."""
        await until(
            lambda: len(self.to(address)) > after,
            what=f"mail number {after + 1} to {address}",
            deadline_s=deadline_s,
            interval_s=0.02,
        )
        return self.to(address)[after]
