"""The jobs table's schema, defined once: its key, every attribute name the store writes, its TTL attribute and
its global secondary indexes. `stacks/components/job_store.py` builds the table from these definitions and the
store writes and queries with them, so a renamed attribute or a new index is one edit here.

Adding an index is adding one `IndexDefinition` to `INDEXES` (the stack loops over it).

Listing (`GET /api/v1/jobs`, newest first) reads one of three indexes, each answering a page with one Query on
one partition whatever the table holds, sorted by `createdKey` ("<createdAt>#<jobId>": RFC 3339 with fixed-width
milliseconds sorts as text, the job id breaks ties and makes the key unique):
- `by-tenant-created`: partition `tenant` (no filter);
- `by-tenant-status-created`: partition `tenantStatus` ("<tenant>#<status>"; a status filter, plus a
  FilterExpression on `jobType` when a type filter comes too: that filter still costs the reads of the items
  it drops, which the store bounds to a few Queries per page);
- `by-tenant-type-created`: partition `tenantType` ("<tenant>#<jobType>"; a type filter alone).
Tenant names hold no '#' (TENANT_PATTERN) and statuses none either, so these keys never collide.

DynamoDB expressions cannot join strings, and a worker's claim does not know the job's tenant, so every item
also carries `statusKeys` ({status: "<tenant>#<status>"}, written once at create) and every status change copies
the new status's entry into `tenantStatus` in the same conditional update (`status_key_update` in the store).

Projection ALL on all three: the job resource shows nearly every attribute (params, result, error, metadata,
transitions), so INCLUDE would spare only the lease, pending-marker and key-generation updates, while every field
the resource gains later would need a new index under a new name (a GSI's projection cannot be changed). The
cost in write units per job, for items up to 1 KB (a GSI write costs 1 WRU per KB; an update that changes an
index's key is a delete plus a put there, 2 WRU; an update of other attributes is 1 WRU per index holding the item):
- create: 3 (one put in each);
- each status change (claim, success, failure, dead-letter verdict, manual retry): 4 (1 + 2 + 1);
- each other update (lease renewal, republish marker, progress write, DLQ redrive): 3.
A plain job (create, claim, succeed) costs 11 WRU in these indexes on top of its table writes; a quick one run
unclaimed (create, one outcome write from PENDING: runtime/domain/lazy_claim.py) 7; each lease renewal of a long
job 3 more, and each progress write (at most one per job every `progress_interval_s`) 3 more.
Items written before these indexes existed lack `createdKey` and are not listed.
CloudFormation adds at most one index to an existing table per update: a table deployed before these three needs
them added over three deployments (README, "the list cursor secret").

Status events: the table's stream (new and old images) feeds an EventBridge pipe that publishes each status change
(stacks/components/status_events.py). A pipe's filter sees one image at a time and cannot compare old with new, and
lease renewals, cancel requests and other bookkeeping are MODIFY records too, with the status unchanged. So every
status change also SETs `previousStatus` (the status it left) and `statusChangedAt`, and every other update REMOVEs
both: the pipe passes exactly the records whose new image carries `previousStatus`. Creating a job is no change
(its item has no marker); neither the marker nor its removal costs a request of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Attr:
    """Every attribute name of a job item (names as in DESIGN.md "DynamoDB item")."""

    JOB_ID: Final = "jobId"
    STATUS: Final = "status"
    JOB_TYPE: Final = "jobType"
    PRIORITY: Final = "priority"
    PARAMS: Final = "params"
    METADATA: Final = "metadata"
    CREATED_AT: Final = "createdAt"
    UPDATED_AT: Final = "updatedAt"
    TRACE_ID: Final = "traceId"
    FINGERPRINT: Final = "fingerprint"
    TENANT: Final = "tenant"
    ATTEMPTS: Final = "attempts"
    RESULT: Final = "result"
    RESULT_REF: Final = "resultRef"  # instead of `result` when it is stored apart: {uri, size, sha256}
    ERROR: Final = "error"
    IDEMPOTENCY_KEY: Final = "idempotencyKey"
    # A map of status -> when it was last entered.
    TRANSITIONS: Final = "transitions"
    LEASE_EXPIRES_AT: Final = "leaseExpiresAt"  # epoch ms
    PENDING_SHARD: Final = "pendingShard"  # only while PENDING (sparse index)
    PENDING_SINCE: Final = "pendingSince"  # epoch ms, only while PENDING
    EXPIRES_AT: Final = "expiresAt"  # epoch s, the TTL attribute
    KEY_GENERATION: Final = "keyGeneration"
    RETRY_BASE: Final = "retryBase"
    # The listing indexes' keys (see the module docstring); written only for jobs with a tenant.
    CREATED_KEY: Final = "createdKey"  # "<createdAt>#<jobId>"
    TENANT_STATUS: Final = "tenantStatus"  # "<tenant>#<status>", follows every status change
    TENANT_TYPE: Final = "tenantType"  # "<tenant>#<jobType>"
    STATUS_KEYS: Final = "statusKeys"  # {status: "<tenant>#<status>"}, what status changes copy from
    CANCEL_REQUESTED: Final = "cancelRequested"  # true once a cancel was asked for while PROCESSING; else absent
    REQUEST_TOKEN: Final = "requestToken"  # the submit request that created the item (Job.request_token)
    # The status-change marker (module docstring, "Status events"): set by every status change, removed by every
    # other update, so a stream record whose new image carries it is a status change.
    PREVIOUS_STATUS: Final = "previousStatus"  # the status this change left
    STATUS_CHANGED_AT: Final = "statusChangedAt"  # RFC 3339, when it changed
    PROGRESS: Final = "progress"  # the handler's last reported progress (ProgressAttr keys); absent until then
    RUN_AT: Final = "runAt"  # epoch ms, only for scheduled jobs: the claim is refused before it
    CALLBACK: Final = "callback"  # {url, state, attempts, lastStatusCode}: only jobs submitted with a callbackUrl
    # The callback outbox (sparse index): set by the terminal write of a job with a callback, removed once its
    # delivery message is on the callback queue. Left behind only by a process that died in between.
    CALLBACK_SHARD: Final = "callbackShard"
    CALLBACK_DUE_AT: Final = "callbackDueAt"  # epoch ms
    # The DLQ handler's redrives of the job (runtime/domain/redrive.py): how many, and the dead letter (SQS message
    # id) of the last one. Absent until the first; a manual retry removes both.
    REDRIVES: Final = "redrives"
    REDRIVEN_BY: Final = "redrivenBy"


class CallbackAttr:
    """The keys of the `callback` map."""

    URL: Final = "url"
    STATE: Final = "state"
    ATTEMPTS: Final = "attempts"
    LAST_STATUS_CODE: Final = "lastStatusCode"


class ErrorAttr:
    """The keys of the `error` map."""

    CODE: Final = "code"
    MESSAGE: Final = "message"
    PERMANENT: Final = "permanent"


class ProgressAttr:
    """The keys of the `progress` map."""

    FRACTION: Final = "fraction"
    MESSAGE: Final = "message"  # absent when the report had none
    UPDATED_AT: Final = "updatedAt"


class KeyType(StrEnum):
    """A key attribute's DynamoDB scalar type (the letters of AttributeDefinitions)."""

    STRING = "S"
    NUMBER = "N"


