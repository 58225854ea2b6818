"""Cluster maintenance with real processes: damaged copies and scrub, rebalancing onto a new
node under client load (and across a gateway restart), drain and remove."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Any

from dedup.store import chunk_id_of
from gateway.cluster.maintain import TICK
from tests.conftest import make_client
from tests.test_cluster import (
    Gateway,
    _node_ids,
    add_node,
    chunk_file,
    running_cluster,
    wait_for,
)
from tests.test_storage_node import NodeProcess


def _damage(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def _intact(node: NodeProcess, chunk_id: str) -> bool:
    try:
        return chunk_id_of(chunk_file(node, chunk_id).read_bytes()).hex() == chunk_id
    except AssertionError:  # not there (quarantined, not yet re-copied)
        return False


def _job(gateway: Gateway, *args: str) -> tuple[list[str], dict[str, Any]]:
    out = gateway.admin(*args, "--json")
    lines = [json.loads(line) for line in out.stdout.strip().splitlines()]
    assert lines and "result" in lines[-1], out.stdout + out.stderr
    assert out.returncode == (0 if lines[-1]["result"]["ok"] else 1)
    human = gateway.admin(*args)  # the same job again, as people see it
    return human.stdout.strip().splitlines(), lines[-1]["result"]


def test_damaged_copies_read_correctly_and_scrub_repairs_them(tmp_path: Path) -> None:
    with running_cluster(tmp_path, "--scrub-rate", "0") as (gateway, nodes):
        rng = random.Random(5)
        s3 = make_client(gateway.endpoint)
        s3.create_bucket(Bucket="bkt")
        read = rng.randbytes(3 * 1024 * 1024)
        unread = rng.randbytes(3 * 1024 * 1024)
        s3.put_object(Bucket="bkt", Key="read", Body=read)
        before = _node_ids(nodes[0])
        s3.put_object(Bucket="bkt", Key="unread", Body=unread)
        on_node = _node_ids(nodes[0])
        read_ids, unread_ids = before, on_node - before
        assert len(read_ids) >= 3 and len(unread_ids) >= 3
        for chunk_id in on_node:  # every copy node 0 holds is damaged
            _damage(chunk_file(nodes[0], chunk_id))

        # reads fall back to the good copy (end-to-end BLAKE3 check) and report the bad ones
        for _ in range(3):
            assert s3.get_object(Bucket="bkt", Key="read")["Body"].read() == read

        # ... which the gateway re-copies by itself (those where node 0 was read first)
        def fixed() -> set[str]:
            return {i for i in on_node if _intact(nodes[0], i)}

        wait_for("damaged copies seen by reads re-copied", lambda: bool(fixed() & read_ids))
        # reads after the first tick's fix leave suspects for the next tick (TICK apart):
        # "over" is no change across more than two ticks, not across half of one
        wait_for("the re-copying over", lambda: fixed() == (time.sleep(2.5 * TICK), fixed())[1])
        damaged = on_node - fixed()
        assert unread_ids <= damaged

        # scrub finds the others (nothing read them) and re-copies them from a good replica
        lines, result = _job(gateway, "scrub")
        assert result["corrupt"] == len(damaged) and result["fixed"] == len(damaged), result
        assert result["checked"] == sum(len(_node_ids(n)) for n in nodes)
        assert all(_intact(nodes[0], i) for i in on_node)
        assert lines[0].startswith("scrub: ") and lines[-1].startswith("scrub: done: "), lines
        assert "0 corrupt" in lines[-1]  # the second run (human form) found nothing left
        quarantine = list((nodes[0].data / "quarantine").iterdir())
        assert {p.name for p in quarantine} >= unread_ids
        report = gateway.fsck("--verify-data")
        assert report["ok"] and report["stray_copies"] == 0, report
        assert s3.get_object(Bucket="bkt", Key="unread")["Body"].read() == unread
        s3.close()


def test_background_scrub_repairs_a_damaged_copy(tmp_path: Path) -> None:
    with running_cluster(tmp_path, "--scrub-rate", str(64 * 1024 * 1024)) as (gateway, nodes):
        s3 = make_client(gateway.endpoint)
        s3.create_bucket(Bucket="bkt")
        s3.put_object(Bucket="bkt", Key="k", Body=random.Random(2).randbytes(1024 * 1024))
        # a node that holds a copy (placement follows random node ids: with a few chunks and
        # R=2 of 3, a given node holds none about once in 80 runs)
        holder = next(n for n in nodes if _node_ids(n))
        victim = sorted(_node_ids(holder))[0]
        _damage(chunk_file(holder, victim))
        assert not _intact(holder, victim)
        wait_for("the background scrub re-copied it", lambda: _intact(holder, victim))
        assert gateway.fsck()["ok"]
        s3.close()


class Load:
    """A client writing and reading back objects in a loop, counting every failure."""

    def __init__(self, endpoint: str) -> None:
        self.s3 = make_client(endpoint)
        self.s3.create_bucket(Bucket="load")
        self.ops = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.bodies: dict[str, bytes] = {}

    def run(self) -> None:
        rng = random.Random(99)
        n = 0
        while not self.stop.is_set():
            key = f"obj-{n % 20}"
            body = rng.randbytes(rng.randrange(1, 600_000))
            try:
                self.s3.put_object(Bucket="load", Key=key, Body=body)
                self.bodies[key] = body
                got = self.s3.get_object(Bucket="load", Key=key)["Body"].read()
                if got != body:
                    self.errors.append(f"{key}: read back other bytes")
                old = f"obj-{rng.randrange(min(n + 1, 20))}"
                if old in self.bodies:
                    got = self.s3.get_object(Bucket="load", Key=old)["Body"].read()
                    if got != self.bodies[old]:
                        self.errors.append(f"{old}: read back other bytes")
            except Exception as exc:  # noqa: BLE001 (every failure counts, whatever it is)
                self.errors.append(repr(exc))
            self.ops += 1
            n += 1

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)
        self.s3.close()


def _used(nodes: list[NodeProcess]) -> list[int]:
    """Bytes each node holds, as the node itself counts them."""
    return [int(n.status()["used"]) for n in nodes]


def _balanced(nodes: list[NodeProcess], threshold: float, floor: int) -> bool:
    """Equal capacities: within ``threshold`` of the mean, or closer to it than ``floor``."""
    used = _used(nodes)
    mean = sum(used) / len(used)
    return max(used) - min(used) <= threshold * mean or all(abs(u - mean) < floor for u in used)


def test_rebalance_onto_a_new_node_under_load_then_drain_and_remove(tmp_path: Path) -> None:
    capacity = 256 * 1024 * 1024
    gateway_args = ("--move-rate", str(6 * 1024 * 1024), "--scrub-rate", "0")
    node_args = ("--capacity", str(capacity))
    with running_cluster(tmp_path, *gateway_args, node_args=node_args) as (gateway, nodes):
        rng = random.Random(8)
        s3 = make_client(gateway.endpoint)
        s3.create_bucket(Bucket="bkt")
        objects = {f"o{i}": rng.randbytes(4 * 1024 * 1024) for i in range(8)}  # 32 MiB
        for key, body in objects.items():
            s3.put_object(Bucket="bkt", Key=key, Body=body)

        # a fourth node joins: a rebalance starts by itself, throttled to 6 MiB/s
        fourth = add_node(tmp_path, gateway, 3, *node_args)
        nodes.append(fourth)
        gateway.wait_nodes(4)
        wait_for("the first moves", lambda: len(_node_ids(fourth)) >= 4, timeout=30)
        assert not _balanced(nodes, 0.10, 2 * 1024 * 1024)

        # the gateway restarts in the middle: the rebalance resumes
        gateway.stop()
        gateway.start(replicas=2)
        gateway.wait_nodes(4)
        with Load(gateway.endpoint) as load:
            wait_for(
                "usage within the threshold",
                lambda: _balanced(nodes, 0.10, 2 * 1024 * 1024),
                timeout=120,
            )
            time.sleep(1)  # the load goes on a little after the last moves
        assert not load.errors, load.errors[:5]
        assert load.ops >= 5
        used = _used(nodes)
        assert min(used) > 0.75 * max(used), used
        report = gateway.fsck()
        assert report["ok"], report["problems"][:5]
        for key, body in objects.items():
            assert s3.get_object(Bucket="bkt", Key=key)["Body"].read() == body, key

        # drain node 0 to empty, then remove it
        victim = next(i for i, n in gateway.nodes().items() if n["url"] == nodes[0].url)
        refused = gateway.admin("remove", victim)
        assert refused.returncode == 1 and "drain it first" in refused.stderr, refused
        lines, result = _job(gateway, "drain", victim[:8])
        assert result["left"] == 0 and result["moved"] > 0, result
        assert lines[-1].startswith("drain: done: ") and "0 left" in lines[-1], lines
        assert not _node_ids(nodes[0])
        assert gateway.nodes()[victim]["draining"]
        assert _job(gateway, "remove", victim)[1]["removed"] == 1
        assert victim not in gateway.nodes()
        nodes[0].stop()
        for key, body in objects.items():
            assert s3.get_object(Bucket="bkt", Key=key)["Body"].read() == body, key
        report = gateway.fsck()
        assert report["ok"] and report["stray_copies"] == 0, report["problems"][:5]
        s3.close()
