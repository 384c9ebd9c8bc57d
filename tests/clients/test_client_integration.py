"""The client library against the real local all-in-one (API, worker, moto over HTTP): every call of the contract,
typed errors from the real service, list paging over real cursors, batches and waiting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from jobtickets import (
    AsyncJobTicketsClient,
    IdempotencyKeyReused,
    JobNotCancelable,
    JobNotFound,
    JobNotRetryable,
    JobRequest,
    JobTicketsClient,
    Unauthorized,
    UnknownJobType,
    ValidationFailed,
    WaitTimeout,
)
from tests.clients.jobs import missing_document_params, report_params, transform_params
from tests.clients.worker_pause import paused_worker
from tests.e2e.local_system import LocalSystem

pytestmark = pytest.mark.slow


class RecordingTransport(httpx.HTTPTransport):
    """The real transport, noting each request's path and query (to see the pages the client fetched)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[httpx.URL] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url)
        return super().handle_request(request)


@pytest.fixture
def client(system: LocalSystem) -> Iterator[JobTicketsClient]:
    with JobTicketsClient(system.api_url, system.api_key, deadline_s=30) as jobs:
        yield jobs


def test_submit_get_and_wait_for_a_real_job(client: JobTicketsClient) -> None:
    submitted = client.submit("transform_data", transform_params("ada", "grace"), metadata={"by": "client"})
    assert submitted.status == "PENDING" and submitted.tenant == "local" and submitted.metadata == {"by": "client"}
    assert client.get(submitted.job_id).job_id == submitted.job_id  # read-your-writes
    statuses: list[str] = []
    done = client.wait(submitted.job_id, timeout=60, on_status=lambda job: statuses.append(job.status))
    assert done.status == "SUCCEEDED" and done.is_terminal
    assert done.result is not None and done.result["records"] == [{"name": "ADA"}, {"name": "GRACE"}]
    assert statuses[-1] == "SUCCEEDED" and done.attempts == 1
    assert set(done.transitions) >= {"PENDING", "PROCESSING", "SUCCEEDED"}


def test_wait_reports_the_handlers_progress(system: LocalSystem, client: JobTicketsClient) -> None:
    job = client.submit("generate_report", report_params(system, uuid.uuid4().hex))
    seen: list[tuple[float, str | None]] = []
    done = client.wait(
        job.job_id,
        timeout=60,
        on_progress=lambda job: seen.append(
            (job.progress.fraction, job.progress.message) if job.progress else (-1, "")
        ),
    )
    assert done.status == "SUCCEEDED" and done.progress is not None
    assert (done.progress.fraction, done.progress.message) == (1.0, "report written")
    assert done.progress.updated_at is not None
    # Called once per change (writes are throttled, so a short job may show only its last value).
    assert seen and seen[-1] == (1.0, "report written") and len(seen) == len(set(seen))


def test_an_idempotency_key_replays_and_a_reused_key_is_typed(client: JobTicketsClient) -> None:
    key = f"client-{uuid.uuid4()}"
    first = client.submit("transform_data", transform_params("a"), idempotency_key=key)
    again = client.submit("transform_data", transform_params("a"), idempotency_key=key)
    assert again.job_id == first.job_id
    with pytest.raises(IdempotencyKeyReused) as caught:
        client.submit("transform_data", transform_params("b"), idempotency_key=key)
    assert caught.value.status == 422 and first.job_id in caught.value.detail


def test_the_real_services_errors_arrive_typed(system: LocalSystem, client: JobTicketsClient) -> None:
    with pytest.raises(JobNotFound) as not_found:
        client.get(f"no-such-{uuid.uuid4()}")
    assert not_found.value.status == 404 and not_found.value.code == "job_not_found"
    with pytest.raises(UnknownJobType) as unknown:
        client.submit("no_such_type", {"x": 1})
    assert "transform_data" in unknown.value.known_types
    with pytest.raises(ValidationFailed) as invalid:
        client.submit("transform_data", {"records": "not a list", "operations": []})
    assert invalid.value.code == "validation_error" and "params.records" in invalid.value.detail
    with JobTicketsClient(system.api_url, "jt_wrong") as stranger, pytest.raises(Unauthorized) as unauthorized:
        stranger.get("anything")
    assert unauthorized.value.status == 401


def test_list_follows_real_cursors_over_several_pages(system: LocalSystem) -> None:
    marker = uuid.uuid4().hex
    results = JobTicketsClient(system.api_url, system.api_key).submit_many(
        [JobRequest("transform_data", transform_params(f"{marker}-{n}"), metadata={"m": marker}) for n in range(5)]
    )
    wanted = {result.job.job_id for result in results if result.job is not None}
    assert len(wanted) == 5
    transport = RecordingTransport()
    with JobTicketsClient(system.api_url, system.api_key, transport=transport) as client:
        # The listing is eventually consistent: a job submitted a moment ago may show on the next request.
        for _ in range(50):
            transport.seen.clear()
            listed = [job.job_id for job in client.list(type="transform_data", page_size=2)]
            if wanted <= set(listed):
                break
        assert wanted <= set(listed)
        assert len(listed) == len(set(listed))  # no job twice across pages
        assert len(transport.seen) >= 3
        assert all(url.params["limit"] == "2" for url in transport.seen)
        assert "cursor" not in transport.seen[0].params and all("cursor" in url.params for url in transport.seen[1:])
        succeeded = list(client.list(status="SUCCEEDED", type="transform_data", page_size=100))
        assert all(job.status == "SUCCEEDED" and job.job_type == "transform_data" for job in succeeded)


