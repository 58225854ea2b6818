"""A page of 1000 from a bucket of a million keys must not scan the bucket."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dedup import catalog
from dedup.index import Index, Txn, object_key
from dedup.records import ObjectRecord

N_KEYS = 1_000_000
N_DIRS = 1000
BUCKET = "scale"
PAGE_BUDGET_S = 0.050


def key_of(i: int) -> str:
    return f"dir{i % N_DIRS:04d}/file{i:07d}"


def sorted_keys() -> Iterator[str]:
    """All keys in byte order: dir by dir, and in a dir by increasing i."""
    for d in range(N_DIRS):
        for i in range(d, N_KEYS, N_DIRS):
            yield key_of(i)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    idx = Index(tmp_path_factory.mktemp("scale") / "index")
    now = 1_700_000_000_000
    idx.write_sync(lambda txn: catalog.create_bucket(txn, BUCKET, "owner", now))
    # A neighbouring bucket whose keys sort right after ours must never leak into listings.
    idx.write_sync(lambda txn: catalog.create_bucket(txn, BUCKET + "0", "owner", now))
    value = ObjectRecord(size=123, etag="0" * 32, mtime_ms=now, inline=b"").encode()
    keys = list(sorted_keys())
    batch = 250_000

    def put(lo: int, hi: int) -> Callable[[Txn], None]:
        def run(txn: Txn) -> None:
            cur = txn.txn.cursor(db=txn.dbs["objects"])
            cur.putmulti(((object_key(BUCKET, k), value) for k in keys[lo:hi]), append=True)

        return run

    for lo in range(0, N_KEYS, batch):
        idx.write_sync(put(lo, lo + batch))
    idx.write_sync(lambda txn: txn.put("objects", object_key(BUCKET + "0", "aaa"), value))
    yield idx
    idx.close()


class _CountingCursor:
    def __init__(self, cur: Any, counter: list[int]) -> None:
        self._cur = cur
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._cur, name)
        if name in ("next", "prev", "set_range", "set_key", "first", "last", "__iter__"):

            def counted(*args: Any, **kw: Any) -> Any:
                self._counter[0] += 1
                return attr(*args, **kw)

            return counted
        return attr

    def __iter__(self) -> Any:
        raise AssertionError("iterate through next() so every step is counted")


class _CountingTxn:
    def __init__(self, txn: Any, counter: list[int]) -> None:
        self._txn = txn
        self._counter = counter

    def cursor(self, *args: Any, **kw: Any) -> _CountingCursor:
        return _CountingCursor(self._txn.cursor(*args, **kw), self._counter)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._txn, name)


def listing(
    idx: Index, prefix: str = "", delimiter: str = "", marker: str = "", max_keys: int = 1000
) -> tuple[catalog.Listing, int, float]:
    """(listing, cursor steps, seconds)."""
    counter = [0]
    with idx.read() as txn:
        counting = Txn(_CountingTxn(txn.txn, counter), txn.dbs)
        started = time.perf_counter()
        out = catalog.list_objects(counting, BUCKET, prefix, delimiter, marker, max_keys)
        elapsed = time.perf_counter() - started
    return out, counter[0], elapsed


def median_time(idx: Index, **kw: Any) -> float:
    times = []
    for _ in range(5):
        with idx.read() as txn:
            started = time.perf_counter()
            catalog.list_objects(
                txn,
                BUCKET,
                kw.get("prefix", ""),
                kw.get("delimiter", ""),
                kw.get("marker", ""),
                kw.get("max_keys", 1000),
            )
            times.append(time.perf_counter() - started)
    return statistics.median(times)


CASES = {
    "start": {},
    "middle": {"marker": key_of(500_123)},
    "delimiter": {"delimiter": "/"},
    "delimiter-middle": {"delimiter": "/", "marker": "dir0500/"},
    "delimiter-in-prefix": {"delimiter": "/", "prefix": "dir0777/"},
    "prefix-middle": {"prefix": "dir0777/", "marker": key_of(500_777)},
}


@pytest.mark.parametrize("case", list(CASES))
def test_page_does_not_scan_the_bucket(index: Index, case: str) -> None:
    kw = CASES[case]
    out, steps, _ = listing(index, **kw)
    returned = len(out.entries) + len(out.prefixes)
    expected = {"delimiter-middle": N_DIRS - 501, "prefix-middle": 499}.get(case, 1000)
    assert returned == expected
    # One cursor step per returned item (a next or a seek past a common prefix), plus the
    # initial seek and the step that finds the page is full.
    assert steps <= returned + 2, steps
    median = median_time(index, **kw)
    assert median < PAGE_BUDGET_S, f"{case}: median {median * 1000:.1f} ms"


def test_pages_are_correct(index: Index) -> None:
    out, _, _ = listing(index)
    assert [e.key for e in out.entries] == [
        f"dir0000/file{i:07d}" for i in range(0, 1000 * 1000, 1000)
    ]
    assert out.truncated and out.next_marker == out.entries[-1].key
    assert out.entries[0].size == 123 and out.entries[0].etag == "0" * 32

    out, _, _ = listing(index, marker=key_of(500_123))
    assert out.entries[0].key == key_of(501_123)
    assert out.truncated

    out, _, _ = listing(index, delimiter="/")
    assert out.prefixes == [f"dir{d:04d}/" for d in range(N_DIRS)]
    assert out.entries == []
    assert not out.truncated and out.next_marker is None

    out, _, _ = listing(index, delimiter="/", marker="dir0500/")
    assert out.prefixes == [f"dir{d:04d}/" for d in range(501, N_DIRS)]
    assert not out.truncated

    out, _, _ = listing(index, delimiter="/", max_keys=10, marker="dir0994/")
    assert out.prefixes == [f"dir{d:04d}/" for d in range(995, N_DIRS)]
    assert not out.truncated

    out, _, _ = listing(index, prefix="dir0777/", delimiter="/")
    assert len(out.entries) == 1000 and not out.truncated and out.prefixes == []

    # the last page of the bucket: the neighbouring bucket's key is not listed
    out, _, _ = listing(index, marker=key_of(N_KEYS - 1 - N_DIRS))
    assert [e.key for e in out.entries] == [key_of(N_KEYS - 1)]
    assert not out.truncated


def test_walk_a_directory_page_by_page(index: Index) -> None:
    marker = ""
    seen: list[str] = []
    while True:
        out, steps, _ = listing(index, prefix="dir0042/", marker=marker, max_keys=333)
        assert steps <= len(out.entries) + 2
        seen += [e.key for e in out.entries]
        if not out.truncated:
            break
        assert out.next_marker is not None
        marker = out.next_marker
    assert seen == [key_of(i) for i in range(42, N_KEYS, N_DIRS)]
