"""Static website hosting: the configuration API (boto3) and the website endpoint
(``Host: <bucket>.<website_domain>``), driven with plain HTTP as a browser would.

AWS references: PutBucketWebsite / GetBucketWebsite / DeleteBucketWebsite (API reference);
user guide "Hosting a static website using Amazon S3": index documents (also for
subfolders, with a 302 to the trailing slash), custom error documents, redirects
(RedirectAllRequestsTo, routing rules with KeyPrefixEquals / HttpErrorCodeReturnedEquals,
x-amz-website-redirect-location), website endpoints answer HTML, GET and HEAD only, and
need the objects to be publicly readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from tests.conftest import Server, make_server
from tests.test_s3_objects import assert_error, instrument

SITE_DOMAIN = "web.test"
TIMEOUT = 10


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp("website")
    srv = make_server(tmp, S3DEDUP_WEBSITE_DOMAIN=SITE_DOMAIN).start()
    yield srv
    srv.stop()


@pytest.fixture
def s3(web_server: Server) -> Any:
    return instrument(web_server.client())


_counter = iter(range(1_000_000))


@pytest.fixture
def site(s3: Any) -> str:
    name = f"site-{next(_counter)}"
    s3.create_bucket(Bucket=name)
    return name


def public(s3: Any, bucket: str) -> None:
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    s3.put_bucket_policy(
        Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    )


def visit(
    srv: Server, bucket: str, path: str, method: str = "GET", **headers: str
) -> requests.Response:
    return requests.request(
        method,
        srv.endpoint + path,
        headers={"Host": f"{bucket}.{SITE_DOMAIN}", **headers},
        allow_redirects=False,
        timeout=TIMEOUT,
    )


def html_error(resp: requests.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("text/html")
    assert f"<li>Code: {code}</li>" in resp.text, resp.text


def put_files(s3: Any, bucket: str, files: dict[str, bytes]) -> None:
    for key, body in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/html")


SITE = {
    "IndexDocument": {"Suffix": "index.html"},
    "ErrorDocument": {"Key": "errors/404.html"},
}


def test_configuration_round_trip(s3: Any, site: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.get_bucket_website(Bucket=site)
    assert_error(e, "NoSuchWebsiteConfiguration", 404)
    rules = [
        {"Condition": {"KeyPrefixEquals": "old/"}, "Redirect": {"ReplaceKeyPrefixWith": "new/"}},
        {
            "Condition": {"HttpErrorCodeReturnedEquals": "404"},
            "Redirect": {"HostName": "example.com", "Protocol": "https", "HttpRedirectCode": "302"},
        },
    ]
    s3.put_bucket_website(Bucket=site, WebsiteConfiguration={**SITE, "RoutingRules": rules})
    got = s3.get_bucket_website(Bucket=site)
    assert got["IndexDocument"] == SITE["IndexDocument"]
    assert got["ErrorDocument"] == SITE["ErrorDocument"]
    assert got["RoutingRules"] == rules
    assert s3.delete_bucket_website(Bucket=site)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.get_bucket_website(Bucket=site)
    assert_error(e, "NoSuchWebsiteConfiguration", 404)


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ({"ErrorDocument": {"Key": "e.html"}}, "InvalidArgument"),  # no IndexDocument
        ({"IndexDocument": {"Suffix": "a/index.html"}}, "InvalidArgument"),
        ({"IndexDocument": {"Suffix": ""}}, "InvalidArgument"),
        (
            {"RedirectAllRequestsTo": {"HostName": "x.com"}, "IndexDocument": {"Suffix": "i"}},
            "InvalidRequest",
        ),
        ({"RedirectAllRequestsTo": {"HostName": "x.com", "Protocol": "ftp"}}, "InvalidArgument"),
        (
            {
                "IndexDocument": {"Suffix": "i"},
                "RoutingRules": [
                    {"Redirect": {"ReplaceKeyWith": "a", "ReplaceKeyPrefixWith": "b"}}
                ],
            },
            "InvalidArgument",
        ),
    ],
    ids=["no-index", "slash", "empty", "redirect-all-and-more", "protocol", "both-replaces"],
)
def test_refused_configurations(s3: Any, site: str, config: dict[str, Any], code: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_bucket_website(Bucket=site, WebsiteConfiguration=config)
    assert_error(e, code, 400)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_website(Bucket=site)
    assert_error(e, "NoSuchWebsiteConfiguration", 404)


def test_serving_a_site(web_server: Server, s3: Any, site: str) -> None:
    put_files(
        s3,
        site,
        {
            "index.html": b"<h1>home</h1>",
            "docs/index.html": b"docs home",
            "errors/404.html": b"custom not found",
            "a b.html": b"spaced",
            "big.html": b"0123456789",
        },
    )
    s3.put_bucket_website(Bucket=site, WebsiteConfiguration=SITE)
    html_error(visit(web_server, site, "/"), 403, "AccessDenied")  # not public yet
    public(s3, site)

    home = visit(web_server, site, "/")
    assert (home.status_code, home.content) == (200, b"<h1>home</h1>")
    assert home.headers["Content-Type"] == "text/html"
    assert visit(web_server, site, "/docs/").content == b"docs home"
    folder = visit(web_server, site, "/docs")
    assert (folder.status_code, folder.headers["Location"]) == (302, "/docs/")
    assert visit(web_server, site, "/a%20b.html").content == b"spaced"
    ranged = visit(web_server, site, "/big.html", Range="bytes=2-4")
    assert (ranged.status_code, ranged.content) == (206, b"234")
    cached = visit(web_server, site, "/big.html", **{"If-None-Match": home.headers["ETag"]})
    assert cached.status_code == 200  # another object's ETag
    etag = visit(web_server, site, "/big.html").headers["ETag"]
    assert visit(web_server, site, "/big.html", **{"If-None-Match": etag}).status_code == 304
    head = visit(web_server, site, "/big.html", "HEAD")
    assert (head.status_code, head.headers["Content-Length"]) == (200, "10")

    missing = visit(web_server, site, "/nowhere.html")
    assert (missing.status_code, missing.content) == (404, b"custom not found")
    html_error(visit(web_server, site, "/big.html", "POST"), 405, "MethodNotAllowed")
    html_error(visit(web_server, site, "/big.html", "DELETE"), 405, "MethodNotAllowed")
    assert s3.get_object(Bucket=site, Key="big.html")["Body"].read() == b"0123456789"


def test_error_pages_without_an_error_document(web_server: Server, s3: Any, site: str) -> None:
    s3.put_bucket_website(
        Bucket=site, WebsiteConfiguration={"IndexDocument": SITE["IndexDocument"]}
    )
    public(s3, site)
    html_error(visit(web_server, site, "/"), 404, "NoSuchKey")  # no index.html yet
    html_error(visit(web_server, "no-such-site", "/"), 404, "NoSuchBucket")
    bare = f"{site}-bare"
    s3.create_bucket(Bucket=bare)
    html_error(visit(web_server, bare, "/"), 404, "NoSuchWebsiteConfiguration")


def test_redirects(web_server: Server, s3: Any, site: str) -> None:
    rules = [
        {"Condition": {"KeyPrefixEquals": "old/"}, "Redirect": {"ReplaceKeyPrefixWith": "new/"}},
        {
            "Condition": {"HttpErrorCodeReturnedEquals": "404"},
            "Redirect": {
                "HostName": "fallback.example",
                "Protocol": "https",
                "HttpRedirectCode": "302",
            },
        },
    ]
    s3.put_bucket_website(Bucket=site, WebsiteConfiguration={**SITE, "RoutingRules": rules})
    public(s3, site)
    put_files(s3, site, {"index.html": b"home"})
    s3.put_object(Bucket=site, Key="moved.html", Body=b"", WebsiteRedirectLocation="/index.html")

    moved = visit(web_server, site, "/moved.html")
    assert (moved.status_code, moved.headers["Location"]) == (301, "/index.html")
    old = visit(web_server, site, "/old/page.html")
    assert old.status_code == 301
    assert old.headers["Location"] == f"http://{site}.{SITE_DOMAIN}/new/page.html"
    gone = visit(web_server, site, "/gone.html")
    assert (gone.status_code, gone.headers["Location"]) == (
        302,
        "https://fallback.example/gone.html",
    )

    everything = f"{site}-all"
    s3.create_bucket(Bucket=everything)
    s3.put_bucket_website(
        Bucket=everything,
        WebsiteConfiguration={"RedirectAllRequestsTo": {"HostName": "www.example.org"}},
    )
    sent = visit(web_server, everything, "/a/b.html")
    assert (sent.status_code, sent.headers["Location"]) == (301, "http://www.example.org/a/b.html")


def test_the_s3_api_is_unchanged_beside_the_website(web_server: Server, s3: Any, site: str) -> None:
    """Only a Host under website_domain is the website: the S3 API (signed, XML) is as ever,
    and unsigned S3 requests stay refused."""
    put_files(s3, site, {"index.html": b"home"})
    s3.put_bucket_website(Bucket=site, WebsiteConfiguration=SITE)
    public(s3, site)
    assert s3.get_object(Bucket=site, Key="index.html")["Body"].read() == b"home"
    plain = requests.get(f"{web_server.endpoint}/{site}/", timeout=TIMEOUT)  # ListObjects
    assert plain.status_code == 403 and "<Code>AccessDenied</Code>" in plain.text
