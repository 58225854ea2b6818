"""Deduplication and upload throughput over successive versions of a file tree.

    python benchmarks/bench_dedup.py [--mib 200] [--versions 10] [--files 40] [--seed 0]
                                     [--endpoint URL] [--concurrency 8]

Generates a tree of ``--files`` files, ``--mib`` MiB in all (seeded: the same arguments give the
same bytes), whose content mixes random bytes (think compressed media) and text-like runs (logs,
source). Version 1 is uploaded under ``v1/``; each later version edits every file at a few
random offsets — inserting (which shifts the rest of the file), deleting and overwriting a few
percent of its bytes in all — and is uploaded in full under ``v2/``, ``v3/``, ...

Per version and in total it prints the logical bytes uploaded, the stored bytes added (from
``/_s3dedup/admin/stats``), the cumulative dedup ratio and the upload rate in MB/s (10^6 bytes
per second of wall time, ``--concurrency`` PUTs in flight), then the same as JSON on the last
line.

Without ``--endpoint`` it starts a fresh ``s3dedup serve`` on a free loopback port with its
data under ``--work`` (default: a temporary directory, removed afterwards). With ``--endpoint``
it uses that server: credentials from S3DEDUP_ACCESS_KEY / S3DEDUP_SECRET_KEY (or ``--data``,
the server's data directory), and the figures are differences of the server's stats.

Multipart upload is not implemented yet (issue #3): every file goes up in one PUT (boto3's
``multipart_threshold`` is set above the largest file).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402
from botocore.config import Config as BotoConfig  # noqa: E402

from gateway import admin_client  # noqa: E402
from gateway.credentials import read_for_client  # noqa: E402

MiB = 1024 * 1024
REGION = "us-east-1"


# -- content ----------------------------------------------------------------------------------


class Content:
    """Seeded generator of mixed content: random runs and text-like runs."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        letters = "etaoinshrdlcumwfgypbvkjxqz"
        self.words = [
            "".join(rng.choices(letters, weights=range(26, 0, -1), k=rng.randint(2, 10)))
            for _ in range(3000)
        ]
        self.levels = ["DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR"]
        self.modules = [f"{rng.choice(self.words)}.{rng.choice(self.words)}" for _ in range(40)]

    def text(self, size: int) -> bytes:
        rng = self.rng
        out: list[str] = []
        n = 0
        t = rng.randrange(1_600_000_000, 1_700_000_000)
        while n < size:
            t += rng.randrange(0, 5)
            words = " ".join(rng.choices(self.words, k=rng.randint(4, 18)))
            line = f"{t} {rng.choice(self.levels)} {rng.choice(self.modules)}: {words}\n"
            out.append(line)
            n += len(line)
        return "".join(out).encode()[:size]

    def random(self, size: int) -> bytes:
        return self.rng.randbytes(size)

    def mixed(self, size: int) -> bytes:
        parts: list[bytes] = []
        n = 0
        while n < size:
            run = min(size - n, self.rng.randrange(4 * 1024, 2 * MiB))
            parts.append(self.text(run) if self.rng.random() < 0.5 else self.random(run))
            n += run
        return b"".join(parts)


def make_tree(content: Content, total: int, files: int) -> dict[str, bytes]:
    rng = content.rng
    weights = [rng.lognormvariate(0, 0.6) for _ in range(files)]
    scale = total / sum(weights)
    exts = ["log", "bin", "txt", "dat", "json"]
    return {
        f"dir{i % 5}/sub{i % 3}/file{i:03d}.{exts[i % len(exts)]}": content.mixed(
            max(1, int(w * scale))
        )
        for i, w in enumerate(weights)
    }


def edit(content: Content, data: bytes) -> tuple[bytes, int]:
    """A new version of ``data``: 1-4 edits (insert, delete or overwrite) at random offsets,
    each 0.2-1.5% of the file. Returns the new bytes and how many bytes the edits touched."""
    rng = content.rng
    touched = 0
    for _ in range(rng.randint(1, 4)):
        n = max(1, int(len(data) * rng.uniform(0.002, 0.015)))
        at = rng.randrange(0, max(1, len(data) - n))
        new = content.text(n) if rng.random() < 0.5 else content.random(n)
        match rng.choice(("insert", "delete", "overwrite")):
            case "insert":
                data = data[:at] + new + data[at:]
            case "delete":
                data = data[:at] + data[at + n :]
            case _:
                data = data[:at] + new + data[at + n :]
        touched += n
    return data, touched


