"""How a message leaves the process: SMTP (`SMTP_URL`), or, in the local profile without
it, a file in SNIPIX_MAIL_DIR plus a log line a developer can click.

A transport delivers one message or raises `DeliveryFailed`; retrying is the outbox's job.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib
import structlog

from snipix.mail.message import Message
from snipix.settings import Settings

log = structlog.get_logger(__name__)

DEFAULT_PORTS: Final = {"smtp": 587, "smtps": 465}
_FILE_NAME_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.-]")


class DeliveryFailed(Exception):
    """The message was not delivered. `permanent`: retrying cannot help (the server
    refused the recipient or the sender), so the outbox gives up at once."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class Transport(Protocol):
    async def deliver(self, message: Message) -> None: ...


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """SMTP_URL taken apart. `repr` leaves the password out."""

    host: str
    port: int
    use_tls: bool
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError("SMTP_URL must be smtp://... or smtps://...")
        return cls(
            host=parts.hostname,
            port=parts.port or DEFAULT_PORTS[parts.scheme],
            use_tls=parts.scheme == "smtps",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __repr__(self) -> str:
        return f"SmtpServer(host={self.host!r}, port={self.port}, tls={self.use_tls})"


class SmtpTransport:
    """One SMTP connection per message (aiosmtplib): verification and reset mails are
    rare, and a fresh connection never inherits a half-broken one. `smtp://` upgrades
    with STARTTLS when the server offers it; `smtps://` is TLS from the first byte."""

    def __init__(self, server: SmtpServer, *, sender: str, timeout_s: float) -> None:
        self._server = server
        self._sender = sender
        self._timeout_s = timeout_s

    async def deliver(self, message: Message) -> None:
        server = self._server
        try:
            await aiosmtplib.send(
                message.to_email(self._sender),
                hostname=server.host,
                port=server.port,
                username=server.username,
                password=server.password,
                use_tls=server.use_tls,
                # None: STARTTLS if the server offers it (aiosmtplib's opportunistic mode).
                start_tls=False if server.use_tls else None,
                timeout=self._timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            raise DeliveryFailed("recipient refused", permanent=True) from error
        except aiosmtplib.SMTPSenderRefused as error:
            raise DeliveryFailed("sender refused", permanent=True) from error
        except aiosmtplib.SMTPAuthenticationError as error:
            # Wrong credentials stay wrong until an operator fixes them, but the message
            # keeps its retries: the fix may come within them.
            raise DeliveryFailed(f"authentication failed ({error.code})") from error
        except aiosmtplib.SMTPResponseException as error:
            raise DeliveryFailed(
                f"server answered {error.code}", permanent=500 <= error.code < 600
            ) from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise DeliveryFailed(type(error).__name__) from error


class FileTransport:
    """The local profile without SMTP_URL: each message as an `.eml` file in `directory`
    and its plain text in the log, so a developer can follow the link."""

    def __init__(self, directory: Path, *, sender: str) -> None:
        self._directory = directory
        self._sender = sender

    async def deliver(self, message: Message) -> None:
        name = _FILE_NAME_UNSAFE.sub("_", message.message_id.strip("<>")) + ".eml"
        path = self._directory / name
        data = bytes(message.to_email(self._sender))
        try:
            await asyncio.to_thread(_write, path, data)
        except OSError as error:
            raise DeliveryFailed(f"cannot write {path}: {error.strerror}") from error
        # Deliberately with the body: this transport exists so a developer can read it,
        # and it only runs in the local profile without a mail server.
        log.info(
            "mail written", kind=message.kind, to=message.to, path=str(path), text=message.text
        )


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)


class NoTransport:
    """Production without SMTP_URL: nothing can be sent; every message is given up at
    once (logged without its body) instead of being written where nobody reads it."""

    async def deliver(self, message: Message) -> None:
        raise DeliveryFailed("no SMTP_URL configured", permanent=True)


def transport_from_settings(settings: Settings) -> Transport:
    """SMTP when SMTP_URL is set; else files in the local profile, nothing in production."""
    if settings.smtp_url is not None:
        server = SmtpServer.from_url(settings.smtp_url.get_secret_value())
        return SmtpTransport(server, sender=settings.mail_from, timeout_s=settings.mail_timeout_s)
    if settings.env == "local":
        return FileTransport(settings.mail_root, sender=settings.mail_from)
    return NoTransport()
