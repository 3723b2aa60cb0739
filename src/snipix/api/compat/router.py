"""Every route of the original web app's API this backend serves (`/auth` and `/media`
are served by their own packages)."""

from __future__ import annotations

from fastapi import APIRouter

from snipix.api.compat.projects import router as projects_router
from snipix.api.compat.timeline import router as timeline_router
from snipix.api.compat.transcriptions import router as transcriptions_router

router = APIRouter()
router.include_router(projects_router)
router.include_router(timeline_router)
router.include_router(transcriptions_router)
