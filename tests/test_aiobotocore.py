"""aiobotocore (the async botocore) against a real server, end to end: objects of every size
with the default checksum behaviour, ranged and streamed reads, paginated listings, multipart
with concurrent parts, copies, presigned URLs sent by aiohttp, batch deletes, authentication
failures, and many requests in flight through one client."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import uuid
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yarl
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError, WaiterError

from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, Server

MiB = 1 << 20


# --------------------------------------------------------------------------- helpers


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def body_of(size: int) -> bytes:
    """Unique content, so that dedup against other tests never hides anything."""
    return (uuid.uuid4().bytes + os.urandom(size))[:size]


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def status_of(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


async def read_all(client: Any, bucket: str, key: str, **kw: Any) -> bytes:
    resp = await client.get_object(Bucket=bucket, Key=key, **kw)
    async with resp["Body"] as body:
        return bytes(await body.read())


def aio_client(
    server: Server,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    **config: Any,
) -> Any:
    """An async context manager yielding an aiobotocore S3 client (SigV4, path style)."""
    params: dict[str, Any] = {
        "s3": {"addressing_style": "path"},
        "retries": {"max_attempts": 1},
        "signature_version": "s3v4",
    }
    params.update(config)
    return get_session().create_client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=AioConfig(**params),
    )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def aio(server: Server) -> AsyncIterator[Any]:
    async with aio_client(server) as client:
        yield client


@pytest.fixture
async def abucket(aio: Any) -> str:
    name = f"aio-{uuid.uuid4().hex[:12]}"
    await aio.create_bucket(Bucket=name)
    return name


# --------------------------------------------------------------------------- objects


async def test_bucket_and_objects_default_checksums(aio: Any) -> None:
    name = f"aio-{uuid.uuid4().hex[:12]}"
    await aio.create_bucket(Bucket=name)
    await aio.head_bucket(Bucket=name)
    listed = await aio.list_buckets()
    assert name in [b["Name"] for b in listed["Buckets"]]

    sent: list[dict[str, str]] = []

    def hook(request: Any, **_: Any) -> None:
        sent.append(
            {
                k.lower(): v.decode() if isinstance(v, bytes) else str(v)
                for k, v in request.headers.items()
            }
        )

    aio.meta.events.register("before-send.s3.PutObject", hook)
    for key, size in (("small", 1234), ("empty", 0), ("big", 12 * MiB)):
        data = body_of(size)
        put = await aio.put_object(
            Bucket=name, Key=key, Body=data, ContentType="application/x-test", Metadata={"a": "1"}
        )
        # request_checksum_calculation=when_supported (the default): CRC32 is sent and stored
        # over plain HTTP, in a header, with the payload signed
        assert sent[-1]["x-amz-checksum-crc32"] == crc32(data)
        assert sent[-1]["x-amz-content-sha256"] == hashlib.sha256(data).hexdigest()
        assert put["ETag"] == etag(data)
        assert put["ChecksumCRC32"] == crc32(data)

        head = await aio.head_object(Bucket=name, Key=key, ChecksumMode="ENABLED")
        assert head["ContentLength"] == size
        assert head["ETag"] == etag(data)
        assert head["ContentType"] == "application/x-test"
        assert head["Metadata"] == {"a": "1"}
        assert head["ChecksumCRC32"] == crc32(data)

        # response_checksum_validation=when_supported: botocore asks for the checksum and
        # validates it while the body is read
        got = await aio.get_object(Bucket=name, Key=key)
        assert got["ChecksumCRC32"] == crc32(data)
        assert got["ContentLength"] == size
        assert got["ETag"] == etag(data)
        async with got["Body"] as body:
            assert await body.read() == data

    with pytest.raises(ClientError) as exc:
        await aio.get_object(Bucket=name, Key="missing")
    assert code_of(exc) == "NoSuchKey"
    assert status_of(exc) == 404
    with pytest.raises(ClientError) as exc:
        await aio.head_object(Bucket=name, Key="missing")
    assert status_of(exc) == 404


async def test_range_and_streamed_body(aio: Any, abucket: str) -> None:
    data = body_of(5 * MiB + 17)
    await aio.put_object(Bucket=abucket, Key="r", Body=data)

    got = await aio.get_object(Bucket=abucket, Key="r", Range="bytes=100-3000099")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes 100-3000099/{len(data)}"
    assert got["ContentLength"] == 3_000_000
    pieces: list[bytes] = []
    async with got["Body"] as body:
        while piece := await body.read(65536):
            assert len(piece) <= 65536
            pieces.append(piece)
    assert len(pieces) > 1
    assert b"".join(pieces) == data[100:3000100]

    got = await aio.get_object(Bucket=abucket, Key="r", Range=f"bytes=-{MiB}")
    assert got["ContentRange"] == f"bytes {len(data) - MiB}-{len(data) - 1}/{len(data)}"
    async with got["Body"] as body:
        chunks = [c async for c in body.iter_chunks(100_000)]
    assert b"".join(chunks) == data[-MiB:]

    # the whole object streamed in pieces, with the (full-object) checksum validated
    got = await aio.get_object(Bucket=abucket, Key="r")
    async with got["Body"] as body:
        whole = b"".join([c async for c in body.iter_chunks(1 << 18)])
    assert whole == data

    with pytest.raises(ClientError) as exc:
        await aio.get_object(Bucket=abucket, Key="r", Range=f"bytes={len(data)}-")
    assert code_of(exc) == "InvalidRange"
    assert status_of(exc) == 416


async def test_list_objects_v2_paginator(aio: Any, abucket: str) -> None:
    top = [f"top-{i:04d}" for i in range(1000)]
    nested = [f"dir-{i % 8}/k-{i:03d}" for i in range(200)]
    keys = top + nested
    limit = asyncio.Semaphore(32)

    async def put(key: str) -> None:
        async with limit:
            await aio.put_object(Bucket=abucket, Key=key, Body=key.encode())

    await asyncio.gather(*(put(k) for k in keys))

    paginator = aio.get_paginator("list_objects_v2")

    # flat: every key once, in order, across pages
    seen: list[str] = []
    pages = 0
    async for page in paginator.paginate(Bucket=abucket, PaginationConfig={"PageSize": 250}):
        pages += 1
        assert page["KeyCount"] == len(page.get("Contents", []))
        seen += [o["Key"] for o in page.get("Contents", [])]
    assert seen == sorted(keys)
    assert pages == 5

    # with a delimiter: 1000 keys and 8 common prefixes, in pages of 100 entries
    contents: list[str] = []
    prefixes: list[str] = []
    pages = 0
    async for page in paginator.paginate(
        Bucket=abucket, Delimiter="/", PaginationConfig={"PageSize": 100}
    ):
        pages += 1
        assert page["KeyCount"] == len(page.get("Contents", [])) + len(
            page.get("CommonPrefixes", [])
        )
        assert page["KeyCount"] <= 100
        contents += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    assert contents == top
    assert prefixes == [f"dir-{i}/" for i in range(8)]
    assert pages == 11

    # build_full_result and a prefix under the delimiter
    full = await paginator.paginate(
        Bucket=abucket, Prefix="dir-3/", Delimiter="/", PaginationConfig={"PageSize": 7}
    ).build_full_result()
    assert [o["Key"] for o in full["Contents"]] == sorted(k for k in nested if k[:6] == "dir-3/")
    assert "CommonPrefixes" not in full

    # search (JMESPath over the pages), as aiobotocore exposes it
    sizes = [
        s
        async for s in paginator.paginate(
            Bucket=abucket, Prefix="top-", PaginationConfig={"PageSize": 300}
        ).search("Contents[].Size")
    ]
    assert sizes == [len(k) for k in top]


# --------------------------------------------------------------------------- multipart


async def test_multipart_concurrent_parts(aio: Any, abucket: str) -> None:
    parts = [body_of(5 * MiB), body_of(5 * MiB + 3), body_of(1 * MiB + 1)]
    created = await aio.create_multipart_upload(
        Bucket=abucket, Key="mp", ContentType="application/x-mp", Metadata={"m": "v"}
    )
    upload_id = created["UploadId"]

    async def upload(number: int, data: bytes) -> dict[str, Any]:
        resp = await aio.upload_part(
            Bucket=abucket, Key="mp", UploadId=upload_id, PartNumber=number, Body=data
        )
        assert resp["ETag"] == etag(data)
        return {"PartNumber": number, "ETag": resp["ETag"]}

    done = await asyncio.gather(*(upload(n, d) for n, d in enumerate(parts, 1)))
    listed = await aio.list_parts(Bucket=abucket, Key="mp", UploadId=upload_id)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    assert [p["Size"] for p in listed["Parts"]] == [len(p) for p in parts]

    completed = await aio.complete_multipart_upload(
        Bucket=abucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": list(done)}
    )
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)
    assert completed["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-3"'

    whole = b"".join(parts)
    head = await aio.head_object(Bucket=abucket, Key="mp")
    assert head["ContentLength"] == len(whole)
    assert head["ETag"] == completed["ETag"]
    assert head["ContentType"] == "application/x-mp"
    assert head["Metadata"] == {"m": "v"}
    assert await read_all(aio, abucket, "mp") == whole
    # a range across the part boundary
    start = len(parts[0]) - 10
    got = await read_all(aio, abucket, "mp", Range=f"bytes={start}-{start + 19}")
    assert got == whole[start : start + 20]

    # an aborted upload is gone
    other = await aio.create_multipart_upload(Bucket=abucket, Key="gone")
    await aio.upload_part(
        Bucket=abucket, Key="gone", UploadId=other["UploadId"], PartNumber=1, Body=b"x"
    )
    await aio.abort_multipart_upload(Bucket=abucket, Key="gone", UploadId=other["UploadId"])
    with pytest.raises(ClientError) as exc:
        await aio.list_parts(Bucket=abucket, Key="gone", UploadId=other["UploadId"])
    assert code_of(exc) == "NoSuchUpload"
    uploads = await aio.list_multipart_uploads(Bucket=abucket)
    assert "Uploads" not in uploads


async def test_copy_object_and_upload_part_copy(aio: Any, abucket: str) -> None:
    source = body_of(11 * MiB + 5)
    await aio.put_object(Bucket=abucket, Key="src", Body=source, Metadata={"k": "v"})

    copied = await aio.copy_object(
        Bucket=abucket, Key="dst", CopySource={"Bucket": abucket, "Key": "src"}
    )
    assert copied["CopyObjectResult"]["ETag"] == etag(source)
    assert await read_all(aio, abucket, "dst") == source
    assert (await aio.head_object(Bucket=abucket, Key="dst"))["Metadata"] == {"k": "v"}

    await aio.copy_object(
        Bucket=abucket,
        Key="dst2",
        CopySource=f"{abucket}/src",
        MetadataDirective="REPLACE",
        Metadata={"new": "1"},
        ContentType="text/x-new",
    )
    head = await aio.head_object(Bucket=abucket, Key="dst2")
    assert head["Metadata"] == {"new": "1"}
    assert head["ContentType"] == "text/x-new"

    # a multipart object assembled from ranges of the source (out of order) and the whole of it
    upload_id = (await aio.create_multipart_upload(Bucket=abucket, Key="pc"))["UploadId"]
    cut = 5 * MiB

    async def copy_part(number: int, rng: str | None) -> dict[str, Any]:
        kw = {"CopySourceRange": rng} if rng else {}
        resp = await aio.upload_part_copy(
            Bucket=abucket,
            Key="pc",
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": abucket, "Key": "src"},
            **kw,
        )
        return {"PartNumber": number, "ETag": resp["CopyPartResult"]["ETag"]}

    done = await asyncio.gather(
        copy_part(1, f"bytes={cut}-{len(source) - 1}"),
        copy_part(2, f"bytes=0-{cut - 1}"),
        copy_part(3, None),
    )
    assert done[0]["ETag"] == etag(source[cut:])
    assert done[2]["ETag"] == etag(source)
    await aio.complete_multipart_upload(
        Bucket=abucket, Key="pc", UploadId=upload_id, MultipartUpload={"Parts": list(done)}
    )
    assert await read_all(aio, abucket, "pc") == source[cut:] + source[:cut] + source

    with pytest.raises(ClientError) as exc:
        await aio.copy_object(
            Bucket=abucket, Key="x", CopySource={"Bucket": abucket, "Key": "missing"}
        )
    assert code_of(exc) == "NoSuchKey"


# --------------------------------------------------------------------------- presigned URLs


FORM_LIKE = b"a=1&b=2+3&c=%20%2B%zz;d=&&==\r\n" + bytes(range(256)) + b"%00+&="


async def test_presigned_get_and_put(server: Server, aio: Any, abucket: str) -> None:
    # aiobotocore's generate_presigned_url is a coroutine
    put_url = await aio.generate_presigned_url(
        "put_object", Params={"Bucket": abucket, "Key": "form"}, ExpiresIn=300
    )
    assert "X-Amz-Signature=" in put_url
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        async with http.put(
            put_url,
            data=FORM_LIKE,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["ETag"] == etag(FORM_LIKE)

        got = await aio.get_object(Bucket=abucket, Key="form")
        assert got["ContentType"] == "application/x-www-form-urlencoded"
        assert got["ContentLength"] == len(FORM_LIKE)
        async with got["Body"] as body:
            assert await body.read() == FORM_LIKE

        get_url = await aio.generate_presigned_url(
            "get_object", Params={"Bucket": abucket, "Key": "form"}
        )
        async with http.get(get_url) as resp:
            assert resp.status == 200
            assert await resp.read() == FORM_LIKE
            assert resp.headers["ETag"] == etag(FORM_LIKE)
        async with http.get(get_url, headers={"Range": "bytes=0-3"}) as resp:
            assert resp.status == 206
            assert await resp.read() == FORM_LIKE[:4]

        # a signed Content-Type must match what is sent
        typed = await aio.generate_presigned_url(
            "put_object", Params={"Bucket": abucket, "Key": "typed", "ContentType": "text/plain"}
        )
        async with http.put(typed, data=b"x", headers={"Content-Type": "text/plain"}) as resp:
            assert resp.status == 200
        async with http.put(typed, data=b"y", headers={"Content-Type": "text/html"}) as resp:
            assert resp.status == 403
            assert "<Code>SignatureDoesNotMatch</Code>" in await resp.text()

        # a URL signed with the wrong secret, or tampered with, is refused
        async with aio_client(server, secret_key="wrong") as bad:
            wrong = await bad.generate_presigned_url(
                "get_object", Params={"Bucket": abucket, "Key": "form"}
            )
        async with http.get(wrong) as resp:
            assert resp.status == 403
            assert "<Code>SignatureDoesNotMatch</Code>" in await resp.text()
        async with http.delete(get_url) as resp:
            assert resp.status == 403
    assert await read_all(aio, abucket, "form") == FORM_LIKE


SPECIAL_KEYS = [
    "a b",
    "plus+sign",
    "pct%41x",
    "uni/ünï cødé 日本",
    "amp&eq=q?h#x",
    "tilde~!*'()",
    "semi;colon,comma",
    "tab\tkey",
    "lt<gt>\"quote'",
    "slash//double",
    "./dot/../x",
]


async def test_special_keys_and_presigned_urls(aio: Any, abucket: str) -> None:
    await asyncio.gather(
        *(aio.put_object(Bucket=abucket, Key=k, Body=k.encode()) for k in SPECIAL_KEYS)
    )
    await asyncio.gather(
        *(
            aio.copy_object(
                Bucket=abucket, Key=f"{k}.copy", CopySource={"Bucket": abucket, "Key": k}
            )
            for k in SPECIAL_KEYS
        )
    )
    # botocore asks for EncodingType=url and decodes the keys again
    listed = await aio.list_objects_v2(Bucket=abucket)
    want = SPECIAL_KEYS + [f"{k}.copy" for k in SPECIAL_KEYS]
    assert [o["Key"] for o in listed["Contents"]] == sorted(want, key=lambda k: k.encode())
    for k in SPECIAL_KEYS:
        assert await read_all(aio, abucket, f"{k}.copy") == k.encode()

    async with aiohttp.ClientSession() as http:
        for k in SPECIAL_KEYS:
            url = await aio.generate_presigned_url(
                "get_object", Params={"Bucket": abucket, "Key": k}
            )
            # encoded=True: aiohttp (yarl) must send the signed path as is ("./" and "../"
            # segments would otherwise be normalised away)
            async with http.get(yarl.URL(url, encoded=True)) as resp:
                assert resp.status == 200, (k, await resp.text())
                assert await resp.read() == k.encode()
            url = await aio.generate_presigned_url(
                "put_object", Params={"Bucket": abucket, "Key": f"{k}.put"}
            )
            async with http.put(yarl.URL(url, encoded=True), data=b"p") as resp:
                assert resp.status == 200, (k, await resp.text())
            assert await read_all(aio, abucket, f"{k}.put") == b"p"

    deleted = await aio.delete_objects(
        Bucket=abucket, Delete={"Objects": [{"Key": k} for k in want]}
    )
    assert sorted(d["Key"] for d in deleted["Deleted"]) == sorted(want)
    left = await aio.list_objects_v2(Bucket=abucket)
    assert sorted(o["Key"] for o in left["Contents"]) == sorted(f"{k}.put" for k in SPECIAL_KEYS)


# --------------------------------------------------------------------------- batch deletes


async def test_delete_objects_quiet_and_verbose(aio: Any, abucket: str) -> None:
    keys = [f"d/{i}" for i in range(30)]
    await asyncio.gather(*(aio.put_object(Bucket=abucket, Key=k, Body=k.encode()) for k in keys))

    verbose = await aio.delete_objects(
        Bucket=abucket,
        Delete={"Objects": [{"Key": k} for k in [*keys[:10], "never-existed"]], "Quiet": False},
    )
    assert sorted(d["Key"] for d in verbose["Deleted"]) == sorted([*keys[:10], "never-existed"])
    assert "Errors" not in verbose

    quiet = await aio.delete_objects(
        Bucket=abucket,
        Delete={"Objects": [{"Key": k} for k in keys[10:25]], "Quiet": True},
    )
    assert "Deleted" not in quiet
    assert "Errors" not in quiet

    listed = await aio.list_objects_v2(Bucket=abucket)
    assert [o["Key"] for o in listed["Contents"]] == sorted(keys[25:])

    with pytest.raises(ClientError) as exc:
        await aio.delete_objects(
            Bucket=f"missing-{uuid.uuid4().hex[:8]}", Delete={"Objects": [{"Key": "k"}]}
        )
    assert code_of(exc) == "NoSuchBucket"


# --------------------------------------------------------------------------- waiters


async def test_waiters_and_missing_bucket(aio: Any, abucket: str) -> None:
    fast = {"Delay": 1, "MaxAttempts": 2}
    await aio.get_waiter("bucket_exists").wait(Bucket=abucket, WaiterConfig=fast)
    await aio.get_waiter("object_not_exists").wait(Bucket=abucket, Key="w", WaiterConfig=fast)
    await aio.put_object(Bucket=abucket, Key="w", Body=b"w")
    await aio.get_waiter("object_exists").wait(Bucket=abucket, Key="w", WaiterConfig=fast)
    with pytest.raises(WaiterError):
        await aio.get_waiter("object_not_exists").wait(
            Bucket=abucket, Key="w", WaiterConfig={"Delay": 1, "MaxAttempts": 1}
        )

    missing = f"missing-{uuid.uuid4().hex[:8]}"
    await aio.get_waiter("bucket_not_exists").wait(Bucket=missing, WaiterConfig=fast)
    with pytest.raises(ClientError) as exc:
        await aio.head_bucket(Bucket=missing)
    assert status_of(exc) == 404
    with pytest.raises(ClientError) as exc:
        await aio.list_objects_v2(Bucket=missing)
    assert code_of(exc) == "NoSuchBucket"

    await aio.delete_object(Bucket=abucket, Key="w")
    await aio.delete_bucket(Bucket=abucket)
    await aio.get_waiter("bucket_not_exists").wait(Bucket=abucket, WaiterConfig=fast)


# --------------------------------------------------------------------------- auth failures


async def test_auth_failures(server: Server, aio: Any, abucket: str) -> None:
    await aio.put_object(Bucket=abucket, Key="k", Body=b"secret")

    async with aio_client(server, secret_key="not-the-secret") as bad:
        for call in (
            bad.get_object(Bucket=abucket, Key="k"),
            bad.put_object(Bucket=abucket, Key="k", Body=b"evil"),
            bad.list_objects_v2(Bucket=abucket),
            bad.list_buckets(),
        ):
            with pytest.raises(ClientError) as exc:
                await call
            assert code_of(exc) == "SignatureDoesNotMatch"
            assert status_of(exc) == 403
        with pytest.raises(ClientError) as exc:
            await bad.head_object(Bucket=abucket, Key="k")
        assert status_of(exc) == 403

    async with aio_client(server, access_key="AKIAUNKNOWNKEY000000") as unknown:
        for call in (
            unknown.get_object(Bucket=abucket, Key="k"),
            unknown.put_object(Bucket=abucket, Key="k", Body=b"evil"),
            unknown.create_bucket(Bucket=f"aio-{uuid.uuid4().hex[:12]}"),
        ):
            with pytest.raises(ClientError) as exc:
                await call
            assert code_of(exc) == "InvalidAccessKeyId"
            assert status_of(exc) == 403

    assert await read_all(aio, abucket, "k") == b"secret"


# --------------------------------------------------------------------------- concurrency


async def test_50_concurrent_requests_one_client(server: Server, abucket: str) -> None:
    async with aio_client(server, max_pool_connections=20) as client:
        bodies = {f"c/{i:02d}": body_of(1000 + i * 37) for i in range(50)}
        puts = await asyncio.gather(
            *(client.put_object(Bucket=abucket, Key=k, Body=v) for k, v in bodies.items())
        )
        assert [p["ETag"] for p in puts] == [etag(v) for v in bodies.values()]
        got = await asyncio.gather(*(read_all(client, abucket, k) for k in bodies))
        assert got == list(bodies.values())
        # reads and overwrites interleaved
        new = {k: body_of(500) for k in bodies}
        await asyncio.gather(
            *(client.put_object(Bucket=abucket, Key=k, Body=v) for k, v in new.items()),
            *(client.head_object(Bucket=abucket, Key=k) for k in bodies),
        )
        got = await asyncio.gather(*(read_all(client, abucket, k) for k in new))
        assert got == list(new.values())
        listed = await client.list_objects_v2(Bucket=abucket, Prefix="c/")
        assert listed["KeyCount"] == 50


# --------------------------------------------------------------------------- the store


def test_zz_fsck(server: Server) -> None:
    server.gc(0)
    assert server.fsck()["ok"]
