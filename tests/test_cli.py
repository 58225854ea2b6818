"""The `s3dedup` command line as a contract: run the real console entry (``python -m
gateway.cli`` and the installed ``s3dedup`` script) in subprocesses, as a user would."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, free_port, make_server, server_env

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


def entry(kind: str) -> list[str]:
    """The command that runs the CLI: the module, or the installed console script."""
    if kind == "module":
        return [sys.executable, "-m", "gateway.cli"]
    path = shutil.which("s3dedup")
    if path is None:
        pytest.skip("the s3dedup console script is not on PATH")
    return [path]


@pytest.fixture(params=["module", "script"])
def cli(request: pytest.FixtureRequest) -> list[str]:
    return entry(request.param)


def bare_env(**extra: str) -> dict[str, str]:
    """A server environment without the S3DEDUP_* credentials (they get generated)."""
    env = server_env(**extra)
    if "S3DEDUP_ACCESS_KEY" not in extra:
        env.pop("S3DEDUP_ACCESS_KEY")
    if "S3DEDUP_SECRET_KEY" not in extra:
        env.pop("S3DEDUP_SECRET_KEY")
    return env


@dataclass
class Proc:
    """A `s3dedup serve` started with arbitrary arguments, environment and working directory."""

    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    outputs: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Proc:
        self.log.write_bytes(b"")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.cmd, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.output}")
            try:
                with urllib.request.urlopen(self.endpoint + "/_s3dedup/health", timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.output}")

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self.outputs.append(self.output)
        self.proc = None
        return rc

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill()


def serve(
    procs: list[Proc],
    tmp: Path,
    *args: str,
    cli: list[str] | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    cwd: Path | None = None,
) -> Proc:
    """A serve process listening on ``port`` (``--listen`` is added unless ``port`` is given:
    then the arguments, config file or environment are expected to choose it)."""
    listen: list[str] = []
    if port is None:
        port = free_port()
        listen = ["--listen", f"127.0.0.1:{port}"]
    p = Proc(
        cmd=[*(cli or entry("module")), "serve", *listen, *args],
        env=env if env is not None else server_env(),
        cwd=cwd or tmp,
        log=tmp / f"serve-{len(procs)}.log",
        port=port,
    )
    procs.append(p)
    return p


def client(endpoint: str, ak: str = ACCESS_KEY, sk: str = SECRET_KEY) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        config=BotoConfig(
            region_name=REGION, retries={"max_attempts": 1}, s3={"addressing_style": "path"}
        ),
    )


def admin(
    cli: list[str], *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli, "admin", *args],
        env=env if env is not None else server_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def banner_keys(output: str) -> tuple[str, str]:
    ak = re.search(r"access key: (\S+)", output)
    sk = re.search(r"secret key: (\S+)", output)
    assert ak and sk, output
    return ak.group(1), sk.group(1)


def works(endpoint: str, ak: str, sk: str) -> bool:
    try:
        client(endpoint, ak, sk).list_buckets()
    except ClientError as exc:
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        return False
    return True


# -- credentials ----------------------------------------------------------------------------


def test_generated_credentials_saved_and_reused(
    tmp_path: Path, procs: list[Proc], cli: list[str]
) -> None:
    data = tmp_path / "data"
    srv = serve(procs, tmp_path, "--data", str(data), cli=cli, env=bare_env()).start()
    ak, sk = banner_keys(srv.output)
    saved = data / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text()) == {"access_key": ak, "secret_key": sk}
    assert "credentials generated and saved" in srv.output
    # the ready-to-paste example names the endpoint and the key pair
    assert f"AWS_ACCESS_KEY_ID={ak} AWS_SECRET_ACCESS_KEY={sk}" in srv.output
    assert f"aws --endpoint-url {srv.endpoint}" in srv.output

    s3 = client(srv.endpoint, ak, sk)
    s3.create_bucket(Bucket="gen")
    s3.put_object(Bucket="gen", Key="k", Body=b"hello")
    assert not works(srv.endpoint, ACCESS_KEY, SECRET_KEY)
    assert srv.stop() == 0

    srv.start()
    assert banner_keys(srv.output) == (ak, sk)
    assert "credentials generated" not in srv.output
    assert "credentials loaded from" in srv.output
    assert json.loads(saved.read_text()) == {"access_key": ak, "secret_key": sk}
    assert client(srv.endpoint, ak, sk).get_object(Bucket="gen", Key="k")["Body"].read() == b"hello"
    # the admin commands find the key pair in the data directory
    out = admin(
        cli, "stats", "--json", "--endpoint", srv.endpoint, "--data", str(data), env=bare_env()
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["objects"] == 1
    assert srv.stop() == 0


def test_banner_example_is_ready_to_paste(tmp_path: Path, procs: list[Proc]) -> None:
    aws = shutil.which("aws")
    if aws is None:
        pytest.skip("aws cli not installed")
    srv = serve(procs, tmp_path, "--data", str(tmp_path / "data"), env=bare_env()).start()
    lines = srv.output.splitlines()
    at = lines.index("try:")
    example = "\n".join(line.strip() for line in lines[at + 1 : at + 3])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3DEDUP_"))}
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    out = subprocess.run(
        ["bash", "-c", example], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    ak, sk = banner_keys(srv.output)
    assert [b["Name"] for b in client(srv.endpoint, ak, sk).list_buckets()["Buckets"]] == [
        "my-bucket"
    ]
    assert srv.stop() == 0


def test_default_data_dir_is_cwd_s3dedup_data(tmp_path: Path, procs: list[Proc]) -> None:
    srv = serve(procs, tmp_path, env=bare_env(), cwd=tmp_path).start()
    data = tmp_path / "s3dedup-data"
    assert (data / "credentials.json").is_file()
    assert (data / "index").is_dir()
    ak, sk = banner_keys(srv.output)
    # the admin commands run in the same directory find the generated key pair too
    out = admin(
        entry("module"), "stats", "--json", "--endpoint", srv.endpoint, env=bare_env(), cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert works(srv.endpoint, ak, sk)
    assert srv.stop() == 0


def test_default_listen_address(tmp_path: Path, procs: list[Proc]) -> None:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 9000))
        except OSError:
            pytest.skip("127.0.0.1:9000 is in use")
    srv = serve(procs, tmp_path, "--data", str(tmp_path / "d"), port=9000).start()
    assert "http://127.0.0.1:9000" in srv.output
    assert srv.stop() == 0


def test_env_credentials_take_precedence(tmp_path: Path, procs: list[Proc]) -> None:
    data = tmp_path / "data"
    srv = serve(procs, tmp_path, "--data", str(data), env=bare_env()).start()
    gen_ak, gen_sk = banner_keys(srv.output)
    assert srv.stop() == 0

    srv.env = server_env()  # S3DEDUP_ACCESS_KEY / S3DEDUP_SECRET_KEY set
    srv.start()
    assert works(srv.endpoint, ACCESS_KEY, SECRET_KEY)
    assert not works(srv.endpoint, gen_ak, gen_sk)
    assert gen_sk not in srv.output and SECRET_KEY not in srv.output
    assert "S3DEDUP_ACCESS_KEY" in srv.output
    assert srv.stop() == 0


def test_half_configured_env_credentials_are_refused(tmp_path: Path) -> None:
    env = bare_env(S3DEDUP_ACCESS_KEY="ONLYTHEKEY")
    out = subprocess.run(
        [
            *entry("module"),
            "serve",
            "--data",
            str(tmp_path / "d"),
            "--listen",
            f"127.0.0.1:{free_port()}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "S3DEDUP_SECRET_KEY" in out.stderr
    assert not (tmp_path / "d" / "credentials.json").exists()


# -- configuration file ---------------------------------------------------------------------


def test_config_file_and_precedence(tmp_path: Path, procs: list[Proc]) -> None:
    p_file, p_env, p_flag = free_port(), free_port(), free_port()
    d_file, d_flag = tmp_path / "from-file", tmp_path / "from-flag"
    conf = tmp_path / "s3dedup.toml"
    conf.write_text(
        f'listen = "127.0.0.1:{p_file}"\ndata = "{d_file}"\ngc-interval = 0\n'
        'log_level = "warning"\n'
    )
    # the file sets listen and data
    srv = serve(procs, tmp_path, "--config", str(conf), port=p_file).start()
    assert (d_file / "index").is_dir()
    assert srv.stop() == 0

    # flags override the file
    srv = serve(
        procs,
        tmp_path,
        "--config",
        str(conf),
        "--listen",
        f"127.0.0.1:{p_flag}",
        "--data",
        str(d_flag),
        port=p_flag,
    ).start()
    assert (d_flag / "index").is_dir()
    assert srv.stop() == 0

    # the environment overrides the file
    srv = serve(
        procs,
        tmp_path,
        "--config",
        str(conf),
        port=p_env,
        env=server_env(S3DEDUP_LISTEN=f"127.0.0.1:{p_env}"),
    ).start()
    assert srv.stop() == 0

    # ... and flags override the environment
    srv = serve(
        procs,
        tmp_path,
        "--config",
        str(conf),
        "--listen",
        f"127.0.0.1:{p_flag}",
        port=p_flag,
        env=server_env(S3DEDUP_LISTEN=f"127.0.0.1:{p_env}"),
    ).start()
    assert srv.stop() == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('listen = "127.0.0.1:1"\nbogus = 1\n', "unknown setting 'bogus'"),
        ("listen = [unclosed\n", "s3dedup.toml"),
        ('listen = "no-port-here"\n', "HOST:PORT"),
        ('log_level = "loud"\n', "log_level must be"),
        ("shutdown-timeout = -1\n", "shutdown_timeout must be"),
    ],
)
def test_bad_config_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    conf = tmp_path / "s3dedup.toml"
    conf.write_text(text)
    env = server_env()
    del env["S3DEDUP_LOG_LEVEL"]  # the environment would override the file
    out = subprocess.run(
        [*entry("module"), "serve", "--config", str(conf), "--data", str(tmp_path / "d")],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_environment_value_is_a_clear_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [*entry("module"), "serve", "--data", str(tmp_path / "d")],
        env=server_env(S3DEDUP_GC_INTERVAL="soon"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "S3DEDUP_GC_INTERVAL" in out.stderr and "Traceback" not in out.stderr


def test_changed_chunker_is_refused_clearly(tmp_path: Path) -> None:
    srv = make_server(tmp_path).start()
    assert srv.stop() == 0
    out = subprocess.run(
        [*entry("module"), "serve", "--data", str(srv.data), "--listen", f"127.0.0.1:{srv.port}"],
        env=server_env(S3DEDUP_CHUNK_AVG=str(128 * 1024)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "refusing" in out.stderr and "Traceback" not in out.stderr


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [*entry("module"), "serve", "--config", str(tmp_path / "nope.toml")],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "nope.toml" in out.stderr and "Traceback" not in out.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run(
            [
                *entry("module"),
                "serve",
                "--data",
                str(tmp_path / "d"),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            env=server_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode != 0
    assert f"127.0.0.1:{port}" in out.stderr and "Traceback" not in out.stderr


# -- graceful shutdown ----------------------------------------------------------------------


class SlowPut(threading.Thread):
    """A client that PUTs ``size`` bytes in pieces with pauses (a signed raw HTTP request)."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        key: str,
        size: int,
        piece: int,
        pause: float,
        stall_at: int | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.port = int(endpoint.rsplit(":", 1)[1])
        self.url = f"{endpoint}/{bucket}/{key}"
        self.path = f"/{bucket}/{key}"
        self.body = os.urandom(size)
        self.piece, self.pause = piece, pause
        self.stall_at = stall_at  # stop sending there and wait for the answer
        self.sent = 0
        self.status: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        req = AWSRequest(
            method="PUT",
            url=self.url,
            headers={
                "Content-Length": str(len(self.body)),
                "X-Amz-Content-SHA256": hashlib.sha256(self.body).hexdigest(),
            },
        )
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(req)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.putrequest("PUT", self.path, skip_accept_encoding=True)
            for k, v in req.headers.items():
                conn.putheader(k, v)
            conn.endheaders()
            view = memoryview(self.body)
            while self.sent < min(len(self.body), self.stall_at or len(self.body)):
                conn.send(view[self.sent : self.sent + self.piece])
                self.sent += len(view[self.sent : self.sent + self.piece])
                time.sleep(self.pause)
            resp = conn.getresponse()
            resp.read()
            self.status = resp.status
        except (OSError, http.client.HTTPException) as exc:
            self.error = exc
        finally:
            conn.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_upload_is_graceful(tmp_path: Path, sig: int) -> None:
    srv = make_server(tmp_path)
    srv.start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="bkt")
        s3.put_object(Bucket="bkt", Key="before", Body=b"x" * 100_000)
        put = SlowPut(srv.endpoint, "bkt", "big", 50 * MiB, piece=MiB, pause=0.04)
        put.start()
        while put.sent < 10 * MiB and put.is_alive():
            time.sleep(0.01)
        assert put.is_alive(), put.error
        assert srv.proc is not None
        proc = srv.proc
        proc.send_signal(sig)
        put.join(60)
        assert not put.is_alive()
        rc = proc.wait(60)
        srv.proc = None
    finally:
        if srv.proc is not None:
            srv.proc.kill()
            srv.proc.wait()
    assert rc == 0, srv.log.read_text()[-3000:]
    # either the upload finished (200) or it failed cleanly (connection closed / 5xx)
    assert put.status == 200 or put.error is not None or (put.status or 0) >= 500, put.status

    fsck = subprocess.run(
        [*entry("module"), "admin", "fsck", "--data", str(srv.data), "--json"],
        env=srv.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(fsck.stdout.splitlines()[-1])["pinned_references"] == 0, fsck.stdout
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr

    srv.start()  # the index opens again
    try:
        s3 = srv.client()
        assert s3.get_object(Bucket="bkt", Key="before")["Body"].read() == b"x" * 100_000
        if put.status == 200:
            got = s3.get_object(Bucket="bkt", Key="big")["Body"].read()
            assert hashlib.sha256(got).digest() == hashlib.sha256(put.body).digest()
        else:
            with pytest.raises(ClientError):
                s3.head_object(Bucket="bkt", Key="big")
        assert srv.fsck()["ok"]
    finally:
        assert srv.stop() == 0


def test_sigterm_during_download_lets_it_finish(tmp_path: Path) -> None:
    srv = make_server(tmp_path)
    srv.start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="bkt")
        body = os.urandom(30 * MiB)
        s3.put_object(Bucket="bkt", Key="big", Body=body)
        url = srv.client(signature_version="s3v4").generate_presigned_url(
            "get_object", Params={"Bucket": "bkt", "Key": "big"}, ExpiresIn=600
        )
        got = bytearray()
        with urllib.request.urlopen(url, timeout=60) as resp:
            got += resp.read(5 * MiB)
            assert srv.proc is not None
            proc = srv.proc
            proc.send_signal(signal.SIGTERM)
            while piece := resp.read(MiB):
                got += piece
                time.sleep(0.03)
        assert len(got) == len(body), f"{len(body) - len(got)} bytes short"
        assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
        assert proc.wait(60) == 0, srv.log.read_text()[-3000:]
        srv.proc = None
    finally:
        if srv.proc is not None:
            srv.proc.kill()
            srv.proc.wait()


