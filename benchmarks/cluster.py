"""A local cluster for the benchmarks: ``s3dedup gateway --replicas 2`` and three
``s3dedup node`` processes on loopback (as deploy/local-cluster.sh starts them), each with
its data under one directory. The cluster secret reaches them through the environment."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.bench_memory import ROOT, free_port, health

NODES = 3
REPLICAS = 2


@dataclass
class LocalCluster:
    root: Path
    access_key: str = field(default_factory=lambda: "BENCH" + secrets.token_hex(8).upper())
    secret_key: str = field(default_factory=lambda: secrets.token_hex(20))
    cluster_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.procs["gateway"].pid

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3DEDUP_"))}
        env.update(
            S3DEDUP_ACCESS_KEY=self.access_key,
            S3DEDUP_SECRET_KEY=self.secret_key,
            S3DEDUP_CLUSTER_SECRET=self.cluster_secret,
            S3DEDUP_GC_INTERVAL="0",
            S3DEDUP_LOG_LEVEL="warning",
            PYTHONPATH=str(ROOT),
        )
        return env

    def _launch(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "gateway.cli", *args, "--data", str(self.root / name)]
        with (self.root / "logs" / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=self._env(), cwd=ROOT
            )
        self.procs[name] = proc
        return proc

    def start(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        gateway = self._launch(
            "gateway", "gateway", "--listen", f"127.0.0.1:{self.port}", "--replicas", str(REPLICAS)
        )
        while not health(self.endpoint):
            self._check(gateway, "gateway", deadline)
            time.sleep(0.05)
        for n in range(1, NODES + 1):
            self._launch(
                f"node{n}",
                "node",
                "--listen",
                f"127.0.0.1:{free_port()}",
                "--gateway",
                self.endpoint,
                "--heartbeat",
                "0.5",
            )
        while self.nodes_up() < NODES:
            for name, proc in self.procs.items():
                self._check(proc, name, deadline)
            time.sleep(0.1)

    def nodes_up(self) -> int:
        from gateway import admin_client

        try:
            answer = asyncio.run(
                admin_client.call(
                    "GET",
                    self.endpoint,
                    "/_s3dedup/cluster/nodes",
                    self.access_key,
                    self.secret_key,
                )
            )
        except (OSError, admin_client.AdminError):
            return 0
        return sum(n.get("state") == "up" for n in answer.get("nodes", []))

    def _check(self, proc: subprocess.Popen[bytes], name: str, deadline: float) -> None:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the cluster did not start ({name}):\n{self.log_tail()}")

    def stop(self) -> int:
        """SIGTERM the gateway first (no new writes), then the nodes; the worst exit code."""
        worst = 0
        for name in sorted(self.procs, key=lambda n: n != "gateway"):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            worst = worst or rc
        self.procs.clear()
        return worst

    def log_tail(self) -> str:
        out = []
        for log in sorted((self.root / "logs").glob("*.log")):
            text = log.read_text(errors="replace")[-1500:]
            out.append(f"--- {log.name}\n{text}")
        return "\n".join(out)
