"""Placement: weighted rendezvous hashing of chunk ids over storage nodes.

Every node gets a score for a chunk, ``-weight / ln(u)`` where ``u`` is a hash of (node id,
chunk id) mapped into the open interval (0, 1) and ``weight`` is the node's capacity; the
nodes sorted by score (highest first) are the chunk's *rendezvous order*. The first R of the
eligible nodes hold it. Adding or removing a node only moves the chunks whose order it enters
or leaves, in proportion to its weight.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

import blake3

__all__ = ["InsufficientNodes", "Placeable", "choose", "rank", "score"]

_MANTISSA = 1 << 53


class InsufficientNodes(Exception):
    """Fewer nodes can take a chunk than the replication factor asks for (the S3 layer
    answers 503 SlowDown: nothing is ever stored under-replicated)."""


class Placeable(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def weight(self) -> int: ...


N = TypeVar("N", bound=Placeable)


def _unit(node_id: str, chunk_id: bytes) -> float:
    """A uniform number in the open interval (0, 1) from (node id, chunk id)."""
    digest = blake3.blake3(node_id.encode() + b"\0" + chunk_id).digest(length=8)
    # 53 bits, + 0.5: exactly representable, never 0.0 and never 1.0
    return ((int.from_bytes(digest, "big") >> 11) + 0.5) / _MANTISSA


def score(node_id: str, weight: int, chunk_id: bytes) -> float:
    return -max(weight, 1) / math.log(_unit(node_id, chunk_id))


def rank(nodes: Iterable[N], chunk_id: bytes) -> list[N]:
    """``nodes`` in rendezvous order for ``chunk_id`` (best first; ties broken by id)."""
    return sorted(nodes, key=lambda n: (-score(n.id, n.weight, chunk_id), n.id))


def choose(nodes: Sequence[N], chunk_id: bytes, replicas: int) -> list[N]:
    """The ``replicas`` nodes that hold ``chunk_id``; raises :class:`InsufficientNodes`."""
    if len(nodes) < replicas:
        raise InsufficientNodes(f"{len(nodes)} nodes can take chunks; {replicas} replicas needed")
    return rank(nodes, chunk_id)[:replicas]
