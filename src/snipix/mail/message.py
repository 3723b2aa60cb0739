"""One outgoing message: what the domains hand the outbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Final

from snipix.clock import utc_now

# Headers a template may set beyond the standard ones (none need more today).
_MIME_TEXT: Final = "plain"


@dataclass(frozen=True, slots=True)
class Message:
    """A message with a plain-text and an HTML body.

    `kind` names the template (`verify_email`, `password_reset`): the only thing about a
    message the logs and metrics say, besides the recipient's domain. Bodies carry
    single-use tokens, so they are never logged.
    """

    to: str
    subject: str
    text: str
    html: str
    kind: str
    message_id: str = field(default_factory=lambda: make_msgid(domain="snipix"))

    @property
    def recipient_domain(self) -> str:
        """Where the message goes, without the mailbox: safe to log."""
        return self.to.rpartition("@")[2] or "unknown"

    def to_email(self, sender: str) -> EmailMessage:
        """The MIME message: multipart/alternative, text first (clients show the last
        part they can render, so HTML where supported)."""
        mime = EmailMessage()
        mime["From"] = sender
        mime["To"] = self.to
        mime["Subject"] = self.subject
        mime["Message-ID"] = self.message_id
        mime["Date"] = utc_now().strftime("%a, %d %b %Y %H:%M:%S +0000")
        mime.set_content(self.text, subtype=_MIME_TEXT)
        mime.add_alternative(self.html, subtype="html")
        return mime
