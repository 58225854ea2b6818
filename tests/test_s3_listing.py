"""ListObjects (V1) and ListObjectsV2 against a real server, with boto3 and hand-signed requests."""

from __future__ import annotations

import http.client
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, unquote_plus, urlencode

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, Server

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


# --------------------------------------------------------------------------- helpers


def put_keys(s3: Any, bucket: str, keys: list[str]) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def utf8_sorted(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda k: k.encode())


def raw_list(server: Server, bucket: str, params: dict[str, str]) -> tuple[int, ET.Element]:
    """A signed GET /bucket?params sent by hand (no SDK-side encoding-type)."""
    query = urlencode(sorted(params.items()), quote_via=quote, safe="")
    target = f"/{bucket}" + (f"?{query}" if query else "")
    req = AWSRequest(method="GET", url=server.endpoint + target, headers={})
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", target, headers=dict(req.headers.items()))
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    return resp.status, ET.fromstring(body)


def texts(root: ET.Element, path: str) -> list[str]:
    return [el.text or "" for el in root.iterfind(path)]


def all_pages_v2(s3: Any, bucket: str, **kw: Any) -> tuple[list[str], list[str], int]:
    keys: list[str] = []
    prefixes: list[str] = []
    pages = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, **kw):
        pages += 1
        keys += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert page["KeyCount"] == len(page.get("Contents", [])) + len(
            page.get("CommonPrefixes", [])
        )
    return keys, prefixes, pages


def all_pages_v1(s3: Any, bucket: str, **kw: Any) -> tuple[list[str], list[str], int]:
    keys: list[str] = []
    prefixes: list[str] = []
    pages = 0
    for page in s3.get_paginator("list_objects").paginate(Bucket=bucket, **kw):
        pages += 1
        keys += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    return keys, prefixes, pages


# --------------------------------------------------------------------------- small buckets

TREE = [
    "a.txt",
    "b/1.txt",
    "b/2.txt",
    "b/c/3.txt",
    "b/c/4.txt",
    "d/5.txt",
    "e.txt",
    "f/g/h/6.txt",
]


@pytest.fixture
def tree(s3: Any, bucket: str) -> str:
    put_keys(s3, bucket, TREE)
    return bucket


def test_v2_lists_everything_in_order(s3: Any, tree: str) -> None:
    resp = s3.list_objects_v2(Bucket=tree)
    assert [o["Key"] for o in resp["Contents"]] == TREE
    assert resp["KeyCount"] == len(TREE)
    assert resp["IsTruncated"] is False
    assert "NextContinuationToken" not in resp
    assert resp["MaxKeys"] == 1000
    assert resp["Name"] == tree
    obj = resp["Contents"][0]
    assert obj["Size"] == len(b"a.txt")
    assert obj["ETag"].startswith('"') and obj["ETag"].endswith('"')
    assert obj["StorageClass"] == "STANDARD"
    assert "Owner" not in obj
    head = s3.head_object(Bucket=tree, Key="a.txt")
    assert obj["ETag"] == head["ETag"]
    assert obj["LastModified"] == head["LastModified"]


def test_v1_lists_everything_in_order(s3: Any, tree: str) -> None:
    resp = s3.list_objects(Bucket=tree)
    assert [o["Key"] for o in resp["Contents"]] == TREE
    assert resp["IsTruncated"] is False
    assert "NextMarker" not in resp
    assert resp["Marker"] == ""
    assert resp["MaxKeys"] == 1000
    assert "Owner" in resp["Contents"][0]  # V1 always returns the owner
    assert resp["Contents"][0]["Owner"]["ID"]


def test_prefix(s3: Any, tree: str) -> None:
    for fn in (s3.list_objects, s3.list_objects_v2):
        resp = fn(Bucket=tree, Prefix="b/")
        assert [o["Key"] for o in resp["Contents"]] == [
            "b/1.txt",
            "b/2.txt",
            "b/c/3.txt",
            "b/c/4.txt",
        ]
        assert resp["Prefix"] == "b/"
        assert "CommonPrefixes" not in resp
        resp = fn(Bucket=tree, Prefix="zzz")
        assert "Contents" not in resp
        assert resp["IsTruncated"] is False
        # a page that ends exactly at the end of the prefix is not truncated
        resp = fn(Bucket=tree, Prefix="b/", MaxKeys=4)
        assert len(resp["Contents"]) == 4 and resp["IsTruncated"] is False
        resp = fn(Bucket=tree, Prefix="b/", Delimiter="/", MaxKeys=3)
        assert len(resp["Contents"]) + len(resp["CommonPrefixes"]) == 3
        assert resp["IsTruncated"] is False
        resp = fn(Bucket=tree, Prefix="b/", Delimiter="/", MaxKeys=2)
        assert resp["IsTruncated"] is True
        # a prefix that is not a "directory"
        resp = fn(Bucket=tree, Prefix="b/c/3")
        assert [o["Key"] for o in resp["Contents"]] == ["b/c/3.txt"]


