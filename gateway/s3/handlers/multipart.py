"""Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
ListMultipartUploads."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

from aiohttp import web

from dedup import multipart, refcount
from dedup.checksums import combine_crc, new_checksum
from dedup.index import Txn
from dedup.ingest import Ingest
from dedup.multipart import PartRecord, UploadRecord
from dedup.records import ObjectRecord
from dedup.store import Placement
from gateway.s3.context import MAX_XML_BODY, Handler, S3Request
from gateway.s3.errors import S3Error
from gateway.s3.handlers.acl import check_acl_headers
from gateway.s3.handlers.common import commit_or_release, owner, release_pins, xml_response
from gateway.s3.handlers.objects import MAX_OBJECT_SIZE, MAX_PUT_SIZE, copy_source, ingest_body
from gateway.s3.handlers.tagging import tags_from_header
from gateway.s3.objectmeta import (
    ChecksumRequest,
    check_read_conditions,
    check_write_conditions,
    checksum_request,
    decode_content_md5,
    parse_copy_range,
    quoted,
    stored_headers,
    verify_checksums,
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
    check_acl_headers(r.request.headers, is_object=True)
    headers, meta = stored_headers(r.request.headers)
    tags = tags_from_header(r.header("x-amz-tagging"))
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
    rec = UploadRecord(now, r.credentials.owner_id, headers, meta, algo, ctype, tags)
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
    await commit_or_release(
        r,
        result.token,
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
        ),
    )
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
    stored: dict[bytes, Placement] = {}
    edge: Ingest | None = None  # the partial chunks at an edge, chunked and stored anew

    async def finish_edge(edge: Ingest) -> None:
        res = await edge.finish()
        chunks.extend(res.chunks)
        stored.update(res.stored)

    try:
        async for data, whole in _pieces(r, src, start, end, pieces):
            await loop.run_in_executor(engine.hash_pool, _update, md5, digest, data)
            if whole is None:
                edge = edge or Ingest(engine, (), inline=False, token=token)
                await edge.write(data)
                continue
            if edge is not None:
                await finish_edge(edge)
                edge = None
            chunks.append(whole)
            inner.append(whole)
        if edge is not None:
            await finish_edge(edge)
            edge = None
        # the whole chunks inside the range: one more reference each, under the part's token
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
        if edge is not None:  # wait for its chunk writes before the pins go (see Ingest.abort)
            await asyncio.shield(edge.abort())
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


def build_object(
    upload: UploadRecord,
    parts: list[PartRecord],
    requested: list[tuple[int, str, dict[str, str]]],
    headers: Mapping[str, str],
    now_ms: int,
) -> ObjectRecord:
    """The record CompleteMultipartUpload writes, once the listed parts exist and their ETags
    match (dedup/multipart.py): checks the part checksums, the checksum type and the object
    size the request states, the 5 TiB limit, and the whole-object checksum it may carry."""
    algo, ctype = upload.checksum_algorithm, upload.checksum_type
    if algo:
        # S3: with checksums on the parts, the part numbers run 1..N without gaps
        if any(n != i for i, (n, _, _) in enumerate(requested, 1)):
            raise S3Error("InvalidPartOrder")
    for (number, _etag, sums), part in zip(requested, parts, strict=True):
        for a, value in sums.items():
            if a != algo or value != part.checksum:
                raise S3Error("InvalidPart", f"The checksum of part {number} does not match.")
        if ctype == "COMPOSITE" and algo not in sums:
            raise S3Error(
                "InvalidRequest",
                f"The upload was created using a {algo.lower()} checksum. The complete request"
                f" must include the checksum for each part. It was missing for part {number}"
                " in the request.",
            )
    wanted_type = (headers.get("x-amz-checksum-type") or "").strip().upper()
    if wanted_type and wanted_type != ctype:
        raise S3Error(
            "InvalidRequest",
            f"The upload was created using the {ctype or 'null'} checksum mode. The complete"
            f" request must use the same checksum mode.",
        )
    size = sum(p.size for p in parts)
    stated = headers.get("x-amz-mp-object-size")
    if stated is not None and (not stated.strip().isdigit() or int(stated) != size):
        raise S3Error(
            "InvalidRequest",
            f"The provided 'x-amz-mp-object-size' header value {stated} does not match what was"
            f" computed: {size}",
        )
    if size > MAX_OBJECT_SIZE:
        raise S3Error("EntityTooLarge", MaxSizeAllowed=str(MAX_OBJECT_SIZE))
    checksums = _combined_checksum(upload, parts)
    for a, raw in checksum_request(headers).given.items():
        # a COMPOSITE value is compared without its "-N"
        if checksums.get(a, "").split("-")[0] != base64.b64encode(raw).decode():
            raise S3Error(
                "BadDigest", f"The {a} you specified did not match the calculated checksum."
            )
    return ObjectRecord(
        size=size,
        etag=multipart.multipart_etag([p.md5 for p in parts]),
        mtime_ms=now_ms,
        headers=upload.headers,
        meta=upload.meta,
        checksums=checksums,
        checksum_type=ctype if checksums else "",
        chunks=[c for p in parts for c in p.chunks],
        part_sizes=[p.size for p in parts],
        tags=upload.tags,
    )


async def _complete_body(r: S3Request) -> bytes:
    """The request's XML. Not ``r.small_body()``, which verifies x-amz-checksum-* headers
    against the body: here they carry the checksum of the whole object being completed."""
    content_md5 = decode_content_md5(r.header("content-md5"))
    reader = r.payload()
    if reader.declared_length is not None and reader.declared_length > MAX_XML_BODY:
        raise S3Error("MaxMessageLengthExceeded")
    body = await reader.read_all(MAX_XML_BODY)
    if content_md5 is not None and hashlib.md5(body).digest() != content_md5:
        raise S3Error("BadDigest")
    trailer = checksum_request(r.request.headers).trailer
    if trailer is not None:  # an aws-chunked body's trailer is the XML's own checksum
        c = new_checksum(trailer)
        c.update(body)
        verify_checksums(
            ChecksumRequest([trailer], {}, trailer), reader.trailers, {trailer: c.digest()}
        )
    return body


async def complete_multipart_upload(r: S3Request) -> web.StreamResponse:
    bucket, key, uid = r.bucket, r.key, _upload_id(r)
    headers = r.request.headers
    checksum_request(headers)  # a malformed checksum header fails before the body is read
    requested = parse_complete_multipart(await _complete_body(r))
    now = r.engine.now_ms()

    def make(upload: UploadRecord, parts: list[PartRecord]) -> ObjectRecord:
        return build_object(upload, parts, requested, headers, now)

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
