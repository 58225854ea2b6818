"""Cluster membership: the storage nodes a gateway knows, from their heartbeats.

A node POSTs ``/_s3dedup/cluster/heartbeat`` (see docs/design.md, "Storage node protocol")
every few seconds. The gateway keeps, in memory, ``{id, url, capacity, used, count,
last_seen}`` per node, and in the index's ``nodes`` database the node table (url, state,
capacity), written once per change of url or state, never once per heartbeat. A node not heard
from for ``node_timeout`` seconds is marked down. Every node has one :class:`NodeClient`; all
of them share one pooled session.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from dedup.index import Index, Txn
from gateway.admin import _authenticate
from gateway.cluster.client import NodeClient, make_session
from storage_node.protocol import HEARTBEAT_PATH, SECRET_HEADER

__all__ = ["MEMBERSHIP", "Member", "Membership", "add_routes"]

log = structlog.get_logger("s3dedup.cluster")

UP = "up"
DOWN = "down"
REMOVED = "removed"  # in the node table only: a removed node's id is never let back in
_NODE_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Member:
    id: str
    url: str
    capacity: int
    client: NodeClient
    num: int = 0  # the node's small number, as chunk records name their replicas (never reused)
    used: int = 0
    count: int = 0
    last_seen: float = field(default_factory=time.monotonic)  # monotonic seconds
    state: str = UP
    draining: bool = False  # set by the drain command (next step); never by a heartbeat

    @property
    def weight(self) -> int:
        return self.capacity

    @property
    def up(self) -> bool:
        return self.state == UP

    @property
    def saturated(self) -> bool:
        return self.used >= self.capacity

    @property
    def writable(self) -> bool:
        return self.up and not self.draining and not self.saturated

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "num": self.num,
            "url": self.url,
            "state": self.state,
            "draining": self.draining,
            "capacity": self.capacity,
            "used": self.used,
            "count": self.count,
            "seen_seconds_ago": round(now - self.last_seen, 3),
        }


class Membership:
    """The node table. :meth:`start` (on the running loop, with the index) before use."""

    def __init__(self, secret: str, node_timeout: float = 10.0, io_timeout: float = 30.0) -> None:
        self.secret = secret
        self.node_timeout = node_timeout
        self.io_timeout = io_timeout
        self.members: dict[str, Member] = {}
        self.by_num: dict[int, Member] = {}
        self.removed: set[str] = set()  # node ids removed by `admin remove` (refused from now on)
        self._index: Index | None = None
        self._session: aiohttp.ClientSession | None = None
        self._monitor: asyncio.Task[None] | None = None
        self.writes = 0  # node-table writes (observability and tests)
        self._next_num = 1
        # called (on the loop) when a new node joins, and when a down node comes back
        self.on_join: list[Callable[[Member], None]] = []
        self.on_return: list[Callable[[Member], None]] = []

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, index: Index) -> None:
        """Load the node table. Nodes known from it count as up for ``node_timeout`` seconds
        (a restarted gateway serves reads at once); one that does not heartbeat by then is
        marked down."""
        self._session = make_session(read_timeout=self.io_timeout)

        def load(txn: Txn) -> list[tuple[str, dict[str, Any]]]:
            return [(k.decode(), json.loads(v)) for k, v in txn.prefix("nodes", b"")]

        with index.read() as txn:
            rows = load(txn)
        for node_id, row in rows:
            if row.get("state") == REMOVED:
                self.removed.add(node_id)
                continue
            member = Member(
                id=node_id,
                url=str(row["url"]),
                capacity=int(row.get("capacity", 1)),
                client=NodeClient(str(row["url"]), self.secret, self._session),
                used=int(row.get("used", 0)),
                count=int(row.get("count", 0)),
                state=str(row.get("state", UP)),
                draining=bool(row.get("draining", False)),
                num=int(row["num"]),
            )
            self.members[node_id] = member
            self.by_num[member.num] = member
        self._next_num = 1 + max((int(row["num"]) for _, row in rows), default=0)
        self._index = index
        self._monitor = asyncio.create_task(self._watch(), name="node-monitor")
        log.info("cluster membership loaded", nodes=len(self.members))

    async def close(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        for member in self.members.values():
            await member.client.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- views ----------------------------------------------------------------------------

    def up(self) -> list[Member]:
        return [m for m in self.members.values() if m.up]

    def writable(self) -> list[Member]:
        return [m for m in self.members.values() if m.writable]

    @property
    def index(self) -> Index:
        if self._index is None:
            raise RuntimeError("membership not started")
        return self._index

    def find(self, node: str) -> Member | None:
        """A member by id, a unique id prefix, number or url."""
        for m in self.members.values():
            if node in (m.id, m.url, str(m.num)):
                return m
        found = [m for m in self.members.values() if m.id.startswith(node)]
        return found[0] if len(found) == 1 else None

    # -- heartbeats -----------------------------------------------------------------------

    async def heartbeat(self, node_id: str, url: str, capacity: int, used: int, count: int) -> None:
        if self._index is None or self._session is None:
            raise RuntimeError("membership not started")
        if node_id in self.removed:
            raise NodeRemoved(node_id)
        member = self.members.get(node_id)
        changed = member is None or member.url != url or not member.up
        if member is None:
            client = NodeClient(url, self.secret, self._session)
            member = Member(node_id, url, capacity, client, num=self._next_num)
            self._next_num += 1
            self.members[node_id] = member
            self.by_num[member.num] = member
            log.info("node joined", node=node_id, num=member.num, url=url, capacity=capacity)
            for listener in self.on_join:
                listener(member)
        elif member.url != url:
            log.info("node moved", node=node_id, old=member.url, url=url)
            old = member.client
            member.url, member.client = url, NodeClient(url, self.secret, self._session)
            await old.close()
        elif not member.up:
            log.info("node up again", node=node_id, url=url)
            for listener in self.on_return:
                listener(member)
        member.capacity, member.used, member.count = capacity, used, count
        member.last_seen = time.monotonic()
        member.state = UP
        if changed:
            await self._persist(member)

    async def _persist(self, member: Member) -> None:
        assert self._index is not None
        row = json.dumps(
            {
                "url": member.url,
                "state": member.state,
                "capacity": member.capacity,
                "used": member.used,
                "count": member.count,
                "draining": member.draining,
                "num": member.num,
            }
        ).encode()
        key = member.id.encode()
        await self._index.write(lambda txn: txn.put("nodes", key, row))
        self.writes += 1

    async def check(self) -> None:
        """Mark down every up node not heard from for ``node_timeout`` seconds."""
        now = time.monotonic()
        for member in list(self.members.values()):
            if member.up and now - member.last_seen > self.node_timeout:
                member.state = DOWN
                log.warning("node down", node=member.id, url=member.url)
                await self._persist(member)

    async def _watch(self) -> None:
        interval = min(1.0, self.node_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check()
            except Exception:  # the monitor must outlive one failed write
                log.exception("node monitor")

    async def set_draining(self, member: Member, draining: bool) -> None:
        member.draining = draining
        await self._persist(member)

    async def remove(self, member: Member) -> None:
        """Forget a node for good: its heartbeats are refused from now on."""
        self.members.pop(member.id, None)
        self.by_num.pop(member.num, None)
        self.removed.add(member.id)
        row = json.dumps({"url": member.url, "state": REMOVED, "num": member.num}).encode()
        key = member.id.encode()
        await self.index.write(lambda txn: txn.put("nodes", key, row))
        self.writes += 1
        await member.client.close()


class NodeRemoved(Exception):
    """A heartbeat from a node that was removed from the cluster."""


MEMBERSHIP = web.AppKey("membership", Membership)


def _int(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise web.HTTPBadRequest(text=f"{name} must be an integer >= 0")
    return value


async def heartbeat(request: web.Request) -> web.Response:
    membership = request.app[MEMBERSHIP]
    given = request.headers.get(SECRET_HEADER)
    if given is None:
        return web.Response(status=401, text="cluster secret required")
    if not hmac.compare_digest(given.encode(), membership.secret.encode()):
        return web.Response(status=403, text="wrong cluster secret")
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return web.Response(status=400, text="body must be JSON")
    if not isinstance(body, dict):
        return web.Response(status=400, text="body must be a JSON object")
    node_id, url = body.get("id"), body.get("url")
    if not isinstance(node_id, str) or _NODE_ID.fullmatch(node_id) is None:
        return web.Response(status=400, text="id must be 32 lowercase hex digits")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return web.Response(status=400, text="url must be an http:// or https:// URL")
    try:
        capacity, used, count = (_int(body, n) for n in ("capacity", "used", "count"))
    except web.HTTPBadRequest as exc:
        return web.Response(status=400, text=exc.text)
    try:
        await membership.heartbeat(node_id, url, max(capacity, 1), used, count)
    except RuntimeError:
        return web.Response(status=503, text="the gateway is starting")
    except NodeRemoved:
        return web.Response(status=410, text="this node was removed from the cluster")
    return web.json_response({"ok": True})


async def list_nodes(request: web.Request) -> web.Response:
    """The node table as the gateway sees it (SigV4-authenticated, like the admin API)."""
    _authenticate(request)
    now = time.monotonic()
    members = sorted(request.app[MEMBERSHIP].members.values(), key=lambda m: m.id)
    return web.json_response({"nodes": [m.as_dict(now) for m in members]})


def add_routes(app: web.Application) -> None:
    app.router.add_post(HEARTBEAT_PATH, heartbeat)
    app.router.add_get("/_s3dedup/cluster/nodes", list_nodes)
