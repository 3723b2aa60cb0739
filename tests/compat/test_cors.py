"""CORS for the web app's browser: its dev server may call the API with a token; other web
pages may not, and production allows only the origins it is told."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from snipix.app import create_app
from snipix.settings import Settings
from tests.compat.envelopes import OWNER, data
from tests.support import running_app

WEB_APP = "http://localhost:3000"


def preflight(origin: str, method: str = "PUT") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type",
    }


async def test_the_web_apps_dev_server_may_send_its_token(client: httpx.AsyncClient) -> None:
    """A preflight from http://localhost:3000 asking for Authorization is allowed."""
    response = await client.options("/projects/p1", headers=preflight(WEB_APP))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == WEB_APP
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed
    assert "PUT" in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers
    second = await client.options("/timeline/", headers=preflight("http://127.0.0.1:3000", "POST"))
    assert second.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"


async def test_answers_to_the_web_app_carry_its_origin(client: httpx.AsyncClient) -> None:
    """The browser lets the web app read answers (and their request id) from the API."""
    response = await client.get("/projects", headers={**OWNER, "Origin": WEB_APP})
    assert data(response) == []
    assert response.headers["access-control-allow-origin"] == WEB_APP
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


async def test_another_web_page_is_not_allowed(client: httpx.AsyncClient) -> None:
    """A preflight from an unknown origin is refused and its answers carry no CORS grant."""
    response = await client.options("/projects", headers=preflight("https://evil.example"))
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    plain = await client.get("/projects", headers={**OWNER, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in plain.headers


def production(settings: Settings, **overrides: str) -> Settings:
    """The test's settings in the production profile."""
    assert settings.mongodb_uri is not None
    return Settings.model_validate(
        {
            "SNIPIX_ENV": "production",
            "MONGODB_URI": settings.mongodb_uri.get_secret_value(),
            "MONGODB_DATABASE": settings.database_name,
            "SNIPIX_DATA_DIR": str(settings.data_dir),
            "JWT_SECRET": "s" * 40,
            "LOG_FORMAT": "json",
            **overrides,
        }
    )


async def test_production_allows_only_configured_origins(settings: Settings) -> None:
    """Production grants no origin by default; a configured one is granted, others are not."""
    quiet = production(settings)
    assert quiet.cors_allowed_origins == ()
    async with running_app(create_app(quiet)) as http:
        response = await http.options("/projects", headers=preflight(WEB_APP))
        assert "access-control-allow-origin" not in response.headers
    configured = production(settings, SNIPIX_CORS_ORIGINS="https://editor.example.com/")
    assert configured.cors_allowed_origins == ("https://editor.example.com",)
    async with running_app(create_app(configured)) as http:
        granted = await http.options("/projects", headers=preflight("https://editor.example.com"))
        assert granted.headers["access-control-allow-origin"] == "https://editor.example.com"
        refused = await http.options("/projects", headers=preflight(WEB_APP))
        assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize("value", ["*", "https://a.example.com,*", "localhost:3000", "https://a/b"])
def test_a_wildcard_or_malformed_origin_stops_start_up(value: str) -> None:
    """SNIPIX_CORS_ORIGINS must list exact origins; `*` and paths are refused by name."""
    with pytest.raises(ValidationError, match="SNIPIX_CORS_ORIGINS"):
        Settings(_env_file=None, SNIPIX_CORS_ORIGINS=value)
