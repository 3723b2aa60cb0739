"""Path parameters every router shares, declared once so each route documents and checks
them alike."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from snipix.projects.schemas import PROJECT_ID_PATTERN

ProjectId = Annotated[str, Path(pattern=PROJECT_ID_PATTERN, description="The project's id.")]
