"""Multipart uploads: upload and part records, and the transactions that move references
between pins, parts and the completed object (the refcount rules of dedup/refcount.py).

Layout (docs/design.md): ``uploads`` maps bucket ``\\0`` key ``\\0`` upload id (16 bytes) to
an UploadRecord; ``parts`` maps upload id (16 bytes) + part number (u32 big-endian, so parts
sort by number) to a PartRecord; ``mpdone`` keeps, for a day, what a completed upload
produced so that a repeated CompleteMultipartUpload answers the same (S3 is idempotent
there). Upload ids start with the creation time in ms (big-endian), so the uploads of one
key list in initiation order.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import pairwise

from dedup import catalog, refcount
from dedup.index import (
    KEY_INLINE_MAX,
    NoSuchBucketError,
    NoSuchKeyError,
    Txn,
    object_key,
    split_value,
    with_full_key,
)
from dedup.records import ObjectRecord, _Reader, _Writer
from dedup.store import Placement

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000
COMPLETED_TTL_MS = 24 * 3600 * 1000


class NoSuchUploadError(Exception):
    pass


class InvalidPartError(Exception):
    """A part listed in CompleteMultipartUpload was not uploaded, or its ETag differs."""


class InvalidPartOrderError(Exception):
    pass


class EntityTooSmallError(Exception):
    pass


def new_upload_id(now_ms: int) -> str:
    return (struct.pack(">Q", now_ms) + os.urandom(8)).hex()


def _uid(upload_id: str) -> bytes:
    try:
        raw = bytes.fromhex(upload_id)
    except ValueError:
        raise NoSuchUploadError(upload_id) from None
    if len(raw) != 16:
        raise NoSuchUploadError(upload_id)
    return raw


def upload_key(bucket: str, key: str, upload_id: str) -> bytes:
    """The object's index key (long keys encoded as in dedup.index) + NUL + upload id."""
    return object_key(bucket, key) + b"\0" + _uid(upload_id)


def _parse_upload(k: bytes, v: bytes) -> tuple[str, str, str, bytes]:
    """(bucket, key, upload id, record bytes) of an ``uploads`` entry."""
    okey, uid = k[:-17], k[-16:].hex()
    bucket, _, tail = okey.partition(b"\0")
    full, record = split_value(okey, v)
    return bucket.decode(), (full if full is not None else tail).decode(), uid, record


def part_key(upload_id: str, number: int) -> bytes:
    return _uid(upload_id) + struct.pack(">I", number)


@dataclass
class UploadRecord:
    initiated_ms: int
    owner: str
    headers: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    checksum_algorithm: str = ""  # "" or CRC32, CRC32C, CRC64NVME, SHA1, SHA256
    checksum_type: str = ""  # "", COMPOSITE or FULL_OBJECT
    tags: dict[str, str] = field(default_factory=dict)  # the object's tags (x-amz-tagging)

    def encode(self) -> bytes:
        w = _Writer()
        w.u8(2 if self.tags else 1)  # version 2 = version 1 + the tag set at the end
        w.u64(self.initiated_ms)
        w.text(self.owner)
        for d in (self.headers, self.meta):
            w.strings(d)
        w.text(self.checksum_algorithm)
        w.text(self.checksum_type)
        if self.tags:
            w.strings(self.tags)
        return w.getvalue()

    @classmethod
    def decode(cls, raw: bytes) -> UploadRecord:
        r = _Reader(raw)
        version = r.u8()
        if version not in (1, 2):
            raise ValueError(f"unknown upload record version {version}")
        initiated, owner = r.u64(), r.text()
        headers, meta = r.strings(), r.strings()
        algo, ctype = r.text(), r.text()
        tags = r.strings() if version == 2 else {}
        return cls(initiated, owner, headers, meta, algo, ctype, tags)


@dataclass
class PartRecord:
    size: int
    md5: bytes
    mtime_ms: int
    checksum: str = ""  # base64 in the upload's algorithm, "" if none
    chunks: list[tuple[bytes, int]] = field(default_factory=list)

    @property
    def etag(self) -> str:
        return self.md5.hex()

    def encode(self) -> bytes:
        w = _Writer()
        w.u8(1)
        w.u64(self.size)
        w.blob(self.md5)
        w.u64(self.mtime_ms)
        w.text(self.checksum)
        w.u32(len(self.chunks))
        w.parts.extend(h + struct.pack("<I", n) for h, n in self.chunks)
        return w.getvalue()

    @classmethod
    def decode(cls, raw: bytes) -> PartRecord:
        r = _Reader(raw)
        r.u8()
        size, md5, mtime, checksum = r.u64(), r.blob(), r.u64(), r.text()
        n = r.u32()
        chunks = []
        for _ in range(n):
            h = bytes(r.raw[r.pos : r.pos + 32])
            (sz,) = struct.unpack_from("<I", r.raw, r.pos + 32)
            chunks.append((h, sz))
            r.pos += 36
        return cls(size, md5, mtime, checksum, chunks)


