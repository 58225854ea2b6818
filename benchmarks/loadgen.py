"""A small asynchronous S3 load generator that should not be the bottleneck.

* one aiohttp ``ClientSession`` with a pool of keep-alive connections;
* AWS Signature Version 4 header signing (service ``s3``, path-style addressing) with
  ``x-amz-content-sha256: UNSIGNED-PAYLOAD``, so no body is ever hashed by the client;
* request bodies streamed from async iterators of byte blocks (a 5 GiB body is never in
  memory), from a fast deterministic generator (:func:`content`) whose bytes do not
  deduplicate unless asked to (same seed and offset: same bytes);
* response bodies streamed and discarded, only counted.

It speaks plain S3 (nothing s3dedup-specific except :meth:`S3LoadClient.admin_gc`), so the
same run can be pointed at another S3 server::

    python benchmarks/loadgen.py --endpoint http://127.0.0.1:9000 --size-mib 256 \\
        --objects 32 --concurrency 32        # credentials: AWS_ACCESS_KEY_ID / ..._SECRET_...

prints the PUT and GET rates (MB/s: 10^6 bytes per second of wall time) as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import re
import struct
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

MiB = 1024 * 1024
UNSIGNED = "UNSIGNED-PAYLOAD"
BLOCK = MiB  # size of the blocks request bodies are sent in

BodyFactory = Callable[[int, int, int], AsyncIterable[bytes]]
"""``(part_number, offset, size) -> body`` for :meth:`S3LoadClient.multipart_upload`."""


# -- content ----------------------------------------------------------------------------------

POOL_SIZE = 64 * MiB
SEGMENT = 16 * 1024  # every segment starts with a 16-byte marker: (seed, segment number)
_MARK = 16
_STRIDE = SEGMENT - _MARK + 4099  # pool offset step between segments (not a divisor)
_pool: bytes | None = None


def _get_pool() -> memoryview:
    global _pool
    if _pool is None:
        _pool = random.Random(0x5EED).randbytes(POOL_SIZE)
    return memoryview(_pool)


def content_segment(seed: int, n: int) -> bytes:
    """Segment ``n`` (bytes ``[n * SEGMENT, (n + 1) * SEGMENT)``) of the stream ``seed``."""
    pool = _get_pool()
    off = (n * _STRIDE) % (POOL_SIZE - SEGMENT)
    return struct.pack("<QQ", seed & 0xFFFF_FFFF_FFFF_FFFF, n) + pool[off : off + SEGMENT - _MARK]


async def content(
    size: int, seed: int = 0, offset: int = 0, block: int = BLOCK
) -> AsyncIterator[bytes]:
    """Bytes ``[offset, offset + size)`` of the deterministic stream ``seed``, in blocks of
    ``block`` bytes (the last one shorter).

    Random-looking bytes (a 64 MiB random pool read at a rotating offset), with a 16-byte
    marker (seed, position) every 16 KiB: no content-defined chunk (they are at least a few
    tens of KiB) of one stream equals another chunk of this or another stream, so nothing
    deduplicates — except the same bytes of the same stream, uploaded again. About 7 GB/s.
    """
    end = offset + size
    pos = offset
    blocks = 0
    while pos < end:
        want = min(block, end - pos)
        first = pos // SEGMENT
        last = (pos + want - 1) // SEGMENT
        parts = [content_segment(seed, n) for n in range(first, last + 1)]
        data = b"".join(parts)
        lo = pos - first * SEGMENT
        yield data[lo : lo + want] if (lo, want) != (0, len(data)) else data
        pos += want
        blocks += 1
        if blocks % 16 == 0:
            await asyncio.sleep(0)  # let other tasks run should the socket never block


def content_bytes(size: int, seed: int = 0, offset: int = 0) -> bytes:
    """:func:`content` as one bytes object (for small bodies and checks)."""
    first, last = offset // SEGMENT, (offset + size - 1) // SEGMENT
    data = b"".join(content_segment(seed, n) for n in range(first, last + 1))
    lo = offset - first * SEGMENT
    return data[lo : lo + size] if size > 0 else b""


def seed_of(name: str) -> int:
    """A stream seed derived from a name (an object key, say)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


