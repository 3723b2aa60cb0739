"""Sign-in's series: failed sign-ins by reason."""

from __future__ import annotations

from typing import Literal, get_args

from snipix.observability.metrics import Metrics, zeroed

# Why a sign-in failed. An unknown email and a wrong password are one reason on purpose:
# /metrics is unauthenticated, and two series would tell a scraper whether an email has an
# account.
LoginFailure = Literal["bad_credentials", "rate_limited", "inactive", "unverified"]
LOGIN_FAILURES: tuple[LoginFailure, ...] = get_args(LoginFailure)


class LoginMetrics:
    """`snipix_login_failures_total{reason}`, in the registry of the app that signs in."""

    def __init__(self, metrics: Metrics) -> None:
        self.failures = metrics.counter(
            "snipix_login_failures",
            "Failed sign-ins by reason: bad_credentials (unknown email or wrong password), "
            "rate_limited, inactive (accounts), unverified (an address not yet verified while "
            "SNIPIX_REQUIRE_EMAIL_VERIFICATION is on).",
            ["reason"],
        )
        # Every reason present at 0 from the start.
        zeroed(self.failures, "reason", LOGIN_FAILURES)

    def failed(self, reason: LoginFailure) -> None:
        """Count one refused sign-in."""
        self.failures.labels(reason=reason).inc()
