"""Use case of the API: list a tenant's jobs, newest first, a page at a time behind an opaque signed cursor.

A cursor is `<payload>.<mac>`, both base64url without padding: the payload is the store's `next_key` as JSON, the
mac an HMAC-SHA256 over the tenant, the filters and the payload. A cursor the service did not issue, one changed
in any byte, or one issued to another tenant or for other filters fails the check (`InvalidCursor`), so a caller
can neither forge a start key nor walk another tenant's index with one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from runtime.domain.job import Job
from runtime.domain.ports import JobStore, ListFilter

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
# Far above any cursor we issue (a start key of four short strings): longer input is refused before decoding.
MAX_CURSOR_LENGTH = 2048


class InvalidCursor(Exception):
    """The cursor was not issued by this service for this tenant and these filters."""


@dataclass(frozen=True)
class ListPage:
    jobs: list[Job]
    next_cursor: str | None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorSigner:
    """Signs and checks cursors with one secret key (the API's JOBS_CURSOR_SECRET)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the cursor secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, scope: ListFilter, payload: str) -> bytes:
        message = json.dumps(
            [scope.tenant, scope.status.value if scope.status else None, scope.job_type, payload], separators=(",", ":")
        )
        return hmac.new(self._secret, message.encode("utf-8"), hashlib.sha256).digest()

    def issue(self, scope: ListFilter, next_key: dict[str, str]) -> str:
        payload = _b64encode(json.dumps(next_key, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        return f"{payload}.{_b64encode(self._mac(scope, payload))}"

    def open(self, scope: ListFilter, cursor: str) -> dict[str, str]:
        """The start key inside `cursor`, or InvalidCursor."""
        if len(cursor) > MAX_CURSOR_LENGTH or cursor.count(".") != 1:
            raise InvalidCursor("not a cursor of this service")
        payload, mac = cursor.split(".")
        try:
            given = _b64decode(mac)
        except (binascii.Error, ValueError):
            raise InvalidCursor("not a cursor of this service") from None
        if not hmac.compare_digest(given, self._mac(scope, payload)):
            raise InvalidCursor("not issued for this caller and these filters")
        key = json.loads(_b64decode(payload))  # signed by us: our own json
        if not isinstance(key, dict) or not all(isinstance(v, str) for v in key.values()):
            raise InvalidCursor("not a cursor of this service")
        return key


class JobLister:
    """Lists through the store's listing indexes; every page is scoped to the caller's tenant."""

    def __init__(self, store: JobStore, signer: CursorSigner) -> None:
        self._store = store
        self._signer = signer

    def list(self, scope: ListFilter, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None) -> ListPage:
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be 1-{MAX_PAGE_SIZE}, got {limit}")
        start_key = self._signer.open(scope, cursor) if cursor is not None else None
        page = self._store.list_jobs(scope, limit=limit, start_key=start_key)
        # The index is eventually consistent and keyed by the tenant: the check below only guards the invariant.
        jobs = [job for job in page.jobs if job.tenant == scope.tenant]
        next_cursor = self._signer.issue(scope, dict(page.next_key)) if page.next_key else None
        return ListPage(jobs=jobs, next_cursor=next_cursor)