def test_delimiter_slash(s3: Any, tree: str) -> None:
    for fn in (s3.list_objects, s3.list_objects_v2):
        resp = fn(Bucket=tree, Delimiter="/")
        assert [o["Key"] for o in resp["Contents"]] == ["a.txt", "e.txt"]
        assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["b/", "d/", "f/"]
        assert resp["Delimiter"] == "/"
        resp = fn(Bucket=tree, Delimiter="/", Prefix="b/")
        assert [o["Key"] for o in resp["Contents"]] == ["b/1.txt", "b/2.txt"]
        assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["b/c/"]
        resp = fn(Bucket=tree, Delimiter="/", Prefix="f/")
        assert "Contents" not in resp
        assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["f/g/"]
        # the prefix itself is not a common prefix when the key equals the prefix part
        resp = fn(Bucket=tree, Delimiter="/", Prefix="b")
        assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["b/"]
        assert "Contents" not in resp
    v2 = s3.list_objects_v2(Bucket=tree, Delimiter="/")
    assert v2["KeyCount"] == 5


def test_multi_char_delimiter(s3: Any, bucket: str) -> None:
    keys = ["x--y--z", "x--y--w", "x--w", "x-y", "q", "q--", "--lead", "x---3"]
    put_keys(s3, bucket, keys)
    for fn in (s3.list_objects, s3.list_objects_v2):
        resp = fn(Bucket=bucket, Delimiter="--")
        got_keys = [o["Key"] for o in resp.get("Contents", [])]
        got_pfx = [p["Prefix"] for p in resp.get("CommonPrefixes", [])]
        assert got_keys == ["q", "x-y"]
        assert got_pfx == ["--", "q--", "x--"]
        resp = fn(Bucket=bucket, Delimiter="--", Prefix="x--")
        # "x---3": after the prefix "x--" comes "-3", which holds no "--"
        assert [o["Key"] for o in resp.get("Contents", [])] == ["x---3", "x--w"]
        assert [p["Prefix"] for p in resp.get("CommonPrefixes", [])] == ["x--y--"]
        resp = fn(Bucket=bucket, Delimiter="y--")
        assert [p["Prefix"] for p in resp.get("CommonPrefixes", [])] == ["x--y--"]


@pytest.mark.parametrize("max_keys", [1, 2, 1000])
def test_max_keys_v2(s3: Any, tree: str, max_keys: int) -> None:
    resp = s3.list_objects_v2(Bucket=tree, MaxKeys=max_keys)
    n = min(max_keys, len(TREE))
    assert [o["Key"] for o in resp["Contents"]] == TREE[:n]
    assert resp["KeyCount"] == n
    assert resp["MaxKeys"] == max_keys
    assert resp["IsTruncated"] is (n < len(TREE))
    assert ("NextContinuationToken" in resp) is (n < len(TREE))


@pytest.mark.parametrize("max_keys", [1, 2, 1000])
def test_max_keys_v1(s3: Any, tree: str, max_keys: int) -> None:
    resp = s3.list_objects(Bucket=tree, MaxKeys=max_keys)
    n = min(max_keys, len(TREE))
    assert [o["Key"] for o in resp["Contents"]] == TREE[:n]
    assert resp["MaxKeys"] == max_keys
    assert resp["IsTruncated"] is (n < len(TREE))
    assert "NextMarker" not in resp  # only returned with a delimiter


