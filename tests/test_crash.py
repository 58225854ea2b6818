"""Crash safety: SIGKILL the server in the middle of concurrent uploads, overwrites, deletes
and garbage collections, restart it on the same data directory, and check that every
acknowledged write is there bit-exact, that fsck is clean, and that GC leaves no garbage."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gateway import admin_client
from tests.conftest import ACCESS_KEY, SECRET_KEY, Server, make_server

MiB = 1024 * 1024
BUCKET = "crash"
WORKERS = 5
KEYS_PER_WORKER = 8
CYCLES = 3

Absent = None  # the expected state of a deleted (or never written) key


def make_pool(seed: int) -> list[bytes]:
    """Segments shared by all objects, so that their content deduplicates (FastCDC finds the
    same cut points inside a segment wherever it lands in an object)."""
    rng = random.Random(seed)
    return [rng.randbytes(rng.randrange(200_000, 1_200_000)) for _ in range(10)]


def body(rng: random.Random, pool: list[bytes]) -> bytes:
    size = rng.choice([0, 1, rng.randrange(2, 4097), rng.randrange(4097, 3 * MiB + 1)])
    parts: list[bytes] = []
    n = 0
    while n < size:
        part = rng.choice(pool) if rng.random() < 0.75 else rng.randbytes(rng.randrange(1, 300_000))
        parts.append(part)
        n += len(part)
    return b"".join(parts)[:size]


@dataclass
class Model:
    """What the clients were told. ``acked[key]``: sha256 of the last acknowledged content,
    or Absent. ``pending[key]``: the state an operation without an answer would leave."""

    acked: dict[str, str | None] = field(default_factory=dict)
    pending: dict[str, str | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ops: int = 0
    failures: list[str] = field(default_factory=list)


def worker(
    srv: Server, model: Model, wid: int, seed: int, pool: list[bytes], stop: threading.Event
) -> None:
    """Operations on this worker's own keys, one at a time (so at most one is in flight per key
    when the server dies). Stops at the first failure: after the kill, all of them fail."""
    rng = random.Random(seed)
    s3 = srv.client(connect_timeout=5, read_timeout=60)
    keys = [f"w{wid}/k{i}" for i in range(KEYS_PER_WORKER)]
    while not stop.is_set():
        key = rng.choice(keys)
        delete = rng.random() < 0.2
        data = b"" if delete else body(rng, pool)
        new = Absent if delete else hashlib.sha256(data).hexdigest()
        with model.lock:
            model.pending[key] = new
        try:
            if delete:
                s3.delete_object(Bucket=BUCKET, Key=key)
            else:
                s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        except (BotoCoreError, ClientError) as exc:
            if not stop.is_set():
                model.failures.append(f"{key}: {exc!r}")
            return  # the answer never came: the key may be in either state
        with model.lock:
            model.acked[key] = new
            del model.pending[key]
            model.ops += 1


def gc_loop(srv: Server, stop: threading.Event) -> None:
    """Garbage collection racing with the writers (and with the kill)."""
    while not stop.wait(0.4):
        try:
            asyncio.run(
                admin_client.call(
                    "POST",
                    srv.endpoint,
                    "/_s3dedup/admin/gc",
                    ACCESS_KEY,
                    SECRET_KEY,
                    {"grace": "0"},
                )
            )
        except admin_client.AdminError:
            return


def read_state(s3: Any, key: str) -> str | None:
    try:
        data = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchKey", exc.response
        return Absent
    return hashlib.sha256(data).hexdigest()


def fsck_stopped(srv: Server) -> dict[str, Any]:
    """fsck of the data directory as the crash left it (before recovery changes anything)."""
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "admin", "fsck", "--data", str(srv.data), "--json"],
        env=srv.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    assert out.returncode == (0 if summary["ok"] else 1), out.stdout + out.stderr
    return dict(summary, output=out.stdout)


def test_sigkill_mid_traffic(tmp_path: Path) -> None:
    srv = make_server(tmp_path)
    srv.start()
    model = Model()
    pool = make_pool(1)
    rng = random.Random(2)
    srv.client().create_bucket(Bucket=BUCKET)
    deadline = time.monotonic() + 75
    try:
        for cycle in range(CYCLES):
            stop = threading.Event()
            threads = [
                threading.Thread(target=worker, args=(srv, model, w, rng.random(), pool, stop))
                for w in range(WORKERS)
            ]
            threads.append(threading.Thread(target=gc_loop, args=(srv, stop)))
            ops_before = model.ops
            for t in threads:
                t.start()
            time.sleep(rng.uniform(2.5, 3.5))
            stop.set()  # from here on, failures are expected
            assert srv.stop(signal.SIGKILL) == -signal.SIGKILL
            for t in threads:
                t.join(60)
                assert not t.is_alive()
            assert not model.failures, model.failures
            assert model.ops - ops_before > 10, "too little traffic before the kill"

            crashed = fsck_stopped(srv)
            assert crashed["ok"], crashed["output"]

            srv.start()
            s3 = srv.client()
            keys = sorted(model.acked.keys() | model.pending.keys())
            for key in keys:
                got = read_state(s3, key)
                allowed = {model.acked.get(key, Absent)}
                if key in model.pending:
                    allowed.add(model.pending[key])
                assert got in allowed, f"cycle {cycle}: {key} is {got}, expected one of {allowed}"
                model.acked[key] = got  # the state is known again
            model.pending.clear()
            listed = {
                o["Key"]
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
                for o in page.get("Contents", [])
            }
            assert listed == {k for k, v in model.acked.items() if v is not Absent}

            report = srv.fsck()
            assert report["ok"], report["output"]
            assert report["pinned_references"] == 0  # startup released the dead process's pins
            stats = srv.stats()
            assert stats["objects"] == len(listed)
            srv.gc(0)
            report = srv.fsck()
            assert report["ok"], report["output"]
            assert report["unreferenced_chunks"] == 0, report
            assert report["store_chunks"] == report["chunks"], report
            assert srv.stats()["chunks"] == report["chunks"]
            assert time.monotonic() < deadline, f"too slow: cycle {cycle}"
        # the deduplication worked through all of this
        stats = srv.stats()
        assert stats["logical_bytes"] == 0 or stats["dedup_ratio"] >= 1
    finally:
        if srv.proc is not None:
            srv.stop()
