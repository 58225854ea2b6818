"""The node's wire protocol: constants and framing shared by the node and its clients.

Every request carries the cluster secret in :data:`SECRET_HEADER`. Chunk ids travel as 64
lowercase hex digits in paths and as 32 raw bytes in batch bodies. A batch frame is
``32-byte id · u32 big-endian length · data``; in a ``/batch/get`` response the lengths
:data:`MISSING` and :data:`CORRUPT` (with no data) mean the node does not hold the chunk or
holds a damaged copy. This module imports nothing from ``gateway`` or aiohttp.
"""

from __future__ import annotations

import re
import struct

__all__ = [
    "CORRUPT",
    "FRAME_HEADER",
    "HEARTBEAT_PATH",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_IDS",
    "MAX_CHUNK_SIZE",
    "MAX_LIST_LIMIT",
    "MAX_SCRUB_LIMIT",
    "MISSING",
    "SECRET_HEADER",
    "frame_header",
    "parse_hex_id",
]

SECRET_HEADER = "x-s3dedup-cluster-secret"
HEARTBEAT_PATH = "/_s3dedup/cluster/heartbeat"

MAX_CHUNK_SIZE = 16 * 1024 * 1024  # one chunk (the chunker's max is 1 MiB by default)
MAX_BATCH_BYTES = 256 * 1024 * 1024  # one /batch/put body
MAX_BATCH_IDS = 100_000  # ids in one /batch/get or /batch/delete body (3.2 MB)
MAX_LIST_LIMIT = 10_000  # ids in one page of GET /chunks
MAX_SCRUB_LIMIT = 10_000  # chunks re-hashed by one POST /scrub

FRAME_HEADER = struct.Struct(">32sI")
MISSING = 0xFFFFFFFF
CORRUPT = 0xFFFFFFFE

_HEX_ID = re.compile(r"[0-9a-f]{64}")


def parse_hex_id(text: str) -> bytes | None:
    """The 32-byte id named by exactly 64 lowercase hex digits, else None."""
    if _HEX_ID.fullmatch(text) is None:
        return None
    return bytes.fromhex(text)


def frame_header(chunk_id: bytes, length: int) -> bytes:
    return FRAME_HEADER.pack(chunk_id, length)
