"""Error answers documented by reference (`snipix.api.openapi`) give the document FastAPI
gives for the same answers declared with `{"model": ...}`, and every reference in the
service's document resolves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from snipix.api.envelope import FailureEnvelope
from snipix.api.errors import ErrorResponse, error_answer
from snipix.api.openapi import documented, openapi_with_documented_models
from snipix.app import create_app
from snipix.settings import Settings


def references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item
            else:
                yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def test_every_reference_in_the_service_document_resolves() -> None:
    document = create_app(Settings(_env_file=None)).openapi()
    schemas = document["components"]["schemas"]
    found = set(references(document))
    assert "#/components/schemas/ErrorResponse" in found
    assert "#/components/schemas/FailureEnvelope" in found
    missing = {ref for ref in found if ref.removeprefix("#/components/schemas/") not in schemas}
    assert not missing, f"references to schemas the document does not define: {missing}"


def with_answers(responses: dict[int | str, dict[str, Any]], *, by_reference: bool) -> FastAPI:
    app = FastAPI(title="answers", version="1", responses={500: responses.pop(500)})
    if by_reference:
        app.openapi = openapi_with_documented_models(  # type: ignore[method-assign]
            app, [ErrorResponse, FailureEnvelope]
        )

    @app.get("/thing", responses=responses)
    async def thing() -> dict[str, str]:
        return {}

    @app.get("/bare")
    async def bare() -> dict[str, str]:
        return {}

    return app


def test_answers_by_reference_document_exactly_what_models_would() -> None:
    """Same operations (descriptions, status phrases when none is given, content) and same
    component schemas, nested models included."""
    by_model = with_answers(
        {
            404: {"model": ErrorResponse, "description": "No such thing."},
            409: {"model": ErrorResponse},
            422: {"model": FailureEnvelope, "description": "Invalid."},
            500: {"model": ErrorResponse, "description": "Unexpected error."},
        },
        by_reference=False,
    ).openapi()
    by_reference = with_answers(
        {
            404: error_answer("No such thing."),
            409: error_answer(),
            422: documented(FailureEnvelope, "Invalid."),
            500: error_answer("Unexpected error."),
        },
        by_reference=True,
    ).openapi()

    assert by_reference == by_model
    assert list(by_reference["components"]["schemas"]) == list(by_model["components"]["schemas"])
