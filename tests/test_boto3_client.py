"""boto3 against a real server, as applications use it, where the protocol modules do not
already cover it: streaming (non-seekable) transfers, the resource API, waiters, presigned
URLs sent by `requests`, browser POST (not supported: a clean S3 error), the checksum
settings of the client, authentication failures, and many threads through one client."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import crc32c
import pytest
import requests
from awscrt import checksums as crt_checksums
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, WaiterError
from botocore.httpchecksum import StreamingChecksumBody

from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, Server, make_client

MiB = 1 << 20
FAST_WAIT = {"Delay": 1, "MaxAttempts": 3}


# --------------------------------------------------------------------------- helpers


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def checksum(algo: str, data: bytes) -> str:
    if algo == "CRC32":
        return b64(zlib.crc32(data).to_bytes(4, "big"))
    if algo == "CRC32C":
        return b64(int(crc32c.crc32c(data)).to_bytes(4, "big"))
    if algo == "CRC64NVME":
        return b64(int(crt_checksums.crc64nvme(data)).to_bytes(8, "big"))
    return b64(hashlib.new(algo.lower(), data).digest())


def etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def mp_etag(parts: list[bytes]) -> str:
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(md5s).hexdigest()}-{len(parts)}"'


def body_of(size: int) -> bytes:
    """Unique content, so that dedup against other tests never hides anything."""
    return (uuid.uuid4().bytes + os.urandom(size))[:size]


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def status_of(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def read(s3: Any, bucket: str, key: str, **kw: Any) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read())


def sent_headers(s3: Any, operation: str) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []

    def hook(request: Any, **_: Any) -> None:
        seen.append(
            {
                k.lower(): v.decode() if isinstance(v, bytes) else str(v)
                for k, v in request.headers.items()
            }
        )

    s3.meta.events.register(f"before-send.s3.{operation}", hook)
    return seen


def client_as(server: Server, access_key: str, secret_key: str, **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=BotoConfig(
            region_name=REGION,
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"},
            **config,
        ),
    )


class NonSeekableReader:
    """A pipe-like source: read() only, no seek/tell (as sys.stdin or a socket)."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        return self._buf.read(size)

    def seekable(self) -> bool:
        return False