def test_max_keys_zero(s3: Any, tree: str) -> None:
    """AWS: an empty page, not truncated, no token (nothing to continue from)."""
    resp = s3.list_objects_v2(Bucket=tree, MaxKeys=0)
    assert "Contents" not in resp
    assert resp["KeyCount"] == 0
    assert resp["MaxKeys"] == 0
    assert resp["IsTruncated"] is False
    assert "NextContinuationToken" not in resp
    resp = s3.list_objects(Bucket=tree, MaxKeys=0, Delimiter="/")
    assert "Contents" not in resp and "CommonPrefixes" not in resp
    assert resp["IsTruncated"] is False
    assert "NextMarker" not in resp


@pytest.mark.parametrize("value", ["-1", "-1000", "abc", "1.5"])
def test_max_keys_invalid(server: Server, tree: str, value: str) -> None:
    for extra in ({}, {"list-type": "2"}):
        status, root = raw_list(server, tree, {"max-keys": value, **extra})
        assert status == 400
        assert root.findtext("Code") == "InvalidArgument"
        assert root.findtext("RequestId")


def test_max_keys_negative_boto(s3: Any, tree: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=tree, MaxKeys=-1)
    assert error_code(exc) == "InvalidArgument"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_v1_marker_and_next_marker(s3: Any, tree: str) -> None:
    resp = s3.list_objects(Bucket=tree, Marker="b/2.txt")
    assert [o["Key"] for o in resp["Contents"]] == TREE[3:]
    assert resp["Marker"] == "b/2.txt"
    # a marker that is not a key
    resp = s3.list_objects(Bucket=tree, Marker="b/1.txtx")
    assert [o["Key"] for o in resp["Contents"]] == TREE[2:]
    resp = s3.list_objects(Bucket=tree, Marker="zzzz")
    assert "Contents" not in resp and resp["IsTruncated"] is False
    # with a delimiter, NextMarker is the last key or common prefix of the page
    resp = s3.list_objects(Bucket=tree, Delimiter="/", MaxKeys=2)
    assert [o["Key"] for o in resp["Contents"]] == ["a.txt"]
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["b/"]
    assert resp["IsTruncated"] is True
    assert resp["NextMarker"] == "b/"
    resp = s3.list_objects(Bucket=tree, Delimiter="/", MaxKeys=2, Marker=resp["NextMarker"])
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["d/"]
    assert [o["Key"] for o in resp["Contents"]] == ["e.txt"]
    assert resp["IsTruncated"] is True
    assert resp["NextMarker"] == "e.txt"
    resp = s3.list_objects(Bucket=tree, Delimiter="/", MaxKeys=2, Marker=resp["NextMarker"])
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["f/"]
    assert "Contents" not in resp
    assert resp["IsTruncated"] is False
    assert "NextMarker" not in resp


def test_v1_page_ends_exactly_at_last_item(s3: Any, tree: str) -> None:
    resp = s3.list_objects(Bucket=tree, Delimiter="/", MaxKeys=5)
    assert resp["IsTruncated"] is False
    resp = s3.list_objects_v2(Bucket=tree, MaxKeys=len(TREE))
    assert resp["IsTruncated"] is False
    assert "NextContinuationToken" not in resp


def test_v2_continuation_token_and_start_after(s3: Any, tree: str) -> None:
    resp = s3.list_objects_v2(Bucket=tree, MaxKeys=3)
    assert [o["Key"] for o in resp["Contents"]] == TREE[:3]
    token = resp["NextContinuationToken"]
    resp = s3.list_objects_v2(Bucket=tree, MaxKeys=3, ContinuationToken=token)
    assert resp["ContinuationToken"] == token
    assert [o["Key"] for o in resp["Contents"]] == TREE[3:6]
    resp = s3.list_objects_v2(Bucket=tree, StartAfter="b/c/3.txt")
    assert [o["Key"] for o in resp["Contents"]] == TREE[4:]
    assert resp["StartAfter"] == "b/c/3.txt"
    resp = s3.list_objects_v2(Bucket=tree, StartAfter="b/c/3.txt", MaxKeys=1)
    token = resp["NextContinuationToken"]
    # the token wins over an earlier start-after
    resp = s3.list_objects_v2(Bucket=tree, StartAfter="a", ContinuationToken=token)
    assert [o["Key"] for o in resp["Contents"]] == TREE[5:]
    # with a delimiter, tokens skip the whole common prefix
    resp = s3.list_objects_v2(Bucket=tree, Delimiter="/", MaxKeys=2)
    assert [o["Key"] for o in resp["Contents"]] == ["a.txt"]
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["b/"]
    resp = s3.list_objects_v2(
        Bucket=tree, Delimiter="/", MaxKeys=2, ContinuationToken=resp["NextContinuationToken"]
    )
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["d/"]
    assert [o["Key"] for o in resp["Contents"]] == ["e.txt"]


