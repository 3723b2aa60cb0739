"""Settings: what an operator sees when a variable is wrong, and that secrets stay masked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from snipix.settings import Settings, describe_errors, mask_url

STRONG_SECRET = "x" * 40
# The least a production start needs; each test adds the setting it is about.
PRODUCTION = {
    "SNIPIX_ENV": "production",
    "MONGODB_URI": "mongodb://db/editor",
    "JWT_SECRET": STRONG_SECRET,
}
PUBLIC_KEY = (
    "-----BEGIN PUBLIC KEY-----\\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\\n-----END PUBLIC KEY-----"
)


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def problems(monkeypatch: pytest.MonkeyPatch, **env: str) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load(monkeypatch, **env)
    return describe_errors(caught.value)


def test_local_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh checkout starts with no variables at all: embedded engine, dev auth on."""
    settings = load(monkeypatch)
    assert settings.env == "local"
    assert settings.mongodb_uri is None
    assert settings.data_dir == Path(".snipix/data")
    assert settings.database_name == "snipix"
    assert settings.dev_auth_enabled is True
    assert settings.slow_query_ms == 100


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Operators can keep settings in a .env file in the working directory."""
    (tmp_path / ".env").write_text("MONGODB_DATABASE=from_dotenv\nLOG_LEVEL=debug\n")
    settings = load(monkeypatch)
    assert settings.database_name == "from_dotenv"
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("env", "variable", "reason"),
    [
        ({"SNIPIX_ENV": "production", "JWT_SECRET": STRONG_SECRET}, "MONGODB_URI", "required"),
        (
            {"SNIPIX_ENV": "production", "MONGODB_URI": "mongodb://db:27017"},
            "JWT_SECRET",
            "required",
        ),
        (
            {
                "SNIPIX_ENV": "production",
                "MONGODB_URI": "mongodb://db:27017",
                "JWT_SECRET": STRONG_SECRET,
                "SNIPIX_DEV_AUTH": "true",
            },
            "SNIPIX_DEV_AUTH",
            "off",
        ),
        (
            {
                "SNIPIX_ENV": "production",
                "MONGODB_URI": "mongodb://db:27017",
                "JWT_SECRET": "short",
            },
            "JWT_SECRET",
            "at least 32",
        ),
        ({"SNIPIX_ENV": "staging"}, "SNIPIX_ENV", "local"),
        ({"MONGODB_URI": "postgres://db"}, "MONGODB_URI", "mongodb://"),
        ({"MONGODB_URI": "mongodb://db:27017/?w=banana&wtimeoutMS=x"}, "MONGODB_URI", "valid"),
        ({"MONGODB_URI": "mongodb+srv://db.example.com:27017/"}, "MONGODB_URI", "port"),
        ({"MONGODB_DATABASE": "my.db"}, "MONGODB_DATABASE", "database name"),
        ({"MONGODB_MAX_POOL_SIZE": "lots"}, "MONGODB_MAX_POOL_SIZE", "integer"),
        ({"MONGODB_MAX_POOL_SIZE": "0"}, "MONGODB_MAX_POOL_SIZE", "greater than or equal"),
        (
            {"MONGODB_MIN_POOL_SIZE": "50", "MONGODB_MAX_POOL_SIZE": "10"},
            "MONGODB_MIN_POOL_SIZE",
            "exceed",
        ),
        (
            {"MONGODB_SERVER_SELECTION_TIMEOUT_MS": "5"},
            "MONGODB_SERVER_SELECTION_TIMEOUT_MS",
            "100",
        ),
        ({"REDIS_URL": "http://cache:6379"}, "REDIS_URL", "redis://"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL", "INFO"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT", "json"),
        ({"SLOW_QUERY_MS": "-1"}, "SLOW_QUERY_MS", "greater than or equal"),
        ({"JWT_PUBLIC_KEY": "not a key"}, "JWT_PUBLIC_KEY", "PEM"),
        ({"JWT_SECRET": STRONG_SECRET, "JWT_PUBLIC_KEY": PUBLIC_KEY}, "JWT_SECRET", "not both"),
        ({"SMTP_URL": "http://mail:25"}, "SMTP_URL", "smtp://"),
        ({"SMTP_URL": "smtp://mail:port"}, "SMTP_URL", "port"),
        ({"SNIPIX_WEB_APP_URL": "app.example.com"}, "SNIPIX_WEB_APP_URL", "https://"),
    ],
)
def test_bad_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str, reason: str
) -> None:
    """Each bad setting gives exactly one line: the variable's name and what is wrong."""
    lines = problems(monkeypatch, **env)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"invalid setting {variable}: "), lines
    assert reason in lines[0], lines


