"""Object operations against a real `s3dedup serve` with real boto3 (issue #2):
PutObject/GetObject/HeadObject/DeleteObject/DeleteObjects, headers, ranges, conditions,
special keys, and the S3 error format."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import os
import time
import uuid
import xml.etree.ElementTree as ET
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from dedup.chunker import ChunkerParams, chunk_all
from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, Server

KiB = 1024
MiB = 1024 * KiB


# -- helpers (imported by test_s3_buckets.py and test_s3_copy.py) ---------------------------


def rand(n: int, seed: int | None = None) -> bytes:
    if seed is None:
        return os.urandom(n)
    import random

    return random.Random(seed).randbytes(n)


def md5hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class _Signer(SigV4Auth):
    """SigV4 as S3 uses it: the path is signed as sent, and the X-Amz-Content-SHA256 header
    the caller set is what gets signed."""

    def _normalize_url_path(self, path: str) -> str:
        return path


def raw_request(
    server: Server,
    method: str,
    path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    content_sha256: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """A SigV4-signed request sent with http.client: (status, lower-case headers, raw body).
    ``path`` must already be percent-encoded; ``query`` likewise."""
    url = server.endpoint + path + ("?" + query if query else "")
    hdrs = dict(headers or {})
    hdrs["X-Amz-Content-SHA256"] = content_sha256 or hashlib.sha256(body).hexdigest()
    req = AWSRequest(method=method, url=url, data=body, headers=hdrs)
    _Signer(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request(
            method,
            path + ("?" + query if query else ""),
            body=body,
            headers=dict(req.headers.items()),
        )
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def _keep_error_body(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    if response_dict["status_code"] >= 300:
        customized_response_dict["RawErrorBody"] = response_dict["body"]


def instrument(client: Any) -> Any:
    """Make every error response of ``client`` carry its raw body (``RawErrorBody``)."""
    client.meta.events.register("before-parse.s3.*", _keep_error_body)
    return client


@pytest.fixture
def s3(server: Server) -> Any:
    return instrument(server.client())


def error_xml(body: bytes) -> dict[str, str]:
    root = ET.fromstring(body)
    assert root.tag == "Error", body
    return {child.tag: child.text or "" for child in root}


def assert_error(exc: pytest.ExceptionInfo[ClientError], code: str, status: int) -> None:
    """The S3 error format: code, status, an x-amz-request-id header, and (when there is a
    body) the same RequestId in the XML."""
    resp = exc.value.response
    meta = resp["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == status, resp
    assert resp["Error"]["Code"] == code, resp
    rid = meta["HTTPHeaders"].get("x-amz-request-id")
    assert rid, meta["HTTPHeaders"]
    if exc.value.operation_name.startswith("Head"):
        assert meta["HTTPHeaders"].get("content-length", "0") == "0"
    else:
        assert resp["Error"].get("Message"), resp
        raw = resp.get("RawErrorBody")
        assert raw is not None, "use a client made by instrument()"
        err = error_xml(raw)
        assert err["Code"] == code
        assert err["RequestId"] == rid


def chunk_boundaries(data: bytes) -> list[int]:
    """Offsets where the server's chunker (default parameters) cuts ``data``."""
    out, pos = [], 0
    for c in chunk_all(data, ChunkerParams()):
        pos += len(c)
        out.append(pos)
    return out[:-1]


# -- PutObject / GetObject sizes ------------------------------------------------------------

SIZES = [0, 1, 4095, 4096, 4097, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, MiB, 5 * MiB]


@pytest.mark.parametrize("size", SIZES)
def test_put_get_sizes_bit_exact(s3: Any, bucket: str, size: int) -> None:
    data = rand(size)
    put = s3.put_object(Bucket=bucket, Key=f"obj-{size}", Body=data)
    assert put["ETag"] == f'"{md5hex(data)}"'
    got = s3.get_object(Bucket=bucket, Key=f"obj-{size}")
    assert got["ContentLength"] == size
    assert got["ETag"] == f'"{md5hex(data)}"'
    body = got["Body"].read()
    assert len(body) == size
    assert body == data
    head = s3.head_object(Bucket=bucket, Key=f"obj-{size}")
    assert head["ContentLength"] == size
    assert head["ETag"] == put["ETag"]
    assert head["ContentType"] == "binary/octet-stream"


