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
    callback_url: str | None = None,
) -> str:
    """sha256 hex of the canonical JSON of type, priority, params and metadata (defaults already applied), of
    a scheduled job's `runAt` or `delaySeconds` as given, and of the callback URL. Without a schedule or a callback
    URL the document is what it always was, so fingerprints stored before either existed still match."""
    document: dict[str, Any] = {"type": job_type, "priority": str(priority), "params": params, "metadata": metadata}
    if schedule:
        document.update(schedule)
    if callback_url is not None:
        document["callbackUrl"] = callback_url
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()
