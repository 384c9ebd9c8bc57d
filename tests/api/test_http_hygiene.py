"""What the API shows callers when the input is hostile or the request is odd: lone surrogates and huge numbers
are 422s naming the field (never a 500, never Python's own words), bodies that are not JSON are 415, every
answer carries the security headers, and the health endpoints answer HEAD."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveApi

GOOD_PARAMS = {"source": "s3://docs/tenants/tenant-a/in.txt", "destination": "s3://docs/tenants/tenant-a/out.json"}
JSON = {"Content-Type": "application/json"}


def raw_body(**changes: Any) -> str:
    document: dict[str, Any] = {"type": "process_document", "params": dict(GOOD_PARAMS)}
    document.update(changes)
    return json.dumps(document)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        # json.dumps escapes a lone surrogate as \ud800: valid JSON text that decodes to a string UTF-8 cannot encode.
        (raw_body(metadata={"note": "a\ud800b"}), "metadata.note"),
        (raw_body(metadata={"k\udfff": 1}), "metadata"),
        (raw_body(params={**GOOD_PARAMS, "source": "s3://docs/tenants/tenant-a/\ud800.txt"}), "params.source"),
        (raw_body(metadata={"list": ["fine", "\udc00"]}), "metadata.list[1]"),
    ],
    ids=["metadata-value", "metadata-key", "params-value", "list-item"],
)
def test_a_lone_surrogate_is_a_422_naming_the_field(
    live_api: LiveApi, http: httpx.Client, payload: str, field: str
) -> None:
    items = live_api.item_count()
    response = http.post("/api/v1/jobs", content=payload, headers=JSON)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["error"] == "validation_error"
    assert problem["detail"].startswith(f"{field}: ") and "unicode" in problem["detail"]
    assert live_api.item_count() == items


def test_a_5000_digit_integer_is_a_safe_422_naming_the_field(http: httpx.Client) -> None:
    digits = "9" * 5000
    payload = raw_body(metadata={"big": 0}).replace('"big": 0', f'"big": {digits}')
    response = http.post("/api/v1/jobs", content=payload, headers=JSON)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["detail"] == "metadata.big: number has 5000 digits; at most 38 can be stored"
    assert "sys.set_int_max_str_digits" not in response.text and "4300" not in response.text


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        None,
    ],
)
def test_a_body_that_is_not_json_is_415_and_creates_nothing(
    live_api: LiveApi, http: httpx.Client, content_type: str | None
) -> None:
    items = live_api.item_count()
    headers = {"Content-Type": content_type} if content_type else {}
    request = http.build_request("POST", "/api/v1/jobs", content=raw_body(), headers=headers)
    if content_type is None:
        request.headers.pop("Content-Type", None)
    response = http.send(request)
    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_media_type"
    assert "application/json" in response.json()["detail"]
    assert response.headers["X-Trace-Id"]
    assert live_api.item_count() == items


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"]
)
def test_json_media_types_are_accepted(http: httpx.Client, content_type: str) -> None:
    response = http.post("/api/v1/jobs", content=raw_body(), headers={"Content-Type": content_type})
    assert response.status_code == 201, response.text


def test_security_headers_on_every_answer(http: httpx.Client) -> None:
    created = http.post("/api/v1/jobs", json=json.loads(raw_body()))
    answers = [
        created,
        http.get(f"/api/v1/jobs/{created.json()['jobId']}"),
        http.get("/api/v1/jobs/nope"),
        http.post("/api/v1/jobs", content="{", headers=JSON),
        http.get("/healthz"),
        http.get("/no/route"),
    ]
    for response in answers:
        assert response.headers["X-Content-Type-Options"] == "nosniff", response.request.url
    for response in answers[:4]:
        assert response.headers["Cache-Control"] == "no-store", response.request.url


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_head_on_health_endpoints(http: httpx.Client, path: str) -> None:
    response = http.head(path)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["X-Trace-Id"]
