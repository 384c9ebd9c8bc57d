"""A stalled store: the API over a moto server of its own that the tests freeze (SIGSTOP) and thaw (SIGCONT).

While the emulator is frozen it still accepts connections but answers nothing, so the SDK's read timeout
expires and botocore retries a conditional PutItem whose first attempt is then stored: the retry meets the
request's own item. That item must be answered as the request's own write (201, and its message sent), never as
a collision (500) or a replay (200 without a message).

A stall longer than the request deadline is answered `503` with Retry-After within the deadline, leaving nothing
half-created; /readyz answers within 2 s; past the in-flight bound requests are refused at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.adapters.sqs_queue import SqsJobQueue
from runtime.api.app import build_container, create_app
from runtime.aws_clients import build_client, client_config
from runtime.domain.submit import job_id_for_key
from runtime.settings import Settings, SettingsError
from runtime.worker.republisher import Republisher
from tests.adapters.resources import (
    AwsResources,
    counted_client,
    create_resources,
    queue_depth,
    raw_client,
    scan_all,
)
from tests.api.conftest import DOCS_PREFIX, TENANT, ShiftableClock, api_settings, bearer, issue_key, serve
from tests.conftest import MotoProcess, moto_subprocess
from tests.waiting import wait_for

# The store's SDK gives up on an attempt after this long and retries: a freeze longer than it stores the first
# attempt and sends the retry into the same item.
STORE_READ_TIMEOUT_S = 1.0
FREEZE_S = 2.5


@dataclass
class StalledApi:
    moto: MotoProcess
    http: httpx.Client
    table_name: str
    queue_url: str

    def submit_while_frozen(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        """POSTs `body` while the emulator is frozen for FREEZE_S, and returns the answer once it thawed."""
        answers: list[httpx.Response] = []
        with self.moto.frozen():
            thread = threading.Thread(target=lambda: answers.append(self.http.post(path, json=body, headers=headers)))
            thread.start()
            time.sleep(FREEZE_S)  # the store answers nothing: the first attempt times out, the SDK retries
        thread.join(timeout=60)
        (answer,) = answers
        return answer

    def items(self) -> int:
        return len(scan_all(raw_client("dynamodb", self.moto.url), self.table_name))

    def messages(self) -> int:
        return queue_depth(raw_client("sqs", self.moto.url), self.queue_url)


@pytest.fixture(scope="module")
def emulator() -> Iterator[tuple[MotoProcess, AwsResources]]:
    with moto_subprocess(atomic=True) as moto:
        yield moto, create_resources(moto.url, "stall")


@pytest.fixture(scope="module")
def stalled(emulator: tuple[MotoProcess, AwsResources]) -> Iterator[StalledApi]:
    moto, resources = emulator
    settings = api_settings(resources, send_linger_s=0)
    store_client = build_client(
        "dynamodb",
        region="us-east-1",
        endpoint_url=moto.url,
        config=client_config(read_timeout_s=STORE_READ_TIMEOUT_S, max_attempts=3),
    )
    container = build_container(
        settings,
        store=DynamoDbJobStore(store_client, resources.table_name),
        queue=SqsJobQueue(counted_client("sqs", moto.url), resources.queue_url),
    )
    with (
        serve(create_app(container=container)) as base_url,
        httpx.Client(base_url=base_url, timeout=60, headers=bearer(issue_key(resources))) as http,
    ):
        # The API key is read (and cached) before any freeze: the tests stall the job store's writes only.
        assert http.get("/api/v1/jobs/warm-up").status_code == 404
        yield StalledApi(moto, http, resources.table_name, resources.queue_url)


def body(name: str) -> dict[str, Any]:
    return {
        "type": "process_document",
        "params": {"source": f"{DOCS_PREFIX}{name}.txt", "destination": f"{DOCS_PREFIX}{name}.json"},
    }


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
def test_a_retried_put_that_meets_its_own_write_is_created_and_published(stalled: StalledApi, keyed: bool) -> None:
    items, messages = stalled.items(), stalled.messages()
    headers = {"Idempotency-Key": f"stall-{time.monotonic_ns()}"} if keyed else {}
    answer = stalled.submit_while_frozen("/api/v1/jobs", body(f"one-{keyed}"), headers)
    assert answer.status_code == 201, answer.text
    assert "Idempotent-Replayed" not in answer.headers
    assert answer.json()["status"] == "PENDING"
    assert (stalled.items(), stalled.messages()) == (items + 1, messages + 1)
    # A later request with the same key is a replay of that job, not a new one.
    if keyed:
        again = stalled.http.post("/api/v1/jobs", json=body(f"one-{keyed}"), headers=headers)
        assert again.status_code in (200, 409) and stalled.items() == items + 1


def test_a_batch_recognises_its_own_writes(stalled: StalledApi) -> None:
    items, messages = stalled.items(), stalled.messages()
    jobs = [body("batch-plain"), {**body("batch-keyed"), "idempotencyKey": f"stall-{time.monotonic_ns()}"}]
    answer = stalled.submit_while_frozen("/api/v1/jobs/batch", {"jobs": jobs}, {})
    assert answer.status_code == 200, answer.text
    assert [result["status"] for result in answer.json()["results"]] == [201, 201]
    assert (stalled.items(), stalled.messages()) == (items + 2, messages + 2)


# The deadline tests' limits: every SDK attempt gives up within 0.8 s, two attempts fit in the 2 s deadline.
DEADLINE_S = 2.0
TIGHT_LIMITS: dict[str, Any] = {
    "request_deadline_s": DEADLINE_S,
    "api_aws_connect_timeout_s": 0.3,
    "api_aws_read_timeout_s": 0.5,
    "api_aws_max_attempts": 2,
    "readiness_timeout_s": 1.0,
    "send_linger_s": 0,
}
# What a busy test machine may add to a bound before an answer reaches the test.
SLACK_S = 0.5


@dataclass
class DeadlineApi:
    moto: MotoProcess
    http: httpx.Client
    settings: Settings
    clock: ShiftableClock
    container: Any

    def timed(self, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        answer = self.http.request(method, path, **kwargs)
        return answer, time.monotonic() - started


@contextmanager
def deadline_api(emulator: tuple[MotoProcess, AwsResources], **overrides: Any) -> Iterator[DeadlineApi]:
    """The API wired from settings (its own SDK clients, sized to the tight deadline) over the freezable emulator."""
    moto, resources = emulator
    settings = api_settings(resources, **{**TIGHT_LIMITS, **overrides})
    clock = ShiftableClock()
    container = build_container(settings, clock=clock)
    with (
        serve(create_app(container=container)) as base_url,
        httpx.Client(base_url=base_url, timeout=60, headers=bearer(issue_key(resources))) as http,
    ):
        assert http.get("/api/v1/jobs/warm-up").status_code == 404  # the API key is cached before any freeze
        assert http.get("/readyz").status_code == 200
        yield DeadlineApi(moto, http, settings, clock, container)


def assert_unavailable(answer: httpx.Response) -> None:
    """503 with Retry-After and the contract's error body, naming no internals."""
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    document = answer.json()
    assert document["error"] in ("deadline_exceeded", "job_store_unavailable", "overloaded"), document
    assert set(document) == {"error", "detail"} and "stall-jobs" not in document["detail"]


