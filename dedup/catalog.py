"""Bucket and object metadata operations. Each write function runs as ONE index write
transaction (via ``Index.write``) and applies the refcount rules of dedup/refcount.py."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from dedup import refcount
from dedup.index import (
    BucketExistsError,
    BucketNotEmptyError,
    NoSuchBucketError,
    NoSuchKeyError,
    Txn,
    object_key,
)
from dedup.records import BucketRecord, ObjectRecord

# A precondition callback sees the current object (or None) and raises to refuse the write.
Precondition = Callable[[ObjectRecord | None], None]


def _object_added(txn: Txn, rec: ObjectRecord, sign: int) -> None:
    txn.stat_add("objects", sign)
    txn.stat_add("logical_bytes", sign * rec.size)
    txn.stat_add("inline_bytes", sign * len(rec.inline or b""))


# -- buckets -------------------------------------------------------------------------------


def create_bucket(txn: Txn, name: str, owner: str, now_ms: int) -> None:
    existing = txn.bucket(name)
    if existing is not None:
        raise BucketExistsError(existing.owner)
    txn.put("buckets", name.encode(), BucketRecord(now_ms, owner).encode())


def delete_bucket(txn: Txn, name: str) -> None:
    if txn.bucket(name) is None:
        raise NoSuchBucketError(name)
    for _ in txn.prefix("objects", name.encode() + b"\0"):
        raise BucketNotEmptyError(name)
    # multipart uploads in progress: the caller aborts them in the same transaction
    # (dedup.multipart.delete_bucket); none may remain here
    for _ in txn.prefix("uploads", name.encode() + b"\0"):
        raise BucketNotEmptyError(name)
    txn.delete("buckets", name.encode())


def list_buckets(txn: Txn) -> list[tuple[str, BucketRecord]]:
    return [(k.decode(), BucketRecord.decode(v)) for k, v in txn.prefix("buckets", b"")]


# -- objects -------------------------------------------------------------------------------


def get_object(txn: Txn, bucket: str, key: str) -> ObjectRecord | None:
    raw = txn.get("objects", object_key(bucket, key))
    return None if raw is None else ObjectRecord.decode(raw)


def _replace(
    txn: Txn, bucket: str, key: str, rec: ObjectRecord | None, check: Precondition | None,
    now_ms: int,
) -> ObjectRecord | None:
    """Write (or with ``rec=None`` delete) an object; drop the references of the old one."""
    if txn.bucket(bucket) is None:
        raise NoSuchBucketError(bucket)
    okey = object_key(bucket, key)
    raw = txn.get("objects", okey)
    old = None if raw is None else ObjectRecord.decode(raw)
    if check is not None:
        check(old)
    if old is not None:
        refcount.drop(txn, [h for h, _ in old.chunks], now_ms)
        _object_added(txn, old, -1)
    if rec is None:
        if old is not None:
            txn.delete("objects", okey)
    else:
        txn.put("objects", okey, rec.encode())
        _object_added(txn, rec, +1)
    return old


def replace_object(txn: Txn, bucket: str, key: str, rec: ObjectRecord, now_ms: int) -> None:
    """Write ``rec`` (whose references the caller has already accounted for) in place of
    the current object, whose references are dropped."""
    _replace(txn, bucket, key, rec, None, now_ms)


def commit_object(
    txn: Txn,
    bucket: str,
    key: str,
    rec: ObjectRecord,
    token: bytes,
    stored: list[bytes],
    check: Precondition | None,
    now_ms: int,
) -> None:
    """Rule 2: the object record takes over the request's pins; the replaced object's
    references are dropped; chunks this request made durable are marked stored."""
    refcount.mark_stored(txn, stored)
    refcount.unpin(txn, token, [h for h, _ in rec.chunks])
    _replace(txn, bucket, key, rec, check, now_ms)


def delete_object(txn: Txn, bucket: str, key: str, now_ms: int) -> bool:
    """Returns whether an object was there. Deleting a missing key is not an error (S3)."""
    return _replace(txn, bucket, key, None, None, now_ms) is not None


def copy_object(
    txn: Txn,
    src_bucket: str,
    src_key: str,
    dst_bucket: str,
    dst_key: str,
    make: Callable[[ObjectRecord], ObjectRecord],
    check: Precondition | None,
    now_ms: int,
) -> ObjectRecord:
    """A copy references the source's chunks: no data moves. ``make`` turns the source record
    into the new one (and may raise to refuse, e.g. for copy-source-if-* conditions)."""
    if txn.bucket(src_bucket) is None:
        raise NoSuchBucketError(src_bucket)
    src = get_object(txn, src_bucket, src_key)
    if src is None:
        raise NoSuchKeyError(src_key)
    rec = make(src)
    refcount.add(txn, [h for h, _ in rec.chunks])
    _replace(txn, dst_bucket, dst_key, rec, check, now_ms)
    return rec


# -- listing -------------------------------------------------------------------------------

_HEAD = struct.Struct("<BQQI")  # version, size, mtime_ms, etag length (see ObjectRecord.encode)


@dataclass
class ListEntry:
    key: str
    size: int
    mtime_ms: int
    etag: str


@dataclass
class Listing:
    entries: list[ListEntry] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    next_marker: str | None = None  # the last key or common prefix returned when truncated


def list_objects(
    txn: Txn, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int
) -> Listing:
    """Keys (and common prefixes) after ``marker`` in UTF-8 binary order. Seeks past each
    common prefix instead of reading its keys, so a page costs O(page), not O(bucket)."""
    out = Listing()
    if max_keys <= 0:
        # S3 answers max-keys=0 with an empty page that is not truncated: there is no key
        # to continue from, so a truncated page without a marker would loop clients forever.
        return out
    base = bucket.encode() + b"\0"
    pfx = base + prefix.encode()
    start = max(pfx, base + marker.encode())
    cur = txn.txn.cursor(db=txn.dbs["objects"])
    positioned = cur.set_range(start)
    count = 0
    while positioned:
        k = bytes(cur.key())
        if not k.startswith(pfx):
            break
        key = k[len(base) :].decode()
        if key <= marker:
            positioned = cur.next()
            continue
        if delimiter:
            pos = key.find(delimiter, len(prefix))
            if pos >= 0:
                cp = key[: pos + len(delimiter)]
                if count >= max_keys:
                    out.truncated = True
                    break
                if cp > marker:
                    out.prefixes.append(cp)
                    out.next_marker = cp
                    count += 1
                # UTF-8 never contains 0xFF: this lands after every key starting with cp.
                positioned = cur.set_range(base + cp.encode() + b"\xff")
                continue
        if count >= max_keys:
            out.truncated = True
            break
        v = cur.value()
        _v, size, mtime, n = _HEAD.unpack_from(v)
        etag = bytes(v[_HEAD.size : _HEAD.size + n]).decode()
        out.entries.append(ListEntry(key, size, mtime, etag))
        out.next_marker = key
        count += 1
        positioned = cur.next()
    if not out.truncated:
        out.next_marker = None
    return out
