"""Multipart uploads against a real `s3dedup serve` with real boto3 (issue #3): the transfer
manager up and down, every operation and error of the low-level API, part payload forms,
UploadPartCopy, GET/HEAD ?partNumber, composite and full-object checksums, what parts do to
the reference counts (fsck + GC + stats), limits, and dedup across part boundaries."""

from __future__ import annotations

import base64
import hashlib
import http.client
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from dedup.checksums import new_checksum
from dedup.multipart import PartRecord, UploadRecord
from dedup.records import ObjectRecord
from gateway.s3.errors import S3Error
from gateway.s3.handlers.multipart import build_object
from gateway.s3.objectmeta import part_range
from tests.awschunked import aws_chunked, sign
from tests.conftest import Server, make_server
from tests.test_s3_objects import assert_error, chunk_boundaries, instrument, raw_request

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
PART = 5 * MiB  # the smallest part that may be followed by another


@pytest.fixture
def s3(server: Server) -> Any:
    return instrument(server.client())


# -- helpers -------------------------------------------------------------------------------


def rand(n: int, seed: int) -> bytes:
    """Seeded random bytes, distinct per seed (so dedup against other tests never hides a
    leak, and measured numbers do not vary between runs)."""
    import random

    return random.Random(seed).randbytes(n)


def fresh(n: int) -> bytes:
    return rand(n, uuid.uuid4().int)


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def mp_etag(parts: list[bytes]) -> str:
    return f'"{hashlib.md5(b"".join(md5(p) for p in parts)).hexdigest()}-{len(parts)}"'


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def digest(algo: str, data: bytes) -> bytes:
    c = new_checksum(algo)
    c.update(data)
    return c.digest()


def composite(algo: str, parts: list[bytes]) -> str:
    return f"{b64(digest(algo, b''.join(digest(algo, p) for p in parts)))}-{len(parts)}"


def create(s3: Any, bucket: str, key: str, **kw: Any) -> str:
    return str(s3.create_multipart_upload(Bucket=bucket, Key=key, **kw)["UploadId"])


def put_part(s3: Any, bucket: str, key: str, uid: str, n: int, data: bytes, **kw: Any) -> str:
    return str(
        s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=data, **kw)["ETag"]
    )


def complete(
    s3: Any, bucket: str, key: str, uid: str, parts: list[dict[str, Any]], **kw: Any
) -> Any:
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": parts}, **kw
    )


def upload(s3: Any, bucket: str, key: str, parts: list[bytes], **create_kw: Any) -> Any:
    """Create, upload every part, complete: the CompleteMultipartUpload response."""
    uid = create(s3, bucket, key, **create_kw)
    listed = [
        {"PartNumber": n, "ETag": put_part(s3, bucket, key, uid, n, p)}
        for n, p in enumerate(parts, 1)
    ]
    return complete(s3, bucket, key, uid, listed)


def read(s3: Any, bucket: str, key: str, **kw: Any) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read())


def settled(server: Server) -> dict[str, Any]:
    """Stats once every unreferenced chunk is gone."""
    server.gc(0)
    return server.stats()


STORAGE = ("objects", "logical_bytes", "chunks", "chunk_bytes", "inline_bytes")


def storage(stats: dict[str, Any]) -> dict[str, int]:
    return {k: int(stats[k]) for k in STORAGE}


# -- the transfer manager ------------------------------------------------------------------

TRANSFER = TransferConfig(
    multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=8
)


def test_transfer_manager_up_and_down(s3: Any, bucket: str, tmp_path: Path) -> None:
    data = fresh(23 * MiB + 12345)
    src, dst = tmp_path / "up", tmp_path / "down"
    src.write_bytes(data)
    s3.upload_file(str(src), bucket, "big", Config=TRANSFER)
    pieces = [data[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    head = s3.head_object(Bucket=bucket, Key="big")
    assert head["ETag"] == mp_etag(pieces)
    assert head["ContentLength"] == len(data)
    assert "PartsCount" not in head  # only with ?partNumber
    assert s3.head_object(Bucket=bucket, Key="big", PartNumber=1)["PartsCount"] == len(pieces)
    s3.download_file(bucket, "big", str(dst), Config=TRANSFER)
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert read(s3, bucket, "big") == data


# -- the low-level calls -------------------------------------------------------------------


def test_low_level_round_trip(s3: Any, bucket: str) -> None:
    parts = [fresh(PART), fresh(PART + 1), fresh(1000)]
    uid = create(
        s3,
        bucket,
        "obj",
        ContentType="text/csv",
        ContentDisposition="attachment",
        CacheControl="no-cache",
        ContentLanguage="fr",
        Metadata={"color": "blue", "n": "7"},
    )
    etags = [put_part(s3, bucket, "obj", uid, n, p) for n, p in enumerate(parts, 1)]
    assert etags == [f'"{md5(p).hex()}"' for p in parts]  # a part's ETag is its MD5
    with pytest.raises(ClientError) as e:  # not visible before completion
        s3.head_object(Bucket=bucket, Key="obj")
    assert_error(e, "404", 404)
    done = complete(
        s3, bucket, "obj", uid, [{"PartNumber": n, "ETag": t} for n, t in enumerate(etags, 1)]
    )
    assert done["ETag"] == mp_etag(parts)
    assert (done["Bucket"], done["Key"]) == (bucket, "obj")
    assert done["Location"].endswith(f"/{bucket}/obj")
    got = s3.get_object(Bucket=bucket, Key="obj")
    assert got["Body"].read() == b"".join(parts)
    assert got["ETag"] == mp_etag(parts)
    assert got["ContentLength"] == sum(map(len, parts))
    assert got["ContentType"] == "text/csv"
    assert got["ContentDisposition"] == "attachment"
    assert got["CacheControl"] == "no-cache"
    assert got["ContentLanguage"] == "fr"
    assert got["Metadata"] == {"color": "blue", "n": "7"}
    # the upload is gone
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="obj", UploadId=uid)
    assert_error(e, "NoSuchUpload", 404)


def test_long_key_and_acl(s3: Any, bucket: str) -> None:
    key = "long/" + "é" * 300 + "x" * 418  # 1,023 bytes of UTF-8
    uid = create(s3, bucket, key, ACL="private")
    etag = put_part(s3, bucket, key, uid, 1, b"abc")
    assert _listed(s3.list_multipart_uploads(Bucket=bucket, Prefix="long/")) == [(key, uid)]
    assert s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)["Parts"][0]["ETag"] == etag
    complete(s3, bucket, key, uid, [{"PartNumber": 1, "ETag": etag}])
    assert read(s3, bucket, key) == b"abc"
    with pytest.raises(ClientError) as e:
        create(s3, bucket, "k", ACL="public-read-write")
    assert_error(e, "AccessControlListNotSupported", 400)


