"""Bucket and object metadata operations. Each write function runs as ONE index write
transaction (via ``Index.write``) and applies the refcount rules of dedup/refcount.py."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from dedup import refcount
from dedup.index import (
    KEY_INLINE_MAX,
    LONG_MARK,
    BucketExistsError,
    BucketNotEmptyError,
    NoSuchBucketError,
    NoSuchKeyError,
    Txn,
    object_key,
    split_value,
    with_full_key,
)
from dedup.records import OBJECT_HEAD, BucketRecord, ObjectRecord
from dedup.store import Placement

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


def set_bucket_tags(txn: Txn, name: str, tags: dict[str, str]) -> None:
    """Replace the bucket's tag set (an empty one removes it)."""
    rec = _bucket(txn, name)
    rec.tags = tags
    txn.put("buckets", name.encode(), rec.encode())


def set_bucket_config(txn: Txn, name: str, kind: str, value: str | None) -> None:
    """Set (or with None remove) the bucket's configuration ``kind`` (e.g. "cors")."""
    rec = _bucket(txn, name)
    if value is None:
        rec.configs.pop(kind, None)
    else:
        rec.configs[kind] = value
    txn.put("buckets", name.encode(), rec.encode())


def _bucket(txn: Txn, name: str) -> BucketRecord:
    rec = txn.bucket(name)
    if rec is None:
        raise NoSuchBucketError(name)
    return rec


def list_buckets(txn: Txn) -> list[tuple[str, BucketRecord]]:
    return [(k.decode(), BucketRecord.decode(v)) for k, v in txn.prefix("buckets", b"")]


# -- objects -------------------------------------------------------------------------------


def get_object(txn: Txn, bucket: str, key: str) -> ObjectRecord | None:
    record = get_object_bytes(txn, bucket, key)
    return None if record is None else ObjectRecord.decode(record)


def get_object_bytes(txn: Txn, bucket: str, key: str) -> bytes | None:
    """The encoded record of an object (decode it with ``ObjectRecord.decode``)."""
    okey = object_key(bucket, key)
    raw = txn.get("objects", okey)
    if raw is None:
        return None
    full, record = split_value(okey, raw)
    if full is not None and full != key.encode():  # a 128-bit hash collision: not this key
        raise AssertionError(f"object key hash collision in bucket {bucket}")
    return record


def _replace(
    txn: Txn,
    bucket: str,
    key: str,
    rec: ObjectRecord | None,
    check: Precondition | None,
    now_ms: int,
) -> ObjectRecord | None:
    """Write (or with ``rec=None`` delete) an object; drop the references of the old one."""
    if txn.bucket(bucket) is None:
        raise NoSuchBucketError(bucket)
    okey = object_key(bucket, key)
    old = get_object(txn, bucket, key)
    if check is not None:
        check(old)
    if old is not None:
        refcount.drop(txn, [h for h, _ in old.chunks], now_ms)
        _object_added(txn, old, -1)
    if rec is None:
        if old is not None:
            txn.delete("objects", okey)
    else:
        txn.put("objects", okey, with_full_key(key, rec.encode()))
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
    stored: Mapping[bytes, Placement],
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


def set_object_tags(txn: Txn, bucket: str, key: str, tags: dict[str, str]) -> None:
    """Replace the object's tag set (an empty one removes it). Nothing else changes: not the
    references, not the ETag, not Last-Modified (as S3)."""
    if txn.bucket(bucket) is None:
        raise NoSuchBucketError(bucket)
    rec = get_object(txn, bucket, key)
    if rec is None:
        raise NoSuchKeyError(key)
    rec.tags = tags
    txn.put("objects", object_key(bucket, key), with_full_key(key, rec.encode()))


def expire_object(txn: Txn, bucket: str, key: str, etag: str, mtime_ms: int, now_ms: int) -> bool:
    """Delete the object if it is still the one with this ETag and modification time (a
    lifecycle expiry must not take an object written after it looked). Returns whether it
    was deleted."""
    if txn.bucket(bucket) is None:
        return False
    cur = get_object(txn, bucket, key)
    if cur is None or cur.etag != etag or cur.mtime_ms != mtime_ms:
        return False
    _replace(txn, bucket, key, None, None, now_ms)
    return True


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

_HEAD = OBJECT_HEAD  # version, size, mtime_ms, etag length (see ObjectRecord.encode)


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


class _Keys:
    """Object keys of one bucket in true S3 order (UTF-8 byte order of the FULL key), with
    the record bytes. Long-key groups (dedup.index.KEY_INLINE_MAX) are read whole and
    sorted in memory; everything else streams from the cursor."""

    def __init__(self, txn: Txn, bucket: str) -> None:
        self.base = bucket.encode() + b"\0"
        self.cur = txn.txn.cursor(db=txn.dbs["objects"])
        self.on = False
        self.advance = False  # the cursor's current item was consumed: step before reading
        self.group: deque[tuple[str, bytes]] = deque()
        self.skip: str | None = None

    def seek(self, lower: str) -> None:
        """Continue from the first key that may be >= ``lower`` (a lower bound)."""
        self.group.clear()
        self.advance = False
        self.on = self.cur.set_range(self.base + lower.encode()[:KEY_INLINE_MAX])

    def skip_prefix(self, cp: str) -> None:
        """Skip every key starting with ``cp`` (a common prefix just returned)."""
        while self.group and self.group[0][0].startswith(cp):
            self.group.popleft()
        if self.group:
            return
        cpb = cp.encode()
        if len(cpb) < KEY_INLINE_MAX:
            # lands after every raw key starting with cp (0xFF never occurs in UTF-8, and
            # a long key's mark comes only after KEY_INLINE_MAX bytes)
            self.advance = False
            self.on = self.cur.set_range(self.base + cpb + b"\xff" * 20)
        else:
            self.skip = cp  # inside one long-key group: filter as it is read

    def next(self) -> tuple[str, bytes] | None:
        while True:
            if self.group:
                item = self.group.popleft()
            else:
                if self.advance and self.on:
                    self.on = self.cur.next()
                self.advance = False
                if not self.on:
                    return None
                k = bytes(self.cur.key())
                if not k.startswith(self.base):
                    self.on = False
                    return None
                tail = k[len(self.base) :]
                if LONG_MARK not in tail:
                    item = (tail.decode(), bytes(self.cur.value()))
                    self.advance = True
                else:
                    self._load_group(tail[: tail.index(LONG_MARK) + 1])
                    continue
            if self.skip is not None:
                if item[0].startswith(self.skip):
                    continue
                self.skip = None
            return item

    def _load_group(self, tail_prefix: bytes) -> None:
        prefix = self.base + tail_prefix
        items = []
        while self.on and bytes(self.cur.key()).startswith(prefix):
            full, record = split_value(bytes(self.cur.key()), bytes(self.cur.value()))
            assert full is not None
            items.append((full.decode(), record))
            self.on = self.cur.next()
        self.group.extend(sorted(items))


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
    keys = _Keys(txn, bucket)
    keys.seek(max(prefix, marker))
    count = 0
    while (item := keys.next()) is not None:
        key, value = item
        if not key.startswith(prefix):
            if key < prefix:
                continue
            break
        if key <= marker:
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
                keys.skip_prefix(cp)
                continue
        if count >= max_keys:
            out.truncated = True
            break
        _v, size, mtime, n = _HEAD.unpack_from(value)
        etag = value[_HEAD.size : _HEAD.size + n].decode()
        out.entries.append(ListEntry(key, size, mtime, etag))
        out.next_marker = key
        count += 1
    if not out.truncated:
        out.next_marker = None
    return out
