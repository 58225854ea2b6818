"""Object and bucket tagging against a real `s3dedup serve` with real boto3 and the aws cli:
PutObjectTagging, GetObjectTagging, DeleteObjectTagging, PutBucketTagging, GetBucketTagging,
DeleteBucketTagging, the x-amz-tagging header of PutObject, CopyObject (with
x-amz-tagging-directive) and CreateMultipartUpload, x-amz-tagging-count, the limits, the
errors, and that tags survive a restart.

Sources the assertions rest on (the S3 API reference is https://docs.aws.amazon.com/AmazonS3/
latest/API/, the S3 user guide https://docs.aws.amazon.com/AmazonS3/latest/userguide/):

- [PutObjectTagging] API_PutObjectTagging.html: "Sets the supplied tag-set to an object that
  already exists", "Amazon S3 limits the maximum number of tags to 10 tags per object",
  special errors InvalidTag and MalformedXML.
- [GetObjectTagging] API_GetObjectTagging.html: answers <Tagging><TagSet>, TagSet required.
- [DeleteObjectTagging] API_DeleteObjectTagging.html: "Removes the entire tag set", 204.
- [PutBucketTagging] API_PutBucketTagging.html: "it will overwrite any current tags the bucket
  already has"; InvalidTag, MalformedXML. Its Response Syntax says 200, its sample 204.
- [GetBucketTagging] API_GetBucketTagging.html: special error NoSuchTagSet, "There is no tag
  set associated with the bucket".
- [DeleteBucketTagging] API_DeleteBucketTagging.html: 204.
- [PutObject] API_PutObject.html: x-amz-tagging, "The tag-set must be encoded as URL Query
  parameters. (For example, "Key1=Value1")".
- [CopyObject] API_CopyObject.html: x-amz-tagging-directive COPY | REPLACE, "The default value
  is COPY"; with COPY "the tag-set will be copied from the source object directly"; the
  default of x-amz-tagging "is the empty value".
- [CreateMultipartUpload] API_CreateMultipartUpload.html: x-amz-tagging, "The tag-set for the
  object".
- [GetObject] API_GetObject.html and [HeadObject] API_HeadObject.html: x-amz-tagging-count,
  "The number of tags, if any, on the object". botocore's S3 model (AWS's own service model,
  1.43.x) has TagCount = x-amz-tagging-count on both GetObjectOutput and HeadObjectOutput.
- [Tag] API_Tag.html / [Tagging] API_Tagging.html: Tagging > TagSet > Tag > Key, Value; all
  "Required: Yes".
- [object-tagging] userguide/object-tagging.html: "up to 10 tags with an object", "unique tag
  keys", "A tag key can be up to 128 Unicode characters in length, and tag values can be up to
  256 Unicode characters", "internally represented in UTF-16"; "If you send this request with
  an empty tag set, Amazon S3 deletes the existing tag set on the object".
- [CostAllocTagging] userguide/CostAllocTagging.html: a bucket tag set "can contain as many as
  50 tags", keys unique, key 1 to 128 and value 0 to 256 Unicode characters.
- [tag-restrictions] https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/
  allocation-tag-restrictions.html: the `aws:` prefix is reserved.
- [ErrorResponses] API/ErrorResponses.html: InvalidTag 400 ("duplicate keys, keys or values
  that are too long, or system tags"), MalformedXML 400, NoSuchTagSet 404, NoSuchKey 404,
  NoSuchBucket 404.

Where the AWS pages name no code, other servers' tests (all secondary) are named at the test:
ceph/s3-tests (s3tests_boto3/functional/test_s3.py), versity/versitygw (s3err and its
integration tests), scality/cloudserver (lib/api/apiUtils/object/tagging.js), and S3's own
answers reported in boto/boto3#1213.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Aws, Server, make_server
from tests.test_s3_objects import assert_error, error_xml, instrument, rand, raw_request

MiB = 1024 * 1024
UNICODE_HEADER = urlencode({"ключ": "значение", "clé": "été"}, quote_via=quote)


@pytest.fixture
def s3(server: Server) -> Any:
    return instrument(server.client())


# -- helpers -------------------------------------------------------------------------------


def tag_set(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def as_dict(tags: list[dict[str, str]]) -> dict[str, str]:
    """A TagSet as a dict: S3 promises no order. No key may come back twice."""
    out = {t["Key"]: t["Value"] for t in tags}
    assert len(out) == len(tags), tags
    return out


def object_tags(s3: Any, bucket: str, key: str) -> dict[str, str]:
    resp = s3.get_object_tagging(Bucket=bucket, Key=key)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    return as_dict(resp["TagSet"])  # TagSet is required in the answer [GetObjectTagging]


def bucket_tags(s3: Any, bucket: str) -> dict[str, str]:
    resp = s3.get_bucket_tagging(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    return as_dict(resp["TagSet"])


def put_object_tags(s3: Any, bucket: str, key: str, tags: dict[str, str]) -> None:
    resp = s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tag_set(tags)})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200


def put_bucket_tags(s3: Any, bucket: str, tags: dict[str, str]) -> None:
    resp = s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_set(tags)})
    # [PutBucketTagging]: the Response Syntax says 200, the sample response (what S3 sends) 204
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204


def assert_error_in(
    exc: pytest.ExceptionInfo[ClientError], codes: set[str], status: int = 400
) -> None:
    """The S3 error format, with one of ``codes``. Where AWS's pages are silent and other
    servers disagree, the one code asserted is what S3 itself answers (captured responses:
    BadRequest for too many tags, InvalidArgument for a bad x-amz-tagging header)."""
    code = exc.value.response["Error"]["Code"]
    assert code in codes, exc.value.response
    assert_error(exc, code, status)


def assert_no_key(s3: Any, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def md5_header(body: bytes) -> dict[str, str]:
    # botocore marks PutObjectTagging and PutBucketTagging requestChecksumRequired
    return {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}


def tagging_xml(*tags: tuple[str, str]) -> bytes:
    inner = "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in tags)
    return f"<Tagging><TagSet>{inner}</TagSet></Tagging>".encode()


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def many(n: int, key_len: int = 0, value_len: int = 0) -> dict[str, str]:
    """``n`` distinct tags; keys and values padded to the given lengths."""
    return {f"{i:03d}".ljust(key_len, "k"): f"{i}".ljust(value_len, "v") for i in range(n)}


# -- PutObjectTagging / GetObjectTagging / DeleteObjectTagging ----------------------------


def test_untagged_object_has_empty_tag_set(s3: Any, bucket: str) -> None:
    # [GetObjectTagging]; ceph s3-tests test_put_delete_tags reads an empty TagSet
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    resp = s3.get_object_tagging(Bucket=bucket, Key="k")
    assert resp["TagSet"] == []


def test_put_get_object_tagging_round_trip(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    tags = {"project": "s3dedup", "env": "test", "empty": "", "Case": "Sensitive"}
    put_object_tags(s3, bucket, "k", tags)
    assert object_tags(s3, bucket, "k") == tags
    # keys are case sensitive [object-tagging]
    put_object_tags(s3, bucket, "k", {"case": "lower", "Case": "upper"})
    assert object_tags(s3, bucket, "k") == {"case": "lower", "Case": "upper"}


def test_put_object_tagging_replaces_whole_set(s3: Any, bucket: str) -> None:
    # [PutObjectTagging] "Sets the supplied tag-set": a replacement, not a merge
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    put_object_tags(s3, bucket, "k", {"a": "1", "b": "2"})
    put_object_tags(s3, bucket, "k", {"c": "3"})
    assert object_tags(s3, bucket, "k") == {"c": "3"}
    put_object_tags(s3, bucket, "k", {"c": "changed"})
    assert object_tags(s3, bucket, "k") == {"c": "changed"}


def test_put_object_tagging_keeps_data_and_metadata(s3: Any, bucket: str) -> None:
    data = rand(3000)
    put = s3.put_object(
        Bucket=bucket, Key="k", Body=data, ContentType="text/plain", Metadata={"m": "1"}
    )
    put_object_tags(s3, bucket, "k", {"a": "1"})
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == data
    assert got["ETag"] == put["ETag"]
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"m": "1"}


def test_tags_belong_to_one_object(s3: Any, bucket: str) -> None:
    """Two objects with the same bytes (one set of chunks here) keep their own tags."""
    data = rand(5000)
    s3.put_object(Bucket=bucket, Key="one", Body=data)
    s3.put_object(Bucket=bucket, Key="two", Body=data, Tagging="two=yes")
    put_object_tags(s3, bucket, "one", {"one": "yes"})
    assert object_tags(s3, bucket, "one") == {"one": "yes"}
    assert object_tags(s3, bucket, "two") == {"two": "yes"}
    s3.delete_object_tagging(Bucket=bucket, Key="one")
    assert object_tags(s3, bucket, "one") == {}
    assert object_tags(s3, bucket, "two") == {"two": "yes"}


def test_delete_object_tagging(s3: Any, bucket: str) -> None:
    data = b"keep me"
    s3.put_object(Bucket=bucket, Key="k", Body=data)
    put_object_tags(s3, bucket, "k", {"a": "1", "b": "2"})
    resp = s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204  # [DeleteObjectTagging]
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == data
    # the tag set is already empty: removing it again is no error
    resp = s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_put_empty_tag_set_clears_tags(s3: Any, bucket: str) -> None:
    # [object-tagging]: "If you send this request with an empty tag set, Amazon S3 deletes the
    # existing tag set on the object"
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    put_object_tags(s3, bucket, "k", {"a": "1"})
    put_object_tags(s3, bucket, "k", {})
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")


@pytest.mark.parametrize("missing", ["key", "bucket"])
def test_object_tagging_missing_key_and_bucket(s3: Any, bucket: str, missing: str) -> None:
    # [ErrorResponses] NoSuchKey / NoSuchBucket, 404
    tagging = {"TagSet": tag_set({"a": "1"})}
    where = {"Bucket": bucket, "Key": "missing"}
    code = "NoSuchKey"
    if missing == "bucket":
        where, code = {"Bucket": f"missing-{uuid.uuid4().hex[:12]}", "Key": "k"}, "NoSuchBucket"
    for call in (
        lambda: s3.get_object_tagging(**where),
        lambda: s3.put_object_tagging(**where, Tagging=tagging),
        lambda: s3.delete_object_tagging(**where),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert_error(e, code, 404)
    if missing == "key":
        assert_no_key(s3, bucket, "missing")  # PutObjectTagging created nothing


def test_unicode_tags_round_trip(s3: Any, bucket: str) -> None:
    # [object-tagging]: keys and values are "Unicode characters"; [tag-restrictions] allows
    # letters, numbers and white space representable in UTF-8
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    tags = {
        "ключ": "значение",
        "clé": "été ü",
        "文字": "漢字 かな",
        "a b+c-d=e.f_g:h/i@j": "+ - = . _ : / @",
    }
    put_object_tags(s3, bucket, "k", tags)
    assert object_tags(s3, bucket, "k") == tags


def test_tag_lengths_count_characters_not_bytes(s3: Any, bucket: str) -> None:
    # [object-tagging]: 128 and 256 "Unicode characters" (UTF-16 positions; these are all in
    # the BMP, one position each). 128 x "é" is 256 bytes of UTF-8, 256 x "文" 768.
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    tags = {"é" * 128: "文" * 256}
    put_object_tags(s3, bucket, "k", tags)
    assert object_tags(s3, bucket, "k") == tags
    with pytest.raises(ClientError) as e:
        put_object_tags(s3, bucket, "k", {"é" * 129: "v"})
    assert_error(e, "InvalidTag", 400)
    with pytest.raises(ClientError) as e:
        put_object_tags(s3, bucket, "k", {"k": "文" * 257})
    assert_error(e, "InvalidTag", 400)
    assert object_tags(s3, bucket, "k") == tags


# -- limits and errors of PutObjectTagging ------------------------------------------------


def test_object_tag_limits_accepted(s3: Any, bucket: str) -> None:
    # [object-tagging]: up to 10 tags, keys up to 128, values up to 256 characters; ceph
    # s3-tests test_put_max_kvsize_tags
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    tags = many(10, 128, 256)
    assert all(len(k) == 128 for k in tags) and all(len(v) == 256 for v in tags.values())
    put_object_tags(s3, bucket, "k", tags)
    assert object_tags(s3, bucket, "k") == tags
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 10


def test_object_more_than_10_tags(s3: Any, bucket: str) -> None:
    """11 tags: 400. AWS's pages name no code for the count. S3 itself answers
    "BadRequest: Object tags cannot be greater than 10" (boto/boto3#1213; versitygw's
    ErrObjectTaggingLimited and scality/cloudserver agree); ceph s3-tests test_put_excess_tags
    expects InvalidTag, the code [PutObjectTagging] gives for a tag that fails validation."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    put_object_tags(s3, bucket, "k", {"keep": "me"})
    with pytest.raises(ClientError) as e:
        put_object_tags(s3, bucket, "k", many(11))
    assert_error_in(e, {"BadRequest"})
    assert object_tags(s3, bucket, "k") == {"keep": "me"}