def test_single_part_and_empty_last_part(s3: Any, bucket: str) -> None:
    assert upload(s3, bucket, "one", [b"tiny"])["ETag"] == mp_etag([b"tiny"])
    assert read(s3, bucket, "one") == b"tiny"
    parts = [fresh(PART), b""]
    assert upload(s3, bucket, "two", parts)["ETag"] == mp_etag(parts)
    assert read(s3, bucket, "two") == parts[0]


def test_entity_too_small(s3: Any, bucket: str) -> None:
    uid = create(s3, bucket, "k")
    small = [put_part(s3, bucket, "k", uid, n, fresh(PART - 1)) for n in (1, 2)]
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "k", uid, [{"PartNumber": n, "ETag": small[n - 1]} for n in (1, 2)])
    assert_error(e, "EntityTooSmall", 400)
    # the upload survives a failed completion; the last part alone may be small
    done = complete(s3, bucket, "k", uid, [{"PartNumber": 2, "ETag": small[1]}])
    assert done["ETag"].endswith('-1"')


def test_invalid_part_and_order(s3: Any, bucket: str) -> None:
    uid = create(s3, bucket, "k")
    t1 = put_part(s3, bucket, "k", uid, 1, fresh(PART))
    t2 = put_part(s3, bucket, "k", uid, 2, fresh(10))
    p1, p2 = {"PartNumber": 1, "ETag": t1}, {"PartNumber": 2, "ETag": t2}
    cases: list[tuple[list[dict[str, Any]], str]] = [
        ([p1, {"PartNumber": 3, "ETag": t2}], "InvalidPart"),  # never uploaded
        ([p1, {"PartNumber": 2, "ETag": t1}], "InvalidPart"),  # wrong ETag
        ([p1, {"PartNumber": 2, "ETag": '"' + "0" * 32 + '"'}], "InvalidPart"),
        ([p2, p1], "InvalidPartOrder"),
        ([p1, p1, p2], "InvalidPartOrder"),  # not strictly ascending
    ]
    for listed, code in cases:
        with pytest.raises(ClientError) as e:
            complete(s3, bucket, "k", uid, listed)
        assert_error(e, code, 400)
    # ETags with or without quotes, any case
    done = complete(
        s3,
        bucket,
        "k",
        uid,
        [{"PartNumber": 1, "ETag": t1.strip('"')}, {"PartNumber": 2, "ETag": t2.upper()}],
    )
    assert done["ETag"].endswith('-2"')


def test_complete_malformed(server: Server, s3: Any, bucket: str) -> None:
    uid = create(s3, bucket, "k")
    for body in (b"", b"<CompleteMultipartUpload/>", b"<nope>", b"<Other></Other>"):
        status, _, resp = raw_request(
            server, "POST", f"/{bucket}/k", query=f"uploadId={uid}", body=body
        )
        assert status == 400, resp
        assert b"<Code>MalformedXML</Code>" in resp


def test_complete_body_digests(server: Server, s3: Any, bucket: str) -> None:
    """Content-MD5 and an aws-chunked trailer checksum cover the XML body (x-amz-checksum-*
    headers, by contrast, carry the whole object's checksum: see test_checksum_errors)."""
    uid = create(s3, bucket, "k")
    etag = put_part(s3, bucket, "k", uid, 1, b"data")
    xml = (
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        f"<ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    ).encode()
    path, query = f"/{bucket}/k", f"uploadId={uid}"
    status, _, body = raw_request(
        server, "POST", path, query=query, body=xml, headers={"Content-MD5": b64(md5(b"x"))}
    )
    assert status == 400 and b"<Code>BadDigest</Code>" in body, body
    chunked = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(xml)),
        "X-Amz-Trailer": "x-amz-checksum-crc32",
    }
    good = unsigned_trailer_body(xml)
    bad = good.replace(b64(digest("CRC32", xml)).encode(), b64(digest("CRC32", b"x")).encode())
    assert bad != good
    status, _, body = raw_request(
        server,
        "POST",
        path,
        query=query,
        body=bad,
        headers=chunked,
        content_sha256="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )
    assert status == 400 and b"<Code>BadDigest</Code>" in body, body
    status, _, body = raw_request(
        server,
        "POST",
        path,
        query=query,
        body=good,
        headers={**chunked, "Content-MD5": b64(md5(xml))},
        content_sha256="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )
    assert status == 200, body
    assert read(s3, bucket, "k") == b"data"


def test_no_such_upload(s3: Any, bucket: str) -> None:
    uid = create(s3, bucket, "k")
    bogus = ["0" * 32, "not-an-upload-id", uid[:-2]]
    calls = [
        lambda u, k="k": s3.upload_part(Bucket=bucket, Key=k, UploadId=u, PartNumber=1, Body=b"x"),
        lambda u, k="k": s3.list_parts(Bucket=bucket, Key=k, UploadId=u),
        lambda u, k="k": s3.abort_multipart_upload(Bucket=bucket, Key=k, UploadId=u),
        lambda u, k="k": complete(s3, bucket, k, u, [{"PartNumber": 1, "ETag": "x"}]),
    ]
    for call in calls:
        for u in bogus:
            with pytest.raises(ClientError) as e:
                call(u)
            assert_error(e, "NoSuchUpload", 404)
        with pytest.raises(ClientError) as e:
            call(uid, "other-key")  # an upload id belongs to its key
        assert_error(e, "NoSuchUpload", 404)
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=uid)
    for call in calls:
        with pytest.raises(ClientError) as e:
            call(uid)
        assert_error(e, "NoSuchUpload", 404)
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket=bucket + "-missing", Key="k")
    assert_error(e, "NoSuchBucket", 404)


def test_part_numbers(server: Server, s3: Any, bucket: str) -> None:
    uid = create(s3, bucket, "k")
    for bad in ("0", "10001", "-1", "abc", "1.5", ""):
        status, _, body = raw_request(
            server, "PUT", f"/{bucket}/k", query=f"partNumber={bad}&uploadId={uid}", body=b"x"
        )
        assert status == 400, (bad, body)
        assert b"<Code>InvalidArgument</Code>" in body
    # 10,000 parts: the highest number is fine
    t1 = put_part(s3, bucket, "k", uid, 1, fresh(PART))
    t2 = put_part(s3, bucket, "k", uid, 10_000, b"last")
    listed = [{"PartNumber": 1, "ETag": t1}, {"PartNumber": 10_000, "ETag": t2}]
    assert complete(s3, bucket, "k", uid, listed)["ETag"].endswith('-2"')