@pytest.mark.parametrize("second_signal", [False, True])
def test_stalled_upload_does_not_hold_shutdown(tmp_path: Path, second_signal: bool) -> None:
    """A client that stops sending mid-body: SIGTERM waits shutdown_timeout for it (or less
    after a second signal), then fails it; the exit is still clean."""
    timeout = "60" if second_signal else "2"
    srv = make_server(tmp_path, S3DEDUP_SHUTDOWN_TIMEOUT=timeout)
    srv.start()
    try:
        srv.client().create_bucket(Bucket="bkt")
        put = SlowPut(
            srv.endpoint, "bkt", "stalled", 20 * MiB, piece=MiB, pause=0, stall_at=8 * MiB
        )
        put.start()
        while put.sent < 8 * MiB and put.is_alive():
            time.sleep(0.01)
        time.sleep(0.3)
        assert srv.proc is not None
        proc = srv.proc
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        if second_signal:
            time.sleep(0.5)
            assert proc.poll() is None  # still waiting for the upload
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
        srv.proc = None
        assert time.monotonic() - started < 10
    finally:
        if srv.proc is not None:
            srv.proc.kill()
            srv.proc.wait()
    assert rc == 0, srv.log.read_text()[-3000:]
    put.join(10)
    assert put.status is None and put.error is not None
    srv.start()
    try:
        with pytest.raises(ClientError):
            srv.client().head_object(Bucket="bkt", Key="stalled")
        report = srv.fsck()
        assert report["ok"] and report["pinned_references"] == 0, report
    finally:
        assert srv.stop() == 0


