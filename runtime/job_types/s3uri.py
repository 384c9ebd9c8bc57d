"""The `s3://bucket/key` params type shared by the job types, validated at submit (a bad one is a 422)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

from runtime.domain.s3uri import split_s3_uri


def _check(uri: str) -> str:
    split_s3_uri(uri)
    return uri


# What OpenAPI shows: the shape only. Which bucket and prefix a caller may name (the deployment's documents bucket,
# under tenants/<tenant>/) depends on the deployment and the caller, so the server checks that at submit.
_DOCUMENTED = {
    "type": "string",
    "pattern": r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/tenants/[^/]+/.+$",
    "description": "s3://<documents bucket>/tenants/<your tenant>/<key>: an object of the caller's own tenant "
    "in this deployment's documents bucket (anything else is a 422 naming the field)",
}

S3Uri = Annotated[str, AfterValidator(_check), WithJsonSchema(_DOCUMENTED)]
