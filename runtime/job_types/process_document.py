"""Job type `process_document`: reads an S3 object and writes a JSON summary of it next to where it was asked."""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from runtime.domain.ports import ObjectNotFound
from runtime.domain.s3uri import split_s3_uri
from runtime.job_types.registry import JobContext, PermanentJobError, job_type
from runtime.job_types.s3uri import S3Uri

# The whole object is read into memory: refuse what a worker thread should not hold.
MAX_SOURCE_BYTES = 50 * 1024 * 1024
# The source is read in chunks of this size, reporting progress by bytes after each one.
READ_CHUNK_BYTES = 1024 * 1024
# The share of the job's progress the read stands for; the summary and its write are the rest.
READ_SHARE = 0.9
TOP_WORDS = 10
_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")


class ProcessDocumentParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: S3Uri
    destination: S3Uri

    @model_validator(mode="after")
    def _distinct(self) -> ProcessDocumentParams:
        if self.source == self.destination:
            raise ValueError(f"destination must differ from source, both are {self.source!r}")
        return self


def summarize(data: bytes, *, key: str) -> dict[str, Any]:
    """Deterministic facts about a document: the same bytes always give the same summary."""
    summary: dict[str, Any] = {
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    guessed, _ = mimetypes.guess_type(key, strict=False)
    if text is None:
        summary.update(
            encoding=None,
            content_type=guessed or "application/octet-stream",
            lines=data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0),
            words=None,
            characters=None,
            top_words=[],
        )
        return summary
    words = _WORD.findall(text.lower())
    counts = Counter(words)
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_WORDS]
    summary.update(
        encoding="utf-8",
        content_type=guessed or "text/plain",
        lines=len(text.splitlines()),
        words=len(words),
        characters=len(text),
        distinct_words=len(counts),
        top_words=[{"word": word, "count": count} for word, count in top],
    )
    return summary


@job_type("process_document", params=ProcessDocumentParams)
def process_document(params: ProcessDocumentParams, ctx: JobContext) -> dict[str, Any]:
    """Reads `source` and writes a JSON summary of it (size, sha256, lines, words, top words) to `destination`."""
    data = _read(params.source, ctx)
    # Its units of work are the read's chunks, the summary and the write: a requested cancel stops it between them.
    ctx.raise_if_cancelled()
    _, key = split_s3_uri(params.source)
    summary = summarize(data, key=key)
    ctx.raise_if_cancelled()
    document = {"source": params.source, "job_id": ctx.job_id, "summary": summary}
    body = json.dumps(document, sort_keys=True, ensure_ascii=False, indent=2).encode("utf-8")
    ctx.objects.put_bytes(params.destination, body, content_type="application/json")
    ctx.report_progress(1.0, "summary written")
    # The job's result keeps the figures only: the top words are in the S3 summary and the destination is
    # in params, so the completed item stays under 1 KB (its write costs one unit, not two).
    return {"summary": {name: value for name, value in summary.items() if name != "top_words"}}


def _read(source: str, ctx: JobContext) -> bytes:
    """The source's bytes, read chunk by chunk with progress by bytes (up to READ_SHARE)."""
    try:
        reading = ctx.objects.read_chunks(source, chunk_bytes=READ_CHUNK_BYTES)
    except ObjectNotFound as exc:
        raise PermanentJobError("source_not_found", f"source object not found: {source}") from exc
    if reading.size > MAX_SOURCE_BYTES:
        raise PermanentJobError("source_too_large", f"source is {reading.size} bytes, the limit is {MAX_SOURCE_BYTES}")
    data = bytearray()
    for chunk in reading.chunks:
        data += chunk
        if len(data) > MAX_SOURCE_BYTES:  # grew while being read
            raise PermanentJobError(
                "source_too_large", f"source is over {MAX_SOURCE_BYTES} bytes, the limit is {MAX_SOURCE_BYTES}"
            )
        fraction = READ_SHARE * min(1.0, len(data) / max(1, reading.size))
        ctx.report_progress(fraction, f"read {len(data)} of {reading.size} bytes")
        ctx.raise_if_cancelled()
    return bytes(data)
