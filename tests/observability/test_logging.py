"""Logs: JSON lines with the request's context, and never a secret."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr

from snipix.app import create_app
from snipix.observability.logging import configure_logging
from snipix.settings import Settings
from tests.support import running_app

MONGO_PASSWORD = "Mongo-Pa55word"
JWT_SECRET = "jwt-secret-" + "z" * 30


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def log_secrets(log_format: str) -> None:
    settings = Settings(
        _env_file=None,
        mongodb_uri=f"mongodb://editor:{MONGO_PASSWORD}@db-0.internal:27017/",
        jwt_secret=JWT_SECRET,
        log_format=log_format,
    )
    configure_logging(settings)
    uri = settings.mongodb_uri.get_secret_value()  # type: ignore[union-attr]
    logging.getLogger("pymongo.topology").warning("cannot reach %s", uri)
    structlog.get_logger("snipix.test").info("token check", secret=JWT_SECRET, nested={"u": uri})
    try:
        raise ConnectionError(f"lost {uri}")
    except ConnectionError:
        structlog.get_logger("snipix.test").exception("failed")


def test_secrets_are_redacted_from_every_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Even a driver message quoting the URI, or a traceback, shows no password or secret."""
    log_secrets("json")
    output = capsys.readouterr().err
    lines = json_lines(output)
    assert len(lines) == 3
    assert MONGO_PASSWORD not in output
    assert JWT_SECRET not in output
    assert "db-0.internal" in output, "hosts stay visible for operators"
    assert lines[0]["event"] == "cannot reach mongodb://editor:****@db-0.internal:27017/"
    assert lines[1]["secret"] == "****"
    assert "Traceback" in lines[2]["exception"]


def test_console_logs_are_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    log_secrets("console")
    output = capsys.readouterr().err
    assert "Traceback" in output
    assert "db-0.internal" in output
    assert MONGO_PASSWORD not in output
    assert JWT_SECRET not in output


async def test_each_request_logs_one_access_line(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(settings)
    app = create_app(settings)
    async with running_app(app) as http:
        capsys.readouterr()
        response = await http.get("/health/ready", headers={"X-Request-ID": "trace-9"})
    assert response.status_code == 200
    access = [line for line in json_lines(capsys.readouterr().err) if line["event"] == "request"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "trace-9"
    assert line["method"] == "GET"
    assert line["route"] == "/health/ready"
    assert line["status"] == 200
    assert line["latency_ms"] >= 0
    assert line["level"] == "info"


async def test_redis_password_never_reaches_logs_or_readiness(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Redis URL with a password, unreachable: readiness names the cache, not the secret."""
    url = "redis://:Redis-Pa55@127.0.0.1:9/0"
    configured = settings.model_copy(update={"redis_url": SecretStr(url), "redis_timeout_ms": 100})
    configure_logging(configured)
    app = create_app(configured)
    async with running_app(app) as http:
        response: httpx.Response = await http.get("/health/ready")
    assert response.json()["components"]["cache"]["status"] == "down"
    assert "Redis-Pa55" not in response.text
    assert "Redis-Pa55" not in capsys.readouterr().err