@pytest.mark.parametrize(
    "tags",
    [
        # [object-tagging] "must have unique tag keys"; [ErrorResponses] InvalidTag "duplicate
        # keys"; scality/cloudserver: "Cannot provide multiple Tags with the same key"
        [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}],
        [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "1"}],
        # [object-tagging] 128 / 256; ceph s3-tests test_put_excess_key_tags / _val_tags
        [{"Key": "k" * 129, "Value": "v"}],
        [{"Key": "k", "Value": "v" * 257}],
        # [tag-restrictions] the aws: prefix is reserved; [ErrorResponses] InvalidTag "system
        # tags"
        [{"Key": "aws:cost", "Value": "v"}],
        [{"Key": "AWS:cost", "Value": "v"}],
    ],
    ids=["duplicate-key", "duplicate-tag", "key-129", "value-257", "aws-prefix", "AWS-prefix"],
)
def test_object_invalid_tag(s3: Any, bucket: str, tags: list[dict[str, str]]) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    put_object_tags(s3, bucket, "k", {"keep": "me"})
    with pytest.raises(ClientError) as e:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": tags})
    assert_error(e, "InvalidTag", 400)
    assert object_tags(s3, bucket, "k") == {"keep": "me"}  # nothing of it applied


@pytest.mark.parametrize("bad", ["a,b", "a?b", "a*b", "a#b", "a!b", "a(b)", "{a}"])
def test_object_tag_invalid_characters(s3: Any, bucket: str, bad: str) -> None:
    """The S3 user guide: keys and values "can only contain Unicode letters or numbers, white
    space, and the following symbols: _ . : / = + @ -". S3 answered a PutObject whose tag key
    held `[{,}]` with "InvalidTag: The TagKey you have provided is invalid" (aws/aws-cli#2841);
    versitygw's integration tests expect InvalidTag for `? ( * $ # !` in keys and values."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    for tags in ({bad: "v"}, {"k": bad}):
        with pytest.raises(ClientError) as e:
            put_object_tags(s3, bucket, "k", tags)
        assert_error(e, "InvalidTag", 400)
    assert object_tags(s3, bucket, "k") == {}


@pytest.mark.parametrize(
    "body",
    [
        b"<Tagging><TagSet>",  # not well-formed
        b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag></TagSet>",
        b"not xml at all",
        b"<Tagging></Tagging>",  # [Tagging]: TagSet "Required: Yes"
        b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",  # [Tag]: Value required
        b"<Tags><TagSet></TagSet></Tags>",  # another root element
    ],
    ids=["unterminated", "no-end-tag", "not-xml", "no-tagset", "no-value", "wrong-root"],
)
def test_object_tagging_malformed_xml(server: Server, s3: Any, bucket: str, body: bytes) -> None:
    # [PutObjectTagging] MalformedXML "The XML provided does not match the schema"; the last
    # three as scality/cloudserver's parseTagXml (validateXMLStructure / validateTagStructure)
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    put_object_tags(s3, bucket, "k", {"keep": "me"})
    status, h, resp = raw_request(
        server, "PUT", f"/{bucket}/k", query="tagging", headers=md5_header(body), body=body
    )
    assert status == 400, resp
    err = error_xml(resp)
    assert err["Code"] == "MalformedXML"
    assert err["RequestId"] == h["x-amz-request-id"]
    assert object_tags(s3, bucket, "k") == {"keep": "me"}


def test_object_tagging_raw_documents(server: Server, s3: Any, bucket: str) -> None:
    """The request samples of [PutObjectTagging] carry no namespace; the answer is a Tagging
    document holding TagSet > Tag > Key, Value [GetObjectTagging]."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    body = tagging_xml(("a", "1"), ("b c", "d=e"), ("ü", "文"))
    status, _, resp = raw_request(
        server, "PUT", f"/{bucket}/k", query="tagging", headers=md5_header(body), body=body
    )
    assert status == 200, resp
    assert object_tags(s3, bucket, "k") == {"a": "1", "b c": "d=e", "ü": "文"}
    status, _, resp = raw_request(server, "GET", f"/{bucket}/k", query="tagging")
    assert status == 200, resp
    root = ET.fromstring(resp)
    assert local(root.tag) == "Tagging"
    assert [local(c.tag) for c in root] == ["TagSet"]
    got = {}
    for tag in root[0]:
        assert local(tag.tag) == "Tag"
        fields = {local(c.tag): c.text or "" for c in tag}
        assert set(fields) == {"Key", "Value"}
        got[fields["Key"]] = fields["Value"]
    assert got == {"a": "1", "b c": "d=e", "ü": "文"}