def test_v2_bad_continuation_token(server: Server, tree: str) -> None:
    status, root = raw_list(server, tree, {"list-type": "2", "continuation-token": "!!!notb64"})
    assert status == 400
    assert root.findtext("Code") == "InvalidArgument"


def test_fetch_owner(s3: Any, tree: str) -> None:
    resp = s3.list_objects_v2(Bucket=tree, FetchOwner=True)
    for obj in resp["Contents"]:
        assert obj["Owner"]["ID"]
    resp = s3.list_objects_v2(Bucket=tree, FetchOwner=False)
    assert all("Owner" not in o for o in resp["Contents"])


def test_empty_bucket(s3: Any, bucket: str) -> None:
    resp = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert "Contents" not in resp and "CommonPrefixes" not in resp
    assert resp["KeyCount"] == 0 and resp["IsTruncated"] is False
    resp = s3.list_objects(Bucket=bucket)
    assert "Contents" not in resp and resp["IsTruncated"] is False


def test_no_such_bucket(s3: Any) -> None:
    name = f"missing-{uuid.uuid4().hex[:12]}"
    for fn in (s3.list_objects, s3.list_objects_v2):
        with pytest.raises(ClientError) as exc:
            fn(Bucket=name)
        assert error_code(exc) == "NoSuchBucket"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert exc.value.response["Error"]["BucketName"] == name


# --------------------------------------------------------------------------- keys and encoding

ODD_KEYS = [
    "a",
    "a/b",
    "a0",
    "A",
    "Z~",
    "a b",
    "a+b",
    "a%b",
    "a%20b",
    "a&b<c>'\"",
    "é",
    "e\u0301",
    "\uffff",
    "\ufffd",
    "𝄞",
    "日本/語",
    "ctl\x01x",
    "tab\tx",
    "cr\rx",
    "dir/with space/f",
]


@pytest.fixture
def odd(s3: Any, bucket: str) -> str:
    put_keys(s3, bucket, ODD_KEYS)
    return bucket


def test_keys_in_utf8_binary_order(s3: Any, odd: str) -> None:
    expected = utf8_sorted(ODD_KEYS)
    # '\uffff' sorts before '𝄞' in UTF-8 (and code points), after it in UTF-16
    assert expected.index("\uffff") < expected.index("𝄞")
    resp = s3.list_objects_v2(Bucket=odd)  # boto3 asks for url encoding and decodes
    assert [o["Key"] for o in resp["Contents"]] == expected
    resp = s3.list_objects(Bucket=odd)
    assert [o["Key"] for o in resp["Contents"]] == expected
    for k in ODD_KEYS:
        assert s3.get_object(Bucket=odd, Key=k)["Body"].read() == k.encode()
    # one by one: markers / tokens made of such keys work
    keys, _, pages = all_pages_v2(s3, odd, PaginationConfig={"PageSize": 1})
    assert keys == expected and pages == len(expected)
    keys, _, pages = all_pages_v1(s3, odd, Delimiter="~", PaginationConfig={"PageSize": 1})
    assert pages == len(expected)
    for i, k in enumerate(expected):
        resp = s3.list_objects_v2(Bucket=odd, StartAfter=k)
        assert [o["Key"] for o in resp.get("Contents", [])] == expected[i + 1 :]
        resp = s3.list_objects(Bucket=odd, Marker=k)
        assert [o["Key"] for o in resp.get("Contents", [])] == expected[i + 1 :]


def test_key_with_newline(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="nl\nx", Body=b"n")
    assert s3.get_object(Bucket=bucket, Key="nl\nx")["Body"].read() == b"n"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["nl\nx"]


