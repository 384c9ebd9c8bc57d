"""The OpenAPI document's additions FastAPI cannot derive from the routes: each job type's params schema (the
submit bodies become one variant per registered type, so a client or a schema-driven fuzzer can build a valid job
from the document alone) and the links from a submitted job to the operations that follow it."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from runtime.job_types.registry import get_job_type, job_type_names

_COMPONENT_REF = "#/components/schemas/{model}"
_SUBMIT = ("/api/v1/jobs", "post")
_BATCH = ("/api/v1/jobs/batch", "post")
# What a client does next with a job it submitted: (link name, path, method).
_FOLLOW_UPS = (
    ("GetJob", "/api/v1/jobs/{jobId}", "get"),
    ("RetryJob", "/api/v1/jobs/{jobId}/retry", "post"),
    ("CancelJob", "/api/v1/jobs/{jobId}/cancel", "post"),
)


def install(app: FastAPI) -> None:
    """Makes `app.openapi()` serve the document with the additions (built once, then cached as FastAPI does)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            add_job_type_params(document)
            add_job_links(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_job_type_params(document: dict[str, Any]) -> None:
    """Publishes each job type's params model under components and turns the submit and batch item bodies into
    `oneOf` one variant per type (its `type` a constant, its `params` that type's schema), discriminated by `type`.
    The server still validates `params` itself: this documents what it accepts."""
    components: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    params_refs: dict[str, str] = {}
    for name in job_type_names():
        job_type = get_job_type(name)
        assert job_type is not None
        schema = job_type.params_model.model_json_schema(ref_template=_COMPONENT_REF)
        for def_name, definition in schema.pop("$defs", {}).items():
            if components.setdefault(def_name, definition) != definition:
                raise ValueError(f"two job types define different schemas named {def_name!r}")
        component = f"{job_type.params_model.__name__}"
        if components.setdefault(component, schema) != schema:
            raise ValueError(f"the params schema name {component!r} is taken")
        params_refs[name] = _COMPONENT_REF.format(model=component)

    submit = _body_schema(document, *_SUBMIT)
    submit.update(_variants(submit, params_refs))
    batch_items = _body_schema(document, *_BATCH)["properties"]["jobs"]["items"]
    batch_items.update(_variants(batch_items, params_refs))


def _variants(body: dict[str, Any], params_refs: dict[str, str]) -> dict[str, Any]:
    """One variant of `body` per job type; `body`'s own keys are replaced by the `oneOf`."""
    variants = []
    for name, ref in params_refs.items():
        variant = copy.deepcopy(body)
        variant.pop("description", None)
        variant["title"] = f"{body.get('title', 'Job')} ({name})"
        variant["properties"]["type"] = {"type": "string", "const": name, "description": "The job type."}
        variant["properties"]["params"] = {"$ref": ref}
        variants.append(variant)
    description = body.get("description", "")
    body.clear()
    return {
        "description": description,
        "oneOf": variants,
        "discriminator": {"propertyName": "type"},
    }


def add_job_links(document: dict[str, Any]) -> None:
    """OpenAPI links from a submitted job (201 and replayed 200) to GET, retry and cancel by its `jobId`."""
    operation_ids = {path: document["paths"][path][method]["operationId"] for _, path, method in _FOLLOW_UPS}
    links = {
        link: {"operationId": operation_ids[path], "parameters": {"jobId": "$response.body#/jobId"}}
        for link, path, _ in _FOLLOW_UPS
    }
    responses = document["paths"][_SUBMIT[0]][_SUBMIT[1]]["responses"]
    for status in ("200", "201"):
        responses[status]["links"] = copy.deepcopy(links)


def _body_schema(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return schema
