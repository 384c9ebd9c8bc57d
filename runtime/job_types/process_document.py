"""Job type `process_document`: reads an S3 object and writes a JSON summary of it next to where it was asked."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from runtime.domain.ports import ObjectNotFound
from runtime.domain.s3uri import split_s3_uri
from runtime.job_types.document_summary import DocumentSummary
from runtime.job_types.registry import JobContext, PermanentJobError, job_type
from runtime.job_types.s3uri import S3Uri

# Read as a stream (one chunk and a bounded word table held at a time); the bound keeps a job's run time sane.
MAX_SOURCE_BYTES = 50 * 1024 * 1024
# The source is read in chunks of this size, reporting progress by bytes after each one.
READ_CHUNK_BYTES = 1024 * 1024
# The share of the job's progress the read stands for; the summary and its write are the rest.
READ_SHARE = 0.9


class ProcessDocumentParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: S3Uri
    destination: S3Uri

    @model_validator(mode="after")
    def _distinct(self) -> ProcessDocumentParams:
        if self.source == self.destination:
            raise ValueError(f"destination must differ from source, both are {self.source!r}")
        return self


@job_type("process_document", params=ProcessDocumentParams)
def process_document(params: ProcessDocumentParams, ctx: JobContext) -> dict[str, Any]:
    """Reads `source` and writes a JSON summary of it (size, sha256, lines, words, top words) to `destination`."""
    summary = _summarize(params.source, ctx)
    ctx.raise_if_cancelled()
    document = {"source": params.source, "job_id": ctx.job_id, "summary": summary}
    body = json.dumps(document, sort_keys=True, ensure_ascii=False, indent=2).encode("utf-8")
    ctx.objects.put_bytes(params.destination, body, content_type="application/json")
    ctx.report_progress(1.0, "summary written")
    # The job's result keeps the figures only: the top words are in the S3 summary and the destination is
    # in params, so the completed item stays under 1 KB (its write costs one unit, not two).
    return {"summary": {name: value for name, value in summary.items() if name != "top_words"}}


def _summarize(source: str, ctx: JobContext) -> dict[str, Any]:
    """The source's summary, read chunk by chunk with progress by bytes (up to READ_SHARE); a requested cancel stops
    it between chunks."""
    try:
        reading = ctx.objects.read_chunks(source, chunk_bytes=READ_CHUNK_BYTES)
    except ObjectNotFound as exc:
        raise PermanentJobError("source_not_found", f"source object not found: {source}") from exc
    if reading.size > MAX_SOURCE_BYTES:
        raise PermanentJobError("source_too_large", f"source is {reading.size} bytes, the limit is {MAX_SOURCE_BYTES}")
    summary = DocumentSummary()
    read = 0
    for chunk in reading.chunks:
        read += len(chunk)
        if read > MAX_SOURCE_BYTES:  # grew while being read
            raise PermanentJobError(
                "source_too_large", f"source is over {MAX_SOURCE_BYTES} bytes, the limit is {MAX_SOURCE_BYTES}"
            )
        summary.feed(chunk)
        fraction = READ_SHARE * min(1.0, read / max(1, reading.size))
        ctx.report_progress(fraction, f"read {read} of {reading.size} bytes")
        ctx.raise_if_cancelled()
    _, key = split_s3_uri(source)
    return summary.result(key)
