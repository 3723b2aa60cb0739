"""HTTP for a project's timeline (`/api/v1/projects/{id}/timeline`): HTTP only."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from snipix.api.answers import errors
from snipix.api.etags import IfMatchHeader, set_etag
from snipix.api.idempotency import IdempotencyKeyHeader
from snipix.api.identity import ActorDep
from snipix.api.pagination import CursorParam, Limit
from snipix.api.parameters import ProjectId
from snipix.api.query_guard import reject_unsafe_query
from snipix.api.representations import IfNoneMatchHeader, json_response
from snipix.errors import TooLarge, ValidationFailed
from snipix.resources import SettingsDep, get_resources
from snipix.timelines.interchange import FORMATS, format_for
from snipix.timelines.patches import check_operations
from snipix.timelines.schemas import (
    STATE_FIELDS,
    HistoryCursor,
    ImportReport,
    Revision,
    RollbackTimeline,
    SaveTimeline,
    Timeline,
    TimelineVersion,
)
from snipix.timelines.service import TimelineService
from snipix.wire.models import check_json
from snipix.wire.pages import DEFAULT_LIMIT, Page, decode_cursor
from snipix.wire.versions import MAX_VERSION, expected_version, parse_if_match

PATCH_MEDIA_TYPES = ("application/json-patch+json", "application/json")


async def get_timeline_service(request: Request) -> TimelineService:
    return get_resources(request).services.timelines


ServiceDep = Annotated[TimelineService, Depends(get_timeline_service)]
IdempotencyKey = IdempotencyKeyHeader
ChangeLabel = Annotated[
    str | None,
    Header(alias="X-Change-Label", max_length=500, description="Shown in the history."),
]

router = APIRouter(
    prefix="/api/v1/projects/{project_id}/timeline",
    tags=["timeline"],
    dependencies=[Depends(reject_unsafe_query)],
    responses=errors(401, say={404: "No such project (or version) for this user."}),
)
_WRITE = errors(
    412,
    428,
    say={
        409: "Another save is in progress, or nothing to undo.",
        413: "The state exceeds SNIPIX_TIMELINE_MAX_BYTES.",
        422: "Invalid patch or invalid resulting state.",
    },
)


PreferHeader = Annotated[
    str | None,
    Header(
        alias="Prefer",
        max_length=200,
        description="`return=minimal`: answer 204 with the new ETag, without the state.",
    ),
]


def _wants_minimal(prefer: str | None) -> bool:
    return prefer is not None and any(
        part.strip().lower() == "return=minimal" for part in prefer.split(",")
    )


def _respond(response: Response, timeline: Timeline) -> Timeline:
    set_etag(response, timeline.version)
    return timeline


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"The request body is {int(declared):,} bytes; the limit is {limit:,}.")
    body = await request.body()
    if len(body) > limit:
        raise TooLarge(f"The request body is {len(body):,} bytes; the limit is {limit:,}.")
    return body


def _operations(body: bytes, max_operations: int) -> list[dict[str, Any]]:
    """The patch's operations, checked before anything is read: JSON within the body bounds
    of every request (`check_json`), at most `max_operations` (SNIPIX_TIMELINE_MAX_PATCH_OPS),
    each well-formed and aimed inside the timeline state."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise ValidationFailed("The body is not JSON; send an RFC 6902 JSON Patch array.") from None
    if not isinstance(document, list) or not all(isinstance(op, dict) for op in document):
        raise ValidationFailed("A JSON Patch is an array of operation objects (RFC 6902).")
    if len(document) > max_operations:
        raise ValidationFailed(
            f"A patch may have at most {max_operations:,} operations "
            "(SNIPIX_TIMELINE_MAX_PATCH_OPS); save the whole state with PUT instead.",
            details=[{"loc": ["body"], "msg": "too many operations", "type": "too_long"}],
        )
    check_json(document)
    check_operations(document, STATE_FIELDS)
    return document


@router.get("", response_model=Timeline)
async def get_timeline(
    project_id: ProjectId,
    actor: ActorDep,
    service: ServiceDep,
    if_none_match: IfNoneMatchHeader = None,
) -> Response:
    """The current timeline state; `ETag` carries its version (0 before the first save;
    `If-None-Match` with it: 304, no body)."""
    found = await service.get_serialized(actor, project_id)
    return json_response(found.payload, version=found.version, if_none_match=if_none_match)