def test_overwrite_replaces_content_and_metadata(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", Metadata={"a": "1"}, ContentType="x/y")
    s3.put_object(Bucket=bucket, Key="k", Body=b"second")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"second"
    assert got["Metadata"] == {}
    assert got["ContentType"] == "binary/octet-stream"


def test_put_get_missing_bucket_and_key(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=f"nope-{uuid.uuid4().hex[:8]}", Key="k", Body=b"x")
    assert_error(e, "NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=f"nope-{uuid.uuid4().hex[:8]}", Key="k")
    assert_error(e, "NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="missing")
    assert_error(e, "NoSuchKey", 404)
    assert e.value.response["Error"].get("Key") == "missing"


def test_put_content_md5(s3: Any, bucket: str) -> None:
    data = b"hello md5"
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    s3.put_object(Bucket=bucket, Key="k", Body=data, ContentMD5=good)
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k2", Body=data, ContentMD5=bad)
    assert_error(e, "BadDigest", 400)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k2")
    assert_error(e, "404", 404)


# -- stored headers and metadata -------------------------------------------------------------

CONTENT = {
    "ContentType": "text/plain; charset=utf-8",
    # gzip/deflate/br/zstd are decoded by aiohttp before the handler sees the body: see
    # test_compressed_content_encoding_stored_as_is.
    "ContentEncoding": "x-custom",
    "ContentDisposition": 'attachment; filename="report (1).txt"',
    "ContentLanguage": "de-CH",
    "CacheControl": "max-age=3600, must-revalidate",
}
META = {
    "color": "blue",
    "with-dash": "a value with spaces, commas; and = signs",
    "num": "12345",
    "mixedcase": "MiXeD vAlUe",
    "punct": "!#$%&'()*+-./:<=>?@[]^_`{|}~",
}


def test_content_headers_and_metadata_round_trip(s3: Any, bucket: str) -> None:
    data = rand(3000)
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    s3.put_object(Bucket=bucket, Key="m", Body=data, Expires=expires, Metadata=META, **CONTENT)
    for resp in (
        s3.get_object(Bucket=bucket, Key="m"),
        s3.head_object(Bucket=bucket, Key="m"),
    ):
        for field, value in CONTENT.items():
            assert resp[field] == value, field
        assert resp["Metadata"] == META
        h = resp["ResponseMetadata"]["HTTPHeaders"]
        assert h["expires"] == "Wed, 02 Jan 2030 03:04:05 GMT"
        assert h["accept-ranges"] == "bytes"
        assert "last-modified" in h
    assert s3.get_object(Bucket=bucket, Key="m")["Body"].read() == data


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_content_encoding_stored_as_is(s3: Any, bucket: str, encoding: str) -> None:
    raw = b"compressible payload " * 500
    data = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    put = s3.put_object(Bucket=bucket, Key="z", Body=data, ContentEncoding=encoding)
    assert put["ETag"] == f'"{md5hex(data)}"'
    got = s3.get_object(Bucket=bucket, Key="z")
    assert got["ContentEncoding"] == encoding
    assert got["Body"].read() == data


def test_metadata_keys_are_lower_cased(server: Server, bucket: str) -> None:
    status, _, _ = raw_request(
        server, "PUT", f"/{bucket}/k", headers={"X-Amz-Meta-CamelCase": "Value"}, body=b"x"
    )
    assert status == 200
    status, h, _ = raw_request(server, "HEAD", f"/{bucket}/k")
    assert status == 200
    assert h["x-amz-meta-camelcase"] == "Value"


def test_metadata_too_large(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", Metadata={"big": "v" * 2100})
    assert_error(e, "MetadataTooLarge", 400)


def _aws_chunked_body(data: bytes, frame: int = 1000) -> bytes:
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    out = b""
    for i in range(0, len(data), frame):
        part = data[i : i + frame]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + f"0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode()


@pytest.mark.parametrize(
    ("encoding", "stored"),
    [("aws-chunked", None), ("aws-chunked,gzip", "gzip"), ("gzip, aws-chunked", "gzip")],
)
def test_aws_chunked_content_encoding_never_stored(
    server: Server, s3: Any, bucket: str, encoding: str, stored: str | None
) -> None:
    data = rand(2500)
    status, h, body = raw_request(
        server,
        "PUT",
        f"/{bucket}/chunked",
        headers={
            "Content-Encoding": encoding,
            "X-Amz-Decoded-Content-Length": str(len(data)),
            "X-Amz-Trailer": "x-amz-checksum-crc32",
        },
        body=_aws_chunked_body(data),
        content_sha256="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )
    assert status == 200, body
    assert h["etag"] == f'"{md5hex(data)}"'
    got = s3.get_object(Bucket=bucket, Key="chunked")
    assert got["Body"].read() == data
    assert got.get("ContentEncoding") == stored
    assert "aws-chunked" not in str(got["ResponseMetadata"]["HTTPHeaders"])


def test_boto3_explicit_aws_chunked_encoding_not_stored(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"plain", ContentEncoding="aws-chunked")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"plain"
    assert "ContentEncoding" not in got


# -- ranges --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ranged(server: Server) -> tuple[str, bytes]:
    s3 = server.client()
    name = f"range-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    data = rand(1000, seed=1)
    s3.put_object(Bucket=name, Key="small", Body=data)
    return name, data


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=100-", 100, 999),
        ("bytes=-100", 900, 999),
        ("bytes=990-5000", 990, 999),
        ("bytes=999-999", 999, 999),
        ("bytes=-5000", 0, 999),
        ("bytes=0-999", 0, 999),
    ],
)
def test_get_range(s3: Any, ranged: tuple[str, bytes], spec: str, start: int, end: int) -> None:
    name, data = ranged
    got = s3.get_object(Bucket=name, Key="small", Range=spec)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes {start}-{end}/1000"
    assert got["ContentLength"] == end - start + 1
    assert got["Body"].read() == data[start : end + 1]
    assert got["ETag"] == f'"{md5hex(data)}"'


@pytest.mark.parametrize("spec", ["bytes=1000-", "bytes=1000-1000", "bytes=5000-6000"])
def test_get_range_start_past_end_416(s3: Any, ranged: tuple[str, bytes], spec: str) -> None:
    name, _ = ranged
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=name, Key="small", Range=spec)
    assert_error(e, "InvalidRange", 416)
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["content-range"] == "bytes */1000"


@pytest.mark.parametrize("spec", ["bytes=5-2", "items=0-1", "bytes=0-1,4-5", "garbage"])
def test_get_range_ignored_syntax_sends_whole_object(
    s3: Any, ranged: tuple[str, bytes], spec: str
) -> None:
    name, data = ranged
    got = s3.get_object(Bucket=name, Key="small", Range=spec)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert got["Body"].read() == data


def test_head_range(s3: Any, ranged: tuple[str, bytes]) -> None:
    name, _ = ranged
    head = s3.head_object(Bucket=name, Key="small", Range="bytes=10-19")
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["ContentLength"] == 10
    assert head["ContentRange"] == "bytes 10-19/1000"


def test_range_on_empty_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="empty", Range="bytes=0-0")
    assert_error(e, "InvalidRange", 416)


def test_ranges_across_chunks(server: Server, s3: Any, bucket: str) -> None:
    # fresh content: chunks of seeded data may already be in the shared server's index
    # (from another test, or waiting for GC), which would make fewer chunks new
    data = rand(6 * MiB)
    cuts = chunk_boundaries(data)
    assert len(cuts) >= 4, cuts  # several chunks
    chunks_before = server.stats()["chunks"]
    s3.put_object(Bucket=bucket, Key="big", Body=data)
    # the server cut where we think it did (same chunker parameters)
    assert server.stats()["chunks"] == chunks_before + len(cuts) + 1
    specs: list[tuple[int, int]] = []
    for c in cuts[:4]:
        specs += [(c - 1, c - 1), (c, c), (c - 1, c), (c - 10, c + 10), (c, c + 99)]
    specs += [
        (cuts[0] - 5, cuts[3] + 5),  # spans several chunks
        (cuts[0], cuts[1] - 1),  # exactly one whole chunk
        (0, cuts[0] - 1),  # exactly the first chunk
        (cuts[-1], len(data) - 1),  # exactly the last chunk
        (1, len(data) - 2),
    ]
    for start, end in specs:
        got = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={start}-{end}")
        assert got["ContentRange"] == f"bytes {start}-{end}/{len(data)}"
        assert got["Body"].read() == data[start : end + 1], (start, end)
    tail = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes=-{len(data) - cuts[1] + 3}")
    assert tail["Body"].read() == data[cuts[1] - 3 :]
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == data


# -- conditional reads ---------------------------------------------------------------------


@pytest.fixture
def cond(s3: Any, bucket: str) -> tuple[str, str, datetime]:
    s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")
    head = s3.head_object(Bucket=bucket, Key="c")
    return bucket, head["ETag"], head["LastModified"]


def _read_status(s3: Any, bucket: str, method: str, **kw: Any) -> int:
    fn = s3.get_object if method == "GET" else s3.head_object
    try:
        resp = fn(Bucket=bucket, Key="c", **kw)
    except ClientError as e:
        r = e.response
        status = int(r["ResponseMetadata"]["HTTPStatusCode"])
        assert r["ResponseMetadata"]["HTTPHeaders"].get("x-amz-request-id")
        if status == 412 and method == "GET":
            assert r["Error"]["Code"] == "PreconditionFailed"
        if status == 304:
            h = r["ResponseMetadata"]["HTTPHeaders"]
            assert h.get("etag") and h.get("last-modified")
            assert h.get("content-length", "0") == "0"
        return status
    if method == "GET":
        assert resp["Body"].read() == b"conditional"
    return int(resp["ResponseMetadata"]["HTTPStatusCode"])


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_conditional_reads(s3: Any, cond: tuple[str, str, datetime], method: str) -> None:
    bucket, etag, lm = cond
    before, after = lm - timedelta(seconds=10), lm + timedelta(seconds=10)
    other = '"0123456789abcdef0123456789abcdef"'
    cases: list[tuple[dict[str, Any], int]] = [
        ({}, 200),
        ({"IfMatch": etag}, 200),
        ({"IfMatch": etag.strip('"')}, 200),
        ({"IfMatch": "*"}, 200),
        ({"IfMatch": f"{other}, {etag}"}, 200),
        ({"IfMatch": other}, 412),
        ({"IfNoneMatch": etag}, 304),
        ({"IfNoneMatch": "*"}, 304),
        ({"IfNoneMatch": other}, 200),
        ({"IfModifiedSince": before}, 200),
        ({"IfModifiedSince": lm}, 304),
        ({"IfModifiedSince": after}, 304),
        ({"IfUnmodifiedSince": before}, 412),
        ({"IfUnmodifiedSince": lm}, 200),
        ({"IfUnmodifiedSince": after}, 200),
        # RFC 7232 section 6 precedence (as S3 documents it)
        ({"IfMatch": etag, "IfUnmodifiedSince": before}, 200),
        ({"IfMatch": other, "IfUnmodifiedSince": after}, 412),
        ({"IfNoneMatch": etag, "IfModifiedSince": before}, 304),
        ({"IfNoneMatch": other, "IfModifiedSince": after}, 200),
        ({"IfMatch": etag, "IfNoneMatch": etag}, 304),
        ({"IfMatch": other, "IfNoneMatch": other}, 412),
        ({"IfMatch": other, "IfNoneMatch": etag}, 412),
        ({"IfUnmodifiedSince": before, "IfNoneMatch": etag}, 412),
        ({"IfUnmodifiedSince": before, "IfModifiedSince": before}, 412),
    ]
    for kw, want in cases:
        assert _read_status(s3, bucket, method, **kw) == want, kw


def test_conditional_invalid_dates_ignored(server: Server, cond: tuple[str, str, datetime]) -> None:
    bucket, _, _ = cond
    for name in ("If-Modified-Since", "If-Unmodified-Since"):
        status, _, body = raw_request(server, "GET", f"/{bucket}/c", headers={name: "not a date"})
        assert status == 200, (name, body)
        assert body == b"conditional"


def test_conditional_with_range(s3: Any, cond: tuple[str, str, datetime]) -> None:
    bucket, etag, _ = cond
    got = s3.get_object(Bucket=bucket, Key="c", IfMatch=etag, Range="bytes=0-3")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["Body"].read() == b"cond"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"x"', Range="bytes=0-3")
    assert_error(e, "PreconditionFailed", 412)


# -- response-* overrides ------------------------------------------------------------------


def test_response_overrides(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="o", Body=b"data", ContentType="text/plain")
    got = s3.get_object(
        Bucket=bucket,
        Key="o",
        ResponseContentType="application/json",
        ResponseContentLanguage="fr",
        ResponseExpires=datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC),
        ResponseCacheControl="no-cache",
        ResponseContentDisposition='attachment; filename="x y.json"',
        ResponseContentEncoding="identity",
    )
    assert got["ContentType"] == "application/json"
    assert got["ContentLanguage"] == "fr"
    assert got["CacheControl"] == "no-cache"
    assert got["ContentDisposition"] == 'attachment; filename="x y.json"'
    assert got["ContentEncoding"] == "identity"
    assert got["ResponseMetadata"]["HTTPHeaders"]["expires"] == "Tue, 06 May 2031 07:08:09 GMT"
    assert got["Body"].read() == b"data"
    # the stored headers are unchanged
    assert s3.head_object(Bucket=bucket, Key="o")["ContentType"] == "text/plain"


