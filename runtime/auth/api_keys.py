"""API keys: the token format, how a key is stored (a hash only), and verification with a bounded in-process cache.

A token is `jt_<keyId>_<secret>`: the key id finds the stored record with one GetItem, the secret is compared as a
SHA-256 hash in constant time. The secret is 256 random bits, so a fast hash is enough (no password KDF needed)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from runtime.auth.principal import Principal

TOKEN_PREFIX = "jt_"
_KEY_ID_BYTES = 8  # 16 hex characters
_SECRET_BYTES = 32  # 43 url-safe characters
_TOKEN = re.compile(r"jt_(?P<key_id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})")
KEY_ID_PATTERN = re.compile(r"[0-9a-f]{16}")
# Distinct key ids remembered at once (found or not); the oldest is dropped first.
CACHE_MAX_ENTRIES = 10_000


class CredentialsUnavailable(Exception):
    """The credential store did not answer: the caller cannot be checked now (not the caller's fault)."""


@dataclass(frozen=True)
class ApiKeyInfo:
    """What may be shown about a key (listings): no secret, no hash."""

    key_id: str
    tenant: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class StoredApiKey:
    """An API key as the access table holds it: the secret's hash, never the secret itself."""

    info: ApiKeyInfo
    secret_hash: str


@dataclass(frozen=True)
class NewApiKey:
    """A key just made: `token` is shown once and stored nowhere."""

    stored: StoredApiKey
    token: str


class ApiKeyReader(Protocol):
    def get_api_key(self, key_id: str) -> StoredApiKey | None:
        """The stored key or None; raises CredentialsUnavailable when the store does not answer."""


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_api_key(tenant: str, scopes: frozenset[str], created_at: datetime) -> NewApiKey:
    key_id = secrets.token_hex(_KEY_ID_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    info = ApiKeyInfo(key_id=key_id, tenant=tenant, scopes=scopes, created_at=created_at)
    stored = StoredApiKey(info=info, secret_hash=hash_secret(secret))
    return NewApiKey(stored=stored, token=f"{TOKEN_PREFIX}{key_id}_{secret}")


def looks_like_api_key(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX)


class InvalidApiKey(Exception):
    """Malformed, unknown or revoked; the message is safe to show the caller."""


class ApiKeyVerifier:
    """Checks tokens against stored keys, remembering each lookup (found for `ttl_s`, not found for
    `negative_ttl_s`) so that a request usually costs no table read. A revocation therefore takes effect within
    `ttl_s`: the documented bound. Thread-safe (the API verifies in a thread pool)."""

    def __init__(
        self,
        reader: ApiKeyReader,
        *,
        ttl_s: float,
        negative_ttl_s: float,
        max_entries: int = CACHE_MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._ttl_s = ttl_s
        self._negative_ttl_s = negative_ttl_s
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[float, StoredApiKey | None]] = OrderedDict()

    @property
    def revocation_bound_s(self) -> float:
        return self._ttl_s

    def verify(self, token: str) -> Principal:
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise InvalidApiKey("malformed api key")
        stored = self._lookup(match["key_id"])
        # Compared even for an unknown key, so timing does not tell which key ids exist.
        expected = stored.secret_hash if stored is not None else "0" * 64
        matches = hmac.compare_digest(expected, hash_secret(match["secret"]))
        if stored is None or not matches or stored.info.revoked_at is not None:
            raise InvalidApiKey("unknown or revoked api key")
        return Principal(tenant=stored.info.tenant, scopes=stored.info.scopes, key_id=stored.info.key_id)

    def _lookup(self, key_id: str) -> StoredApiKey | None:
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(key_id)
            if cached is not None and cached[0] > now:
                self._cache.move_to_end(key_id)
                return cached[1]
        stored = self._reader.get_api_key(key_id)  # outside the lock: a slow read must not block other keys
        with self._lock:
            ttl_s = self._ttl_s if stored is not None else self._negative_ttl_s
            self._cache[key_id] = (now + ttl_s, stored)
            self._cache.move_to_end(key_id)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return stored
