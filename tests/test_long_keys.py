"""Keys longer than LMDB's 511-byte key limit (S3 allows 1024 bytes): stored as long-key
groups (dedup.index.KEY_INLINE_MAX). Listings must still come out in exact UTF-8 byte order
with prefixes, delimiters and markers, including inside a group."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dedup import catalog
from dedup.index import KEY_INLINE_MAX, Index, Txn, object_key
from dedup.records import ObjectRecord

BUCKET = "long-keys"


def _keys(rng: random.Random) -> list[str]:
    stem = "s" * (KEY_INLINE_MAX - 3)
    keys = {"a", "z", stem, stem[:-1], stem + "/x"}
    # keys sharing their first KEY_INLINE_MAX bytes (one group), around the boundary
    for _ in range(60):
        tail = "".join(rng.choice("ab/é𝄞z") for _ in range(rng.randint(0, 600)))
        keys.add((stem + "/" + tail).encode()[:1024].decode(errors="ignore"))
    for n in (KEY_INLINE_MAX - 1, KEY_INLINE_MAX, KEY_INLINE_MAX + 1, 1024):
        keys.add("k" * n)
        keys.add("k" * (n - 1) + "l")
    keys.add("é" * 512)
    return sorted(keys, key=lambda k: k.encode())


@pytest.fixture
def index(tmp_path: Path) -> Index:
    idx = Index(tmp_path / "index")
    yield idx  # type: ignore[misc]
    idx.close()


def _fill(index: Index, keys: list[str]) -> None:
    def run(txn: Txn) -> None:
        catalog.create_bucket(txn, BUCKET, "owner", 1)
        for i, key in enumerate(keys):
            rec = ObjectRecord(size=i, etag=f"{i:032x}", mtime_ms=1000, inline=b"")
            catalog.replace_object(txn, BUCKET, key, rec, 1)

    index.write_sync(run)


def _list_all(index: Index, prefix: str, delimiter: str, page: int) -> list[str]:
    out: list[str] = []
    marker = ""
    while True:
        with index.read() as txn:
            listing = catalog.list_objects(txn, BUCKET, prefix, delimiter, marker, page)
        out += [e.key for e in listing.entries] + listing.prefixes
        if not listing.truncated:
            return out
        assert listing.next_marker is not None
        marker = listing.next_marker


def test_encoding_fits_lmdb() -> None:
    assert len(object_key("b" * 63, "x" * 1024) + b"\0" + bytes(16)) <= 511


@pytest.mark.parametrize("page", [1, 7, 1000])
def test_listing_order_with_long_key_groups(index: Index, page: int) -> None:
    keys = _keys(random.Random(5))
    _fill(index, keys)
    assert _list_all(index, "", "", page) == keys
    stem = "s" * (KEY_INLINE_MAX - 3)
    for prefix in (stem, stem + "/", stem + "/a", stem + "/ab/" + "é"):
        want = [k for k in keys if k.startswith(prefix)]
        assert _list_all(index, prefix, "", page) == want
        got = _list_all(index, prefix, "/", page)
        expected: list[str] = []
        for k in want:
            pos = k.find("/", len(prefix))
            item = k if pos < 0 else k[: pos + 1]
            if item not in expected:
                expected.append(item)
        assert sorted(got, key=lambda k: k.encode()) == sorted(expected, key=lambda k: k.encode())
        assert len(got) == len(set(got))


def test_long_key_round_trip_and_delete(index: Index) -> None:
    keys = _keys(random.Random(6))
    _fill(index, keys)
    with index.read() as txn:
        for i, key in enumerate(keys):
            rec = catalog.get_object(txn, BUCKET, key)
            assert rec is not None and rec.size == i
    now = 2

    def delete(txn: Txn) -> None:
        for key in keys[::2]:
            assert catalog.delete_object(txn, BUCKET, key, now)

    index.write_sync(delete)
    assert _list_all(index, "", "", 13) == keys[1::2]