def test_error_lines_never_echo_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rejected value may be a secret: the error names the variable, not the value."""
    lines = problems(monkeypatch, MONGODB_URI="mongodb://app:Hunter2Secret@db/?w=banana&x=1")
    assert "Hunter2Secret" not in "\n".join(lines)


def test_production_with_everything_set_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(
        monkeypatch,
        SNIPIX_ENV="production",
        MONGODB_URI="mongodb+srv://app:pw@cluster0.example.mongodb.net/editor?retryWrites=true",
        JWT_PUBLIC_KEY=PUBLIC_KEY,
    )
    assert settings.dev_auth_enabled is False
    assert settings.json_logs is True
    assert settings.database_name == "editor"
    assert settings.jwt_public_key is not None
    assert settings.jwt_public_key.startswith("-----BEGIN PUBLIC KEY-----\n")


def test_production_needs_smtp_only_when_verification_is_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load(monkeypatch, **PRODUCTION).smtp_url is None
    lines = problems(monkeypatch, **PRODUCTION, SNIPIX_REQUIRE_EMAIL_VERIFICATION="true")
    assert len(lines) == 1
    assert lines[0].startswith("invalid setting SMTP_URL: is required"), lines
    settings = load(
        monkeypatch,
        **PRODUCTION,
        SNIPIX_REQUIRE_EMAIL_VERIFICATION="true",
        SMTP_URL="smtps://mailer:Mail-Secret%21@smtp.example.com",
        SNIPIX_WEB_APP_URL="https://app.example.com/",
    )
    assert settings.web_app_url == "https://app.example.com"
    shown = settings.describe()
    assert shown["SMTP_URL"] == "smtps://mailer:****@smtp.example.com"
    assert {"Mail-Secret%21", "Mail-Secret!"} <= set(settings.secret_values())


def test_production_refuses_the_test_suites_password_hash_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`minimal` argon2id would make stolen hashes cheap to crack: never in production."""
    assert load(monkeypatch, **PRODUCTION).password_hash_cost == "standard"
    lines = problems(monkeypatch, **PRODUCTION, SNIPIX_PASSWORD_HASH_COST="minimal")
    assert len(lines) == 1
    assert lines[0].startswith("invalid setting SNIPIX_PASSWORD_HASH_COST: only `standard`")
    local = load(monkeypatch, SNIPIX_ENV="local", SNIPIX_PASSWORD_HASH_COST="minimal")
    assert local.password_hash_cost == "minimal"


def test_blank_uri_means_embedded_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """`MONGODB_URI=` copied from .env.example selects the embedded engine, not an error."""
    assert load(monkeypatch, MONGODB_URI="  ", REDIS_URL="").mongodb_uri is None


def test_database_variable_wins_over_uri_path(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, MONGODB_URI="mongodb://db/fromuri", MONGODB_DATABASE="explicit")
    assert settings.database_name == "explicit"


def test_describe_masks_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Printed settings show hosts and users but never a password or the JWT secret."""
    settings = load(
        monkeypatch,
        MONGODB_URI="mongodb+srv://editor:Pa%24%24w0rd-Mongo@cluster0.example.mongodb.net/",
        REDIS_URL="redis://:RedisPass-123@cache:6379/0",
        JWT_SECRET=STRONG_SECRET,
    )
    shown = settings.describe()
    text = "\n".join(f"{k}={v}" for k, v in shown.items())
    for secret in ("Pa%24%24w0rd-Mongo", "Pa$$w0rd-Mongo", "RedisPass-123", STRONG_SECRET):
        assert secret not in text
    assert shown["MONGODB_URI"] == "mongodb+srv://editor:****@cluster0.example.mongodb.net/"
    assert shown["REDIS_URL"] == "redis://:****@cache:6379/0"
    assert shown["JWT_SECRET"] == "****"
    assert shown["MONGODB_MAX_POOL_SIZE"] == "100"
    assert set(settings.secret_values()) >= {
        "Pa%24%24w0rd-Mongo",
        "Pa$$w0rd-Mongo",
        "RedisPass-123",
        STRONG_SECRET,
    }


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("mongodb://u:p@h1:1,h2:2/db?x=1", "mongodb://u:****@h1:1,h2:2/db?x=1"),
        ("mongodb://h1/db", "mongodb://h1/db"),
        ("mongodb://user@h1/db", "mongodb://user@h1/db"),
        ("redis://:p@w@h:6379", "redis://:****@h:6379"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_env_example_documents_every_setting() -> None:
    """Every variable the service reads appears in .env.example, and nothing else does."""
    example = Path(__file__).resolve().parents[1] / ".env.example"
    documented = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in example.read_text().splitlines()
        if "=" in line and line.lstrip("# ").split("=", 1)[0].strip().isupper()
    }
    fields: dict[str, Any] = Settings.model_fields
    names = set()
    for field in fields.values():
        names.add(field.validation_alias.choices[0])
    assert names <= documented, f"undocumented: {sorted(names - documented)}"


def test_blank_jwt_settings_from_env_example_count_as_unset() -> None:
    """A copied .env.example (JWT_SECRET= left blank) plus a public key is a valid setup."""
    configured = Settings(_env_file=None, jwt_secret="", jwt_public_key=PUBLIC_KEY)
    assert configured.jwt_secret is None
    assert configured.jwt_public_key is not None
