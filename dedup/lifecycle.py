"""Bucket lifecycle rules (S3's LifecycleConfiguration) and the pass that applies them.

A rule selects objects by a filter (key prefix, tags, size bounds; all must hold) and names
actions: ``Expiration`` deletes an object ``days`` after its last modification (rounded up
to the next midnight UTC, as S3 does) or from ``date`` on; ``AbortIncompleteMultipartUpload``
aborts an upload ``days`` after its initiation (same rounding). Buckets are never
versioned here, so noncurrent-version actions and expired delete markers are stored and
shown but have nothing to act on — as on an unversioned S3 bucket. Deleting an object drops
its references (refcount rule 1); GC frees the chunks later, as for any delete.

The pass lists each bucket that has rules in pages (short read transactions) and deletes in
one write transaction per page, each delete only if the object is still the one listed
(same ETag and modification time): an object overwritten meanwhile is not expired.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from typing import Any

from dedup import catalog, multipart
from dedup.index import Txn
from dedup.records import ObjectRecord

DAY_MS = 86_400_000
PAGE = 1000
UPLOADS_PER_PASS = 10_000
KIND = "lifecycle"  # the bucket configuration holding the rules (BucketRecord.configs)
LAST_DATE_MS = 253_402_214_400_000  # 9999-12-31T00:00:00Z, the last midnight a date can name


@dataclass(frozen=True, slots=True)
class Filter:
    prefix: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    size_gt: int | None = None  # ObjectSizeGreaterThan
    size_lt: int | None = None  # ObjectSizeLessThan

    def matches(self, key: str, size: int, tags: dict[str, str] | None) -> bool:
        """``tags`` may be None when the filter has no tags (they are then not needed)."""
        if not key.startswith(self.prefix):
            return False
        if self.size_gt is not None and not size > self.size_gt:
            return False
        if self.size_lt is not None and not size < self.size_lt:
            return False
        return all((tags or {}).get(k) == v for k, v in self.tags)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    enabled: bool
    filter: Filter = field(default_factory=Filter)
    # how the filter was given, to show it back the same way: "Prefix", "Tag", "And",
    # "ObjectSizeGreaterThan", "ObjectSizeLessThan" (the Filter's one child), "" (an empty
    # Filter: every object) or "Rule.Prefix" (the old API's <Rule><Prefix>, no Filter)
    filter_form: str = ""
    expire_days: int | None = None
    expire_date_ms: int | None = None  # midnight UTC
    expired_delete_marker: bool | None = None
    noncurrent_days: int | None = None
    newer_noncurrent: int | None = None
    abort_days: int | None = None  # AbortIncompleteMultipartUpload DaysAfterInitiation

    def expiry_ms(self, mtime_ms: int) -> int | None:
        """When an object modified at ``mtime_ms`` expires under this rule (None: never)."""
        if self.expire_days is not None:
            return next_midnight(mtime_ms + self.expire_days * DAY_MS)
        return self.expire_date_ms


def next_midnight(ms: int) -> int:
    return -(-ms // DAY_MS) * DAY_MS


def to_json(rules: Sequence[Rule]) -> str:
    return json.dumps([asdict(r) for r in rules])


@lru_cache(maxsize=256)
def from_json(raw: str) -> tuple[Rule, ...]:
    out = []
    for r in json.loads(raw):
        f = r.pop("filter")
        f["tags"] = tuple(tuple(t) for t in f["tags"])
        out.append(Rule(filter=Filter(**f), **r))
    return tuple(out)


def expiry_of(raw_rules: str, key: str, rec: ObjectRecord) -> tuple[int, str] | None:
    """(when, rule id) of the earliest expiry the enabled rules ``raw_rules`` (JSON) give
    the object; what GET and HEAD answer in x-amz-expiration."""
    best: tuple[int, str] | None = None
    for rule in from_json(raw_rules):
        if not rule.enabled:
            continue
        when = rule.expiry_ms(rec.mtime_ms)
        if when is None or when > LAST_DATE_MS:  # no date to name (Days in the millions)
            continue
        if rule.filter.matches(key, rec.size, rec.tags):
            if best is None or when < best[0]:
                best = (when, rule.id)
    return best


@dataclass
class LifecycleResult:
    expired: int = 0  # objects deleted (or, in a dry run, that would be)
    expired_bytes: int = 0
    aborted: int = 0  # multipart uploads aborted (or that would be)
    buckets: int = 0  # buckets with rules looked at
    items: list[dict[str, Any]] = field(default_factory=list)  # dry run: what would go

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Read = Callable[[Callable[[Txn], Any]], Awaitable[Any]]


def _bucket_rules(txn: Txn) -> list[tuple[str, tuple[Rule, ...]]]:
    out = []
    for name, rec in catalog.list_buckets(txn):
        raw = rec.configs.get(KIND)
        if raw is not None:
            rules = tuple(r for r in from_json(raw) if r.enabled)
            if rules:
                out.append((name, rules))
    return out


def _expired_page(
    txn: Txn, bucket: str, rules: Sequence[Rule], after: str, now_ms: int
) -> tuple[list[tuple[str, str, int, int, str]], str | None]:
    """Objects due in one page of keys after ``after``: (key, etag, mtime, size, rule id),
    and the key to continue after (None: the bucket is done)."""
    expiring = [r for r in rules if r.expire_days is not None or r.expire_date_ms is not None]
    page = catalog.list_objects(txn, bucket, "", "", after, PAGE)
    due = []
    for e in page.entries:
        for rule in expiring:
            when = rule.expiry_ms(e.mtime_ms)
            if when is None or when > now_ms:
                continue
            tags = None
            if rule.filter.tags:
                rec = catalog.get_object(txn, bucket, e.key)
                tags = rec.tags if rec is not None else {}
            if rule.filter.matches(e.key, e.size, tags):
                due.append((e.key, e.etag, e.mtime_ms, e.size, rule.id))
                break
    last = page.entries[-1].key if page.entries else None
    return due, (last if page.truncated else None)


def _stale_uploads(
    txn: Txn, bucket: str, rules: Sequence[Rule], now_ms: int
) -> list[tuple[str, str, str]]:
    aborting = [r for r in rules if r.abort_days is not None]
    if not aborting:
        return []
    due = []
    # at most UPLOADS_PER_PASS a pass: the next pass takes the rest
    listing = multipart.list_uploads(txn, bucket, "", "", "", "", UPLOADS_PER_PASS)
    for u in listing.uploads:
        for rule in aborting:
            assert rule.abort_days is not None
            if next_midnight(
                u.initiated_ms + rule.abort_days * DAY_MS
            ) <= now_ms and u.key.startswith(rule.filter.prefix):
                due.append((u.key, u.upload_id, rule.id))
                break
    return due


async def apply(
    read: Read,
    write: Read,
    now_ms: int,
    *,
    dry_run: bool = False,
    clock: Callable[[], int] | None = None,
) -> LifecycleResult:
    """One lifecycle pass over every bucket with rules, as of ``now_ms``. ``read`` and
    ``write`` run a function in a read / write transaction (Engine.read, Index.write);
    ``clock`` stamps the deletes (default: ``now_ms``)."""

    def stamp() -> int:
        return now_ms if clock is None else clock()

    result = LifecycleResult()
    for bucket, rules in await read(_bucket_rules):
        result.buckets += 1
        after: str | None = ""
        while after is not None:
            due, after = await read(
                partial(_expired_page, bucket=bucket, rules=rules, after=after, now_ms=now_ms)
            )
            if not due:
                continue
            if dry_run:
                result.expired += len(due)
                result.expired_bytes += sum(d[3] for d in due)
                result.items += [{"bucket": bucket, "key": d[0], "rule": d[4]} for d in due]
                continue

            def expire(
                txn: Txn, b: str = bucket, batch: list[tuple[str, str, int, int, str]] = due
            ) -> tuple[int, int]:
                gone = size_gone = 0
                for key, etag, mtime, size, _ in batch:
                    if catalog.expire_object(txn, b, key, etag, mtime, stamp()):
                        gone, size_gone = gone + 1, size_gone + size
                return gone, size_gone

            gone, size_gone = await write(expire)
            result.expired += gone
            result.expired_bytes += size_gone
        uploads = await read(partial(_stale_uploads, bucket=bucket, rules=rules, now_ms=now_ms))
        for key, upload_id, rule_id in uploads:
            if dry_run:
                result.aborted += 1
                result.items.append(
                    {"bucket": bucket, "key": key, "upload": upload_id, "rule": rule_id}
                )
                continue

            def abort(txn: Txn, b: str = bucket, k: str = key, u: str = upload_id) -> bool:
                try:
                    multipart.abort_upload(txn, b, k, u, stamp())
                except multipart.NoSuchUploadError:
                    return False  # completed or aborted meanwhile
                return True

            result.aborted += int(await write(abort))
    return result
