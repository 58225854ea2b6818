"""restic (s3 backend) against a real server: init, two backups of a ~300 MiB generated tree
with ~10% changed in between, check --read-data, restore (sha256 of every file), snapshots,
ls, forget --keep-last 1 --prune and check again.

restic encrypts every pack, so the server cannot dedup between snapshots: the dedup between
the two backups is restic's own. The server's logical and stored bytes are recorded in the
test's output (``-s`` or ``-rP``) and as junit properties anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ACCESS_KEY, SECRET_KEY, Server, require_client

MiB = 1024 * 1024

Restic = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def bucket() -> str:
    """A bucket that does not exist yet: `restic init` creates it."""
    return f"restic-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def restic(server: Server, bucket: str, tmp_path: Path) -> Restic:
    exe = require_client("restic")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESTIC_"))}
    env.update(
        HOME=str(home),  # no user configuration leaks in
        XDG_CACHE_HOME=str(home / ".cache"),
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        RESTIC_PASSWORD="s3dedup-restic-test",
        RESTIC_REPOSITORY=f"s3:{server.endpoint}/{bucket}/repo",
        RESTIC_CACHE_DIR=str(tmp_path / "restic-cache"),
    )

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        start = time.monotonic()
        out = subprocess.run(
            [exe, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=cwd,
        )
        print(f"restic {' '.join(args)}: rc={out.returncode} {time.monotonic() - start:.1f}s")
        assert out.returncode == 0, f"restic {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
        return out

    return run


# --- the generated tree -------------------------------------------------------------------

_WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu "
    "s3dedup chunk object bucket restic snapshot backup restore prune index pack blob tree"
).split()


def _text(rng: random.Random, size: int) -> bytes:
    """Compressible, log-like text of exactly ``size`` bytes."""
    lines = [
        f"{i:06d} {' '.join(rng.choices(_WORDS, k=rng.randint(4, 14)))}\n".encode()
        for i in range(2048)
    ]
    out = bytearray()
    while len(out) < size:
        out += b"".join(rng.choices(lines, k=4096))
    return bytes(out[:size])


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_tree(root: Path, seed: int = 20240601) -> int:
    """~300 MiB: a few large random and compressible files, medium and many small files."""
    rng = random.Random(seed)
    total = 0

    def put(rel: str, data: bytes) -> None:
        nonlocal total
        _write(root / rel, data)
        total += len(data)

    for i in range(3):  # 120 MiB of large random files (restic cannot compress them)
        put(f"images/disk-{i}.img", rng.randbytes(40 * MiB))
    for i in range(2):  # 60 MiB of large compressible files
        put(f"logs/app-{i}.log", _text(rng, 30 * MiB))
    for d in range(10):  # ~110 MiB of medium files, half random, half text
        for i in range(20):
            size = rng.randint(100 * 1024, 1 * MiB)
            data = rng.randbytes(size) if i % 2 else _text(rng, size)
            put(f"docs/d{d:02d}/file-{i:03d}.{'bin' if i % 2 else 'txt'}", data)
    for d in range(20):  # ~5 MiB of small files, some empty
        for i in range(50):
            size = rng.choice((0, 1, 17, 512, 4096, rng.randint(1, 16 * 1024)))
            put(f"src/pkg{d:02d}/mod_{i:03d}.py", _text(rng, size) if size else b"")
    return total


def change_tree(root: Path, seed: int = 7) -> int:
    """Change ~10% of the tree (returns the bytes changed): modify in place, append, rewrite,
    add, rename and delete files. A copy of an existing file is added too (not counted)."""
    rng = random.Random(seed)
    changed = 0
    # a 2 MiB region in the middle of one disk image, and an append to a log
    with (root / "images/disk-1.img").open("r+b") as f:
        f.seek(17 * MiB)
        f.write(rng.randbytes(2 * MiB))
    with (root / "logs/app-0.log").open("ab") as f:
        f.write(_text(rng, 3 * MiB))
    changed += 5 * MiB
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.parts[-3] == "docs")
    picked = rng.sample(files, 30)
    for p in picked[:20]:  # rewrite 20 medium files
        size = p.stat().st_size
        p.write_bytes(rng.randbytes(size))
        changed += size
    for p in picked[20:]:  # delete 10 more
        changed += p.stat().st_size
        p.unlink()
    for p in (root / "src/pkg05").iterdir():  # and a directory of small files
        changed += p.stat().st_size
        p.unlink()
    (root / "src/pkg05").rmdir()
    for i in range(5):  # add new files
        data = rng.randbytes(2 * MiB) if i % 2 else _text(rng, 2 * MiB)
        _write(root / f"new/added-{i}.dat", data)
        changed += len(data)
    shutil.copyfile(root / "images/disk-0.img", root / "new/disk-0-copy.img")
    (root / "src/pkg03").rename(root / "src/pkg03-renamed")
    return changed


def digests(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h = hashlib.sha256()
            with p.open("rb") as f:
                while chunk := f.read(MiB):
                    h.update(chunk)
            out[p.relative_to(root).as_posix()] = h.hexdigest()
    return out


def keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _record(
    server: Server, label: str, before: dict[str, Any], record: Callable[[str, Any], None]
) -> dict[str, Any]:
    now = server.stats()
    delta = {k: now[k] - before[k] for k in ("objects", "logical_bytes", "stored_bytes")}
    print(
        f"server stats {label}: objects {delta['objects']:+d}, "
        f"logical {delta['logical_bytes'] / MiB:+.1f} MiB, "
        f"stored {delta['stored_bytes'] / MiB:+.1f} MiB (totals: {json.dumps(now)})"
    )
    record(f"server_{label}", json.dumps(delta))
    return now


# --- the test -----------------------------------------------------------------------------


def test_backup_check_restore_prune(
    restic: Restic,
    server: Server,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    record_property: Callable[[str, Any], None],
) -> None:
    work = tmp_path / "work"
    src = work / "src"
    start = time.monotonic()
    size = make_tree(src)
    print(f"generated {size / MiB:.0f} MiB in {time.monotonic() - start:.1f}s")
    assert 280 * MiB < size < 320 * MiB
    before = server.stats()

    restic("init")
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    first = json.loads(restic("backup", "--json", "src", cwd=work).stdout.splitlines()[-1])
    assert first["message_type"] == "summary", first
    assert first["files_new"] == sum(1 for p in src.rglob("*") if p.is_file()), first
    after_first = _record(server, "after_first_backup", before, record_property)

    changed = change_tree(src)
    print(f"changed {changed / MiB:.0f} MiB")
    assert 20 * MiB < changed < 45 * MiB
    second = json.loads(restic("backup", "--json", "src", cwd=work).stdout.splitlines()[-1])
    assert second["message_type"] == "summary", second
    assert second["files_changed"] >= 20 and second["files_new"] >= 6, second
    # restic's own dedup: the second snapshot adds about what changed, not the whole tree
    assert second["data_added"] < size / 4, second
    _record(server, "after_second_backup", after_first, record_property)

    restic("check", "--read-data")

    snapshots = json.loads(restic("snapshots", "--json").stdout)
    assert len(snapshots) == 2
    assert all(s["paths"] == [str(src)] for s in snapshots), snapshots
    listing = restic("ls", "latest").stdout.splitlines()
    assert "/src/images/disk-0.img" in listing
    assert "/src/new/disk-0-copy.img" in listing
    assert "/src/src/pkg03-renamed/mod_000.py" in listing
    assert not any(name.startswith("/src/src/pkg05") for name in listing)

    expected = digests(src)
    target = tmp_path / "restore"
    restic("restore", "latest", "--target", str(target))
    assert digests(target / "src") == expected
    shutil.rmtree(target)

    packs_before = set(keys(s3, bucket, "repo/data/"))
    restic("forget", "--keep-last", "1", "--prune")
    snapshots_after = json.loads(restic("snapshots", "--json").stdout)
    assert [s["id"] for s in snapshots_after] == [snapshots[-1]["id"]]
    packs_after = set(keys(s3, bucket, "repo/data/"))
    assert packs_before - packs_after, "prune deleted no pack"  # and repacked the rest
    restic("check", "--read-data")
    pruned = _record(server, "after_prune", before, record_property)
    server.gc()
    collected = _record(server, "after_prune_and_gc", before, record_property)
    assert collected["stored_bytes"] < pruned["stored_bytes"]  # gc freed the pruned packs
    print(f"total {time.monotonic() - start:.1f}s")
    shutil.rmtree(work)  # pytest keeps the last runs' tmp_path: keep them small


def test_fsck(server: Server) -> None:
    assert server.fsck()["ok"]
