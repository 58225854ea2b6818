"""The load generator and the memory benchmark keep working (tiny sizes; no performance
figure is asserted)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.loadgen import MiB, S3LoadClient, S3LoadError, content, content_bytes, seed_of
from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, Server, server_env

ROOT = Path(__file__).resolve().parent.parent


async def _collect(size: int, seed: int, offset: int = 0, block: int = MiB) -> bytes:
    return b"".join([b async for b in content(size, seed, offset, block)])


async def test_content_is_deterministic_and_does_not_repeat() -> None:
    whole = await _collect(3 * MiB + 5, 42, 12345)
    assert len(whole) == 3 * MiB + 5
    assert whole == content_bytes(3 * MiB + 5, 42, 12345)
    assert whole == await _collect(3 * MiB + 5, 42, 12345, block=77777)
    assert whole[1000:2000] == content_bytes(1000, 42, 12345 + 1000)
    assert whole != content_bytes(3 * MiB + 5, 43, 12345)
    # no 64 KiB window repeats (content-defined chunks would deduplicate)
    data = content_bytes(8 * MiB, 1)
    windows = {hashlib.sha256(data[i : i + 65536]).digest() for i in range(0, len(data), 65536)}
    assert len(windows) == len(data) // 65536


async def test_load_client_against_the_server(server: Server) -> None:
    bucket = "loadgen-smoke"
    async with S3LoadClient(server.endpoint, ACCESS_KEY, SECRET_KEY, REGION, 8) as client:
        await client.create_bucket(bucket)
        await client.create_bucket(bucket)  # already owned: fine
        key = "dir/a key+with spaces&ünïcode?.bin"
        size = 3 * MiB + 17
        etag = await client.put(bucket, key, content(size, seed_of(key)), size)
        assert etag == hashlib.md5(content_bytes(size, seed_of(key))).hexdigest()
        assert await client.put(bucket, "small", b"hello") == hashlib.md5(b"hello").hexdigest()
        assert int((await client.head(bucket, key))["Content-Length"]) == size
        assert await client.get(bucket, key) == size
        assert await client.get(bucket, key, rate=50e6, max_bytes=MiB) >= MiB  # then drops it
        assert await client.get(bucket, "small") == 5

        mp_size = 12 * MiB + 3
        etag = await client.multipart_upload(bucket, "mp", mp_size, 5 * MiB, 3)
        assert etag.endswith("-3")
        assert await client.get(bucket, "mp") == mp_size
        assert sorted(await client.list_keys(bucket)) == sorted([key, "small", "mp"])

        for k in (key, "small", "mp"):
            await client.delete(bucket, k)
        try:
            await client.head(bucket, "mp")
        except S3LoadError as exc:
            assert exc.status == 404
        else:
            raise AssertionError("HEAD of a deleted object succeeded")
        assert set(await client.admin_gc(3600)) >= {"chunks_deleted", "bytes_freed"}


def test_bench_memory_smoke(tmp_path: Path) -> None:
    timeline = tmp_path / "rss.csv"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_memory.py"),
            "--scale",
            "0.005",
            "--data",
            str(tmp_path / "data"),
            "--timeline",
            str(timeline),
        ],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert {
        "scale",
        "server_pid",
        "idle_rss_mib",
        "vm_hwm_mib",
        "cases",
        "slow_reader",
        "targets_met",
        "server_log_warnings",
    } <= set(report)
    assert [c["case"] for c in report["cases"]] == ["a_single_put", "b_multipart", "c_concurrent"]
    for case in report["cases"]:
        for k in (
            "put_mb_s",
            "get_mb_s",
            "rss_before_mib",
            "put_peak_rss_mib",
            "get_peak_rss_mib",
            "peak_rss_mib",
            "peak_rss_anon_mib",
            "growth_mib",
            "target_mib",
            "ok",
        ):
            assert k in case, (case["case"], k)
        assert case["peak_rss_mib"] > 0 and case["put_mb_s"] > 0 and case["get_mb_s"] > 0
    slow = report["slow_reader"]
    assert slow["server_answers"] is True
    assert 0 < slow["read_bytes"] < slow["object_bytes"]
    for k in ("rss_before_mib", "peak_rss_mib", "rss_after_mib", "settle_seconds", "ok"):
        assert k in slow
    assert report["vm_hwm_mib"] > 0
    assert "a_single_put" in out.stdout and len(timeline.read_text().splitlines()) > 10


def test_benchmark_suite_smoke(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--scale",
            "0.002",
            "--runs",
            "1",
            "--data",
            str(tmp_path / "work"),
            "--json",
            str(report_path),
            "--cluster",
        ],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(report_path.read_text())
    assert {"machine", "scale", "runs", "sizes", "figures", "ceilings", "targets"} <= set(report)
    assert {"peak_rss_mib", "targets_met"} <= set(report)
    figures = report["figures"]
    for name in (
        "put_1g_new_mb_s",
        "put_1g_known_mb_s",
        "get_1g_mb_s",
        "put_8x256m_mb_s",
        "get_8x256m_mb_s",
        "put_4k_c64_ops_s",
        "get_4k_c64_p99_ms",
        "head_4k_c16_ops_s",
        "delete_4k_c64_ops_s",
        "copy_1g_ms",
        "list_page_ms",
        "cpu_s_per_gb_put_new",
        "boto3_put_1g_mb_s",
        "boto3_get_1g_mb_s",
    ):
        assert figures[name]["median"] > 0 or name.startswith("cpu_"), name
        assert {"min", "max", "runs", "unit", "ratio"} <= set(figures[name]), name
    assert figures["put_1g_new_mb_s"]["ratio"] > 0
    for name in ("cluster_put_1g_new_mb_s", "cluster_put_1g_known_mb_s", "cluster_get_1g_mb_s"):
        assert figures[name]["median"] > 0 and figures[name]["ratio"] > 0, name
    for name in ("md5_mb_s", "blake3_mb_s", "durable_writes_mb_s", "put_1g_mb_s", "get_1g_mb_s"):
        assert report["ceilings"][name]["median"] > 0, name
    assert {t["name"] for t in report["targets"]} >= {
        "put_new",
        "get",
        "list_page",
        "copy_1g",
        "cluster_put_new",
        "cluster_get",
    }
    assert report["peak_rss_mib"] > 0
    assert "put_1g_new_mb_s" in out.stdout and "PUT new data" in out.stdout
    for name in ("chunker_mb_s", "durable_writes_cpu_s_gb", "floor_put_new_files_cpu_s_gb"):
        assert report["ceilings"][name]["median"] > 0, name
    assert [b["describe"] for b in report["bounds"]] == [
        "PUT new, a file per chunk",
        "PUT new, appended (packs)",
        "PUT known",
        "GET",
    ]
    for b in report["bounds"]:
        assert b["floor_cpu_s_gb"] > 0 and b["bound_ratio"] > 0 and b["reached_ratio"] > 0, b
    assert "work floors" in out.stdout


def test_work_floors_add_the_parts_and_cap_puts_at_md5() -> None:
    from benchmarks.ceilings import work_floors

    ceil = {  # CPU s/GB of each part in the comments
        "md5_mb_s": 500.0,  # 2.0
        "chunker_mb_s": 2000.0,  # 0.5
        "blake3_mb_s": 4000.0,  # 0.25
        "put_1g_server_cpu_s_gb": 0.25,
        "put_1g_client_cpu_s_gb": 0.5,
        "durable_append_cpu_s_gb": 1.0,
        "durable_writes_cpu_s_gb": 2.0,
        "cached_read_cpu_s_gb": 0.25,
        "get_1g_server_cpu_s_gb": 0.25,
        "get_1g_client_cpu_s_gb": 0.25,
    }
    f = work_floors(ceil, 2)
    assert f["floor_put_known_cpu_s_gb"] == pytest.approx(3.5)
    assert f["bound_put_known_mb_s"] == pytest.approx(500.0)  # 2000 / 3.5 = 571, MD5 is 500
    assert work_floors(ceil, 1)["bound_put_known_mb_s"] == pytest.approx(1000 / 3.5)
    assert f["floor_put_new_cpu_s_gb"] == pytest.approx(4.5)
    assert f["bound_put_new_mb_s"] == pytest.approx(2000 / 4.5)
    assert f["floor_put_new_files_cpu_s_gb"] == pytest.approx(5.5)
    assert f["bound_put_new_files_mb_s"] == pytest.approx(2000 / 5.5)
    assert f["floor_get_cpu_s_gb"] == pytest.approx(1.0)
    assert f["bound_get_mb_s"] == pytest.approx(2000.0)  # a GET has no MD5 cap
    del ceil["get_1g_server_cpu_s_gb"]  # not measured (no server pid): no GET floor
    assert "floor_get_cpu_s_gb" not in work_floors(ceil, 2)
