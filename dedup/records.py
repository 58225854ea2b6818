"""Compact binary records stored in the LMDB index (layouts documented in docs/design.md).

All integers are little-endian unless a section says otherwise. Every record starts with a
one-byte format version so that later versions can be read next to older ones.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import accumulate

HASH_LEN = 32


class ChunkState(IntEnum):
    PENDING = 0  # referenced, not yet known to be durable in the store
    STORED = 1  # durable in the store
    DELETING = 2  # GC is deleting it; writers wait, then send it anew


_CHUNK = struct.Struct("<BQIBQ")  # version, refcount, size, state, zero_since_ms


@dataclass
class ChunkRecord:
    refcount: int
    size: int
    state: ChunkState
    zero_since_ms: int = 0  # when refcount last became 0 (0 while referenced)
    replicas: tuple[int, ...] = ()  # node ids (cluster mode); empty for the embedded store

    def encode(self) -> bytes:
        head = _CHUNK.pack(1, self.refcount, self.size, self.state, self.zero_since_ms)
        return head + struct.pack(f"<B{len(self.replicas)}I", len(self.replicas), *self.replicas)

    @classmethod
    def decode(cls, raw: bytes) -> ChunkRecord:
        _v, refcount, size, state, zero = _CHUNK.unpack_from(raw)
        (n,) = struct.unpack_from("<B", raw, _CHUNK.size)
        replicas = struct.unpack_from(f"<{n}I", raw, _CHUNK.size + 1)
        return cls(refcount, size, ChunkState(state), zero, tuple(replicas))


class _Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def u8(self, v: int) -> None:
        self.parts.append(struct.pack("<B", v))

    def u32(self, v: int) -> None:
        self.parts.append(struct.pack("<I", v))

    def u64(self, v: int) -> None:
        self.parts.append(struct.pack("<Q", v))

    def blob(self, b: bytes) -> None:
        self.u32(len(b))
        self.parts.append(b)

    def text(self, s: str) -> None:
        self.blob(s.encode())

    def strings(self, d: dict[str, str]) -> None:
        self.u32(len(d))
        for k, v in d.items():
            self.text(k)
            self.text(v)

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_CHUNK_ENTRY = struct.Struct(f"<{HASH_LEN}sI")  # chunk id, size (ObjectRecord.chunks)
# An object record's head: version, size, mtime_ms, etag length (listings read only this)
OBJECT_HEAD = struct.Struct("<BQQI")


class _Reader:
    """Sequential reads of a record (precompiled structs, no intermediate copies: a GET
    decodes one record per request)."""

    __slots__ = ("pos", "raw")

    def __init__(self, raw: bytes | memoryview) -> None:
        self.raw = memoryview(raw)
        self.pos = 0

    def u8(self) -> int:
        v = self.raw[self.pos]
        self.pos += 1
        return int(v)

    def u32(self) -> int:
        (v,) = _U32.unpack_from(self.raw, self.pos)
        self.pos += 4
        return int(v)

    def u64(self) -> int:
        (v,) = _U64.unpack_from(self.raw, self.pos)
        self.pos += 8
        return int(v)

    def _span(self) -> memoryview:
        n = self.u32()
        p = self.pos
        self.pos = p + n
        return self.raw[p : p + n]

    def blob(self) -> bytes:
        return self._span().tobytes()

    def text(self) -> str:
        return str(self._span(), "utf-8")

    def strings(self) -> dict[str, str]:
        return {self.text(): self.text() for _ in range(self.u32())}


@dataclass
class ObjectRecord:
    """Everything known about one object version. ``chunks`` are (id, size) in order."""

    size: int
    etag: str  # without quotes: hex md5, or hex md5 + "-N" for multipart
    mtime_ms: int
    headers: dict[str, str] = field(default_factory=dict)  # stored content headers (lower-case)
    meta: dict[str, str] = field(default_factory=dict)  # x-amz-meta-* without the prefix
    checksums: dict[str, str] = field(default_factory=dict)  # "CRC32" -> base64 (may end "-N")
    checksum_type: str = ""  # "", "FULL_OBJECT" or "COMPOSITE"
    inline: bytes | None = None  # small objects live here and have no chunks
    chunks: list[tuple[bytes, int]] = field(default_factory=list)
    part_sizes: list[int] = field(default_factory=list)  # multipart: size of each part
    tags: dict[str, str] = field(default_factory=dict)  # the object's tag set (S3 tagging)

    def encode(self) -> bytes:
        w = _Writer()
        w.u8(2 if self.tags else 1)  # version 2 = version 1 + the tag set at the end
        w.u64(self.size)
        w.u64(self.mtime_ms)
        w.text(self.etag)
        for d in (self.headers, self.meta, self.checksums):
            w.strings(d)
        w.text(self.checksum_type)
        if self.inline is None:
            w.u8(0)
        else:
            w.u8(1)
            w.blob(self.inline)
        w.u32(len(self.chunks))
        w.parts.extend(h + struct.pack("<I", n) for h, n in self.chunks)
        w.u32(len(self.part_sizes))
        w.parts.append(struct.pack(f"<{len(self.part_sizes)}Q", *self.part_sizes))
        if self.tags:
            w.strings(self.tags)
        return w.getvalue()

    @classmethod
    def decode(cls, raw: bytes | memoryview) -> ObjectRecord:
        r = _Reader(raw)
        version, size, mtime, n = OBJECT_HEAD.unpack_from(r.raw)
        if version not in (1, 2):
            raise ValueError(f"unknown object record version {version}")
        r.pos = OBJECT_HEAD.size + n
        etag = str(r.raw[OBJECT_HEAD.size : r.pos], "utf-8")
        dicts = [r.strings() for _ in range(3)]
        checksum_type = r.text()
        inline = r.blob() if r.u8() else None
        n = r.u32()
        end = r.pos + n * _CHUNK_ENTRY.size
        chunks: list[tuple[bytes, int]] = list(_CHUNK_ENTRY.iter_unpack(r.raw[r.pos : end]))
        r.pos = end
        n = r.u32()
        part_sizes = list(struct.unpack_from(f"<{n}Q", r.raw, r.pos))
        r.pos += 8 * n
        tags = r.strings() if version == 2 else {}
        return cls(
            size=size,
            etag=etag,
            mtime_ms=mtime,
            headers=dicts[0],
            meta=dicts[1],
            checksums=dicts[2],
            checksum_type=checksum_type,
            inline=inline,
            chunks=chunks,
            part_sizes=part_sizes,
            tags=tags,
        )

    def chunk_offsets(self) -> list[int]:
        """Start offset of each chunk (and the total size as the last element)."""
        return [0, *accumulate(n for _, n in self.chunks)]

    def chunk_span(self, start: int, end: int) -> tuple[int, int, int]:
        """Chunks covering bytes [start, end): (first index, last index + 1, first's offset)."""
        offsets = self.chunk_offsets()
        first = bisect_right(offsets, start) - 1
        last = bisect_right(offsets, end - 1)
        return first, min(last, len(self.chunks)), offsets[first]


@dataclass
class BucketRecord:
    created_ms: int
    owner: str
    tags: dict[str, str] = field(default_factory=dict)  # the bucket's tag set
    # bucket configurations by name ("cors", ...): each the JSON of its checked document
    configs: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        w = _Writer()
        extended = bool(self.tags or self.configs)
        w.u8(2 if extended else 1)  # version 2 = version 1 + tags + configurations
        w.u64(self.created_ms)
        w.text(self.owner)
        if extended:
            w.strings(self.tags)
            w.strings(self.configs)
        return w.getvalue()

    @classmethod
    def decode(cls, raw: bytes) -> BucketRecord:
        r = _Reader(raw)
        version = r.u8()
        if version not in (1, 2):
            raise ValueError(f"unknown bucket record version {version}")
        created, owner = r.u64(), r.text()
        if version == 1:
            return cls(created, owner)
        return cls(created, owner, r.strings(), r.strings())
