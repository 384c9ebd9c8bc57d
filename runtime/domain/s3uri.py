"""The one parser of `s3://bucket/key` URIs, the addresses ObjectStore reads and writes: job params are
checked with it at submit (a bad one is a 422) and the S3 adapter splits them with it."""

from __future__ import annotations

import re

# S3's bucket naming rules: 3-63 characters, lowercase letters, digits, dots and hyphens,
# starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_KEY_BYTES = 1024


def split_s3_uri(uri: str) -> tuple[str, str]:
    """("bucket", "key") of an s3://bucket/key URI; ValueError naming the bad value otherwise."""
    if not uri.startswith("s3://"):
        raise ValueError(f"expected s3://bucket/key, got {uri!r}")
    bucket, sep, key = uri[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ValueError(f"bad bucket name in {uri!r}")
    if not sep or not key:
        raise ValueError(f"missing object key in {uri!r}")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValueError(f"object key longer than {MAX_KEY_BYTES} bytes in {uri[:80]!r}...")
    if any(ord(ch) < 32 for ch in key):
        raise ValueError(f"control character in object key of {uri!r}")
    return bucket, key
