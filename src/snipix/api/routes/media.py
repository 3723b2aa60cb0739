"""HTTP for media files (`/media`, the original web app's paths): HTTP only, rules live in
`MediaService`. JSON answers use the web app's envelope; the file GETs answer bytes."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from snipix.api.answers import errors
from snipix.api.envelope import success
from snipix.api.errors import request_id_of
from snipix.api.identity import ActorDep, current_user, sends_identity, signed_actor
from snipix.api.parameters import ProjectId
from snipix.api.query_guard import reject_unsafe_query
from snipix.auth.actor import Actor
from snipix.errors import ValidationFailed
from snipix.media.links import MEDIA_COOKIE
from snipix.media.schemas import Envelope, MediaLinks, TrimRequest, TrimResult, UploadResult
from snipix.media.service import MediaService, StoredMedia
from snipix.projects.schemas import PROJECT_ID_PATTERN
from snipix.resources import get_resources
from snipix.transcription.schemas import (
    RemoveFillersAnswer,
    RemoveFillersRequest,
    TranscribeAnswer,
)
from snipix.transcription.service import TranscriptionService


async def get_media_service(request: Request) -> MediaService:
    return get_resources(request).services.media


ServiceDep = Annotated[MediaService, Depends(get_media_service)]


async def media_viewer(
    request: Request,
    project_id: ProjectId,
    token: Annotated[
        str | None,
        Query(
            max_length=1_024,
            description="A signed link's token (GET /media/{project_id}/links), for tags "
            "that cannot send an Authorization header.",
        ),
    ] = None,
) -> Actor:
    """Who reads a media file: the usual identity, the user a signed link was made for, or
    the web app's media cookie."""
    cookie = request.cookies.get(MEDIA_COOKIE)
    if sends_identity(request) or (token is None and cookie is None):
        user = await current_user(request)
        return Actor(user_id=user.user_id, request_id=request_id_of(request))
    signer = await (await get_media_service(request)).signer()
    if token is not None:
        user_id, generation = signer.verify(token, project_id)
    else:
        assert cookie is not None
        # The web app's `<img>` and `<video>` (api/media_cookie.py).
        user_id, generation = signer.verify_cookie(cookie)
    return await signed_actor(request, user_id, generation)


ViewerDep = Annotated[Actor, Depends(media_viewer)]

_FILE_ERRORS = errors(
    say={
        401: "No identity, or an invalid or expired link token.",
        404: "No such project for this user, or it has no such file.",
    },
    compat=True,
)
_VIDEO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"video/mp4": {}}, "description": "The whole file."},
    206: {"description": "The requested byte range (`Content-Range`)."},
    **_FILE_ERRORS,
    # Starlette's own answer, plain text (players read the status and the header).
    416: {"description": "The range is outside the file (`Content-Range: bytes */size`)."},
}
_PROJECT_ID_FIELD: Final = {"type": "string", "pattern": PROJECT_ID_PATTERN}


def _form_body(
    properties: dict[str, Any], *, media_types: tuple[str, ...] = ("multipart/form-data",)
) -> dict[str, Any]:
    """`openapi_extra` documenting a form body whose fields are all required (the routes
    read the form themselves, so FastAPI cannot describe it)."""
    schema = {"type": "object", "required": list(properties), "properties": properties}
    return {
        "requestBody": {
            "required": True,
            "content": {media_type: {"schema": schema} for media_type in media_types},
        }
    }


_UPLOAD_BODY: Final = _form_body(
    {"file": {"type": "string", "format": "binary"}, "project_id": _PROJECT_ID_FIELD}
)

_PROJECT_ID = re.compile(PROJECT_ID_PATTERN)

router = APIRouter(
    prefix="/media",
    tags=["media"],
    dependencies=[Depends(reject_unsafe_query)],
    responses=errors(401, compat=True),
)


@router.post(
    "/upload",
    response_model=Envelope[UploadResult],
    openapi_extra=_UPLOAD_BODY,
    responses=errors(
        401,
        404,
        say={
            413: "Larger than SNIPIX_MEDIA_MAX_BYTES; nothing is kept.",
            415: "Not multipart, or the file is not a video; nothing is kept.",
        },
        compat=True,
    ),
)
async def upload_video(request: Request, actor: ActorDep, service: ServiceDep) -> dict[str, Any]:
    """Upload a project's video (multipart `file` + `project_id`), streamed to storage."""
    result = await service.upload(actor, request)
    return success(result.model_dump(mode="json"), "Video uploaded successfully")


@router.post(
    "/trim-video",
    response_model=Envelope[TrimResult],
    responses=errors(
        401,
        compat=True,
        say={
            404: "No such project, or it has no uploaded video.",
            409: "The video was replaced while it was being trimmed.",
            501: "ffmpeg is not installed on this server.",
            503: "The database is unavailable, or the trim took longer than "
            "SNIPIX_MEDIA_JOB_TIMEOUT_S.",
        },
    ),
)
async def trim_video(body: TrimRequest, actor: ActorDep, service: ServiceDep) -> dict[str, Any]:
    """Keep the given segments of the uploaded video, cut to the frame (re-encoded to MP4);
    the same trim again answers the render already made."""
    result = await service.trim(actor, body)
    return success(result.model_dump(mode="json"), "Video trimmed successfully")