# -- transactions --------------------------------------------------------------------------


def create_upload(txn: Txn, bucket: str, key: str, upload_id: str, rec: UploadRecord) -> None:
    if txn.bucket(bucket) is None:
        raise NoSuchBucketError(bucket)
    txn.put("uploads", upload_key(bucket, key, upload_id), with_full_key(key, rec.encode()))


def get_upload(txn: Txn, bucket: str, key: str, upload_id: str) -> UploadRecord:
    if txn.bucket(bucket) is None:
        raise NoSuchBucketError(bucket)
    ukey = upload_key(bucket, key, upload_id)
    raw = txn.get("uploads", ukey)
    if raw is None:
        raise NoSuchUploadError(upload_id)
    return UploadRecord.decode(_parse_upload(ukey, raw)[3])


def iter_parts(txn: Txn, upload_id: str, after: int = 0) -> Iterator[tuple[int, PartRecord]]:
    uid = _uid(upload_id)
    for k, v in txn.prefix("parts", uid, part_key(upload_id, after + 1)):
        yield struct.unpack(">I", k[16:])[0], PartRecord.decode(v)


def commit_part(
    txn: Txn,
    bucket: str,
    key: str,
    upload_id: str,
    number: int,
    part: PartRecord,
    token: bytes,
    stored: Mapping[bytes, Placement],
    now_ms: int,
) -> None:
    """The part takes over the request's pins; a part uploaded before under the same number
    gives its references back."""
    get_upload(txn, bucket, key, upload_id)
    refcount.mark_stored(txn, stored)
    refcount.unpin(txn, token, [h for h, _ in part.chunks])
    pk = part_key(upload_id, number)
    old = txn.get("parts", pk)
    if old is not None:
        refcount.drop(txn, [h for h, _ in PartRecord.decode(old).chunks], now_ms)
    txn.put("parts", pk, part.encode())


def _remove_upload(
    txn: Txn, bucket: str, key: str, upload_id: str, keep: set[int], now_ms: int
) -> dict[int, PartRecord]:
    """Delete the upload and its parts; parts not in ``keep`` give their references back.
    Returns the kept parts."""
    kept: dict[int, PartRecord] = {}
    for number, part in list(iter_parts(txn, upload_id)):
        if number in keep:
            kept[number] = part
        else:
            refcount.drop(txn, [h for h, _ in part.chunks], now_ms)
        txn.delete("parts", part_key(upload_id, number))
    txn.delete("uploads", upload_key(bucket, key, upload_id))
    return kept


def abort_upload(txn: Txn, bucket: str, key: str, upload_id: str, now_ms: int) -> None:
    get_upload(txn, bucket, key, upload_id)
    _remove_upload(txn, bucket, key, upload_id, set(), now_ms)


def multipart_etag(md5s: list[bytes]) -> str:
    return f"{hashlib.md5(b''.join(md5s)).hexdigest()}-{len(md5s)}"


@dataclass
class Completed:
    record: ObjectRecord
    parts: list[PartRecord]
    repeated: bool = False  # a repeated CompleteMultipartUpload of an upload already done


def complete_upload(
    txn: Txn,
    bucket: str,
    key: str,
    upload_id: str,
    requested: list[tuple[int, str]],
    make: Callable[[UploadRecord, list[PartRecord]], ObjectRecord],
    check: catalog.Precondition | None,
    now_ms: int,
) -> Completed:
    """One transaction: validate the part list, write the object whose chunk list is the
    concatenation of the listed parts' chunk lists (their references move to it), give back
    the references of parts left out and of the object replaced, delete the upload."""
    if txn.bucket(bucket) is None:
        raise NoSuchBucketError(bucket)
    ukey = upload_key(bucket, key, upload_id)
    raw = txn.get("uploads", ukey)
    if raw is None:
        done = txn.get("mpdone", ukey)
        if done is not None:
            etag = done[8:].decode()
            rec = catalog.get_object(txn, bucket, key)
            if rec is not None and rec.etag == etag:
                return Completed(rec, [], repeated=True)
        raise NoSuchUploadError(upload_id)
    upload = UploadRecord.decode(_parse_upload(ukey, raw)[3])
    if not requested:
        raise InvalidPartError("You must specify at least one part")
    numbers = [n for n, _ in requested]
    if any(b <= a for a, b in pairwise(numbers)):
        raise InvalidPartOrderError(upload_id)
    parts: list[PartRecord] = []
    for number, etag in requested:
        raw_part = (
            txn.get("parts", part_key(upload_id, number)) if 1 <= number <= MAX_PARTS else None
        )
        if raw_part is None:
            raise InvalidPartError(f"part {number} was not uploaded")
        part = PartRecord.decode(raw_part)
        if etag.strip().strip('"').lower() != part.etag:
            raise InvalidPartError(f"part {number}: ETag {etag} does not match")
        parts.append(part)
    for part in parts[:-1]:
        if part.size < MIN_PART_SIZE:
            raise EntityTooSmallError(upload_id)
    rec = make(upload, parts)
    # validation done: from here on nothing raises but a precondition (checked first)
    current = catalog.get_object(txn, bucket, key)
    if check is not None:
        check(current)
    _remove_upload(txn, bucket, key, upload_id, set(numbers), now_ms)
    catalog.replace_object(txn, bucket, key, rec, now_ms)
    txn.put("mpdone", ukey, struct.pack("<Q", now_ms) + rec.etag.encode())
    return Completed(rec, parts)