def test_response_overrides_on_head(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="o", Body=b"data")
    head = s3.head_object(Bucket=bucket, Key="o", ResponseContentType="image/png")
    assert head["ContentType"] == "image/png"


# -- HeadObject ----------------------------------------------------------------------------


def test_head_matches_get(s3: Any, bucket: str) -> None:
    data = rand(5000)
    s3.put_object(
        Bucket=bucket,
        Key="h",
        Body=data,
        Metadata={"x": "y"},
        ContentType="a/b",
        **{k: v for k, v in CONTENT.items() if k != "ContentType"},
    )
    get = s3.get_object(Bucket=bucket, Key="h")
    get["Body"].read()
    # boto3 asks for checksums on GetObject by default (x-amz-checksum-mode: ENABLED)
    head = s3.head_object(Bucket=bucket, Key="h", ChecksumMode="ENABLED")
    gh = dict(get["ResponseMetadata"]["HTTPHeaders"])
    hh = dict(head["ResponseMetadata"]["HTTPHeaders"])
    for h in (gh, hh):
        for volatile in ("x-amz-request-id", "date", "transfer-encoding", "x-amz-id-2"):
            h.pop(volatile, None)
    assert gh == hh
    assert hh["content-length"] == "5000"
    assert "x-amz-checksum-crc32" in hh
    plain = s3.head_object(Bucket=bucket, Key="h")["ResponseMetadata"]["HTTPHeaders"]
    assert not any(k.startswith("x-amz-checksum") for k in plain)