def test_part_too_large_refused_before_the_body(server: Server, s3: Any, bucket: str) -> None:
    uid = create(s3, bucket, "k")
    status, _, body = raw_request(
        server,
        "PUT",
        f"/{bucket}/k",
        query=f"partNumber=1&uploadId={uid}",
        headers={"Content-Length": str(5 * GiB + 1)},
        content_sha256="UNSIGNED-PAYLOAD",
    )
    assert status == 400, body
    assert b"<Code>EntityTooLarge</Code>" in body
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=uid)


def test_upload_part_bad_digests(s3: Any, bucket: str) -> None:
    uid = create(s3, bucket, "k")
    data = fresh(3000)
    with pytest.raises(ClientError) as e:
        put_part(s3, bucket, "k", uid, 1, data, ContentMD5=b64(md5(b"other")))
    assert_error(e, "BadDigest", 400)
    with pytest.raises(ClientError) as e:
        put_part(s3, bucket, "k", uid, 1, data, ChecksumCRC32=b64(digest("CRC32", b"other")))
    assert_error(e, "BadDigest", 400)
    assert s3.list_parts(Bucket=bucket, Key="k", UploadId=uid).get("Parts", []) == []
    etag = put_part(s3, bucket, "k", uid, 1, data, ContentMD5=b64(md5(data)))
    assert etag == f'"{md5(data).hex()}"'
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=uid)


def test_complete_conditions(s3: Any, bucket: str) -> None:
    def started(key: str) -> tuple[str, list[dict[str, Any]]]:
        uid = create(s3, bucket, key)
        return uid, [{"PartNumber": 1, "ETag": put_part(s3, bucket, key, uid, 1, b"body")}]

    # If-None-Match: * — only when the key is free
    uid, parts = started("k")
    done = complete(s3, bucket, "k", uid, parts, IfNoneMatch="*")
    uid, parts = started("k")
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "k", uid, parts, IfNoneMatch="*")
    assert_error(e, "PreconditionFailed", 412)
    # the upload is still there; If-Match with the current ETag replaces the object
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "k", uid, parts, IfMatch='"' + "0" * 32 + '"')
    assert_error(e, "PreconditionFailed", 412)
    complete(s3, bucket, "k", uid, parts, IfMatch=done["ETag"])
    # If-Match on a key that does not exist
    uid, parts = started("absent")
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "absent", uid, parts, IfMatch=done["ETag"])
    assert_error(e, "NoSuchKey", 404)
    s3.abort_multipart_upload(Bucket=bucket, Key="absent", UploadId=uid)


def test_complete_is_idempotent(s3: Any, bucket: str) -> None:
    uid = create(s3, bucket, "k")
    parts = [{"PartNumber": 1, "ETag": put_part(s3, bucket, "k", uid, 1, b"abc")}]
    first = complete(s3, bucket, "k", uid, parts)
    again = complete(s3, bucket, "k", uid, parts)
    assert again["ETag"] == first["ETag"]
    assert read(s3, bucket, "k") == b"abc"
    # once the object was replaced, the old upload id is unknown again
    s3.put_object(Bucket=bucket, Key="k", Body=b"other")
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "k", uid, parts)
    assert_error(e, "NoSuchUpload", 404)
    assert read(s3, bucket, "k") == b"other"


# -- payload forms of UploadPart -----------------------------------------------------------


def signed_chunked_put(server: Server, path: str, query: str, data: bytes) -> tuple[int, bytes]:
    """PUT with ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``: every aws-chunked frame signed."""
    frame = 64 * KiB
    pieces = [data[i : i + frame] for i in range(0, len(data), frame)] + [b""]
    length = sum(len(f"{len(p):x};chunk-signature={'0' * 64}\r\n") + len(p) + 2 for p in pieces)
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "Content-Length": str(length),
        "X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    }
    signed_req = sign(
        "PUT",
        f"{server.endpoint}{path}?{query}",
        headers,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    )
    signed = signed_req.headers
    body = aws_chunked(data, frame, signed_req)
    assert len(body) == length
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("PUT", f"{path}?{query}", body=bytes(body), headers=signed)
        resp = conn.getresponse()
        return resp.status, resp.read() if resp.status != 200 else resp.getheader(
            "ETag", ""
        ).encode()
    finally:
        conn.close()


def unsigned_trailer_body(data: bytes) -> bytes:
    crc = b64(zlib.crc32(data).to_bytes(4, "big"))
    out = b""
    for i in range(0, len(data), 100_000):
        piece = data[i : i + 100_000]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + f"0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode()


def test_upload_part_payload_forms(server: Server, s3: Any, bucket: str) -> None:
    """Every body form a single PUT accepts works for a part: signed hex SHA-256 (boto3),
    UNSIGNED-PAYLOAD, aws-chunked with signed frames, aws-chunked unsigned with a trailer."""
    uid = create(s3, bucket, "k", ChecksumAlgorithm="CRC32")
    parts = [fresh(PART + n) for n in range(4)]
    path, q = f"/{bucket}/k", f"uploadId={uid}&partNumber="
    etags = [put_part(s3, bucket, "k", uid, 1, parts[0], ChecksumAlgorithm="CRC32")]
    status, h, body = raw_request(
        server, "PUT", path, query=q + "2", body=parts[1], content_sha256="UNSIGNED-PAYLOAD"
    )
    assert status == 200, body
    etags.append(h["etag"])
    status, body = signed_chunked_put(server, path, q + "3", parts[2])
    assert status == 200, body
    etags.append(body.decode())
    status, h, body = raw_request(
        server,
        "PUT",
        path,
        query=q + "4",
        headers={
            "Content-Encoding": "aws-chunked",
            "X-Amz-Decoded-Content-Length": str(len(parts[3])),
            "X-Amz-Trailer": "x-amz-checksum-crc32",
        },
        body=unsigned_trailer_body(parts[3]),
        content_sha256="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )
    assert status == 200, body
    assert h["x-amz-checksum-crc32"] == b64(digest("CRC32", parts[3]))
    etags.append(h["etag"])
    assert etags == [f'"{md5(p).hex()}"' for p in parts]
    listed = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid)["Parts"]
    assert [p["ChecksumCRC32"] for p in listed] == [b64(digest("CRC32", p)) for p in parts]
    done = complete(
        s3,
        bucket,
        "k",
        uid,
        [
            {"PartNumber": n, "ETag": t, "ChecksumCRC32": p["ChecksumCRC32"]}
            for n, (t, p) in enumerate(zip(etags, listed, strict=True), 1)
        ],
    )
    assert done["ETag"] == mp_etag(parts)
    assert done["ChecksumCRC32"] == composite("CRC32", parts)
    assert read(s3, bucket, "k") == b"".join(parts)


