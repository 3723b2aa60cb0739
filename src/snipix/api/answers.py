"""The error answers routes document (OpenAPI `responses=`), each status described once.

A route lists the statuses it can answer; the common ones take their description from
here, so every router says "412" the same way. What a route means by a status that
differs from route to route (a 409 is a purge race on one, a save in progress on
another) it says itself. The web app's paths document the same statuses in the failure
envelope they are sent in (`compat=True`).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

from snipix.api.envelope import failure_responses
from snipix.api.errors import error_answer

Responses = dict[int | str, dict[str, Any]]

DESCRIBED: Final[Mapping[int, str]] = {
    401: "No or invalid identity.",
    403: "Needs the admin role.",
    404: "No such project for this user.",
    412: "Stale If-Match; details.currentVersion.",
    428: "If-Match (or baseVersion) is required.",
    501: "Always: see the message.",
}
# On the web app's paths a stale version never reaches the client: the adapter retries
# once, and a 412 means it lost twice.
_DESCRIBED_COMPAT: Final[Mapping[int, str]] = {
    **DESCRIBED,
    412: "Other changes won the race twice in a row; reload and retry.",
}


def errors(*codes: int, say: Mapping[int, str] | None = None, compat: bool = False) -> Responses:
    """`responses=` for these statuses (described here) and those in `say` (described by
    the route); in the web app's failure envelope when `compat`."""
    common = _DESCRIBED_COMPAT if compat else DESCRIBED
    described = {code: common.get(code, HTTPStatus(code).phrase) for code in codes}
    described.update(say or {})
    if compat:
        return failure_responses(described)
    return {code: error_answer(description) for code, description in described.items()}