def test_submit_many_answers_each_item(system: LocalSystem, client: JobTicketsClient) -> None:
    key = f"batch-{uuid.uuid4()}"
    results = client.submit_many(
        [
            JobRequest("transform_data", transform_params("x"), idempotency_key=key),
            JobRequest("no_such_type", {"x": 1}),
            JobRequest("transform_data", transform_params("x"), idempotency_key=key),
            JobRequest("transform_data", transform_params("y"), priority="high"),
        ]
    )
    assert [result.status for result in results] == [201, 422, 200, 201]
    assert isinstance(results[1].error, UnknownJobType) and results[1].job is None
    assert results[0].job is not None and results[2].job is not None
    assert results[2].job.job_id == results[0].job.job_id  # the same key twice: one job
    assert results[3].job is not None and results[3].job.priority == "high"
    assert client.wait(results[3].job.job_id, timeout=60).status == "SUCCEEDED"


def test_retry_and_cancel_follow_the_status_machine(system: LocalSystem, client: JobTicketsClient) -> None:
    failed = client.submit("process_document", missing_document_params(system, uuid.uuid4().hex))
    final = client.wait(failed.job_id, timeout=60)
    assert final.status == "FAILED_FINAL" and final.error is not None and "missing-" in final.error.message
    with pytest.raises(JobNotCancelable) as not_cancelable:
        client.cancel(failed.job_id)
    assert not_cancelable.value.status == 409 and not_cancelable.value.body["status"] == "FAILED_FINAL"
    retried = client.retry(failed.job_id)
    assert retried.status == "PENDING"
    again = client.wait(failed.job_id, timeout=60)
    assert again.status == "FAILED_FINAL" and again.attempts > final.attempts
    succeeded = client.wait(client.submit("transform_data", transform_params("z")).job_id, timeout=60)
    with pytest.raises(JobNotRetryable):
        client.retry(succeeded.job_id)


def test_cancel_a_waiting_job_then_retry_it(system: LocalSystem, client: JobTicketsClient) -> None:
    with paused_worker(system):
        job = client.submit("transform_data", transform_params("held"))
        with pytest.raises(WaitTimeout) as timed_out:
            client.wait(job.job_id, timeout=1.5)
        assert timed_out.value.job.status == "PENDING"
        canceled = client.cancel(job.job_id)
        assert canceled.status == "CANCELED" and canceled.is_terminal
        assert client.cancel(job.job_id).status == "CANCELED"  # again: the same answer
        assert client.retry(job.job_id).status == "PENDING"  # a CANCELED job is retried as FAILED_FINAL is
    assert client.wait(job.job_id, timeout=60).status == "SUCCEEDED"


def test_scheduled_jobs_wait_for_their_time_and_can_be_canceled(client: JobTicketsClient) -> None:
    later = client.submit("transform_data", transform_params("later"), delay_seconds=600)
    assert later.status == "PENDING" and later.run_at is not None and later.created_at is not None
    assert timedelta(seconds=599) <= later.run_at - later.created_at <= timedelta(seconds=601)
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    fixed = client.submit("transform_data", transform_params("fixed"), run_at=at)
    assert fixed.run_at == at
    with pytest.raises(ValidationFailed) as too_far:
        client.submit("transform_data", transform_params("x"), run_at=datetime.now(UTC) + timedelta(days=8))
    assert "runAt" in too_far.value.detail
    for job in (later, fixed):
        canceled = client.cancel(job.job_id)
        assert canceled.status == "CANCELED" and canceled.run_at == job.run_at
    # A short delay: the job runs, and never before its time.
    soon = client.submit("transform_data", transform_params("soon"), delay_seconds=2)
    done = client.wait(soon.job_id, timeout=60)
    assert done.status == "SUCCEEDED" and soon.run_at is not None
    assert done.transitions["PROCESSING"] >= soon.run_at


def test_the_async_client_does_the_same_against_the_real_service(system: LocalSystem) -> None:
    async def scenario() -> tuple[str, list[str]]:
        async with AsyncJobTicketsClient(system.api_url, system.api_key) as client:
            job = await client.submit("transform_data", transform_params("async"))
            done = await client.wait(job.job_id, timeout=60)
            listed = [listed.job_id async for listed in client.list(status="SUCCEEDED", page_size=100)]
            with pytest.raises(JobNotFound):
                await client.cancel(f"no-such-{uuid.uuid4()}")
            return done.status, listed

    status, listed = asyncio.run(scenario())
    assert status == "SUCCEEDED"
    assert len(listed) == len(set(listed))