# -- references: parts are pinned, dropped parts and aborted uploads are freed --------------


def test_subset_completion_and_reupload_release_chunks(
    server: Server, s3: Any, bucket: str
) -> None:
    p1, p2a, p2b, p3, p4 = (fresh(PART) for _ in range(5))
    before = settled(server)
    uid = create(s3, bucket, "k")
    t1 = put_part(s3, bucket, "k", uid, 1, p1)
    put_part(s3, bucket, "k", uid, 2, p2a)
    put_part(s3, bucket, "k", uid, 3, p3)
    put_part(s3, bucket, "k", uid, 4, p4)
    t2 = put_part(s3, bucket, "k", uid, 2, p2b)  # replaces the first part 2
    listed = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in listed] == [
        (1, t1),
        (2, t2),
        (3, f'"{md5(p3).hex()}"'),
        (4, f'"{md5(p4).hex()}"'),
    ]
    report = server.fsck()
    assert report["ok"], report["output"]
    assert report["pinned_references"] == 0
    mid = settled(server)  # the replaced part's chunks are gone, the others are held
    assert mid["chunk_bytes"] - before["chunk_bytes"] == 4 * PART
    assert mid["objects"] == before["objects"]
    # complete with parts 1 and 2 only: 3 and 4 give their chunks back
    done = complete(
        s3, bucket, "k", uid, [{"PartNumber": 1, "ETag": t1}, {"PartNumber": 2, "ETag": t2}]
    )
    assert done["ETag"] == mp_etag([p1, p2b])
    assert read(s3, bucket, "k") == p1 + p2b
    assert server.fsck()["ok"]
    after = settled(server)
    assert after["chunk_bytes"] - before["chunk_bytes"] == 2 * PART
    assert after["objects"] == before["objects"] + 1
    assert after["logical_bytes"] - before["logical_bytes"] == 2 * PART
    # replacing the object gives its chunks back too
    s3.put_object(Bucket=bucket, Key="k", Body=b"small")
    assert storage(settled(server))["chunk_bytes"] == before["chunk_bytes"]


def test_abort_then_gc_restores_stats(server: Server, s3: Any, bucket: str) -> None:
    shared = fresh(300 * KiB)
    s3.put_object(Bucket=bucket, Key="existing", Body=shared)
    before = settled(server)
    uid = create(s3, bucket, "k")
    put_part(s3, bucket, "k", uid, 1, fresh(PART))
    put_part(s3, bucket, "k", uid, 2, shared)  # dedups against the existing object
    put_part(s3, bucket, "k", uid, 3, b"x")  # tiny parts are chunks too (never inline)
    put_part(s3, bucket, "k", uid, 3, fresh(100))
    assert settled(server)["chunk_bytes"] == before["chunk_bytes"] + PART + 100
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=uid)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    report = server.fsck()
    assert report["ok"], report["output"]
    assert storage(settled(server)) == storage(before)
    assert read(s3, bucket, "existing") == shared


def test_parts_survive_gc_while_in_progress(server: Server, s3: Any, bucket: str) -> None:
    parts = [fresh(PART), fresh(70 * KiB)]
    uid = create(s3, bucket, "k")
    etags = [put_part(s3, bucket, "k", uid, n, p) for n, p in enumerate(parts, 1)]
    server.gc(0)
    report = server.fsck()
    assert report["ok"], report["output"]
    complete(s3, bucket, "k", uid, [{"PartNumber": n, "ETag": t} for n, t in enumerate(etags, 1)])
    assert read(s3, bucket, "k") == b"".join(parts)


def test_same_part_number_raced(server: Server, s3: Any, bucket: str) -> None:
    """Eight clients upload part 1 at once: one wins, the others' chunks are all freed."""
    bodies = [fresh(PART + n) for n in range(8)]
    before = settled(server)
    uid = create(s3, bucket, "k")
    with ThreadPoolExecutor(8) as pool:
        etags = list(pool.map(lambda b: put_part(s3, bucket, "k", uid, 1, b), bodies))
    (part,) = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid)["Parts"]
    winner = bodies[etags.index(part["ETag"])]
    assert settled(server)["chunk_bytes"] == before["chunk_bytes"] + len(winner)
    complete(s3, bucket, "k", uid, [{"PartNumber": 1, "ETag": part["ETag"]}])
    assert read(s3, bucket, "k") == winner
    report = server.fsck()
    assert report["ok"], report["output"]


def test_upload_survives_restart(tmp_path: Path) -> None:
    """Startup releases the pins of requests in flight, never the parts of an upload."""
    srv = make_server(tmp_path).start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="restart")
        parts = [fresh(PART), fresh(3000)]
        uid = create(s3, "restart", "k")
        etags = [put_part(s3, "restart", "k", uid, 1, parts[0])]
        srv.restart()
        srv.gc(0)
        s3 = srv.client()
        etags.append(put_part(s3, "restart", "k", uid, 2, parts[1]))
        listed = [{"PartNumber": n, "ETag": t} for n, t in enumerate(etags, 1)]
        complete(s3, "restart", "k", uid, listed)
        srv.restart()
        assert read(srv.client(), "restart", "k") == b"".join(parts)
        report = srv.fsck()
        assert report["ok"], report["output"]
    finally:
        srv.stop()


# -- listings ------------------------------------------------------------------------------


