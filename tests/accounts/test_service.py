"""Token lifetimes, judged by the service's clock: moved forward, not waited for."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest

from snipix.accounts.metrics import LoginMetrics
from snipix.accounts.passwords import PasswordHasher
from snipix.accounts.repository import UserRepository
from snipix.accounts.revocation import SessionGate
from snipix.accounts.schemas import RegisterRequest
from snipix.accounts.service import AccountService, account_service
from snipix.accounts.throttle import LoginThrottle
from snipix.accounts.token_issuer import TokenIssuer
from snipix.cache.service import Cache
from snipix.db.client import Database
from snipix.errors import Unauthorized
from snipix.observability.metrics import Metrics
from snipix.security.limiter import Limiter
from snipix.security.metrics import RateLimitMetrics
from snipix.settings import Settings
from tests.accounts.helpers import SECRET, registration
from tests.support import Clock


def service(db: Database, settings: Settings, clock: Clock) -> AccountService:
    metrics = Metrics("test")
    rate_limits = RateLimitMetrics(metrics)
    issuer = TokenIssuer.from_settings(settings)
    assert isinstance(issuer, TokenIssuer)
    return account_service(
        db,
        settings,
        issuer=TokenIssuer(issuer.key, issuer.algorithm, issuer.ttl_s, clock=clock),
        hasher=PasswordHasher(),
        throttle=LoginThrottle.from_settings(
            settings, Limiter(None, prefix=settings.cache_prefix, metrics=rate_limits)
        ),
        metrics=LoginMetrics(metrics),
        rate_limits=rate_limits,
        gate=SessionGate(UserRepository(db), Cache.disabled()),
        clock=clock,
    )


async def test_a_refresh_token_works_until_its_lifetime_ends(
    db: Database, settings: Settings
) -> None:
    clock = Clock()
    accounts = service(db, settings, clock)
    signed_in = await accounts.register(RegisterRequest.model_validate(registration()))
    clock.advance(timedelta(seconds=settings.refresh_token_ttl_s - 60))
    renewed = await accounts.refresh(signed_in.refresh_token)
    clock.advance(timedelta(seconds=settings.refresh_token_ttl_s + 1))
    with pytest.raises(Unauthorized):
        await accounts.refresh(renewed.refresh_token)


async def test_a_replay_is_judged_by_the_chain_not_by_the_time(
    db: Database, settings: Settings
) -> None:
    """A used token is answered with its successor however late it comes (an hour here),
    while that successor is unused; after it was used, the same replay ends the session."""
    clock = Clock()
    accounts = service(db, settings, clock)
    signed_in = await accounts.register(RegisterRequest.model_validate(registration()))
    first = await accounts.refresh(signed_in.refresh_token)
    clock.advance(timedelta(hours=1))
    again = await accounts.refresh(signed_in.refresh_token)
    assert again.refresh_token == first.refresh_token
    assert again.access_token != first.access_token
    clock.advance(timedelta(seconds=1))
    second = await accounts.refresh(first.refresh_token)
    with pytest.raises(Unauthorized):
        await accounts.refresh(signed_in.refresh_token)  # the chain moved past it
    with pytest.raises(Unauthorized):
        await accounts.refresh(second.refresh_token)  # the whole session ended


async def test_access_tokens_are_stamped_by_the_issuers_clock(settings: Settings) -> None:
    clock = Clock()
    clock.advance(timedelta(days=3))
    issuer = TokenIssuer(SECRET.encode(), "HS256", 900, clock=clock)
    claims: dict[str, Any] = jwt.decode(
        issuer.access_token(user_id="u1", role="user", session_id="s1"),
        options={"verify_signature": False},
    )
    assert claims["exp"] - claims["iat"] == 900
    assert claims["iat"] == int(clock().timestamp())
