"""Results stored apart, against the moto server over HTTP: the record keeps a reference, a write the record cannot
hold is refused as such (the job left as it was), and a presigned link downloads the object."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.adapters.s3_objects import S3ObjectStore, S3ResultLinks
from runtime.aws_clients import presigning_s3_client
from runtime.domain.job import JobStatus, ResultRef
from runtime.domain.ports import JobRecordRefused, ObjectWriteRefused
from runtime.settings import load_settings
from tests.adapters.resources import counted_client, create_jobs_table, raw_client, unique
from tests.adapters.test_dynamodb_store import T0, claim, make_job


@pytest.fixture(scope="module")
def table(moto_server: str) -> Iterator[str]:
    name = unique("results-jobs")
    create_jobs_table(moto_server, name)
    yield name


@pytest.fixture
def store(moto_server: str, table: str) -> DynamoDbJobStore:
    return DynamoDbJobStore(counted_client("dynamodb", moto_server), table)


def test_succeed_with_a_reference_keeps_it_and_no_result(store: DynamoDbJobStore) -> None:
    job = make_job()
    store.create(job)
    claim(store, job.job_id)
    ref = ResultRef(uri="s3://docs/tenants/acme/results/j.json", size=70_000, sha256="ab" * 32)
    assert store.succeed(job.job_id, attempt=1, result=None, result_ref=ref, now=T0 + timedelta(seconds=1))
    done = store.get(job.job_id)
    assert done is not None and done.status is JobStatus.SUCCEEDED
    assert done.result is None and done.result_ref == ref


def test_a_result_over_the_item_limit_is_refused_and_the_job_stays_as_it_was(store: DynamoDbJobStore) -> None:
    job = make_job()
    store.create(job)
    claim(store, job.job_id)
    with pytest.raises(JobRecordRefused):
        store.succeed(job.job_id, attempt=1, result={"text": "x" * 420_000}, now=T0 + timedelta(seconds=1))
    after = store.get(job.job_id)
    # Not "SUCCEEDED with no result": still the worker's, which can now record the outcome another way.
    assert after is not None and after.status is JobStatus.PROCESSING and after.result is None
    ref = ResultRef(uri="s3://docs/tenants/acme/results/j.json", size=420_012, sha256="cd" * 32)
    assert store.succeed(job.job_id, attempt=1, result=None, result_ref=ref, now=T0 + timedelta(seconds=2))


def test_a_presigned_link_downloads_the_object_over_http(moto_server: str) -> None:
    bucket = unique("results-docs")
    raw_client("s3", moto_server).create_bucket(Bucket=bucket)
    client = counted_client("s3", moto_server)
    uri = f"s3://{bucket}/tenants/acme/results/j.json"
    S3ObjectStore(client).put_bytes(uri, b'{"a":1}', content_type="application/json")
    settings = load_settings(
        table_name="t",
        access_table_name="a",
        queue_url="q",
        dead_letter_queue_url="d",
        documents_bucket=bucket,
        AWS_ENDPOINT_URL=moto_server,
    )
    links = S3ResultLinks(lambda: presigning_s3_client(settings), expires_s=120)
    url = links.url_for(ResultRef(uri=uri, size=7, sha256="0" * 64))
    assert "X-Amz-Expires=120" in url and "X-Amz-Signature=" in url
    with httpx.Client(timeout=10) as http:  # no credentials: the link alone
        answer = http.get(url)
    assert answer.status_code == 200 and answer.content == b'{"a":1}'


def test_a_put_the_store_refuses_for_good_is_told_apart(moto_server: str) -> None:
    bucket = unique("results-docs")
    s3 = raw_client("s3", moto_server)
    s3.create_bucket(Bucket=bucket)
    # Object Lock needs versioning: a put with a retention date on a bucket without it is refused (400).
    client = counted_client("s3", moto_server)
    client.meta.events.register(
        "before-parameter-build.s3.PutObject",
        lambda params, **_: params.update(ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate="2099-01-01"),
    )
    with pytest.raises(ObjectWriteRefused) as caught:
        S3ObjectStore(client).put_bytes(f"s3://{bucket}/tenants/acme/x.json", b"{}", content_type="application/json")
    assert caught.value.code
