"""Accounts tests: the real app on its own database, signing with a test HS256 secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from snipix.settings import Settings
from tests.accounts.helpers import Store, accounts_settings


@pytest.fixture
def settings(mongodb_uri: str, database_name: str, tmp_path: Path) -> Settings:
    """The suite's settings plus a signing key, strict reuse and a low per-account limit."""
    return accounts_settings(mongodb_uri, database_name, tmp_path)


@pytest.fixture
def store(mongo: MongoClient[dict[str, Any]], settings: Settings) -> Store:
    """The test's database, synchronously: to prove what was or was not written."""
    return mongo[settings.database_name]