def test_unicode_prefix_and_delimiter(s3: Any, odd: str) -> None:
    resp = s3.list_objects_v2(Bucket=odd, Prefix="日本/")
    assert [o["Key"] for o in resp["Contents"]] == ["日本/語"]
    resp = s3.list_objects_v2(Bucket=odd, Delimiter="/")
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["a/", "dir/", "日本/"]
    resp = s3.list_objects_v2(Bucket=odd, Delimiter="本")
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["日本"]
    resp = s3.list_objects_v2(Bucket=odd, Delimiter=" ", Prefix="dir/")
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["dir/with "]
    resp = s3.list_objects_v2(Bucket=odd, Prefix="a%")
    assert [o["Key"] for o in resp["Contents"]] == ["a%20b", "a%b"]
    resp = s3.list_objects_v2(Bucket=odd, Prefix="a+")
    assert [o["Key"] for o in resp["Contents"]] == ["a+b"]
    resp = s3.list_objects_v2(Bucket=odd, Prefix="ctl\x01")
    assert [o["Key"] for o in resp["Contents"]] == ["ctl\x01x"]
    assert resp["Prefix"] == "ctl\x01"


def test_explicit_encoding_type_url(s3: Any, odd: str) -> None:
    """With EncodingType given by the caller, botocore does not decode: check the raw values."""
    for fn, kw in ((s3.list_objects_v2, {"StartAfter": "Z~"}), (s3.list_objects, {"Marker": "Z~"})):
        resp = fn(Bucket=odd, EncodingType="url", Delimiter="/", **kw)
        assert resp["EncodingType"] == "url"
        raw = [o["Key"] for o in resp["Contents"]] + [
            p["Prefix"] for p in resp.get("CommonPrefixes", [])
        ]
        for value in raw:
            # Encoded values are plain ASCII, and '+' must be encoded (clients decode '+' as ' ').
            assert value.isascii() and value.isprintable()
            assert " " not in value and "+" not in value
        decoded = [unquote_plus(v) for v in raw]
        after = [k for k in utf8_sorted(ODD_KEYS) if k.encode() > b"Z~"]
        assert sorted(decoded, key=lambda k: k.encode()) == utf8_sorted(
            [k for k in after if "/" not in k] + ["a/", "dir/", "日本/"]
        )
    resp = s3.list_objects_v2(Bucket=odd, EncodingType="url", Prefix="ctl\x01")
    assert unquote_plus(resp["Prefix"]) == "ctl\x01"
    assert resp["Prefix"] != "ctl\x01"
    assert [unquote_plus(o["Key"]) for o in resp["Contents"]] == ["ctl\x01x"]


def test_invalid_encoding_type(server: Server, odd: str) -> None:
    status, root = raw_list(server, odd, {"list-type": "2", "encoding-type": "base64"})
    assert status == 400
    assert root.findtext("Code") == "InvalidArgument"


def test_raw_xml_without_encoding(server: Server, odd: str) -> None:
    """Without encoding-type, keys that XML 1.0 can carry come back verbatim."""
    safe = [k for k in ODD_KEYS if all(c == "\t" or c == "\n" or " " <= c < "\ufffe" for c in k)]
    for extra in ({}, {"list-type": "2"}):
        status, root = raw_list(server, odd, {"prefix": "a", **extra})
        assert status == 200, ET.tostring(root)
        got = texts(root, f"{NS}Contents/{NS}Key")
        assert got == utf8_sorted([k for k in safe if k.startswith("a")])
        assert root.findtext(f"{NS}EncodingType") is None
    # a CR must survive XML end-of-line normalisation (written as &#13;)
    status, root = raw_list(server, odd, {"prefix": "cr"})
    assert texts(root, f"{NS}Contents/{NS}Key") == ["cr\rx"]
    # characters XML cannot carry at all still give a parseable document
    status, root = raw_list(server, odd, {"list-type": "2", "prefix": "ctl"})
    assert status == 200 and len(texts(root, f"{NS}Contents/{NS}Key")) == 1
    status, root = raw_list(server, odd, {"list-type": "2", "prefix": "日", "delimiter": "/"})
    assert texts(root, f"{NS}CommonPrefixes/{NS}Prefix") == ["日本/"]
    assert root.findtext(f"{NS}Prefix") == "日"
    assert root.findtext(f"{NS}KeyCount") == "1"


# --------------------------------------------------------------------------- pagination at scale


def _big_keys() -> list[str]:
    keys = []
    for i in range(2500):
        if i % 5 == 0:
            keys.append(f"top{i:05d}")
        else:
            keys.append(f"dir{i % 40:02d}/sub{i % 3}/k{i:05d}")
    return keys


BIG = _big_keys()