def _send(stored: StoredMedia) -> FileResponse:
    # `FileResponse` answers Range requests (206 + Content-Range, 416 past the end) and
    # announces `Accept-Ranges: bytes`, so a <video> element can seek.
    return FileResponse(
        stored.path,
        media_type=stored.media_type,
        filename=stored.filename,
        content_disposition_type="inline",
        stat_result=stored.stat,
        headers={"Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/{project_id}/video", response_class=FileResponse, responses=_VIDEO_RESPONSES)
async def get_video(project_id: ProjectId, viewer: ViewerDep, service: ServiceDep) -> FileResponse:
    """The uploaded video, with HTTP Range support (the original, never the trimmed render)."""
    return _send(await service.video(viewer, project_id, trimmed=False))


@router.get("/{project_id}/video/trimmed", response_class=FileResponse, responses=_VIDEO_RESPONSES)
async def get_trimmed_video(
    project_id: ProjectId, viewer: ViewerDep, service: ServiceDep
) -> FileResponse:
    """The latest trimmed render (POST /media/trim-video), with HTTP Range support."""
    return _send(await service.video(viewer, project_id, trimmed=True))


@router.get(
    "/{project_id}/thumbnail",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}, "description": "JPEG"}, **_FILE_ERRORS},
)
async def get_thumbnail(
    project_id: ProjectId, viewer: ViewerDep, service: ServiceDep
) -> FileResponse:
    """The upload's thumbnail (a JPEG frame near the start)."""
    return _send(await service.thumbnail(viewer, project_id))


@router.get(
    "/{project_id}/links",
    response_model=Envelope[MediaLinks],
    responses=errors(401, 404, compat=True),
)
async def media_links(
    project_id: ProjectId, request: Request, actor: ActorDep, service: ServiceDep
) -> dict[str, Any]:
    """Signed, expiring URLs (relative to the API) of the project's video files."""
    principal = await current_user(request)  # decided already for `actor`: no second check
    links = await service.links(actor, project_id, generation=principal.generation)
    return success(links.model_dump(mode="json"))


async def get_transcription_service(request: Request) -> TranscriptionService:
    return get_resources(request).services.transcription


TranscriptionDep = Annotated[TranscriptionService, Depends(get_transcription_service)]
_TRANSCRIBE_BODY: Final = _form_body(
    {"project_id": _PROJECT_ID_FIELD},
    media_types=("multipart/form-data", "application/x-www-form-urlencoded"),
)


@router.post(
    "/transcribe",
    response_model=Envelope[TranscribeAnswer],
    openapi_extra=_TRANSCRIBE_BODY,
    responses=errors(
        401,
        404,
        compat=True,
        say={
            409: "No video yet, or the job failed or was cancelled (the error names it).",
            422: "No project_id, or the video has no audio track.",
            501: "ffmpeg is not installed on this server.",
            503: "Not done within SNIPIX_TRANSCRIBE_WAIT_S: the job goes on; the error "
            "names it and where to poll (also in `Location`).",
        },
    ),
)
async def transcribe(
    request: Request, actor: ActorDep, service: TranscriptionDep
) -> dict[str, Any]:
    """Transcribe the project's video (form field `project_id`) and answer its words: a
    transcription job, waited for up to SNIPIX_TRANSCRIBE_WAIT_S."""
    project_id = await _form_project_id(request)
    answer = await service.transcribe_now(actor, project_id)
    return success(answer.model_dump(mode="json"), "Transcription completed successfully")


async def _form_project_id(request: Request) -> str:
    try:
        form = await request.form(max_files=0, max_fields=10, max_part_size=4_096)
    except StarletteHTTPException:
        form = None  # not a readable form: the same answer as a missing field
    value = form.get("project_id") if form is not None else None
    if not isinstance(value, str) or not _PROJECT_ID.fullmatch(value):
        raise ValidationFailed(
            "Send the form field `project_id` with the project's id.",
            details=[{"loc": ["body", "project_id"], "msg": "missing or invalid", "type": "id"}],
        )
    return value


@router.post(
    "/remove-fillers",
    response_model=Envelope[RemoveFillersAnswer],
    responses=errors(
        401,
        compat=True,
        say={
            404: "No such project, or it has no transcript yet.",
            409: "No video, or the timeline or video changed meanwhile.",
            422: "Neither selectedWords nor auto_detect, or a word not in the transcript "
            "(nothing is cut).",
            501: "ffmpeg is not installed on this server.",
        },
    ),
)
async def remove_fillers(
    body: RemoveFillersRequest, actor: ActorDep, service: TranscriptionDep
) -> dict[str, Any]:
    """Cut the selected words (the web app's `<start>-<end>` ids) or, with `auto_detect`,
    every filler from the timeline as one undoable revision, and render the edited video."""
    answer = await service.remove_fillers(
        actor, body.project_id, selected=body.selected_words, auto_detect=body.auto_detect
    )
    return success(answer.model_dump(mode="json"), "Filler words removed")