def test_head_404_has_no_body(server: Server, s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="nope")
    assert_error(e, "404", 404)
    status, h, body = raw_request(server, "HEAD", f"/{bucket}/nope")
    assert status == 404
    assert body == b""
    assert h.get("content-length") == "0"
    assert h["x-amz-request-id"]
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=f"nope-{uuid.uuid4().hex[:8]}", Key="nope")
    assert_error(e, "404", 404)


# -- DeleteObject --------------------------------------------------------------------------


def test_delete_object_idempotent(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="d", Body=b"x")
    r1 = s3.delete_object(Bucket=bucket, Key="d")
    assert r1["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="d")
    assert_error(e, "NoSuchKey", 404)
    r2 = s3.delete_object(Bucket=bucket, Key="d")
    assert r2["ResponseMetadata"]["HTTPStatusCode"] == 204
    r3 = s3.delete_object(Bucket=bucket, Key="never-existed")
    assert r3["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_delete_object_missing_bucket(s3: Any) -> None:
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=f"nope-{uuid.uuid4().hex[:8]}", Key="d")
    assert_error(e, "NoSuchBucket", 404)


# -- conditional PutObject -----------------------------------------------------------------


def test_put_if_none_match(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="p", Body=b"one", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="p", Body=b"two", IfNoneMatch="*")
    assert_error(e, "PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="p")["Body"].read() == b"one"


def test_put_if_match(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="p", Body=b"one")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="p", Body=b"two", IfMatch='"' + "0" * 32 + '"')
    assert_error(e, "PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="p")["Body"].read() == b"one"
    new = s3.put_object(Bucket=bucket, Key="p", Body=b"three", IfMatch=etag)
    assert new["ETag"] == f'"{md5hex(b"three")}"'
    assert s3.get_object(Bucket=bucket, Key="p")["Body"].read() == b"three"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="p", Body=b"four", IfMatch=etag)
    assert_error(e, "PreconditionFailed", 412)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch=etag)
    assert_error(e, "NoSuchKey", 404)