def test_sigterm_idle_server_exits_zero(tmp_path: Path, procs: list[Proc], cli: list[str]) -> None:
    srv = serve(procs, tmp_path, "--data", str(tmp_path / "d"), cli=cli).start()
    assert srv.stop(signal.SIGTERM) == 0
    srv.start()
    assert srv.stop(signal.SIGINT) == 0


# -- admin ----------------------------------------------------------------------------------


def test_admin_via_endpoint(tmp_path: Path, cli: list[str]) -> None:
    srv = make_server(tmp_path).start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="bkt")
        body = os.urandom(3 * MiB)
        s3.put_object(Bucket="bkt", Key="one", Body=body)
        s3.put_object(Bucket="bkt", Key="two", Body=body)  # deduplicated
        s3.put_object(Bucket="bkt", Key="small", Body=b"tiny")  # inline

        out = admin(cli, "stats", "--json", "--endpoint", srv.endpoint, env=srv.env)
        assert out.returncode == 0, out.stderr
        st = json.loads(out.stdout)
        assert {"objects", "logical_bytes", "stored_bytes", "chunks", "dedup_ratio"} <= st.keys()
        assert st["objects"] == 3
        assert st["logical_bytes"] == 2 * len(body) + 4
        assert st["stored_bytes"] == len(body) + 4
        assert st["chunks"] >= 3
        assert st["dedup_ratio"] == pytest.approx((2 * len(body) + 4) / (len(body) + 4), 1e-3)

        out = admin(cli, "stats", "--endpoint", srv.endpoint, env=srv.env)
        assert out.returncode == 0, out.stderr
        assert re.search(r"dedup_ratio: 2\.", out.stdout), out.stdout

        out = admin(cli, "fsck", "--endpoint", srv.endpoint, env=srv.env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "0 problems" in out.stdout

        s3.delete_object(Bucket="bkt", Key="one")
        s3.delete_object(Bucket="bkt", Key="two")
        # the default grace period (an hour) keeps the chunks
        out = admin(cli, "gc", "--endpoint", srv.endpoint, env=srv.env)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["chunks_deleted"] == 0
        out = admin(cli, "gc", "--grace", "0", "--endpoint", srv.endpoint, env=srv.env)
        assert out.returncode == 0, out.stderr
        gc = json.loads(out.stdout)
        assert gc["chunks_deleted"] == st["chunks"]
        assert gc["bytes_freed"] == len(body)
        after = srv.stats()
        assert after["objects"] == 1 and after["chunks"] == 0 and after["stored_bytes"] == 4
        fsck = srv.fsck()
        assert fsck["ok"] and fsck["store_chunks"] == 0, fsck

        out = admin(cli, "gc", "--grace", "-1", "--endpoint", srv.endpoint, env=srv.env)
        assert out.returncode != 0 and "grace" in out.stderr
    finally:
        assert srv.stop() == 0


def test_fsck_data_on_stopped_server(tmp_path: Path, cli: list[str]) -> None:
    srv = make_server(tmp_path).start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="bkt")
        for i in range(3):
            s3.put_object(Bucket="bkt", Key=f"k{i}", Body=os.urandom(MiB))
    finally:
        assert srv.stop() == 0

    def fsck(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, "admin", "fsck", "--data", str(srv.data), *extra],
            env=srv.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    out = fsck()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 problems" in out.stdout
    out = fsck("--verify-data", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(out.stdout.splitlines()[-1])
    assert summary["ok"] and summary["objects"] == 3 and summary["store_chunks"] >= 3

    files = sorted(p for p in (srv.data / "store" / "chunks").glob("*/*/*") if p.is_file())
    assert len(files) == summary["store_chunks"]
    lost = files[0]
    assert lost.parent.parent.name == lost.name[:2] and lost.parent.name == lost.name[2:4]
    lost.unlink()
    stray = srv.data / "store" / "chunks" / "ee" / "ee" / ("ee" * 32)
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"not referenced by the index")

    out = fsck()
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"chunk {lost.name}: stored per the index, missing in the store" in out.stdout
    assert f"chunk {stray.name}: in the store, unknown to the index" in out.stdout

    # no index here at all
    out = subprocess.run(
        [*cli, "admin", "fsck", "--data", str(tmp_path / "nothing")],
        env=srv.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "no s3dedup index" in out.stderr
    assert not (tmp_path / "nothing").exists()


def _stopped_store(tmp_path: Path) -> tuple[Any, list[Path]]:
    srv = make_server(tmp_path).start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="bkt")
        for i in range(2):
            s3.put_object(Bucket="bkt", Key=f"k{i}", Body=os.urandom(MiB))
    finally:
        assert srv.stop() == 0
    files = sorted(p for p in (srv.data / "store" / "chunks").glob("*/*/*") if p.is_file())
    return srv, files


