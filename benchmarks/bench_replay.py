"""The emulator's ceiling for our exact per-job calls: one process replays, as fast as the emulator answers,
the requests the system makes for a quick job (conditional put, batched send, batched receive, the lazy claim's
consistent batched read of the received jobs, the job's S3 read and write, the one conditional completion from
PENDING, batched delete), behind a backlog as deep as the burst's. The end-to-end figure divided by this is the
share of the emulator's capacity we reach."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.bench_emulator import aws_client, run_bounded, scratch
from runtime.adapters.dynamodb.codec import key
from runtime.adapters.dynamodb.schema import TABLE_KEY, Attr

REPLAY_THREADS = 4
REPLAY_MAX_JOBS = 400
REPLAY_MAX_S = 8.0
BATCH = 10


@dataclass(frozen=True)
class Replay:
    jobs: int
    wall_s: float
    backlog: int
    requests_per_job: float  # emulator requests per job in the replay, S3 job work included

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.wall_s


def measure_replay(endpoint_url: str, backlog: int = 0) -> Replay:
    dynamodb, sqs, suffix, table, queue_url = scratch(endpoint_url, "bench-replay")
    s3 = aws_client("s3", endpoint_url)
    bucket = table
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in/source.txt", Body=b"small document\nfor the replay\n")
    for start in range(0, backlog, BATCH):
        entries = [
            {"Id": str(n), "MessageBody": '{"jobId":"backlog"}', "DelaySeconds": 900}
            for n in range(min(BATCH, backlog - start))
        ]
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)  # delayed: deep, but never received

    def one_batch(index: int) -> None:
        ids = [f"{suffix}-{index}-{n}" for n in range(BATCH)]
        for job_id in ids:
            dynamodb.put_item(
                TableName=table,
                Item={
                    TABLE_KEY.name: {"S": job_id},
                    Attr.STATUS: {"S": "PENDING"},
                    Attr.ATTEMPTS: {"N": "0"},
                    Attr.PARAMS: {"M": {"source": {"S": f"s3://{bucket}/in/source.txt"}}},
                },
                ConditionExpression=f"attribute_not_exists({TABLE_KEY.name})",
            )
        sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(n), "MessageBody": f'{{"jobId":"{job_id}"}}'} for n, job_id in enumerate(ids)],
        )
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=BATCH, WaitTimeSeconds=1)
        dynamodb.batch_get_item(RequestItems={table: {"Keys": [key(job_id) for job_id in ids], "ConsistentRead": True}})
        for job_id in ids:
            body = s3.get_object(Bucket=bucket, Key="in/source.txt")["Body"].read()
            s3.put_object(Bucket=bucket, Key=f"out/{job_id}.json", Body=b'{"size": %d}' % len(body))
            dynamodb.update_item(
                TableName=table,
                Key=key(job_id),
                UpdateExpression=f"SET #s = :done, #r = :result, {Attr.ATTEMPTS} = :one",
                ConditionExpression=f"#s = :pending AND {Attr.ATTEMPTS} = :zero",
                ExpressionAttributeNames={"#s": Attr.STATUS, "#r": Attr.RESULT},
                ExpressionAttributeValues={
                    ":done": {"S": "SUCCEEDED"},
                    ":pending": {"S": "PENDING"},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":result": {"M": {"size": {"N": str(len(body))}}},
                },
            )
        handles = [message["ReceiptHandle"] for message in received.get("Messages", [])]
        if handles:
            sqs.delete_message_batch(
                QueueUrl=queue_url, Entries=[{"Id": str(n), "ReceiptHandle": h} for n, h in enumerate(handles)]
            )

    try:
        jobs, wall = _replay_batches(one_batch)
    finally:
        _cleanup(dynamodb, sqs, s3, table, queue_url, bucket)
    # per job: put, get, put object, completion = 4; per ten: send batch, receive, read, delete batch = 0.4
    return Replay(jobs=jobs, wall_s=wall, backlog=backlog, requests_per_job=4.4)


def _replay_batches(one_batch: Callable[[int], None]) -> tuple[int, float]:
    """Runs batches of BATCH jobs on REPLAY_THREADS threads, bounded by REPLAY_MAX_JOBS and REPLAY_MAX_S;
    returns the jobs done and the wall time."""
    batches, wall, _ = run_bounded(one_batch, REPLAY_THREADS, REPLAY_MAX_JOBS // BATCH, REPLAY_MAX_S)
    return batches * BATCH, wall


def _cleanup(dynamodb: Any, sqs: Any, s3: Any, table: str, queue_url: str, bucket: str) -> None:
    dynamodb.delete_table(TableName=table)
    sqs.delete_queue(QueueUrl=queue_url)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
    s3.delete_bucket(Bucket=bucket)


def measure_submit_replay(endpoint_url: str) -> float:
    """POSTs per second the emulator serves for exactly the submit path's calls (the job item as the API
    writes it, with the conditional put, into a table with the design's two indexes, and one
    SendMessageBatch per ten jobs), replayed by REPLAY_THREADS threads of one process with no HTTP in front."""
    from datetime import UTC, datetime

    from runtime.adapters.dynamodb.codec import job_to_item
    from runtime.domain.job import Job, JobStatus, Priority
    from tests.adapters.resources import create_jobs_table

    dynamodb, sqs, suffix, table, queue_url = scratch(
        endpoint_url, "bench-submit", lambda _client, name: create_jobs_table(endpoint_url, name)
    )

    def one_batch(index: int) -> None:
        now = datetime.now(UTC)
        ids = [str(uuid.uuid4()) for _ in range(BATCH)]
        for job_id in ids:
            job = Job(
                job_id=job_id,
                status=JobStatus.PENDING,
                job_type="process_document",
                priority=Priority.NORMAL,
                params={"source": f"s3://bench-bucket/in/{index}.txt", "destination": f"s3://bench-bucket/out/{index}"},
                metadata={},
                created_at=now,
                updated_at=now,
                trace_id=f"1-{suffix}-{uuid.uuid4().hex[:24]}",
                fingerprint="f" * 64,
                transitions={"PENDING": now},
                pending_since=now,
                expires_at=int(now.timestamp()) + 30 * 86_400,
            )
            dynamodb.put_item(
                TableName=table,
                Item=job_to_item(job),
                ConditionExpression=f"attribute_not_exists({TABLE_KEY.name})",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(n), "MessageBody": f'{{"jobId":"{job_id}"}}'} for n, job_id in enumerate(ids)],
        )

    try:
        jobs, wall = _replay_batches(one_batch)
    finally:
        dynamodb.delete_table(TableName=table)
        sqs.delete_queue(QueueUrl=queue_url)
    return jobs / wall
