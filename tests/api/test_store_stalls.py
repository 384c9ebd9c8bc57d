"""A stalled store: the API over a moto server of its own that the tests freeze (SIGSTOP) and thaw (SIGCONT).

While the emulator is frozen it still accepts connections but answers nothing, so the SDK's read timeout
expires and botocore retries a conditional PutItem whose first attempt is then stored: the retry meets the
request's own item. That item must be answered as the request's own write (201, and its message sent), never as
a collision (500) or a replay (200 without a message)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.adapters.sqs_queue import SqsJobQueue
from runtime.api.app import build_container, create_app
from runtime.aws_clients import build_client, client_config
from tests.adapters.resources import counted_client, create_resources, queue_depth, raw_client, scan_all
from tests.api.conftest import DOCS_PREFIX, api_settings, bearer, issue_key, serve
from tests.conftest import MotoProcess, moto_subprocess

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
def stalled() -> Iterator[StalledApi]:
    with moto_subprocess(atomic=True) as moto:
        resources = create_resources(moto.url, "stall")
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
