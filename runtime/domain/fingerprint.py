"""The canonical fingerprint of a submit request: "same body" for idempotency means the same fingerprint."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """Key order, whitespace and escaping fixed, so equal documents give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def fingerprint(
    *,
    job_type: str,
    priority: str,
    params: dict[str, Any],
    metadata: dict[str, Any],
    schedule: dict[str, Any] | None = None,
) -> str:
    """sha256 hex of the canonical JSON of type, priority, params and metadata (defaults already applied), and of
    a scheduled job's `runAt` or `delaySeconds` as given. Without a schedule the document is what it always was,
    so fingerprints stored before scheduling existed still match."""
    document = {"type": job_type, "priority": str(priority), "params": params, "metadata": metadata}
    if schedule:
        document.update(schedule)
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()
