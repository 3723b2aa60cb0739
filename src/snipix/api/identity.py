"""FastAPI dependencies that turn a request into a `Principal` (or a 401 / 403).

Order of evidence:

1. `Authorization: Bearer <token>`: verified by the app's `TokenVerifier`. When the header
   is present it decides alone; a bad token is never rescued by a dev header.
2. Only when dev auth is on (the local profile by default): `X-User-Id: <id>` with an
   optional `X-User-Roles: admin,editor`. In production these headers are ignored, so a
   client that forgot its token cannot impersonate anyone by adding one.

The resolved user id is stored in `request.state.user_id`, where the access log of
`api.requests` reads it, and bound to the log context for the request's other lines.

A token this service issued (it names a session, `sid`) is accepted only while its session
generation (`gen`) is the account's current one and the account is active
(`accounts.revocation.SessionGate`, read through the cache: no database read in the steady
state), so signing out everywhere, a password change, or disabling or deleting the account
ends it at once on every replica.

The outcome (the principal, or the 401) is kept in the request's state: the rate limiter,
the actor dependencies below and the hot-read lane (`api.hot_reads`) all ask, and a token is
verified (and a rejection logged) once per request.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import structlog
from fastapi import Depends, Request
from starlette.datastructures import Headers

from snipix.api.errors import request_id_of
from snipix.auth.actor import Actor
from snipix.auth.principal import Principal
from snipix.errors import Forbidden, Unauthorized
from snipix.resources import Resources, get_resources

DEV_USER_HEADER: Final = "X-User-Id"
DEV_ROLES_HEADER: Final = "X-User-Roles"

# Strict on purpose: the id lands in logs and documents, so nothing that could forge a
# log line or need escaping.
_DEV_USER_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,200}")
_DEV_ROLE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_MAX_DEV_ROLES = 100

_BEARER_CHALLENGE: Final = "Bearer"
_MALFORMED = 'The Authorization header must be "Bearer <access token>".'
_SIGN_IN = "Sign in: this request has no access token."
_SIGN_IN_DEV = (
    "Sign in: this request has no access token "
    f"(or, for local development, no {DEV_USER_HEADER} header)."
)


def _challenge(message: str) -> Unauthorized:
    # No `error=` attribute: RFC 6750 reserves it for requests that did present a token.
    return Unauthorized(message, headers={"WWW-Authenticate": _BEARER_CHALLENGE})


# Where a request's authentication outcome is kept (scope state: per request).
AUTH_OUTCOME_KEY: Final = "auth_outcome"


def _bearer_token(headers: Headers) -> str | None:
    """The token of the Authorization header, None without one; 401 when it is unusable."""
    values = headers.getlist("authorization")
    if not values:
        return None
    if len(values) > 1:
        raise _challenge("Send one Authorization header, not several.")
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        raise _challenge("Only Bearer access tokens are accepted in the Authorization header.")
    token = token.strip()
    if not token or any(c.isspace() for c in token):
        raise _challenge(_MALFORMED)
    return token


def _dev_principal(headers: Headers) -> Principal | None:
    user_id = headers.get(DEV_USER_HEADER)
    if user_id is None:
        return None
    # The rejected value is not echoed: it may be a pasted token or a log-forging string.
    if not _DEV_USER_ID.fullmatch(user_id):
        raise _challenge(f"{DEV_USER_HEADER} must be 1-200 letters, digits or any of _ . : @ -.")
    raw_roles = headers.get(DEV_ROLES_HEADER, "")
    roles = [role.strip() for role in raw_roles.split(",") if role.strip()]
    if len(roles) > _MAX_DEV_ROLES or not all(_DEV_ROLE.fullmatch(role) for role in roles):
        raise _challenge(
            f"{DEV_ROLES_HEADER} must be comma-separated role names "
            "(letters, digits or any of _ . : -)."
        )
    return Principal(user_id=user_id, roles=frozenset(roles))


def _principal(resources: Resources, headers: Headers) -> Principal:
    token = _bearer_token(headers)
    if token is not None:
        return resources.tokens.verify(token)
    if resources.settings.dev_auth_enabled:
        principal = _dev_principal(headers)
        if principal is None:
            raise _challenge(_SIGN_IN_DEV)
        return principal
    raise _challenge(_SIGN_IN)


async def authenticate(
    resources: Resources, state: dict[str, object], headers: Headers
) -> Principal:
    """The signed-in user of a request (`state` is its scope state); 401 otherwise.

    Decided once per request: later calls return the same principal or raise the same 401.
    Anything else (the database down on a cache miss of the session check) is raised and
    not kept, so a later call tries again.
    """
    outcome = state.get(AUTH_OUTCOME_KEY)
    if outcome is None:
        try:
            outcome = _principal(resources, headers)
            if outcome.generation is not None:
                await resources.services.session_gate.check(outcome.user_id, outcome.generation)
        except Unauthorized as error:
            outcome = error
        state[AUTH_OUTCOME_KEY] = outcome
        if isinstance(outcome, Principal):
            state["user_id"] = outcome.user_id
            structlog.contextvars.bind_contextvars(user_id=outcome.user_id)
    if isinstance(outcome, Unauthorized):
        raise outcome
    assert isinstance(outcome, Principal)
    return outcome


async def current_user(request: Request) -> Principal:
    """The signed-in user of this request; 401 with a Bearer challenge otherwise."""
    state: dict[str, object] = request.scope.setdefault("state", {})
    return await authenticate(get_resources(request), state, request.headers)


CurrentUser = Annotated[Principal, Depends(current_user)]


async def admin_user(user: CurrentUser) -> Principal:
    """The signed-in user, who must hold the `admin` role; 403 for anyone else."""
    if not user.is_admin:
        raise Forbidden("This action needs the admin role.")
    return user


AdminUser = Annotated[Principal, Depends(admin_user)]


# Each takes the request and asks `current_user` itself rather than declaring it: one
# dependency node fewer for FastAPI to resolve on every route, and the
# outcome is the same (`authenticate` decides once per request).
async def current_actor(request: Request) -> Actor:
    user = await current_user(request)
    return Actor(user_id=user.user_id, request_id=request_id_of(request), is_admin=user.is_admin)


async def admin_actor(request: Request) -> Actor:
    user = await current_user(request)
    if not user.is_admin:
        raise Forbidden("This action needs the admin role.")
    return Actor(user_id=user.user_id, request_id=request_id_of(request), is_admin=True)


ActorDep = Annotated[Actor, Depends(current_actor)]
AdminDep = Annotated[Actor, Depends(admin_actor)]


def sends_identity(request: Request) -> bool:
    """Whether the request carries a credential of its own (Bearer, or the dev header where
    dev auth is on): it then wins over any signed link or cookie it also carries."""
    return "authorization" in request.headers or (
        get_resources(request).settings.dev_auth_enabled and DEV_USER_HEADER in request.headers
    )


async def signed_actor(request: Request, user_id: str, generation: int | None) -> Actor:
    """The actor a verified signed link (or media cookie) names. The link ends with the
    sessions of the credential it was asked for with, so their generation is checked."""
    if generation is not None:
        await get_resources(request).services.session_gate.check(user_id, generation)
    request.state.user_id = user_id
    structlog.contextvars.bind_contextvars(user_id=user_id)
    return Actor(user_id=user_id, request_id=request_id_of(request))
