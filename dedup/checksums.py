"""The checksums S3 speaks (``x-amz-checksum-*``), and CRC combination for multipart uploads.

Digests are the big-endian bytes S3 puts, base64-encoded, in its headers: 4 bytes for CRC32 and
CRC32C, 8 for CRC64NVME, 20 for SHA1, 32 for SHA256.

GIL: all of these release the GIL on large buffers, so they can run in a thread pool in
parallel with the event loop. zlib.crc32 and hashlib do (for buffers over a few KiB); the
crc32c package does. For awscrt.checksums this was measured (awscrt 0.38.1, 256 MiB buffer):
while crc32, crc32c or crc64nvme ran in a thread, the main thread's busy loop kept ~23 M
iterations/s, the same as during zlib.crc32 or crc32c.crc32c, against ~0.6 M/s during a
GIL-holding ``bytes.count`` -- so awscrt's CRC functions release the GIL too.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Final, Protocol

import crc32c
from awscrt import checksums as crt_checksums

__all__ = [
    "ALGORITHMS",
    "Checksum",
    "b64",
    "combine_crc",
    "header_name",
    "new_checksum",
]

ALGORITHMS: tuple[str, ...] = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")


class Checksum(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    __slots__ = ("_crc",)

    def __init__(self) -> None:
        self._crc = 0

    def update(self, data: bytes | memoryview, /) -> None:
        self._crc = zlib.crc32(data, self._crc)

    def digest(self) -> bytes:
        return self._crc.to_bytes(4, "big")


class _Crc32C:
    __slots__ = ("_crc",)

    def __init__(self) -> None:
        self._crc = 0

    def update(self, data: bytes | memoryview, /) -> None:
        self._crc = int(crc32c.crc32c(data, self._crc))

    def digest(self) -> bytes:
        return self._crc.to_bytes(4, "big")


class _Crc64Nvme:
    __slots__ = ("_crc",)

    def __init__(self) -> None:
        self._crc = 0

    def update(self, data: bytes | memoryview, /) -> None:
        self._crc = int(crt_checksums.crc64nvme(data, self._crc)) & 0xFFFF_FFFF_FFFF_FFFF

    def digest(self) -> bytes:
        return self._crc.to_bytes(8, "big")


def new_checksum(algorithm: str) -> Checksum:
    """A fresh checksum for one of :data:`ALGORITHMS` (upper-case, exactly as S3 names them)."""
    if algorithm == "CRC32":
        return _Crc32()
    if algorithm == "CRC32C":
        return _Crc32C()
    if algorithm == "CRC64NVME":
        return _Crc64Nvme()
    if algorithm == "SHA1":
        return hashlib.sha1()
    if algorithm == "SHA256":
        return hashlib.sha256()
    raise ValueError(f"unknown checksum algorithm {algorithm!r}")


def b64(digest: bytes) -> str:
    """A digest as S3 writes it in headers and XML: standard base64 with padding."""
    return base64.b64encode(digest).decode("ascii")


def header_name(algorithm: str) -> str:
    """The header carrying this algorithm's checksum, e.g. ``x-amz-checksum-crc32``."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown checksum algorithm {algorithm!r}")
    return "x-amz-checksum-" + algorithm.lower()


# -- CRC combination --------------------------------------------------------------------------

# algorithm -> (width in bits, reflected polynomial). All three CRCs are reflected, with an
# all-ones initial value and final xor, so that
#     crc(A + B) = Z^len(B) (crc(A)) xor crc(B)
# where Z^n is the linear map "feed n zero bytes through the raw CRC register".
_CRC_PARAMS: Final = {
    "CRC32": (32, 0xEDB88320),
    "CRC32C": (32, 0x82F63B78),
    "CRC64NVME": (64, 0x9A6C9329AC4BC9B5),
}


def _gf2_times(matrix: list[int], vector: int) -> int:
    """Matrix (one int per column) times vector, over GF(2)."""
    total = 0
    column = 0
    while vector:
        if vector & 1:
            total ^= matrix[column]
        vector >>= 1
        column += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, column) for column in matrix]


def _shift_zeros(crc: int, nbytes: int, width: int, poly: int) -> int:
    """Apply Z^nbytes to a raw CRC register value (zlib's crc32_combine, generalised)."""
    if nbytes == 0:
        return crc
    # The operator for one zero bit: shift right, xor in the polynomial if bit 0 was set.
    odd = [poly] + [1 << (n - 1) for n in range(1, width)]
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four zero bits
    while True:
        even = _gf2_square(odd)  # first pass: one zero byte; then 4, 16, ... bytes
        if nbytes & 1:
            crc = _gf2_times(even, crc)
        nbytes >>= 1
        if nbytes == 0:
            return crc
        odd = _gf2_square(even)
        if nbytes & 1:
            crc = _gf2_times(odd, crc)
        nbytes >>= 1
        if nbytes == 0:
            return crc


def combine_crc(algorithm: str, crc_a: bytes, crc_b: bytes, len_b: int) -> bytes:
    """The CRC of ``A + B`` from ``crc(A)``, ``crc(B)`` and ``len(B)``.

    For CRC32, CRC32C and CRC64NVME; digests are big-endian bytes as from :func:`new_checksum`
    (4, 4 and 8 bytes). Pure Python, O(width^2 log len_b): meant for once per part.
    """
    try:
        width, poly = _CRC_PARAMS[algorithm]
    except KeyError:
        raise ValueError(f"not a combinable CRC algorithm: {algorithm!r}") from None
    size = width // 8
    if len(crc_a) != size or len(crc_b) != size:
        raise ValueError(f"{algorithm} digests are {size} bytes")
    if len_b < 0:
        raise ValueError(f"len_b must be >= 0, got {len_b}")
    shifted = _shift_zeros(int.from_bytes(crc_a, "big"), len_b, width, poly)
    return (shifted ^ int.from_bytes(crc_b, "big")).to_bytes(size, "big")
