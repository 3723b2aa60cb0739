"""The original web app's API (`/projects`, `/timeline`, `/transcriptions`), as a thin adapter.

Each route translates the web app's shapes (snake_case, `_id`, the success envelope) to and
from the models `/api/v1` uses, and calls the same services: no rule lives here, so both
surfaces see one set of projects, one timeline history and one transcript. What maps to
what: `docs/api.md`, "Compatibility routes"; why: `docs/decisions.md`.
"""