def test_conditional_put_is_atomic(server: Server, bucket: str) -> None:
    """Concurrent If-None-Match: * writers: exactly one wins; then concurrent If-Match writers
    holding the same ETag: exactly one wins again."""
    clients = [server.client() for _ in range(8)]

    def attempt(i: int, **cond: str) -> tuple[int, bytes]:
        body = f"writer-{i}-{cond}".encode() * 1000  # a body (and ETag) no one else writes
        try:
            clients[i].put_object(Bucket=bucket, Key="race", Body=body, **cond)
        except ClientError as e:
            return int(e.response["ResponseMetadata"]["HTTPStatusCode"]), body
        return 200, body

    check = server.client()
    with ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(lambda i: attempt(i, IfNoneMatch="*"), range(len(clients))))
        winners = [b for status, b in results if status == 200]
        assert sorted(status for status, _ in results) == [200] + [412] * (len(clients) - 1)
        got = check.get_object(Bucket=bucket, Key="race")
        assert got["Body"].read() == winners[0]
        etag = got["ETag"]
        results = list(pool.map(lambda i: attempt(i, IfMatch=etag), range(len(clients))))
        winners = [b for status, b in results if status == 200]
        assert sorted(status for status, _ in results) == [200] + [412] * (len(clients) - 1)
        assert check.get_object(Bucket=bucket, Key="race")["Body"].read() == winners[0]