def test_list_parts_pagination(s3: Any, bucket: str) -> None:
    uid = create(s3, bucket, "k", ChecksumAlgorithm="SHA256")
    numbers = [1, 2, 3, 5, 8, 13, 10_000]
    bodies = {n: fresh(n % 97 + 1) for n in numbers}
    for n in numbers:
        put_part(s3, bucket, "k", uid, n, bodies[n], ChecksumAlgorithm="SHA256")
    seen: list[int] = []
    marker, pages = 0, 0
    while True:
        page = s3.list_parts(
            Bucket=bucket, Key="k", UploadId=uid, MaxParts=3, PartNumberMarker=marker
        )
        pages += 1
        assert page["MaxParts"] == 3
        assert page["PartNumberMarker"] == marker
        assert page["ChecksumAlgorithm"] == "SHA256"
        assert page["Initiator"]["ID"] and page["Owner"]["ID"]
        for p in page["Parts"]:
            n = p["PartNumber"]
            assert p["Size"] == len(bodies[n])
            assert p["ETag"] == f'"{md5(bodies[n]).hex()}"'
            assert p["ChecksumSHA256"] == b64(digest("SHA256", bodies[n]))
            assert isinstance(p["LastModified"], datetime)
            seen.append(n)
        if not page["IsTruncated"]:
            break
        assert page["NextPartNumberMarker"] == page["Parts"][-1]["PartNumber"]
        marker = page["NextPartNumberMarker"]
    assert seen == numbers
    assert pages == 3
    whole = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid)
    assert [p["PartNumber"] for p in whole["Parts"]] == numbers
    assert whole["IsTruncated"] is False
    empty = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid, PartNumberMarker=10_000)
    assert empty.get("Parts", []) == []
    assert empty["IsTruncated"] is False
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=uid)


@pytest.fixture
def uploads(s3: Any, bucket: str) -> list[tuple[str, str]]:
    """(key, upload id) in S3's listing order: key, then initiation time."""
    out = []
    for key in ("a/1", "a/2", "b", "b", "c/x/y", "d"):
        out.append((key, create(s3, bucket, key)))
    return out


def _listed(page: dict[str, Any]) -> list[tuple[str, str]]:
    return [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]


def _prefixes(page: dict[str, Any]) -> list[str]:
    return [p["Prefix"] for p in page.get("CommonPrefixes", [])]


def test_list_multipart_uploads(s3: Any, bucket: str, uploads: list[tuple[str, str]]) -> None:
    page = s3.list_multipart_uploads(Bucket=bucket)
    assert _listed(page) == uploads
    assert page["IsTruncated"] is False
    assert page["MaxUploads"] == 1000
    for u in page["Uploads"]:
        assert u["Initiated"] <= datetime.now(UTC) + timedelta(seconds=1)
        assert u["StorageClass"] == "STANDARD"
    page = s3.list_multipart_uploads(Bucket=bucket, Prefix="a/")
    assert _listed(page) == uploads[:2]
    page = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert _listed(page) == [uploads[2], uploads[3], uploads[5]]
    assert _prefixes(page) == ["a/", "c/"]
    page = s3.list_multipart_uploads(Bucket=bucket, Prefix="c/", Delimiter="/")
    assert _listed(page) == []
    assert _prefixes(page) == ["c/x/"]
    # key-marker alone: keys after it; with an upload-id-marker: later uploads of that key too
    page = s3.list_multipart_uploads(Bucket=bucket, KeyMarker="b")
    assert _listed(page) == uploads[4:]
    page = s3.list_multipart_uploads(Bucket=bucket, KeyMarker="b", UploadIdMarker=uploads[2][1])
    assert _listed(page) == uploads[3:]


@pytest.mark.parametrize("max_uploads", [1, 2, 3, 4])
def test_list_multipart_uploads_pagination(
    s3: Any, bucket: str, uploads: list[tuple[str, str]], max_uploads: int
) -> None:
    seen: list[tuple[str, str]] = []
    key_marker, uid_marker = "", ""
    for _ in range(10):
        page = s3.list_multipart_uploads(
            Bucket=bucket, MaxUploads=max_uploads, KeyMarker=key_marker, UploadIdMarker=uid_marker
        )
        assert len(_listed(page)) <= max_uploads
        seen += _listed(page)
        if not page["IsTruncated"]:
            break
        key_marker, uid_marker = page["NextKeyMarker"], page["NextUploadIdMarker"]
        assert (key_marker, uid_marker) == seen[-1]
    assert seen == uploads


def test_list_multipart_uploads_pagination_with_delimiter(
    s3: Any, bucket: str, uploads: list[tuple[str, str]]
) -> None:
    seen: list[str] = []
    key_marker, uid_marker = "", ""
    for _ in range(10):
        page = s3.list_multipart_uploads(
            Bucket=bucket,
            Delimiter="/",
            MaxUploads=1,
            KeyMarker=key_marker,
            UploadIdMarker=uid_marker,
        )
        seen += _prefixes(page) + [k for k, _ in _listed(page)]
        if not page["IsTruncated"]:
            break
        key_marker, uid_marker = page["NextKeyMarker"], page.get("NextUploadIdMarker", "")
    assert seen == ["a/", "b", "b", "c/", "d"]


def test_list_multipart_uploads_missing_bucket(s3: Any) -> None:
    with pytest.raises(ClientError) as e:
        s3.list_multipart_uploads(Bucket=f"missing-{uuid.uuid4().hex[:8]}")
    assert_error(e, "NoSuchBucket", 404)


# -- UploadPartCopy ------------------------------------------------------------------------


