"""The original web app's envelope, read the way the web app reads it, and its identities."""

from __future__ import annotations

from typing import Any

import httpx

OWNER = {"X-User-Id": "web-user"}
STRANGER = {"X-User-Id": "someone-else"}


def data(response: httpx.Response, status: int = 200) -> Any:
    """The `data` of a success envelope (and the envelope's other members checked)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True
    assert body["error"] is None
    assert isinstance(body["message"], str)
    return body["data"]


def failure(response: httpx.Response, status: int) -> dict[str, Any]:
    """The failure envelope the web app reads errors from."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is False
    assert isinstance(body["error"], str)
    assert body["error"]
    assert "details" in body
    assert body["timestamp"].endswith("Z")
    return body
