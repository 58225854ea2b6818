"""deploy/: local-cluster.sh starts and stops a working cluster; compose.yaml is well formed."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.config import Config as BotoConfig

from tests.conftest import REGION, server_env

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
SCRIPT = DEPLOY / "local-cluster.sh"
NAMES = ("gateway", "node1", "node2", "node3")


def _port_block(n: int) -> int:
    """The first of n consecutive free loopback ports."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000)
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + n):
                    s = stack.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no block of free ports")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120
    )


def _admin_nodes(endpoint: str, env: dict[str, str], data: Path, *extra: str) -> str:
    cmd = [sys.executable, "-m", "gateway.cli", "admin", "nodes", "--endpoint", endpoint]
    out = subprocess.run(
        [*cmd, "--data", str(data), *extra], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _nodes(endpoint: str, env: dict[str, str], data: Path) -> list[dict[str, Any]]:
    return list(json.loads(_admin_nodes(endpoint, env, data, "--json"))["nodes"])


def test_local_cluster_starts_serves_and_stops(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    base = _port_block(4)
    env = server_env(
        PORT_BASE=str(base), HEARTBEAT="0.5", S3DEDUP=f"{sys.executable} -m gateway.cli"
    )
    # the script's gateway generates its key pair; the admin command reads it with --data
    for k in ("S3DEDUP_ACCESS_KEY", "S3DEDUP_SECRET_KEY"):
        env.pop(k)
    pids: list[int] = []
    try:
        out = _script("start", str(root), env=env)
        for name in NAMES:
            pid_file = root / "run" / f"{name}.pid"
            if pid_file.exists():
                pids.append(int(pid_file.read_text()))
        assert out.returncode == 0, out.stdout + out.stderr
        assert len(pids) == 4 and all(_alive(p) for p in pids)
        endpoint = f"http://127.0.0.1:{base}"
        assert f"endpoint: {endpoint}" in out.stdout
        lines = dict(
            line.strip().split(": ", 1) for line in out.stdout.splitlines() if "key: " in line
        )
        creds = json.loads((root / "gateway" / "credentials.json").read_text())
        assert lines == {"access key": creds["access_key"], "secret key": creds["secret_key"]}
        secret = root / "cluster-secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert len(secret.read_text()) == 64
        for pid in pids:  # passed through the environment, never on a command line
            assert secret.read_text() not in Path(f"/proc/{pid}/cmdline").read_text()

        deadline = time.monotonic() + 30
        while True:
            nodes = _nodes(endpoint, env, root / "gateway")
            if sum(n["state"] == "up" for n in nodes) == 3:
                break
            assert time.monotonic() < deadline, nodes
            time.sleep(0.2)
        assert {n["url"] for n in nodes} == {f"http://127.0.0.1:{base + i}" for i in (1, 2, 3)}
        assert all(n["capacity"] > 0 and n["used"] == n["chunks"] == 0 for n in nodes)

        table = _admin_nodes(endpoint, env, root / "gateway")
        assert table.split()[:6] == ["ID", "URL", "STATE", "CAPACITY", "USED", "CHUNKS"]
        assert table.rstrip().endswith("3 nodes, 3 up")

        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=creds["access_key"],
            aws_secret_access_key=creds["secret_key"],
            config=BotoConfig(region_name=REGION, s3={"addressing_style": "path"}),
        )
        body = random.Random(1).randbytes(2 * 1024 * 1024)
        s3.create_bucket(Bucket="deploy")
        s3.put_object(Bucket="deploy", Key="obj", Body=body)
        assert s3.get_object(Bucket="deploy", Key="obj")["Body"].read() == body
        s3.close()
        nodes = _nodes(endpoint, env, root / "gateway")
        deadline = time.monotonic() + 10
        while sum(n["chunks"] for n in nodes) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)  # usage arrives with the next heartbeat
            nodes = _nodes(endpoint, env, root / "gateway")
        assert sum(n["chunks"] for n in nodes) > 0

        # a second start refuses while the cluster runs
        again = _script("start", str(root), env=env)
        assert again.returncode == 1 and "already running" in again.stderr

        stop = _script("stop", str(root), env=env)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert stop.stdout.count("stopped ") == 4
        assert not [p for p in pids if _alive(p)]
        assert not list((root / "run").glob("*.pid"))
    finally:
        for pid in pids:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_compose_file_names_gateway_and_three_nodes() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert sorted(services) == ["gateway", "node1", "node2", "node3"]
    for name, service in services.items():
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["command"][0] == ("gateway" if name == "gateway" else "node")
        assert "S3DEDUP_CLUSTER_SECRET" in service["environment"]
    assert (DEPLOY / "Dockerfile").read_text().count("pip install") == 1
    for unit in ("s3dedup-gateway.service", "s3dedup-node@.service"):
        text = (DEPLOY / "systemd" / unit).read_text()
        assert "KillSignal=SIGTERM" in text and "EnvironmentFile=/etc/s3dedup/cluster.env" in text