# -- signing ----------------------------------------------------------------------------------


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class SigV4:
    """AWS Signature Version 4 in the Authorization header, payload not signed."""

    def __init__(self, access_key: str, secret_key: str, region: str, service: str = "s3"):
        self.access_key, self.secret_key = access_key, secret_key
        self.region, self.service = region, service
        self._keys: dict[str, bytes] = {}

    def _key(self, day: str) -> bytes:
        key = self._keys.get(day)
        if key is None:
            k = _hmac(("AWS4" + self.secret_key).encode(), day)
            key = _hmac(_hmac(_hmac(k, self.region), self.service), "aws4_request")
            self._keys = {day: key}
        return key

    def headers(
        self, method: str, host: str, path: str, query: str, now: datetime | None = None
    ) -> dict[str, str]:
        """Headers to add to a request; ``path`` and ``query`` are already canonical (URI-
        encoded once; query pairs sorted, see :func:`canonical_query`)."""
        amz_date = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        signed = {"host": host, "x-amz-content-sha256": UNSIGNED, "x-amz-date": amz_date}
        names = ";".join(sorted(signed))
        canonical = "\n".join(
            [
                method,
                path,
                query,
                "".join(f"{k}:{signed[k]}\n" for k in sorted(signed)),
                names,
                UNSIGNED,
            ]
        )
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        signature = hmac.new(self._key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        return {
            "Host": host,
            "x-amz-content-sha256": UNSIGNED,
            "x-amz-date": amz_date,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope},"
            f" SignedHeaders={names}, Signature={signature}",
        }


def _enc(s: str, safe: str = "-_.~") -> str:
    return quote(s, safe=safe)


def canonical_path(bucket: str, key: str = "") -> str:
    path = "/" + bucket if bucket else "/"
    if key:
        path += "/" + key
    return _enc(path, safe="-_.~/")


def canonical_query(params: Mapping[str, str] | None) -> str:
    if not params:
        return ""
    return "&".join(f"{k}={v}" for k, v in sorted((_enc(k), _enc(v)) for k, v in params.items()))


# -- the client -------------------------------------------------------------------------------


class S3LoadError(Exception):
    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        code = re.search(rb"<Code>([^<]*)</Code>", body)
        self.status = status
        self.code = code.group(1).decode() if code else ""
        super().__init__(f"{method} {path}: HTTP {status} {self.code} {body[:300]!r}")


