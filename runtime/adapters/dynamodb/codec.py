"""Job <-> jobs-table item, and JSON values <-> DynamoDB attribute values, with the names of `schema`.

The attribute codec is hand-written rather than boto3's TypeSerializer/TypeDeserializer because it measured
faster on realistic job items in both directions: `.venv/bin/python -m tools.bench_codec` (three runs on a
2-core machine under load average ~12, the two variants alternating) gave per item encode 25-71 us vs 173-269 us
(boto3 3.8-7.8x slower) and decode 25-74 us vs 126-167 us (boto3 2.3-5.1x slower).
It also reads and writes floats as DynamoDB numbers directly (boto3's serializer refuses floats, its deserializer
returns Decimal), which is what the JSON params and results of jobs need.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from runtime.adapters.dynamodb.schema import PENDING_SHARDS, Attr, CallbackAttr, ErrorAttr, ProgressAttr
from runtime.domain.callbacks import Callback, CallbackState
from runtime.domain.job import Job, JobError, JobStatus, Priority, Progress, ResultRef
from runtime.domain.times import iso, parse_iso

# An attribute value ({"S": ...}, {"M": {...}}, ...) and an item (name -> attribute value) as written, and an
# item as read (any mapping: boto3's typed responses are TypedDicts).
AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]
ItemIn = Mapping[str, Mapping[str, Any]]


def to_attr(value: Any) -> AttributeValue:
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


def from_attr(attr: Mapping[str, Any]) -> Any:
    ((kind, value),) = attr.items()
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


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_epoch_ms(value: int | float) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def pending_shard(job_id: str) -> str:
    return str(zlib.crc32(job_id.encode("utf-8")) % PENDING_SHARDS)


def created_key(job: Job) -> str:
    """The listing indexes' sort key: creation time, then id (unique, and sorted as text)."""
    return f"{iso(job.created_at)}#{job.job_id}"


def tenant_status(tenant: str, status: JobStatus | str) -> str:
    return f"{tenant}#{status}"


def tenant_type(tenant: str, job_type: str) -> str:
    return f"{tenant}#{job_type}"


def key(job_id: str) -> Item:
    """The table key of a job."""
    return {Attr.JOB_ID: {"S": job_id}}


def job_to_item(job: Job) -> Item:
    """The compact item (names as in the design); empty and absent values are left out."""
    item: Item = {
        Attr.JOB_ID: {"S": job.job_id},
        Attr.STATUS: {"S": job.status.value},
        Attr.JOB_TYPE: {"S": job.job_type},
        Attr.PRIORITY: {"S": job.priority.value},
        Attr.PARAMS: to_attr(job.params),
        Attr.CREATED_AT: {"S": iso(job.created_at)},
        Attr.UPDATED_AT: {"S": iso(job.updated_at)},
        Attr.TRACE_ID: {"S": job.trace_id},
        Attr.FINGERPRINT: {"S": job.fingerprint},
        Attr.ATTEMPTS: {"N": str(job.attempts)},
    }
    if job.tenant:
        item[Attr.TENANT] = {"S": job.tenant}
        item[Attr.CREATED_KEY] = {"S": created_key(job)}
        item[Attr.TENANT_STATUS] = {"S": tenant_status(job.tenant, job.status)}
        item[Attr.TENANT_TYPE] = {"S": tenant_type(job.tenant, job.job_type)}
        item[Attr.STATUS_KEYS] = {"M": {status.value: {"S": tenant_status(job.tenant, status)} for status in JobStatus}}
    if job.metadata:
        item[Attr.METADATA] = to_attr(job.metadata)
    if job.result is not None:
        item[Attr.RESULT] = to_attr(job.result)
    if job.result_ref is not None:
        item[Attr.RESULT_REF] = result_ref_attr(job.result_ref)
    if job.error is not None:
        item[Attr.ERROR] = error_attr(job.error)
    if job.idempotency_key is not None:
        item[Attr.IDEMPOTENCY_KEY] = {"S": job.idempotency_key}
    if job.transitions:
        item[Attr.TRANSITIONS] = {"M": {k: {"S": iso(v)} for k, v in job.transitions.items()}}
    if job.lease_expires_at is not None:
        item[Attr.LEASE_EXPIRES_AT] = {"N": str(epoch_ms(job.lease_expires_at))}
    if job.pending_since is not None:
        item[Attr.PENDING_SHARD] = {"S": pending_shard(job.job_id)}
        item[Attr.PENDING_SINCE] = {"N": str(epoch_ms(job.pending_since))}
    if job.expires_at is not None:
        item[Attr.EXPIRES_AT] = {"N": str(job.expires_at)}
    if job.key_generation:
        item[Attr.KEY_GENERATION] = {"N": str(job.key_generation)}
    if job.retry_base:
        item[Attr.RETRY_BASE] = {"N": str(job.retry_base)}
    if job.cancel_requested:
        item[Attr.CANCEL_REQUESTED] = {"BOOL": True}
    if job.request_token is not None:
        item[Attr.REQUEST_TOKEN] = {"S": job.request_token}
    if job.progress is not None:
        item[Attr.PROGRESS] = progress_attr(job.progress)
    if job.run_at is not None:
        item[Attr.RUN_AT] = {"N": str(epoch_ms(job.run_at))}
    if job.redrives:
        item[Attr.REDRIVES] = {"N": str(job.redrives)}
    if job.redriven_by is not None:
        item[Attr.REDRIVEN_BY] = {"S": job.redriven_by}
    if job.callback is not None:
        item[Attr.CALLBACK] = callback_attr(job.callback)
    return item