@router.put("", response_model=Timeline, responses=_WRITE)
async def save_timeline(
    project_id: ProjectId,
    body: SaveTimeline,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> Timeline:
    """Save the whole state (needs `If-Match`, `"0"` for the first save)."""
    expected = expected_version(if_match, body.base_version)
    timeline = await service.save(
        actor, project_id, body.state, expected=expected, label=body.label
    )
    return _respond(response, timeline)


# the patch body as RFC 6902 defines it, so clients (and the fuzzer) see its rules.
_JSON_POINTER: dict[str, Any] = {"type": "string", "pattern": "^(/[^/]*)*$"}
_PATCH_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "At most SNIPIX_TIMELINE_MAX_PATCH_OPS (10,000) operations.",
    "items": {
        "type": "object",
        "required": ["op", "path"],
        "properties": {
            "op": {"enum": ["add", "remove", "replace", "move", "copy", "test"]},
            "path": _JSON_POINTER,
            "from": _JSON_POINTER,
            "value": {},
        },
    },
}


@router.patch(
    "",
    response_model=Timeline,
    responses={
        **_WRITE,
        204: {
            "description": "Applied; `Prefer: return=minimal` (the new `ETag` only, and "
            "`X-Merged-Over` when a stale patch was merged)."
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json-patch+json": {
                    "schema": _PATCH_SCHEMA,
                    "example": [{"op": "replace", "path": "/clips/0/start", "value": 12.5}],
                }
            },
        }
    },
)
async def patch_timeline(
    project_id: ProjectId,
    request: Request,
    actor: ActorDep,
    service: ServiceDep,
    settings: SettingsDep,
    response: Response,
    if_match: IfMatchHeader = None,
    idempotency_key: IdempotencyKey = None,
    label: ChangeLabel = None,
    prefer: PreferHeader = None,
) -> Timeline | Response:
    """Autosave: an RFC 6902 JSON Patch against the `If-Match` version.

    A stale `If-Match` (at most SNIPIX_TIMELINE_MERGE_WINDOW versions behind) is merged
    over the revisions saved since when the patch touches nothing they touched:
    `X-Merged-Over: first-last` says so. A real conflict is 412, `details.conflicts`
    naming the paths and the revisions.

    With `Prefer: return=minimal` the answer is 204 with the new `ETag` only, so an
    autosave costs a few KB both ways even on a large timeline.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in PATCH_MEDIA_TYPES:
        raise ValidationFailed("Send the patch as application/json-patch+json (RFC 6902).")
    body = await _body(request, service.max_bytes)
    operations = _operations(body, settings.timeline_max_patch_ops)
    timeline = await service.patch(
        actor,
        project_id,
        operations,
        expected=parse_if_match(if_match),
        label=label,
        idempotency_key=idempotency_key,
    )
    merged = _merged_over(timeline)
    if _wants_minimal(prefer):
        return Response(
            status_code=204,
            headers={
                "ETag": f'"{timeline.version}"',
                "Preference-Applied": "return=minimal",
                **merged,
            },
        )
    response.headers.update(merged)
    return _respond(response, timeline)


def _merged_over(timeline: Timeline) -> dict[str, str]:
    """`X-Merged-Over: first-last` when a stale patch was merged over those versions."""
    if timeline.merged_over is None:
        return {}
    first, last = timeline.merged_over
    return {"X-Merged-Over": f"{first}-{last}"}


@router.get("/history", response_model=Page[Revision])
async def timeline_history(
    project_id: ProjectId,
    actor: ActorDep,
    service: ServiceDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[Revision]:
    """Revisions, newest first; `undoable`/`redoable` mark what undo/redo would act on."""
    decoded = decode_cursor(cursor, HistoryCursor) if cursor is not None else None
    return await service.history(actor, project_id, limit=limit, cursor=decoded)


# A version is rebuilt from a snapshot and patches; a gap in the history is a 409.
_REBUILT = errors(say={409: "The history cannot rebuild that version."})


@router.get("/versions/{version}", response_model=TimelineVersion, responses=_REBUILT)
async def timeline_version(
    project_id: ProjectId,
    version: Annotated[int, Path(ge=0, le=MAX_VERSION)],
    actor: ActorDep,
    service: ServiceDep,
) -> TimelineVersion:
    """The state as it was at one version (rebuilt from a snapshot and patches)."""
    return await service.version(actor, project_id, version)


@router.post("/undo", response_model=Timeline, responses=_WRITE)
async def undo_timeline(
    project_id: ProjectId,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> Timeline:
    """Undo the newest undoable change, as a new version."""
    timeline = await service.undo(actor, project_id, expected=parse_if_match(if_match))
    return _respond(response, timeline)


@router.post("/redo", response_model=Timeline, responses=_WRITE)
async def redo_timeline(
    project_id: ProjectId,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> Timeline:
    """Redo the newest undone change, as a new version."""
    timeline = await service.redo(actor, project_id, expected=parse_if_match(if_match))
    return _respond(response, timeline)


@router.post("/rollback", response_model=Timeline, responses=_WRITE)
async def rollback_timeline(
    project_id: ProjectId,
    body: RollbackTimeline,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> Timeline:
    """A new version equal to an earlier one; history is kept."""
    timeline = await service.rollback(
        actor, project_id, body.version, expected=parse_if_match(if_match), label=body.label
    )
    return _respond(response, timeline)


FormatName = Annotated[
    str | None,
    Query(
        pattern="^(otio|edl|fcp-xml|fcpxml|kdenlive)$",
        description="`otio`, `edl` (CMX 3600), `fcp-xml` (Final Cut Pro 7 / Premiere / "
        "Resolve XML), `fcpxml` (Final Cut Pro X), `kdenlive`.",
    ),
]
# What a format could not carry, as a JSON array of strings, ASCII (a header is
# Latin-1), bounded so proxies pass it; the count says whether it was cut short.
UNMAPPED_HEADER = "X-Unmapped"
UNMAPPED_COUNT_HEADER = "X-Unmapped-Count"
MAX_UNMAPPED_HEADER = 4_000


def _unmapped_headers(unmapped: list[str]) -> dict[str, str]:
    shown: list[str] = []
    for item in unmapped:
        candidate = json.dumps([*shown, item], ensure_ascii=True)
        if len(candidate) > MAX_UNMAPPED_HEADER:
            break
        shown.append(item)
    return {
        UNMAPPED_HEADER: json.dumps(shown, ensure_ascii=True),
        UNMAPPED_COUNT_HEADER: str(len(unmapped)),
    }


@router.get(
    "/export",
    response_class=Response,
    responses={
        200: {
            "content": {"application/json": {}, "application/xml": {}, "text/plain": {}},
            "description": "The timeline as a file of the format asked for. `X-Unmapped`: a "
            "JSON array of what the format could not carry; `X-Unmapped-Count`: how many.",
        },
        **_REBUILT,
    },
)
async def export_timeline(
    project_id: ProjectId,
    actor: ActorDep,
    service: ServiceDep,
    format: FormatName = "otio",
    version: Annotated[
        int | None, Query(ge=0, le=MAX_VERSION, description="Default: current.")
    ] = None,
) -> Response:
    """The current (or a given) version as an OpenTimelineIO, EDL, XML or Kdenlive file."""
    fmt = FORMATS[format or "otio"]
    exported, at = await service.export_file(actor, project_id, fmt, version=version)
    return Response(
        exported.document,
        media_type=fmt.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{project_id}-v{at}.{fmt.suffix}"',
            "ETag": f'"{at}"',
            **_unmapped_headers(exported.unmapped),
        },
    )


@router.post("/import", response_model=ImportReport, responses=_WRITE)
async def import_timeline(
    project_id: ProjectId,
    request: Request,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
    format: FormatName = None,
    fps: Annotated[
        float | None,
        Query(gt=0, le=1_000, description="The rate an EDL's timecodes count in."),
    ] = None,
    if_match: IfMatchHeader = None,
) -> ImportReport:
    """Replace the state with an imported file's, as a new version; lists what was not
    mapped. The format: `?format=`, else the `Content-Type` (XML told apart by its root)."""
    body = await _body(request, service.max_bytes)
    fmt = format_for(format, request.headers.get("content-type"), body)
    expected = parse_if_match(if_match)
    report = await service.import_file(
        actor,
        project_id,
        body,
        fmt,
        expected="*" if expected is None else expected,
        fps=fps,
    )
    set_etag(response, report.timeline.version)
    return report