def _copy(s3: Any, bucket: str, key: str, uid: str, n: int, src: str, **kw: Any) -> str:
    resp = s3.upload_part_copy(
        Bucket=bucket,
        Key=key,
        UploadId=uid,
        PartNumber=n,
        CopySource={"Bucket": bucket, "Key": src},
        **kw,
    )
    return str(resp["CopyPartResult"]["ETag"])


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, for exact storage counts: on the shared one, a request an
    earlier test cut off may still store (and later drop) chunks while this test counts."""
    srv = make_server(tmp_path / "own").start()
    yield srv
    srv.stop()


def test_upload_part_copy_references_inner_chunks(own_server: Server) -> None:
    server = own_server
    s3 = instrument(server.client())
    bucket = "inner-chunks"
    s3.create_bucket(Bucket=bucket)
    data = fresh(14 * MiB)
    cuts = chunk_boundaries(data)
    s3.put_object(Bucket=bucket, Key="src", Body=data)
    uid = create(s3, bucket, "dst")
    base = settled(server)["chunk_bytes"]

    def added() -> int:
        return int(settled(server)["chunk_bytes"]) - base

    # 1: on chunk boundaries — nothing is stored, every chunk is referenced
    a = cuts[1]
    b = next(c for c in cuts if c - a >= PART)
    ranges = [(a, b)]
    _copy(s3, bucket, "dst", uid, 1, "src", CopySourceRange=f"bytes={a}-{b - 1}")
    assert added() == 0
    # 2: off the boundaries — only the two edge pieces are stored anew
    i = cuts.index(b) + 1
    a = cuts[i] + 1000
    j = next(k for k, c in enumerate(cuts) if c - a >= PART + 2 * MiB)
    b = cuts[j] - 500
    ranges.append((a, b))
    etag = _copy(s3, bucket, "dst", uid, 2, "src", CopySourceRange=f"bytes={a}-{b - 1}")
    assert etag == f'"{md5(data[a:b]).hex()}"'
    edges = (cuts[i + 1] - a) + (b - cuts[j - 1])
    assert added() == edges
    # 3: inside one chunk
    a = cuts[-2] + 10
    ranges.append((a, a + 10))
    _copy(s3, bucket, "dst", uid, 3, "src", CopySourceRange=f"bytes={a}-{a + 9}")
    assert added() == edges + 10
    listed = s3.list_parts(Bucket=bucket, Key="dst", UploadId=uid)["Parts"]
    pieces = [data[x:y] for x, y in ranges]
    assert [p["Size"] for p in listed] == [len(p) for p in pieces]
    done = complete(
        s3, bucket, "dst", uid, [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in listed]
    )
    assert done["ETag"] == mp_etag(pieces)
    assert read(s3, bucket, "dst") == b"".join(pieces)
    assert added() == edges + 10
    assert server.fsck()["ok"]


def test_upload_part_copy_whole_sources(server: Server, s3: Any, bucket: str) -> None:
    """Without a range: a chunked object, a multipart object, an inline (small) object."""
    big = fresh(PART + 3)
    s3.put_object(Bucket=bucket, Key="big", Body=big)
    mp = [fresh(PART), fresh(1000)]
    upload(s3, bucket, "mp", mp)
    s3.put_object(Bucket=bucket, Key="tiny", Body=b"tiny object")
    base = settled(server)["chunk_bytes"]
    uid = create(s3, bucket, "dst")
    etags = [
        _copy(s3, bucket, "dst", uid, 1, "big"),
        _copy(s3, bucket, "dst", uid, 2, "mp"),
        _copy(s3, bucket, "dst", uid, 3, "tiny"),
    ]
    assert etags[0] == f'"{md5(big).hex()}"'
    assert etags[1] == f'"{md5(b"".join(mp)).hex()}"'  # a part's ETag: the MD5 of its bytes
    done = complete(
        s3, bucket, "dst", uid, [{"PartNumber": n, "ETag": t} for n, t in enumerate(etags, 1)]
    )
    expect = [big, b"".join(mp), b"tiny object"]
    assert done["ETag"] == mp_etag(expect)
    assert read(s3, bucket, "dst") == b"".join(expect)
    # only the inline source became a new chunk
    assert settled(server)["chunk_bytes"] - base == len(b"tiny object")


def test_upload_part_copy_checksums(s3: Any, bucket: str) -> None:
    src = fresh(PART + 99)
    s3.put_object(Bucket=bucket, Key="src", Body=src)
    uid = create(s3, bucket, "dst", ChecksumAlgorithm="CRC32C")
    copied = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=uid,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes=99-{PART + 98}",
    )["CopyPartResult"]
    assert copied["ChecksumCRC32C"] == b64(digest("CRC32C", src[99:]))
    r = s3.upload_part(
        Bucket=bucket,
        Key="dst",
        UploadId=uid,
        PartNumber=2,
        Body=b"tail",
        ChecksumAlgorithm="CRC32C",
    )
    listed = [
        {"PartNumber": 1, "ETag": copied["ETag"], "ChecksumCRC32C": copied["ChecksumCRC32C"]},
        {"PartNumber": 2, "ETag": r["ETag"], "ChecksumCRC32C": r["ChecksumCRC32C"]},
    ]
    done = complete(s3, bucket, "dst", uid, listed)
    assert done["ChecksumCRC32C"] == composite("CRC32C", [src[99:], b"tail"])
    assert read(s3, bucket, "dst") == src[99:] + b"tail"


def test_upload_part_copy_conditions_and_errors(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")
    etag = s3.head_object(Bucket=bucket, Key="src")["ETag"]
    uid = create(s3, bucket, "dst")
    past = datetime.now(UTC) - timedelta(days=1)
    future = datetime.now(UTC) + timedelta(days=1)
    failing = [
        {"CopySourceIfMatch": '"' + "0" * 32 + '"'},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfModifiedSince": future},
        {"CopySourceIfUnmodifiedSince": past},
    ]
    for kw in failing:
        with pytest.raises(ClientError) as e:
            _copy(s3, bucket, "dst", uid, 1, "src", **kw)
        assert_error(e, "PreconditionFailed", 412)
    for kw in (
        {"CopySourceIfMatch": etag},
        {"CopySourceIfNoneMatch": '"' + "0" * 32 + '"'},
        {"CopySourceIfModifiedSince": past},
        {"CopySourceIfUnmodifiedSince": future},
        {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": past},  # If-Match wins
    ):
        assert _copy(s3, bucket, "dst", uid, 1, "src", **kw) == etag
    for rng in ("bytes=5-2", "bytes=0-10", "bytes=10-10", "bytes=-3", "bytes=2-", "items=0-1"):
        with pytest.raises(ClientError) as e:
            _copy(s3, bucket, "dst", uid, 1, "src", CopySourceRange=rng)
        assert_error(e, "InvalidArgument", 400)
    assert _copy(s3, bucket, "dst", uid, 1, "src", CopySourceRange="bytes=9-9") == (
        f'"{md5(b"9").hex()}"'
    )
    with pytest.raises(ClientError) as e:
        _copy(s3, bucket, "dst", uid, 1, "missing")
    assert_error(e, "NoSuchKey", 404)
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(
            Bucket=bucket,
            Key="dst",
            UploadId=uid,
            PartNumber=1,
            CopySource={"Bucket": bucket + "-missing", "Key": "src"},
        )
    assert_error(e, "NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        _copy(s3, bucket, "dst", "0" * 32, 1, "src")
    assert_error(e, "NoSuchUpload", 404)
    s3.abort_multipart_upload(Bucket=bucket, Key="dst", UploadId=uid)


# -- GET / HEAD ?partNumber ----------------------------------------------------------------


@pytest.fixture
def three_parts(s3: Any, bucket: str) -> tuple[str, list[bytes]]:
    parts = [fresh(PART), fresh(PART + 7), fresh(1234)]
    upload(s3, bucket, "mp", parts)
    return bucket, parts


def test_get_head_part_number(s3: Any, three_parts: tuple[str, list[bytes]]) -> None:
    bucket, parts = three_parts
    total = sum(map(len, parts))
    etag = mp_etag(parts)
    start = 0
    for n, p in enumerate(parts, 1):
        got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=n)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"] == f"bytes {start}-{start + len(p) - 1}/{total}"
        assert got["ContentLength"] == len(p)
        assert got["PartsCount"] == 3
        assert got["ETag"] == etag
        assert got["Body"].read() == p
        head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=n)
        assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert head["ContentLength"] == len(p)
        assert head["PartsCount"] == 3
        assert head["ContentRange"] == got["ContentRange"]
        start += len(p)
    assert "PartsCount" not in s3.get_object(Bucket=bucket, Key="mp", Range="bytes=0-0")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=1, Range="bytes=0-0")
    assert_error(e, "InvalidRequest", 400)


def test_part_number_out_of_range(server: Server, three_parts: tuple[str, list[bytes]]) -> None:
    bucket, _ = three_parts
    for bad in ("0", "10001", "x"):
        status, _, body = raw_request(server, "GET", f"/{bucket}/mp", query=f"partNumber={bad}")
        assert status == 400, body
        assert b"<Code>InvalidArgument</Code>" in body
    status, _, body = raw_request(server, "GET", f"/{bucket}/mp", query="partNumber=4")
    assert status == 416, body
    assert b"<ActualPartCount>3</ActualPartCount>" in body
    assert b"<PartNumberRequested>4</PartNumberRequested>" in body


def test_part_number_beyond_count_is_invalid_part_number(
    s3: Any, three_parts: tuple[str, list[bytes]]
) -> None:
    bucket, _ = three_parts
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=4)
    assert_error(e, "InvalidPartNumber", 416)


def test_part_number_on_a_plain_object(s3: Any, bucket: str) -> None:
    data = fresh(10)
    s3.put_object(Bucket=bucket, Key="plain", Body=data, ChecksumAlgorithm="CRC32")
    got = s3.get_object(Bucket=bucket, Key="plain", PartNumber=1, ChecksumMode="ENABLED")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == "bytes 0-9/10"
    assert "PartsCount" not in got
    assert got["ChecksumCRC32"] == b64(digest("CRC32", data))  # the part is the whole object
    assert got["Body"].read() == data
    head = s3.head_object(Bucket=bucket, Key="plain", PartNumber=1)
    assert head["ContentLength"] == 10
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="plain", PartNumber=2)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty", PartNumber=1)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert got["Body"].read() == b""


# -- checksums -----------------------------------------------------------------------------

CHECKSUM_CASES = [
    ("CRC32", "COMPOSITE"),
    ("CRC32C", "COMPOSITE"),
    ("SHA1", "COMPOSITE"),
    ("SHA256", "COMPOSITE"),
    ("CRC32", "FULL_OBJECT"),
    ("CRC32C", "FULL_OBJECT"),
    ("CRC64NVME", "FULL_OBJECT"),
    ("CRC32", None),  # default: COMPOSITE
    ("CRC64NVME", None),  # default: FULL_OBJECT
]


@pytest.mark.parametrize(("algo", "ctype"), CHECKSUM_CASES)
def test_checksums_low_level(s3: Any, bucket: str, algo: str, ctype: str | None) -> None:
    parts = [rand(PART, 11), rand(PART + 3, 12), rand(77, 13)]
    kw = {"ChecksumType": ctype} if ctype else {}
    created = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm=algo, **kw)
    uid = created["UploadId"]
    expect_type = ctype or ("FULL_OBJECT" if algo == "CRC64NVME" else "COMPOSITE")
    assert created["ChecksumAlgorithm"] == algo
    assert created["ChecksumType"] == expect_type
    member = "Checksum" + algo
    listed = []
    for n, p in enumerate(parts, 1):
        resp = s3.upload_part(
            Bucket=bucket, Key="k", UploadId=uid, PartNumber=n, Body=p, ChecksumAlgorithm=algo
        )
        assert resp[member] == b64(digest(algo, p))  # botocore sent it; we agree
        listed.append({"PartNumber": n, "ETag": resp["ETag"], member: resp[member]})
    page = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid)
    assert page["ChecksumAlgorithm"] == algo
    assert page["ChecksumType"] == expect_type
    done = complete(s3, bucket, "k", uid, listed)
    if expect_type == "COMPOSITE":
        want = composite(algo, parts)
    else:
        want = b64(digest(algo, b"".join(parts)))
    assert done[member] == want
    assert done["ChecksumType"] == expect_type
    for call in (s3.head_object, s3.get_object):
        got = call(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
        assert got[member] == want
        assert got["ChecksumType"] == expect_type
    plain = s3.head_object(Bucket=bucket, Key="k")
    assert member not in plain


def test_checksum_errors(s3: Any, bucket: str) -> None:
    for algo, ctype in (
        ("SHA256", "FULL_OBJECT"),
        ("SHA1", "FULL_OBJECT"),
        ("CRC64NVME", "COMPOSITE"),
    ):
        with pytest.raises(ClientError) as e:
            create(s3, bucket, "k", ChecksumAlgorithm=algo, ChecksumType=ctype)
        assert_error(e, "InvalidRequest", 400)
    parts = [fresh(PART), fresh(100), fresh(100)]
    uid = create(s3, bucket, "k", ChecksumAlgorithm="CRC32")
    listed = []
    for n, p in enumerate(parts, 1):
        r = s3.upload_part(
            Bucket=bucket, Key="k", UploadId=uid, PartNumber=n, Body=p, ChecksumAlgorithm="CRC32"
        )
        listed.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    wrong = [listed[0], {**listed[1], "ChecksumCRC32": listed[2]["ChecksumCRC32"]}]
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "k", uid, wrong)
    assert_error(e, "InvalidPart", 400)
    missing = [listed[0], {"PartNumber": 2, "ETag": listed[1]["ETag"]}]
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "k", uid, missing)
    assert_error(e, "InvalidRequest", 400)
    with pytest.raises(ClientError) as e:  # with part checksums, the numbers run 1..N
        complete(s3, bucket, "k", uid, [listed[0], listed[2]])
    assert_error(e, "InvalidPartOrder", 400)
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "k", uid, listed[:2], ChecksumType="FULL_OBJECT")
    assert_error(e, "InvalidRequest", 400)
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "k", uid, listed[:2], MpuObjectSize=PART + 99)
    assert_error(e, "InvalidRequest", 400)
    done = complete(s3, bucket, "k", uid, listed[:2], MpuObjectSize=PART + 100)
    assert done["ChecksumCRC32"] == composite("CRC32", parts[:2])

    # FULL_OBJECT: the whole-object value in the complete request is verified
    uid = create(s3, bucket, "f", ChecksumAlgorithm="CRC64NVME", ChecksumType="FULL_OBJECT")
    listed = []
    for n, p in enumerate(parts[:2], 1):
        r = s3.upload_part(
            Bucket=bucket,
            Key="f",
            UploadId=uid,
            PartNumber=n,
            Body=p,
            ChecksumAlgorithm="CRC64NVME",
        )
        listed.append({"PartNumber": n, "ETag": r["ETag"]})  # part checksums are optional here
    full = b64(digest("CRC64NVME", parts[0] + parts[1]))
    with pytest.raises(ClientError) as e:
        complete(s3, bucket, "f", uid, listed, ChecksumCRC64NVME=b64(digest("CRC64NVME", b"x")))
    assert_error(e, "BadDigest", 400)
    done = complete(
        s3, bucket, "f", uid, listed, ChecksumCRC64NVME=full, ChecksumType="FULL_OBJECT"
    )
    assert done["ChecksumCRC64NVME"] == full


def test_checksums_through_upload_file(s3: Any, bucket: str, tmp_path: Path) -> None:
    data = fresh(12 * MiB + 5)
    pieces = [data[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    src = tmp_path / "f"
    src.write_bytes(data)
    # s3transfer's default: CRC32, COMPOSITE
    s3.upload_file(str(src), bucket, "default", Config=TRANSFER)
    head = s3.head_object(Bucket=bucket, Key="default", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == composite("CRC32", pieces)
    assert head["ChecksumType"] == "COMPOSITE"
    # CRC64NVME: FULL_OBJECT
    s3.upload_file(
        str(src), bucket, "nvme", Config=TRANSFER, ExtraArgs={"ChecksumAlgorithm": "CRC64NVME"}
    )
    head = s3.head_object(Bucket=bucket, Key="nvme", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == b64(digest("CRC64NVME", data))
    assert head["ChecksumType"] == "FULL_OBJECT"
    # a full-object value given up front: sent (with the size) on complete, and verified
    full = b64(digest("CRC32C", data))
    s3.upload_file(
        str(src),
        bucket,
        "given",
        Config=TRANSFER,
        ExtraArgs={"ChecksumCRC32C": full, "MpuObjectSize": len(data)},
    )
    head = s3.head_object(Bucket=bucket, Key="given", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == full
    assert head["ChecksumType"] == "FULL_OBJECT"
    assert head["ETag"] == mp_etag(pieces)
    with pytest.raises(S3UploadFailedError, match="BadDigest"):
        s3.upload_file(
            str(src),
            bucket,
            "wrong",
            Config=TRANSFER,
            ExtraArgs={"ChecksumCRC32C": b64(digest("CRC32C", b"x"))},
        )
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="wrong")
    assert_error(e, "404", 404)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)  # s3transfer aborted it


# -- limits --------------------------------------------------------------------------------


def _fake_parts(sizes: list[int]) -> tuple[list[PartRecord], list[tuple[int, str, dict[str, str]]]]:
    parts = [PartRecord(size=s, md5=md5(str(n).encode()), mtime_ms=0) for n, s in enumerate(sizes)]
    return parts, [(n, p.etag, {}) for n, p in enumerate(parts, 1)]


def test_object_size_limit_is_5_tib() -> None:
    """No real data: the record CompleteMultipartUpload builds from 1,024 and 1,025 parts of
    5 GiB (5 TiB is allowed, more is not), and 10,000 parts; sizes are u64 end to end."""
    upload = UploadRecord(initiated_ms=0, owner="o")
    parts, requested = _fake_parts([5 * GiB] * 1024)
    rec = build_object(upload, parts, requested, {}, 1)
    assert rec.size == 5 * 1024**4
    back = ObjectRecord.decode(rec.encode())
    assert back.size == rec.size
    assert back.part_sizes == [5 * GiB] * 1024
    last = part_range("1024", back)
    assert (last.start, last.end) == (1023 * 5 * GiB, 1024 * 5 * GiB)
    parts, requested = _fake_parts([5 * GiB] * 1025)
    with pytest.raises(S3Error) as e:
        build_object(upload, parts, requested, {}, 1)
    assert e.value.code == "EntityTooLarge"
    parts, requested = _fake_parts([PART] * 10_000)
    rec = ObjectRecord.decode(build_object(upload, parts, requested, {}, 1).encode())
    assert rec.etag.endswith("-10000")
    assert len(rec.part_sizes) == 10_000
    assert part_range("10000", rec).end == 10_000 * PART
    with pytest.raises(S3Error):
        part_range("10001", rec)


# -- dedup across parts and objects --------------------------------------------------------


def test_dedup_across_parts(server: Server, s3: Any, bucket: str) -> None:
    """64 MiB stored by one PUT, then uploaded again as 8 MiB parts: only the chunks at the
    7 part boundaries are new (5.5 % with this seed, 5-7 % on other data; bound 10 %).
    The same parts again cost nothing, and so does the same single PUT again."""
    data = rand(64 * MiB, seed=3)
    s3.put_object(Bucket=bucket, Key="single", Body=data)
    before = settled(server)["chunk_bytes"]
    parts = [data[i : i + 8 * MiB] for i in range(0, len(data), 8 * MiB)]
    assert upload(s3, bucket, "parts", parts)["ETag"] == mp_etag(parts)
    extra = settled(server)["chunk_bytes"] - before
    assert 0 < extra < 0.10 * len(data), extra
    upload(s3, bucket, "parts-again", parts)
    s3.put_object(Bucket=bucket, Key="single-again", Body=data)
    assert settled(server)["chunk_bytes"] - before == extra
    assert read(s3, bucket, "parts") == data
    for key in ("single", "parts", "parts-again", "single-again"):
        s3.delete_object(Bucket=bucket, Key=key)


# -- the end -------------------------------------------------------------------------------


def test_zz_fsck(server: Server) -> None:
    server.gc(0)
    report = server.fsck()
    assert report["ok"], report["output"]
    assert report["pinned_references"] == 0
