"""HTTP for transcription jobs (`/api/v1/projects/{id}/transcript/jobs`): HTTP only, the
rules are in `TranscriptionService`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request, Response

from snipix.api.answers import errors
from snipix.api.identity import ActorDep
from snipix.api.parameters import ProjectId
from snipix.api.query_guard import reject_unsafe_query
from snipix.resources import get_resources
from snipix.transcription.schemas import Job, StartTranscription
from snipix.transcription.service import TranscriptionService, job_url


async def get_transcription_service(request: Request) -> TranscriptionService:
    return get_resources(request).services.transcription


ServiceDep = Annotated[TranscriptionService, Depends(get_transcription_service)]
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]

router = APIRouter(
    prefix="/api/v1/projects/{project_id}/transcript/jobs",
    tags=["transcript"],
    dependencies=[Depends(reject_unsafe_query)],
    responses=errors(401, say={404: "No such project or job."}),
)


@router.post(
    "",
    status_code=202,
    response_model=Job,
    responses=errors(
        say={
            409: "The project has no video yet, or a transcription of it is already queued "
            "or running (the answer names that job).",
            422: "The video has no audio track.",
            501: "ffmpeg is not installed on this server.",
        }
    ),
)
async def start_job(
    project_id: ProjectId,
    actor: ActorDep,
    service: ServiceDep,
    response: Response,
    body: Annotated[StartTranscription | None, Body()] = None,
) -> Job:
    """Transcribe the project's video: a job (202, `Location` to poll). When it is done the
    project has a new transcript version (words with times and confidence, fillers
    marked)."""
    job = await service.start(actor, project_id, language=body.language if body else None)
    response.headers["Location"] = job_url(project_id, job.id)
    return job


@router.get("/{job_id}", response_model=Job)
async def get_job(
    project_id: ProjectId, job_id: JobId, actor: ActorDep, service: ServiceDep
) -> Job:
    """A job's state and progress (0 to 1)."""
    return await service.get(actor, project_id, job_id)


@router.delete(
    "/{job_id}",
    response_model=Job,
    responses=errors(say={409: "The job has already ended."}),
)
async def cancel_job(
    project_id: ProjectId, job_id: JobId, actor: ActorDep, service: ServiceDep
) -> Job:
    """Cancel a queued or running job; nothing of it is written."""
    return await service.cancel(actor, project_id, job_id)
