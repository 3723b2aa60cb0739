"""The account mails: plain text and HTML, each with a link to the web app's screen.

The web app (Mikydad/Snipix_web) reads the token from the query string of its
`/verify-email` and `/reset-password` screens (`searchParams.get('token')`) and posts it
back to `/auth/verify-email` and `/auth/reset-password`.
"""

from __future__ import annotations

from html import escape
from typing import Final
from urllib.parse import quote

from snipix.mail.message import Message

VERIFY_PATH: Final = "/verify-email"
RESET_PATH: Final = "/reset-password"
VERIFY_KIND: Final = "verify_email"
RESET_KIND: Final = "password_reset"


def link(web_app_url: str, path: str, token: str) -> str:
    return f"{web_app_url}{path}?token={quote(token, safe='')}"


def _html(greeting: str, lead: str, url: str, button: str, tail: str) -> str:
    return (
        '<!doctype html><html><body style="font-family:sans-serif;line-height:1.5">'
        f"<p>{escape(greeting)}</p><p>{escape(lead)}</p>"
        f'<p><a href="{escape(url, quote=True)}" style="display:inline-block;padding:10px 18px;'
        f'background:#2563eb;color:#fff;text-decoration:none;border-radius:6px">'
        f"{escape(button)}</a></p>"
        f"<p>Or open this address: <br>{escape(url)}</p>"
        f'<p style="color:#666">{escape(tail)}</p></body></html>'
    )


def verification(to: str, name: str, url: str, valid_hours: int) -> Message:
    greeting = f"Hello {name},"
    lead = "Please confirm that this is your email address for your Snipix account."
    tail = (
        f"The link works once and for {valid_hours} hours. If you did not create a Snipix "
        "account, ignore this message."
    )
    text = f"{greeting}\n\n{lead}\n\n{url}\n\n{tail}\n"
    return Message(
        to=to,
        subject="Confirm your email address for Snipix",
        text=text,
        html=_html(greeting, lead, url, "Confirm email address", tail),
        kind=VERIFY_KIND,
    )


def password_reset(to: str, name: str, url: str, valid_minutes: int) -> Message:
    greeting = f"Hello {name},"
    lead = "Someone (hopefully you) asked to reset the password of your Snipix account."
    tail = (
        f"The link works once and for {valid_minutes} minutes; setting a new password signs "
        "the account out everywhere. If you did not ask for this, ignore this message: "
        "your password stays as it is."
    )
    text = f"{greeting}\n\n{lead} Choose a new one here:\n\n{url}\n\n{tail}\n"
    return Message(
        to=to,
        subject="Reset your Snipix password",
        text=text,
        html=_html(greeting, lead, url, "Choose a new password", tail),
        kind=RESET_KIND,
    )
