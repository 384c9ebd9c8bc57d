"""The `s3://bucket/key` params type shared by the job types, validated at submit (a bad one is a 422)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from runtime.domain.s3uri import split_s3_uri


def _check(uri: str) -> str:
    split_s3_uri(uri)
    return uri


S3Uri = Annotated[str, AfterValidator(_check)]
