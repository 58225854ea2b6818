"""A/B comparison of server variants, interleaved in one run (for noisy, shared machines).

    python benchmarks/ab.py --variant A=/path/to/tree --variant B=/work/main[:ENV=V,...] \\
        [--rounds 5] [--size-mib 256] [--small 2000] [--ops put_new,put_known,get,small]

Every variant is an ``s3dedup serve`` started from its own source tree (``PYTHONPATH``) and
optional extra environment; all run at once, each with its own data directory, and are
driven in turn (A, B, A, B, ...) by the same load generator, so that slow phases of the
machine hit every variant alike. Per round and variant: a single-stream PUT of new data, the
same bytes again (every chunk known), a GET of it, and 4 KiB PUTs and GETs at 64 clients;
then the objects are deleted and garbage collected (untimed). Prints, per figure and
variant, the median and min-max over the rounds, and the JSON of every round on the last
line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_memory import LocalServer, cpu_seconds, log  # noqa: E402
from benchmarks.ceilings import small_ops  # noqa: E402
from benchmarks.loadgen import MiB, S3LoadClient, content  # noqa: E402

BUCKET = "bench-ab"


def parse_variant(spec: str) -> tuple[str, Path, dict[str, str]]:
    name, _, rest = spec.partition("=")
    tree, _, envs = rest.partition(":")
    env = dict(e.split("=", 1) for e in envs.split(",") if e)
    return name, Path(tree).resolve(), env


async def one_round(
    server: LocalServer, size: int, small: int, ops: set[str], n: int
) -> dict[str, float]:
    assert server.proc is not None
    pid = server.proc.pid
    r: dict[str, float] = {}
    async with S3LoadClient(
        server.endpoint, server.access_key, server.secret_key, connections=64
    ) as c:
        await c.create_bucket(BUCKET)
        seed = random.randrange(1 << 40)

        async def timed(name: str, run: Any) -> None:
            c0, own0 = cpu_seconds(pid), time.process_time()
            t0 = time.perf_counter()
            await run
            s = time.perf_counter() - t0
            r[f"{name}_mb_s"] = size / s / 1e6
            r[f"{name}_cpu_s_gb"] = (cpu_seconds(pid) - c0) / (size / 1e9)
            r[f"{name}_client_cpu_s_gb"] = (time.process_time() - own0) / (size / 1e9)

        if ops & {"put_new", "put_known", "get"}:
            await timed("put_new", c.put(BUCKET, f"r{n}/new", content(size, seed), size))
            if "put_known" in ops:
                await timed("put_known", c.put(BUCKET, f"r{n}/known", content(size, seed), size))
                await c.delete(BUCKET, f"r{n}/known")
            if "get" in ops:
                await timed("get", c.get(BUCKET, f"r{n}/new"))
            await c.delete(BUCKET, f"r{n}/new")
        if "small" in ops:
            res = await small_ops(c, BUCKET, f"r{n}/small", 64, small)
            for op in ("put", "get"):
                for fig, v in res[op].items():
                    r[f"{op}_4k_c64_{fig}"] = v
        await c.admin_gc(0)
    return r


async def run(args: argparse.Namespace, servers: dict[str, LocalServer]) -> dict[str, Any]:
    size = int(args.size_mib * MiB)
    ops = set(args.ops.split(","))
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    names = list(servers)
    for n in range(args.rounds):
        order = names if n % 2 == 0 else names[::-1]  # ABBA: no variant always goes first
        for name in order:
            r = await one_round(servers[name], size, args.small, ops, n)
            rounds[name].append(r)
            log(f"round {n + 1} {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()))
    return rounds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", action="append", required=True, help="NAME=TREE[:ENV=V,...]")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--size-mib", type=float, default=256)
    p.add_argument("--small", type=int, default=2000, help="4 KiB operations per phase")
    p.add_argument("--ops", default="put_new,put_known,get,small")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    servers: dict[str, LocalServer] = {}
    try:
        for spec in args.variant:
            name, tree, env = parse_variant(spec)
            s = LocalServer(work / name, work / f"{name}.log", source=tree, extra_env=env)
            s.start()
            servers[name] = s
        rounds = asyncio.run(run(args, servers))
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    figs = sorted({k for rs in rounds.values() for r in rs for k in r})
    print(f"{'figure':<24} " + " ".join(f"{n:>22}" for n in rounds))
    for fig in figs:
        cells = []
        for rs in rounds.values():
            vals = [r[fig] for r in rs if fig in r]
            med = statistics.median(vals)
            d = 2 if med < 10 else 0
            cells.append(f"{med:8.{d}f} ({min(vals):.{d}f}-{max(vals):.{d}f})")
        print(f"{fig:<24} " + " ".join(f"{c:>22}" for c in cells))
    print(json.dumps(rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
