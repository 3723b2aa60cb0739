"""Error answers documented by reference: the same OpenAPI document, built far faster.

Nearly every route documents five to ten error answers in one of two shapes (the API's
error shape, the web app's failure envelope). Declared as `{"model": ErrorResponse}`,
FastAPI builds a pydantic field (a `TypeAdapter`) for each route and status code when an
app first routes a request: hundreds of them, a noticeable share of every app's start,
for a schema that is the same every time. `documented` declares the answer as a
reference to the model's component schema instead, and
`openapi_with_documented_models` adds those models' schemas to the document's
components when `/openapi.json` is built. The document is unchanged:
`tests/api/test_openapi.py` compares it with what FastAPI renders for the `model` form.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

COMPONENT_REF = "#/components/schemas/{model}"


def documented(model: type[BaseModel], description: str | None = None) -> dict[str, Any]:
    """A `responses=` entry whose JSON body is `model` (a reference to its component).

    Without a description FastAPI shows the status code's phrase, as for `{"model": ...}`.
    """
    answer: dict[str, Any] = {
        "content": {
            "application/json": {"schema": {"$ref": COMPONENT_REF.format(model=model.__name__)}}
        }
    }
    if description is not None:
        answer["description"] = description
    return answer


def component_schemas(models: Sequence[type[BaseModel]]) -> dict[str, Any]:
    """The component schemas of `models` and of every model they contain, rendered by
    FastAPI itself: a document of one route per model, each answering with it."""
    routes = APIRouter()
    for index, model in enumerate(models):
        routes.add_api_route(f"/{index}", _no_answer, response_model=model)
    document = get_openapi(title="components", version="0", routes=routes.routes)
    schemas: dict[str, Any] = document["components"]["schemas"]
    return schemas


async def _no_answer() -> None:
    """The endpoint of `component_schemas`' routes (never called)."""


def openapi_with_documented_models(
    app: FastAPI, models: Sequence[type[BaseModel]]
) -> Callable[[], dict[str, Any]]:
    """`app.openapi`: FastAPI's own document (built once and kept) plus the component
    schemas of `models`, the answers `documented` refers to."""
    stock = app.openapi
    names = {model.__name__ for model in models}

    def build() -> dict[str, Any]:
        document = stock()
        schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
        if not names <= schemas.keys():
            schemas.update(component_schemas(models))
            # FastAPI lists components by name.
            document["components"]["schemas"] = dict(sorted(schemas.items()))
        return document

    return build