class Projection(StrEnum):
    KEYS_ONLY = "KEYS_ONLY"
    INCLUDE = "INCLUDE"
    ALL = "ALL"


@dataclass(frozen=True)
class KeyAttribute:
    name: str
    type: KeyType


@dataclass(frozen=True)
class IndexDefinition:
    """One global secondary index: its name, key and what it projects."""

    name: str
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None = None
    projection: Projection = Projection.KEYS_ONLY
    non_key_attributes: tuple[str, ...] = ()

    @property
    def key_attributes(self) -> tuple[KeyAttribute, ...]:
        return (self.partition_key,) if self.sort_key is None else (self.partition_key, self.sort_key)


TABLE_KEY: Final = KeyAttribute(Attr.JOB_ID, KeyType.STRING)
# The stream's records and the marker the status-events pipe filters on (see the module docstring).
STREAM_VIEW: Final = "NEW_AND_OLD_IMAGES"
STATUS_CHANGE_MARKER: Final = (Attr.PREVIOUS_STATUS, Attr.STATUS_CHANGED_AT)
TTL_ATTRIBUTE: Final = Attr.EXPIRES_AT

# Who submitted a key already: job ids by "<scope>#<key>" (sparse: only jobs submitted with a key).
IDEMPOTENCY_INDEX: Final = IndexDefinition(
    name="by-idempotency-key",
    partition_key=KeyAttribute(Attr.IDEMPOTENCY_KEY, KeyType.STRING),
    projection=Projection.KEYS_ONLY,
)
# The republisher's sweep: only PENDING jobs carry pendingShard/pendingSince (sparse index). A scheduled job's
# pendingSince may lie ahead (its release into the SQS delay window, or its runAt: runtime/domain/schedule.py); the
# sweep's `pendingSince < threshold` key condition skips such items unread, so waiting jobs cost the sweep nothing.
PENDING_INDEX: Final = IndexDefinition(
    name="pending-by-age",
    partition_key=KeyAttribute(Attr.PENDING_SHARD, KeyType.STRING),
    sort_key=KeyAttribute(Attr.PENDING_SINCE, KeyType.NUMBER),
    projection=Projection.INCLUDE,
    non_key_attributes=(Attr.TRACE_ID,),
)
# Callbacks whose delivery message may not have gone out (see Attr.CALLBACK_SHARD). KEYS_ONLY: the sweep reads the
# few items it finds with a consistent BatchGetItem anyway. A job with a callback costs 1 WRU here when it ends
# (the put) and 1 when its message is out (the delete); jobs without one never enter it.
CALLBACK_OUTBOX_INDEX: Final = IndexDefinition(
    name="callback-outbox",
    partition_key=KeyAttribute(Attr.CALLBACK_SHARD, KeyType.STRING),
    sort_key=KeyAttribute(Attr.CALLBACK_DUE_AT, KeyType.NUMBER),
    projection=Projection.KEYS_ONLY,
)
# Listing, newest first (see the module docstring): a tenant's jobs, by status, by type.
_CREATED_SORT: Final = KeyAttribute(Attr.CREATED_KEY, KeyType.STRING)
TENANT_INDEX: Final = IndexDefinition(
    name="by-tenant-created",
    partition_key=KeyAttribute(Attr.TENANT, KeyType.STRING),
    sort_key=_CREATED_SORT,
    projection=Projection.ALL,
)
TENANT_STATUS_INDEX: Final = IndexDefinition(
    name="by-tenant-status-created",
    partition_key=KeyAttribute(Attr.TENANT_STATUS, KeyType.STRING),
    sort_key=_CREATED_SORT,
    projection=Projection.ALL,
)
TENANT_TYPE_INDEX: Final = IndexDefinition(
    name="by-tenant-type-created",
    partition_key=KeyAttribute(Attr.TENANT_TYPE, KeyType.STRING),
    sort_key=_CREATED_SORT,
    projection=Projection.ALL,
)
# In the order the table declares them.
INDEXES: Final[tuple[IndexDefinition, ...]] = (
    IDEMPOTENCY_INDEX,
    PENDING_INDEX,
    TENANT_INDEX,
    TENANT_STATUS_INDEX,
    TENANT_TYPE_INDEX,
    CALLBACK_OUTBOX_INDEX,
)

# The sweep reads every shard each round (one Query each): four keep that cheap and still allow about
# 4,000 PENDING writes/s (1,000 per GSI key value).
PENDING_SHARDS: Final = 4
