"""Tenant confinement of S3 objects: job params may name objects only under `tenants/<tenant>/` in the documents
bucket. Checked at submit (a 422 naming the field) and again by the worker before any S3 call, where the job's
object store is also wrapped so that a handler cannot reach outside the prefix whatever its params say."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from runtime.domain.ports import ObjectChunks, ObjectStore
from runtime.domain.s3uri import split_s3_uri
from runtime.job_types.registry import PermanentJobError

TENANTS_PREFIX = "tenants/"
OUTSIDE_TENANT_CODE = "object_outside_tenant"


def tenant_prefix(tenant: str) -> str:
    """The key prefix a tenant's objects live under in the documents bucket."""
    return f"{TENANTS_PREFIX}{tenant}/"


@dataclass(frozen=True)
class Confinement:
    """The documents bucket, and the rule that a tenant's jobs stay under its prefix in it."""

    bucket: str

    def allowed(self, tenant: str) -> str:
        """The prefix of the URIs a tenant's jobs may name, as shown in refusals."""
        return f"s3://{self.bucket}/{tenant_prefix(tenant)}"

    def uri_problem(self, uri: str, tenant: str) -> str | None:
        """Why `uri` is outside the tenant's objects, or None when it is inside."""
        if not tenant:
            return "the job has no tenant, so it may name no object"
        try:
            bucket, key = split_s3_uri(uri)
        except ValueError as exc:
            return str(exc)
        # S3 keys are literal, but a ".." segment reads as an escape to every person and most tools: refuse it.
        if bucket != self.bucket or not key.startswith(tenant_prefix(tenant)) or ".." in key.split("/"):
            shown = uri if len(uri) <= 120 else uri[:117] + "..."
            return f"must be an object under {self.allowed(tenant)}, got {shown!r}"
        return None

    def params_problem(self, params: dict[str, Any], tenant: str) -> tuple[str, str] | None:
        """(field, problem) for the first string in `params` that names an S3 object outside the tenant's
        prefix, e.g. ("params.source", "must be an object under s3://docs/tenants/acme/, got ..."); None if none."""
        for path, value in _strings(params, "params"):
            if value[:5].lower() == "s3://":
                problem = self.uri_problem(value, tenant)
                if problem is not None:
                    return path, problem
        return None

    def objects_for(self, objects: ObjectStore, tenant: str) -> ObjectStore:
        """`objects` limited to the tenant's prefix: any other URI is a permanent job error, and nothing is read."""
        return _ConfinedObjects(objects, self, tenant)


class _ConfinedObjects:
    def __init__(self, objects: ObjectStore, confinement: Confinement, tenant: str) -> None:
        self._objects = objects
        self._confinement = confinement
        self._tenant = tenant

    def _check(self, uri: str) -> None:
        problem = self._confinement.uri_problem(uri, self._tenant)
        if problem is not None:
            raise PermanentJobError(OUTSIDE_TENANT_CODE, f"object {problem}")

    def get_bytes(self, uri: str) -> bytes:
        self._check(uri)
        return self._objects.get_bytes(uri)

    def read_chunks(self, uri: str, *, chunk_bytes: int) -> ObjectChunks:
        self._check(uri)
        return self._objects.read_chunks(uri, chunk_bytes=chunk_bytes)

    def put_bytes(self, uri: str, data: bytes, *, content_type: str) -> None:
        self._check(uri)
        self._objects.put_bytes(uri, data, content_type=content_type)


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")
