"""Submit and retry publish to the job's priority queue (issue 10, point 6), with the queues the API builds from
its settings, each coalescing its own sends."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from runtime.adapters.priority_queue import PriorityJobQueue
from runtime.api.app import build_container, create_app
from runtime.domain.job import Priority
from tests.adapters.resources import create_resources, queue_depth, raw_client
from tests.api.conftest import ShiftableClock, api_settings, bearer, document_params, issue_key


def test_each_priority_is_published_to_its_own_queue(moto_server: str) -> None:
    resources = create_resources(moto_server, "apiprio")
    sqs = raw_client("sqs", moto_server)
    high_url, low_url = (
        sqs.create_queue(QueueName=f"apiprio-{name}-{uuid.uuid4().hex[:8]}")["QueueUrl"] for name in ("high", "low")
    )
    settings = api_settings(resources, high_priority_queue_url=high_url, low_priority_queue_url=low_url)
    clock = ShiftableClock()
    container = build_container(settings, clock=clock)
    assert isinstance(container.queue, PriorityJobQueue)
    assert set(container.queue.queues) == set(Priority)
    urls = {Priority.HIGH: high_url, Priority.NORMAL: resources.queue_url, Priority.LOW: low_url}
    with TestClient(create_app(container=container), headers=bearer(issue_key(resources))) as client:
        for priority, count in ((Priority.HIGH, 1), (Priority.NORMAL, 2), (Priority.LOW, 3)):
            for _ in range(count):
                response = client.post(
                    "/api/v1/jobs",
                    json={
                        "type": "process_document",
                        "priority": priority.value,
                        "params": document_params(settings.documents_bucket),
                    },
                )
                assert response.status_code == 201, response.text
        assert {priority: queue_depth(sqs, url) for priority, url in urls.items()} == {
            Priority.HIGH: 1,
            Priority.NORMAL: 2,
            Priority.LOW: 3,
        }
        # A retry of a PENDING job publishes again, to the same priority's queue.
        job_id = response.json()["jobId"]
        clock.advance(settings.retry_republish_after_s)  # its first message is no longer fresh
        assert client.post(f"/api/v1/jobs/{job_id}/retry").status_code == 200
        assert queue_depth(sqs, low_url) == 4 and queue_depth(sqs, high_url) == 1
        # A batch submit sends each job to its priority's queue too.
        params = document_params(settings.documents_bucket)
        jobs = [{"type": "process_document", "priority": p, "params": params} for p in ("low", "high", "high")]
        batch = client.post("/api/v1/jobs/batch", json={"jobs": jobs})
        assert batch.status_code == 200 and [r["status"] for r in batch.json()["results"]] == [201] * 3
        assert {priority: queue_depth(sqs, url) for priority, url in urls.items()} == {
            Priority.HIGH: 3,
            Priority.NORMAL: 2,
            Priority.LOW: 5,
        }
