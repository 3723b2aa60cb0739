"""What a test counts as a timeline's recorded history: every committed revision, whether
copied into `timeline_revisions` yet or still carried by its head (`recent`)."""

from __future__ import annotations

from typing import Any

from pymongo.database import Database


def recorded(database: Database[dict[str, Any]], project_id: str | None = None) -> list[Any]:
    """The committed revisions (of one project, or of all), one per project and version,
    in version order: a copy in the collection and in the head count once."""
    scope = {} if project_id is None else {"projectId": project_id}
    found: dict[tuple[str, int], Any] = {}
    for revision in database["timeline_revisions"].find(scope):
        found[(revision["projectId"], revision["version"])] = revision
    heads = database["timelines"].find({} if project_id is None else {"_id": project_id})
    for head in heads:
        for revision in head.get("recent") or []:
            if revision["version"] <= head["version"]:
                found.setdefault((revision["projectId"], revision["version"]), revision)
    return [found[key] for key in sorted(found)]