def test_fsck_verify_data_reports_a_damaged_chunk(tmp_path: Path) -> None:
    srv, files = _stopped_store(tmp_path)
    damaged = files[0]
    data = bytearray(damaged.read_bytes())
    data[100] ^= 0xFF
    damaged.chmod(0o600)
    damaged.write_bytes(bytes(data))

    def fsck(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*entry("module"), "admin", "fsck", "--data", str(srv.data), *extra],
            env=srv.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    out = fsck()
    assert out.returncode == 0, out.stdout + out.stderr  # only --verify-data reads chunks
    out = fsck("--verify-data")
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 1
    assert f"chunk {damaged.name}: content does not match its name" in out.stdout


def test_fsck_data_refuses_a_running_server(tmp_path: Path) -> None:
    srv = make_server(tmp_path).start()
    try:
        out = subprocess.run(
            [*entry("module"), "admin", "fsck", "--data", str(srv.data)],
            env=srv.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 1
        assert "in use" in out.stderr and "--endpoint" in out.stderr, out.stderr
        # nor can a second server share the data directory
        second = make_server(tmp_path / "second")
        out = subprocess.run(
            [
                *entry("module"),
                "serve",
                "--data",
                str(srv.data),
                "--listen",
                f"127.0.0.1:{second.port}",
            ],
            env=srv.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 1 and "in use" in out.stderr, out.stderr
        assert srv.fsck()["ok"]
    finally:
        assert srv.stop() == 0


def test_fsck_needs_data_or_endpoint(tmp_path: Path) -> None:
    out = admin(entry("module"), "fsck")
    assert out.returncode == 2 and "--data" in out.stderr


def test_admin_with_wrong_credentials(tmp_path: Path, cli: list[str], server: Any) -> None:
    env = server_env(S3DEDUP_ACCESS_KEY=ACCESS_KEY, S3DEDUP_SECRET_KEY="wrong-secret")
    for args in (["stats"], ["gc", "--grace", "0"], ["fsck"]):
        out = admin(cli, *args, "--endpoint", server.endpoint, env=env)
        assert out.returncode != 0
        assert "SignatureDoesNotMatch" in out.stderr, out.stderr
        assert "S3DEDUP_SECRET_KEY" in out.stderr
        assert "Traceback" not in out.stderr and "<?xml" not in out.stderr
        assert out.stdout == ""
    env = server_env(S3DEDUP_ACCESS_KEY="NOSUCHKEY", S3DEDUP_SECRET_KEY="x")
    out = admin(cli, "stats", "--endpoint", server.endpoint, env=env)
    assert out.returncode != 0 and "InvalidAccessKeyId" in out.stderr, out.stderr


def test_admin_without_credentials(tmp_path: Path, server: Any) -> None:
    out = admin(
        entry("module"), "stats", "--endpoint", server.endpoint, env=bare_env(), cwd=tmp_path
    )
    assert out.returncode != 0
    assert "S3DEDUP_ACCESS_KEY" in out.stderr and "Traceback" not in out.stderr


def test_admin_unreachable_endpoint(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = admin(entry("module"), "stats", "--endpoint", url)
    assert out.returncode != 0
    assert url in out.stderr and "Traceback" not in out.stderr


# -- the benchmark keeps working ------------------------------------------------------------


def test_bench_dedup_smoke(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_dedup.py"),
            "--mib",
            "8",
            "--versions",
            "3",
            "--files",
            "2",
            "--seed",
            "7",
            "--work",
            str(tmp_path),
        ],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    versions = report["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert all(7 * MiB < v["logical_bytes"] < 9 * MiB for v in versions)
    assert versions[0]["stored_bytes_added"] == versions[0]["logical_bytes"]
    for v in versions[1:]:  # the later versions mostly deduplicate against the first
        assert 0 < v["stored_bytes_added"] < v["logical_bytes"] / 2
        assert v["upload_mb_s"] > 0
    total = report["total"]
    assert total["logical_bytes"] == sum(v["logical_bytes"] for v in versions)
    assert total["stored_bytes"] == sum(v["stored_bytes_added"] for v in versions)
    assert total["dedup_ratio"] > 1.8
    assert "total" in out.stdout.splitlines()[-2]
