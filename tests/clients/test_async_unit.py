"""The async client shares the sync client's logic (jobtickets._core); these check its own loop: retries with
Retry-After, async paging, batches and wait with a coroutine callback."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest

from jobtickets import AsyncJobTicketsClient, ConnectionFailed, JobNotCancelable, JobRequest
from tests.clients.fake_service import FakeTime, Script, answer, error, job_json


def make_client(script: Script, time: FakeTime, **options: float) -> AsyncJobTicketsClient:
    return AsyncJobTicketsClient(
        "http://service.test",
        "jt_key",
        transport=script.async_transport(),
        clock=time.clock,
        sleep=time.async_sleep,
        **options,
    )


def test_submit_retries_with_one_key_and_honours_retry_after() -> None:
    script = Script(
        [
            error(503, "overloaded", headers={"Retry-After": "3"}),
            error(429, "too_many_requests", headers={"Retry-After": "1"}),
            answer(201, job_json()),
        ]
    )
    time = FakeTime()

    async def scenario() -> str:
        async with make_client(script, time) as client:
            job = await client.submit("transform_data", {"records": []}, delay_seconds=10)
            return job.job_id

    assert asyncio.run(scenario()) == "job-1"
    assert time.sleeps == [3, 1]
    assert len({request.headers["Idempotency-Key"] for request in script.requests}) == 1
    assert script.bodies()[0]["delaySeconds"] == 10


def test_errors_and_connection_failures_are_typed() -> None:
    script = Script([error(409, "job_not_cancelable"), *[httpx.ConnectError("refused") for _ in range(50)]])

    async def scenario() -> None:
        async with make_client(script, FakeTime(), deadline_s=2.0) as client:
            with pytest.raises(JobNotCancelable):
                await client.cancel("job-1")
            with pytest.raises(ConnectionFailed):
                await client.get("job-1")

    asyncio.run(scenario())


def test_list_is_an_async_iterator_over_every_page() -> None:
    script = Script(
        [
            answer(200, {"items": [job_json("a")], "nextCursor": "c1"}),
            answer(200, {"items": [job_json("b")], "nextCursor": None}),
        ]
    )

    async def scenario() -> list[str]:
        async with make_client(script, FakeTime()) as client:
            return [job.job_id async for job in client.list(type="transform_data", page_size=1)]

    assert asyncio.run(scenario()) == ["a", "b"]
    assert script.requests[1].url.params["cursor"] == "c1"


def test_submit_many_and_wait_with_a_coroutine_callback() -> None:
    script = Script(
        [
            answer(200, {"results": [{"status": 503, "error": "job_store_unavailable", "retryAfter": 2}]}),
            answer(200, {"results": [{"status": 201, "job": job_json()}]}),
            answer(200, job_json(status="PROCESSING", progress={"fraction": 0.5, "message": "half"})),
            answer(200, job_json(status="FAILED_FINAL", error={"code": "boom", "message": "m", "permanent": True})),
        ]
    )
    time = FakeTime()
    seen: list[float] = []

    async def record(job: object) -> None:
        progress = getattr(job, "progress", None)
        seen.append(progress.fraction if progress else -1)

    async def scenario() -> str:
        async with make_client(script, time) as client:
            [result] = await client.submit_many([JobRequest("t", {"n": 1})])
            assert result.created and result.job is not None
            job = await client.wait(result.job.job_id, timeout=30, on_progress=record)
            return job.status

    assert asyncio.run(scenario()) == "FAILED_FINAL"
    assert seen == [0.5]
    assert time.sleeps == [2, 0.5]


def test_fetch_result_downloads_a_result_stored_apart() -> None:
    content = b'{"big":true}'
    ref = {
        "uri": "s3://d/tenants/t1/results/job-1.json",
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    job = job_json(status="SUCCEEDED", resultRef=ref, resultUrl="https://storage.test/r.json")
    script = Script([answer(200, job), httpx.Response(200, content=content)])

    async def scenario() -> object:
        async with make_client(script, FakeTime()) as client:
            return await client.fetch_result(await client.get("job-1"))

    assert asyncio.run(scenario()) == {"big": True}
    assert "Authorization" not in script.requests[1].headers
