"""Bucket lifecycle: the configuration API (boto3, raw XML), x-amz-expiration, the pass
that applies the rules (``s3dedup admin lifecycle``, the background loop, the engine as of a
later time), and that expired data goes at the next GC.

AWS references: PutBucketLifecycleConfiguration / GetBucketLifecycleConfiguration /
DeleteBucketLifecycle (API reference), "Lifecycle configuration elements" and "Setting
lifecycle configuration" (user guide): Days are counted from the object's creation and
rounded up to the next midnight UTC; a Date must be midnight UTC; a rule needs an action;
rule IDs are unique and at most 255 characters.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dedup import catalog, lifecycle, multipart
from dedup.multipart import UploadRecord
from tests.conftest import Server, make_server
from tests.test_engine import open_engine, put
from tests.test_s3_objects import assert_error, instrument, raw_request

PAST = datetime(2020, 1, 1, tzinfo=UTC)
DAY_S = 86_400


@pytest.fixture
def s3(server: Server) -> Any:
    return instrument(server.client())


def rules_of(s3: Any, bucket: str) -> list[dict[str, Any]]:
    return list(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"])


def set_rules(s3: Any, bucket: str, *rules: dict[str, Any]) -> None:
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": list(rules)}
    )


def keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def mine(result: dict[str, Any], bucket: str) -> list[dict[str, Any]]:
    """The dry-run items of one bucket (the shared server has other tests' buckets)."""
    return [i for i in result["items"] if i["bucket"] == bucket]


# -- the configuration API -----------------------------------------------------------------


def test_no_configuration(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert_error(e, "NoSuchLifecycleConfiguration", 404)
    # deleting what is not there is fine (S3 answers 204)
    resp = s3.delete_bucket_lifecycle(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_round_trip_of_every_kind_of_rule(s3: Any, bucket: str) -> None:
    rules: list[dict[str, Any]] = [
        {
            "ID": "logs",
            "Filter": {"Prefix": "logs/"},
            "Status": "Enabled",
            "Expiration": {"Days": 30},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        },
        {
            "ID": "temp",
            "Filter": {"Tag": {"Key": "class", "Value": "temp"}},
            "Status": "Enabled",
            "Expiration": {"Date": PAST},
        },
        {
            "ID": "big-old",
            "Filter": {
                "And": {
                    "Prefix": "data/",
                    "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}],
                    "ObjectSizeGreaterThan": 1000,
                    "ObjectSizeLessThan": 5000,
                }
            },
            "Status": "Disabled",
            "Expiration": {"Days": 1},
        },
        {
            "ID": "small",
            "Filter": {"ObjectSizeLessThan": 10},
            "Status": "Enabled",
            "Expiration": {"Days": 2},
        },
        {
            "ID": "versions",
            "Filter": {},
            "Status": "Enabled",
            "NoncurrentVersionExpiration": {"NoncurrentDays": 5, "NewerNoncurrentVersions": 2},
            "Expiration": {"ExpiredObjectDeleteMarker": True},
        },
    ]
    set_rules(s3, bucket, *rules)
    assert rules_of(s3, bucket) == rules
    # a second PUT replaces the whole configuration
    set_rules(s3, bucket, rules[0])
    assert rules_of(s3, bucket) == [rules[0]]
    resp = s3.delete_bucket_lifecycle(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert_error(e, "NoSuchLifecycleConfiguration", 404)


def test_old_api_prefix_and_a_rule_without_id(server: Server, bucket: str, s3: Any) -> None:
    body = (
        b"<LifecycleConfiguration><Rule><Prefix>tmp/</Prefix><Status>Enabled</Status>"
        b"<Expiration><Days>3</Days></Expiration></Rule></LifecycleConfiguration>"
    )
    status, _, answer = raw_request(
        server, "PUT", f"/{bucket}", query="lifecycle", body=body, headers=_md5(body)
    )
    assert status == 200, answer
    (rule,) = rules_of(s3, bucket)
    assert rule["Prefix"] == "tmp/" and "Filter" not in rule  # shown as it was given
    assert rule["Expiration"] == {"Days": 3}
    assert len(rule["ID"]) > 0  # S3 names a rule that has no ID


def _md5(body: bytes) -> dict[str, str]:
    import base64
    import hashlib

    return {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}


BAD_RULES = [
    ({"Expiration": {"Days": 0}}, "InvalidArgument"),
    ({"Expiration": {"Days": -3}}, "InvalidArgument"),
    ({"Expiration": {"Date": datetime(2020, 1, 1, 12, tzinfo=UTC)}}, "InvalidArgument"),
    ({"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 0}}, "InvalidArgument"),
    ({}, "InvalidRequest"),  # no action at all
    ({"ID": "x" * 256, "Expiration": {"Days": 1}}, "InvalidArgument"),
    ({"Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}, "NotImplemented"),
    (
        {
            "Filter": {"Tag": {"Key": "a", "Value": "1"}},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
        "InvalidRequest",
    ),
    (
        {
            "Filter": {"And": {"ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 5}},
            "Expiration": {"Days": 1},
        },
        "InvalidRequest",
    ),
]


@pytest.mark.parametrize(("change", "code"), BAD_RULES)
def test_refused_rules(s3: Any, bucket: str, change: dict[str, Any], code: str) -> None:
    good = {
        "ID": "keep",
        "Filter": {"Prefix": "k/"},
        "Status": "Enabled",
        "Expiration": {"Days": 9},
    }
    set_rules(s3, bucket, good)
    rule = {"ID": "r", "Filter": {"Prefix": ""}, "Status": "Enabled", **change}
    with pytest.raises(ClientError) as e:
        set_rules(s3, bucket, rule)
    assert_error(e, code, 501 if code == "NotImplemented" else 400)
    assert rules_of(s3, bucket) == [good]  # a refused configuration changes nothing


def test_duplicate_rule_ids(s3: Any, bucket: str) -> None:
    rule = {"ID": "same", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 1}}
    with pytest.raises(ClientError) as e:
        set_rules(s3, bucket, rule, {**rule, "Filter": {"Prefix": "x"}})
    assert_error(e, "InvalidArgument", 400)


@pytest.mark.parametrize(
    "body",
    [
        b"<LifecycleConfiguration></LifecycleConfiguration>",  # no rule
        b"<LifecycleConfiguration><Rule><Filter/><Status>On</Status>"
        b"<Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>",
        b"<LifecycleConfiguration><Rule><Filter/><Prefix>a</Prefix><Status>Enabled</Status>"
        b"<Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>",
        b"<LifecycleConfiguration><Rule><Status>Enabled</Status>"  # neither Filter nor Prefix
        b"<Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>",
        b"<LifecycleConfiguration><Rule><Filter><Prefix>a</Prefix><Tag><Key>k</Key>"
        b"<Value>v</Value></Tag></Filter><Status>Enabled</Status>"  # two filters without And
        b"<Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>",
        b"<LifecycleConfiguration><Rule><Filter/><Status>Enabled</Status><Expiration>"
        b"<Days>1</Days><Date>2020-01-01T00:00:00Z</Date></Expiration></Rule>"
        b"</LifecycleConfiguration>",
        b"<LifecycleConfiguration><Rule><Filter/><Status>Enabled</Status><Expiration>"
        b"<Days>ten</Days></Expiration></Rule></LifecycleConfiguration>",
        # more digits than int() takes (was a 500)
        b"<LifecycleConfiguration><Rule><Filter/><Status>Enabled</Status><Expiration><Days>"
        + b"9" * 5000
        + b"</Days></Expiration></Rule></LifecycleConfiguration>",
        b"<Lifecycle/>",
        b"<LifecycleConfiguration><Rule>",
    ],
)
def test_malformed_documents(server: Server, bucket: str, body: bytes) -> None:
    status, _, answer = raw_request(
        server, "PUT", f"/{bucket}", query="lifecycle", body=body, headers=_md5(body)
    )
    assert status == 400 and b"<Code>MalformedXML</Code>" in answer, answer


def test_empty_body_and_missing_bucket(server: Server, s3: Any, bucket: str) -> None:
    status, _, answer = raw_request(server, "PUT", f"/{bucket}", query="lifecycle")
    assert status == 400 and b"MissingRequestBodyError" in answer, answer
    rule = {"ID": "r", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 1}}
    for call in (
        lambda: set_rules(s3, "no-such-bucket-lc", rule),
        lambda: s3.get_bucket_lifecycle_configuration(Bucket="no-such-bucket-lc"),
        lambda: s3.delete_bucket_lifecycle(Bucket="no-such-bucket-lc"),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert_error(e, "NoSuchBucket", 404)


def test_a_recreated_bucket_has_no_rules(s3: Any) -> None:
    name = "lc-recreated-" + str(int(time.time() * 1000))
    s3.create_bucket(Bucket=name)
    set_rules(s3, name, {"ID": "r", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 1}})
    s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=name)
    assert_error(e, "NoSuchLifecycleConfiguration", 404)


# -- x-amz-expiration ----------------------------------------------------------------------


def test_get_and_head_name_the_expiry(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="logs/a", Body=b"x")
    s3.put_object(Bucket=bucket, Key="other", Body=b"x")
    s3.put_object(Bucket=bucket, Key="temp", Body=b"x", Tagging="class=temp")
    set_rules(
        s3,
        bucket,
        {
            "ID": "logs",
            "Filter": {"Prefix": "logs/"},
            "Status": "Enabled",
            "Expiration": {"Days": 30},
        },
        {
            "ID": "temp",
            "Filter": {"Tag": {"Key": "class", "Value": "temp"}},
            "Status": "Enabled",
            "Expiration": {"Date": PAST},
        },
        {"ID": "off", "Filter": {}, "Status": "Disabled", "Expiration": {"Days": 1}},
    )
    head = s3.head_object(Bucket=bucket, Key="logs/a")
    # creation + 30 days, rounded up to the next midnight UTC
    created = head["LastModified"].timestamp()
    midnight = -(-(created + 30 * DAY_S) // DAY_S) * DAY_S
    want = datetime.fromtimestamp(midnight, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert head["Expiration"] == f'expiry-date="{want}", rule-id="logs"'
    assert s3.get_object(Bucket=bucket, Key="logs/a")["Expiration"] == head["Expiration"]
    temp = s3.head_object(Bucket=bucket, Key="temp")["Expiration"]
    assert temp == 'expiry-date="Wed, 01 Jan 2020 00:00:00 GMT", rule-id="temp"'
    assert "Expiration" not in s3.head_object(Bucket=bucket, Key="other")  # the rule is off


def test_an_expiry_past_any_date_names_none(s3: Any, bucket: str) -> None:
    """Days in the hundreds of millions are a valid rule, but no HTTP date can name the
    expiry: GET and HEAD answer without x-amz-expiration (they answered 500)."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    rule = {"ID": "far", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 999_999_999}}
    set_rules(s3, bucket, rule)
    assert "Expiration" not in s3.head_object(Bucket=bucket, Key="k")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


# -- applying the rules --------------------------------------------------------------------


def test_admin_pass_expires_what_the_rules_select(server: Server, s3: Any, bucket: str) -> None:
    bodies = {
        "tmp/small": b"s" * 100,
        "tmp/big": b"b" * 300_000,
        "tmp/tagged": b"t" * 100,
        "keep/x": b"k" * 100,
        "logs/young": b"y" * 100,
    }
    for key, body in bodies.items():
        tagging = "expire=yes" if key == "tmp/tagged" else ""
        s3.put_object(Bucket=bucket, Key=key, Body=body, Tagging=tagging)
    s3.create_multipart_upload(Bucket=bucket, Key="logs/upload")
    set_rules(
        s3,
        bucket,
        # objects over 1000 bytes under tmp/, as of a past date: due now
        {
            "ID": "big",
            "Filter": {"And": {"Prefix": "tmp/", "ObjectSizeGreaterThan": 1000}},
            "Status": "Enabled",
            "Expiration": {"Date": PAST},
        },
        {
            "ID": "tagged",
            "Filter": {"Tag": {"Key": "expire", "Value": "yes"}},
            "Status": "Enabled",
            "Expiration": {"Date": PAST},
        },
        {
            "ID": "logs",
            "Filter": {"Prefix": "logs/"},
            "Status": "Enabled",
            "Expiration": {"Days": 1},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
        },
        {"ID": "off", "Filter": {}, "Status": "Disabled", "Expiration": {"Date": PAST}},
    )

    dry = server.lifecycle("--dry-run")
    assert sorted((i["key"], i["rule"]) for i in mine(dry, bucket)) == [
        ("tmp/big", "big"),
        ("tmp/tagged", "tagged"),
    ]
    assert sorted(keys(s3, bucket)) == sorted(bodies)  # a dry run deletes nothing

    # as of three days on, the Days rules are due too (dry runs only)
    later = datetime.fromtimestamp(time.time() + 3 * DAY_S, UTC).isoformat()
    ahead = mine(server.lifecycle("--dry-run", "--at", later), bucket)
    assert {i["key"] for i in ahead} == {"tmp/big", "tmp/tagged", "logs/young", "logs/upload"}
    assert [i["rule"] for i in ahead if "upload" in i] == ["logs"]
    refused = server.admin("lifecycle", "--at", later)
    assert refused.returncode != 0 and "dry-run" in refused.stderr

    before = server.stats()
    server.lifecycle()
    assert sorted(keys(s3, bucket)) == ["keep/x", "logs/young", "tmp/small"]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads") is not None  # not yet due
    after = server.stats()
    # (<=: the pass covers every bucket of the shared server, other tests' rules included)
    assert after["logical_bytes"] <= before["logical_bytes"] - 300_100
    assert server.gc(0)["bytes_freed"] >= 300_000  # the expired chunks go at the next GC
    assert server.fsck()["ok"]


def test_expiry_spares_an_object_written_after_it_looked(tmp_path: Path) -> None:
    """catalog.expire_object deletes only the object the pass listed (same ETag and mtime)."""

    async def run() -> None:
        engine = await open_engine(tmp_path / "e")
        try:
            await put(engine, "k", b"one" * 1000)
            rec = await engine.read(lambda txn: catalog.get_object(txn, "b", "k"))
            assert rec is not None
            await put(engine, "k", b"two" * 1000)  # overwritten after the pass looked
            gone = await engine.index.write(
                lambda txn: catalog.expire_object(txn, "b", "k", rec.etag, rec.mtime_ms, 0)
            )
            assert gone is False
            now = await engine.read(lambda txn: catalog.get_object(txn, "b", "k"))
            assert now is not None and now.etag != rec.etag
            gone = await engine.index.write(
                lambda txn: catalog.expire_object(txn, "b", "k", now.etag, now.mtime_ms, 0)
            )
            assert gone is True
        finally:
            await engine.close()

    asyncio.run(run())


def test_engine_pass_as_of_later_days(tmp_path: Path) -> None:
    """Days-based expiry and upload abort, applied for real, as of days after now."""

    async def run() -> None:
        engine = await open_engine(tmp_path / "e")
        try:
            await put(engine, "logs/a", b"a" * 5000)
            await put(engine, "keep/b", b"b" * 5000)
            now = engine.now_ms()
            upload = UploadRecord(now, "owner")
            await engine.index.write(
                lambda txn: multipart.create_upload(txn, "b", "logs/u", "0" * 32, upload)
            )
            rules = (
                lifecycle.Rule(
                    id="logs",
                    enabled=True,
                    filter=lifecycle.Filter(prefix="logs/"),
                    filter_form="Prefix",
                    expire_days=2,
                    abort_days=1,
                ),
            )
            raw = lifecycle.to_json(rules)
            await engine.index.write(
                lambda txn: catalog.set_bucket_config(txn, "b", lifecycle.KIND, raw)
            )
            day = lifecycle.DAY_MS
            soon = await engine.apply_lifecycle(now + day // 2)
            assert (soon.expired, soon.aborted) == (0, 0)
            mid = await engine.apply_lifecycle(lifecycle.next_midnight(now + day))
            assert (mid.expired, mid.aborted) == (0, 1)  # the upload: a day, then midnight
            late = await engine.apply_lifecycle(lifecycle.next_midnight(now + 2 * day))
            assert (late.expired, late.expired_bytes) == (1, 5000)
            left = await engine.read(lambda txn: catalog.list_objects(txn, "b", "", "", "", 10))
            assert [e.key for e in left.entries] == ["keep/b"]
        finally:
            await engine.close()

    asyncio.run(run())


def test_background_pass(tmp_path: Path) -> None:
    srv = make_server(tmp_path, S3DEDUP_LIFECYCLE_INTERVAL="0.5").start()
    try:
        s3 = instrument(srv.client())
        s3.create_bucket(Bucket="lcb")
        s3.put_object(Bucket="lcb", Key="old/a", Body=b"a")
        s3.put_object(Bucket="lcb", Key="new/b", Body=b"b")
        set_rules(
            s3,
            "lcb",
            {
                "ID": "old",
                "Filter": {"Prefix": "old/"},
                "Status": "Enabled",
                "Expiration": {"Date": PAST},
            },
        )
        deadline = time.monotonic() + 30
        while keys(s3, "lcb") != ["new/b"]:
            assert time.monotonic() < deadline, keys(s3, "lcb")
            time.sleep(0.2)
        # the rules survive a restart
        srv.restart()
        assert [r["ID"] for r in rules_of(srv.client(), "lcb")] == ["old"]
    finally:
        srv.stop()