def test_refused_large_put_leaves_connection_usable(s3: Any, bucket: str) -> None:
    """A write refused before its body is read (missing bucket, failed condition) answers the
    error, and the client's next requests on its pooled connections still work."""
    data = rand(6 * MiB)
    s3.put_object(Bucket=bucket, Key="big", Body=b"small")
    for _ in range(3):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="big", Body=data, IfNoneMatch="*")
        assert_error(e, "PreconditionFailed", 412)
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=f"nope-{uuid.uuid4().hex[:8]}", Key="big", Body=data)
        assert_error(e, "NoSuchBucket", 404)
        assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"small"


# -- LastModified --------------------------------------------------------------------------


def test_last_modified_second_precision_and_consistent(s3: Any, bucket: str) -> None:
    before = int(time.time())
    put = s3.put_object(Bucket=bucket, Key="t", Body=b"time")
    after = time.time()
    head = s3.head_object(Bucket=bucket, Key="t")["LastModified"]
    get = s3.get_object(Bucket=bucket, Key="t")
    get["Body"].read()
    listed = [
        o["LastModified"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if o["Key"] == "t"
    ]
    listed_v1 = [
        o["LastModified"] for o in s3.list_objects(Bucket=bucket)["Contents"] if o["Key"] == "t"
    ]
    assert head.microsecond == 0
    assert before <= head.timestamp() <= after
    assert head == get["LastModified"] == listed[0] == listed_v1[0]
    put_date = put["ResponseMetadata"]["HTTPHeaders"]["date"]
    from email.utils import parsedate_to_datetime

    assert abs(parsedate_to_datetime(put_date).timestamp() - head.timestamp()) <= 1


# -- special keys --------------------------------------------------------------------------

SPECIAL_KEYS = [
    "plus+sign",
    "a&b=c",
    "percent%20literal%",
    "it's",
    "(paren),comma;semi",
    "user@host$cash!bang~tilde",
    "with space",
    "  leading and trailing  ",
    "ünïcödé/日本語/emoji-😀",
    "trailing/",
    "double//slash",
    "dir/sub dir/file+name.txt",
    "q?mark#hash",
    "star*[brackets]{braces}",
    'quote"back\\slash',
    "tab\tand^caret|pipe<>",
    "k" * 400,
    ".",
    "..",
    "a/../b",
    "./a",
    "/leading-slash",
    "back\\slash%2F",
    "ctrl\x01\x1f\x7fchars",
    "carriage\rreturn",
]


def test_key_with_newline(s3: Any, bucket: str) -> None:
    for key in ("line\nfeed", "crlf\r\nkey", "\n"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"nl")
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"nl"
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == {"line\nfeed", "crlf\r\nkey", "\n"}


def test_key_of_1024_bytes(s3: Any, bucket: str) -> None:
    for key in ("a" * 1024, "é" * 512, "d/" * 300):
        s3.put_object(Bucket=bucket, Key=key, Body=b"long")
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"long"
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]
        assert [o["Key"] for o in listed] == [key]


