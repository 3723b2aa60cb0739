"""Readiness reports the cache too: these tests choose their cache themselves (none unless
a test configures Redis), whatever SNIPIX_TEST_CACHE the run uses."""

from __future__ import annotations

import pytest

from snipix.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"redis_url": None})
