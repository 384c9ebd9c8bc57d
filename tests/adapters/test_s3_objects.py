"""S3ObjectStore against the moto server over HTTP."""

from __future__ import annotations

import pytest

from runtime.adapters.s3_objects import S3ObjectStore
from runtime.domain.ports import ObjectNotFound
from runtime.domain.s3uri import split_s3_uri
from tests.adapters.resources import counted_client, raw_client, unique


@pytest.fixture
def bucket(moto_server: str) -> str:
    name = unique("adapter-docs")
    raw_client("s3", moto_server).create_bucket(Bucket=name)
    return name


@pytest.fixture
def objects(moto_server: str) -> S3ObjectStore:
    return S3ObjectStore(counted_client("s3", moto_server))


def test_put_then_get(objects: S3ObjectStore, bucket: str, moto_server: str) -> None:
    uri = f"s3://{bucket}/out/summary.json"
    objects.put_bytes(uri, b'{"a":1}', content_type="application/json")
    assert objects.get_bytes(uri) == b'{"a":1}'
    head = raw_client("s3", moto_server).head_object(Bucket=bucket, Key="out/summary.json")
    assert head["ContentType"] == "application/json"


def test_missing_key_and_bucket(objects: S3ObjectStore, bucket: str) -> None:
    with pytest.raises(ObjectNotFound) as caught:
        objects.get_bytes(f"s3://{bucket}/nope.txt")
    assert caught.value.uri == f"s3://{bucket}/nope.txt"
    with pytest.raises(ObjectNotFound):
        objects.get_bytes("s3://no-such-bucket-xyz/a.txt")
    with pytest.raises(ObjectNotFound):
        objects.put_bytes("s3://no-such-bucket-xyz/a.txt", b"x", content_type="text/plain")


def test_a_chunked_read_gives_the_size_first_then_the_bytes_in_order(objects: S3ObjectStore, bucket: str) -> None:
    uri = f"s3://{bucket}/in/big.bin"
    data = bytes(range(256)) * 41  # 10,496 bytes
    objects.put_bytes(uri, data, content_type="application/octet-stream")
    reading = objects.read_chunks(uri, chunk_bytes=4096)
    assert reading.size == len(data)
    chunks = list(reading.chunks)
    assert [len(chunk) for chunk in chunks] == [4096, 4096, 2304] and b"".join(chunks) == data
    with pytest.raises(ObjectNotFound):
        objects.read_chunks(f"s3://{bucket}/nope.bin", chunk_bytes=4096)  # at the call, before any chunk


@pytest.mark.parametrize("uri", ["http://b/k", "s3://bucket", "s3://bucket/", "s3:///key", "s3://Bucket/key"])
def test_bad_uris_are_refused_before_any_request(objects: S3ObjectStore, uri: str) -> None:
    with pytest.raises(ValueError, match="s3"):
        objects.get_bytes(uri)
    with pytest.raises(ValueError, match="s3"):
        objects.put_bytes(uri, b"x", content_type="text/plain")


def test_split_keeps_nested_keys() -> None:
    assert split_s3_uri("s3://bkt/a/b/c.txt") == ("bkt", "a/b/c.txt")
