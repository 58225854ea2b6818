"""Binary index records round-trip; chunk_span picks exactly the chunks covering a range."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.multipart import UploadRecord
from dedup.records import (
    HASH_LEN,
    BucketRecord,
    ChunkRecord,
    ChunkState,
    ObjectRecord,
)

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
text = st.text(max_size=40)
str_dicts = st.dictionaries(text, text, max_size=6)
hashes = st.binary(min_size=HASH_LEN, max_size=HASH_LEN)


@st.composite
def object_records(draw: st.DrawFn) -> ObjectRecord:
    inline = draw(st.none() | st.binary(max_size=5000))
    chunks = [] if inline is not None else draw(st.lists(st.tuples(hashes, u32), max_size=40))
    return ObjectRecord(
        size=draw(u64),
        etag=draw(st.text(max_size=40)),
        mtime_ms=draw(u64),
        headers=draw(str_dicts),
        meta=draw(str_dicts),
        checksums=draw(str_dicts),
        checksum_type=draw(st.sampled_from(["", "FULL_OBJECT", "COMPOSITE"])),
        inline=inline,
        chunks=chunks,
        part_sizes=draw(st.lists(u64, max_size=20)),
        tags=draw(str_dicts),
    )


@settings(max_examples=300, deadline=None)
@given(object_records())
def test_object_record_round_trip(rec: ObjectRecord) -> None:
    raw = rec.encode()
    assert ObjectRecord.decode(raw) == rec
    assert ObjectRecord.decode(memoryview(raw)) == rec
    # format version: 2 only for a record with tags, so untagged records stay version 1
    assert raw[0] == (2 if rec.tags else 1)


def test_object_record_unknown_version() -> None:
    raw = bytearray(ObjectRecord(size=1, etag="x", mtime_ms=2, inline=b"a").encode())
    raw[0] = 3
    with pytest.raises(ValueError, match="version"):
        ObjectRecord.decode(bytes(raw))


def test_tagged_records_are_untagged_ones_plus_the_tag_set() -> None:
    """Version 2 is version 1 with the tag set appended: adding tags changes nothing before."""
    plain = ObjectRecord(
        size=5, etag="e", mtime_ms=7, chunks=[(b"h" * HASH_LEN, 5)], part_sizes=[5]
    )
    tagged = ObjectRecord(**{**plain.__dict__, "tags": {"a": "1"}})
    assert tagged.encode()[1:].startswith(plain.encode()[1:])
    bucket = BucketRecord(1, "o", {"env": "prod"})
    assert bucket.encode()[1:].startswith(BucketRecord(1, "o").encode()[1:])
    upload = UploadRecord(1, "o", {"content-type": "t"}, {"m": "v"}, "CRC32", "COMPOSITE")
    tagged_upload = UploadRecord(**{**upload.__dict__, "tags": {"k": "v"}})
    assert tagged_upload.encode()[1:].startswith(upload.encode()[1:])
    assert UploadRecord.decode(tagged_upload.encode()) == tagged_upload
    assert UploadRecord.decode(upload.encode()) == upload


def test_object_record_empty_inline_differs_from_no_inline() -> None:
    a = ObjectRecord(size=0, etag="d41d8cd98f00b204e9800998ecf8427e", mtime_ms=0, inline=b"")
    b = ObjectRecord(size=0, etag="d41d8cd98f00b204e9800998ecf8427e", mtime_ms=0, inline=None)
    assert ObjectRecord.decode(a.encode()).inline == b""
    assert ObjectRecord.decode(b.encode()).inline is None


def test_object_record_listing_head_layout() -> None:
    """catalog.list_objects reads size, mtime and etag straight from the record's head."""
    from dedup.catalog import _HEAD

    rec = ObjectRecord(size=123456789, etag="abc-3", mtime_ms=987654321, inline=b"hi")
    raw = rec.encode()
    _v, size, mtime, n = _HEAD.unpack_from(raw)
    etag = raw[_HEAD.size : _HEAD.size + n].decode()
    assert (size, mtime, etag) == (123456789, 987654321, "abc-3")


@settings(max_examples=300, deadline=None)
@given(
    refcount=u64,
    size=u32,
    state=st.sampled_from(list(ChunkState)),
    zero=u64,
    replicas=st.lists(u32, max_size=255).map(tuple),
)
def test_chunk_record_round_trip(
    refcount: int, size: int, state: ChunkState, zero: int, replicas: tuple[int, ...]
) -> None:
    rec = ChunkRecord(refcount, size, state, zero, replicas)
    back = ChunkRecord.decode(rec.encode())
    assert back == rec
    assert back.state is state


@settings(max_examples=200, deadline=None)
@given(created=u64, owner=text, tags=str_dicts, configs=str_dicts)
def test_bucket_record_round_trip(
    created: int, owner: str, tags: dict[str, str], configs: dict[str, str]
) -> None:
    rec = BucketRecord(created, owner, tags, configs)
    raw = rec.encode()
    assert BucketRecord.decode(raw) == rec
    assert raw[0] == (2 if tags or configs else 1)


# -- chunk_span ----------------------------------------------------------------------------------


def _record(sizes: list[int]) -> ObjectRecord:
    chunks = [(i.to_bytes(HASH_LEN, "big"), n) for i, n in enumerate(sizes)]
    return ObjectRecord(size=sum(sizes), etag="", mtime_ms=0, chunks=chunks)


def _brute_span(sizes: list[int], start: int, end: int) -> tuple[int, int, int]:
    """The chunks that hold at least one byte of [start, end), by walking them."""
    covering: list[int] = []
    off = 0
    first_off = 0
    for i, n in enumerate(sizes):
        if off < end and start < off + n:
            if not covering:
                first_off = off
            covering.append(i)
        off += n
    return covering[0], covering[-1] + 1, first_off


@settings(max_examples=500, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 50), min_size=1, max_size=30),
    data=st.data(),
)
def test_chunk_span_matches_brute_force(sizes: list[int], data: st.DataObject) -> None:
    total = sum(sizes)
    start = data.draw(st.integers(0, total - 1))
    end = data.draw(st.integers(start + 1, total))
    rec = _record(sizes)
    assert rec.chunk_span(start, end) == _brute_span(sizes, start, end)
    first, last, off = rec.chunk_span(start, end)
    # the span's bytes cover the range and no chunk more
    assert off <= start < off + sizes[first]
    assert sum(sizes[first:last]) + off >= end
    assert rec.chunk_offsets()[last - 1] < end


@pytest.mark.parametrize(
    ("start", "end", "want"),
    [
        (0, 1, (0, 1, 0)),
        (0, 10, (0, 1, 0)),  # exactly the first chunk
        (0, 11, (0, 2, 0)),  # one byte into the second
        (9, 11, (0, 2, 0)),
        (10, 20, (1, 2, 10)),  # exactly the second chunk
        (10, 30, (1, 3, 10)),
        (29, 30, (2, 3, 20)),  # the last byte
        (0, 30, (0, 3, 0)),
        (5, 100, (0, 3, 0)),  # end past the object is clamped
    ],
)
def test_chunk_span_boundaries(start: int, end: int, want: tuple[int, int, int]) -> None:
    assert _record([10, 10, 10]).chunk_span(start, end) == want


def test_chunk_offsets() -> None:
    assert _record([3, 4, 5]).chunk_offsets() == [0, 3, 7, 12]
    assert _record([]).chunk_offsets() == [0]
