"""HTTP for a project's live events (`/api/v1/projects/{id}/events`, Server-Sent Events):
HTTP only; the stream's rules live in `snipix.events.stream`, fan-out in `snipix.events.bus`.

Identity: the Authorization header as everywhere, or (a browser's EventSource cannot send
headers) `?token=` from `GET .../events/link`, a short-lived link signed like the media
links but good for this project's events only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import structlog
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import Field
from starlette.types import Receive, Scope, Send

from snipix.api.answers import errors
from snipix.api.errors import request_id_of
from snipix.api.identity import ActorDep, current_user, sends_identity, signed_actor
from snipix.api.parameters import ProjectId
from snipix.api.query_guard import reject_unsafe_query
from snipix.auth.actor import Actor
from snipix.errors import NotFound, Unauthorized, ValidationFailed
from snipix.events.bus import Event
from snipix.events.stream import sse, start_from
from snipix.resources import Resources, get_resources
from snipix.wire.models import Instant, WireModel

log = structlog.get_logger(__name__)

EVENTS_PATH: Final = "/api/v1/projects/{project_id}/events"
# Longest Last-Event-ID accepted (a version: digits).
_MAX_ID_DIGITS: Final = 18

router = APIRouter(
    prefix="/api/v1",
    tags=["events"],
    dependencies=[Depends(reject_unsafe_query)],
    responses=errors(401, 404),
)


class EventsLink(WireModel):
    """A URL that opens the project's event stream without an Authorization header."""

    url: str = Field(description="Relative to the API; send it to `new EventSource(url)`.")
    expires_at: Instant = Field(description="Ask for a new link before this to reconnect.")


async def events_viewer(
    request: Request,
    project_id: ProjectId,
    token: Annotated[
        str | None,
        Query(
            max_length=1_024,
            description="An event stream link's token (GET .../events/link), for "
            "EventSource, which cannot send an Authorization header.",
        ),
    ] = None,
) -> tuple[Actor, int | None]:
    """Who opens the stream, and the session generation their credential carries (the
    stream re-checks it, so signing out everywhere ends it too)."""
    if sends_identity(request) or token is None:
        user = await current_user(request)
        return Actor(user_id=user.user_id, request_id=request_id_of(request)), user.generation
    signer = await get_resources(request).services.media.signer()
    user_id, generation = signer.verify_events(token, project_id)
    return await signed_actor(request, user_id, generation), generation


ViewerDep = Annotated[tuple[Actor, int | None], Depends(events_viewer)]


class EventStreamResponse(StreamingResponse):
    """A stream whose place (its bound, subscription and presence) is given back however
    the response ends, even when the client left before the body was first read (the
    generator's own `finally` would then never run)."""

    def __init__(self, on_exit: Callable[[], Awaitable[None]], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_exit = on_exit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._on_exit()


def _last_event_id(header: str | None, query: str | None) -> int | None:
    raw = header if header is not None else query
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > _MAX_ID_DIGITS:
        raise ValidationFailed(
            "Last-Event-ID must be the id of an event this stream sent (a timeline version).",
            details=[{"loc": ["header", "Last-Event-ID"], "msg": "not a version", "type": "int"}],
        )
    return int(raw)


@router.get(
    "/projects/{project_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-Sent Events: `revision` (id = the timeline version), "
            "`project`, `transcript`, `presence`, `membership`, `reload`; heartbeat comments.",
        },
        **errors(
            422,
            say={
                429: "This user has SNIPIX_EVENTS_MAX_PER_USER streams open; see Retry-After.",
                503: "This replica has SNIPIX_EVENTS_MAX_STREAMS streams open; see Retry-After.",
            },
        ),
    },
)
async def project_events(
    project_id: ProjectId,
    request: Request,
    viewer: ViewerDep,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=100, description="Resume after this version."),
    ] = None,
    last_event_id_query: Annotated[
        str | None,
        Query(
            alias="lastEventId",
            max_length=100,
            description="Resume after this version (for a first connection that has one).",
        ),
    ] = None,
) -> StreamingResponse:
    """The project's changes as they happen, on this and every other replica; with
    Last-Event-ID, first the timeline revisions after it, from the history."""
    actor, generation = viewer
    after = _last_event_id(last_event_id, last_event_id_query)
    resources = get_resources(request)
    services = resources.services
    settings = resources.settings
    # 404 for anyone who may not read the project, before anything is held.
    await services.projects.get(actor, project_id)

    async def history(after_version: int, limit: int) -> tuple[int, list[Event]]:
        return await services.timelines.revisions_after(project_id, after_version, limit)

    async def still_allowed() -> bool:
        return await _still_allowed(resources, actor, project_id, generation)

    stack = AsyncExitStack()
    try:
        stack.enter_context(services.streams.admit(actor.user_id))
        # Subscribed before the history is read: nothing committed in between is missed.
        subscription = await stack.enter_async_context(services.events.subscribe(project_id))
        start = await start_from(history, after, replay_max=settings.events_replay_max)
    except BaseException:
        await stack.aclose()
        raise
    await services.events.joined(project_id, actor.user_id)

    done = False

    async def ended() -> None:
        nonlocal done
        if done:
            return
        done = True
        await services.events.left(project_id, actor.user_id)
        await stack.aclose()

    log.info("event stream opened", project_id=project_id, after=after)
    return EventStreamResponse(
        ended,
        sse(
            subscription,
            start,
            history=history,
            still_allowed=still_allowed,
            heartbeat_s=settings.events_heartbeat_s,
            replay_max=settings.events_replay_max,
            on_end=ended,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _still_allowed(
    resources: Resources, actor: Actor, project_id: str, generation: int | None
) -> bool:
    """The stream's user may still read the project, and their session is still live."""
    try:
        if generation is not None:
            await resources.services.session_gate.check(actor.user_id, generation)
        await resources.services.projects.get(actor, project_id)
    except (NotFound, Unauthorized):
        return False
    return True


@router.get("/projects/{project_id}/events/link", response_model=EventsLink)
async def events_link(project_id: ProjectId, request: Request, actor: ActorDep) -> EventsLink:
    """A short-lived URL of the project's event stream (SNIPIX_EVENTS_LINK_TTL_S) carrying a
    signed token, for EventSource; the stream still checks the user's access."""
    resources = get_resources(request)
    await resources.services.projects.get(actor, project_id)
    principal = await current_user(request)  # decided already for `actor`: no second check
    signer = await resources.services.media.signer()
    token, expires = signer.sign_events(
        actor.user_id,
        project_id,
        generation=principal.generation,
        ttl_s=resources.settings.events_link_ttl_s,
    )
    return EventsLink(
        url=f"{EVENTS_PATH.format(project_id=project_id)}?token={token}",
        expires_at=datetime.fromtimestamp(expires, UTC),
    )