def test_a_frozen_store_is_a_503_within_the_deadline_and_nothing_half_created(
    emulator: tuple[MotoProcess, AwsResources],
) -> None:
    with deadline_api(emulator) as api:
        key = f"frozen-{time.monotonic_ns()}"
        job_id = job_id_for_key(TENANT, key, 0)
        with api.moto.frozen():
            answer, elapsed = api.timed("POST", "/api/v1/jobs", json=body("frozen"), headers={"Idempotency-Key": key})
            assert_unavailable(answer)
            assert elapsed < DEADLINE_S + SLACK_S
            polled, elapsed = api.timed("GET", f"/api/v1/jobs/{job_id}")
            assert_unavailable(polled)
            assert elapsed < DEADLINE_S + SLACK_S
            ready, elapsed = api.timed("GET", "/readyz")
            assert elapsed < 2.0
            assert ready.status_code == 503
            assert ready.json() == {"status": "not ready", "reason": "job store is not answering"}
            assert api.http.get("/healthz").status_code == 200
        # Thawed, the emulator stores the put it had received: a PENDING job with its pending marker, which the
        # republisher publishes; a retry with the same key answers with that job, never a second one.
        store = api.container.store
        wait_for("the frozen write to land", lambda: store.get(job_id) is not None)
        api.clock.advance(api.settings.submit_in_flight_s)
        again = api.http.post("/api/v1/jobs", json=body("frozen"), headers={"Idempotency-Key": key})
        assert again.status_code == 200 and again.json()["jobId"] == job_id, again.text
        items = scan_all(raw_client("dynamodb", api.moto.url), api.settings.table_name)
        assert sum(1 for item in items if item["jobId"]["S"] == job_id) == 1
        depth = queue_depth(raw_client("sqs", api.moto.url), api.settings.queue_url)
        api.clock.advance(api.settings.republish_after_s)
        republisher = Republisher(
            store=store,
            queue=api.container.queue,
            clock=api.clock,
            republish_after_s=api.settings.republish_after_s,
            interval_s=api.settings.republish_interval_s,
        )
        assert republisher.sweep() >= 1
        assert queue_depth(raw_client("sqs", api.moto.url), api.settings.queue_url) >= depth + 1


def test_past_the_in_flight_bound_requests_are_refused_at_once(emulator: tuple[MotoProcess, AwsResources]) -> None:
    with deadline_api(emulator, max_in_flight_requests=2) as api:
        answers: list[httpx.Response] = []
        with api.moto.frozen():
            slow = [threading.Thread(target=lambda: answers.append(api.http.get("/api/v1/jobs/slow"))) for _ in "ab"]
            for thread in slow:
                thread.start()
            time.sleep(0.5)  # both are admitted and wait for the frozen store
            refused, elapsed = api.timed("POST", "/api/v1/jobs", json=body("shed"))
            assert elapsed < SLACK_S
            assert_unavailable(refused)
            assert refused.json()["error"] == "overloaded" and refused.headers["Retry-After"] == "1"
            # The probes are never refused.
            assert api.http.get("/healthz").status_code == 200
            ready, elapsed = api.timed("GET", "/readyz")  # ready or not (its answer may be a second old), in time
            assert ready.json()["status"] in ("ready", "not ready") and elapsed < 2.0
            for thread in slow:
                thread.join(timeout=30)
        assert len(answers) == 2
        for answer in answers:
            assert_unavailable(answer)


def test_the_sdk_attempts_must_fit_in_the_deadline(emulator: tuple[MotoProcess, AwsResources]) -> None:
    with pytest.raises(SettingsError, match="does not fit in request_deadline_s"):
        api_settings(emulator[1], **{**TIGHT_LIMITS, "api_aws_max_attempts": 3})
