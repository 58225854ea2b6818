"""rclone (v1.60+) against a real server: copy / check / sync / lsjson / server-side copy /
touch / purge, multipart uploads, and `rclone mount` over FUSE — as users run them.

The remote is configured only through a temporary config file (``RCLONE_CONFIG``), made by the
``rclone config create`` command docs/clients.md shows: ``type = s3``, ``provider = Other``,
keys, endpoint, region. Nothing else is set on the backend. Flags beyond that, and why:

- ``--retries 1 --low-level-retries 1`` on every command: rclone retries a failed operation
  silently; a compatibility test must see the first failure.
- the environment drops ``AWS_*`` (rclone's AWS SDK reads e.g. ``AWS_CA_BUNDLE`` and fails on
  an http endpoint with it) and ``RCLONE_*`` (no user configuration leaks in);
  ``RCLONE_CACHE_DIR`` points into the test's temporary directory.
- ``--s3-upload-cutoff 5M --s3-chunk-size 5M`` only in the multipart tests (rclone's defaults,
  200M / 5M, keep a 50 MiB file in a single PUT), with ``--s3-use-multipart-etag true`` so
  rclone also verifies the multipart ETag (MD5 of the part MD5s); ``--s3-copy-cutoff 5M`` in
  the multipart server-side copy test (UploadPartCopy; the default cutoff is 4.6 GiB).
- ``--s3-list-chunk 7`` / ``--s3-list-version`` / ``--fast-list`` in one listing check, to
  page listings both ways.
- ``--s3-list-url-encode true`` only in the control-character test (provider Other lists
  without ``encoding-type=url``; XML 1.0 cannot carry U+0001 and friends).
- mount: ``--vfs-cache-mode writes`` (needed for random-access writes) and
  ``--vfs-write-back 0s`` (upload on close instead of 5 s later, to keep the test short).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import random
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, Server, require_client

MiB = 1024 * 1024

Rclone = Callable[..., subprocess.CompletedProcess[str]]

# File names rclone users have: spaces, unicode (NFC and NFD forms of the same letter are two
# names), URL/XML/shell specials, a tab and a carriage return, leading/trailing spaces, dots,
# and a 255-byte name (the Linux limit).
SPECIAL_NAMES = [
    "a b.txt",
    "ü.txt",
    "日本語のファイル.txt",
    "emoji 🎉.bin",
    "nfc-\u00fc",
    "nfd-u\u0308",
    "zero\u200bwidth",
    "+plus",
    "%",
    "%25percent",
    "question?",
    "hash#",
    "amp&and",
    "eq=",
    "semi;colon",
    "quote'",
    'dq"',
    "tilde~",
    "brackets[]",
    "curly{}",
    "star*",
    "back\\slash",
    "lt<gt>",
    "pipe|",
    "caret^",
    "back`tick",
    "comma,",
    "at@",
    "dollar$",
    "excl!",
    "paren()",
    "tab\tx",
    "cr\rx",
    " lead",
    "trail ",
    "dots...",
    ".hidden",
    "a..b",
    "x" * 251 + ".txt",
]


# -- helpers --------------------------------------------------------------------------------


def md5_hex(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as f:
        while block := f.read(MiB):
            h.update(block)
    return h.hexdigest()


def local_tree(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def remote_keys(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    """key (relative to ``prefix``) → size, via boto3 (not rclone)."""
    out: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"][len(prefix) :]] = obj["Size"]
    return out


def rfc3339_ns(value: str) -> int:
    """lsjson's ModTime (RFC 3339 with up to 9 fraction digits) as epoch nanoseconds."""
    value = value.replace("Z", "+00:00")
    main, _, rest = value.partition(".")
    frac, tz = "", "+00:00"
    if rest:
        i = next(i for i, c in enumerate(rest) if not c.isdigit())
        frac, tz = rest[:i], rest[i:]
    else:
        main, tz = value[:19], value[19:]
    secs = int(datetime.fromisoformat(main + tz).timestamp())
    return secs * 10**9 + int((frac + "000000000")[:9])


