"""dedup.checksums against botocore's own S3 checksum classes, and CRC combination."""

from __future__ import annotations

import base64
import random

import pytest
from botocore import httpchecksum
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.checksums import ALGORITHMS, b64, combine_crc, header_name, new_checksum

BOTOCORE_CLASSES = {
    "CRC32": httpchecksum.CrtCrc32Checksum,
    "CRC32C": httpchecksum.CrtCrc32cChecksum,
    "CRC64NVME": httpchecksum.CrtCrc64NvmeChecksum,
    "SHA1": httpchecksum.Sha1Checksum,
    "SHA256": httpchecksum.Sha256Checksum,
}
CRCS = ("CRC32", "CRC32C", "CRC64NVME")
DIGEST_SIZES = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}

# Published check values: the checksum of b"123456789".
CHECK_VALUES = {
    "CRC32": "cbf43926",
    "CRC32C": "e3069283",
    "CRC64NVME": "ae8b14860a799888",
    "SHA1": "f7c3bc1d808e04732adf679965ccc34ca7ae3441",
    "SHA256": "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
}


def _digest(algorithm: str, data: bytes) -> bytes:
    checksum = new_checksum(algorithm)
    checksum.update(data)
    return checksum.digest()


def _botocore_b64(algorithm: str, data: bytes) -> str:
    checksum = BOTOCORE_CLASSES[algorithm]()
    checksum.update(data)
    return str(checksum.b64digest())


def test_algorithms_cover_botocore_classes() -> None:
    assert set(ALGORITHMS) == set(BOTOCORE_CLASSES)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_check_value(algorithm: str) -> None:
    assert _digest(algorithm, b"123456789").hex() == CHECK_VALUES[algorithm]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("size", [0, 1, 3, 4, 8, 63, 1000, 65_537, 3 * 1024 * 1024 + 5])
def test_matches_botocore(algorithm: str, size: int) -> None:
    data = random.Random(size).randbytes(size)
    digest = _digest(algorithm, data)
    assert len(digest) == DIGEST_SIZES[algorithm]
    assert b64(digest) == _botocore_b64(algorithm, data)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_incremental_updates_and_memoryview(algorithm: str) -> None:
    rng = random.Random(algorithm)
    data = rng.randbytes(200_000)
    checksum = new_checksum(algorithm)
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        step = rng.choice([0, 1, 7, 4096, 50_000])
        checksum.update(view[pos : pos + step])
        pos += step
    assert b64(checksum.digest()) == _botocore_b64(algorithm, data)


def test_new_checksum_is_fresh_each_time() -> None:
    first = new_checksum("CRC32")
    first.update(b"abc")
    assert new_checksum("CRC32").digest() == bytes(4)


@pytest.mark.parametrize("name", ["crc32", "MD5", "", "SHA512", "CRC64"])
def test_unknown_algorithm(name: str) -> None:
    with pytest.raises(ValueError):
        new_checksum(name)
    with pytest.raises(ValueError):
        header_name(name)


def test_header_names() -> None:
    assert [header_name(a) for a in ALGORITHMS] == [
        "x-amz-checksum-crc32",
        "x-amz-checksum-crc32c",
        "x-amz-checksum-crc64nvme",
        "x-amz-checksum-sha1",
        "x-amz-checksum-sha256",
    ]


def test_b64() -> None:
    assert b64(b"") == ""
    assert b64(bytes.fromhex("cbf43926")) == "y/Q5Jg=="
    digest = bytes(range(32))
    assert base64.b64decode(b64(digest)) == digest


@settings(max_examples=300, database=None, deadline=None)
@given(
    algorithm=st.sampled_from(CRCS),
    a=st.binary(max_size=300),
    b=st.binary(max_size=300),
)
def test_combine_crc_property(algorithm: str, a: bytes, b: bytes) -> None:
    combined = combine_crc(algorithm, _digest(algorithm, a), _digest(algorithm, b), len(b))
    assert combined == _digest(algorithm, a + b)


@pytest.mark.parametrize("algorithm", CRCS)
@pytest.mark.parametrize(
    ("len_a", "len_b"),
    [(0, 0), (0, 1), (1, 0), (17, 0), (0, 17), (5, 1_000_003), (1 << 20, (1 << 22) + 9)],
)
def test_combine_crc_random_lengths(algorithm: str, len_a: int, len_b: int) -> None:
    rng = random.Random(len_a * 31 + len_b)
    a, b = rng.randbytes(len_a), rng.randbytes(len_b)
    combined = combine_crc(algorithm, _digest(algorithm, a), _digest(algorithm, b), len_b)
    assert combined == _digest(algorithm, a + b)


@pytest.mark.parametrize("algorithm", CRCS)
def test_combine_crc_many_parts(algorithm: str) -> None:
    """Folding part CRCs left to right, as for a full-object multipart checksum."""
    rng = random.Random(algorithm)
    parts = [rng.randbytes(rng.choice([0, 1, 100, 5000, 70_000])) for _ in range(25)]
    total = _digest(algorithm, b"")
    for part in parts:
        total = combine_crc(algorithm, total, _digest(algorithm, part), len(part))
    assert total == _digest(algorithm, b"".join(parts))
    assert b64(total) == _botocore_b64(algorithm, b"".join(parts))


def test_combine_crc_rejects_bad_arguments() -> None:
    four, eight = bytes(4), bytes(8)
    with pytest.raises(ValueError):
        combine_crc("SHA256", four, four, 1)
    with pytest.raises(ValueError):
        combine_crc("crc32", four, four, 1)
    with pytest.raises(ValueError):
        combine_crc("CRC32", eight, four, 1)
    with pytest.raises(ValueError):
        combine_crc("CRC64NVME", eight, four, 1)
    with pytest.raises(ValueError):
        combine_crc("CRC32C", four, four, -1)
