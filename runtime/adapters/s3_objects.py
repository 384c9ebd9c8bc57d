"""ObjectStore on S3: whole-object and chunked reads, and writes, addressed by s3://bucket/key; and the short-lived
download links of results stored apart (ResultLinks)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from runtime.adapters.aws_errors import error_code, outages_as
from runtime.domain.job import ResultRef
from runtime.domain.ports import ObjectChunks, ObjectNotFound, ObjectStoreUnavailable, ObjectWriteRefused
from runtime.domain.s3uri import split_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
# S3 codes that mean "not answering now" rather than "never": throttling and its own errors (5xx count too).
_UNAVAILABLE_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"})


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
            with outages_as(ObjectStoreUnavailable, "s3 put_object", _UNAVAILABLE_CODES):
                self._client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        except ClientError as exc:
            code = error_code(exc)
            if code == "NoSuchBucket":
                raise ObjectNotFound(uri) from exc
            raise ObjectWriteRefused(uri, code or "refused") from exc


def _chunks(body: Any, chunk_bytes: int) -> Iterator[bytes]:
    # The body is closed when the reader stops, early (a cancel, a size limit) or at the end.
    try:
        while chunk := body.read(chunk_bytes):
            yield bytes(chunk)
    finally:
        body.close()


class S3ResultLinks:
    """Presigned GET URLs of results stored apart. Signing is local (no request); the client is built on first use,
    so that an API that never shows such a result never builds it. A URL lasts `expires_s`, and never longer than
    the credentials that signed it (a role's session)."""

    def __init__(self, client: Callable[[], S3Client], *, expires_s: int) -> None:
        self._client = client
        self._expires_s = expires_s

    def url_for(self, ref: ResultRef) -> str:
        bucket, key = split_s3_uri(ref.uri)
        url: str = self._client().generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=self._expires_s
        )
        return url
