"""Fixtures of the API-wide tests: an app that can sign accounts in and records the database
commands it sends, and the fuzz run's figures after the tests (test_fuzz.py)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from pymongo import MongoClient

from snipix.app import create_app
from snipix.settings import Settings
from tests.api.helpers import SECRET, Commands, Store
from tests.media.conftest import videos  # noqa: F401 (a fixture, for the media header tests)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with a signing key so the accounts routes work."""
    return settings.model_copy(update={"jwt_secret": SecretStr(SECRET)})


@pytest.fixture
def commands(settings: Settings) -> Commands:
    return Commands(settings.database_name)


@pytest.fixture
def app(settings: Settings, commands: Commands) -> FastAPI:
    return create_app(settings, command_listeners=[commands])


@pytest.fixture
def store(mongo: MongoClient[dict[str, Any]], settings: Settings) -> Store:
    """The test's database, synchronously: to prove what was or was not written."""
    return mongo[settings.database_name]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    fuzz = sys.modules.get("tests.api.test_fuzz")
    run = getattr(fuzz, "RUN", None)
    if run is not None and run.cases:
        terminalreporter.write_line(run.summary())