# -- x-amz-tagging on PutObject and x-amz-tagging-count -----------------------------------


def test_put_object_with_tagging_header(s3: Any, bucket: str) -> None:
    # [PutObject] x-amz-tagging: URL query parameters
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", Tagging="a=1&b=two%20words")
    assert object_tags(s3, bucket, "k") == {"a": "1", "b": "two words"}


@pytest.mark.parametrize(
    ("header", "tags"),
    [
        ("k=v", {"k": "v"}),
        # ceph s3-tests test_put_obj_with_tags: "foo=bar&bar" reads back bar with the empty
        # value; versitygw's integration tests: "key" -> {"key": ""}, "key=&" -> {"key": ""}
        ("foo=bar&bar", {"foo": "bar", "bar": ""}),
        ("a=1&b=", {"a": "1", "b": ""}),
        # percent-encoded UTF-8 and characters of the tag set [tag-restrictions]
        ("%C3%BC=%E6%96%87", {"ü": "文"}),
        ("a%2Bb=c%3Dd&e%2Ff=g%3Ah%40i", {"a+b": "c=d", "e/f": "g:h@i"}),
        (UNICODE_HEADER, {"ключ": "значение", "clé": "été"}),
    ],
    ids=["one", "no-equals", "empty-value", "utf8", "specials", "unicode"],
)
def test_tagging_header_decoding(s3: Any, bucket: str, header: str, tags: dict[str, str]) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", Tagging=header)
    assert object_tags(s3, bucket, "k") == tags


