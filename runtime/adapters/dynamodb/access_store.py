"""API keys and per-tenant webhook secrets on the access table (shape in access_schema.py).

Webhook secrets are shared HMAC-SHA256 secrets: the worker must read them back to sign callbacks, so they are
stored as they are (the table is encrypted at rest and only the processes that sign may read it); API keys are
only ever stored as a hash."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from runtime.adapters.aws_errors import DYNAMODB_UNAVAILABLE_CODES, condition_failed, error_code
from runtime.adapters.dynamodb import access_schema as schema
from runtime.auth.api_keys import ApiKeyInfo, CredentialsUnavailable, StoredApiKey
from runtime.domain.times import iso, parse_iso

# Attribute names go through placeholders: some (like `kind`) may be DynamoDB reserved words.
_LISTED_NAMES = {
    f"#a{index}": name for index, name in enumerate((*schema.TENANT_INDEX_PROJECTED, schema.TENANT_INDEX_PARTITION_KEY))
}


class UnknownApiKey(LookupError):
    """No key with that id."""


class DuplicateApiKey(Exception):
    """A key with that id exists already (a 64-bit id collision: make a new key)."""


def _info(item: dict[str, Any]) -> ApiKeyInfo:
    revoked = item.get("revokedAt")
    return ApiKeyInfo(
        key_id=item["keyId"]["S"],
        tenant=item[schema.TENANT_INDEX_PARTITION_KEY]["S"],
        scopes=frozenset(item["scopes"]["SS"]),
        created_at=parse_iso(item["createdAt"]["S"]),
        revoked_at=parse_iso(revoked["S"]) if revoked else None,
    )


class DynamoDbAccessStore:
    """Takes an injected low-level DynamoDB client (built once per process by runtime.aws_clients)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, operation)(TableName=self._table, **kwargs)
        except ClientError as exc:
            if error_code(exc) in DYNAMODB_UNAVAILABLE_CODES:
                raise CredentialsUnavailable(f"access table: {error_code(exc)}") from exc
            raise
        except BotoCoreError as exc:
            raise CredentialsUnavailable(f"access table: {type(exc).__name__}") from exc

    # -- API keys --------------------------------------------------------------------------------------------

    def get_api_key(self, key_id: str) -> StoredApiKey | None:
        # Strongly consistent: a key works the moment `keys create` returned it.
        item = self._call(
            "get_item", Key={schema.PARTITION_KEY: {"S": schema.api_key_pk(key_id)}}, ConsistentRead=True
        ).get("Item")
        if item is None or item.get("kind", {}).get("S") != schema.KIND_API_KEY:
            return None
        return StoredApiKey(info=_info(item), secret_hash=item["secretHash"]["S"])

    def put_api_key(self, key: StoredApiKey) -> None:
        info = key.info
        item = {
            schema.PARTITION_KEY: {"S": schema.api_key_pk(info.key_id)},
            "kind": {"S": schema.KIND_API_KEY},
            "keyId": {"S": info.key_id},
            schema.TENANT_INDEX_PARTITION_KEY: {"S": info.tenant},
            "scopes": {"SS": sorted(info.scopes)},
            "secretHash": {"S": key.secret_hash},
            "createdAt": {"S": iso(info.created_at)},
        }
        try:
            self._call(
                "put_item",
                Item=item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": schema.PARTITION_KEY},
            )
        except ClientError as exc:
            if condition_failed(exc):
                raise DuplicateApiKey(info.key_id) from None
            raise

    def revoke_api_key(self, key_id: str, *, at: datetime) -> ApiKeyInfo:
        """Sets revokedAt (kept from the first revocation when repeated); UnknownApiKey if there is no such key."""
        try:
            response = self._call(
                "update_item",
                Key={schema.PARTITION_KEY: {"S": schema.api_key_pk(key_id)}},
                UpdateExpression="SET revokedAt = if_not_exists(revokedAt, :at)",
                ConditionExpression="attribute_exists(#pk) AND #kind = :kind",
                ExpressionAttributeNames={"#pk": schema.PARTITION_KEY, "#kind": "kind"},
                ExpressionAttributeValues={":at": {"S": iso(at)}, ":kind": {"S": schema.KIND_API_KEY}},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if condition_failed(exc):
                raise UnknownApiKey(key_id) from None
            raise
        return _info(response["Attributes"])

    def list_api_keys(self, tenant: str | None = None) -> list[ApiKeyInfo]:
        """A tenant's keys with one Query per page of the by-tenant index; all keys with a Scan (admin only)."""
        if tenant is not None:
            pages = self._pages(
                "query",
                IndexName=schema.TENANT_INDEX,
                KeyConditionExpression="#tenant = :tenant AND begins_with(#pk, :prefix)",
                ExpressionAttributeNames={
                    "#tenant": schema.TENANT_INDEX_PARTITION_KEY,
                    "#pk": schema.TENANT_INDEX_SORT_KEY,
                },
                ExpressionAttributeValues={":tenant": {"S": tenant}, ":prefix": {"S": schema.API_KEY_PK_PREFIX}},
            )
        else:
            pages = self._pages(
                "scan",
                FilterExpression="#kind = :kind",
                ProjectionExpression=", ".join(_LISTED_NAMES),
                ExpressionAttributeNames={**_LISTED_NAMES, "#kind": "kind"},
                ExpressionAttributeValues={":kind": {"S": schema.KIND_API_KEY}},
            )
        keys = [_info(item) for page in pages for item in page.get("Items", [])]
        return sorted(keys, key=lambda key: (key.tenant, key.created_at, key.key_id))

    def _pages(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        while True:
            page: dict[str, Any] = self._call(operation, **kwargs)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- webhook secrets -------------------------------------------------------------------------------------

    def put_webhook_secret(self, tenant: str, secret: str, *, at: datetime) -> None:
        """Replaces the tenant's secret: callbacks signed from now on use the new one."""
        self._call(
            "put_item",
            Item={
                schema.PARTITION_KEY: {"S": schema.webhook_secret_pk(tenant)},
                "kind": {"S": schema.KIND_WEBHOOK_SECRET},
                schema.TENANT_INDEX_PARTITION_KEY: {"S": tenant},
                "secret": {"S": secret},
                "rotatedAt": {"S": iso(at)},
            },
        )

    def get_webhook_secret(self, tenant: str) -> str | None:
        """The tenant's current signing secret, or None if none was ever set."""
        item = self._call(
            "get_item", Key={schema.PARTITION_KEY: {"S": schema.webhook_secret_pk(tenant)}}, ConsistentRead=True
        ).get("Item")
        return None if item is None else str(item["secret"]["S"])
