"""Checksums and payload encodings against a real server: what boto3 sends by default, explicit
checksum algorithms, Content-MD5, and hand-built SigV4 streaming uploads (aws-chunked with
chunk signatures and trailers)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import crc32c
import pytest
from awscrt import checksums as crt_checksums
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

from tests.awschunked import SignedRequest as Signed
from tests.awschunked import aws_chunked
from tests.awschunked import sign as _sign
from tests.conftest import Server

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
ALGORITHMS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]
MiB = 1 << 20


# --------------------------------------------------------------------------- checksums


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def digest(algo: str, data: bytes) -> bytes:
    if algo == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algo == "CRC32C":
        return int(crc32c.crc32c(data)).to_bytes(4, "big")
    if algo == "CRC64NVME":
        return int(crt_checksums.crc64nvme(data)).to_bytes(8, "big")
    if algo == "SHA1":
        return hashlib.sha1(data).digest()
    return hashlib.sha256(data).digest()


def checksum(algo: str, data: bytes) -> str:
    return b64(digest(algo, data))


def md5_b64(data: bytes) -> str:
    return b64(hashlib.md5(data).digest())


def body_of(size: int, seed: str = "") -> bytes:
    """Unique content (so that dedup against other tests never hides a leak)."""
    tag = (seed or uuid.uuid4().hex).encode()
    return (tag + os.urandom(size))[:size]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def baseline(server: Server) -> int:
    server.gc(0)
    return int(server.stats()["chunks"])


@pytest.fixture(scope="module")
def created(baseline: int) -> list[str]:
    return []


@pytest.fixture
def bkt(s3: Any, created: list[str]) -> str:
    name = f"ck-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    created.append(name)
    return name


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s


class NoLeak:
    """Garbage left by rejected uploads: after a GC, the chunk and object counts are back."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def __enter__(self) -> NoLeak:
        self.server.gc(0)
        self.before = self.server.stats()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            return
        self.server.gc(0)
        after = self.server.stats()
        for name in ("chunks", "chunk_bytes", "objects", "logical_bytes"):
            assert after[name] == self.before[name], (name, self.before, after)


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def assert_missing(s3: Any, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key=key)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def read(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def capture_headers(s3: Any, operation: str) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []

    def hook(request: AWSRequest, **_: Any) -> None:
        seen.append(
            {
                k.lower(): v.decode() if isinstance(v, bytes) else str(v)
                for k, v in request.headers.items()
            }
        )

    s3.meta.events.register(f"before-send.s3.{operation}", hook)
    return seen


# --------------------------------------------------------------------------- boto3 defaults


def test_boto3_default_sends_crc32(server: Server, s3: Any, bkt: str) -> None:
    """botocore >= 1.36 (request_checksum_calculation=when_supported): CRC32 in a header over
    plain HTTP, and the payload is signed."""
    sent = capture_headers(s3, "PutObject")
    for size in (10, 3 * MiB + 5):
        data = body_of(size)
        resp = s3.put_object(Bucket=bkt, Key=f"d{size}", Body=data)
        assert sent[-1]["x-amz-checksum-crc32"] == checksum("CRC32", data)
        assert sent[-1]["x-amz-content-sha256"] == hashlib.sha256(data).hexdigest()
        assert resp["ChecksumCRC32"] == checksum("CRC32", data)
        assert resp["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        got = s3.get_object(Bucket=bkt, Key=f"d{size}", ChecksumMode="ENABLED")
        assert got["ChecksumCRC32"] == checksum("CRC32", data)
        assert got["Body"].read() == data  # botocore validates the CRC32 while reading
        # boto3 sets ChecksumMode=ENABLED on GET by default (response_checksum_validation)
        assert s3.get_object(Bucket=bkt, Key=f"d{size}")["ChecksumCRC32"] == checksum("CRC32", data)
        s3_plain = server.client(response_checksum_validation="when_required")
        plain = s3_plain.get_object(Bucket=bkt, Key=f"d{size}")
        assert "ChecksumCRC32" not in plain
        assert plain["Body"].read() == data


def test_boto3_when_required(server: Server, bkt: str) -> None:
    s3 = server.client(
        request_checksum_calculation="when_required", response_checksum_validation="when_required"
    )
    sent = capture_headers(s3, "PutObject")
    data = body_of(1000)
    resp = s3.put_object(Bucket=bkt, Key="wr", Body=data)
    assert not any(h.startswith("x-amz-checksum-") for h in sent[-1])
    assert resp["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert read(s3, bkt, "wr") == data
    # an explicit algorithm is still honoured
    resp = s3.put_object(Bucket=bkt, Key="wr2", Body=data, ChecksumAlgorithm="SHA256")
    assert resp["ChecksumSHA256"] == checksum("SHA256", data)
    # DeleteObjects requires a checksum: botocore sends one itself
    deleted = capture_headers(s3, "DeleteObjects")
    resp = s3.delete_objects(Bucket=bkt, Delete={"Objects": [{"Key": "wr"}, {"Key": "wr2"}]})
    assert sorted(d["Key"] for d in resp["Deleted"]) == ["wr", "wr2"]
    assert "content-md5" in deleted[-1] or "x-amz-checksum-crc32" in deleted[-1]
    assert_missing(s3, bkt, "wr")


@pytest.mark.parametrize("size", [0, 100, 3 * MiB + 1], ids=["empty", "inline", "chunked"])
@pytest.mark.parametrize("algo", ALGORITHMS)
def test_checksum_algorithm(s3: Any, bkt: str, algo: str, size: int) -> None:
    data = body_of(size)
    sent = capture_headers(s3, "PutObject")
    resp = s3.put_object(Bucket=bkt, Key="obj", Body=data, ChecksumAlgorithm=algo)
    want = checksum(algo, data)
    assert sent[-1][f"x-amz-checksum-{algo.lower()}"] == want
    assert resp[f"Checksum{algo}"] == want
    assert resp.get("ChecksumType") == "FULL_OBJECT"
    for other in ALGORITHMS:
        if other != algo:
            assert f"Checksum{other}" not in resp
    got = s3.get_object(Bucket=bkt, Key="obj", ChecksumMode="ENABLED")
    assert got[f"Checksum{algo}"] == want
    assert got["Body"].read() == data
    head = s3.head_object(Bucket=bkt, Key="obj", ChecksumMode="ENABLED")
    assert head[f"Checksum{algo}"] == want
    assert head.get("ChecksumType") == "FULL_OBJECT"
    assert f"Checksum{algo}" not in s3.head_object(Bucket=bkt, Key="obj")
    if size:
        ranged = s3.get_object(Bucket=bkt, Key="obj", ChecksumMode="ENABLED", Range="bytes=0-0")
        assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert not any(k.startswith("Checksum") and k != "ChecksumType" for k in ranged)
        assert ranged["Body"].read() == data[:1]


def test_copy_keeps_checksum(s3: Any, bkt: str) -> None:
    data = body_of(500)
    s3.put_object(Bucket=bkt, Key="src", Body=data, ChecksumAlgorithm="CRC32C")
    s3.copy_object(Bucket=bkt, Key="dst", CopySource={"Bucket": bkt, "Key": "src"})
    head = s3.head_object(Bucket=bkt, Key="dst", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == checksum("CRC32C", data)


# --------------------------------------------------------------------------- Content-MD5


def test_content_md5(server: Server, s3: Any, bkt: str) -> None:
    data = body_of(2 * MiB)
    resp = s3.put_object(Bucket=bkt, Key="m", Body=data, ContentMD5=md5_b64(data))
    assert resp["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    with NoLeak(server):
        other = body_of(2 * MiB)
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bkt, Key="m", Body=other, ContentMD5=md5_b64(data))
        assert error_code(exc) == "BadDigest"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bkt, Key="new", Body=other, ContentMD5=md5_b64(data))
        assert error_code(exc) == "BadDigest"
    assert read(s3, bkt, "m") == data
    assert_missing(s3, bkt, "new")
    for bad in ("not base64!", b64(b"short"), b64(hashlib.sha1(data).digest())):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bkt, Key="m", Body=b"x", ContentMD5=bad)
        assert error_code(exc) == "InvalidDigest"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert read(s3, bkt, "m") == data


@pytest.mark.parametrize("algo", ["CRC32", "CRC64NVME", "SHA256"])
def test_wrong_checksum_header_stores_nothing(server: Server, s3: Any, bkt: str, algo: str) -> None:
    old = body_of(3 * MiB)
    s3.put_object(Bucket=bkt, Key="k", Body=old)
    new = body_of(3 * MiB)
    wrong = checksum(algo, old)
    with NoLeak(server):
        for key in ("k", "fresh"):
            with pytest.raises(ClientError) as exc:
                s3.put_object(Bucket=bkt, Key=key, Body=new, **{f"Checksum{algo}": wrong})
            assert error_code(exc) == "BadDigest"
            assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert read(s3, bkt, "k") == old
    assert_missing(s3, bkt, "fresh")
    # the same request with the right value succeeds
    resp = s3.put_object(Bucket=bkt, Key="k", Body=new, **{f"Checksum{algo}": checksum(algo, new)})
    assert resp[f"Checksum{algo}"] == checksum(algo, new)
    assert read(s3, bkt, "k") == new


def test_two_checksum_headers_refused(s3: Any, bkt: str) -> None:
    data = b"two"
    with pytest.raises(ClientError) as exc:
        s3.put_object(
            Bucket=bkt,
            Key="two",
            Body=data,
            ChecksumCRC32=checksum("CRC32", data),
            ChecksumSHA1=checksum("SHA1", data),
        )
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert_missing(s3, bkt, "two")


# --------------------------------------------------------------------------- DeleteObjects


def test_delete_objects_with_crc32_instead_of_md5(s3: Any, bkt: str) -> None:
    for k in ("a", "b", "c"):
        s3.put_object(Bucket=bkt, Key=k, Body=k.encode())
    sent = capture_headers(s3, "DeleteObjects")
    resp = s3.delete_objects(Bucket=bkt, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}]})
    assert "x-amz-checksum-crc32" in sent[-1]
    assert "content-md5" not in sent[-1]
    assert sorted(d["Key"] for d in resp["Deleted"]) == ["a", "b"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bkt)["Contents"]] == ["c"]