@pytest.mark.parametrize(
    ("header", "codes"),
    [
        # The header "shall be encoded as UTF-8 then URLEncoded URL query parameters without
        # tag name duplicates": S3's InvalidArgument message (versitygw ErrInvalidURLEncodedTagging
        # for "key=val&key=val", scality/cloudserver parseTagFromQuery); InvalidTag is the code
        # AWS documents for duplicate keys in general [ErrorResponses]
        ("a=1&a=2", {"InvalidArgument"}),
        ("a=1&b=2&a=3", {"InvalidArgument"}),
        # 11 tags: see test_object_more_than_10_tags
        ("&".join(f"t{i}=v" for i in range(11)), {"BadRequest"}),
        # [object-tagging] 128 / 256 characters; versitygw ErrInvalidTagKey / ErrInvalidTagValue
        ("k" * 129 + "=v", {"InvalidTag"}),
        ("k=" + "v" * 257, {"InvalidTag"}),
        # [tag-restrictions] reserved prefix
        ("aws%3Acost=1", {"InvalidTag"}),
    ],
    ids=["duplicate", "duplicate-apart", "eleven", "key-129", "value-257", "aws-prefix"],
)
def test_tagging_header_invalid(s3: Any, bucket: str, header: str, codes: set[str]) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="new", Body=b"data", Tagging=header)
    assert_error_in(e, codes)
    assert_no_key(s3, bucket, "new")  # the refused PUT stored nothing


