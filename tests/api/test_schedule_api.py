"""Scheduled submits over HTTP on the moto server: `runAt` / `delaySeconds` validated and shown, the message sent
with an SQS delay when due within the window and not at all beyond it (the republisher's), single and batch,
idempotent replays, cancel while waiting, and the OpenAPI schema. Running them is tests/worker/test_schedule.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.api.app import build_container, create_app
from runtime.domain.schedule import MAX_SCHEDULE_AHEAD_S, SQS_MAX_DELAY_S
from runtime.domain.times import iso, parse_iso
from tests.adapters.resources import AwsResources, create_resources, raw_client, scan_all
from tests.api.conftest import ShiftableClock, api_settings, bearer, document_params, issue_key, serve

JOBS = "/api/v1/jobs"
BATCH = "/api/v1/jobs/batch"


@dataclass
class ScheduleApi:
    resources: AwsResources
    store: DynamoDbJobStore
    sqs: Any
    dynamodb: Any
    http: httpx.Client

    def messages(self) -> tuple[int, int]:
        """(visible, delayed) messages in the queue."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.resources.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesDelayed"])

    def item_count(self) -> int:
        return len(scan_all(self.dynamodb, self.resources.table_name))


@pytest.fixture(scope="module")
def api(moto_server: str) -> Iterator[ScheduleApi]:
    # A queue of its own, so that message counts are this module's; replays answer after 10 ms (not 5 s).
    resources = create_resources(moto_server, "sched")
    container = build_container(api_settings(resources, submit_in_flight_s=0.01), clock=ShiftableClock())
    assert isinstance(container.store, DynamoDbJobStore)
    with (
        serve(create_app(container=container)) as base_url,
        httpx.Client(base_url=base_url, timeout=30, headers=bearer(issue_key(resources))) as http,
    ):
        yield ScheduleApi(
            resources, container.store, raw_client("sqs", moto_server), raw_client("dynamodb", moto_server), http
        )


def body(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"type": "process_document", "params": document_params("docs")}
    document.update(changes)
    return document


def seconds_between(earlier: str, later: str) -> float:
    return (parse_iso(later) - parse_iso(earlier)).total_seconds()


def test_a_delayed_submit_is_pending_with_run_at_and_its_message_waits_in_the_queue(api: ScheduleApi) -> None:
    visible, delayed = api.messages()
    created = api.http.post(JOBS, json=body(delaySeconds=600))
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "PENDING" and job["runAt"].endswith("Z")
    assert seconds_between(job["createdAt"], job["runAt"]) == pytest.approx(600, abs=0.01)
    assert api.messages() == (visible, delayed + 1)  # sent at once, hidden by its DelaySeconds
    stored = api.store.get(job["jobId"])
    assert stored is not None and stored.pending_since == stored.run_at  # a lost message is republished after runAt

    shown = api.http.get(f"{JOBS}/{job['jobId']}").json()
    assert shown["runAt"] == job["runAt"] and shown["status"] == "PENDING"
    listed = api.http.get(JOBS, params={"status": "PENDING", "limit": 100}).json()["items"]
    assert [item["runAt"] for item in listed if item["jobId"] == job["jobId"]] == [job["runAt"]]


def test_a_past_run_at_means_now_and_an_unscheduled_job_shows_null(api: ScheduleApi) -> None:
    visible, delayed = api.messages()
    past = api.http.post(JOBS, json=body(runAt="2020-01-01T00:00:00+02:00")).json()
    assert past["runAt"] == past["createdAt"]
    plain = api.http.post(JOBS, json=body()).json()
    assert plain["runAt"] is None
    assert api.messages() == (visible + 2, delayed)