# -- server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_server(work: Path) -> Iterator[tuple[str, str, str]]:
    """A fresh `s3dedup serve`; yields (endpoint, access key, secret key)."""
    port = free_port()
    ak, sk = "BENCH" + secrets.token_hex(8).upper(), secrets.token_hex(20)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3DEDUP_"))}
    env.update(
        S3DEDUP_ACCESS_KEY=ak,
        S3DEDUP_SECRET_KEY=sk,
        S3DEDUP_GC_INTERVAL="0",
        S3DEDUP_LOG_LEVEL="warning",
        PYTHONPATH=str(ROOT),
    )
    endpoint = f"http://127.0.0.1:{port}"
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--data",
            str(work / "data"),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: {(work / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(endpoint + "/_s3dedup/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        yield endpoint, ak, sk
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        log.close()
        if rc != 0:
            print(
                f"server exited with {rc}: {(work / 'server.log').read_text()[-2000:]}",
                file=sys.stderr,
            )


def stats(endpoint: str, ak: str, sk: str) -> dict[str, Any]:
    result: dict[str, Any] = asyncio.run(
        admin_client.call("GET", endpoint, "/_s3dedup/admin/stats", ak, sk)
    )
    return result


# -- the run ----------------------------------------------------------------------------------


def upload(s3: Any, bucket: str, prefix: str, tree: dict[str, bytes], concurrency: int) -> float:
    """Upload every file (one PUT each); returns the wall time in seconds."""
    config = TransferConfig(
        multipart_threshold=max(len(d) for d in tree.values()) + MiB,  # no multipart (issue #3)
        max_concurrency=1,
        use_threads=False,
    )

    def put(item: tuple[str, bytes]) -> None:
        name, data = item
        s3.upload_fileobj(io.BytesIO(data), bucket, f"{prefix}/{name}", Config=config)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(put, tree.items()))
    return time.perf_counter() - started


def run(args: argparse.Namespace, endpoint: str, ak: str, sk: str) -> dict[str, Any]:
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        config=BotoConfig(
            region_name=REGION,
            s3={"addressing_style": "path"},
            max_pool_connections=args.concurrency * 2,
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=10,
            read_timeout=600,
        ),
    )
    bucket = f"bench-dedup-{args.seed}-{secrets.token_hex(3)}"
    s3.create_bucket(Bucket=bucket)
    content = Content(random.Random(args.seed))
    gen_started = time.perf_counter()
    tree = make_tree(content, args.mib * MiB, args.files)
    print(
        f"generated {len(tree)} files, {sum(map(len, tree.values())) / MiB:.1f} MiB"
        f" in {time.perf_counter() - gen_started:.1f}s (seed {args.seed})",
        file=sys.stderr,
    )

    base = stats(endpoint, ak, sk)
    before = base
    rows: list[dict[str, Any]] = []
    header = (
        f"{'version':>7} {'files':>5} {'logical MiB':>11} {'edited %':>8}"
        f" {'stored +MiB':>11} {'ratio':>6} {'total ratio':>11} {'MB/s':>7}"
    )
    print(header)
    for version in range(1, args.versions + 1):
        touched = 0
        if version > 1:
            for name in tree:
                tree[name], n = edit(content, tree[name])
                touched += n
        logical = sum(map(len, tree.values()))
        seconds = upload(s3, bucket, f"v{version}", tree, args.concurrency)
        after = stats(endpoint, ak, sk)
        added = after["stored_bytes"] - before["stored_bytes"]
        total_logical = after["logical_bytes"] - base["logical_bytes"]
        total_stored = after["stored_bytes"] - base["stored_bytes"]
        row = {
            "version": version,
            "files": len(tree),
            "logical_bytes": logical,
            "edited_bytes": touched,
            "stored_bytes_added": added,
            "version_ratio": round(logical / added, 3) if added > 0 else None,
            "cumulative_logical_bytes": total_logical,
            "cumulative_stored_bytes": total_stored,
            "cumulative_ratio": round(total_logical / total_stored, 3) if total_stored else None,
            "seconds": round(seconds, 3),
            "upload_mb_s": round(logical / seconds / 1e6, 2),
        }
        rows.append(row)
        print(
            f"{version:>7} {len(tree):>5} {logical / MiB:>11.1f}"
            f" {100 * touched / logical:>8.2f} {added / MiB:>11.2f}"
            f" {row['version_ratio'] or 0:>6.2f} {row['cumulative_ratio'] or 0:>11.2f}"
            f" {row['upload_mb_s']:>7.1f}",
            flush=True,
        )
        before = after

    total_logical = sum(r["logical_bytes"] for r in rows)
    total_stored = before["stored_bytes"] - base["stored_bytes"]
    total_seconds = sum(r["seconds"] for r in rows)
    total = {
        "logical_bytes": total_logical,
        "stored_bytes": total_stored,
        "dedup_ratio": round(total_logical / total_stored, 3) if total_stored else None,
        "seconds": round(total_seconds, 3),
        "upload_mb_s": round(total_logical / total_seconds / 1e6, 2),
        "chunks": before["chunks"] - base["chunks"],
    }
    print(
        f"{'total':>7} {'':>5} {total_logical / MiB:>11.1f} {'':>8}"
        f" {total_stored / MiB:>11.2f} {'':>6} {total['dedup_ratio'] or 0:>11.2f}"
        f" {total['upload_mb_s']:>7.1f}"
    )
    return {
        "params": {
            "mib": args.mib,
            "versions": args.versions,
            "files": args.files,
            "seed": args.seed,
            "concurrency": args.concurrency,
        },
        "bucket": bucket,
        "versions": rows,
        "total": total,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mib", type=int, default=200, help="size of the tree (MiB)")
    p.add_argument("--versions", type=int, default=10)
    p.add_argument("--files", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--concurrency", type=int, default=8, help="PUTs in flight")
    p.add_argument("--endpoint", help="use this running server instead of starting one")
    p.add_argument("--data", help="with --endpoint: the server's data directory (credentials)")
    p.add_argument("--work", help="directory for the server's data (default: a temporary one)")
    args = p.parse_args(argv)
    if args.mib < 1 or args.versions < 1 or args.files < 1:
        p.error("--mib, --versions and --files must be at least 1")

    if args.endpoint:
        ak, sk = read_for_client(Path(args.data) if args.data else None)
        report = run(args, args.endpoint, ak, sk)
    else:
        work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-dedup-"))
        work.mkdir(parents=True, exist_ok=True)
        try:
            with local_server(work) as (endpoint, ak, sk):
                report = run(args, endpoint, ak, sk)
        finally:
            if not args.work:
                shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
