"""The list use case: tenant scoping, page walking and the signed cursor's checks (in-memory store)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runtime.domain.job import JobStatus
from runtime.domain.listing import CursorSigner, InvalidCursor, JobLister, ListFilter
from runtime.settings import LOCAL_CURSOR_SECRET, SettingsError, load_settings
from tests.unit.fakes import T0, InMemoryJobStore, make_job

SECRET = b"unit-test-cursor-secret"


def lister_with(jobs: int, tenant: str = "t1") -> tuple[JobLister, InMemoryJobStore]:
    store = InMemoryJobStore()
    for n in range(jobs):
        store.create(make_job(f"job-{n:03d}", tenant=tenant, created_at=T0 + timedelta(seconds=n)))
    return JobLister(store, CursorSigner(SECRET)), store


def test_pages_walk_newest_first_each_job_once() -> None:
    lister, _ = lister_with(7)
    scope = ListFilter(tenant="t1", status=None, job_type=None)
    seen: list[str] = []
    cursor = None
    while True:
        page = lister.list(scope, limit=3, cursor=cursor)
        seen.extend(job.job_id for job in page.jobs)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"job-{n:03d}" for n in reversed(range(7))]


@pytest.mark.parametrize(
    "other",
    [
        ListFilter(tenant="t2", status=None, job_type=None),
        ListFilter(tenant="t1", status=JobStatus.PENDING, job_type=None),
        ListFilter(tenant="t1", status=None, job_type="generate_report"),
    ],
)
def test_a_cursor_only_opens_for_its_tenant_and_filters(other: ListFilter) -> None:
    lister, _ = lister_with(5)
    cursor = lister.list(ListFilter(tenant="t1", status=None, job_type=None), limit=2).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidCursor):
        lister.list(other, limit=2, cursor=cursor)


def test_altered_foreign_and_malformed_cursors_are_refused() -> None:
    lister, _ = lister_with(5)
    scope = ListFilter(tenant="t1", status=None, job_type=None)
    cursor = lister.list(scope, limit=2).next_cursor
    assert cursor is not None
    payload, mac = cursor.split(".")
    forged = CursorSigner(b"another-secret-of-someone").issue(scope, {"jobId": "job-000"})
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    for bad in (f"{flipped}.{mac}", forged, "", "nodot", "a.b.c", cursor + "x", "x" * 5000):
        with pytest.raises(InvalidCursor):
            lister.list(scope, limit=2, cursor=bad)


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        CursorSigner(b"short")


REQUIRED = {
    "table_name": "t",
    "access_table_name": "a",
    "queue_url": "q",
    "dead_letter_queue_url": "d",
    "documents_bucket": "b",
}


def test_the_cursor_secret_defaults_only_in_the_local_environment() -> None:
    assert load_settings(**REQUIRED).cursor_key() == LOCAL_CURSOR_SECRET
    with pytest.raises(SettingsError, match="JOBS_CURSOR_SECRET"):
        load_settings(**REQUIRED, environment="prod").cursor_key()
    secret = "s" * 32
    assert load_settings(**REQUIRED, environment="prod", cursor_secret=secret).cursor_key() == secret.encode()
    with pytest.raises(SettingsError, match=r"JOBS_CURSOR_SECRET: .*16 characters") as refused:
        load_settings(**REQUIRED, cursor_secret="too-short")
    assert "too-short" not in str(refused.value)  # a secret never shows in an error
