"""Shared fixtures: a real `s3dedup serve` process on a loopback port, and real clients."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig

ACCESS_KEY = "S3DEDUPTESTKEY000001"
SECRET_KEY = "s3dedup-test-secret-key-0123456789abcdef"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_client(name: str) -> str:
    """Path of an external client program; a missing one fails under
    S3DEDUP_REQUIRE_CLIENTS=1 (CI) and skips otherwise."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("S3DEDUP_REQUIRE_CLIENTS") == "1":
            pytest.fail(f"{name} is required (S3DEDUP_REQUIRE_CLIENTS=1) but not installed")
        pytest.skip(f"{name} not installed")
    return path


@dataclass
class Server:
    data: Path
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Server:
        cmd = [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--data",
            str(self.data),
            "--listen",
            f"127.0.0.1:{self.port}",
            *self.extra_args,
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.endpoint + "/_s3dedup/health", timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self.proc = None
        return rc

    def restart(self) -> Server:
        self.stop()
        return self.start()

    def client(self, **config: Any) -> Any:
        return make_client(self.endpoint, **config)

    def admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", "admin", *args, "--endpoint", self.endpoint],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def stats(self) -> dict[str, Any]:
        out = self.admin("stats", "--json")
        assert out.returncode == 0, out.stderr
        return dict(json.loads(out.stdout))

    def fsck(self) -> dict[str, Any]:
        out = self.admin("fsck", "--json")
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        assert out.returncode == (0 if summary["ok"] else 1), out.stdout + out.stderr
        return dict(summary, output=out.stdout)

    def lifecycle(self, *args: str) -> dict[str, Any]:
        """``s3dedup admin lifecycle`` (a pass over every bucket of the server)."""
        out = self.admin("lifecycle", *args)
        assert out.returncode == 0, out.stderr
        return dict(json.loads(out.stdout))

    def gc(self, grace: float = 0) -> dict[str, Any]:
        out = self.admin("gc", "--grace", str(grace))
        assert out.returncode == 0, out.stderr
        return dict(json.loads(out.stdout))


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3DEDUP_"))}
    env.update(
        S3DEDUP_ACCESS_KEY=ACCESS_KEY,
        S3DEDUP_SECRET_KEY=SECRET_KEY,
        S3DEDUP_GC_INTERVAL="0",
        S3DEDUP_LIFECYCLE_INTERVAL="0",
        S3DEDUP_LOG_LEVEL=os.environ.get("TEST_SERVER_LOG_LEVEL", "warning"),
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    env.update(extra)
    return env


def make_server(tmp: Path, **env: str) -> Server:
    tmp.mkdir(parents=True, exist_ok=True)
    return Server(
        data=tmp / "data", port=free_port(), env=server_env(**env), log=tmp / "server.log"
    )


def make_client(endpoint: str, **config: Any) -> Any:
    params: dict[str, Any] = {
        "region_name": REGION,
        "retries": {"max_attempts": 1, "mode": "standard"},
        "s3": {"addressing_style": "path"},
    }
    params.update(config)
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=BotoConfig(**params),
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("server")).start()
    yield srv
    srv.stop()


@pytest.fixture
def s3(server: Server) -> Any:
    return server.client()


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def aws_env(server: Server, tmp_path: Path) -> dict[str, str]:
    """Environment for the aws cli pointed at the test server (no user config leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


Aws = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def aws(server: Server, aws_env: dict[str, str]) -> Aws:
    """The aws cli against the test server: ``aws("s3", "ls")``; a non-zero exit fails the
    test unless ``check=False``."""
    exe = require_client("aws")

    def run(
        *args: str, check: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [exe, "--endpoint-url", server.endpoint, *args],
            env=aws_env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=cwd,
        )
        if check:
            assert out.returncode == 0, f"aws {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
        return out

    return run
