"""JobStore on DynamoDB: compact items, every status change a conditional update on the expected prior state,
reads strongly consistent.

The expected prior states come from the domain's state machine (`runtime.domain.job.ALLOWED_TRANSITIONS`):
a write that moves a job to a status accepts exactly the statuses allowed to move there, PROCESSING only once
its lease expired (a worker holding a live lease decides the outcome itself). A worker's own writes (lease
renewal, its verdict) are conditioned on owning the job: PROCESSING under the worker's attempt number.
A cancel takes only the statuses that may move to CANCELED without a worker (PENDING, FAILED); a PROCESSING job
gets the cancelRequested flag instead, which its worker reads back with each lease renewal.
Every status change carries the status-change marker and every other update removes it (schema.py, "Status
events"): `status_change` and `_conditional_update` do both, so a new update written through them keeps the
table's status events right.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from runtime.adapters.aws_errors import DYNAMODB_UNAVAILABLE_CODES, condition_failed, error_code, outages_as
from runtime.adapters.dynamodb.codec import (
    AttributeValue,
    ItemIn,
    epoch_ms,
    error_attr,
    item_to_job,
    job_to_item,
    key,
    pending_shard,
    progress_attr,
    result_ref_attr,
    tenant_status,
    tenant_type,
    to_attr,
)
from runtime.adapters.dynamodb.schema import (
    CALLBACK_OUTBOX_INDEX,
    IDEMPOTENCY_INDEX,
    PENDING_INDEX,
    PENDING_SHARDS,
    STATUS_CHANGE_MARKER,
    TABLE_KEY,
    TENANT_INDEX,
    TENANT_STATUS_INDEX,
    TENANT_TYPE_INDEX,
    Attr,
    CallbackAttr,
)
from runtime.domain.callbacks import CallbackState
from runtime.domain.job import Job, JobError, JobStatus, Progress, ResultRef, check_transition, prior_statuses
from runtime.domain.ports import (
    ClaimOutcome,
    CreateOutcome,
    DueCallback,
    JobPage,
    JobRecordRefused,
    JobStoreUnavailable,
    LeaseState,
    ListFilter,
)
from runtime.domain.stats import FINISHED_STATUSES, FinishedCount
from runtime.domain.times import iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_UNAVAILABLE_CODES = DYNAMODB_UNAVAILABLE_CODES | {"TransactionInProgressException"}
# Reserved words in DynamoDB expressions, always written through these placeholders.
_NAMES = {"#s": Attr.STATUS, "#e": Attr.ERROR, "#r": Attr.RESULT, "#p": Attr.PROGRESS}
# What a job leaving both the queue and any worker drops: its lease and its pending marker.
_LEASE_AND_PENDING = f"{Attr.LEASE_EXPIRES_AT}, {Attr.PENDING_SHARD}, {Attr.PENDING_SINCE}"
_BATCH_GET_LIMIT = 100  # keys per BatchGetItem
# `get_many` (the worker's read before it runs a job unclaimed) asks for unprocessed keys again at most this often in
# all, pausing 50 ms, then 100 ms: what stays unanswered is claimed first instead, so it never waits long.
_GET_MANY_TRIES = 3
_GET_MANY_PAUSE_S = 0.05
# What DynamoDB answers to a write it cannot apply to the item (over 400 KB, a number out of range).
_VALIDATION_ERROR = "ValidationException"
# Queries one listed page may take when a filter drops items (or a Query stops at 1 MB): a bound on its cost.
_LIST_QUERIES = 3


def entry_condition(target: JobStatus, values: dict[str, AttributeValue], *, take_expired: bool = True) -> str:
    """The condition of a write moving a job to `target` (adds its placeholders to `values`): its status is one
    allowed to move there, PROCESSING only with an expired lease (`:now_ms` must be in `values`), or never when
    not `take_expired` (a write that does not take jobs over from workers)."""
    priors = [status for status in prior_statuses(target) if take_expired or status is not JobStatus.PROCESSING]
    free = [status for status in priors if status is not JobStatus.PROCESSING]
    parts: list[str] = []
    if free:
        for status in free:
            values[f":was_{status.value.lower()}"] = {"S": status.value}
        parts.append(f"#s IN ({', '.join(f':was_{status.value.lower()}' for status in free)})")
    if JobStatus.PROCESSING in priors:
        values[":was_processing"] = {"S": JobStatus.PROCESSING.value}
        parts.append(f"(#s = :was_processing AND {Attr.LEASE_EXPIRES_AT} < :now_ms)")
    if not parts:
        raise ValueError(f"no status may move to {target}")
    return " OR ".join(parts)


def status_key_update(target: JobStatus, names: dict[str, str], values: dict[str, AttributeValue]) -> str:
    """The SET clause every status change carries (adds its placeholders): `tenantStatus` becomes the item's own
    "<tenant>#<target>" from `statusKeys`, so the status listing index follows without knowing the tenant.
    An item written before the listing indexes has no `statusKeys` and gets a key no tenant owns (it has no
    `createdKey` either, so no listing index holds it)."""
    names["#status_keys_to"] = target.value
    values[":no_status_key"] = {"S": tenant_status("", target)}
    return f"{Attr.TENANT_STATUS} = if_not_exists({Attr.STATUS_KEYS}.#status_keys_to, :no_status_key)"


def status_change(target: JobStatus, now: datetime, names: dict[str, str], values: dict[str, AttributeValue]) -> str:
    """The SET clauses every status change carries (adds their placeholders): the status-change marker (the
    status left, read before this update changes it), the status itself, `updatedAt`, the target's entry in
    `transitions`, all at `now`, and the listing key (`status_key_update`)."""
    names["#s"] = Attr.STATUS
    names["#to"] = target.value
    values[":to"] = {"S": target.value}
    values[":now"] = {"S": iso(now)}
    status_key = status_key_update(target, names, values)
    # The marker first: DynamoDB reads every operand before the update, and so does an emulator that applies
    # the actions in order.
    marker = f"{Attr.PREVIOUS_STATUS} = #s, {Attr.STATUS_CHANGED_AT} = :now"
    return f"{marker}, #s = :to, {Attr.UPDATED_AT} = :now, {Attr.TRANSITIONS}.#to = :now, {status_key}"


def without_status_marker(update: str) -> str:
    """`update` (an update expression that is no status change) also REMOVEs the status-change marker, so the
    stream record it causes is not published as a status change."""
    marker = ", ".join(STATUS_CHANGE_MARKER)
    if " REMOVE " in f" {update} ":
        return update.replace("REMOVE ", f"REMOVE {marker}, ", 1)
    return f"{update} REMOVE {marker}"


def callback_due_update(job_id: str, now: datetime, names: dict[str, str], values: dict[str, AttributeValue]) -> str:
    """The SET clause a terminal write of a job with a callback carries (adds its placeholders): the job enters the
    callback outbox (sparse index) due at `now`, and its callback starts over as pending with no attempts. The
    caller also removes `CALLBACK_LAST_CODE` (a REMOVE clause of its own)."""
    names.update({"#cb": Attr.CALLBACK, "#cb_state": CallbackAttr.STATE, "#cb_attempts": CallbackAttr.ATTEMPTS})
    names["#cb_code"] = CallbackAttr.LAST_STATUS_CODE
    values[":cb_shard"] = {"S": pending_shard(job_id)}
    values[":cb_due"] = {"N": str(epoch_ms(now))}
    values[":cb_pending"] = {"S": CallbackState.PENDING.value}
    values[":cb_zero"] = {"N": "0"}
    return (
        f"{Attr.CALLBACK_SHARD} = :cb_shard, {Attr.CALLBACK_DUE_AT} = :cb_due, "
        "#cb.#cb_state = :cb_pending, #cb.#cb_attempts = :cb_zero"
    )


# What callback_due_update's write removes: the last attempt's answer code of an earlier event.
CALLBACK_LAST_CODE = "#cb.#cb_code"


def owner_condition(target: JobStatus, values: dict[str, AttributeValue], attempt: int) -> str:
    """The condition of a worker's write moving its job to `target`: the job is PROCESSING under `attempt`."""
    check_transition(JobStatus.PROCESSING, target)
    values[":was_processing"] = {"S": JobStatus.PROCESSING.value}
    values[":attempt"] = {"N": str(attempt)}
    return f"#s = :was_processing AND {Attr.ATTEMPTS} = :attempt"


