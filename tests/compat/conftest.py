"""A fresh project, created the way the web app creates one."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.compat.envelopes import OWNER, data


@pytest.fixture
async def project_id(client: httpx.AsyncClient) -> str:
    """A project of OWNER's, created the way the web app creates one."""
    created = await client.post("/projects", json={"name": "Wedding"}, headers=OWNER)
    project: dict[str, Any] = data(created)
    return str(project["_id"])
