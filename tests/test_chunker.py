"""The chunker: pinned cut points (golden), streaming == whole-buffer cutting, parameters."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pyfastcdc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedup.chunker import ChunkerParams, StreamChunker, chunk_all
from dedup.index import ChunkerMismatchError, Index

KiB = 1024
MiB = 1024 * KiB

SMALL = ChunkerParams(min_size=1 * KiB, avg_size=4 * KiB, max_size=16 * KiB)


def seeded_random(n: int = 8 * MiB) -> bytes:
    return random.Random(42).randbytes(n)


def text_pattern(n: int = 4 * MiB) -> bytes:
    """Compressible, log-like data (many repeats of short lines that differ a little)."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += f"line {i:08d}: the quick brown fox jumps over the lazy dog\n".encode()
        i += 1
    return bytes(out[:n])


def mixed() -> bytes:
    rnd = seeded_random()
    return rnd[: 3 * MiB] + text_pattern() + rnd[3 * MiB : 5 * MiB] + bytes(2 * MiB)


def lengths(data: bytes, params: ChunkerParams) -> list[int]:
    return [len(c) for c in chunk_all(data, params)]


def digest(lens: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, lens)).encode()).hexdigest()


# -- golden cut points -------------------------------------------------------------------------
# Changing these means every existing store stops deduplicating against its own data: never
# update them to make a test pass without a format/version decision.

GOLDEN_RANDOM = [
    85543, 204640, 458091, 229055, 364450, 503651, 380969, 481336, 179900, 358949, 1048576,
    90464, 225520, 257222, 204094, 595939, 80078, 410536, 252111, 274938, 182717, 422021,
    88732, 70706, 459546, 116988, 361836,
]  # fmt: skip
GOLDEN_PATTERN = [
    198976, 720972, 195285, 327935, 662321, 270174, 322782, 277538, 1048576, 169745,
]  # fmt: skip
GOLDEN_MIXED_SHA256 = "a5efd1b5b619d4a3989a952c2b81de27d566bf37b16531857165f11a4e48ec20"


def test_golden_cut_points_random() -> None:
    lens = lengths(seeded_random(), ChunkerParams())
    assert lens == GOLDEN_RANDOM
    assert sum(lens) == 8 * MiB
    assert digest(lens) == "a772e1b93187fc0293d3e3c151194bbd66d15bff359a3aa463a3671c6766e110"


def test_golden_cut_points_pattern() -> None:
    lens = lengths(text_pattern(), ChunkerParams())
    assert lens == GOLDEN_PATTERN
    assert digest(lens) == "ea1847797be5e58825b957a1ce69fe46f28a4db06a8c63d0f8104990c945d571"


def test_golden_cut_points_mixed() -> None:
    data = mixed()
    lens = lengths(data, ChunkerParams())
    assert sum(lens) == len(data)
    assert digest(lens) == GOLDEN_MIXED_SHA256


def test_default_params_bounds_and_content() -> None:
    p = ChunkerParams()
    assert (p.min_size, p.avg_size, p.max_size) == (64 * KiB, 256 * KiB, 1 * MiB)
    data = mixed()
    chunks = list(chunk_all(data, p))
    assert b"".join(chunks) == data
    assert all(len(c) <= p.max_size for c in chunks)
    assert all(len(c) >= p.min_size for c in chunks[:-1])
    # the mean chunk of random data is near the configured average
    rnd = lengths(seeded_random(), p)
    assert 0.7 * p.avg_size < sum(rnd) / len(rnd) < 1.5 * p.avg_size


def test_shifted_content_dedups() -> None:
    """The point of content-defined chunking: an insertion near the start changes only the
    chunks around it."""
    data = seeded_random(4 * MiB)
    a = set(chunk_all(data, ChunkerParams()))
    b = set(chunk_all(b"inserted!" + data, ChunkerParams()))
    assert len(a & b) >= len(a) - 2


def test_matches_pyfastcdc_whole_buffer() -> None:
    """The streaming chunker cuts exactly where pyfastcdc cuts the whole buffer."""
    data = mixed()
    p = ChunkerParams()
    cdc = pyfastcdc.FastCDC(
        avg_size=p.avg_size - p.min_size, min_size=p.min_size, max_size=p.max_size
    )
    assert lengths(data, p) == [c.length for c in cdc.cut_buf(data)]


# -- streaming == whole buffer -------------------------------------------------------------------


def stream_cut(data: bytes, params: ChunkerParams, sizes: list[int]) -> list[bytes]:
    chunker = StreamChunker(params)
    out: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)] if sizes else len(data)
        i += 1
        out.extend(chunker.feed(data[pos : pos + n]))
        pos += n
    out.extend(chunker.finish())
    return out


