"""ObjectStore on S3: whole-object reads and writes addressed by s3://bucket/key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from runtime.domain.ports import ObjectNotFound
from runtime.domain.s3uri import split_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})


class S3ObjectStore:
    """Takes the process's S3 client (runtime.aws_clients)."""

    def __init__(self, client: S3Client) -> None:
        self._client = client

    def get_bytes(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
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
        bucket, key = split_s3_uri(uri)
        try:
            self._client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                raise ObjectNotFound(uri) from exc
            raise
