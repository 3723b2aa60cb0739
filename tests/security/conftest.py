"""Hardening tests (issue 8). The media header tests reuse the session's real videos."""

from __future__ import annotations

from tests.media.conftest import videos  # noqa: F401 (a fixture, re-exported for this package)
