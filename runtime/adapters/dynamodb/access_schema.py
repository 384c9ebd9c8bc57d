"""The access table's shape, defined once: the CDK construct (stacks/components/access_store.py) builds the table
from it and the adapter (access_store.py) reads and writes by it. Import-light: no boto3, no CDK.

One item per API key (`pk` = key#<keyId>) and one per tenant's webhook secret (`pk` = webhook-secret#<tenant>).
Both carry `tenant`, so the by-tenant index lists a tenant's keys with one Query (begins_with on its sort key)."""

from __future__ import annotations

PARTITION_KEY = "pk"

TENANT_INDEX = "by-tenant"
TENANT_INDEX_PARTITION_KEY = "tenant"
TENANT_INDEX_SORT_KEY = PARTITION_KEY
# What `keys list` shows; never the secret hash or a webhook secret.
TENANT_INDEX_PROJECTED = ("kind", "keyId", "scopes", "createdAt", "revokedAt")

KIND_API_KEY = "api-key"
KIND_WEBHOOK_SECRET = "webhook-secret"

API_KEY_PK_PREFIX = "key#"
WEBHOOK_SECRET_PK_PREFIX = "webhook-secret#"


def api_key_pk(key_id: str) -> str:
    return API_KEY_PK_PREFIX + key_id


def webhook_secret_pk(tenant: str) -> str:
    return WEBHOOK_SECRET_PK_PREFIX + tenant
