"""Cluster mode (`s3dedup gateway` + `s3dedup node`): membership, placement, replication.

The end-to-end test runs real processes on loopback ports: one gateway, three nodes, R=2.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dedup.index import Index
from gateway import admin_client
from gateway.cluster.membership import Membership
from gateway.cluster.placement import InsufficientNodes, choose, rank
from storage_node.protocol import HEARTBEAT_PATH, SECRET_HEADER
from tests.conftest import ACCESS_KEY, SECRET_KEY, free_port, make_client, server_env
from tests.test_storage_node import NodeProcess

SECRET = "cluster-test-secret"


# -- placement ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _N:
    id: str
    weight: int


def test_rendezvous_is_deterministic_weighted_and_stable() -> None:
    rng = random.Random(7)
    nodes = [_N("a" * 32, 100), _N("b" * 32, 100), _N("c" * 32, 200)]
    ids = [rng.randbytes(32) for _ in range(6000)]
    firsts = collections.Counter(rank(nodes, i)[0].id for i in ids)
    # weight 200 is first about twice as often as a weight-100 node (expected 3000 / 1500)
    assert 2700 < firsts["c" * 32] < 3300
    assert all(rank(nodes, i) == rank(list(reversed(nodes)), i) for i in ids[:100])
    # adding a node only moves chunks onto the new node
    more = [*nodes, _N("d" * 32, 100)]
    for i in ids[:1000]:
        before, after = choose(nodes, i, 2), choose(more, i, 2)
        assert [n for n in after if n.id != "d" * 32] == [n for n in before if n in after]
    with pytest.raises(InsufficientNodes):
        choose(nodes[:1], ids[0], 2)


# -- membership (in process) ----------------------------------------------------------------


async def test_membership_writes_only_on_change(tmp_path: Path) -> None:
    index = Index(tmp_path / "index")
    membership = Membership(SECRET, node_timeout=0.2)
    try:
        await membership.start(index)
        for used in range(5):
            await membership.heartbeat("1" * 32, "http://127.0.0.1:1", 1000, used, used)
        assert membership.writes == 1  # joined; heartbeats alone write nothing
        assert [m.used for m in membership.up()] == [4]
        await asyncio.sleep(0.3)
        await membership.check()
        assert membership.up() == [] and membership.writes == 2  # marked down
        await membership.heartbeat("1" * 32, "http://127.0.0.1:2", 1000, 0, 0)
        assert membership.writes == 3  # up again, at a new url
        await membership.heartbeat("1" * 32, "http://127.0.0.1:2", 1000, 0, 0)
        assert membership.writes == 3
    finally:
        await membership.close()
    again = Membership(SECRET)
    try:
        await again.start(index)  # the table survives a restart
        assert [(m.id, m.url) for m in again.up()] == [("1" * 32, "http://127.0.0.1:2")]
    finally:
        await again.close()
        index.close()


# -- end to end: real processes -------------------------------------------------------------


@dataclass
class Gateway:
    data: Path
    log: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    extra: tuple[str, ...] = ()

    def start(self, replicas: int, timeout: float = 30) -> Gateway:
        cmd = [
            sys.executable, "-m", "gateway.cli", "gateway", "--data", str(self.data),
            "--listen", f"127.0.0.1:{self.port}", "--cluster-secret", SECRET,
            "--replicas", str(replicas), "--node-timeout", "1.5", *self.extra,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=server_env()
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.endpoint + "/_s3dedup/health", timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("gateway did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)

    def nodes(self) -> dict[str, dict[str, Any]]:
        answer = asyncio.run(
            admin_client.call(
                "GET", self.endpoint, "/_s3dedup/cluster/nodes", ACCESS_KEY, SECRET_KEY
            )
        )
        return {n["id"]: n for n in answer["nodes"]}

    def wait_nodes(self, up: int, timeout: float = 20) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            nodes = self.nodes()
            if sum(n["state"] == "up" for n in nodes.values()) == up:
                return nodes
            if time.monotonic() > deadline:
                raise AssertionError(f"wanted {up} nodes up, gateway sees {nodes}")
            time.sleep(0.1)

    def fsck(self, *args: str) -> dict[str, Any]:
        out = self.admin("fsck", "--json", *args)
        lines = out.stdout.strip().splitlines()
        report: dict[str, Any] = json.loads(lines[-1])
        report["problems"] = lines[:-1]
        assert (out.returncode == 0) == report["ok"], out.stdout + out.stderr
        return report

    def admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", "admin", *args, "--endpoint", self.endpoint],
            env=server_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )


def _node_ids(node: NodeProcess) -> set[str]:
    req = urllib.request.Request(
        node.url + "/chunks?limit=10000", headers={SECRET_HEADER: node.secret}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return set(json.loads(resp.read())["ids"])


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.1)


def chunk_file(node: NodeProcess, chunk_id: str) -> Path:
    found = [p for p in (node.data / "store").rglob(chunk_id) if p.is_file()]
    assert len(found) == 1, found
    return found[0]


def add_node(tmp_path: Path, gateway: Gateway, n: int, *extra: str) -> NodeProcess:
    node = NodeProcess(
        data=tmp_path / f"node{n}",
        log=tmp_path / f"node{n}.log",
        gateway=gateway.endpoint,
        extra=("--heartbeat", "0.5", *extra),
    )
    node.secret = SECRET
    return node.start()


@contextlib.contextmanager
def running_cluster(
    tmp_path: Path, *gateway_args: str, node_args: tuple[str, ...] = ()
) -> Iterator[tuple[Gateway, list[NodeProcess]]]:
    """A gateway (R=2) and three nodes; ``gateway_args`` are extra flags of the gateway."""
    gateway = Gateway(tmp_path / "gw", tmp_path / "gateway.log", free_port(), extra=gateway_args)
    nodes: list[NodeProcess] = []
    try:
        gateway.start(replicas=2)
        for n in range(3):
            nodes.append(add_node(tmp_path, gateway, n, *node_args))
        gateway.wait_nodes(3)
        yield gateway, nodes
    finally:
        for node in nodes:
            if node.proc is not None:
                node.stop()
        gateway.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Gateway, list[NodeProcess]]]:
    with running_cluster(tmp_path, "--scrub-rate", "0") as made:
        yield made


def test_heartbeat_needs_the_cluster_secret(cluster: tuple[Gateway, list[NodeProcess]]) -> None:
    gateway, _ = cluster
    body = json.dumps(
        {"id": "f" * 32, "url": "http://127.0.0.1:1", "capacity": 1, "used": 0, "count": 0}
    ).encode()
    for headers, status in (({}, 401), ({SECRET_HEADER: "wrong"}, 403)):
        req = urllib.request.Request(
            gateway.endpoint + HEARTBEAT_PATH, data=body, headers=headers, method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code == status
        err.value.close()
    assert "f" * 32 not in gateway.nodes()


def test_replicated_objects_survive_a_node_loss(
    cluster: tuple[Gateway, list[NodeProcess]],
) -> None:
    gateway, nodes = cluster
    seen = gateway.wait_nodes(3)
    assert {n["url"] for n in seen.values()} == {n.url for n in nodes}

    rng = random.Random(4)
    s3 = make_client(gateway.endpoint)
    s3.create_bucket(Bucket="bkt")
    objects = {
        "small": rng.randbytes(100),  # inline in the index
        "one-chunk": rng.randbytes(50_000),
        "multi-chunk": rng.randbytes(3 * 1024 * 1024),
    }
    for key, body in objects.items():
        s3.put_object(Bucket="bkt", Key=key, Body=body)
    parts = [rng.randbytes(5 * 1024 * 1024), rng.randbytes(1024 * 1024 + 7)]
    upload = s3.create_multipart_upload(Bucket="bkt", Key="multipart")["UploadId"]
    etags = [
        s3.upload_part(Bucket="bkt", Key="multipart", UploadId=upload, PartNumber=n, Body=p)["ETag"]
        for n, p in enumerate(parts, 1)
    ]
    s3.complete_multipart_upload(
        Bucket="bkt",
        Key="multipart",
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(etags, 1)]},
    )
    objects["multipart"] = b"".join(parts)

    # every chunk is on exactly R=2 nodes, and the nodes hold only chunks the index knows
    holders = collections.Counter(i for node in nodes for i in _node_ids(node))
    assert holders and set(holders.values()) == {2}, holders
    stats = json.loads(gateway.admin("stats", "--json").stdout)
    assert stats["chunks"] == len(holders) > 10
    # ... and the index records exactly those copies
    report = gateway.fsck()
    assert report["ok"] and report["placed_copies"] == 2 * len(holders), report
    assert report["stray_copies"] == 0

    _node_ids_at_kill = _node_ids(nodes[0])
    nodes[0].proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    nodes[0].proc.wait()  # type: ignore[union-attr]
    nodes[0].proc = None
    # at once (the gateway still thinks it is up: reads fall back) and once it is marked down
    for _ in range(2):
        for key, body in objects.items():
            assert s3.get_object(Bucket="bkt", Key=key)["Body"].read() == body, key
        gateway.wait_nodes(2)

    # the index knows which chunks are down to one live copy (repair_delay is 300 s here)
    report = gateway.fsck()
    assert not report["ok"]
    assert report["problems"] and all(
        p.endswith(": 1 live copies of 2") for p in report["problems"]
    ), report["problems"]
    lost_copies = sum(i in _node_ids_at_kill for i in holders)
    assert len(report["problems"]) == lost_copies

    nodes[1].stop()
    gateway.wait_nodes(1)
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket="bkt", Key="new", Body=os.urandom(100_000))
    assert err.value.response["Error"]["Code"] == "SlowDown"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    with pytest.raises(ClientError):
        s3.head_object(Bucket="bkt", Key="new")  # nothing committed
    s3.close()


def test_a_lost_node_is_repaired_then_reconciled_when_it_returns(tmp_path: Path) -> None:
    """kill -9 a node: after repair_delay its chunks are re-replicated on the live nodes
    (automatically); when it comes back, the copies it holds are no longer needed and are
    removed."""
    with running_cluster(tmp_path, "--repair-delay", "1", "--scrub-rate", "0") as made:
        gateway, nodes = made
        rng = random.Random(11)
        s3 = make_client(gateway.endpoint)
        s3.create_bucket(Bucket="bkt")
        shared = rng.randbytes(300_000)
        objects = {
            "small": rng.randbytes(100),  # inline in the index
            "one-chunk": rng.randbytes(40_000),
            "multi-chunk": rng.randbytes(2 * 1024 * 1024),
            "dedup-a": shared + rng.randbytes(200_000),
            "dedup-b": shared + rng.randbytes(200_000),  # shares chunks with dedup-a
        }
        for key, body in objects.items():
            s3.put_object(Bucket="bkt", Key=key, Body=body)
        indexed = {i for node in nodes for i in _node_ids(node)}
        assert json.loads(gateway.admin("stats", "--json").stdout)["chunks"] == len(indexed) > 5
        held0 = _node_ids(nodes[0])

        nodes[0].proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        nodes[0].proc.wait()  # type: ignore[union-attr]
        nodes[0].proc = None
        live = nodes[1:]
        assert any(not indexed <= _node_ids(n) for n in live)  # some chunks: one copy left

        # no command: the gateway repairs once the node has been down for repair_delay
        wait_for("automatic repair", lambda: all(_node_ids(n) == indexed for n in live))
        wait_for("fsck clean", lambda: gateway.fsck()["ok"])
        for key, body in objects.items():
            assert s3.get_object(Bucket="bkt", Key=key)["Body"].read() == body, key
        again = gateway.admin("repair")  # nothing left to do
        assert again.returncode == 0, again.stdout + again.stderr
        lines = again.stdout.strip().splitlines()
        assert lines[-1] == "repair: done: 0 under replicated", lines

        # while it is away, objects are deleted and GC deletes their chunks on the live nodes
        gone = {"multi-chunk", "dedup-a"}
        for key in gone:
            s3.delete_object(Bucket="bkt", Key=key)
        gc = gateway.admin("gc", "--grace", "0")
        assert gc.returncode == 0 and json.loads(gc.stdout)["chunks_deleted"] > 0, gc.stdout
        still = {i for n in live for i in _node_ids(n)}
        orphans = indexed - still
        assert orphans & held0  # copies the absent node holds of chunks the index forgot

        # it comes back holding copies the index no longer places on it (repaired elsewhere)
        # and copies of chunks the index no longer knows (GC'd): all are removed
        nodes[0].start()
        wait_for("the returning node reconciled", lambda: not _node_ids(nodes[0]))
        report = gateway.fsck()
        assert report["ok"] and report["stray_copies"] == 0, report
        assert report["placed_copies"] == 2 * len(still)
        for key, body in objects.items():
            if key not in gone:
                assert s3.get_object(Bucket="bkt", Key=key)["Body"].read() == body, key
        s3.close()


def test_tags_and_lifecycle_expiry_free_chunks_on_the_nodes(
    cluster: tuple[Gateway, list[NodeProcess]],
) -> None:
    """The gateway-level features (tags, lifecycle, the admin pass) in cluster mode: an
    expired object's chunks leave every node at the next GC; the kept one is untouched."""
    gateway, nodes = cluster
    s3 = make_client(gateway.endpoint)
    s3.create_bucket(Bucket="lcb")
    rng = random.Random(7)
    old, kept = rng.randbytes(2 * 1024 * 1024), rng.randbytes(2 * 1024 * 1024)
    s3.put_object(Bucket="lcb", Key="keep/b", Body=kept, Tagging="keep=yes")
    before = set().union(*(_node_ids(n) for n in nodes))
    s3.put_object(Bucket="lcb", Key="tmp/a", Body=old)
    theirs = set().union(*(_node_ids(n) for n in nodes)) - before
    assert theirs  # the expiring object's own chunks
    s3.put_bucket_lifecycle_configuration(
        Bucket="lcb",
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "tmp",
                    "Filter": {"Prefix": "tmp/"},
                    "Status": "Enabled",
                    "Expiration": {"Date": datetime(2020, 1, 1, tzinfo=UTC)},
                }
            ]
        },
    )
    out = gateway.admin("lifecycle")
    assert out.returncode == 0 and json.loads(out.stdout)["expired"] == 1, out.stdout + out.stderr
    assert gateway.admin("gc", "--grace", "0").returncode == 0
    left = set().union(*(_node_ids(n) for n in nodes))
    assert not (theirs & left), "expired chunks still on a node"
    assert before <= left
    assert s3.get_object(Bucket="lcb", Key="keep/b")["Body"].read() == kept
    assert s3.get_object_tagging(Bucket="lcb", Key="keep/b")["TagSet"] == [
        {"Key": "keep", "Value": "yes"}
    ]
    assert gateway.fsck()["ok"]
    s3.close()