# --------------------------------------------------------------------------- hand-built requests


def sign(
    server: Server, method: str, path: str, headers: dict[str, str], content_sha256: str
) -> Signed:
    return _sign(method, server.endpoint + path, headers, content_sha256)


async def _stream(body: bytes, piece: int = 100_003) -> AsyncIterator[bytes]:
    for start in range(0, len(body), piece):
        yield body[start : start + piece]


@dataclass
class Outcome:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> str | None:
        import xml.etree.ElementTree as ET

        return ET.fromstring(self.body).findtext("Code") if self.body else None


async def send(
    session: aiohttp.ClientSession, method: str, signed: Signed, body: bytes, *, te_chunked: bool
) -> Outcome:
    data: io.BytesIO | AsyncIterator[bytes] = _stream(body) if te_chunked else io.BytesIO(body)
    async with session.request(method, signed.url, data=data, headers=signed.headers) as resp:
        return Outcome(
            resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read()
        )


async def streaming_put(
    server: Server,
    session: aiohttp.ClientSession,
    path: str,
    data: bytes,
    *,
    form: str = STREAMING,
    chunk_size: int = 64 * 1024,
    te_chunked: bool = False,
    content_encoding: str | None = "aws-chunked",
    trailer: tuple[str, str] | None = None,
    corrupt_chunk: int | None = None,
    extra_headers: dict[str, str] | None = None,
) -> Outcome:
    headers = {"x-amz-decoded-content-length": str(len(data)), **(extra_headers or {})}
    if content_encoding is not None:
        headers["Content-Encoding"] = content_encoding
    if trailer is not None:
        headers["x-amz-trailer"] = trailer[0]
    # The framing (and so its length) does not depend on the signature values: sign with the
    # final Content-Length, computed from a dry run.
    trailers = [trailer] if trailer else None
    dry = (
        Signed("", {}, b"k", "0" * 64, "20000101T000000Z", "s")
        if form != UNSIGNED_TRAILER
        else None
    )
    length = len(
        aws_chunked(data, chunk_size, dry, trailers, sign_trailers=form == STREAMING_TRAILER)
    )
    if not te_chunked:
        headers["Content-Length"] = str(length)
    signed = sign(server, "PUT", path, headers, form)
    body = aws_chunked(
        data,
        chunk_size,
        None if form == UNSIGNED_TRAILER else signed,
        trailers,
        sign_trailers=form == STREAMING_TRAILER,
        corrupt_chunk=corrupt_chunk,
    )
    assert len(body) == length
    return await send(session, "PUT", signed, body, te_chunked=te_chunked)