def test_a_job_due_beyond_the_window_is_held_back_for_the_republisher(api: ScheduleApi) -> None:
    messages = api.messages()
    run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    created = api.http.post(JOBS, json=body(runAt=run_at.astimezone(timezone(timedelta(hours=-5))).isoformat()))
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["runAt"] == iso(run_at)  # shown in UTC, whatever offset it came with
    assert api.messages() == messages  # no message yet
    stored = api.store.get(job["jobId"])
    assert stored is not None and stored.pending_since == run_at - timedelta(seconds=SQS_MAX_DELAY_S)
    # The republisher's index finds it only once it is inside the window.
    assert job["jobId"] not in {
        found.job_id for found in api.store.stuck_pending(older_than=datetime.now(UTC), limit=1000)
    }
    assert job["jobId"] in {
        found.job_id for found in api.store.stuck_pending(older_than=run_at - timedelta(seconds=60), limit=1000)
    }


def too_far() -> str:
    return iso(datetime.now(UTC) + timedelta(seconds=MAX_SCHEDULE_AHEAD_S + 60))


@pytest.mark.parametrize(
    ("changes", "field", "phrase"),
    [
        ({"runAt": "2030-01-01T00:00:00Z", "delaySeconds": 5}, "runAt", "not both"),
        ({"runAt": too_far}, "runAt", "at most 604800 s"),
        ({"runAt": "2026-12-02T05:00:00"}, "runAt", "with a timezone"),
        ({"runAt": "tomorrow"}, "runAt", "'tomorrow'"),
        ({"runAt": "2026-02-30T05:00:00Z"}, "runAt", "not a valid date-time"),
        ({"runAt": 1767225600}, "runAt", "valid string"),
        ({"delaySeconds": MAX_SCHEDULE_AHEAD_S + 1}, "delaySeconds", "604800"),
        ({"delaySeconds": -1}, "delaySeconds", "greater than or equal to 0"),
        ({"delaySeconds": "60"}, "delaySeconds", "valid integer"),
        ({"delaySeconds": 1.5}, "delaySeconds", "valid integer"),
        ({"delaySeconds": True}, "delaySeconds", "valid integer"),
    ],
)
def test_bad_schedules_are_refused_naming_the_field_and_create_nothing(
    api: ScheduleApi, changes: dict[str, Any], field: str, phrase: str
) -> None:
    changes = {name: value() if callable(value) else value for name, value in changes.items()}
    items, messages = api.item_count(), api.messages()
    refused = api.http.post(JOBS, json=body(**changes), headers={"Idempotency-Key": uuid.uuid4().hex})
    assert refused.status_code == 422, refused.text
    error = refused.json()
    assert error["error"] == "validation_error"
    assert error["detail"].startswith(f"{field}: ") and phrase in error["detail"], error["detail"]
    assert api.item_count() == items and api.messages() == messages


def test_seven_days_ahead_is_the_limit_for_run_at_and_delay_seconds(api: ScheduleApi) -> None:
    at_limit = datetime.now(UTC) + timedelta(seconds=MAX_SCHEDULE_AHEAD_S - 60)
    assert api.http.post(JOBS, json=body(runAt=iso(at_limit))).status_code == 201
    assert api.http.post(JOBS, json=body(delaySeconds=MAX_SCHEDULE_AHEAD_S)).status_code == 201


