"""Issue 11, defect 3: a result over the inline bound is stored apart under the tenant's prefix and the job shows a
reference; a result that cannot be kept fails the job (never SUCCEEDED with nothing)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from pydantic import BaseModel

from runtime.domain.backoff import Backoff, Jitter
from runtime.domain.job import Job, JobStatus
from runtime.domain.ports import ObjectNotFound, ObjectStoreUnavailable, ObjectWriteRefused
from runtime.domain.processing import Action, Decision, MessageProcessor, Outcome, ProcessingConfig
from runtime.domain.results import (
    MAX_INLINE_RESULT_BYTES,
    MAX_RESULT_BYTES,
    ResultNotJson,
    ResultTooLarge,
    encode_result,
    result_uri,
)
from runtime.job_types.confinement import Confinement
from runtime.job_types.registry import JobContext, JobType
from tests.unit.fakes import FakeClock, InMemoryJobStore, InMemoryObjects, make_job, received

BUCKET = "docs"
TENANT = "acme"


class SizeParams(BaseModel):
    size: int


def _sized(params: SizeParams, ctx: JobContext) -> dict[str, Any]:
    # A result of about `size` bytes of canonical JSON.
    return {"text": "x" * params.size}


def _not_json(params: SizeParams, ctx: JobContext) -> dict[str, Any]:
    return {"value": float("nan")}


TYPES = {name: JobType(name, SizeParams, handler, name) for name, handler in (("sized", _sized), ("nan", _not_json))}


def run(
    size: int, *, job_type: str = "sized", store: InMemoryJobStore | None = None, objects: InMemoryObjects | None = None
) -> tuple[Decision, Job, InMemoryObjects]:
    store = store or InMemoryJobStore()
    objects = objects if objects is not None else InMemoryObjects()
    store.create(make_job(job_type=job_type, params={"size": size}, tenant=TENANT))
    decision = MessageProcessor(
        store=store,
        objects=objects,
        confinement=Confinement(BUCKET),
        config=ProcessingConfig(visibility_timeout_s=30, max_attempts=3),
        backoff=Backoff(2.0, 300.0, Jitter.EQUAL, rand=lambda: 0.5),
        clock=FakeClock(),
        job_types=TYPES.get,
    ).process(received())
    return decision, store.jobs["job-1"], objects


def test_encoding_is_canonical_and_bounded() -> None:
    assert encode_result({"b": 1, "a": "é"}).data == '{"a":"é","b":1}'.encode()
    with pytest.raises(ResultTooLarge):
        encode_result({"text": "x" * 200}, limit=100)
    with pytest.raises(ResultNotJson):
        encode_result({"value": float("inf")})
    with pytest.raises(ResultNotJson):
        encode_result({"value": object()})


def test_the_result_uri_is_under_the_tenants_prefix() -> None:
    assert result_uri(BUCKET, TENANT, "j-1") == "s3://docs/tenants/acme/results/j-1.json"
    assert Confinement(BUCKET).uri_problem(result_uri(BUCKET, TENANT, "j-1"), TENANT) is None


def test_a_small_result_stays_inline() -> None:
    decision, job, objects = run(100)
    assert decision.outcome is Outcome.SUCCEEDED
    assert job.result == {"text": "x" * 100} and job.result_ref is None and not objects.objects


def test_a_large_result_is_stored_apart_and_referenced() -> None:
    decision, job, objects = run(MAX_INLINE_RESULT_BYTES + 1)
    assert (decision.action, decision.outcome) == (Action.DELETE, Outcome.SUCCEEDED)
    assert job.status is JobStatus.SUCCEEDED and job.result is None and job.result_ref is not None
    uri = result_uri(BUCKET, TENANT, "job-1")
    data = objects.objects[uri]
    assert json.loads(data) == {"text": "x" * (MAX_INLINE_RESULT_BYTES + 1)}
    assert job.result_ref.uri == uri and job.result_ref.size == len(data)
    assert job.result_ref.sha256 == hashlib.sha256(data).hexdigest()
    assert objects.content_types[uri] == "application/json"


def test_a_result_the_record_refuses_inline_is_stored_apart() -> None:
    store = InMemoryJobStore()
    store.record_limit = 1_000  # params and result together: the inline 2,000-byte result does not fit
    decision, job, objects = run(2_000, store=store)
    assert decision.outcome is Outcome.SUCCEEDED and job.result is None and job.result_ref is not None
    assert list(objects.objects) == [result_uri(BUCKET, TENANT, "job-1")]


def test_a_record_that_cannot_even_hold_the_reference_fails_the_job_for_good() -> None:
    store = InMemoryJobStore()
    store.record_limit = 10
    decision, job, _ = run(2_000, store=store)
    assert (decision.action, decision.outcome) == (Action.DELETE, Outcome.FAILED_FINAL)
    assert job.status is JobStatus.FAILED_FINAL and job.result is None and job.result_ref is None
    assert job.error is not None and job.error.code == "result_not_stored" and job.error.permanent


def test_a_result_over_the_hard_bound_fails_the_job_for_good() -> None:
    decision, job, objects = run(MAX_RESULT_BYTES + 1)
    assert decision.outcome is Outcome.FAILED_FINAL and not objects.objects
    assert job.error is not None and job.error.code == "result_too_large"
    assert str(MAX_RESULT_BYTES) in job.error.message


def test_a_result_json_cannot_carry_fails_the_job_for_good() -> None:
    decision, job, _ = run(1, job_type="nan")
    assert decision.outcome is Outcome.FAILED_FINAL
    assert job.error is not None and job.error.code == "bad_handler_result"
    assert decision.error_detail  # the encoder's own words go to the logs, not to the job


@pytest.mark.parametrize(
    "failure", [ObjectWriteRefused("s3://docs/x", "AccessDenied"), ObjectNotFound("s3://docs/x")], ids=str
)
def test_a_refused_put_fails_the_job_for_good_with_a_safe_message(failure: Exception) -> None:
    objects = InMemoryObjects()
    objects.put_failure = failure
    decision, job, _ = run(MAX_INLINE_RESULT_BYTES + 1, objects=objects)
    assert decision.outcome is Outcome.FAILED_FINAL and job.status is JobStatus.FAILED_FINAL
    assert job.error is not None and job.error.code == "result_not_stored" and job.error.permanent
    assert "AccessDenied" not in job.error.message and "s3://" not in job.error.message


def test_an_unanswered_put_fails_the_attempt_and_is_retried() -> None:
    objects = InMemoryObjects()
    objects.put_failure = ObjectStoreUnavailable("s3 put_object failed: 503")
    decision, job, _ = run(MAX_INLINE_RESULT_BYTES + 1, objects=objects)
    assert (decision.action, decision.outcome) == (Action.RETRY, Outcome.FAILED)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error.code == "result_store_unavailable" and not job.error.permanent