def make_tree(root: Path, big: Path) -> None:
    """Nested dirs, ~100 small files (special names included), an empty file, ``big``."""
    rng = random.Random(1234)
    dirs = [root, root / "d1", root / "d1" / "d2" / "d3", root / "sp ace", root / "ünï"]
    dirs.append(root / "dir ?#%&+=;")
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(SPECIAL_NAMES):
        (dirs[i % len(dirs)] / name).write_bytes(rng.randbytes(rng.randrange(1, 4096)))
    for i in range(100 - len(SPECIAL_NAMES)):
        (dirs[i % len(dirs)] / f"file-{i:03d}.dat").write_bytes(
            rng.randbytes(rng.randrange(1, 20000))
        )
    (root / "d1" / "empty").write_bytes(b"")
    shutil.copyfile(big, root / "d1" / "d2" / "big.bin")


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rclone_exe() -> str:
    return require_client("rclone")


@pytest.fixture(scope="module")
def rclone_env(
    rclone_exe: str, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """A config made with the `rclone config create` command of docs/clients.md, which
    writes the ini form shown there."""
    tmp = tmp_path_factory.mktemp("rclone")
    conf = tmp / "rclone.conf"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env.update(RCLONE_CONFIG=str(conf), RCLONE_CACHE_DIR=str(tmp / "cache"))
    subprocess.run(
        [
            rclone_exe,
            "config",
            "create",
            "s3d",
            "s3",
            "provider=Other",
            f"access_key_id={ACCESS_KEY}",
            f"secret_access_key={SECRET_KEY}",
            f"endpoint={server.endpoint}",
            f"region={REGION}",
        ],
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    lines = {line.strip() for line in conf.read_text().splitlines() if line.strip()}
    assert lines == {
        "[s3d]",
        "type = s3",
        "provider = Other",
        f"access_key_id = {ACCESS_KEY}",
        f"secret_access_key = {SECRET_KEY}",
        f"endpoint = {server.endpoint}",
        f"region = {REGION}",
    }
    return env


@pytest.fixture
def rclone(rclone_exe: str, rclone_env: dict[str, str]) -> Rclone:
    def run(
        *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [rclone_exe, "--retries", "1", "--low-level-retries", "1", *args],
            env=rclone_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert out.returncode == 0, f"rclone {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
            assert " ERROR " not in out.stderr, out.stderr
        return out

    return run


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    path.write_bytes(random.Random(50).randbytes(50 * MiB))
    return path


# rclone prints control characters in names as their Unicode pictures (U+2400 + c)
UNPICTURE = {0x2400 + c: c for c in range(0x20)}


def lsjson(rclone: Rclone, remote: str, *flags: str) -> dict[str, dict[str, Any]]:
    out = rclone("lsjson", "-R", "--files-only", *flags, remote)
    return {e["Path"].translate(UNPICTURE): e for e in json.loads(out.stdout)}


def check_both_ways(rclone: Rclone, local: Path, remote: str) -> None:
    for args in (
        (str(local), remote),  # hashes (MD5) and sizes
        (remote, str(local)),
        ("--download", str(local), remote),  # byte by byte
    ):
        out = rclone("check", *args)
        assert "0 differences found" in out.stderr, out.stderr


# -- tests ----------------------------------------------------------------------------------


def test_copy_check_sync_lsjson_purge(
    rclone: Rclone, s3: Any, bucket: str, tmp_path: Path, big_file: Path
) -> None:
    src = tmp_path / "src"
    make_tree(src, big_file)
    remote = f"s3d:{bucket}/path"
    rclone("copy", str(src), remote)
    check_both_ways(rclone, src, remote)
    files = local_tree(src)
    assert len(files) > 100
    assert remote_keys(s3, bucket, "path/") == {k: p.stat().st_size for k, p in files.items()}

    # lsjson: sizes, modification times to the nanosecond (x-amz-meta-mtime), MD5 hashes
    listed = lsjson(rclone, remote, "--hash")
    assert set(listed) == set(files)
    for key, path in files.items():
        e = listed[key]
        assert e["Size"] == path.stat().st_size, key
        assert rfc3339_ns(e["ModTime"]) == path.stat().st_mtime_ns, key
        assert e["Hashes"]["md5"] == md5_hex(path), key
    # paged listings (7 keys a page): V1 markers and V2 continuation tokens, delimited and
    # recursive (--fast-list), with and without encoding-type=url
    for flags in (
        ("--s3-list-version", "1", "--s3-list-url-encode", "false"),
        ("--s3-list-version", "2", "--s3-list-url-encode", "true", "--fast-list"),
    ):
        paged = lsjson(rclone, remote, "--s3-list-chunk", "7", *flags)
        assert {k: e["Size"] for k, e in paged.items()} == {k: e["Size"] for k, e in listed.items()}
    head = s3.head_object(Bucket=bucket, Key="path/d1/empty")
    mtime_ns = (src / "d1" / "empty").stat().st_mtime_ns
    assert Decimal(head["Metadata"]["mtime"]) * 10**9 == mtime_ns

    # change some files (one with the same size: the mtime tells), add and delete some
    (src / "a b.txt").write_bytes(b"changed content")
    same_size = src / "d1" / SPECIAL_NAMES[1]
    size = same_size.stat().st_size
    same_size.write_bytes(b"\xff" * size)
    os.utime(same_size, ns=(time.time_ns(), same_size.stat().st_mtime_ns + 10**9))
    (src / "new dir" / "sub").mkdir(parents=True)
    (src / "new dir" / "sub" / "new ✓.txt").write_bytes(b"new")
    (src / "added#1").write_bytes(b"added")
    deleted = sorted(k for k in files if k.startswith("d1/d2/d3/"))[:3]
    deleted += [k for k in files if k.endswith("hash#")]
    for rel in deleted:
        (src / rel).unlink()
    shutil.rmtree(src / "ünï")
    rclone("sync", str(src), remote)
    check_both_ways(rclone, src, remote)
    keys = remote_keys(s3, bucket, "path/")
    files = local_tree(src)
    assert keys == {k: p.stat().st_size for k, p in files.items()}
    assert not any(k.startswith("ünï/") for k in keys)
    for rel in deleted:
        assert rel not in keys

    # only a modification time changed: sync sets it on the object (CopyObject onto itself,
    # metadata REPLACE) instead of uploading
    path = next(p for k, p in local_tree(src).items() if k.endswith("a..b"))
    os.utime(path, ns=(time.time_ns(), 1_600_000_000_123_456_789))
    out = rclone("sync", "-v", str(src), remote)
    assert "Updated modification time in destination" in out.stderr, out.stderr
    assert "Copied" not in out.stderr, out.stderr
    key = path.relative_to(src).as_posix()
    assert rfc3339_ns(lsjson(rclone, remote)[key]["ModTime"]) == 1_600_000_000_123_456_789

    # a change only a checksum sees (same size, same mtime): sync --checksum uploads it
    path = next(p for k, p in local_tree(src).items() if k.endswith("tilde~"))
    st = path.stat()
    path.write_bytes(bytes(b ^ 1 for b in path.read_bytes()))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "0 differences" not in rclone("check", str(src), remote, check=False).stderr
    rclone("sync", "--checksum", str(src), remote)
    check_both_ways(rclone, src, remote)

    # purge removes the whole prefix, and purging the bucket removes the bucket
    rclone("purge", remote)
    assert remote_keys(s3, bucket, "") == {}
    s3.put_object(Bucket=bucket, Key="left", Body=b"x")
    rclone("purge", f"s3d:{bucket}")
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_multipart_upload(
    rclone: Rclone, s3: Any, bucket: str, tmp_path: Path, big_file: Path
) -> None:
    """The 50 MiB file in 5 MiB parts (rclone uploads 4 parts concurrently); rclone stores the
    whole-file MD5 as X-Amz-Meta-Md5chksum since the ETag of a multipart object is not one."""
    src = tmp_path / "mp"
    src.mkdir()
    shutil.copyfile(big_file, src / "big.bin")
    remote = f"s3d:{bucket}/mp"
    out = rclone(
        "copy",
        "-vv",
        "--s3-upload-cutoff",
        "5M",
        "--s3-chunk-size",
        "5M",
        "--s3-use-multipart-etag",  # compare the server's ETag with its own MD5-of-MD5s
        "true",
        str(src),
        remote,
    )
    assert "multipart upload starting chunk 10 " in out.stderr
    assert "Multipart upload Etag: " in out.stderr and "-10 OK" in out.stderr, out.stderr
    md5 = hashlib.md5(big_file.read_bytes())
    head = s3.head_object(Bucket=bucket, Key="mp/big.bin")
    assert head["ETag"].endswith('-10"')
    assert head["ContentLength"] == 50 * MiB
    assert head["Metadata"]["md5chksum"] == base64.b64encode(md5.digest()).decode()
    assert lsjson(rclone, remote, "--hash")["big.bin"]["Hashes"]["md5"] == md5.hexdigest()
    assert rclone("md5sum", remote).stdout.split()[0] == md5.hexdigest()
    check_both_ways(rclone, src, remote)
    got = hashlib.md5(s3.get_object(Bucket=bucket, Key="mp/big.bin")["Body"].read())
    assert got.hexdigest() == md5.hexdigest()


def test_server_side_copy_moves_no_data(
    rclone: Rclone, server: Server, s3: Any, bucket: str, big_file: Path, tmp_path: Path
) -> None:
    rclone("copyto", str(big_file), f"s3d:{bucket}/x")
    before = server.stats()
    out = rclone("copyto", "-v", f"s3d:{bucket}/x", f"s3d:{bucket}/y")
    assert "server-side copy" in out.stderr, out.stderr
    after = server.stats()
    assert after["stored_bytes"] == before["stored_bytes"]
    assert after["logical_bytes"] == before["logical_bytes"] + 50 * MiB
    listed = lsjson(rclone, f"s3d:{bucket}", "--hash")
    assert listed["x"]["Hashes"] == listed["y"]["Hashes"] == {"md5": md5_hex(big_file)}
    assert listed["x"]["ModTime"] == listed["y"]["ModTime"]  # the mtime metadata came along
    # moveto is copy + delete, still without moving data
    rclone("moveto", f"s3d:{bucket}/y", f"s3d:{bucket}/z/y")
    assert server.stats()["stored_bytes"] == before["stored_bytes"]
    assert set(remote_keys(s3, bucket, "")) == {"x", "z/y"}
    # sync --backup-dir moves replaced files aside server-side; delete removes files
    local = tmp_path / "local"
    local.mkdir()
    (local / "y").write_bytes(b"new")
    rclone("sync", "--backup-dir", f"s3d:{bucket}/old", str(local), f"s3d:{bucket}/z")
    assert remote_keys(s3, bucket, "") == {"x": 50 * MiB, "z/y": 3, "old/y": 50 * MiB}
    assert server.stats()["stored_bytes"] - before["stored_bytes"] < 1024
    rclone("delete", f"s3d:{bucket}/old")
    assert set(remote_keys(s3, bucket, "")) == {"x", "z/y"}


def test_multipart_server_side_copy(
    rclone: Rclone, server: Server, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """Above ``--s3-copy-cutoff`` rclone copies server-side with UploadPartCopy ranges."""
    data = random.Random(12).randbytes(12 * MiB + 5)
    (tmp_path / "src").write_bytes(data)
    rclone("copyto", str(tmp_path / "src"), f"s3d:{bucket}/src")
    before = server.stats()["stored_bytes"]
    out = rclone(
        "copyto", "-vv", "--s3-copy-cutoff", "5M", f"s3d:{bucket}/src", f"s3d:{bucket}/dst"
    )
    assert "multipart copy with 3 parts" in out.stderr, out.stderr
    # only the chunks the two inner part boundaries cut are stored again (≤ 1 MiB each)
    assert server.stats()["stored_bytes"] - before <= 2 * MiB
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["ETag"].endswith('-3"')
    assert (
        head["Metadata"]["mtime"] == s3.head_object(Bucket=bucket, Key="src")["Metadata"]["mtime"]
    )
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == data


def test_streaming_ranges_links_cleanup(
    rclone: Rclone, rclone_exe: str, rclone_env: dict[str, str], s3: Any, bucket: str
) -> None:
    data = random.Random(11).randbytes(11 * MiB)
    # rcat: an upload of unknown size (multipart, 5 MiB parts as it streams)
    out = subprocess.run(
        [rclone_exe, "--retries", "1", "--low-level-retries", "1", "rcat", f"s3d:{bucket}/rcat"],
        input=data,
        env=rclone_env,
        capture_output=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert s3.get_object(Bucket=bucket, Key="rcat")["Body"].read() == data
    # cat --offset / --count / --tail: ranged GETs
    got = subprocess.run(
        [rclone_exe, "cat", "--offset", str(5 * MiB - 3), "--count", "10", f"s3d:{bucket}/rcat"],
        env=rclone_env,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    assert got == data[5 * MiB - 3 : 5 * MiB + 7]
    got = subprocess.run(
        [rclone_exe, "cat", "--tail", "7", f"s3d:{bucket}/rcat"],
        env=rclone_env,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    assert got == data[-7:]
    # link: a presigned GET URL
    url = rclone("link", "--expire", "1h", f"s3d:{bucket}/rcat").stdout.strip()
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.read() == data
    # cleanup: ListMultipartUploads, aborting uploads older than --max-age (all, here)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="abandoned")["UploadId"]
    rclone("backend", "cleanup", "-o", "max-age=0s", f"s3d:{bucket}")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == [], upload
    # buckets: mkdir creates one, lsd lists them, rmdir removes an empty one only
    other = bucket + "-2"
    rclone("mkdir", f"s3d:{other}")
    assert other in rclone("lsd", "s3d:").stdout
    assert rclone("rmdir", f"s3d:{bucket}", check=False).returncode != 0  # not empty
    rclone("rmdir", f"s3d:{other}")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket in names and other not in names


def test_touch_sets_modtime(
    rclone: Rclone, server: Server, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """rclone sets a modification time with CopyObject onto itself, metadata REPLACE."""
    src = tmp_path / "t"
    src.mkdir()
    (src / "small").write_bytes(b"small file")
    (src / "parts").write_bytes(random.Random(7).randbytes(6 * MiB))
    rclone("copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", str(src), f"s3d:{bucket}")
    heads = {k: s3.head_object(Bucket=bucket, Key=k) for k in ("small", "parts")}
    before = server.stats()

    for key in ("small", "parts"):
        rclone("touch", "-t", "2020-01-02T03:04:05", f"s3d:{bucket}/{key}")
    listed = lsjson(rclone, f"s3d:{bucket}", "--hash")
    for key in ("small", "parts"):
        assert rfc3339_ns(listed[key]["ModTime"]) == 1577934245 * 10**9, listed[key]
        assert listed[key]["Hashes"]["md5"] == md5_hex(src / key)
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ETag"] == heads[key]["ETag"]
        assert head["ContentType"] == heads[key]["ContentType"]
        assert head["Metadata"]["mtime"].startswith("1577934245")
        if key == "parts":  # the MD5 of a multipart object survives the REPLACE
            assert head["Metadata"]["md5chksum"] == heads[key]["Metadata"]["md5chksum"]

    t0 = time.time_ns()
    rclone("touch", f"s3d:{bucket}/small")  # now
    t = rfc3339_ns(lsjson(rclone, f"s3d:{bucket}")["small"]["ModTime"])
    assert t0 - 10**9 <= t <= time.time_ns()
    assert server.stats()["stored_bytes"] == before["stored_bytes"]
    assert s3.get_object(Bucket=bucket, Key="small")["Body"].read() == b"small file"

    rclone("touch", f"s3d:{bucket}/created")  # a missing file is created, empty
    assert s3.head_object(Bucket=bucket, Key="created")["ContentLength"] == 0


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


PRE_MOUNT = random.Random(3).randbytes(2 * MiB)


@pytest.fixture
def mount(
    rclone_exe: str, rclone_env: dict[str, str], s3: Any, bucket: str, tmp_path: Path
) -> Iterator[Path]:
    if not Path("/dev/fuse").exists() or shutil.which("fusermount") is None:
        pytest.skip("FUSE is not available")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    s3.put_object(Bucket=bucket, Key="m/before.bin", Body=PRE_MOUNT)
    log = tmp_path / "mount.log"
    with log.open("wb") as logf:
        proc = subprocess.Popen(
            [
                rclone_exe,
                "mount",
                f"s3d:{bucket}/m",
                str(mnt),
                "--vfs-cache-mode",
                "writes",
                "--vfs-write-back",
                "0s",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--retries",
                "1",
                "--low-level-retries",
                "1",
                "-vv",
            ],
            env=rclone_env,
            stdout=logf,
            stderr=subprocess.STDOUT,
        )
    try:
        try:
            wait_for(lambda: os.path.ismount(mnt) or proc.poll() is not None, "the mount", 20)
        except AssertionError as exc:
            raise AssertionError(log.read_text()[-3000:]) from exc
        assert proc.poll() is None, log.read_text()[-3000:]
        yield mnt
    finally:
        if os.path.ismount(mnt):
            out = subprocess.run(
                ["fusermount", "-u", str(mnt)], capture_output=True, text=True, timeout=30
            )
            if out.returncode != 0:  # busy: detach lazily rather than leave a mount behind
                subprocess.run(["fusermount", "-u", "-z", str(mnt)], timeout=30, check=False)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        assert not os.path.ismount(mnt)
    errors = [line for line in log.read_text().splitlines() if " ERROR " in line]
    assert not errors, errors


def test_mount(mount: Path, server: Server, s3: Any, bucket: str) -> None:
    rng = random.Random(9)
    small, big = b"hello through fuse\n", rng.randbytes(3 * MiB + 17)
    (mount / "a.txt").write_bytes(small)
    (mount / "dir ü").mkdir()
    (mount / "dir ü" / "r.bin").write_bytes(big)

    def body(key: str) -> bytes | None:
        try:
            return bytes(s3.get_object(Bucket=bucket, Key="m/" + key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            return None

    # an object that was there before: reads at offsets (ranged GETs, no write cache)
    with (mount / "before.bin").open("rb") as f:
        for offset in (MiB + 3, 17, 2 * MiB - 5):
            f.seek(offset)
            assert f.read(100) == PRE_MOUNT[offset : offset + 100]
    (mount / "before.bin").unlink()

    wait_for(lambda: body("a.txt") == small and body("dir ü/r.bin") == big, "the uploads")
    assert (mount / "a.txt").read_bytes() == small
    assert (mount / "dir ü" / "r.bin").read_bytes() == big
    assert sorted(os.listdir(mount)) == ["a.txt", "dir ü"]
    assert set(remote_keys(s3, bucket, "m/")) == {"a.txt", "dir ü/r.bin"}
    assert (mount / "dir ü" / "r.bin").stat().st_size == len(big)

    # overwrite in place (random access: needs the write cache)
    with (mount / "dir ü" / "r.bin").open("r+b") as rw:
        rw.seek(MiB)
        rw.write(b"PATCH")
    patched = big[:MiB] + b"PATCH" + big[MiB + 5 :]
    wait_for(lambda: body("dir ü/r.bin") == patched, "the patched upload")

    # rename: server-side copy + delete, no data moves
    stored = server.stats()["stored_bytes"]
    os.rename(mount / "dir ü" / "r.bin", mount / "moved.bin")
    wait_for(lambda: set(remote_keys(s3, bucket, "m/")) == {"a.txt", "moved.bin"}, "the rename")
    assert body("moved.bin") == patched
    assert server.stats()["stored_bytes"] == stored
    assert (mount / "moved.bin").read_bytes() == patched

    # delete
    (mount / "a.txt").unlink()
    wait_for(lambda: set(remote_keys(s3, bucket, "m/")) == {"moved.bin"}, "the delete")
    assert "a.txt" not in os.listdir(mount)


def test_control_characters_in_names(rclone: Rclone, bucket: str, tmp_path: Path) -> None:
    """Names with C0 control characters (except tab, LF, CR) and DEL: XML 1.0 cannot carry
    them, so listings need ``encoding-type=url`` (``--s3-list-url-encode true``); without it
    the server lists them with U+FFFD where AWS would send an XML document Go cannot parse."""
    src = tmp_path / "ctl"
    src.mkdir()
    for name in ("ctl\x01", "esc\x1b[0m", "del\x7f", "us\x1f"):
        (src / name).write_bytes(name.encode())
    remote = f"s3d:{bucket}/ctl"
    rclone("copy", str(src), remote)
    for args in ((str(src), remote), ("--download", str(src), remote)):
        out = rclone("check", "--s3-list-url-encode", "true", *args)
        assert "0 differences found" in out.stderr, out.stderr


def test_content_encoding_gzip(rclone: Rclone, s3: Any, bucket: str, tmp_path: Path) -> None:
    """Content-Encoding is metadata: the object is the bytes sent, returned as they are."""
    src = tmp_path / "gz"
    src.mkdir()
    data = gzip.compress(b"".join(b"line %d\n" % i for i in range(5000)))
    (src / "log.gz").write_bytes(data)
    remote = f"s3d:{bucket}/gz"
    rclone("copy", "--header-upload", "Content-Encoding: gzip", str(src), remote)
    obj = s3.get_object(Bucket=bucket, Key="gz/log.gz")
    assert obj["ContentEncoding"] == "gzip"
    assert obj["Body"].read() == data
    check_both_ways(rclone, src, remote)


def test_newline_in_name(rclone: Rclone, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "nl"
    src.mkdir()
    (src / "line\nbreak").write_bytes(b"nl")
    remote = f"s3d:{bucket}/nl"
    rclone("copy", str(src), remote)
    out = rclone("check", "--s3-list-url-encode", "true", str(src), remote)
    assert "0 differences found" in out.stderr, out.stderr


def test_fsck(server: Server) -> None:
    assert server.fsck()["ok"]


def test_versions_listing(rclone: Rclone, s3: Any, bucket: str) -> None:
    """--s3-versions lists with ListObjectVersions: every object is its one, latest version
    ("null"), so the names stay plain (older versions would get a -vTIME suffix)."""
    for key in ("one", "two/three"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    listed = rclone("lsf", "-R", "--files-only", "--s3-versions", f"s3d:{bucket}").stdout
    assert sorted(listed.split()) == ["one", "two/three"]


def test_anonymous_reads_of_a_public_bucket(
    rclone: Rclone, s3: Any, bucket: str, server: Server, tmp_path: Path
) -> None:
    """A remote without credentials (rclone signs nothing) reads and lists a bucket whose
    policy grants everyone s3:GetObject and s3:ListBucket; its writes are refused."""
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"public data")
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:ListBucket",
                        "Resource": f"arn:aws:s3:::{bucket}",
                    },
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                    },
                ],
            }
        ),
    )
    anonymous = f":s3,provider=Other,endpoint='{server.endpoint}',env_auth=false:{bucket}"
    assert rclone("lsf", "-R", "--files-only", anonymous).stdout.split() == ["a/b.txt"]
    assert rclone("cat", f"{anonymous}/a/b.txt").stdout == "public data"
    local = tmp_path / "new.txt"
    local.write_text("x")
    refused = rclone("copyto", str(local), f"{anonymous}/new.txt", check=False)
    assert refused.returncode != 0 and "AccessDenied" in refused.stderr, refused.stderr
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a/b.txt"]