class NonSeekableWriter:
    """A pipe-like sink: write() only; s3transfer must deliver the bytes in order."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def seekable(self) -> bool:
        return False

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


@pytest.fixture
def resource(server: Server) -> Any:
    return boto3.resource(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=BotoConfig(
            region_name=REGION,
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"},
        ),
    )


# --------------------------------------------------------------------------- objects


def test_objects_default_checksums_and_streamed_range(s3: Any, bucket: str) -> None:
    sent = sent_headers(s3, "PutObject")
    for key, size in (("small", 100), ("empty", 0), ("big", 12 * MiB)):
        data = body_of(size)
        put = s3.put_object(Bucket=bucket, Key=key, Body=data)
        assert sent[-1]["x-amz-checksum-crc32"] == checksum("CRC32", data)
        assert put["ETag"] == etag(data)
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert head["ContentLength"] == size
        assert head["ChecksumCRC32"] == checksum("CRC32", data)
        got = s3.get_object(Bucket=bucket, Key=key)
        assert isinstance(got["Body"], StreamingChecksumBody)  # validated while read
        assert got["Body"].read() == data

    data = body_of(6 * MiB)
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=1000-4000999")
    assert got["ContentRange"] == f"bytes 1000-4000999/{len(data)}"
    pieces = list(got["Body"].iter_chunks(65536))
    assert len(pieces) > 1 and all(len(p) <= 65536 for p in pieces)
    assert b"".join(pieces) == data[1000:4001000]
    lines = s3.get_object(Bucket=bucket, Key="r", Range="bytes=0-99999")["Body"]
    assert b"".join(lines.iter_lines(keepends=True)) == data[:100000]


# --------------------------------------------------------------------------- streams


@pytest.mark.parametrize("size", [0, 3 * MiB + 7, 20 * MiB + 11], ids=["empty", "single", "mp"])
def test_upload_and_download_non_seekable_streams(s3: Any, bucket: str, size: int) -> None:
    data = body_of(size)
    source = NonSeekableReader(data)
    s3.upload_fileobj(source, bucket, "stream", ExtraArgs={"ContentType": "application/x-s"})
    assert source.reads > 0
    head = s3.head_object(Bucket=bucket, Key="stream", ChecksumMode="ENABLED")
    assert head["ContentLength"] == size
    assert head["ContentType"] == "application/x-s"
    if size > 8 * MiB:  # the transfer manager's default threshold and part size
        parts = [data[i : i + 8 * MiB] for i in range(0, size, 8 * MiB)]
        assert head["ETag"] == mp_etag(parts)
        # s3transfer asks for CRC32 on every part: a composite checksum
        assert head["ChecksumType"] == "COMPOSITE"
        assert head["ChecksumCRC32"].endswith(f"-{len(parts)}")
    else:
        assert head["ETag"] == etag(data)
        assert head["ChecksumCRC32"] == checksum("CRC32", data)

    sink = NonSeekableWriter()
    s3.download_fileobj(bucket, "stream", sink)
    assert sink.data == data
    # a ranged (multi-request) download into a pipe, in small parts
    small = TransferConfig(multipart_threshold=MiB, multipart_chunksize=MiB, max_concurrency=4)
    sink = NonSeekableWriter()
    s3.download_fileobj(bucket, "stream", sink, Config=small)
    assert sink.data == data


def test_upload_fileobj_non_seekable_small_parts(s3: Any, bucket: str) -> None:
    data = body_of(17 * MiB + 3)
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_fileobj(NonSeekableReader(data), bucket, "p", Config=cfg)
    parts = [data[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    assert s3.head_object(Bucket=bucket, Key="p")["ETag"] == mp_etag(parts)
    assert read(s3, bucket, "p") == data


def test_managed_copy(s3: Any, bucket: str) -> None:
    """s3.copy (the transfer manager): HeadObject, then UploadPartCopy by ranges."""
    data = body_of(21 * MiB + 9)
    s3.put_object(Bucket=bucket, Key="src", Body=data, Metadata={"old": "1"})
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    copies = sent_headers(s3, "UploadPartCopy")
    s3.copy(
        {"Bucket": bucket, "Key": "src"},
        bucket,
        "dst",
        Config=cfg,
        ExtraArgs={"Metadata": {"new": "2"}, "MetadataDirective": "REPLACE"},
    )
    assert len(copies) == 5
    assert {h["x-amz-copy-source-range"] for h in copies} == {
        f"bytes={i}-{min(i + 5 * MiB, len(data)) - 1}" for i in range(0, len(data), 5 * MiB)
    }
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["ETag"] == mp_etag([data[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)])
    assert head["Metadata"] == {"new": "2"}
    assert read(s3, bucket, "dst") == data
    # below the threshold: one CopyObject, the metadata copied
    big = TransferConfig(multipart_threshold=64 * MiB)
    s3.copy({"Bucket": bucket, "Key": "src"}, bucket, "dst2", Config=big)
    head = s3.head_object(Bucket=bucket, Key="dst2")
    assert head["ETag"] == etag(data)
    assert head["Metadata"] == {"old": "1"}


# --------------------------------------------------------------------------- resource API


def test_bucket_resource(resource: Any) -> None:
    b = resource.Bucket(f"res-{uuid.uuid4().hex[:12]}")
    b.create()
    b.wait_until_exists(WaiterConfig=FAST_WAIT)
    assert b.creation_date is not None  # loaded through ListBuckets
    assert b.name in [x.name for x in resource.buckets.all()]

    keys = [f"a/{i:03d}" for i in range(120)] + [f"b/{i}" for i in range(5)] + ["top"]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: b.put_object(Key=k, Body=k.encode()), keys))

    assert [o.key for o in b.objects.all()] == sorted(keys)
    assert [o.key for o in b.objects.filter(Prefix="b/")] == [f"b/{i}" for i in range(5)]
    paged = list(b.objects.filter(Prefix="a/").page_size(25))
    assert [o.key for o in paged] == [f"a/{i:03d}" for i in range(120)]
    assert all(o.size == 5 and o.e_tag == etag(o.key.encode()) for o in paged)
    assert [o.key for o in b.objects.filter(Prefix="a/").limit(3)] == ["a/000", "a/001", "a/002"]

    obj = b.Object("top")
    assert obj.content_length == 3
    assert obj.get()["Body"].read() == b"top"
    obj.put(Body=b"new top", Metadata={"x": "y"})
    obj.reload()
    assert obj.metadata == {"x": "y"}
    assert obj.e_tag == etag(b"new top")
    copy = b.Object("copy")
    copy.copy_from(CopySource={"Bucket": b.name, "Key": "top"})
    copy.wait_until_exists(WaiterConfig=FAST_WAIT)
    assert copy.get()["Body"].read() == b"new top"
    sink = io.BytesIO()
    copy.download_fileobj(sink)
    assert sink.getvalue() == b"new top"

    # the collection's batch delete (DeleteObjects), by prefix and then everything
    result = b.objects.filter(Prefix="a/").delete()
    assert sum(len(r.get("Deleted", [])) for r in result) == 120
    assert [o.key for o in b.objects.all()] == sorted(["copy", "top", *keys[120:125]])
    with pytest.raises(ClientError) as exc:
        b.delete()
    assert code_of(exc) == "BucketNotEmpty"
    b.objects.all().delete()
    assert list(b.objects.all()) == []
    b.delete()
    b.wait_until_not_exists(WaiterConfig=FAST_WAIT)
    assert b.name not in [x.name for x in resource.buckets.all()]


# --------------------------------------------------------------------------- waiters


def test_waiters_and_head_bucket(s3: Any, bucket: str) -> None:
    s3.get_waiter("bucket_exists").wait(Bucket=bucket, WaiterConfig=FAST_WAIT)
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    s3.get_waiter("bucket_not_exists").wait(Bucket=missing, WaiterConfig=FAST_WAIT)
    with pytest.raises(WaiterError):
        s3.get_waiter("bucket_exists").wait(
            Bucket=missing, WaiterConfig={"Delay": 1, "MaxAttempts": 1}
        )

    s3.get_waiter("object_not_exists").wait(Bucket=bucket, Key="k", WaiterConfig=FAST_WAIT)
    with pytest.raises(WaiterError):
        s3.get_waiter("object_exists").wait(
            Bucket=bucket, Key="k", WaiterConfig={"Delay": 1, "MaxAttempts": 1}
        )
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    s3.get_waiter("object_exists").wait(Bucket=bucket, Key="k", WaiterConfig=FAST_WAIT)
    with pytest.raises(WaiterError):
        s3.get_waiter("object_not_exists").wait(
            Bucket=bucket, Key="k", WaiterConfig={"Delay": 1, "MaxAttempts": 1}
        )

    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=missing)
    assert status_of(exc) == 404
    assert code_of(exc) == "404"  # a HEAD error has no body: botocore uses the status
    head = s3.head_bucket(Bucket=bucket)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]


# --------------------------------------------------------------------------- presigned


FORM_LIKE = b"a=1&b=2+3&c=%20%2B%zz;d=&&==\r\n" + bytes(range(256)) + b"%00+&="


def test_presigned_urls_with_requests(server: Server, s3: Any, bucket: str) -> None:
    v4 = make_client(server.endpoint, signature_version="s3v4")
    url = v4.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "f"})
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    resp = requests.put(
        url,
        data=FORM_LIKE,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["ETag"] == etag(FORM_LIKE)
    got = s3.get_object(Bucket=bucket, Key="f")
    assert got["ContentType"] == "application/x-www-form-urlencoded"
    assert got["Body"].read() == FORM_LIKE

    url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "f"})
    resp = requests.get(url, timeout=30)
    assert resp.status_code == 200 and resp.content == FORM_LIKE
    # response-* overrides are part of the signed query
    url = v4.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": bucket,
            "Key": "f",
            "ResponseContentDisposition": 'attachment; filename="f.bin"',
            "ResponseContentType": "application/octet-stream",
        },
    )
    resp = requests.get(url, timeout=30)
    assert resp.status_code == 200
    assert resp.headers["Content-Disposition"] == 'attachment; filename="f.bin"'
    assert resp.headers["Content-Type"] == "application/octet-stream"

    # boto3's default presigned URL (SigV2 query auth), with the Content-Type signed
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "v2", "ContentType": "text/plain"}
    )
    assert "AWSAccessKeyId=" in url
    resp = requests.put(url, data=b"via v2", headers={"Content-Type": "text/plain"}, timeout=30)
    assert resp.status_code == 200, resp.text
    assert read(s3, bucket, "v2") == b"via v2"
    resp = requests.put(url, data=b"evil", headers={"Content-Type": "text/html"}, timeout=30)
    assert resp.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in resp.text
    assert read(s3, bucket, "v2") == b"via v2"


@pytest.mark.parametrize("signature_version", [None, "s3v4"], ids=["default", "s3v4"])
def test_presigned_multipart_upload(
    server: Server, s3: Any, bucket: str, signature_version: str | None
) -> None:
    """The browser-upload pattern: the server side creates the upload and presigns one URL per
    part; the parts are PUT by a plain HTTP client; the server side completes."""
    signer = make_client(server.endpoint, signature_version=signature_version)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="pm")["UploadId"]
    parts = [body_of(5 * MiB), FORM_LIKE]
    done = []
    for number, part in enumerate(parts, 1):
        url = signer.generate_presigned_url(
            "upload_part",
            Params={"Bucket": bucket, "Key": "pm", "UploadId": uid, "PartNumber": number},
        )
        # SigV2 signs the Content-Type (empty here): only a SigV4 URL leaves it free
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if signature_version else {}
        resp = requests.put(url, data=part, headers=headers, timeout=60)
        assert resp.status_code == 200, resp.text
        assert resp.headers["ETag"] == etag(part)
        done.append({"PartNumber": number, "ETag": resp.headers["ETag"]})
    listed = s3.list_parts(Bucket=bucket, Key="pm", UploadId=uid)
    assert [p["Size"] for p in listed["Parts"]] == [len(p) for p in parts]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="pm", UploadId=uid, MultipartUpload={"Parts": done}
    )
    assert s3.head_object(Bucket=bucket, Key="pm")["ETag"] == mp_etag(parts)
    assert read(s3, bucket, "pm") == b"".join(parts)


@pytest.mark.parametrize("signature_version", [None, "s3v4"], ids=["default", "s3v4"])
def test_presigned_post(server: Server, bucket: str, signature_version: str | None) -> None:
    """Browser form uploads (PostObject) with boto3's generate_presigned_post, SigV2 (boto3's
    default for presigning against a custom endpoint) and SigV4; details in test_s3_post."""
    s3 = make_client(server.endpoint, signature_version=signature_version)
    post = s3.generate_presigned_post(bucket, "posted")
    resp = requests.post(
        post["url"], data=post["fields"], files={"file": ("posted", b"form upload")}, timeout=30
    )
    assert resp.status_code == 204, resp.text
    assert resp.headers["ETag"] == '"' + hashlib.md5(b"form upload").hexdigest() + '"'
    assert read(s3, bucket, "posted") == b"form upload"


# --------------------------------------------------------------------------- checksums


@pytest.fixture
def validating(server: Server) -> Any:
    """A client that validates response checksums (the default, made explicit)."""
    return server.client(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_supported",
    )


@pytest.mark.parametrize("calculation", ["when_supported", "when_required"])
def test_request_checksum_calculation(
    server: Server, validating: Any, bucket: str, calculation: str
) -> None:
    s3 = server.client(request_checksum_calculation=calculation)
    puts = sent_headers(s3, "PutObject")
    parts_sent = sent_headers(s3, "UploadPart")
    data = body_of(2 * MiB + 1)
    put = s3.put_object(Bucket=bucket, Key="p", Body=data)
    if calculation == "when_supported":
        assert put["ChecksumCRC32"] == checksum("CRC32", data)
        got = validating.get_object(Bucket=bucket, Key="p")
        assert isinstance(got["Body"], StreamingChecksumBody)
        assert got["ChecksumCRC32"] == checksum("CRC32", data)
    else:
        assert not any(h.startswith("x-amz-checksum-") for h in puts[-1])
        assert "ChecksumCRC32" not in put
        got = validating.get_object(Bucket=bucket, Key="p")
        assert not isinstance(got["Body"], StreamingChecksumBody)  # nothing to validate
    assert got["Body"].read() == data

    # low-level multipart without an algorithm: parts carry CRC32 only under when_supported
    uid = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    parts = [body_of(5 * MiB), body_of(100)]
    done = []
    for n, part in enumerate(parts, 1):
        resp = s3.upload_part(Bucket=bucket, Key="m", UploadId=uid, PartNumber=n, Body=part)
        done.append({"PartNumber": n, "ETag": resp["ETag"]})
        has = any(h.startswith("x-amz-checksum-crc32") for h in parts_sent[-1])
        assert has == (calculation == "when_supported")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="m", UploadId=uid, MultipartUpload={"Parts": done}
    )
    assert read(validating, bucket, "m") == b"".join(parts)

    # the transfer manager follows the same setting
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    big = body_of(11 * MiB)
    s3.upload_fileobj(io.BytesIO(big), bucket, "t", Config=cfg)
    head = s3.head_object(Bucket=bucket, Key="t", ChecksumMode="ENABLED")
    assert ("ChecksumCRC32" in head) == (calculation == "when_supported")
    assert read(validating, bucket, "t") == big


@pytest.mark.parametrize("algo", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_response_validation_of_stored_checksums(
    s3: Any, validating: Any, bucket: str, algo: str
) -> None:
    data = body_of(3 * MiB + 5)
    s3.put_object(Bucket=bucket, Key="o", Body=data, ChecksumAlgorithm=algo)
    got = validating.get_object(Bucket=bucket, Key="o")
    assert got[f"Checksum{algo}"] == checksum(algo, data)
    assert isinstance(got["Body"], StreamingChecksumBody)
    assert got["Body"].read() == data
    # a ranged GET carries no whole-object checksum, so nothing is validated
    got = validating.get_object(Bucket=bucket, Key="o", Range="bytes=0-9")
    assert f"Checksum{algo}" not in got
    assert got["Body"].read() == data[:10]

    # multipart: composite (validation skipped by botocore) and full-object (validated)
    # (CRC64NVME is full-object only; the SHAs are composite only)
    types = ["COMPOSITE"] if algo != "CRC64NVME" else []
    types += ["FULL_OBJECT"] if algo.startswith("CRC") else []
    for ctype in types:
        key = f"mp-{ctype}"
        parts = [body_of(5 * MiB), body_of(1000)]
        uid = s3.create_multipart_upload(
            Bucket=bucket, Key=key, ChecksumAlgorithm=algo, ChecksumType=ctype
        )["UploadId"]
        done = []
        for n, part in enumerate(parts, 1):
            resp = s3.upload_part(
                Bucket=bucket,
                Key=key,
                UploadId=uid,
                PartNumber=n,
                Body=part,
                ChecksumAlgorithm=algo,
            )
            done.append(
                {"PartNumber": n, "ETag": resp["ETag"], f"Checksum{algo}": resp[f"Checksum{algo}"]}
            )
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": done}
        )
        whole = b"".join(parts)
        got = validating.get_object(Bucket=bucket, Key=key)
        assert got["ChecksumType"] == ctype
        if ctype == "FULL_OBJECT":
            assert got[f"Checksum{algo}"] == checksum(algo, whole)
            assert isinstance(got["Body"], StreamingChecksumBody)
        else:
            assert got[f"Checksum{algo}"].endswith("-2")
        assert got["Body"].read() == whole


# --------------------------------------------------------------------------- auth failures


def test_auth_failures_as_client_errors(server: Server, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret")
    bad = client_as(server, ACCESS_KEY, "not-the-secret")
    for call in (
        lambda: bad.get_object(Bucket=bucket, Key="k"),
        lambda: bad.put_object(Bucket=bucket, Key="k", Body=b"evil"),
        lambda: bad.list_objects_v2(Bucket=bucket),
        lambda: bad.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]}),
        lambda: bad.create_multipart_upload(Bucket=bucket, Key="m"),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert code_of(exc) == "SignatureDoesNotMatch"
        assert status_of(exc) == 403
    with pytest.raises(ClientError) as exc:
        bad.head_object(Bucket=bucket, Key="k")
    assert status_of(exc) == 403
    with pytest.raises(ClientError) as exc:
        bad.upload_fileobj(NonSeekableReader(b"x" * 100), bucket, "up")
    unknown = client_as(server, "AKIAUNKNOWNKEY000000", SECRET_KEY)
    for call in (
        lambda: unknown.list_buckets(),
        lambda: unknown.put_object(Bucket=bucket, Key="k", Body=b"evil"),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert code_of(exc) == "InvalidAccessKeyId"
        assert status_of(exc) == 403
    assert read(s3, bucket, "k") == b"secret"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


# --------------------------------------------------------------------------- concurrency


def test_50_threads_through_one_client(server: Server, bucket: str) -> None:
    s3 = server.client(max_pool_connections=50)
    bodies = {f"c/{i:02d}": body_of(1000 + 37 * i) for i in range(50)}

    def put(item: tuple[str, bytes]) -> str:
        return str(s3.put_object(Bucket=bucket, Key=item[0], Body=item[1])["ETag"])

    with ThreadPoolExecutor(50) as pool:
        assert list(pool.map(put, bodies.items())) == [etag(v) for v in bodies.values()]
        got = list(pool.map(lambda k: read(s3, bucket, k), bodies))
    assert got == list(bodies.values())
    assert s3.list_objects_v2(Bucket=bucket, Prefix="c/")["KeyCount"] == 50


# --------------------------------------------------------------------------- the store


def test_zz_fsck(server: Server) -> None:
    server.gc(0)
    assert server.fsck()["ok"]
