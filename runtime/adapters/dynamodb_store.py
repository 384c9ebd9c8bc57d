"""JobStore on DynamoDB: compact items, every status change a conditional update on the expected prior state,
reads strongly consistent. Uses the low-level client with a small hand-written attribute codec (fast)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from runtime.domain.job import Job, JobError, JobStatus, Priority
from runtime.domain.ports import ClaimOutcome, CreateOutcome, JobStoreUnavailable

IDEMPOTENCY_INDEX = "by-idempotency-key"
PENDING_INDEX = "pending-by-age"
# The sweep reads every shard each round (one Query each): four keep that cheap and still allow about
# 4,000 PENDING writes/s (1,000 per GSI key value).
PENDING_SHARDS = 4

_NON_TERMINAL = (JobStatus.PENDING.value, JobStatus.PROCESSING.value, JobStatus.FAILED.value)
# Errors that mean "the store is not answering" rather than "we sent a bad request".
_UNAVAILABLE_CODES = frozenset(
    {
        "ResourceNotFoundException",  # the table is missing: not ready
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
        "TransactionInProgressException",
    }
)


# -- attribute codec ------------------------------------------------------------------------------------------


def to_attr(value: Any) -> dict[str, Any]:
    """A JSON value as a DynamoDB attribute value."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | Decimal):
        return {"N": str(value)}
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"not a finite number: {value!r}")
        return {"N": repr(value)}
    if isinstance(value, dict):
        return {"M": {str(k): to_attr(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_attr(v) for v in value]}
    raise TypeError(f"cannot store a {type(value).__name__}: {value!r}")


def from_attr(attr: dict[str, Any]) -> Any:
    (kind, value), = attr.items()
    if kind == "S":
        return value
    if kind == "N":
        return _number(value)
    if kind == "M":
        return {k: from_attr(v) for k, v in value.items()}
    if kind == "L":
        return [from_attr(v) for v in value]
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind in ("SS",):
        return sorted(value)
    if kind in ("NS",):
        return sorted(_number(v) for v in value)
    raise ValueError(f"unsupported attribute type: {kind}")


def _number(text: str) -> int | float:
    # Integers stay ints; anything written with a fraction or exponent came from a float.
    if "." in text or "e" in text or "E" in text:
        return float(text)
    return int(text)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_epoch_ms(value: int | float) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def pending_shard(job_id: str) -> str:
    return str(zlib.crc32(job_id.encode("utf-8")) % PENDING_SHARDS)


def job_to_item(job: Job) -> dict[str, Any]:
    """The compact item (names as in the design); empty and absent values are left out."""
    item: dict[str, Any] = {
        "jobId": {"S": job.job_id},
        "status": {"S": job.status.value},
        "jobType": {"S": job.job_type},
        "priority": {"S": job.priority.value},
        "params": to_attr(job.params),
        "createdAt": {"S": iso(job.created_at)},
        "updatedAt": {"S": iso(job.updated_at)},
        "traceId": {"S": job.trace_id},
        "fingerprint": {"S": job.fingerprint},
        "attempts": {"N": str(job.attempts)},
    }
    if job.metadata:
        item["metadata"] = to_attr(job.metadata)
    if job.result is not None:
        item["result"] = to_attr(job.result)
    if job.error is not None:
        item["error"] = _error_attr(job.error)
    if job.idempotency_key is not None:
        item["idempotencyKey"] = {"S": job.idempotency_key}
    if job.transitions:
        item["transitions"] = {"M": {k: {"S": iso(v)} for k, v in job.transitions.items()}}
    if job.lease_expires_at is not None:
        item["leaseExpiresAt"] = {"N": str(epoch_ms(job.lease_expires_at))}
    if job.pending_since is not None:
        item["pendingShard"] = {"S": pending_shard(job.job_id)}
        item["pendingSince"] = {"N": str(epoch_ms(job.pending_since))}
    if job.expires_at is not None:
        item["expiresAt"] = {"N": str(job.expires_at)}
    if job.key_generation:
        item["keyGeneration"] = {"N": str(job.key_generation)}
    if job.retry_base:
        item["retryBase"] = {"N": str(job.retry_base)}
    return item


def _error_attr(error: JobError) -> dict[str, Any]:
    return {"M": {"code": {"S": error.code}, "message": {"S": error.message}, "permanent": {"BOOL": error.permanent}}}


def item_to_job(item: dict[str, Any]) -> Job:
    def text(name: str) -> str | None:
        attr = item.get(name)
        return None if attr is None else str(attr["S"])

    def number(name: str) -> int | None:
        attr = item.get(name)
        return None if attr is None else int(Decimal(attr["N"]))

    error = None
    if "error" in item:
        raw = from_attr(item["error"])
        error = JobError(code=str(raw.get("code", "")), message=str(raw.get("message", "")),
                         permanent=bool(raw.get("permanent", False)))
    lease = number("leaseExpiresAt")
    pending = number("pendingSince")
    transitions = item.get("transitions")
    return Job(
        job_id=item["jobId"]["S"],
        status=JobStatus(item["status"]["S"]),
        job_type=item["jobType"]["S"],
        priority=Priority(item["priority"]["S"]),
        params=from_attr(item["params"]) if "params" in item else {},
        metadata=from_attr(item["metadata"]) if "metadata" in item else {},
        created_at=parse_iso(item["createdAt"]["S"]),
        updated_at=parse_iso(item["updatedAt"]["S"]),
        trace_id=text("traceId") or "",
        fingerprint=text("fingerprint") or "",
        attempts=number("attempts") or 0,
        result=from_attr(item["result"]) if "result" in item else None,
        error=error,
        idempotency_key=text("idempotencyKey"),
        transitions={k: parse_iso(v["S"]) for k, v in transitions["M"].items()} if transitions else {},
        lease_expires_at=from_epoch_ms(lease) if lease is not None else None,
        pending_since=from_epoch_ms(pending) if pending is not None else None,
        expires_at=number("expiresAt"),
        key_generation=number("keyGeneration") or 0,
        retry_base=number("retryBase") or 0,
    )


# -- the store ------------------------------------------------------------------------------------------------


class DynamoDbJobStore:
    """JobStore over one table (partition key jobId) with the sparse GSIs `by-idempotency-key` and
    `pending-by-age`. `client` is a boto3 DynamoDB client (built once per process)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def create(self, job: Job) -> CreateOutcome:
        item = job_to_item(job)
        for _ in range(3):
            try:
                self._call(
                    "put_item",
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(jobId)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return CreateOutcome(created=True, job=job)
            except ClientError as exc:
                if not _condition_failed(exc):
                    raise
                old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
                existing = item_to_job(old) if old else self.get(job.job_id)
                if existing is not None:
                    return CreateOutcome(created=False, job=existing)
                # It existed at the put and was gone at the read (TTL deletion): put again.
        raise JobStoreUnavailable(f"job {job.job_id} kept appearing and disappearing")

    def get(self, job_id: str) -> Job | None:
        response = self._call("get_item", TableName=self._table, Key=_key(job_id), ConsistentRead=True)
        item = response.get("Item")
        return item_to_job(item) if item else None

    def claim(self, job_id: str, *, now: datetime, lease_until: datetime) -> ClaimOutcome:
        try:
            response = self._call(
                "update_item",
                TableName=self._table,
                Key=_key(job_id),
                UpdateExpression=(
                    "SET #s = :processing, attempts = if_not_exists(attempts, :zero) + :one, "
                    "leaseExpiresAt = :lease, updatedAt = :now, transitions.#processing = :now "
                    "REMOVE pendingShard, pendingSince"
                ),
                ConditionExpression=(
                    "#s IN (:pending, :failed) OR (#s = :processing AND leaseExpiresAt < :now_ms)"
                ),
                ExpressionAttributeNames={"#s": "status", "#processing": JobStatus.PROCESSING.value},
                ExpressionAttributeValues={
                    ":processing": {"S": JobStatus.PROCESSING.value},
                    ":pending": {"S": JobStatus.PENDING.value},
                    ":failed": {"S": JobStatus.FAILED.value},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":lease": {"N": str(epoch_ms(lease_until))},
                    ":now": {"S": iso(now)},
                    ":now_ms": {"N": str(epoch_ms(now))},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            return ClaimOutcome(claimed=False, job=item_to_job(old) if old else self.get(job_id))
        return ClaimOutcome(claimed=True, job=item_to_job(response["Attributes"]))

    def extend_lease(self, job_id: str, *, attempt: int, lease_until: datetime) -> bool:
        return self._conditional_update(
            job_id,
            update="SET leaseExpiresAt = :lease",
            condition="#s = :processing AND attempts = :attempt",
            names={"#s": "status"},
            values={
                ":lease": {"N": str(epoch_ms(lease_until))},
                ":processing": {"S": JobStatus.PROCESSING.value},
                ":attempt": {"N": str(attempt)},
            },
        ) is not None

    def succeed(self, job_id: str, *, attempt: int, result: dict[str, Any], now: datetime) -> bool:
        return self._finish(job_id, attempt=attempt, status=JobStatus.SUCCEEDED, now=now,
                            set_extra="#r = :result", extra_values={":result": to_attr(result)},
                            extra_names={"#r": "result"}, remove_extra=", #e", remove_names={"#e": "error"})

    def fail(self, job_id: str, *, attempt: int, error: JobError, final: bool, now: datetime) -> bool:
        status = JobStatus.FAILED_FINAL if final else JobStatus.FAILED
        return self._finish(job_id, attempt=attempt, status=status, now=now, set_extra="#e = :error",
                            extra_values={":error": _error_attr(error)}, extra_names={"#e": "error"})

    def _finish(
        self,
        job_id: str,
        *,
        attempt: int,
        status: JobStatus,
        now: datetime,
        set_extra: str,
        extra_values: dict[str, Any],
        extra_names: dict[str, str],
        remove_extra: str = "",
        remove_names: dict[str, str] | None = None,
    ) -> bool:
        return self._conditional_update(
            job_id,
            update=(f"SET #s = :status, updatedAt = :now, transitions.#to = :now, {set_extra} "
                    f"REMOVE leaseExpiresAt{remove_extra}"),
            condition="#s = :processing AND attempts = :attempt",
            names={"#s": "status", "#to": status.value, **extra_names, **(remove_names or {})},
            values={
                ":status": {"S": status.value},
                ":now": {"S": iso(now)},
                ":processing": {"S": JobStatus.PROCESSING.value},
                ":attempt": {"N": str(attempt)},
                **extra_values,
            },
        ) is not None

    def fail_final(self, job_id: str, *, error: JobError, now: datetime) -> Job | None:
        attributes = self._conditional_update(
            job_id,
            update=("SET #s = :final, #e = :error, updatedAt = :now, transitions.#final = :now "
                    "REMOVE leaseExpiresAt, pendingShard, pendingSince"),
            # A PROCESSING job under a live lease belongs to a running worker: it decides the outcome.
            condition="#s IN (:pending, :failed) OR (#s = :processing AND leaseExpiresAt < :now_ms)",
            names={"#s": "status", "#e": "error", "#final": JobStatus.FAILED_FINAL.value},
            values={
                ":final": {"S": JobStatus.FAILED_FINAL.value},
                ":error": _error_attr(error),
                ":now": {"S": iso(now)},
                ":now_ms": {"N": str(epoch_ms(now))},
                ":pending": {"S": _NON_TERMINAL[0]},
                ":processing": {"S": _NON_TERMINAL[1]},
                ":failed": {"S": _NON_TERMINAL[2]},
            },
            return_new=True,
        )
        return item_to_job(attributes) if attributes is not None else None

    def requeue(self, job_id: str, *, now: datetime) -> Job | None:
        # attempts stays monotonic: conditions on "attempts = mine" must never match a stale worker again.
        attributes = self._conditional_update(
            job_id,
            update=("SET #s = :pending, updatedAt = :now, transitions.#pending = :now, "
                    "pendingShard = :shard, pendingSince = :since, retryBase = attempts REMOVE #e, leaseExpiresAt"),
            condition="#s = :final",
            names={"#s": "status", "#e": "error", "#pending": JobStatus.PENDING.value},
            values={
                ":pending": {"S": JobStatus.PENDING.value},
                ":final": {"S": JobStatus.FAILED_FINAL.value},
                ":now": {"S": iso(now)},
                ":shard": {"S": pending_shard(job_id)},
                ":since": {"N": str(epoch_ms(now))},
            },
            return_new=True,
        )
        return item_to_job(attributes) if attributes is not None else None

    def mark_republished(self, job_id: str, *, expected_pending_since: datetime, now: datetime) -> bool:
        return self._conditional_update(
            job_id,
            update="SET pendingSince = :now_ms",
            condition="#s = :pending AND pendingSince = :expected",
            names={"#s": "status"},
            values={
                ":now_ms": {"N": str(epoch_ms(now))},
                ":pending": {"S": JobStatus.PENDING.value},
                ":expected": {"N": str(epoch_ms(expected_pending_since))},
            },
        ) is not None

    def stuck_pending(self, *, older_than: datetime, limit: int) -> Sequence[Job]:
        """Reads the sparse index shard by shard, then the full items (consistent batch read), keeping the
        ones still PENDING with a marker older than `older_than` (the index is eventually consistent)."""
        if limit <= 0:
            return []
        threshold = str(epoch_ms(older_than))
        job_ids: list[str] = []
        for shard in range(PENDING_SHARDS):
            start_key: dict[str, Any] | None = None
            while len(job_ids) < limit:
                kwargs: dict[str, Any] = {
                    "TableName": self._table,
                    "IndexName": PENDING_INDEX,
                    "KeyConditionExpression": "pendingShard = :shard AND pendingSince < :threshold",
                    "ExpressionAttributeValues": {":shard": {"S": str(shard)}, ":threshold": {"N": threshold}},
                    "ProjectionExpression": "jobId",
                    "Limit": limit - len(job_ids),
                }
                if start_key:
                    kwargs["ExclusiveStartKey"] = start_key
                response = self._call("query", **kwargs)
                job_ids.extend(item["jobId"]["S"] for item in response.get("Items", []))
                start_key = response.get("LastEvaluatedKey")
                if not start_key:
                    break
            if len(job_ids) >= limit:
                break
        jobs = self._batch_get(job_ids)
        stuck = [
            job for job in jobs
            if job.status == JobStatus.PENDING and job.pending_since is not None and job.pending_since < older_than
        ]
        return sorted(stuck, key=lambda job: job.pending_since or job.created_at)

    def _batch_get(self, job_ids: Sequence[str]) -> list[Job]:
        jobs: list[Job] = []
        for start in range(0, len(job_ids), 100):
            keys: list[dict[str, Any]] = [_key(job_id) for job_id in dict.fromkeys(job_ids[start:start + 100])]
            for _ in range(10):
                if not keys:
                    break
                response = self._call(
                    "batch_get_item", RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
                )
                jobs.extend(item_to_job(item) for item in response.get("Responses", {}).get(self._table, []))
                keys = response.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", [])
        return jobs

    def advance_key_generation(self, head_job_id: str, *, expected: int, new: int, keep_until: int) -> bool:
        condition = "attribute_exists(jobId) AND "
        condition += "(attribute_not_exists(keyGeneration) OR keyGeneration = :expected)" if expected == 0 \
            else "keyGeneration = :expected"
        return self._conditional_update(
            head_job_id,
            update="SET keyGeneration = :new, expiresAt = :keep",
            condition=condition,
            names=None,
            values={":new": {"N": str(new)}, ":expected": {"N": str(expected)}, ":keep": {"N": str(keep_until)}},
        ) is not None

    def find_by_idempotency_key(self, idempotency_key: str) -> Sequence[str]:
        job_ids: list[str] = []
        start_key: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": IDEMPOTENCY_INDEX,
                "KeyConditionExpression": "idempotencyKey = :key",
                "ExpressionAttributeValues": {":key": {"S": idempotency_key}},
            }
            if start_key:
                kwargs["ExclusiveStartKey"] = start_key
            response = self._call("query", **kwargs)
            job_ids.extend(item["jobId"]["S"] for item in response.get("Items", []))
            start_key = response.get("LastEvaluatedKey")
            if not start_key:
                return job_ids

    def ping(self) -> None:
        self._call("describe_table", TableName=self._table)

    # -- helpers --------------------------------------------------------------------------------------------

    def _conditional_update(
        self,
        job_id: str,
        *,
        update: str,
        condition: str,
        names: dict[str, str] | None,
        values: dict[str, Any],
        return_new: bool = False,
    ) -> dict[str, Any] | None:
        """The item after the update (or {} when not asked for), None when the condition failed."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": _key(job_id),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW" if return_new else "NONE",
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            response = self._call("update_item", **kwargs)
        except ClientError as exc:
            if _condition_failed(exc):
                return None
            raise
        return dict(response.get("Attributes", {})) if return_new else {}

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return dict(getattr(self._client, operation)(**kwargs))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in _UNAVAILABLE_CODES or status >= 500:
                raise JobStoreUnavailable(f"dynamodb {operation} failed: {code or status}") from exc
            raise
        except BotoCoreError as exc:
            raise JobStoreUnavailable(f"dynamodb {operation} failed: {exc}") from exc


def _key(job_id: str) -> dict[str, Any]:
    return {"jobId": {"S": job_id}}


def _condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