@pytest.mark.parametrize("seed", range(4))
def test_streaming_equals_whole_buffer_default_params(seed: int) -> None:
    rng = random.Random(seed)
    data = mixed()
    want = list(chunk_all(data, ChunkerParams()))
    sizes = [rng.choice([1, 7, 4096, 65536, 1 << 20, 3 * MiB + 17]) for _ in range(64)]
    assert stream_cut(data, ChunkerParams(), sizes) == want


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(0, 200 * KiB),
    reads=st.lists(st.integers(1, 40 * KiB), min_size=1, max_size=30),
    repetitive=st.booleans(),
)
def test_streaming_equals_whole_buffer(
    seed: int, size: int, reads: list[int], repetitive: bool
) -> None:
    rng = random.Random(seed)
    if repetitive:
        unit = rng.randbytes(rng.randint(1, 3000))
        data = (unit * (size // len(unit) + 1))[:size]
    else:
        data = rng.randbytes(size)
    want = list(chunk_all(data, SMALL))
    got = stream_cut(data, SMALL, reads)
    assert got == want
    assert b"".join(got) == data
    assert all(len(c) <= SMALL.max_size for c in got)


def test_feed_keeps_at_most_a_bounded_buffer() -> None:
    """Memory is flat in object size: the chunker never holds more than a few max sizes."""
    chunker = StreamChunker(SMALL)
    data = seeded_random(2 * MiB)
    total = 0
    for i in range(0, len(data), 5000):
        total += sum(map(len, chunker.feed(data[i : i + 5000])))
        assert len(chunker._buf) < 2 * SMALL.max_size + 5000
    total += sum(map(len, chunker.finish()))
    assert total == len(data)


def test_finish_on_empty_stream() -> None:
    chunker = StreamChunker(ChunkerParams())
    assert chunker.feed(b"") == []
    assert chunker.finish() == []


# -- parameters ----------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    lo=st.integers(64, 1 * MiB),
    extra=st.integers(256, 4 * MiB),
    hi_extra=st.integers(0, 4 * MiB),
)
def test_params_encode_decode(lo: int, extra: int, hi_extra: int) -> None:
    avg = lo + extra
    hi = min(avg + hi_extra, 16 * MiB)
    try:
        p = ChunkerParams(lo, avg, hi)
    except ValueError:
        return  # a combination the chunker cannot run is refused (see test below)
    raw = p.encode()
    assert raw == f"fastcdc2020:{lo}:{avg}:{hi}".encode()
    assert ChunkerParams.decode(raw) == p
    StreamChunker(p)  # accepted parameters must be usable


def test_params_default_encoding() -> None:
    assert ChunkerParams().encode() == b"fastcdc2020:65536:262144:1048576"


@pytest.mark.parametrize(
    ("lo", "avg", "hi"),
    [
        (0, 256, 1024),
        (63, 4096, 16384),
        (4096, 1024, 16384),  # avg < min
        (1024, 65536, 16384),  # avg > max
        (1024, 4096, 32 * MiB),  # max too large
        (64, 64, 64),  # max below what FastCDC supports
        (64 * KiB, 100 * KiB, 1 * MiB),  # avg too close to min for FastCDC's cut-point skipping
        (2 * MiB, 4 * MiB, 8 * MiB),  # min above FastCDC's bound
    ],
)
def test_params_validation(lo: int, avg: int, hi: int) -> None:
    with pytest.raises(ValueError):
        ChunkerParams(lo, avg, hi)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"fastcdc2020:1:2",
        b"rabin:65536:262144:1048576",
        b"fastcdc2020:a:b:c",
        b"fastcdc2020:65536:262144:1048576:9",
        b"fastcdc2020:4096:1024:16384",
    ],
)
def test_params_decode_rejects(raw: bytes) -> None:
    with pytest.raises(ValueError):
        ChunkerParams.decode(raw)


# -- the index refuses other parameters ----------------------------------------------------------


def test_index_refuses_other_chunker_params(tmp_path: Path) -> None:
    path = tmp_path / "index"
    index = Index(path, SMALL)
    assert index.chunker == SMALL
    index.close()

    with pytest.raises(ChunkerMismatchError):
        Index(path, ChunkerParams())
    with pytest.raises(ChunkerMismatchError):
        Index(path, ChunkerParams(SMALL.min_size, SMALL.avg_size, SMALL.max_size * 2))

    # no params: the stored ones; the same params: fine (and the refused opens left nothing
    # open behind them)
    index = Index(path)
    assert index.chunker == SMALL
    index.close()
    index = Index(path, SMALL)
    assert index.chunker == SMALL
    index.close()


def test_index_created_with_defaults(tmp_path: Path) -> None:
    index = Index(tmp_path / "index")
    assert index.chunker == ChunkerParams()
    store_id = index.store_id
    index.close()
    index = Index(tmp_path / "index", ChunkerParams())
    assert index.store_id == store_id
    index.close()
    with pytest.raises(ChunkerMismatchError):
        Index(tmp_path / "index", SMALL)
