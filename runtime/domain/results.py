"""How a job's result is kept: inline in the job record up to MAX_INLINE_RESULT_BYTES of canonical JSON, else as
an object in the documents bucket under the tenant's prefix (`tenants/<tenant>/results/<jobId>.json`), the record
holding a reference to it (ResultRef: uri, size, sha256). A DynamoDB item holds at most 400 KB, params and the rest
of the record included: the inline bound keeps a finished record far below that.

No job may produce more than MAX_RESULT_BYTES: the encoding stops as soon as it passes the bound, so a runaway
result costs the worker at most that much memory, and the job fails for good (`result_too_large`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from runtime.domain.job import ResultRef
from runtime.job_types.confinement import tenant_prefix

# Results up to this many bytes of canonical JSON stay in the job record; larger ones go to S3.
MAX_INLINE_RESULT_BYTES = 64 * 1024
# No result may be larger than this (canonical JSON), inline or not.
MAX_RESULT_BYTES = 4 * 1024 * 1024
RESULTS_FOLDER = "results"
RESULT_CONTENT_TYPE = "application/json"

# The error codes of a result that could not be kept (the job fails; see runtime/domain/processing.py).
RESULT_TOO_LARGE_CODE = "result_too_large"
RESULT_NOT_JSON_CODE = "bad_handler_result"
RESULT_NOT_STORED_CODE = "result_not_stored"
RESULT_STORE_UNAVAILABLE_CODE = "result_store_unavailable"

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class ResultTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the result is over {limit} bytes of json")
        self.limit = limit


class ResultNotJson(Exception):
    """The handler returned something JSON cannot carry (NaN, infinity, an object of another type)."""


@dataclass(frozen=True)
class EncodedResult:
    data: bytes  # canonical JSON, UTF-8 (the bytes stored apart, and what `size` and `sha256` describe)

    @property
    def inline(self) -> bool:
        return len(self.data) <= MAX_INLINE_RESULT_BYTES

    def reference(self, uri: str) -> ResultRef:
        return ResultRef(uri=uri, size=len(self.data), sha256=hashlib.sha256(self.data).hexdigest())


def encode_result(result: dict[str, Any], limit: int = MAX_RESULT_BYTES) -> EncodedResult:
    """The result's canonical JSON (the same text as the request fingerprint's), built piece by piece so that
    encoding stops once it passes `limit`: ResultTooLarge then, ResultNotJson for what JSON cannot carry."""
    pieces: list[str] = []
    characters = 0
    try:
        for piece in _ENCODER.iterencode(result):
            characters += len(piece)
            # A character is at least one byte: past the limit in characters is past it in bytes.
            if characters > limit:
                raise ResultTooLarge(limit)
            pieces.append(piece)
    except (TypeError, ValueError) as exc:
        raise ResultNotJson(str(exc)) from None
    data = "".join(pieces).encode("utf-8")
    if len(data) > limit:
        raise ResultTooLarge(limit)
    return EncodedResult(data)


def result_uri(bucket: str, tenant: str, job_id: str) -> str:
    """Where the result of `job_id` is stored apart: under the tenant's own prefix of the documents bucket."""
    return f"s3://{bucket}/{tenant_prefix(tenant)}{RESULTS_FOLDER}/{job_id}.json"
