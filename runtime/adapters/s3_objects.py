"""ObjectStore on S3: whole-object and chunked reads, and writes, addressed by s3://bucket/key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from runtime.domain.ports import ObjectChunks, ObjectNotFound
from runtime.domain.s3uri import split_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})


class S3ObjectStore:
    """Takes the process's S3 client (runtime.aws_clients)."""

    def __init__(self, client: S3Client) -> None:
        self._client = client

    def get_bytes(self, uri: str) -> bytes:
        body = self._open(uri)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def read_chunks(self, uri: str, *, chunk_bytes: int) -> ObjectChunks:
        response = self._open(uri)
        return ObjectChunks(size=int(response["ContentLength"]), chunks=_chunks(response["Body"], chunk_bytes))

    def _open(self, uri: str) -> Any:
        bucket, key = split_s3_uri(uri)
        try:
            return self._client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                raise ObjectNotFound(uri) from exc
            raise

    def put_bytes(self, uri: str, data: bytes, *, content_type: str) -> None:
        bucket, key = split_s3_uri(uri)
        try:
            self._client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                raise ObjectNotFound(uri) from exc
            raise


def _chunks(body: Any, chunk_bytes: int) -> Iterator[bytes]:
    # The body is closed when the reader stops, early (a cancel, a size limit) or at the end.
    try:
        while chunk := body.read(chunk_bytes):
            yield bytes(chunk)
    finally:
        body.close()