def test_get_object_tag_count(s3: Any, bucket: str) -> None:
    # [GetObject] x-amz-tagging-count: "The number of tags, if any, on the object"
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", Tagging="a=1&b=2")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["TagCount"] == 2
    assert got["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "2"
    assert got["Body"].read() == b"data"
    put_object_tags(s3, bucket, "k", {"x": "1", "y": "2", "z": "3"})
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 3
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert "TagCount" not in got
    assert "x-amz-tagging-count" not in got["ResponseMetadata"]["HTTPHeaders"]
    s3.put_object(Bucket=bucket, Key="plain", Body=b"data")
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="plain")


def test_head_object_tag_count(s3: Any, bucket: str) -> None:
    # [HeadObject] lists x-amz-tagging-count (botocore's model: HeadObjectOutput.TagCount);
    # ceph s3-tests test_get_obj_head_tagging reads TagCount from head_object
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", Tagging="a=1&b=2")
    assert s3.head_object(Bucket=bucket, Key="k")["TagCount"] == 2
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert "TagCount" not in s3.head_object(Bucket=bucket, Key="k")


def test_overwrite_drops_tags(s3: Any, bucket: str) -> None:
    """A PutObject makes a new object: the old one's tags go with it ([PutObject]: the tag set
    of the object is what x-amz-tagging gives)."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"one", Tagging="a=1")
    put_object_tags(s3, bucket, "k", {"a": "1", "b": "2"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"two")
    assert object_tags(s3, bucket, "k") == {}
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")

    s3.put_object(Bucket=bucket, Key="k", Body=b"three", Tagging="c=3")
    s3.put_object(Bucket=bucket, Key="k", Body=b"four", Tagging="d=4")
    assert object_tags(s3, bucket, "k") == {"d": "4"}

    s3.delete_object(Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"four")
    assert object_tags(s3, bucket, "k") == {}


# -- CopyObject ----------------------------------------------------------------------------


def test_copy_object_copies_tags_by_default(s3: Any, bucket: str) -> None:
    # [CopyObject]: x-amz-tagging-directive "The default value is COPY"
    s3.put_object(Bucket=bucket, Key="src", Body=b"source", Tagging="a=1&b=2")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert object_tags(s3, bucket, "dst") == {"a": "1", "b": "2"}
    s3.copy_object(
        Bucket=bucket,
        Key="dst2",
        CopySource={"Bucket": bucket, "Key": "src"},
        TaggingDirective="COPY",
    )
    assert object_tags(s3, bucket, "dst2") == {"a": "1", "b": "2"}
    # the copies' tags are their own
    put_object_tags(s3, bucket, "dst", {"changed": "yes"})
    assert object_tags(s3, bucket, "src") == {"a": "1", "b": "2"}
    assert object_tags(s3, bucket, "dst2") == {"a": "1", "b": "2"}


def test_copy_object_metadata_replace_keeps_tags(s3: Any, bucket: str) -> None:
    # the tagging directive is its own header: MetadataDirective=REPLACE leaves it at COPY
    s3.put_object(Bucket=bucket, Key="src", Body=b"source", Tagging="a=1")
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        Metadata={"new": "meta"},
    )
    assert object_tags(s3, bucket, "dst") == {"a": "1"}
    assert s3.head_object(Bucket=bucket, Key="dst")["Metadata"] == {"new": "meta"}


def test_copy_object_replace_tags(s3: Any, bucket: str) -> None:
    # [CopyObject]: with REPLACE the tag set is x-amz-tagging's, whose default "is the empty
    # value"
    s3.put_object(Bucket=bucket, Key="src", Body=b"source", Tagging="a=1&b=2")
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        TaggingDirective="REPLACE",
        Tagging="c=3&d=four%20and%20more",
    )
    assert object_tags(s3, bucket, "dst") == {"c": "3", "d": "four and more"}
    s3.copy_object(
        Bucket=bucket,
        Key="none",
        CopySource={"Bucket": bucket, "Key": "src"},
        TaggingDirective="REPLACE",
    )
    assert object_tags(s3, bucket, "none") == {}
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="none")
    assert object_tags(s3, bucket, "src") == {"a": "1", "b": "2"}


def test_copy_object_from_untagged_source(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"source")
    s3.put_object(Bucket=bucket, Key="dst", Body=b"old", Tagging="old=tag")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert object_tags(s3, bucket, "dst") == {}  # the copy replaced dst, tags and all


def test_tagging_header_invalid_on_copy_and_multipart(s3: Any, bucket: str) -> None:
    # the x-amz-tagging of CopyObject and CreateMultipartUpload is PutObject's: see
    # test_tagging_header_invalid
    s3.put_object(Bucket=bucket, Key="src", Body=b"source")
    with pytest.raises(ClientError) as e:
        s3.copy_object(
            Bucket=bucket,
            Key="dst",
            CopySource={"Bucket": bucket, "Key": "src"},
            TaggingDirective="REPLACE",
            Tagging="a=1&a=2",
        )
    assert_error_in(e, {"InvalidArgument"})
    assert_no_key(s3, bucket, "dst")
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="k=" + "v" * 257)
    assert_error_in(e, {"InvalidTag"})
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


# -- multipart -----------------------------------------------------------------------------


def test_multipart_upload_tagging(s3: Any, bucket: str) -> None:
    # [CreateMultipartUpload] x-amz-tagging: "The tag-set for the object"
    uid = s3.create_multipart_upload(
        Bucket=bucket, Key="mp", Tagging="a=1&b=two%20words&c=%E6%96%87"
    )["UploadId"]
    parts = [rand(5 * MiB, seed=1), rand(1000, seed=2)]
    etags = [
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=n, Body=body)["ETag"]
        for n, body in enumerate(parts, 1)
    ]
    # no object yet, so no tags anywhere
    with pytest.raises(ClientError) as e:
        s3.get_object_tagging(Bucket=bucket, Key="mp")
    assert_error(e, "NoSuchKey", 404)
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": t} for n, t in enumerate(etags, 1)]},
    )
    assert object_tags(s3, bucket, "mp") == {"a": "1", "b": "two words", "c": "文"}
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["TagCount"] == 3
    assert got["Body"].read() == b"".join(parts)


def test_multipart_upload_without_tagging(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="mp", Body=b"old", Tagging="old=tag")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=b"x")["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert object_tags(s3, bucket, "mp") == {}


# -- bucket tagging ------------------------------------------------------------------------


def test_bucket_without_tags_no_such_tag_set(s3: Any, bucket: str) -> None:
    # [GetBucketTagging] NoSuchTagSet; [ErrorResponses] 404; ceph test_set_bucket_tagging
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert_error(e, "NoSuchTagSet", 404)


def test_bucket_tagging_round_trip(s3: Any, bucket: str) -> None:
    tags = {"team": "storage", "cost-center": "42", "empty": "", "ünïcode": "文字"}
    put_bucket_tags(s3, bucket, tags)
    assert bucket_tags(s3, bucket) == tags
    # [PutBucketTagging]: "it will overwrite any current tags the bucket already has"
    put_bucket_tags(s3, bucket, {"only": "one"})
    assert bucket_tags(s3, bucket) == {"only": "one"}
    # bucket and object tags are apart
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    assert object_tags(s3, bucket, "k") == {}
    put_object_tags(s3, bucket, "k", {"object": "tag"})
    assert bucket_tags(s3, bucket) == {"only": "one"}

    resp = s3.delete_bucket_tagging(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204  # [DeleteBucketTagging]
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert_error(e, "NoSuchTagSet", 404)
    assert object_tags(s3, bucket, "k") == {"object": "tag"}


def test_bucket_tag_limits_accepted(s3: Any, bucket: str) -> None:
    # [CostAllocTagging]: as many as 50 tags, keys up to 128, values up to 256 characters
    tags = many(50, 128, 256)
    put_bucket_tags(s3, bucket, tags)
    assert bucket_tags(s3, bucket) == tags


def test_bucket_more_than_50_tags(s3: Any, bucket: str) -> None:
    """51 tags: 400. AWS's pages name no code for the count; versitygw
    (ErrBucketTaggingLimited, PR #1209) and scality/cloudserver answer "BadRequest: Bucket tag
    count cannot be greater than 50"; InvalidTag is [PutBucketTagging]'s code for a tag that
    fails validation."""
    put_bucket_tags(s3, bucket, {"keep": "me"})
    with pytest.raises(ClientError) as e:
        put_bucket_tags(s3, bucket, many(51))
    assert_error_in(e, {"BadRequest"})
    assert bucket_tags(s3, bucket) == {"keep": "me"}


@pytest.mark.parametrize(
    "tags",
    [
        # [CostAllocTagging] "Keys must be unique within a tag set"; [ErrorResponses] InvalidTag
        [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}],
        # [CostAllocTagging] key 1 to 128, value 0 to 256 characters
        [{"Key": "k" * 129, "Value": "v"}],
        [{"Key": "k", "Value": "v" * 257}],
    ],
    ids=["duplicate-key", "key-129", "value-257"],
)
def test_bucket_invalid_tag(s3: Any, bucket: str, tags: list[dict[str, str]]) -> None:
    put_bucket_tags(s3, bucket, {"keep": "me"})
    with pytest.raises(ClientError) as e:
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
    assert_error(e, "InvalidTag", 400)
    assert bucket_tags(s3, bucket) == {"keep": "me"}


def test_bucket_tagging_malformed_xml(server: Server, bucket: str) -> None:
    # [PutBucketTagging] MalformedXML
    for body in (b"<Tagging><TagSet>", b"<Tagging></Tagging>", b"garbage"):
        status, h, resp = raw_request(
            server, "PUT", f"/{bucket}", query="tagging", headers=md5_header(body), body=body
        )
        assert status == 400, resp
        err = error_xml(resp)
        assert err["Code"] == "MalformedXML", body
        assert err["RequestId"] == h["x-amz-request-id"]
    status, _, resp = raw_request(server, "GET", f"/{bucket}", query="tagging")
    assert status == 404 and error_xml(resp)["Code"] == "NoSuchTagSet"


def test_bucket_tagging_missing_bucket(s3: Any) -> None:
    name = f"missing-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=name)
    assert_error(e, "NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_set({"a": "1"})})
    assert_error(e, "NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.delete_bucket_tagging(Bucket=name)
    assert_error(e, "NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)  # PutBucketTagging created nothing
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_recreated_bucket_has_no_tags(s3: Any) -> None:
    """Tags go with the bucket and its objects: a new bucket of the same name has none."""
    name = f"retag-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    put_bucket_tags(s3, name, {"a": "1"})
    s3.put_object(Bucket=name, Key="k", Body=b"data", Tagging="o=1")
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=name)
    assert_error(e, "NoSuchTagSet", 404)
    s3.put_object(Bucket=name, Key="k", Body=b"data")
    assert object_tags(s3, name, "k") == {}


# -- persistence ---------------------------------------------------------------------------


def test_tags_survive_restart(tmp_path: Path) -> None:
    srv = make_server(tmp_path).start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="tags")
        put_bucket_tags(s3, "tags", {"bucket": "tag", "ü": "文"})
        s3.put_object(Bucket="tags", Key="header", Body=b"h", Tagging="h=1&h2=two%20words")
        s3.put_object(Bucket="tags", Key="api", Body=b"a")
        put_object_tags(s3, "tags", "api", {"api": "1", "clé": "été"})
        s3.copy_object(Bucket="tags", Key="copy", CopySource={"Bucket": "tags", "Key": "api"})
        s3.put_object(Bucket="tags", Key="cleared", Body=b"c", Tagging="gone=1")
        s3.delete_object_tagging(Bucket="tags", Key="cleared")
        s3.create_bucket(Bucket="untagged")
        put_bucket_tags(s3, "untagged", {"gone": "1"})
        s3.delete_bucket_tagging(Bucket="untagged")

        srv.restart()
        s3 = srv.client()
        assert bucket_tags(s3, "tags") == {"bucket": "tag", "ü": "文"}
        assert object_tags(s3, "tags", "header") == {"h": "1", "h2": "two words"}
        assert object_tags(s3, "tags", "api") == {"api": "1", "clé": "été"}
        assert object_tags(s3, "tags", "copy") == {"api": "1", "clé": "été"}
        assert object_tags(s3, "tags", "cleared") == {}
        assert s3.get_object(Bucket="tags", Key="header")["TagCount"] == 2
        with pytest.raises(ClientError) as e:
            s3.get_bucket_tagging(Bucket="untagged")
        assert e.value.response["Error"]["Code"] == "NoSuchTagSet"
    finally:
        srv.stop()


# -- the aws cli ---------------------------------------------------------------------------


def test_awscli_object_tagging(aws: Aws, s3: Any, bucket: str, tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_bytes(b"from the aws cli\n")
    aws(
        "s3api",
        "put-object",
        "--bucket",
        bucket,
        "--key",
        "k",
        "--body",
        str(body),
        "--tagging",
        "a=1&b=two%20words",
    )
    assert object_tags(s3, bucket, "k") == {"a": "1", "b": "two words"}

    aws(
        "s3api",
        "put-object-tagging",
        "--bucket",
        bucket,
        "--key",
        "k",
        "--tagging",
        "TagSet=[{Key=k,Value=v},{Key=env,Value=prod}]",
    )
    out = aws("s3api", "get-object-tagging", "--bucket", bucket, "--key", "k")
    assert as_dict(json.loads(out.stdout)["TagSet"]) == {"k": "v", "env": "prod"}
