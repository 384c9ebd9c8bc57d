"""What the admin command does, without argument parsing or printing: create, list and revoke API keys and rotate
a tenant's webhook secret, all on the access table."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from runtime.adapters.dynamodb.access_store import DuplicateApiKey
from runtime.auth.api_keys import KEY_ID_PATTERN, ApiKeyInfo, NewApiKey, StoredApiKey, new_api_key
from runtime.auth.principal import ALL_SCOPES, check_tenant, parse_scopes
from runtime.domain.ports import Clock

WEBHOOK_SECRET_PREFIX = "whsec_"
_WEBHOOK_SECRET_BYTES = 32
_CREATE_ATTEMPTS = 3  # a 64-bit key id collides practically never; a retry costs nothing


class AccessStore(Protocol):
    def put_api_key(self, key: StoredApiKey) -> None: ...
    def list_api_keys(self, tenant: str | None = None) -> list[ApiKeyInfo]: ...
    def revoke_api_key(self, key_id: str, *, at: datetime) -> ApiKeyInfo: ...
    def put_webhook_secret(self, tenant: str, secret: str, *, at: datetime) -> None: ...


class BadKeyId(ValueError):
    """Not the shape of a key id (16 hex characters)."""


@dataclass(frozen=True)
class RotatedSecret:
    tenant: str
    secret: str


class AccessAdmin:
    def __init__(self, store: AccessStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def create_key(self, tenant: str, scopes: Iterable[str] = ALL_SCOPES) -> NewApiKey:
        """InvalidTenant / InvalidScope for bad input; the token in the result is shown once, stored nowhere."""
        tenant = check_tenant(tenant)
        checked = parse_scopes(scopes)
        for _ in range(_CREATE_ATTEMPTS):
            created = new_api_key(tenant, checked, self._clock.now())
            try:
                self._store.put_api_key(created.stored)
            except DuplicateApiKey:
                continue
            return created
        raise RuntimeError("could not find a free key id")

    def list_keys(self, tenant: str | None = None) -> list[ApiKeyInfo]:
        return self._store.list_api_keys(check_tenant(tenant) if tenant is not None else None)

    def revoke_key(self, key_id: str) -> ApiKeyInfo:
        """UnknownApiKey when there is no such key; revoking twice keeps the first revocation time."""
        if not KEY_ID_PATTERN.fullmatch(key_id):
            raise BadKeyId(f"bad key id {key_id!r}: expected 16 hex characters (see `keys list`)")
        return self._store.revoke_api_key(key_id, at=self._clock.now())

    def rotate_webhook_secret(self, tenant: str) -> RotatedSecret:
        """A new random secret replaces the old one at once; it is returned once, to give to the tenant."""
        tenant = check_tenant(tenant)
        secret = WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(_WEBHOOK_SECRET_BYTES)
        self._store.put_webhook_secret(tenant, secret, at=self._clock.now())
        return RotatedSecret(tenant=tenant, secret=secret)
