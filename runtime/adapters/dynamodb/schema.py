"""The jobs table's schema, defined once: its key, every attribute name the store writes, its TTL attribute and
its global secondary indexes. `stacks/components/job_store.py` builds the table from these definitions and the
store writes and queries with them, so a renamed attribute or a new index is one edit here.

Adding an index is adding one `IndexDefinition` to `INDEXES` (the stack loops over it).
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


class ErrorAttr:
    """The keys of the `error` map."""

    CODE: Final = "code"
    MESSAGE: Final = "message"
    PERMANENT: Final = "permanent"


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
TTL_ATTRIBUTE: Final = Attr.EXPIRES_AT

# Who submitted a key already: job ids by "<scope>#<key>" (sparse: only jobs submitted with a key).
IDEMPOTENCY_INDEX: Final = IndexDefinition(
    name="by-idempotency-key",
    partition_key=KeyAttribute(Attr.IDEMPOTENCY_KEY, KeyType.STRING),
    projection=Projection.KEYS_ONLY,
)
# The republisher's sweep: only PENDING jobs carry pendingShard/pendingSince (sparse index).
PENDING_INDEX: Final = IndexDefinition(
    name="pending-by-age",
    partition_key=KeyAttribute(Attr.PENDING_SHARD, KeyType.STRING),
    sort_key=KeyAttribute(Attr.PENDING_SINCE, KeyType.NUMBER),
    projection=Projection.INCLUDE,
    non_key_attributes=(Attr.TRACE_ID,),
)
# In the order the table declares them.
INDEXES: Final[tuple[IndexDefinition, ...]] = (IDEMPOTENCY_INDEX, PENDING_INDEX)

# The sweep reads every shard each round (one Query each): four keep that cheap and still allow about
# 4,000 PENDING writes/s (1,000 per GSI key value).
PENDING_SHARDS: Final = 4
