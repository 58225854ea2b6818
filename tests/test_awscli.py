"""The aws cli (v1) against a real server with its default settings: the high-level `aws s3`
commands and a few `aws s3api` calls, as users run them (issue #5).

Defaults mean an 8 MiB ``multipart_threshold`` / ``multipart_chunksize``: files above it go up
as multipart uploads, come down as parallel ranged GETs, and are copied server-side with
UploadPartCopy. A >100 MiB `aws s3 cp` up, down and server-side is in
tests/test_multipart_awscli.py; here the large files are 9 to 20 MiB to keep the module fast.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

from tests.conftest import Aws, Server

MiB = 1024 * 1024
CLI_PART = 8 * MiB  # the cli's default multipart_threshold and multipart_chunksize


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mp_etag(data: bytes, part: int = CLI_PART) -> str:
    md5s = [hashlib.md5(data[i : i + part]).digest() for i in range(0, len(data), part)]
    return f'"{hashlib.md5(b"".join(md5s)).hexdigest()}-{len(md5s)}"'


def new_bucket() -> str:
    return f"awscli-{uuid.uuid4().hex[:12]}"


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()
    }


def summary(stdout: str) -> tuple[int, int]:
    """(Total Objects, Total Size) printed by `aws s3 ls --summarize`."""
    objects = re.search(r"^\s*Total Objects: (\d+)$", stdout, re.M)
    size = re.search(r"^\s*Total Size: (\d+)$", stdout, re.M)
    assert objects and size, stdout
    return int(objects[1]), int(size[1])


def head(aws: Aws, bucket: str, key: str, *extra: str) -> dict[str, Any]:
    out = aws("s3api", "head-object", "--bucket", bucket, "--key", key, *extra)
    return dict(json.loads(out.stdout))


def test_cp_ls_head_copy_rm_rb(aws: Aws, tmp_path: Path, server: Server) -> None:
    b = new_bucket()
    small = tmp_path / "small.txt"
    small.write_bytes(b"hello from the aws cli\n" * 50)
    big = tmp_path / "big.bin"
    rng = random.Random(20)
    block = rng.randbytes(MiB)
    # 20 MiB (three 8 MiB parts) with repeated content (it deduplicates) and a random tail
    data = block * 12 + rng.randbytes(8 * MiB)
    big.write_bytes(data)

    out = aws("s3", "mb", f"s3://{b}")
    assert f"make_bucket: {b}" in out.stdout
    aws("s3", "cp", str(small), f"s3://{b}/docs/small.txt")
    out = aws("s3", "cp", str(big), f"s3://{b}/data/big.bin")  # multipart upload
    assert "upload:" in out.stdout

    down = tmp_path / "down"
    down.mkdir()
    aws("s3", "cp", f"s3://{b}/docs/small.txt", str(down / "small.txt"))
    aws("s3", "cp", f"s3://{b}/data/big.bin", str(down / "big.bin"))  # ranged GETs
    assert sha256(down / "small.txt") == sha256(small)
    assert sha256(down / "big.bin") == sha256(big)

    out = aws("s3", "ls", f"s3://{b}")
    assert "PRE docs/" in out.stdout and "PRE data/" in out.stdout
    out = aws("s3", "ls", f"s3://{b}/data/")
    assert f"{len(data)} big.bin" in " ".join(out.stdout.split())
    out = aws("s3", "ls", "--recursive", "--summarize", f"s3://{b}")
    assert "docs/small.txt" in out.stdout and "data/big.bin" in out.stdout
    assert summary(out.stdout) == (2, small.stat().st_size + len(data))
    out = aws("s3", "ls")
    assert b in out.stdout

    h = head(aws, b, "docs/small.txt")
    assert h["ContentLength"] == small.stat().st_size
    assert h["ETag"] == '"' + hashlib.md5(small.read_bytes()).hexdigest() + '"'
    h = head(aws, b, "data/big.bin")
    assert h["ContentLength"] == len(data)
    assert h["ETag"] == mp_etag(data)
    h = head(aws, b, "data/big.bin", "--part-number", "1")
    assert h["PartsCount"] == 3 and h["ContentLength"] == CLI_PART

    # server-side copy above the threshold: UploadPartCopy by 8 MiB ranges
    out = aws("s3", "cp", f"s3://{b}/data/big.bin", f"s3://{b}/data/copy.bin")
    assert "copy:" in out.stdout
    aws("s3", "cp", f"s3://{b}/data/copy.bin", str(down / "copy.bin"))
    assert sha256(down / "copy.bin") == sha256(big)
    h = head(aws, b, "data/copy.bin")
    assert h["ContentLength"] == len(data)
    assert h["ETag"] == mp_etag(data)  # the same 8 MiB ranges: the same part MD5s

    out = aws("s3", "rb", f"s3://{b}", check=False)
    assert out.returncode != 0 and "BucketNotEmpty" in out.stderr
    out = aws("s3", "rm", "--recursive", f"s3://{b}")
    assert out.stdout.count("delete:") == 3
    out = aws("s3", "ls", "--recursive", f"s3://{b}")
    assert out.stdout.strip() == ""
    out = aws("s3", "rb", f"s3://{b}")
    assert f"remove_bucket: {b}" in out.stdout
    assert b not in aws("s3", "ls").stdout
    report = server.fsck()
    assert report["ok"], report["output"]


NAMES = [
    "plain.txt",
    "with space.txt",
    "plus+sign.txt",
    "amp&ersand.txt",
    "eq=ual.txt",
    "per%cent.txt",
    "per%20cent-encoded.txt",
    "quo'te.txt",
    "(paren).txt",
    "com,ma;semi.txt",
    "at@dollar$.txt",
    "bang!tilde~.txt",
    "all + & = % ' ( ) , ; @ $ ! ~.txt",
    "héllo wörld.txt",
    "日本語のファイル.txt",
    "emoji 🎉.txt",
    "empty.txt",
]
DIRS = ["", "sub dir", "sub dir/deeper (1)", "ünïcode", "a&b=c/d+e", "x/y/z", "q'u@o$t!e~"]
TREE_FILES = 200
# above the 8 MiB threshold: sync uploads them as multipart, downloads them with ranged GETs
BIG = {"big/nine + one.bin": 9 * MiB + 1, "ünïcode/twelve (mb).bin": 12 * MiB, "x/17.bin": 17 * MiB}


def make_tree(root: Path, rng: random.Random) -> None:
    """200 files with awkward names, three of them above the multipart threshold. Their mtimes
    are set an hour back: like S3, the server lists LastModified in whole seconds, and
    `aws s3 sync` uploads a local file whose mtime is later than that (a file written in the
    same second as its upload would go up again)."""
    past = time.time() - 3600
    block = rng.randbytes(MiB)
    paths: dict[Path, bytes] = {}
    for name, size in BIG.items():
        # part repeated content (it deduplicates), part random
        paths[root / name] = (block * (size // (2 * MiB)) + rng.randbytes(size))[:size]
    i = 0
    while len(paths) < TREE_FILES:
        name = NAMES[i % len(NAMES)]
        path = root / DIRS[i % len(DIRS)] / name
        if path in paths:
            path = path.with_name(f"{i} {name}")
        if name == "empty.txt":
            paths[path] = b""
        else:
            paths[path] = rng.randbytes(rng.choice([1, 100, 4096, 4097, 70_000, 200_000]))
        i += 1
    for path, body in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        os.utime(path, (past, past))


def test_sync_tree_up_and_down(aws: Aws, tmp_path: Path, server: Server) -> None:
    b = new_bucket()
    aws("s3", "mb", f"s3://{b}")
    src = tmp_path / "src"
    make_tree(src, random.Random(5))
    expected = tree(src)
    assert len(expected) == TREE_FILES
    assert hashlib.sha256(b"").hexdigest() in expected.values()
    total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    assert total < 60 * MiB

    out = aws("s3", "sync", str(src), f"s3://{b}/tree")
    assert out.stdout.count("upload:") == len(expected), out.stdout
    out = aws("s3", "sync", str(src), f"s3://{b}/tree")
    assert out.stdout == "", out.stdout  # nothing changed: nothing transferred

    listed = json.loads(aws("s3api", "list-objects-v2", "--bucket", b).stdout)
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(f"tree/{k}" for k in expected)
    out = aws("s3", "ls", "--recursive", "--summarize", f"s3://{b}/tree/")
    assert summary(out.stdout) == (TREE_FILES, total)
    for name, size in BIG.items():  # went up as multipart uploads
        h = head(aws, b, f"tree/{name}", "--part-number", "1")
        assert h["PartsCount"] == -(-size // CLI_PART), name
        assert h["ContentLength"] == CLI_PART, name

    dst = tmp_path / "dst"
    out = aws("s3", "sync", f"s3://{b}/tree", str(dst))
    assert out.stdout.count("download:") == len(expected), out.stdout
    assert tree(dst) == expected
    out = aws("s3", "sync", f"s3://{b}/tree", str(dst))
    assert out.stdout == "", out.stdout

    # a change is picked up, and --delete removes what is gone
    changed = src / "sub dir" / "with space.txt"
    changed.write_bytes(b"changed content, another size")
    gone = src / NAMES[12]
    gone.unlink()
    out = aws("s3", "sync", "--delete", str(src), f"s3://{b}/tree")
    assert out.stdout.count("upload:") == 1 and out.stdout.count("delete:") == 1, out.stdout
    out = aws("s3", "sync", "--delete", f"s3://{b}/tree", str(dst))
    assert out.stdout.count("download:") == 1 and out.stdout.count("delete:") == 1, out.stdout
    assert tree(dst) == tree(src)

    out = aws("s3", "rm", "--recursive", f"s3://{b}")
    assert out.stdout.count("delete:") == TREE_FILES - 1, out.stdout
    aws("s3", "rb", f"s3://{b}")
    report = server.fsck()
    assert report["ok"], report["output"]


def test_list_objects_v2_pagination(aws: Aws, tmp_path: Path, server: Server) -> None:
    b = new_bucket()
    aws("s3", "mb", f"s3://{b}")
    s3 = server.client()
    keys = [*sorted(f"p/{i:03d}-{'x' * (i % 3)}" for i in range(23)), "q/one", "q/two"]
    for k in keys:
        s3.put_object(Bucket=b, Key=k, Body=k.encode())

    def page(*extra: str) -> dict[str, Any]:
        out = aws("s3api", "list-objects-v2", "--bucket", b, "--prefix", "p/", *extra)
        return dict(json.loads(out.stdout))

    got: list[str] = []
    token: list[str] = []
    pages = 0
    while True:
        resp = page("--max-items", "7", "--page-size", "3", *token)
        got += [o["Key"] for o in resp["Contents"]]
        pages += 1
        if "NextToken" not in resp:
            break
        assert len(resp["Contents"]) == 7
        token = ["--starting-token", resp["NextToken"]]
    assert got == [k for k in keys if k.startswith("p/")]
    assert pages == 4

    # delimiter: common prefixes come back, and page size 1 still walks them all
    out = aws("s3api", "list-objects-v2", "--bucket", b, "--delimiter", "/", "--page-size", "1")
    resp = json.loads(out.stdout)
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["p/", "q/"]
    aws("s3", "rm", "--recursive", f"s3://{b}")
    aws("s3", "rb", f"s3://{b}")
    report = server.fsck()
    assert report["ok"], report["output"]


def test_put_object_with_crc32_checksum(aws: Aws, tmp_path: Path, server: Server) -> None:
    b = new_bucket()
    aws("s3", "mb", f"s3://{b}")
    body = os.urandom(300_000)
    f = tmp_path / "body.bin"
    f.write_bytes(body)
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()

    out = aws(
        "s3api",
        "put-object",
        "--bucket",
        b,
        "--key",
        "crc",
        "--body",
        str(f),
        "--checksum-algorithm",
        "CRC32",
    )
    resp = json.loads(out.stdout)
    assert resp["ChecksumCRC32"] == crc
    assert resp["ETag"] == '"' + hashlib.md5(body).hexdigest() + '"'

    head = json.loads(
        aws(
            "s3api", "head-object", "--bucket", b, "--key", "crc", "--checksum-mode", "ENABLED"
        ).stdout
    )
    assert head["ChecksumCRC32"] == crc
    assert head["ContentLength"] == len(body)

    out_file = tmp_path / "got.bin"
    aws(
        "s3api",
        "get-object",
        "--bucket",
        b,
        "--key",
        "crc",
        "--checksum-mode",
        "ENABLED",
        str(out_file),
    )
    assert out_file.read_bytes() == body

    aws("s3", "rm", f"s3://{b}/crc")
    aws("s3", "rb", f"s3://{b}")
    report = server.fsck()
    assert report["ok"], report["output"]


def test_bucket_configurations(aws: Aws, tmp_path: Path, server: Server) -> None:
    """CORS, lifecycle and website configurations as the aws cli sets and reads them,
    including `aws s3 website` (which writes a WebsiteConfiguration)."""
    b = new_bucket()
    aws("s3", "mb", f"s3://{b}")
    cors = {
        "CORSRules": [
            {
                "AllowedOrigins": ["https://app.example"],
                "AllowedMethods": ["GET", "PUT"],
                "AllowedHeaders": ["*"],
                "MaxAgeSeconds": 600,
            }
        ]
    }
    (tmp_path / "cors.json").write_text(json.dumps(cors))
    aws("s3api", "put-bucket-cors", "--bucket", b, "--cors-configuration", "file://cors.json",
        cwd=tmp_path)  # fmt: skip
    assert json.loads(aws("s3api", "get-bucket-cors", "--bucket", b).stdout) == cors

    rules = {
        "Rules": [
            {
                "ID": "tmp",
                "Filter": {"Prefix": "tmp/"},
                "Status": "Enabled",
                "Expiration": {"Days": 7},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            }
        ]
    }
    (tmp_path / "lc.json").write_text(json.dumps(rules))
    aws("s3api", "put-bucket-lifecycle-configuration", "--bucket", b,
        "--lifecycle-configuration", "file://lc.json", cwd=tmp_path)  # fmt: skip
    got = json.loads(aws("s3api", "get-bucket-lifecycle-configuration", "--bucket", b).stdout)
    assert got["Rules"] == rules["Rules"]

    aws("s3", "website", f"s3://{b}", "--index-document", "index.html",
        "--error-document", "error.html")  # fmt: skip
    site = json.loads(aws("s3api", "get-bucket-website", "--bucket", b).stdout)
    assert site["IndexDocument"] == {"Suffix": "index.html"}
    assert site["ErrorDocument"] == {"Key": "error.html"}

    for kind in ("cors", "lifecycle", "website"):
        aws("s3api", f"delete-bucket-{kind}", "--bucket", b)
    missing = aws("s3api", "get-bucket-cors", "--bucket", b, check=False)
    assert missing.returncode != 0 and "NoSuchCORSConfiguration" in missing.stderr
    aws("s3", "rb", f"s3://{b}")
