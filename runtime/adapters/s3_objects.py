"""ObjectStore on S3: whole-object reads and writes addressed by s3://bucket/key."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from runtime.domain.ports import ObjectNotFound

_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})


def split_uri(uri: str) -> tuple[str, str]:
    """("bucket", "key") of "s3://bucket/key"; ValueError for anything else."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3 uri: {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or not key:
        raise ValueError(f"s3 uri needs a bucket and a key: {uri!r}")
    return bucket, key


class S3ObjectStore:
    """`client` is a boto3 S3 client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def get_bytes(self, uri: str) -> bytes:
        bucket, key = split_uri(uri)
        try:
            response = self._client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                raise ObjectNotFound(uri) from exc
            raise
        body = response["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def put_bytes(self, uri: str, data: bytes, *, content_type: str) -> None:
        bucket, key = split_uri(uri)
        try:
            self._client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                raise ObjectNotFound(uri) from exc
            raise