@dataclass
class UploadEntry:
    key: str
    upload_id: str
    initiated_ms: int


@dataclass
class UploadListing:
    uploads: list[UploadEntry] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    next_key_marker: str = ""
    next_upload_id_marker: str = ""


def list_uploads(
    txn: Txn,
    bucket: str,
    prefix: str,
    delimiter: str,
    key_marker: str,
    upload_id_marker: str,
    max_uploads: int,
) -> UploadListing:
    """Uploads in key order, then initiation order (keys longer than
    dedup.index.KEY_INLINE_MAX that share their first KEY_INLINE_MAX bytes list in hash
    order among themselves)."""
    out = UploadListing()
    base = bucket.encode() + b"\0"
    for k, v in txn.prefix("uploads", base + prefix.encode()[:KEY_INLINE_MAX]):
        _, key, uid, record = _parse_upload(k, v)
        if not key.startswith(prefix):
            continue
        if key_marker:
            if key < key_marker:
                continue
            if key == key_marker and (not upload_id_marker or uid <= upload_id_marker):
                continue
        if delimiter:
            pos = key.find(delimiter, len(prefix))
            if pos >= 0:
                cp = key[: pos + len(delimiter)]
                # already returned on this page, or on an earlier one (key_marker is then
                # the common prefix itself, and its keys sort after it)
                if (out.prefixes and out.prefixes[-1] == cp) or cp <= key_marker:
                    continue
                if len(out.uploads) + len(out.prefixes) >= max_uploads:
                    out.truncated = True
                    break
                out.prefixes.append(cp)
                out.next_key_marker, out.next_upload_id_marker = cp, ""
                continue
        if len(out.uploads) + len(out.prefixes) >= max_uploads:
            out.truncated = True
            break
        out.uploads.append(UploadEntry(key, uid, UploadRecord.decode(record).initiated_ms))
        out.next_key_marker, out.next_upload_id_marker = key, uid
    return out


def expired_uploads(txn: Txn, older_than_ms: int, limit: int) -> list[tuple[str, str, str]]:
    """(bucket, key, upload id) of uploads with no activity (creation, or a part uploaded)
    since ``older_than_ms``."""
    found: list[tuple[str, str, str]] = []
    for k, v in txn.prefix("uploads", b""):
        bucket, key, uid, record = _parse_upload(k, v)
        last = UploadRecord.decode(record).initiated_ms
        if last < older_than_ms:
            last = max([last, *(p.mtime_ms for _, p in iter_parts(txn, uid))])
        if last < older_than_ms:
            found.append((bucket, key, uid))
            if len(found) >= limit:
                break
    return found


def forget_completed(txn: Txn, older_than_ms: int) -> int:
    """Drop the records kept for repeated CompleteMultipartUpload calls."""
    old = [k for k, v in txn.prefix("mpdone", b"") if struct.unpack("<Q", v[:8])[0] < older_than_ms]
    for k in old:
        txn.delete("mpdone", k)
    return len(old)


def delete_bucket(txn: Txn, bucket: str, now_ms: int) -> None:
    """DeleteBucket: refused while objects remain; multipart uploads still in progress are
    aborted (their parts give their references back) and completion records dropped."""
    base = bucket.encode() + b"\0"
    for _ in txn.prefix("objects", base):
        break
    else:
        for k, v in list(txn.prefix("uploads", base)):
            _, key, uid, _record = _parse_upload(k, v)
            _remove_upload(txn, bucket, key, uid, set(), now_ms)
        for k, _ in list(txn.prefix("mpdone", base)):
            txn.delete("mpdone", k)
    catalog.delete_bucket(txn, bucket)


def source_object(txn: Txn, bucket: str, key: str) -> ObjectRecord:
    """The source of UploadPartCopy (NoSuchBucket / NoSuchKey)."""
    if txn.bucket(bucket) is None:
        raise NoSuchBucketError(bucket)
    rec = catalog.get_object(txn, bucket, key)
    if rec is None:
        raise NoSuchKeyError(key)
    return rec