def test_special_keys_round_trip(s3: Any, bucket: str) -> None:
    for i, key in enumerate(SPECIAL_KEYS):
        body = f"body-{i}".encode()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed, key=lambda k: k.encode()) == sorted(
        SPECIAL_KEYS, key=lambda k: k.encode()
    )
    assert listed == sorted(listed, key=lambda k: k.encode())
    v1 = [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]]
    assert v1 == listed
    for key in SPECIAL_KEYS:
        s3.delete_object(Bucket=bucket, Key=key)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


@pytest.mark.parametrize("key", ["ctrl\x01char", "bad\ufffechar", "cr\rkey"])
def test_error_xml_well_formed_for_any_key(s3: Any, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=key)
    assert_error(e, "NoSuchKey", 404)
    if "\r" in key:  # kept (as &#13;), not turned into LF by the XML parser
        assert e.value.response["Error"]["Key"] == key


def test_key_too_long(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="a" * 1025, Body=b"x")
    assert_error(e, "KeyTooLongError", 400)


def test_trailing_slash_and_plain_key_distinct(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="dir", Body=b"file")
    s3.put_object(Bucket=bucket, Key="dir/", Body=b"")
    assert s3.get_object(Bucket=bucket, Key="dir")["Body"].read() == b"file"
    assert s3.get_object(Bucket=bucket, Key="dir/")["ContentLength"] == 0


# -- DeleteObjects -------------------------------------------------------------------------


def _put_many(s3: Any, bucket: str, keys: list[str]) -> None:
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())


def test_delete_objects_verbose(s3: Any, bucket: str) -> None:
    keys = ["a", "b", "c/d", "special +&%"]
    _put_many(s3, bucket, keys)
    resp = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": k} for k in [*keys, "missing"]], "Quiet": False},
    )
    assert sorted(d["Key"] for d in resp["Deleted"]) == sorted([*keys, "missing"])
    assert "Errors" not in resp
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_quiet(s3: Any, bucket: str) -> None:
    _put_many(s3, bucket, ["a", "b"])
    resp = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}], "Quiet": True}
    )
    assert resp.get("Deleted", []) == []
    assert resp.get("Errors", []) == []
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_1000(s3: Any, bucket: str) -> None:
    keys = [f"k{i:04d}" for i in range(1000)]
    for k in keys[:20]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert len(resp["Deleted"]) == 1000
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_over_1000_malformed(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k0000", Body=b"x")
    keys = [f"k{i:04d}" for i in range(1001)]
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert_error(e, "MalformedXML", 400)
    assert s3.head_object(Bucket=bucket, Key="k0000")["ContentLength"] == 1


def test_delete_objects_boto3_default_checksum(server: Server, bucket: str) -> None:
    """boto3's default (a CRC checksum header, no Content-MD5) and the legacy
    Content-MD5-only behaviour are both accepted."""
    seen: list[dict[str, str]] = []
    for mode in ("when_supported", "when_required"):
        s3 = server.client(request_checksum_calculation=mode)
        s3.meta.events.register(
            "before-send.s3.DeleteObjects",
            lambda request, **_: seen.append(dict(request.headers.items())) and None,
        )
        s3.put_object(Bucket=bucket, Key="x", Body=b"x")
        resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "x"}]})
        assert resp["Deleted"] == [{"Key": "x"}]
    lower = [{k.lower(): v for k, v in h.items()} for h in seen]
    assert any(k.startswith("x-amz-checksum-") for k in lower[0]), lower[0]
    assert "content-md5" in lower[1] or any(k.startswith("x-amz-checksum-") for k in lower[1])


def _delete_xml(keys: list[str], quiet: bool = False) -> bytes:
    objs = "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
    return f"<Delete><Quiet>{str(quiet).lower()}</Quiet>{objs}</Delete>".encode()