def unclaimed_condition(target: JobStatus, values: dict[str, AttributeValue], attempt: int) -> str:
    """The condition of the outcome write of an attempt run unclaimed (runtime/domain/lazy_claim.py) moving its job
    to `target`: the job is still PENDING with the attempts before this one, and due (`:now_ms` must be in
    `values`). A PENDING job has no lease and no cancel request (a cancel ends it at once)."""
    check_transition(JobStatus.PENDING, JobStatus.PROCESSING)
    check_transition(JobStatus.PROCESSING, target)
    values[":was_pending"] = {"S": JobStatus.PENDING.value}
    values[":prior"] = {"N": str(attempt - 1)}
    values[":attempt"] = {"N": str(attempt)}
    return (
        f"#s = :was_pending AND {Attr.ATTEMPTS} = :prior "
        f"AND (attribute_not_exists({Attr.RUN_AT}) OR {Attr.RUN_AT} <= :now_ms)"
    )


class DynamoDbJobStore:
    """JobStore over the jobs table of `schema` (its key, the sparse idempotency and pending indexes).
    `client` is a boto3 DynamoDB client (built once per process)."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def create(self, job: Job) -> CreateOutcome:
        item = job_to_item(job)
        for _ in range(3):
            try:
                with _translated("put_item"):
                    self._client.put_item(
                        TableName=self._table,
                        Item=item,
                        ConditionExpression=f"attribute_not_exists({TABLE_KEY.name})",
                        ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    )
                return CreateOutcome(created=True, job=job)
            except ClientError as exc:
                if not condition_failed(exc):
                    raise
                old = _old_item(exc)
                existing = item_to_job(old) if old else self.get(job.job_id)
                if existing is not None:
                    return CreateOutcome(created=False, job=existing)
                # It existed at the put and was gone at the read (TTL deletion): put again.
        raise JobStoreUnavailable(f"job {job.job_id} kept appearing and disappearing")

    def get(self, job_id: str) -> Job | None:
        with _translated("get_item"):
            response = self._client.get_item(TableName=self._table, Key=key(job_id), ConsistentRead=True)
        item = response.get("Item")
        return item_to_job(item) if item else None

    def claim(self, job_id: str, *, now: datetime, lease_until: datetime) -> ClaimOutcome:
        values: dict[str, AttributeValue] = {
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            ":lease": {"N": str(epoch_ms(lease_until))},
            ":now_ms": {"N": str(epoch_ms(now))},
        }
        # A scheduled job is not due before its runAt: refused here, in the same write, so that a message arriving
        # early (clock skew, an early republish) can never start it.
        condition = (
            f"({entry_condition(JobStatus.PROCESSING, values)}) "
            f"AND (attribute_not_exists({Attr.RUN_AT}) OR {Attr.RUN_AT} <= :now_ms)"
        )
        names: dict[str, str] = {"#p": Attr.PROGRESS}
        change = status_change(JobStatus.PROCESSING, now, names, values)
        try:
            with _translated("update_item"):
                response = self._client.update_item(
                    TableName=self._table,
                    Key=key(job_id),
                    UpdateExpression=(
                        f"SET {change}, {Attr.ATTEMPTS} = if_not_exists({Attr.ATTEMPTS}, :zero) + :one, "
                        f"{Attr.LEASE_EXPIRES_AT} = :lease REMOVE {Attr.PENDING_SHARD}, {Attr.PENDING_SINCE}, #p"
                    ),
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            old = _old_item(exc)
            return ClaimOutcome(claimed=False, job=item_to_job(old) if old else self.get(job_id))
        # A new attempt starts with no progress of its own (REMOVE #p above): the last attempt's is not its.
        return ClaimOutcome(claimed=True, job=item_to_job(response["Attributes"]))

    def extend_lease(self, job_id: str, *, attempt: int, lease_until: datetime) -> LeaseState:
        values: dict[str, AttributeValue] = {":lease": {"N": str(epoch_ms(lease_until))}}
        # ALL_NEW: the renewal reads the cancel flag in the same request (no read of its own; ReturnValues cost
        # no capacity). UPDATED_NEW cannot carry it: the flag is not among the attributes this write changes.
        attributes = self._conditional_update(
            job_id,
            update=f"SET {Attr.LEASE_EXPIRES_AT} = :lease",
            condition=owner_condition(JobStatus.PROCESSING, values, attempt),
            names={"#s": Attr.STATUS},
            values=values,
            return_new=True,
        )
        if attributes is None:
            return LeaseState.LOST
        requested = attributes.get(Attr.CANCEL_REQUESTED, {}).get("BOOL", False)
        return LeaseState.CANCEL_REQUESTED if requested else LeaseState.HELD

    def release(self, job_id: str, *, attempt: int, now: datetime) -> bool:
        # Not a status change: the job stays PROCESSING, with a lease already over (0, so that any worker's clock
        # finds it expired and the next claim takes the job at once) and `attempts` back to before this claim.
        # `attempts` is the owner condition of the worker's writes: the releasing worker's own Hold keeps its late
        # writes out once the job is claimed again under the same number (runtime/domain/hold.py).
        values: dict[str, AttributeValue] = {":one": {"N": "1"}, ":over": {"N": "0"}, ":now": {"S": iso(now)}}
        return (
            self._conditional_update(
                job_id,
                update=(
                    f"SET {Attr.ATTEMPTS} = {Attr.ATTEMPTS} - :one, {Attr.LEASE_EXPIRES_AT} = :over, "
                    f"{Attr.UPDATED_AT} = :now"
                ),
                condition=owner_condition(JobStatus.PROCESSING, values, attempt),
                names={"#s": Attr.STATUS},
                values=values,
            )
            is not None
        )

    def set_progress(self, job_id: str, *, attempt: int, progress: Progress, now: datetime) -> bool:
        # Not a status change: the worker's own write about its attempt, like the lease renewal.
        values: dict[str, AttributeValue] = {":progress": progress_attr(progress), ":now": {"S": iso(now)}}
        return (
            self._conditional_update(
                job_id,
                update=f"SET #p = :progress, {Attr.UPDATED_AT} = :now",
                condition=owner_condition(JobStatus.PROCESSING, values, attempt),
                names={"#s": Attr.STATUS, "#p": Attr.PROGRESS},
                values=values,
            )
            is not None
        )

    def succeed(
        self,
        job_id: str,
        *,
        attempt: int,
        result: dict[str, Any] | None,
        now: datetime,
        result_ref: ResultRef | None = None,
        progress: Progress | None = None,
        callback_due: bool = False,
        started_at: datetime | None = None,
    ) -> bool:
        if result_ref is not None:
            kept, value = f"{Attr.RESULT_REF} = :result", result_ref_attr(result_ref)
        else:
            assert result is not None
            kept, value = "#r = :result", to_attr(result)
        try:
            # The result first: DynamoDB applies an update whole or not at all, but moto (the local emulator)
            # applies its clauses in order and stops at the one that breaks the item size limit.
            return self._finish(
                job_id,
                attempt=attempt,
                status=JobStatus.SUCCEEDED,
                now=now,
                set_first=kept,
                extra_values={":result": value},
                extra_names=("#r",) if result_ref is None else (),
                remove_extra=", #e",
                remove_names=("#e",),
                progress=progress,
                callback_due=callback_due,
                started_at=started_at,
            )
        except ClientError as exc:
            # The item would be over 400 KB, or holds a value DynamoDB cannot (a number out of its range).
            if error_code(exc) == _VALIDATION_ERROR:
                raise JobRecordRefused(f"dynamodb update_item refused the result: {exc}") from exc
            raise

    def fail(
        self,
        job_id: str,
        *,
        attempt: int,
        error: JobError,
        final: bool,
        now: datetime,
        progress: Progress | None = None,
        callback_due: bool = False,
        started_at: datetime | None = None,
    ) -> bool:
        status = JobStatus.FAILED_FINAL if final else JobStatus.FAILED
        return self._finish(
            job_id,
            attempt=attempt,
            status=status,
            now=now,
            set_extra="#e = :error",
            extra_values={":error": error_attr(error)},
            extra_names=("#e",),
            progress=progress,
            callback_due=callback_due and final,
            started_at=started_at,
        )

    def _finish(
        self,
        job_id: str,
        *,
        attempt: int,
        status: JobStatus,
        now: datetime,
        extra_values: dict[str, AttributeValue],
        extra_names: tuple[str, ...],
        set_extra: str = "",
        set_first: str = "",
        remove_extra: str = "",
        remove_names: tuple[str, ...] = (),
        progress: Progress | None = None,
        callback_due: bool = False,
        started_at: datetime | None = None,
    ) -> bool:
        """A worker's outcome write; `progress`, the handler's last report, is stored in the same write.
        `started_at` set: the attempt ran unclaimed since then, and this one write also records what its claim
        would have (attempts + 1, the PROCESSING transition at `started_at`, the pending marker and the last
        attempt's progress gone), so the item ends as a claim and an outcome would have left it; the status-change
        marker shows PENDING as the status left."""
        values: dict[str, AttributeValue] = dict(extra_values)
        names: dict[str, str] = {name: _NAMES[name] for name in extra_names + remove_names}
        remove = f"{Attr.LEASE_EXPIRES_AT}{remove_extra}"
        if progress is not None:
            set_extra = ", ".join(part for part in (set_extra, "#p = :progress") if part)
            values[":progress"] = progress_attr(progress)
            names["#p"] = Attr.PROGRESS
        if started_at is None:
            condition = owner_condition(status, values, attempt)
        else:
            values[":now_ms"] = {"N": str(epoch_ms(now))}
            values[":started"] = {"S": iso(started_at)}
            condition = unclaimed_condition(status, values, attempt)
            names["#started_to"] = JobStatus.PROCESSING.value
            claim = f"{Attr.ATTEMPTS} = :attempt, {Attr.TRANSITIONS}.#started_to = :started"
            set_extra = ", ".join(part for part in (set_extra, claim) if part)
            remove += f", {Attr.PENDING_SHARD}, {Attr.PENDING_SINCE}"
            if progress is None:
                names["#p"] = Attr.PROGRESS
                remove += ", #p"
        return (
            self._change_status(
                job_id,
                status,
                now=now,
                set_first=set_first,
                set_also=f", {set_extra}" if set_extra else "",
                remove=remove,
                condition=condition,
                names=names,
                values=values,
                callback_due=callback_due,
            )
            is not None
        )

    def fail_final(self, job_id: str, *, error: JobError, now: datetime, callback_due: bool = False) -> Job | None:
        values: dict[str, AttributeValue] = {":error": error_attr(error), ":now_ms": {"N": str(epoch_ms(now))}}
        attributes = self._change_status(
            job_id,
            JobStatus.FAILED_FINAL,
            now=now,
            set_also=", #e = :error",
            remove=_LEASE_AND_PENDING,
            condition=entry_condition(JobStatus.FAILED_FINAL, values),
            names={"#e": Attr.ERROR},
            values=values,
            return_new=True,
            callback_due=callback_due,
        )
        return _job_or_none(attributes)

    def cancel(self, job_id: str, *, now: datetime, callback_due: bool = False) -> Job | None:
        values: dict[str, AttributeValue] = {}
        attributes = self._change_status(
            job_id,
            JobStatus.CANCELED,
            now=now,
            remove=_LEASE_AND_PENDING,
            condition=entry_condition(JobStatus.CANCELED, values, take_expired=False),
            values=values,
            return_new=True,
            callback_due=callback_due,
        )
        return _job_or_none(attributes)

    def request_cancel(self, job_id: str, *, now: datetime) -> Job | None:
        # Not a status change: the worker holding the job decides (it reads the flag with its lease renewal).
        attributes = self._conditional_update(
            job_id,
            update=f"SET {Attr.CANCEL_REQUESTED} = :yes, {Attr.UPDATED_AT} = :now",
            condition="#s = :processing",
            names={"#s": Attr.STATUS},
            values={":yes": {"BOOL": True}, ":now": {"S": iso(now)}, ":processing": {"S": JobStatus.PROCESSING.value}},
            return_new=True,
        )
        return _job_or_none(attributes)

    def finish_canceled(
        self,
        job_id: str,
        *,
        attempt: int,
        now: datetime,
        progress: Progress | None = None,
        callback_due: bool = False,
    ) -> bool:
        values: dict[str, AttributeValue] = {":yes": {"BOOL": True}}
        condition = owner_condition(JobStatus.CANCELED, values, attempt) + f" AND {Attr.CANCEL_REQUESTED} = :yes"
        if progress is not None:
            values[":progress"] = progress_attr(progress)
        return (
            self._change_status(
                job_id,
                JobStatus.CANCELED,
                now=now,
                set_also=", #p = :progress" if progress is not None else "",
                remove=Attr.LEASE_EXPIRES_AT,
                condition=condition,
                names={"#p": Attr.PROGRESS} if progress is not None else None,
                values=values,
                callback_due=callback_due,
            )
            is not None
        )

    def requeue(self, job_id: str, *, now: datetime, pending_since: datetime | None = None) -> Job | None:
        values: dict[str, AttributeValue] = {
            ":shard": {"S": pending_shard(job_id)},
            ":since": {"N": str(epoch_ms(pending_since or now))},
        }
        # attempts stays monotonic: conditions on "attempts = mine" must never match a stale worker again.
        attributes = self._change_status(
            job_id,
            JobStatus.PENDING,
            now=now,
            set_also=(
                f", {Attr.PENDING_SHARD} = :shard, {Attr.PENDING_SINCE} = :since, {Attr.RETRY_BASE} = {Attr.ATTEMPTS}"
            ),
            remove=f"#e, {Attr.LEASE_EXPIRES_AT}, {Attr.CANCEL_REQUESTED}, {Attr.REDRIVES}, {Attr.REDRIVEN_BY}",
            condition=entry_condition(JobStatus.PENDING, values),
            names={"#e": Attr.ERROR},
            values=values,
            return_new=True,
        )
        return _job_or_none(attributes)

    def mark_republished(self, job_id: str, *, expected_pending_since: datetime, pending_since: datetime) -> bool:
        # Not a status change: it moves the marker of a job still PENDING since the time the sweep saw.
        return (
            self._conditional_update(
                job_id,
                update=f"SET {Attr.PENDING_SINCE} = :since",
                condition=f"#s = :pending AND {Attr.PENDING_SINCE} = :expected",
                names={"#s": Attr.STATUS},
                values={
                    ":since": {"N": str(epoch_ms(pending_since))},
                    ":pending": {"S": JobStatus.PENDING.value},
                    ":expected": {"N": str(epoch_ms(expected_pending_since))},
                },
            )
            is not None
        )

    def mark_redriven(
        self, job_id: str, *, seen: Job, dead_letter_id: str, limit: int, now: datetime, pending_since: datetime | None
    ) -> bool:
        # Not a status change. The job must still be as the DLQ handler read it (status, attempts, redrives: so of
        # two dead letters read at once, one wins) and under no live lease, with redrives below `limit`.
        if seen.redrives >= limit:
            return False
        values: dict[str, AttributeValue] = {
            ":seen_status": {"S": seen.status.value},
            ":seen_attempts": {"N": str(seen.attempts)},
            ":next": {"N": str(seen.redrives + 1)},
            ":by": {"S": dead_letter_id},
            ":now_ms": {"N": str(epoch_ms(now))},
        }
        if seen.redrives:
            values[":seen_redrives"] = {"N": str(seen.redrives)}
            values[":limit"] = {"N": str(limit)}
            same_redrives = f"{Attr.REDRIVES} = :seen_redrives AND {Attr.REDRIVES} < :limit"
        else:
            same_redrives = f"attribute_not_exists({Attr.REDRIVES})"
        update = f"SET {Attr.REDRIVES} = :next, {Attr.REDRIVEN_BY} = :by"
        if pending_since is not None:
            values[":since"] = {"N": str(epoch_ms(pending_since))}
            update += f", {Attr.PENDING_SINCE} = :since"
        return (
            self._conditional_update(
                job_id,
                update=update,
                condition=(
                    f"#s = :seen_status AND {Attr.ATTEMPTS} = :seen_attempts AND {same_redrives} AND "
                    f"(attribute_not_exists({Attr.LEASE_EXPIRES_AT}) OR {Attr.LEASE_EXPIRES_AT} < :now_ms)"
                ),
                names={"#s": Attr.STATUS},
                values=values,
            )
            is not None
        )

    def stuck_pending(self, *, older_than: datetime, limit: int) -> Sequence[Job]:
        """Reads the sparse index shard by shard, then the full items (consistent batch read), keeping the
        ones still PENDING with a marker older than `older_than` (the index is eventually consistent)."""
        if limit <= 0:
            return []
        threshold = str(epoch_ms(older_than))
        job_ids: list[str] = []
        for shard in range(PENDING_SHARDS):
            if len(job_ids) >= limit:
                break
            query = {
                "IndexName": PENDING_INDEX.name,
                "KeyConditionExpression": f"{Attr.PENDING_SHARD} = :shard AND {Attr.PENDING_SINCE} < :threshold",
                "ExpressionAttributeValues": {":shard": {"S": str(shard)}, ":threshold": {"N": threshold}},
                "ProjectionExpression": TABLE_KEY.name,
            }
            job_ids.extend(self._query_job_ids(query, limit=limit - len(job_ids)))
        jobs = self._batch_get(job_ids)
        stuck = [
            job
            for job in jobs
            if job.status == JobStatus.PENDING and job.pending_since is not None and job.pending_since < older_than
        ]
        return sorted(stuck, key=lambda job: job.pending_since or job.created_at)

    def get_many(self, job_ids: Sequence[str]) -> Mapping[str, Job | None]:
        """One consistent BatchGetItem (at most _BATCH_GET_LIMIT ids); the keys DynamoDB leaves unprocessed
        (throttling) are asked again after a short pause, at most _GET_MANY_TRIES requests in all."""
        wanted = list(dict.fromkeys(job_ids))
        if len(wanted) > _BATCH_GET_LIMIT:
            raise ValueError(f"at most {_BATCH_GET_LIMIT} jobs per read, not {len(wanted)}")
        found: dict[str, Job | None] = {}
        unanswered = self._read_batch(wanted, tries=_GET_MANY_TRIES, pause_s=_GET_MANY_PAUSE_S, into=found)
        for job_id in wanted:
            if job_id not in found and job_id not in unanswered:
                found[job_id] = None  # answered without an item: no such job
        return found

    def _batch_get(self, job_ids: Sequence[str]) -> list[Job]:
        found: dict[str, Job | None] = {}
        for start in range(0, len(job_ids), _BATCH_GET_LIMIT):
            self._read_batch(job_ids[start : start + _BATCH_GET_LIMIT], tries=10, pause_s=0.0, into=found)
        return [job for job in found.values() if job is not None]

    def _read_batch(
        self, job_ids: Sequence[str], *, tries: int, pause_s: float, into: dict[str, Job | None]
    ) -> set[str]:
        """Consistent BatchGetItem of `job_ids` (at most _BATCH_GET_LIMIT) into `into`, asking for unprocessed keys
        again up to `tries` requests in all (`pause_s` doubling between them); returns the ids still unanswered."""
        keys: list[Mapping[str, Any]] = [key(job_id) for job_id in dict.fromkeys(job_ids)]
        for attempt in range(tries):
            if not keys:
                break
            if attempt > 0 and pause_s > 0:
                time.sleep(pause_s * 2 ** (attempt - 1))
            with _translated("batch_get_item"):
                response = self._client.batch_get_item(
                    RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
                )
            for item in response.get("Responses", {}).get(self._table, []):
                job = item_to_job(item)
                into[job.job_id] = job
            unprocessed = response.get("UnprocessedKeys", {}).get(self._table)
            keys = list(unprocessed.get("Keys", [])) if unprocessed else []
        return {str(left[TABLE_KEY.name]["S"]) for left in keys}

    def list_jobs(self, scope: ListFilter, *, limit: int, start_key: Mapping[str, str] | None) -> JobPage:
        """One Query on the listing index that fits the filters (newest first). Only status and type together
        filter (on `jobType`, in the status index): a filtered Query may stop with fewer than `limit` items, so
        it runs again from where it stopped, at most _LIST_QUERIES times, and the page may come back short."""
        tenant, status, job_type = scope.tenant, scope.status, scope.job_type
        values: dict[str, AttributeValue] = {}
        names: dict[str, str] = {}
        if status is not None:
            index, partition = TENANT_STATUS_INDEX, tenant_status(tenant, status)
        elif job_type is not None:
            index, partition = TENANT_TYPE_INDEX, tenant_type(tenant, job_type)
        else:
            index, partition = TENANT_INDEX, tenant
        values[":partition"] = {"S": partition}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index.name,
            "KeyConditionExpression": f"{index.partition_key.name} = :partition",
            "ScanIndexForward": False,
        }
        if status is not None and job_type is not None:
            names["#type"] = Attr.JOB_TYPE
            values[":type"] = {"S": job_type}
            kwargs["FilterExpression"] = "#type = :type"
            kwargs["ExpressionAttributeNames"] = names
        kwargs["ExpressionAttributeValues"] = values
        jobs: list[Job] = []
        last_key: Mapping[str, Any] | None = (
            {name: {"S": value} for name, value in start_key.items()} if start_key else None
        )
        for _ in range(_LIST_QUERIES):
            query = {**kwargs, "Limit": limit - len(jobs)}
            if last_key:
                query["ExclusiveStartKey"] = last_key
            with _translated("query"):
                response = self._client.query(**query)
            jobs.extend(item_to_job(item) for item in response.get("Items", []))
            last_key = response.get("LastEvaluatedKey")
            if not last_key or len(jobs) >= limit:
                break
        next_key = {name: str(value["S"]) for name, value in last_key.items()} if last_key else None
        return JobPage(jobs=jobs, next_key=next_key)

    def count_finished(
        self, tenant: str, *, finished_since: datetime, created_since: datetime, max_examined: int
    ) -> FinishedCount:
        """One Query on the tenant's listing index, newest first, over the jobs created since `created_since`
        (at most `max_examined` of them read); the filter keeps those whose terminal transition is at or after
        `finished_since`, and only their status comes back. Times compare as text (fixed-width RFC 3339)."""
        names = {
            "#tenant": TENANT_INDEX.partition_key.name,
            "#created": Attr.CREATED_KEY,
            "#s": Attr.STATUS,
            "#t": Attr.TRANSITIONS,
        }
        values: dict[str, AttributeValue] = {
            ":tenant": {"S": tenant},
            ":created": {"S": iso(created_since)},
            ":since": {"S": iso(finished_since)},
        }
        terms = []
        for position, status in enumerate(FINISHED_STATUSES):
            names[f"#f{position}"] = status.value
            values[f":f{position}"] = {"S": status.value}
            terms.append(f"(#s = :f{position} AND #t.#f{position} >= :since)")
        with _translated("query"):
            response = self._client.query(
                TableName=self._table,
                IndexName=TENANT_INDEX.name,
                KeyConditionExpression="#tenant = :tenant AND #created >= :created",
                FilterExpression=" OR ".join(terms),
                ProjectionExpression="#s",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ScanIndexForward=False,
                Limit=max_examined,
            )
        by_status = dict.fromkeys(FINISHED_STATUSES, 0)
        for item in response.get("Items", []):
            by_status[JobStatus(item[Attr.STATUS]["S"])] += 1
        return FinishedCount(since=finished_since, by_status=by_status, complete="LastEvaluatedKey" not in response)

    def advance_key_generation(self, head_job_id: str, *, expected: int, new: int, keep_until: int) -> bool:
        condition = f"attribute_exists({TABLE_KEY.name}) AND "
        condition += (
            f"(attribute_not_exists({Attr.KEY_GENERATION}) OR {Attr.KEY_GENERATION} = :expected)"
            if expected == 0
            else f"{Attr.KEY_GENERATION} = :expected"
        )
        return (
            self._conditional_update(
                head_job_id,
                update=f"SET {Attr.KEY_GENERATION} = :new, {Attr.EXPIRES_AT} = :keep",
                condition=condition,
                names=None,
                values={":new": {"N": str(new)}, ":expected": {"N": str(expected)}, ":keep": {"N": str(keep_until)}},
            )
            is not None
        )

    def find_by_idempotency_key(self, idempotency_key: str) -> Sequence[str]:
        query = {
            "IndexName": IDEMPOTENCY_INDEX.name,
            "KeyConditionExpression": f"{IDEMPOTENCY_INDEX.partition_key.name} = :key",
            "ExpressionAttributeValues": {":key": {"S": idempotency_key}},
        }
        return self._query_job_ids(query)

    # -- callbacks ------------------------------------------------------------------------------------------

    def mark_callback_enqueued(self, job_id: str, *, due_at: datetime) -> bool:
        """The job leaves the callback outbox: its delivery message is out. Conditional on the due time the caller
        enqueued for (a sweep that moved it meanwhile enqueued it again and removes it itself)."""
        return (
            self._conditional_update(
                job_id,
                update=f"REMOVE {Attr.CALLBACK_SHARD}, {Attr.CALLBACK_DUE_AT}",
                condition=f"{Attr.CALLBACK_DUE_AT} = :due",
                names=None,
                values={":due": {"N": str(epoch_ms(due_at))}},
            )
            is not None
        )

    def due_callbacks(self, *, older_than: datetime, limit: int) -> Sequence[DueCallback]:
        """Outbox entries due before `older_than`, from the sparse index (keys only, eventually consistent)."""
        found: list[DueCallback] = []
        for shard in range(PENDING_SHARDS):
            if len(found) >= limit:
                break
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": CALLBACK_OUTBOX_INDEX.name,
                "KeyConditionExpression": f"{Attr.CALLBACK_SHARD} = :shard AND {Attr.CALLBACK_DUE_AT} < :threshold",
                "ExpressionAttributeValues": {
                    ":shard": {"S": str(shard)},
                    ":threshold": {"N": str(epoch_ms(older_than))},
                },
                "Limit": limit - len(found),
            }
            with _translated("query"):
                response = self._client.query(**kwargs)
            found.extend(
                DueCallback(job_id=item[TABLE_KEY.name]["S"], due_ms=int(item[Attr.CALLBACK_DUE_AT]["N"]))
                for item in response.get("Items", [])
            )
        return found

    def move_callback_due(self, job_id: str, *, expected_ms: int, now: datetime) -> Job | None:
        """Moves an outbox entry's due time from `expected_ms` to `now` (one sweeper of the fleet wins); the job after
        it, or None when the entry moved or left meanwhile."""
        attributes = self._conditional_update(
            job_id,
            update=f"SET {Attr.CALLBACK_DUE_AT} = :now_ms",
            condition=f"{Attr.CALLBACK_DUE_AT} = :expected",
            names=None,
            values={":now_ms": {"N": str(epoch_ms(now))}, ":expected": {"N": str(expected_ms)}},
            return_new=True,
        )
        return _job_or_none(attributes)

    def record_callback_attempt(
        self, job_id: str, *, status: JobStatus, entered_at: datetime, state: CallbackState, status_code: int | None
    ) -> Job | None:
        """One delivery attempt of the event of the job's terminal `status` entered at `entered_at`: attempts + 1,
        its answer's status code (None: no answer), the new state. None when the job moved on (a manual retry) or
        the callback is no longer pending (a duplicate delivery decided it first)."""
        names = {
            "#s": Attr.STATUS,
            "#cb": Attr.CALLBACK,
            "#cb_state": CallbackAttr.STATE,
            "#cb_attempts": CallbackAttr.ATTEMPTS,
            "#cb_code": CallbackAttr.LAST_STATUS_CODE,
            "#tr": Attr.TRANSITIONS,
            "#entered": status.value,
        }
        values: dict[str, AttributeValue] = {
            ":status": {"S": status.value},
            ":entered": {"S": iso(entered_at)},
            ":pending": {"S": CallbackState.PENDING.value},
            ":state": {"S": state.value},
            ":one": {"N": "1"},
        }
        update = "SET #cb.#cb_state = :state, #cb.#cb_attempts = #cb.#cb_attempts + :one"
        if status_code is None:
            update += " REMOVE #cb.#cb_code"
        else:
            update += ", #cb.#cb_code = :code"
            values[":code"] = {"N": str(status_code)}
        attributes = self._conditional_update(
            job_id,
            update=update,
            condition="#s = :status AND #tr.#entered = :entered AND #cb.#cb_state = :pending",
            names=names,
            values=values,
            return_new=True,
        )
        return _job_or_none(attributes)

    def ping(self) -> None:
        with _translated("describe_table"):
            self._client.describe_table(TableName=self._table)

    # -- helpers --------------------------------------------------------------------------------------------

    def _query_job_ids(self, query: Mapping[str, Any], *, limit: int | None = None) -> list[str]:
        """The job ids a Query on an index finds, page after page until its end or `limit` ids."""
        job_ids: list[str] = []
        start_key: Mapping[str, Any] | None = None
        while limit is None or len(job_ids) < limit:
            kwargs: dict[str, Any] = {"TableName": self._table, **query}
            if limit is not None:
                kwargs["Limit"] = limit - len(job_ids)
            if start_key:
                kwargs["ExclusiveStartKey"] = start_key
            with _translated("query"):
                response = self._client.query(**kwargs)
            job_ids.extend(item[TABLE_KEY.name]["S"] for item in response.get("Items", []))
            start_key = response.get("LastEvaluatedKey")
            if not start_key:
                break
        return job_ids

    def _change_status(
        self,
        job_id: str,
        target: JobStatus,
        *,
        now: datetime,
        set_first: str = "",
        set_also: str = "",
        remove: str,
        condition: str,
        names: dict[str, str] | None = None,
        values: dict[str, AttributeValue],
        return_new: bool = False,
        callback_due: bool = False,
    ) -> ItemIn | None:
        """A status change to `target` under `condition`: `set_first` (if any), the common SET clauses
        (`status_change`), then `set_also` (", "-led) and the REMOVE of `remove`; `names`/`values` hold the caller's
        placeholders. `callback_due` (terminal targets, jobs with a callback): the job enters the callback outbox in
        this write."""
        names = dict(names or {})
        change = status_change(target, now, names, values)
        first = f"{set_first}, " if set_first else ""
        if callback_due:
            set_also += ", " + callback_due_update(job_id, now, names, values)
            remove += ", " + CALLBACK_LAST_CODE
        return self._conditional_update(
            job_id,
            update=f"SET {first}{change}{set_also} REMOVE {remove}",
            condition=condition,
            names=names,
            values=values,
            return_new=return_new,
            changes_status=True,
        )

    def _conditional_update(
        self,
        job_id: str,
        *,
        update: str,
        condition: str,
        names: dict[str, str] | None,
        values: dict[str, AttributeValue],
        return_new: bool = False,
        changes_status: bool = False,
    ) -> ItemIn | None:
        """The item after the update (or {} when not asked for), None when the condition failed. An update that
        `changes_status` carries the marker (`status_change`); any other removes it."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": key(job_id),
            "UpdateExpression": update if changes_status else without_status_marker(update),
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW" if return_new else "NONE",
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            with _translated("update_item"):
                response = self._client.update_item(**kwargs)
        except ClientError as exc:
            if condition_failed(exc):
                return None
            raise
        return response.get("Attributes", {}) if return_new else {}


def _translated(operation: str) -> AbstractContextManager[None]:
    """Turns "the store is not answering" into JobStoreUnavailable; other client errors pass unchanged."""
    return outages_as(JobStoreUnavailable, f"dynamodb {operation}", _UNAVAILABLE_CODES)


def _job_or_none(attributes: ItemIn | None) -> Job | None:
    """The job a conditional update returned (ALL_NEW), None when its condition failed."""
    return item_to_job(attributes) if attributes is not None else None


def _old_item(exc: ClientError) -> ItemIn | None:
    old: ItemIn | None = exc.response.get("Item")  # type: ignore[assignment]
    return old