class S3LoadClient:
    """An S3 client for load generation (path-style, SigV4, UNSIGNED-PAYLOAD)."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        connections: int = 64,
        read_size: int = 4 * MiB,
    ) -> None:
        parts = urlsplit(endpoint)
        self.endpoint = f"{parts.scheme}://{parts.netloc}"
        default_port = {"http": 80, "https": 443}[parts.scheme]
        self.host = parts.netloc if parts.port not in (None, default_port) else parts.hostname
        self.signer = SigV4(access_key, secret_key, region)
        self.read_size = read_size
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        # created lazily: a ClientSession must be made inside the running event loop
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._connections, limit_per_host=0, keepalive_timeout=30, ttl_dns_cache=None
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                read_bufsize=self.read_size,
                timeout=aiohttp.ClientTimeout(total=None, connect=30, sock_read=600),
                skip_auto_headers=("Content-Type",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> S3LoadClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _prepare(
        self, method: str, bucket: str, key: str, params: Mapping[str, str] | None
    ) -> tuple[URL, dict[str, str]]:
        path, query = canonical_path(bucket, key), canonical_query(params)
        url = URL(self.endpoint + path + ("?" + query if query else ""), encoded=True)
        return url, self.signer.headers(method, self.host or "", path, query)

    def request(
        self,
        method: str,
        bucket: str = "",
        key: str = "",
        params: Mapping[str, str] | None = None,
        *,
        body: bytes | AsyncIterable[bytes] | None = None,
        size: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """A signed request (an aiohttp request context manager: ``async with``)."""
        url, signed = self._prepare(method, bucket, key, params)
        if headers:
            signed.update(headers)
        if body is not None and not isinstance(body, bytes):
            if size is None:
                raise ValueError("a streamed body needs its size")
            signed["Content-Length"] = str(size)
        elif method in ("PUT", "POST"):
            signed["Content-Length"] = str(len(body or b""))
        return self.session.request(method, url, data=body, headers=signed)

    async def call(
        self,
        method: str,
        bucket: str = "",
        key: str = "",
        params: Mapping[str, str] | None = None,
        *,
        body: bytes | AsyncIterable[bytes] | None = None,
        size: int | None = None,
        ok: tuple[int, ...] = (200, 204),
    ) -> tuple[int, Mapping[str, str], bytes]:
        """A request whose (small) response is read whole; raises S3LoadError unless its
        status is in ``ok``."""
        async with self.request(method, bucket, key, params, body=body, size=size) as resp:
            data = await resp.read()
            if resp.status not in ok:
                raise S3LoadError(method, f"/{bucket}/{key}", resp.status, data)
            return resp.status, resp.headers, data

    # -- operations ---------------------------------------------------------------------------

    async def create_bucket(self, bucket: str, *, exist_ok: bool = True) -> None:
        try:
            await self.call("PUT", bucket)
        except S3LoadError as exc:
            if not (exist_ok and exc.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")):
                raise

    async def delete_bucket(self, bucket: str) -> None:
        await self.call("DELETE", bucket)

    async def put(
        self, bucket: str, key: str, body: bytes | AsyncIterable[bytes], size: int | None = None
    ) -> str:
        """PutObject; returns the ETag (without quotes)."""
        _, headers, _ = await self.call("PUT", bucket, key, body=body, size=size)
        return headers.get("ETag", "").strip('"')

    async def get(
        self,
        bucket: str,
        key: str,
        *,
        rate: float | None = None,
        max_bytes: int | None = None,
        max_seconds: float | None = None,
        piece: int = 64 * 1024,
    ) -> int:
        """GetObject, the body read and discarded; returns the number of body bytes.

        ``rate`` (bytes/s) paces the reading; after ``max_bytes`` bytes or ``max_seconds``
        seconds the client stops reading and drops the connection (a client going away in
        the middle of a download)."""
        async with self.request("GET", bucket, key) as resp:
            if resp.status != 200:
                raise S3LoadError("GET", f"/{bucket}/{key}", resp.status, await resp.read())
            n = 0
            started = time.monotonic()
            limited = rate is not None or max_bytes is not None or max_seconds is not None
            while True:
                if limited:
                    data = await resp.content.read(piece)
                else:
                    data = await resp.content.readany()
                if not data:
                    break
                n += len(data)
                if limited:
                    elapsed = time.monotonic() - started
                    if (max_bytes is not None and n >= max_bytes) or (
                        max_seconds is not None and elapsed >= max_seconds
                    ):
                        resp.close()  # drop the connection, the rest unread
                        break
                    if rate is not None and n / rate > elapsed:
                        await asyncio.sleep(n / rate - elapsed)
            return n

    async def head(self, bucket: str, key: str) -> dict[str, str]:
        _, headers, _ = await self.call("HEAD", bucket, key)
        return dict(headers)

    async def delete(self, bucket: str, key: str) -> None:
        await self.call("DELETE", bucket, key)

    async def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        keys: list[str] = []
        token = ""
        while True:
            params = {"list-type": "2", "prefix": prefix}
            if token:
                params["continuation-token"] = token
            _, _, data = await self.call("GET", bucket, params=params)
            keys += [_unescape(k) for k in re.findall(r"<Key>([^<]*)</Key>", data.decode())]
            more = re.search(r"<NextContinuationToken>([^<]*)<", data.decode())
            if more is None:
                return keys
            token = _unescape(more.group(1))

    async def multipart_upload(
        self,
        bucket: str,
        key: str,
        size: int,
        part_size: int,
        concurrency: int,
        body_factory: BodyFactory | None = None,
    ) -> str:
        """CreateMultipartUpload, the parts uploaded ``concurrency`` at a time, then
        CompleteMultipartUpload (AbortMultipartUpload on failure). ``body_factory(number,
        offset, size)`` makes each part's body (default: :func:`content` of the stream
        ``seed_of(key)``). Returns the object's ETag."""
        if body_factory is None:
            seed = seed_of(key)

            def body_factory(number: int, offset: int, n: int) -> AsyncIterable[bytes]:
                return content(n, seed, offset)

        _, _, data = await self.call("POST", bucket, key, {"uploads": ""})
        found = re.search(rb"<UploadId>([^<]+)</UploadId>", data)
        if found is None:
            raise S3LoadError("POST", f"/{bucket}/{key}?uploads", 200, data)
        upload_id = _unescape(found.group(1).decode())
        count = max(1, -(-size // part_size))
        etags: dict[int, str] = {}
        next_part = iter(range(1, count + 1))

        async def worker() -> None:
            for number in next_part:
                offset = (number - 1) * part_size
                n = min(part_size, size - offset)
                body = body_factory(number, offset, n)
                params = {"partNumber": str(number), "uploadId": upload_id}
                _, headers, _ = await self.call("PUT", bucket, key, params, body=body, size=n)
                etags[number] = headers["ETag"]

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(min(concurrency, count)):
                    tg.create_task(worker())
            xml = "".join(
                f"<Part><PartNumber>{n}</PartNumber><ETag>{etags[n]}</ETag></Part>"
                for n in sorted(etags)
            )
            body = f"<CompleteMultipartUpload>{xml}</CompleteMultipartUpload>".encode()
            _, _, data = await self.call("POST", bucket, key, {"uploadId": upload_id}, body=body)
        except BaseException:
            try:
                await asyncio.shield(
                    self.call("DELETE", bucket, key, {"uploadId": upload_id}, ok=(204, 404))
                )
            except (aiohttp.ClientError, S3LoadError, OSError):
                pass
            raise
        if b"<Error>" in data:  # S3 may answer 200 and report the failure in the body
            raise S3LoadError("POST", f"/{bucket}/{key}?uploadId", 200, data)
        etag = re.search(rb"<ETag>([^<]*)</ETag>", data)
        return _unescape(etag.group(1).decode()).strip('"') if etag else ""

    async def admin_gc(self, grace: float = 0) -> dict[str, Any]:
        """s3dedup only: ``POST /_s3dedup/admin/gc?grace=...`` (signed like any request)."""
        _, _, data = await self.call("POST", "_s3dedup", "admin/gc", {"grace": str(grace)})
        result: dict[str, Any] = json.loads(data or b"{}")
        return result


def _unescape(s: str) -> str:
    return (
        s.replace("&quot;", '"')
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
    )


# -- command line -----------------------------------------------------------------------------


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    ak = args.access_key or os.environ.get("AWS_ACCESS_KEY_ID", "")
    sk = args.secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    size = int(args.size_mib * MiB)
    keys = [f"loadgen/{args.run}/{i:05d}" for i in range(args.objects)]
    sem = asyncio.Semaphore(args.concurrency)
    async with S3LoadClient(
        args.endpoint, ak, sk, args.region, connections=args.concurrency
    ) as client:
        await client.create_bucket(args.bucket)

        async def put(key: str) -> None:
            async with sem:
                if args.part_mib:
                    await client.multipart_upload(
                        args.bucket, key, size, int(args.part_mib * MiB), args.part_concurrency
                    )
                else:
                    await client.put(args.bucket, key, content(size, seed_of(key)), size)

        async def get(key: str) -> int:
            async with sem:
                return await client.get(args.bucket, key)

        t0 = time.perf_counter()
        await asyncio.gather(*(put(k) for k in keys))
        t1 = time.perf_counter()
        got = sum(await asyncio.gather(*(get(k) for k in keys)))
        t2 = time.perf_counter()
        if got != size * len(keys):
            raise SystemExit(f"GET returned {got} bytes, expected {size * len(keys)}")
        if not args.keep:
            await asyncio.gather(*(client.delete(args.bucket, k) for k in keys))
    total = size * len(keys)
    return {
        "objects": len(keys),
        "object_bytes": size,
        "put_seconds": round(t1 - t0, 3),
        "put_mb_s": round(total / (t1 - t0) / 1e6, 1),
        "get_seconds": round(t2 - t1, 3),
        "get_mb_s": round(total / (t2 - t1) / 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="PUT then GET objects against an S3 endpoint.")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--access-key", help="default: $AWS_ACCESS_KEY_ID")
    p.add_argument("--secret-key", help="default: $AWS_SECRET_ACCESS_KEY")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--bucket", default="loadgen")
    p.add_argument("--objects", type=int, default=8)
    p.add_argument("--size-mib", type=float, default=64)
    p.add_argument("--concurrency", type=int, default=8, help="objects in flight")
    p.add_argument("--part-mib", type=float, default=0, help="multipart with parts this big")
    p.add_argument("--part-concurrency", type=int, default=4)
    p.add_argument("--run", default=time.strftime("%Y%m%d-%H%M%S"), help="key prefix")
    p.add_argument("--keep", action="store_true", help="do not delete the objects")
    args = p.parse_args(argv)
    print(json.dumps(asyncio.run(_run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