def test_a_replay_of_a_scheduled_submit_answers_the_original_job(api: ScheduleApi) -> None:
    key = f"sched-{uuid.uuid4().hex}"
    first = api.http.post(JOBS, json=body(delaySeconds=300), headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    messages = api.messages()
    replayed = api.http.post(JOBS, json=body(delaySeconds=300), headers={"Idempotency-Key": key})
    assert replayed.status_code == 200, replayed.text
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json()["jobId"] == first.json()["jobId"] and replayed.json()["runAt"] == first.json()["runAt"]
    assert api.messages() == messages  # no second message
    for other in (body(delaySeconds=301), body(), body(runAt=first.json()["runAt"])):
        reused = api.http.post(JOBS, json=other, headers={"Idempotency-Key": key})
        assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused", reused.text

    # The same moment written with another offset (and more digits) is the same body.
    key = f"sched-{uuid.uuid4().hex}"
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    plus_two = moment.astimezone(timezone(timedelta(hours=2))).isoformat()
    created = api.http.post(JOBS, json=body(runAt=plus_two), headers={"Idempotency-Key": key})
    assert created.status_code == 201, created.text
    again = api.http.post(
        JOBS, json=body(runAt=moment.strftime("%Y-%m-%dT%H:%M:%S.000000Z")), headers={"Idempotency-Key": key}
    )
    assert again.status_code == 200 and again.json()["jobId"] == created.json()["jobId"], again.text


def test_a_batch_schedules_item_by_item(api: ScheduleApi) -> None:
    visible, delayed = api.messages()
    key = f"batch-{uuid.uuid4().hex}"
    later = iso(datetime.now(UTC) + timedelta(hours=3))
    jobs = [
        body(delaySeconds=120),
        body(runAt=later),  # beyond the window: held back
        body(),
        body(runAt=later, delaySeconds=3),
        body(runAt=too_far()),
        body(delaySeconds=-5),
        body(delaySeconds=60, idempotencyKey=key),
        body(delaySeconds=60, idempotencyKey=key),  # the same body again: a replay of the item before
        body(delaySeconds=61, idempotencyKey=key),
    ]
    answer = api.http.post(BATCH, json={"jobs": jobs})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [result["status"] for result in results] == [201, 201, 201, 422, 422, 422, 201, 200, 422]
    delayed_job, held_job, plain_job = (results[index]["job"] for index in range(3))
    assert seconds_between(delayed_job["createdAt"], delayed_job["runAt"]) == pytest.approx(120, abs=0.01)
    assert held_job["runAt"] == later and plain_job["runAt"] is None
    assert results[3]["detail"].startswith("runAt: ") and "not both" in results[3]["detail"]
    assert results[4]["detail"].startswith("runAt: ") and results[5]["detail"].startswith("delaySeconds: ")
    assert results[7]["job"]["jobId"] == results[6]["job"]["jobId"]
    assert results[8]["error"] == "idempotency_key_reused"
    # One SendMessageBatch: the plain job visible, the two delayed ones hidden, the held one not sent.
    assert api.messages() == (visible + 1, delayed + 2)
    held = api.store.get(held_job["jobId"])
    assert held is not None and held.run_at is not None
    assert held.pending_since == held.run_at - timedelta(seconds=SQS_MAX_DELAY_S)


def test_cancel_while_waiting_drops_the_pending_marker(api: ScheduleApi) -> None:
    for schedule in ({"delaySeconds": 900}, {"runAt": iso(datetime.now(UTC) + timedelta(days=1))}):
        job = api.http.post(JOBS, json=body(**schedule)).json()
        canceled = api.http.post(f"{JOBS}/{job['jobId']}/cancel")
        assert canceled.status_code == 200 and canceled.json()["status"] == "CANCELED", canceled.text
        assert canceled.json()["runAt"] == job["runAt"]
        stored = api.store.get(job["jobId"])
        assert stored is not None and stored.pending_since is None  # the republisher will never publish it


def test_the_openapi_schema_documents_the_schedule(api: ScheduleApi) -> None:
    schema = api.http.get("/openapi.json").json()
    job_out = schema["components"]["schemas"]["JobOut"]
    assert "runAt" in job_out["properties"] and "runAt" in job_out["required"]
    submit = schema["paths"][JOBS]["post"]
    assert "never starts before `runAt`" in submit["description"]
    # The bodies are one variant per job type: each one takes a schedule.
    variants = submit["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    batch = schema["paths"][BATCH]["post"]["requestBody"]["content"]["application/json"]["schema"]
    variants += batch["properties"]["jobs"]["items"]["oneOf"]
    for variant in variants:
        properties = variant["properties"]
        assert {"runAt", "delaySeconds"} <= set(properties), variant["title"]
        assert properties["runAt"]["format"] == "date-time"
        assert properties["delaySeconds"]["anyOf"][0]["maximum"] == MAX_SCHEDULE_AHEAD_S
