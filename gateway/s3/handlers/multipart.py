"""Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
ListMultipartUploads."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from aiohttp import web

from dedup import multipart, refcount
from dedup.checksums import combine_crc, new_checksum
from dedup.index import Txn
from dedup.ingest import Ingest
from dedup.multipart import PartRecord, UploadRecord
from dedup.records import ObjectRecord
from gateway.s3.context import Handler, S3Request
from gateway.s3.errors import S3Error
from gateway.s3.handlers.common import owner, release_pins, xml_response
from gateway.s3.handlers.objects import MAX_PUT_SIZE, copy_source, ingest_body
from gateway.s3.objectmeta import (
    check_read_conditions,
    check_write_conditions,
    checksum_request,
    parse_copy_range,
    quoted,
    stored_headers,
)
from gateway.s3.router import Op
from gateway.s3.xml import Node, parse_complete_multipart, timestamp

CRCS = ("CRC32", "CRC32C", "CRC64NVME")


def _part_number(r: S3Request) -> int:
    raw = r.query.get("partNumber", "")
    if not raw.isdigit() or not 1 <= int(raw) <= multipart.MAX_PARTS:
        raise S3Error(
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive",
            ArgumentName="partNumber",
            ArgumentValue=raw,
        )
    return int(raw)


def _upload_id(r: S3Request) -> str:
    return r.query.get("uploadId", "")


async def _upload(r: S3Request) -> UploadRecord:
    bucket, key, uid = r.bucket, r.key, _upload_id(r)
    return await r.engine.read(lambda txn: multipart.get_upload(txn, bucket, key, uid))


# -- create / abort ------------------------------------------------------------------------


async def create_multipart_upload(r: S3Request) -> web.StreamResponse:
    bucket, key = r.bucket, r.key
    headers, meta = stored_headers(r.request.headers)
    algo = (r.header("x-amz-checksum-algorithm") or "").upper()
    ctype = (r.header("x-amz-checksum-type") or "").upper()
    if algo and algo not in ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"):
        raise S3Error("InvalidRequest", f"Checksum algorithm {algo} is not supported.")
    if ctype and ctype not in ("COMPOSITE", "FULL_OBJECT"):
        raise S3Error("InvalidRequest", f"Checksum type {ctype} is not supported.")
    if ctype and not algo:
        raise S3Error("InvalidRequest", "x-amz-checksum-type requires x-amz-checksum-algorithm.")
    if algo and not ctype:
        ctype = "FULL_OBJECT" if algo == "CRC64NVME" else "COMPOSITE"
    if ctype == "FULL_OBJECT" and algo not in CRCS:
        raise S3Error(
            "InvalidRequest", f"The FULL_OBJECT checksum type is not supported for {algo}."
        )
    if ctype == "COMPOSITE" and algo == "CRC64NVME":
        raise S3Error(
            "InvalidRequest", "The COMPOSITE checksum type is not supported for CRC64NVME."
        )
    now = r.engine.now_ms()
    uid = multipart.new_upload_id(now)
    rec = UploadRecord(now, r.credentials.owner_id, headers, meta, algo, ctype)
    await r.engine.index.write(lambda txn: multipart.create_upload(txn, bucket, key, uid, rec))
    out = {}
    if algo:
        out = {"x-amz-checksum-algorithm": algo, "x-amz-checksum-type": ctype}
    resp = xml_response(
        "InitiateMultipartUploadResult", {"Bucket": bucket, "Key": key, "UploadId": uid}
    )
    resp.headers.update(out)
    return resp


async def abort_multipart_upload(r: S3Request) -> web.StreamResponse:
    bucket, key, uid = r.bucket, r.key, _upload_id(r)
    await r.engine.index.write(
        lambda txn: multipart.abort_upload(txn, bucket, key, uid, r.engine.now_ms())
    )
    return web.Response(status=204)


# -- parts ---------------------------------------------------------------------------------


def _part_response(part: PartRecord, upload: UploadRecord) -> dict[str, str]:
    out = {"ETag": quoted(part.etag)}
    if upload.checksum_algorithm and part.checksum:
        out[f"x-amz-checksum-{upload.checksum_algorithm.lower()}"] = part.checksum
    return out


async def upload_part(r: S3Request) -> web.StreamResponse:
    if "x-amz-copy-source" in r.request.headers:
        return await upload_part_copy(r)
    bucket, key, uid, number = r.bucket, r.key, _upload_id(r), _part_number(r)
    upload = await _upload(r)
    checks = checksum_request(r.request.headers)
    algo = upload.checksum_algorithm
    if algo and algo not in checks.algorithms:
        checks.algorithms.append(algo)
    result, checksums = await ingest_body(r, checks, inline=False, max_size=MAX_PUT_SIZE)
    part = PartRecord(
        size=result.size,
        md5=result.md5,
        mtime_ms=r.engine.now_ms(),
        checksum=checksums.get(algo, "") if algo else "",
        chunks=result.chunks,
    )
    try:
        await r.engine.index.write(
            lambda txn: multipart.commit_part(
                txn,
                bucket,
                key,
                uid,
                number,
                part,
                result.token,
                result.stored,
                r.engine.now_ms(),
            )
        )
    except BaseException:
        await asyncio.shield(release_pins(r, result.token))
        raise
    out = {"ETag": quoted(part.etag)}
    for a, v in checksums.items():
        out[f"x-amz-checksum-{a.lower()}"] = v
    return web.Response(status=200, headers=out)


async def upload_part_copy(r: S3Request) -> web.StreamResponse:
    """Whole chunks inside the source range are referenced (pinned while the source record
    is read, in one transaction); only the partial chunks at the two edges are re-read and
    stored as new chunks. The part's ETag is the MD5 of the range, so the range's bytes are
    read from the store and hashed — never written again."""
    bucket, key, uid, number = r.bucket, r.key, _upload_id(r), _part_number(r)
    upload = await _upload(r)
    headers = r.request.headers
    src_bucket, src_key = copy_source(headers.get("x-amz-copy-source", ""))
    engine = r.engine
    token, guard = Ingest.new_token(), Ingest.new_token()

    def take(txn: Txn) -> tuple[ObjectRecord, int, int, list[Piece]]:
        src = multipart.source_object(txn, src_bucket, src_key)
        check_read_conditions(headers, src, prefix="x-amz-copy-source-")
        start, end = parse_copy_range(headers.get("x-amz-copy-source-range"), src.size)
        if end - start > MAX_PUT_SIZE:
            raise S3Error(
                "InvalidRequest",
                "The specified copy source is larger than the"
                " maximum allowable size for a copy source: 5368709120",
            )
        if src.inline is not None or start == end:
            return src, start, end, [(start, end, None)]
        first, last, offset = src.chunk_span(start, end)
        span = src.chunks[first:last]
        refcount.pin(txn, guard, span)  # GC cannot take them while we read and reference
        return src, start, end, _split(span, offset, start, end)

    src, start, end, pieces = await engine.index.write(take)
    algo = upload.checksum_algorithm
    md5 = hashlib.md5()
    digest = new_checksum(algo) if algo else None
    loop = asyncio.get_running_loop()
    chunks: list[tuple[bytes, int]] = []
    inner: list[tuple[bytes, int]] = []
    stored: list[bytes] = []
    try:
        edge: Ingest | None = None
        async for data, whole in _pieces(r, src, start, end, pieces):
            await loop.run_in_executor(engine.hash_pool, _update, md5, digest, data)
            if whole is None:
                edge = edge or Ingest(engine, (), inline=False, token=token)
                await edge.write(data)
                continue
            if edge is not None:
                res = await edge.finish()
                chunks += res.chunks
                stored += res.stored
                edge = None
            chunks.append(whole)
            inner.append(whole)
        if edge is not None:
            res = await edge.finish()
            chunks += res.chunks
            stored += res.stored
        await engine.index.write(lambda txn: refcount.pin(txn, token, inner))
        part = PartRecord(
            size=end - start,
            md5=md5.digest(),
            mtime_ms=engine.now_ms(),
            checksum=base64.b64encode(digest.digest()).decode() if digest else "",
            chunks=chunks,
        )
        await engine.index.write(
            lambda txn: multipart.commit_part(
                txn, bucket, key, uid, number, part, token, stored, engine.now_ms()
            )
        )
    except BaseException:
        await asyncio.shield(release_pins(r, token))
        raise
    finally:
        await asyncio.shield(release_pins(r, guard))
    body: dict[str, Node] = {"LastModified": timestamp(part.mtime_ms), "ETag": quoted(part.etag)}
    if algo and part.checksum:
        body["Checksum" + algo] = part.checksum
    return xml_response("CopyPartResult", body)


# (piece start, piece end, the source chunk when the piece is exactly one whole chunk)
Piece = tuple[int, int, tuple[bytes, int] | None]


def _update(md5: Any, digest: Any, data: bytes) -> None:
    md5.update(data)
    if digest is not None:
        digest.update(data)


def _split(span: list[tuple[bytes, int]], offset: int, start: int, end: int) -> list[Piece]:
    out: list[Piece] = []
    pos = offset
    for h, n in span:
        lo, hi = max(pos, start), min(pos + n, end)
        out.append((lo, hi, (h, n) if (lo, hi) == (pos, pos + n) else None))
        pos += n
    return out


async def _pieces(
    r: S3Request, src: ObjectRecord, start: int, end: int, pieces: list[Piece]
) -> AsyncIterator[tuple[bytes, tuple[bytes, int] | None]]:
    """The range's bytes cut at the pieces' bounds."""
    buf = bytearray()
    idx = 0
    async for data in r.engine.read_range(src, start, end):
        buf += data
        while idx < len(pieces) and len(buf) >= pieces[idx][1] - pieces[idx][0]:
            lo, hi, whole = pieces[idx]
            yield bytes(buf[: hi - lo]), whole
            del buf[: hi - lo]
            idx += 1


# -- complete ------------------------------------------------------------------------------


def _combined_checksum(upload: UploadRecord, parts: list[PartRecord]) -> dict[str, str]:
    algo = upload.checksum_algorithm
    if not algo or any(not p.checksum for p in parts):
        return {}
    raws = [base64.b64decode(p.checksum) for p in parts]
    if upload.checksum_type == "FULL_OBJECT":
        acc = raws[0]
        for raw, p in zip(raws[1:], parts[1:], strict=True):
            acc = combine_crc(algo, acc, raw, p.size)
        return {algo: base64.b64encode(acc).decode()}
    c = new_checksum(algo)
    c.update(b"".join(raws))
    return {algo: f"{base64.b64encode(c.digest()).decode()}-{len(parts)}"}


async def complete_multipart_upload(r: S3Request) -> web.StreamResponse:
    bucket, key, uid = r.bucket, r.key, _upload_id(r)
    headers = r.request.headers
    requested = parse_complete_multipart(await r.small_body())
    now = r.engine.now_ms()
    given = checksum_request(headers).given

    def make(upload: UploadRecord, parts: list[PartRecord]) -> ObjectRecord:
        for (number, _etag, sums), part in zip(requested, parts, strict=True):
            for algo, value in sums.items():
                if algo != upload.checksum_algorithm or value != part.checksum:
                    raise S3Error("InvalidPart", f"The checksum of part {number} does not match.")
        checksums = _combined_checksum(upload, parts)
        for algo, raw in given.items():
            mine = checksums.get(algo, "")
            if mine.split("-")[0] != base64.b64encode(raw).decode():
                raise S3Error(
                    "BadDigest", f"The {algo} you specified did not match the calculated checksum."
                )
        return ObjectRecord(
            size=sum(p.size for p in parts),
            etag=multipart.multipart_etag([p.md5 for p in parts]),
            mtime_ms=now,
            headers=upload.headers,
            meta=upload.meta,
            checksums=checksums,
            checksum_type=upload.checksum_type if checksums else "",
            chunks=[c for p in parts for c in p.chunks],
            part_sizes=[p.size for p in parts],
        )

    done = await r.engine.index.write(
        lambda txn: multipart.complete_upload(
            txn,
            bucket,
            key,
            uid,
            [(n, e) for n, e, _ in requested],
            make,
            lambda cur: check_write_conditions(headers, cur),
            now,
        )
    )
    rec = done.record
    body: dict[str, Node] = {
        "Location": f"{r.request.scheme}://{r.request.host}/{bucket}/{quote(key)}",
        "Bucket": bucket,
        "Key": key,
        "ETag": quoted(rec.etag),
    }
    for algo, value in rec.checksums.items():
        body["Checksum" + algo] = value
    if rec.checksums:
        body["ChecksumType"] = rec.checksum_type
    return xml_response("CompleteMultipartUploadResult", body)


# -- listings ------------------------------------------------------------------------------


def _max(r: S3Request, name: str) -> int:
    raw = r.query.get(name, "1000")
    if not raw.lstrip("-").isdigit() or int(raw) < 0:
        raise S3Error(
            "InvalidArgument",
            f"Argument {name} must be an integer between 0 and 2147483647",
            ArgumentName=name,
            ArgumentValue=raw,
        )
    return min(int(raw), 1000)


async def list_parts(r: S3Request) -> web.StreamResponse:
    bucket, key, uid = r.bucket, r.key, _upload_id(r)
    marker_raw = r.query.get("part-number-marker", "0") or "0"
    if not marker_raw.isdigit():
        raise S3Error(
            "InvalidArgument",
            "Invalid part-number-marker",
            ArgumentName="part-number-marker",
            ArgumentValue=marker_raw,
        )
    marker, max_parts = int(marker_raw), _max(r, "max-parts")

    def run(txn: Txn) -> tuple[UploadRecord, list[tuple[int, PartRecord]], bool]:
        upload = multipart.get_upload(txn, bucket, key, uid)
        parts: list[tuple[int, PartRecord]] = []
        for item in multipart.iter_parts(txn, uid, marker):
            if len(parts) >= max_parts:
                return upload, parts, True
            parts.append(item)
        return upload, parts, False

    upload, parts, truncated = await r.engine.read(run)
    algo = upload.checksum_algorithm
    body: dict[str, Node] = {
        "Bucket": bucket,
        "Key": key,
        "UploadId": uid,
        "Initiator": owner(r),
        "Owner": owner(r),
        "StorageClass": "STANDARD",
        "PartNumberMarker": marker,
        "NextPartNumberMarker": parts[-1][0] if parts else None,
        "MaxParts": max_parts,
        "IsTruncated": truncated,
        "ChecksumAlgorithm": algo or None,
        "ChecksumType": upload.checksum_type or None,
        "Part": [
            {
                "PartNumber": n,
                "LastModified": timestamp(p.mtime_ms),
                "ETag": quoted(p.etag),
                "Size": p.size,
                **({"Checksum" + algo: p.checksum} if algo and p.checksum else {}),
            }
            for n, p in parts
        ],
    }
    return xml_response("ListPartsResult", body)


async def list_multipart_uploads(r: S3Request) -> web.StreamResponse:
    bucket, q = r.bucket, r.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    key_marker, uid_marker = q.get("key-marker", ""), q.get("upload-id-marker", "")
    max_uploads = _max(r, "max-uploads")
    url = q.get("encoding-type") == "url"
    if "encoding-type" in q and not url:
        raise S3Error(
            "InvalidArgument",
            "Invalid Encoding Method specified in Request",
            ArgumentName="encoding-type",
            ArgumentValue=q["encoding-type"],
        )

    def enc(s: str) -> str:
        return quote(s, safe="/") if url else s

    def run(txn: Txn) -> multipart.UploadListing:
        if txn.bucket(bucket) is None:
            raise S3Error("NoSuchBucket", bucket_name=bucket)
        return multipart.list_uploads(
            txn, bucket, prefix, delimiter, key_marker, uid_marker, max_uploads
        )

    listing = await r.engine.read(run)
    body: dict[str, Node] = {
        "Bucket": bucket,
        "KeyMarker": enc(key_marker),
        "UploadIdMarker": uid_marker,
        "NextKeyMarker": enc(listing.next_key_marker) if listing.truncated else None,
        "NextUploadIdMarker": listing.next_upload_id_marker if listing.truncated else None,
        "Delimiter": enc(delimiter) if delimiter else None,
        "Prefix": enc(prefix),
        "MaxUploads": max_uploads,
        "IsTruncated": listing.truncated,
        "EncodingType": "url" if url else None,
        "Upload": [
            {
                "Key": enc(u.key),
                "UploadId": u.upload_id,
                "Initiator": owner(r),
                "Owner": owner(r),
                "StorageClass": "STANDARD",
                "Initiated": timestamp(u.initiated_ms),
            }
            for u in listing.uploads
        ],
        "CommonPrefixes": [{"Prefix": enc(p)} for p in listing.prefixes],
    }
    return xml_response("ListMultipartUploadsResult", body)


HANDLERS: dict[Op, Handler] = {
    Op.CreateMultipartUpload: create_multipart_upload,
    Op.UploadPart: upload_part,
    Op.UploadPartCopy: upload_part_copy,
    Op.CompleteMultipartUpload: complete_multipart_upload,
    Op.AbortMultipartUpload: abort_multipart_upload,
    Op.ListParts: list_parts,
    Op.ListMultipartUploads: list_multipart_uploads,
}