def progress_attr(progress: Progress) -> AttributeValue:
    attributes: Item = {
        ProgressAttr.FRACTION: {"N": repr(float(progress.fraction))},
        ProgressAttr.UPDATED_AT: {"S": iso(progress.updated_at)},
    }
    if progress.message is not None:
        attributes[ProgressAttr.MESSAGE] = {"S": progress.message}
    return {"M": attributes}


def _progress(attr: Mapping[str, Any] | None) -> Progress | None:
    if attr is None:
        return None
    raw = from_attr(attr)
    message = raw.get(ProgressAttr.MESSAGE)
    return Progress(
        fraction=float(raw[ProgressAttr.FRACTION]),
        message=str(message) if message is not None else None,
        updated_at=parse_iso(str(raw[ProgressAttr.UPDATED_AT])),
    )


def callback_attr(callback: Callback) -> AttributeValue:
    fields: Item = {
        CallbackAttr.URL: {"S": callback.url},
        CallbackAttr.STATE: {"S": callback.state.value},
        CallbackAttr.ATTEMPTS: {"N": str(callback.attempts)},
    }
    if callback.last_status_code is not None:
        fields[CallbackAttr.LAST_STATUS_CODE] = {"N": str(callback.last_status_code)}
    return {"M": fields}


def _callback(attr: Mapping[str, Any] | None) -> Callback | None:
    if attr is None:
        return None
    raw = from_attr(attr)
    code = raw.get(CallbackAttr.LAST_STATUS_CODE)
    return Callback(
        url=str(raw[CallbackAttr.URL]),
        state=CallbackState(raw.get(CallbackAttr.STATE, CallbackState.PENDING.value)),
        attempts=int(raw.get(CallbackAttr.ATTEMPTS, 0)),
        last_status_code=int(code) if code is not None else None,
    )


def error_attr(error: JobError) -> AttributeValue:
    return {
        "M": {
            ErrorAttr.CODE: {"S": error.code},
            ErrorAttr.MESSAGE: {"S": error.message},
            ErrorAttr.PERMANENT: {"BOOL": error.permanent},
        }
    }


def result_ref_attr(ref: ResultRef) -> AttributeValue:
    return to_attr({"uri": ref.uri, "size": ref.size, "sha256": ref.sha256})


def _result_ref(attr: Mapping[str, Any] | None) -> ResultRef | None:
    if attr is None:
        return None
    raw = from_attr(attr)
    return ResultRef(uri=str(raw["uri"]), size=int(raw["size"]), sha256=str(raw["sha256"]))


def item_to_job(item: ItemIn) -> Job:
    def text(name: str) -> str | None:
        attr = item.get(name)
        return None if attr is None else str(attr["S"])

    def number(name: str) -> int | None:
        attr = item.get(name)
        return None if attr is None else int(Decimal(attr["N"]))

    error = None
    if Attr.ERROR in item:
        raw = from_attr(item[Attr.ERROR])
        error = JobError(
            code=str(raw.get(ErrorAttr.CODE, "")),
            message=str(raw.get(ErrorAttr.MESSAGE, "")),
            permanent=bool(raw.get(ErrorAttr.PERMANENT, False)),
        )
    lease = number(Attr.LEASE_EXPIRES_AT)
    pending = number(Attr.PENDING_SINCE)
    run_at = number(Attr.RUN_AT)
    transitions = item.get(Attr.TRANSITIONS)
    return Job(
        job_id=item[Attr.JOB_ID]["S"],
        status=JobStatus(item[Attr.STATUS]["S"]),
        job_type=item[Attr.JOB_TYPE]["S"],
        priority=Priority(item[Attr.PRIORITY]["S"]),
        params=from_attr(item[Attr.PARAMS]) if Attr.PARAMS in item else {},
        metadata=from_attr(item[Attr.METADATA]) if Attr.METADATA in item else {},
        created_at=parse_iso(item[Attr.CREATED_AT]["S"]),
        updated_at=parse_iso(item[Attr.UPDATED_AT]["S"]),
        trace_id=text(Attr.TRACE_ID) or "",
        fingerprint=text(Attr.FINGERPRINT) or "",
        tenant=text(Attr.TENANT) or "",
        attempts=number(Attr.ATTEMPTS) or 0,
        result=from_attr(item[Attr.RESULT]) if Attr.RESULT in item else None,
        result_ref=_result_ref(item.get(Attr.RESULT_REF)),
        error=error,
        idempotency_key=text(Attr.IDEMPOTENCY_KEY),
        transitions={k: parse_iso(v["S"]) for k, v in transitions["M"].items()} if transitions else {},
        lease_expires_at=from_epoch_ms(lease) if lease is not None else None,
        pending_since=from_epoch_ms(pending) if pending is not None else None,
        expires_at=number(Attr.EXPIRES_AT),
        key_generation=number(Attr.KEY_GENERATION) or 0,
        retry_base=number(Attr.RETRY_BASE) or 0,
        cancel_requested=bool(item.get(Attr.CANCEL_REQUESTED, {}).get("BOOL", False)),
        request_token=text(Attr.REQUEST_TOKEN),
        progress=_progress(item.get(Attr.PROGRESS)),
        run_at=from_epoch_ms(run_at) if run_at is not None else None,
        callback=_callback(item.get(Attr.CALLBACK)),
        redrives=number(Attr.REDRIVES) or 0,
        redriven_by=text(Attr.REDRIVEN_BY),
    )
