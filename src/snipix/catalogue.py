"""What the database holds for this service, in one place: the schema migrations.

Each migration belongs to its domain (the projects validator to `projects`); the runner
(`snipix.db.migrations`) knows only how to apply a list. Every entry point that migrates
or checks the schema (the app's lifespan, the CLI, backup and restore, the legacy import)
takes the list from here, so they can never disagree about what "up to date" means.
"""

from __future__ import annotations

from snipix.db.migrations import Migration
from snipix.projects.validator import install_project_validator
from snipix.timelines.migrations import rename_compat_blocks

# Oldest first. Ids sort in application order ("0001_...").
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_projects_validator",
        "server-side $jsonSchema validator on projects",
        install_project_validator,
    ),
    Migration(
        "0002_timeline_compat_blocks",
        "tracks' and clips' `legacy` block of the original web app's fields renamed `compat`",
        rename_compat_blocks,
    ),
)