@pytest.fixture(scope="module")
def big(server: Server) -> Iterator[str]:
    s3 = server.client(max_pool_connections=16)
    name = f"big-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=name, Key=k, Body=b"x"), BIG))
    yield name


@pytest.mark.parametrize("page_size", [1000, 333, 7])
def test_paginate_v2_flat(s3: Any, big: str, page_size: int) -> None:
    keys, prefixes, pages = all_pages_v2(s3, big, PaginationConfig={"PageSize": page_size})
    assert keys == utf8_sorted(BIG)
    assert len(set(keys)) == len(BIG)
    assert prefixes == []
    assert pages == -(-len(BIG) // page_size)


@pytest.mark.parametrize("page_size", [1000, 333, 7])
def test_paginate_v1_flat(s3: Any, big: str, page_size: int) -> None:
    keys, prefixes, pages = all_pages_v1(s3, big, PaginationConfig={"PageSize": page_size})
    assert keys == utf8_sorted(BIG)
    assert prefixes == []
    assert pages == -(-len(BIG) // page_size)


@pytest.mark.parametrize("page_size", [1000, 100, 7, 1])
def test_paginate_with_delimiter(s3: Any, big: str, page_size: int) -> None:
    tops = utf8_sorted([k for k in BIG if "/" not in k])
    dirs = sorted({k.split("/")[0] + "/" for k in BIG if "/" in k})
    cfg = {"PageSize": page_size}
    for pager in (all_pages_v1, all_pages_v2):
        keys, prefixes, pages = pager(s3, big, Delimiter="/", PaginationConfig=cfg)
        assert keys == tops
        assert prefixes == dirs
        assert pages == -(-(len(tops) + len(dirs)) // page_size)
    sub = utf8_sorted({k.rsplit("/", 1)[0] + "/" for k in BIG if k.startswith("dir07/")})
    for pager in (all_pages_v1, all_pages_v2):
        keys, prefixes, _ = pager(s3, big, Delimiter="/", Prefix="dir07/", PaginationConfig=cfg)
        assert keys == [] and prefixes == sub
        keys, prefixes, _ = pager(s3, big, Prefix="dir07/sub1/", PaginationConfig=cfg)
        assert keys == utf8_sorted([k for k in BIG if k.startswith("dir07/sub1/")])


def test_max_keys_capped_at_1000(s3: Any, big: str) -> None:
    resp = s3.list_objects_v2(Bucket=big, MaxKeys=5000)
    assert resp["KeyCount"] == 1000
    assert len(resp["Contents"]) == 1000
    assert resp["IsTruncated"] is True
    resp = s3.list_objects(Bucket=big, MaxKeys=2**31 - 1)
    assert len(resp["Contents"]) == 1000
    assert resp["IsTruncated"] is True
    resp = s3.list_objects_v2(Bucket=big)
    assert resp["KeyCount"] == 1000 and resp["IsTruncated"] is True


def test_v1_paging_by_next_marker_with_delimiter(s3: Any, big: str) -> None:
    seen: list[str] = []
    marker = ""
    while True:
        resp = s3.list_objects(Bucket=big, Delimiter="/", MaxKeys=50, Marker=marker)
        items = [o["Key"] for o in resp.get("Contents", [])] + [
            p["Prefix"] for p in resp.get("CommonPrefixes", [])
        ]
        seen += items
        if not resp["IsTruncated"]:
            assert "NextMarker" not in resp
            break
        assert resp["NextMarker"] == max(items, key=lambda s: s.encode())
        marker = resp["NextMarker"]
    dirs = {k.split("/")[0] + "/" for k in BIG if "/" in k}
    assert len(seen) == len(set(seen)) == 500 + len(dirs)
    assert set(seen) == {k for k in BIG if "/" not in k} | dirs


def test_listing_sees_deletes_and_overwrites(s3: Any, bucket: str) -> None:
    put_keys(s3, bucket, ["k1", "k2", "k3"])
    s3.put_object(Bucket=bucket, Key="k2", Body=b"longer body")
    s3.delete_object(Bucket=bucket, Key="k1")
    resp = s3.list_objects_v2(Bucket=bucket)
    assert [(o["Key"], o["Size"]) for o in resp["Contents"]] == [("k2", 11), ("k3", 2)]


def test_fsck(server: Server) -> None:
    assert server.fsck()["ok"]
