"""CopyObject against a real `s3dedup serve` with real boto3 (issue #2): directives, copies
onto themselves, copy-source conditions, special keys, errors, and that a copy moves no data."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server
from tests.test_s3_objects import (
    SPECIAL_KEYS,
    assert_error,
    error_xml,
    instrument,
    md5hex,
    rand,
    raw_request,
)

MiB = 1024 * 1024


@pytest.fixture
def s3(server: Server) -> Any:
    return instrument(server.client())


def _put_source(s3: Any, bucket: str, key: str = "src", data: bytes = b"source data") -> str:
    etag: str = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType="text/plain",
        ContentDisposition="inline",
        CacheControl="no-store",
        Metadata={"origin": "source", "n": "1"},
    )["ETag"]
    return etag


# -- directives ----------------------------------------------------------------------------


def test_copy_default_directive_copies_metadata(s3: Any, bucket: str) -> None:
    etag = _put_source(s3, bucket)
    before = int(time.time())
    resp = s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        # ignored with the COPY directive
        Metadata={"ignored": "yes"},
        ContentType="image/png",
    )
    after = time.time()
    result = resp["CopyObjectResult"]
    assert result["ETag"] == etag
    assert before <= result["LastModified"].timestamp() <= after
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == b"source data"
    assert got["ETag"] == etag
    assert got["ContentType"] == "text/plain"
    assert got["ContentDisposition"] == "inline"
    assert got["CacheControl"] == "no-store"
    assert got["Metadata"] == {"origin": "source", "n": "1"}
    assert got["LastModified"] == result["LastModified"]


def test_copy_explicit_copy_directive(s3: Any, bucket: str) -> None:
    _put_source(s3, bucket)
    s3.copy_object(Bucket=bucket, Key="dst", CopySource=f"{bucket}/src", MetadataDirective="COPY")
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["Metadata"] == {"origin": "source", "n": "1"}
    assert head["ContentType"] == "text/plain"


def test_copy_replace_directive(s3: Any, bucket: str) -> None:
    etag = _put_source(s3, bucket)
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        Metadata={"new": "value"},
        ContentType="application/json",
        ContentLanguage="en",
    )
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["ETag"] == etag
    assert head["Metadata"] == {"new": "value"}
    assert head["ContentType"] == "application/json"
    assert head["ContentLanguage"] == "en"
    assert "ContentDisposition" not in head
    assert "CacheControl" not in head
    # the source is untouched
    src = s3.head_object(Bucket=bucket, Key="src")
    assert src["Metadata"] == {"origin": "source", "n": "1"}
    assert src["ContentType"] == "text/plain"


def test_copy_replace_without_headers_clears_metadata(s3: Any, bucket: str) -> None:
    _put_source(s3, bucket)
    s3.copy_object(
        Bucket=bucket, Key="dst", CopySource=f"{bucket}/src", MetadataDirective="REPLACE"
    )
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["Metadata"] == {}
    assert head["ContentType"] == "binary/octet-stream"


def test_copy_invalid_directive(s3: Any, server: Server, bucket: str) -> None:
    _put_source(s3, bucket)
    status, h, body = raw_request(
        server,
        "PUT",
        f"/{bucket}/dst",
        headers={"x-amz-copy-source": f"/{bucket}/src", "x-amz-metadata-directive": "MOVE"},
    )
    assert status == 400
    err = error_xml(body)
    assert err["Code"] == "InvalidArgument"
    assert err["RequestId"] == h["x-amz-request-id"]


def test_copy_across_buckets(s3: Any, bucket: str) -> None:
    data = rand(100_000)
    s3.put_object(Bucket=bucket, Key="src", Body=data)
    other = f"copy-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=other)
    s3.copy_object(Bucket=other, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    got = s3.get_object(Bucket=other, Key="dst")
    assert got["Body"].read() == data
    assert got["ETag"] == f'"{md5hex(data)}"'


def test_copy_overwrites_existing_destination(s3: Any, bucket: str) -> None:
    _put_source(s3, bucket)
    s3.put_object(Bucket=bucket, Key="dst", Body=rand(200_000))
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"source data"


# -- copy onto itself ----------------------------------------------------------------------


def test_copy_onto_itself_without_replace_is_invalid(s3: Any, bucket: str) -> None:
    _put_source(s3, bucket)
    for extra in ({}, {"MetadataDirective": "COPY"}):
        with pytest.raises(ClientError) as e:
            s3.copy_object(
                Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"}, **extra
            )
        assert_error(e, "InvalidRequest", 400)
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"origin": "source", "n": "1"}


def test_copy_onto_itself_with_replace_updates_metadata(s3: Any, bucket: str) -> None:
    data = rand(3 * MiB)
    etag = s3.put_object(Bucket=bucket, Key="self", Body=data, Metadata={"v": "1"})["ETag"]
    old = s3.head_object(Bucket=bucket, Key="self")["LastModified"]
    time.sleep(1.05)
    resp = s3.copy_object(
        Bucket=bucket,
        Key="self",
        CopySource={"Bucket": bucket, "Key": "self"},
        MetadataDirective="REPLACE",
        Metadata={"v": "2"},
        ContentType="video/mp4",
    )
    assert resp["CopyObjectResult"]["ETag"] == etag
    head = s3.head_object(Bucket=bucket, Key="self")
    assert head["Metadata"] == {"v": "2"}
    assert head["ContentType"] == "video/mp4"
    assert head["LastModified"] > old
    assert s3.get_object(Bucket=bucket, Key="self")["Body"].read() == data


# -- copy-source conditions ----------------------------------------------------------------


def test_copy_source_conditions(s3: Any, bucket: str) -> None:
    etag = _put_source(s3, bucket)
    lm = s3.head_object(Bucket=bucket, Key="src")["LastModified"]
    before, after = lm - timedelta(seconds=10), lm + timedelta(seconds=10)
    other = '"' + "0" * 32 + '"'
    failing: list[dict[str, Any]] = [
        {"CopySourceIfMatch": other},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfNoneMatch": "*"},
        {"CopySourceIfModifiedSince": after},
        {"CopySourceIfModifiedSince": lm},
        {"CopySourceIfUnmodifiedSince": before},
        {"CopySourceIfMatch": other, "CopySourceIfUnmodifiedSince": after},
        {"CopySourceIfNoneMatch": etag, "CopySourceIfModifiedSince": before},
    ]
    for kw in failing:
        with pytest.raises(ClientError) as e:
            s3.copy_object(
                Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, **kw
            )
        assert_error(e, "PreconditionFailed", 412)
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket=bucket, Key="dst")
        assert_error(e, "404", 404)
    passing: list[dict[str, Any]] = [
        {"CopySourceIfMatch": etag},
        {"CopySourceIfNoneMatch": other},
        {"CopySourceIfModifiedSince": before},
        {"CopySourceIfUnmodifiedSince": after},
        {"CopySourceIfUnmodifiedSince": lm},
        # S3's documented combinations: If-Match true wins over If-Unmodified-Since false,
        # and If-None-Match true wins over If-Modified-Since false.
        {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": before},
        {"CopySourceIfNoneMatch": other, "CopySourceIfModifiedSince": after},
    ]
    for i, kw in enumerate(passing):
        key = f"ok-{i}"
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": "src"}, **kw)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"source data", kw


def test_copy_destination_conditions(s3: Any, bucket: str) -> None:
    _put_source(s3, bucket)
    s3.put_object(Bucket=bucket, Key="dst", Body=b"existing")
    with pytest.raises(ClientError) as e:
        s3.copy_object(
            Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, IfNoneMatch="*"
        )
    assert_error(e, "PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"existing"
    s3.copy_object(
        Bucket=bucket, Key="fresh", CopySource={"Bucket": bucket, "Key": "src"}, IfNoneMatch="*"
    )
    assert s3.get_object(Bucket=bucket, Key="fresh")["Body"].read() == b"source data"


# -- keys ----------------------------------------------------------------------------------


def test_copy_special_keys(s3: Any, bucket: str) -> None:
    for i, key in enumerate(SPECIAL_KEYS):
        body = f"special-{i}".encode()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        dst = "copy/" + key
        s3.copy_object(Bucket=bucket, Key=dst, CopySource={"Bucket": bucket, "Key": key})
        assert s3.get_object(Bucket=bucket, Key=dst)["Body"].read() == body, key
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="copy/")["Contents"]}
    assert listed == {"copy/" + k for k in SPECIAL_KEYS}


def test_copy_source_as_encoded_string(s3: Any, server: Server, bucket: str) -> None:
    key = "dir/ünï cödé+plus&amp=%.txt"
    s3.put_object(Bucket=bucket, Key=key, Body=b"encoded")
    for n, source in enumerate(
        (
            f"/{bucket}/{quote(key, safe='/')}",
            f"{bucket}/{quote(key, safe='')}",
            f"/{bucket}/{quote(key, safe='/')}?versionId=null",
        )
    ):
        status, _, body = raw_request(
            server, "PUT", f"/{bucket}/dst{n}", headers={"x-amz-copy-source": source}
        )
        assert status == 200, (source, body)
        assert s3.get_object(Bucket=bucket, Key=f"dst{n}")["Body"].read() == b"encoded"


@pytest.mark.parametrize("source", ["", "/", "bucket-only", "/bucket-only/"])
def test_copy_source_malformed(server: Server, bucket: str, source: str) -> None:
    status, h, body = raw_request(
        server, "PUT", f"/{bucket}/dst", headers={"x-amz-copy-source": source}
    )
    assert status == 400, body
    err = error_xml(body)
    assert err["Code"] in ("InvalidArgument", "InvalidRequest")
    assert err["RequestId"] == h["x-amz-request-id"]


# -- errors --------------------------------------------------------------------------------


def test_copy_missing_source_key(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "nope"})
    assert_error(e, "NoSuchKey", 404)


def test_copy_missing_buckets(s3: Any, bucket: str) -> None:
    _put_source(s3, bucket)
    missing = f"missing-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": missing, "Key": "src"})
    assert_error(e, "NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=missing, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert_error(e, "NoSuchBucket", 404)


# -- no data moves -------------------------------------------------------------------------


def test_copy_moves_no_data(server: Server, s3: Any, bucket: str) -> None:
    data = rand(6 * MiB)
    s3.put_object(Bucket=bucket, Key="big", Body=data)
    server.gc(grace=0)  # garbage left by earlier tests must not count below
    before = server.stats()
    resp = s3.copy_object(
        Bucket=bucket, Key="big-copy", CopySource={"Bucket": bucket, "Key": "big"}
    )
    assert resp["CopyObjectResult"]["ETag"] == f'"{md5hex(data)}"'
    after = server.stats()
    assert after["stored_bytes"] == before["stored_bytes"]
    assert after["chunks"] == before["chunks"]
    assert after["logical_bytes"] == before["logical_bytes"] + len(data)
    assert after["objects"] == before["objects"] + 1

    # deleting the source keeps the copy readable, even after a GC with no grace period
    s3.delete_object(Bucket=bucket, Key="big")
    server.gc(grace=0)
    assert s3.get_object(Bucket=bucket, Key="big-copy")["Body"].read() == data
    mid = server.stats()
    assert mid["stored_bytes"] == before["stored_bytes"]
    assert mid["logical_bytes"] == before["logical_bytes"]
    assert server.fsck()["ok"]

    # a copy onto itself (REPLACE) keeps the chunks referenced exactly once
    s3.copy_object(
        Bucket=bucket,
        Key="big-copy",
        CopySource={"Bucket": bucket, "Key": "big-copy"},
        MetadataDirective="REPLACE",
        Metadata={"k": "v"},
    )
    server.gc(grace=0)
    assert s3.get_object(Bucket=bucket, Key="big-copy")["Body"].read() == data
    assert server.fsck()["ok"]

    # and deleting the last reference frees the data
    s3.delete_object(Bucket=bucket, Key="big-copy")
    freed = server.gc(grace=0)
    assert freed["bytes_freed"] >= len(data)
    end = server.stats()
    assert end["stored_bytes"] == before["stored_bytes"] - len(data)
    assert end["logical_bytes"] == before["logical_bytes"] - len(data)


def test_fsck_clean_after_copies(server: Server) -> None:
    report = server.fsck()
    assert report["ok"], report["output"]