def _md5_header(body: bytes) -> dict[str, str]:
    return {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}


def test_delete_objects_raw_content_md5(server: Server, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="x", Body=b"x")
    body = _delete_xml(["x", "y"])
    status, _, resp = raw_request(
        server, "POST", f"/{bucket}", query="delete", headers=_md5_header(body), body=body
    )
    assert status == 200, resp
    root = ET.fromstring(resp)
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    assert root.tag == ns + "DeleteResult"
    assert sorted(el.text or "" for el in root.iter(ns + "Key")) == ["x", "y"]


def test_delete_objects_bad_md5_and_missing_md5(server: Server, bucket: str) -> None:
    body = _delete_xml(["x"])
    status, h, resp = raw_request(
        server, "POST", f"/{bucket}", query="delete", headers=_md5_header(b"other"), body=body
    )
    assert status == 400
    assert error_xml(resp)["Code"] == "BadDigest"
    status, h, resp = raw_request(server, "POST", f"/{bucket}", query="delete", body=body)
    assert status == 400
    err = error_xml(resp)
    assert err["Code"] == "InvalidRequest"
    assert err["RequestId"] == h["x-amz-request-id"]


def test_delete_objects_malformed_xml(server: Server, bucket: str) -> None:
    for body in (b"<Delete><Object></Object></Delete>", b"not xml", b"<Delete></Delete>"):
        status, _, resp = raw_request(
            server, "POST", f"/{bucket}", query="delete", headers=_md5_header(body), body=body
        )
        assert status == 400, body
        assert error_xml(resp)["Code"] == "MalformedXML"


def test_delete_objects_missing_bucket(s3: Any) -> None:
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket=f"nope-{uuid.uuid4().hex[:8]}", Delete={"Objects": [{"Key": "a"}]})
    assert_error(e, "NoSuchBucket", 404)


# -- the error format ----------------------------------------------------------------------


def test_error_xml_format(server: Server, bucket: str) -> None:
    cases = [
        ("GET", f"/{bucket}/missing", "", 404, "NoSuchKey"),
        ("GET", "/no-such-bucket-xyz/k", "", 404, "NoSuchBucket"),
        ("DELETE", "/no-such-bucket-xyz", "", 404, "NoSuchBucket"),
        ("GET", f"/{bucket}/k", "torrent", 501, "NotImplemented"),
        ("PUT", f"/{bucket}", "versioning", 501, "NotImplemented"),
        ("PUT", "/Invalid_Bucket", "", 400, "InvalidBucketName"),
    ]
    for method, path, query, status, code in cases:
        got, h, body = raw_request(server, method, path, query=query)
        assert got == status, (method, path, body)
        assert h["content-type"].startswith("application/xml")
        err = error_xml(body)
        assert err["Code"] == code
        assert err["Message"]
        assert err["RequestId"] == h["x-amz-request-id"]
        assert len(err["RequestId"]) >= 16


def test_precondition_failed_names_the_condition(s3: Any, bucket: str) -> None:
    """A 412 carries ``<Condition>`` (capitalised, as AWS sends it; botocore exposes it as
    ``Error["Condition"]``)."""
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"one")["ETag"]
    past = datetime(2000, 1, 1, tzinfo=UTC)
    cases = [
        ("If-Match", lambda: s3.get_object(Bucket=bucket, Key="c", IfMatch='"nope"')),
        (
            "If-Unmodified-Since",
            lambda: s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=past),
        ),
        (
            "If-None-Match",
            lambda: s3.put_object(Bucket=bucket, Key="c", Body=b"2", IfNoneMatch="*"),
        ),
        ("If-Match", lambda: s3.put_object(Bucket=bucket, Key="c", Body=b"3", IfMatch='"nope"')),
    ]
    for condition, call in cases:
        with pytest.raises(ClientError) as e:
            call()
        assert_error(e, "PreconditionFailed", 412)
        assert e.value.response["Error"]["Condition"] == condition
        assert error_xml(e.value.response["RawErrorBody"])["Condition"] == condition
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"one"


def test_fsck_clean_after_objects(server: Server) -> None:
    report = server.fsck()
    assert report["ok"], report["output"]
