"""Keeping the server's resident memory close to what it uses (glibc only; a no-op
elsewhere).

Body blocks and chunks are short-lived 64 KiB-1 MiB buffers allocated from many threads
(hashing, chunk writes, reads). glibc gives each thread its own arena and keeps freed
memory in them, so after a burst the process stays at its high-water mark. Two arenas
instead of 8 x cores, and a malloc_trim when no upload holds memory, bring RSS back down
(measured by benchmarks/bench_memory.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

M_ARENA_MAX = -8  # glibc mallopt parameter


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None  # not glibc
    return libc


def limit_arenas(arenas: int = 2) -> bool:
    """Call before the worker threads start. Returns whether it took effect."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas) == 1)


def trim() -> bool:
    """Give free heap memory back to the OS (blocking for a few ms: run it in a thread)."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