TRANSPORTS = pytest.mark.parametrize(
    ("te_chunked", "content_encoding"),
    [(False, "aws-chunked"), (False, None), (True, "aws-chunked"), (True, None)],
    ids=["length+ce", "length", "te-chunked+ce", "te-chunked"],
)


def assert_stored(s3: Any, bucket: str, key: str, data: bytes) -> dict[str, Any]:
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert "aws-chunked" not in got.get("ContentEncoding", "")
    assert got["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    return dict(got)


@TRANSPORTS
@pytest.mark.parametrize(
    ("size", "chunk_size"),
    [(0, 64 * 1024), (1, 64 * 1024), (200_000, 64 * 1024), (3 * MiB + 7, MiB)],
    ids=["0", "1", "200k", "3M"],
)
async def test_streaming_signed(
    server: Server,
    s3: Any,
    bkt: str,
    session: aiohttp.ClientSession,
    te_chunked: bool,
    content_encoding: str | None,
    size: int,
    chunk_size: int,
) -> None:
    data = body_of(size)
    out = await streaming_put(
        server,
        session,
        f"/{bkt}/s",
        data,
        chunk_size=chunk_size,
        te_chunked=te_chunked,
        content_encoding=content_encoding,
    )
    assert out.status == 200, out.body
    assert out.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = assert_stored(s3, bkt, "s", data)
    assert "ContentEncoding" not in got


async def test_streaming_keeps_other_content_encoding(
    server: Server, s3: Any, bkt: str, session: aiohttp.ClientSession
) -> None:
    data = body_of(1000)
    out = await streaming_put(
        server, session, f"/{bkt}/gz", data, content_encoding="aws-chunked,gzip"
    )
    assert out.status == 200, out.body
    got = assert_stored(s3, bkt, "gz", data)
    assert got["ContentEncoding"] == "gzip"
    async with session.get(
        server.endpoint + f"/{bkt}/gz",
        headers=sign(server, "GET", f"/{bkt}/gz", {}, EMPTY_SHA256).headers,
    ) as resp:
        assert resp.headers.getall("Content-Encoding") == ["gzip"]
        assert await resp.read() == data


@pytest.mark.parametrize("te_chunked", [False, True], ids=["length", "te-chunked"])
@pytest.mark.parametrize("size", [0, 100, 3 * MiB + 3], ids=["0", "100", "3M"])
async def test_streaming_signed_trailer_crc32(
    server: Server,
    s3: Any,
    bkt: str,
    session: aiohttp.ClientSession,
    te_chunked: bool,
    size: int,
) -> None:
    data = body_of(size)
    value = checksum("CRC32", data)
    out = await streaming_put(
        server,
        session,
        f"/{bkt}/t",
        data,
        form=STREAMING_TRAILER,
        chunk_size=MiB,
        te_chunked=te_chunked,
        trailer=("x-amz-checksum-crc32", value),
        extra_headers={"x-amz-sdk-checksum-algorithm": "CRC32"},
    )
    assert out.status == 200, out.body
    assert out.headers["x-amz-checksum-crc32"] == value
    assert_stored(s3, bkt, "t", data)
    head = s3.head_object(Bucket=bkt, Key="t", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == value


@pytest.mark.parametrize("te_chunked", [False, True], ids=["length", "te-chunked"])
@pytest.mark.parametrize("size", [0, 100, 3 * MiB + 3], ids=["0", "100", "3M"])
async def test_streaming_unsigned_trailer_crc64nvme(
    server: Server,
    s3: Any,
    bkt: str,
    session: aiohttp.ClientSession,
    te_chunked: bool,
    size: int,
) -> None:
    data = body_of(size)
    value = checksum("CRC64NVME", data)
    out = await streaming_put(
        server,
        session,
        f"/{bkt}/u",
        data,
        form=UNSIGNED_TRAILER,
        chunk_size=MiB,
        te_chunked=te_chunked,
        trailer=("x-amz-checksum-crc64nvme", value),
    )
    assert out.status == 200, out.body
    assert out.headers["x-amz-checksum-crc64nvme"] == value
    assert_stored(s3, bkt, "u", data)
    got = s3.get_object(Bucket=bkt, Key="u", ChecksumMode="ENABLED")
    assert got["ChecksumCRC64NVME"] == value
    assert got["Body"].read() == data


@pytest.mark.parametrize("te_chunked", [False, True], ids=["length", "te-chunked"])
@pytest.mark.parametrize("content_sha256", ["hex", "UNSIGNED-PAYLOAD"])
async def test_plain_payload_hash(
    server: Server,
    s3: Any,
    bkt: str,
    session: aiohttp.ClientSession,
    te_chunked: bool,
    content_sha256: str,
) -> None:
    data = body_of(2 * MiB + 11)
    value = hashlib.sha256(data).hexdigest() if content_sha256 == "hex" else content_sha256
    headers = {} if te_chunked else {"Content-Length": str(len(data))}
    signed = sign(server, "PUT", f"/{bkt}/h", headers, value)
    out = await send(session, "PUT", signed, data, te_chunked=te_chunked)
    assert out.status == 200, out.body
    assert_stored(s3, bkt, "h", data)


@pytest.mark.parametrize("te_chunked", [False, True], ids=["length", "te-chunked"])
async def test_wrong_payload_hash_stores_nothing(
    server: Server, s3: Any, bkt: str, session: aiohttp.ClientSession, te_chunked: bool
) -> None:
    old = body_of(100)
    s3.put_object(Bucket=bkt, Key="h", Body=old)
    data = body_of(3 * MiB)
    headers = {} if te_chunked else {"Content-Length": str(len(data))}
    with NoLeak(server):
        for key in ("h", "fresh"):
            wrong = hashlib.sha256(data + b"!").hexdigest()
            signed = sign(server, "PUT", f"/{bkt}/{key}", headers, wrong)
            out = await send(session, "PUT", signed, data, te_chunked=te_chunked)
            assert out.status == 400, out.body
            assert out.code == "XAmzContentSHA256Mismatch"
    assert read(s3, bkt, "h") == old
    assert_missing(s3, bkt, "fresh")


@pytest.mark.parametrize("te_chunked", [False, True], ids=["length", "te-chunked"])
@pytest.mark.parametrize("corrupt", [0, 1, 3], ids=["first", "middle", "final-zero-frame"])
async def test_bad_chunk_signature_stores_nothing(
    server: Server,
    s3: Any,
    bkt: str,
    session: aiohttp.ClientSession,
    te_chunked: bool,
    corrupt: int,
) -> None:
    old = body_of(100)
    s3.put_object(Bucket=bkt, Key="c", Body=old)
    data = body_of(3 * MiB)  # frames 0, 1, 2 hold data; frame 3 is the final empty one
    with NoLeak(server):
        for key in ("c", "fresh"):
            out = await streaming_put(
                server,
                session,
                f"/{bkt}/{key}",
                data,
                chunk_size=MiB,
                te_chunked=te_chunked,
                corrupt_chunk=corrupt,
            )
            assert out.status == 403, out.body
            assert out.code == "SignatureDoesNotMatch"
    assert read(s3, bkt, "c") == old
    assert_missing(s3, bkt, "fresh")


@pytest.mark.parametrize("form", [STREAMING_TRAILER, UNSIGNED_TRAILER])
@pytest.mark.parametrize("algo", ["CRC32", "CRC64NVME", "SHA256"])
async def test_wrong_trailer_checksum_stores_nothing(
    server: Server,
    s3: Any,
    bkt: str,
    session: aiohttp.ClientSession,
    form: str,
    algo: str,
) -> None:
    old = body_of(100)
    s3.put_object(Bucket=bkt, Key="w", Body=old)
    data = body_of(3 * MiB)
    wrong = checksum(algo, data + b"?")
    with NoLeak(server):
        for key in ("w", "fresh"):
            out = await streaming_put(
                server,
                session,
                f"/{bkt}/{key}",
                data,
                form=form,
                chunk_size=MiB,
                trailer=(f"x-amz-checksum-{algo.lower()}", wrong),
            )
            assert out.status == 400, out.body
            assert out.code == "BadDigest"
    assert read(s3, bkt, "w") == old
    assert_missing(s3, bkt, "fresh")


async def test_streaming_checksum_header_checked(
    server: Server, s3: Any, bkt: str, session: aiohttp.ClientSession
) -> None:
    """A checksum header (not a trailer) on a streaming upload is checked against the
    decoded body, not against the framing."""
    data = body_of(200_000)
    good = checksum("SHA256", data)
    out = await streaming_put(
        server, session, f"/{bkt}/x", data, extra_headers={"x-amz-checksum-sha256": good}
    )
    assert out.status == 200, out.body
    assert out.headers["x-amz-checksum-sha256"] == good
    with NoLeak(server):
        out = await streaming_put(
            server,
            session,
            f"/{bkt}/y",
            data,
            extra_headers={"x-amz-checksum-sha256": checksum("SHA256", b"other")},
        )
        assert out.status == 400 and out.code == "BadDigest"
    assert_missing(s3, bkt, "y")


async def test_delete_objects_hand_built_crc32(
    server: Server, s3: Any, bkt: str, session: aiohttp.ClientSession
) -> None:
    s3.put_object(Bucket=bkt, Key="d1", Body=b"1")
    s3.put_object(Bucket=bkt, Key="d2", Body=b"2")
    xml = b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>d1</Key></Object></Delete>'
    for value, status in ((checksum("CRC32", xml + b" "), 400), (checksum("CRC32", xml), 200)):
        headers = {"Content-Length": str(len(xml)), "x-amz-checksum-crc32": value}
        signed = sign(server, "POST", f"/{bkt}?delete", headers, hashlib.sha256(xml).hexdigest())
        out = await send(session, "POST", signed, xml, te_chunked=False)
        assert out.status == status, out.body
        if status == 400:
            assert out.code == "BadDigest"
            assert read(s3, bkt, "d1") == b"1"
    assert_missing(s3, bkt, "d1")
    assert read(s3, bkt, "d2") == b"2"
    # neither Content-MD5 nor a checksum: refused
    headers = {"Content-Length": str(len(xml))}
    signed = sign(server, "POST", f"/{bkt}?delete", headers, hashlib.sha256(xml).hexdigest())
    out = await send(session, "POST", signed, xml, te_chunked=False)
    assert out.status == 400


@pytest.mark.parametrize(
    "correct",
    [
        pytest.param(True, id="right"),
        pytest.param(False, id="wrong"),
    ],
)
async def test_delete_objects_trailer_checksum(
    server: Server, s3: Any, bkt: str, session: aiohttp.ClientSession, correct: bool
) -> None:
    s3.put_object(Bucket=bkt, Key="t1", Body=b"1")
    xml = b"<Delete><Object><Key>t1</Key></Object></Delete>"
    value = checksum("CRC32", xml if correct else xml + b"!")
    body = aws_chunked(xml, 1024, None, [("x-amz-checksum-crc32", value)])
    headers = {
        "Content-Length": str(len(body)),
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(xml)),
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-sdk-checksum-algorithm": "CRC32",
    }
    signed = sign(server, "POST", f"/{bkt}?delete", headers, UNSIGNED_TRAILER)
    out = await send(session, "POST", signed, body, te_chunked=False)
    if correct:
        assert out.status == 200, out.body
        assert_missing(s3, bkt, "t1")
    else:
        assert out.status == 400, out.body
        assert out.code == "BadDigest"
        assert read(s3, bkt, "t1") == b"1"


# --------------------------------------------------------------------------- the end


def test_zz_cleanup_gc_and_fsck(server: Server, s3: Any, created: list[str], baseline: int) -> None:
    """Every object this module stored is deleted: after GC the chunk count is back to where
    it was before the module ran, and fsck finds nothing wrong."""
    for name in created:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=name, Key=obj["Key"])
        s3.delete_bucket(Bucket=name)
    server.gc(0)
    assert server.stats()["chunks"] == baseline
    assert server.fsck()["ok"]
