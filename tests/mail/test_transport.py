"""Which transport a configuration gets, and the local profile's files."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

from structlog.testing import capture_logs

from snipix.mail.message import Message
from snipix.mail.transport import (
    FileTransport,
    NoTransport,
    SmtpServer,
    SmtpTransport,
    transport_from_settings,
)
from snipix.settings import Settings


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", **values)  # type: ignore[arg-type]


def test_each_configuration_gets_its_transport(tmp_path: Path) -> None:
    assert isinstance(transport_from_settings(settings(tmp_path)), FileTransport)
    smtp = transport_from_settings(settings(tmp_path, smtp_url="smtp://u:p@mail.example.com"))
    assert isinstance(smtp, SmtpTransport)
    production = settings(
        tmp_path, env="production", mongodb_uri="mongodb://db/x", jwt_secret="s" * 40
    )
    assert isinstance(transport_from_settings(production), NoTransport)


def test_the_smtp_address_is_read_and_its_password_never_shown() -> None:
    server = SmtpServer.from_url("smtps://mailer%40example.com:Se%2Fcret@smtp.example.com")
    assert (server.host, server.port, server.use_tls) == ("smtp.example.com", 465, True)
    assert (server.username, server.password) == ("mailer@example.com", "Se/cret")
    assert "Se/cret" not in repr(server)
    assert SmtpServer.from_url("smtp://mail.example.com").port == 587


async def test_the_local_profile_writes_each_message_beside_the_data(tmp_path: Path) -> None:
    """Without SMTP_URL a developer finds the message in `.snipix/mail` (beside the data
    directory) and its link in the log."""
    local = settings(tmp_path)
    transport = transport_from_settings(local)
    sent = Message(
        to="dev@example.com",
        subject="Confirm",
        text="open https://app/verify-email?token=abc",
        html="<p>x</p>",
        kind="verify_email",
    )
    with capture_logs() as logs:
        await transport.deliver(sent)
    files = list((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 1
    parsed = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["To"] == "dev@example.com"
    assert "token=abc" in str(logs)
