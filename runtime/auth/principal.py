"""The authenticated caller (tenant + scopes), the scope names and the tenant name rule."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

SCOPE_READ = "jobs:read"
SCOPE_WRITE = "jobs:write"
ALL_SCOPES = (SCOPE_READ, SCOPE_WRITE)
# What a scope grants beyond itself: writing a job implies reading it.
_IMPLIED = {SCOPE_WRITE: frozenset({SCOPE_READ})}

# Tenants become S3 prefixes (tenants/<tenant>/) and key attributes: lowercase DNS-label-like names only.
TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
TENANT_RULE = "1-63 characters of a-z 0-9 and '-', starting with a letter or digit"


class InvalidTenant(ValueError):
    """A tenant name that breaks TENANT_RULE."""


class InvalidScope(ValueError):
    """A scope name that is not one of ALL_SCOPES."""


def check_tenant(tenant: str) -> str:
    if not TENANT_PATTERN.fullmatch(tenant):
        raise InvalidTenant(f"bad tenant name {tenant!r}: {TENANT_RULE}")
    return tenant


def parse_scopes(values: Iterable[str]) -> frozenset[str]:
    """Known scopes only; an empty set is refused (a key that can do nothing is a mistake)."""
    scopes = frozenset(value.strip() for value in values if value.strip())
    unknown = sorted(scopes - set(ALL_SCOPES))
    if unknown:
        raise InvalidScope(f"unknown scope {unknown[0]!r}; known scopes: {', '.join(ALL_SCOPES)}")
    if not scopes:
        raise InvalidScope(f"no scope given; known scopes: {', '.join(ALL_SCOPES)}")
    return scopes


@dataclass(frozen=True)
class Principal:
    """Who made the request: the tenant every job access is scoped to, what it may do, and which credential
    (an API key id, or the OIDC token's subject) proved it."""

    tenant: str
    scopes: frozenset[str]
    key_id: str | None = None
    subject: str | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or any(scope in _IMPLIED.get(held, ()) for held in self.scopes)

    @property
    def credential(self) -> str:
        """For logs: `key:<id>` or `oidc:<subject>`; never the secret."""
        return f"key:{self.key_id}" if self.key_id is not None else f"oidc:{self.subject}"
