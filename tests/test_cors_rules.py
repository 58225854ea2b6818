"""gateway/s3/cors.py without a server: wildcard matching, rule choice, JSON round trip."""

from __future__ import annotations

import pytest

from gateway.s3 import cors
from gateway.s3.cors import CorsRule
from gateway.s3.errors import S3Error


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("*", "", True),
        ("*", "http://a.example", True),
        ("http://*.example", "http://a.example", True),
        ("http://*.example", "http://.example", True),
        ("http://*.example", "https://a.example", False),
        ("http://*.example", "http://a.example.evil", False),
        ("ab*ba", "aba", False),  # head and tail may not overlap
        ("ab*ba", "abba", True),
        ("exact", "exact", True),
        ("exact", "exactly", False),
    ],
)
def test_wildcard(pattern: str, text: str, matches: bool) -> None:
    assert cors._wildcard(pattern, text) is matches


def test_first_matching_rule_wins_and_headers_are_case_insensitive() -> None:
    rules = (
        CorsRule(origins=("http://a",), methods=("PUT",), headers=("x-amz-*",)),
        CorsRule(origins=("*",), methods=("GET", "PUT"), headers=("*",)),
    )
    assert cors.find_rule(rules, "http://a", "PUT", ["X-Amz-Date"]) is rules[0]
    assert cors.find_rule(rules, "http://a", "PUT", ["Content-Type"]) is rules[1]
    assert cors.find_rule(rules, "http://b", "GET") is rules[1]
    assert cors.find_rule(rules, "http://b", "DELETE") is None
    assert cors.find_rule(rules[:1], "http://a", "PUT", ["content-type"]) is None


def test_response_headers() -> None:
    star = CorsRule(origins=("*",), methods=("GET",))
    assert cors.response_headers(star, "http://a") == {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "GET",
        "Vary": cors.VARY,
    }
    named = CorsRule(origins=("http://a",), methods=("GET", "PUT"), expose=("ETag",), max_age=9)
    got = cors.response_headers(named, "http://a", requested_headers=["Content-Type"])
    assert got["Access-Control-Allow-Origin"] == "http://a"
    assert got["Access-Control-Allow-Credentials"] == "true"
    assert got["Access-Control-Allow-Headers"] == "content-type"
    assert got["Access-Control-Expose-Headers"] == "ETag"
    assert got["Access-Control-Max-Age"] == "9"


def _doc(**rule: list[str]) -> list[dict[str, list[str]]]:
    base: dict[str, list[str]] = {
        "AllowedOrigin": ["*"],
        "AllowedMethod": ["GET"],
        "AllowedHeader": [],
        "ExposeHeader": [],
        "ID": [],
        "MaxAgeSeconds": [],
    }
    return [{**base, **rule}]


def test_rules_from_document_and_json_round_trip() -> None:
    rules = cors.rules_from_document(_doc(ID=["r1"], MaxAgeSeconds=["60"], AllowedHeader=["*"]))
    assert rules == (CorsRule(("*",), ("GET",), ("*",), (), 60, "r1"),)
    assert cors.from_json(cors.to_json(rules)) == rules


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        ({"AllowedOrigin": []}, "MalformedXML"),
        ({"AllowedMethod": []}, "MalformedXML"),
        ({"AllowedMethod": ["PATCH"]}, "InvalidRequest"),
        ({"AllowedMethod": ["get"]}, "InvalidRequest"),
        ({"AllowedOrigin": ["http://*.*"]}, "InvalidRequest"),
        ({"AllowedHeader": ["x-*-*"]}, "InvalidRequest"),
        ({"MaxAgeSeconds": ["ten"]}, "MalformedXML"),
        ({"MaxAgeSeconds": ["1.5"]}, "MalformedXML"),
        ({"MaxAgeSeconds": ["9" * 5000]}, "MalformedXML"),  # more than int() takes
        ({"ExposeHeader": ["*"]}, "InvalidRequest"),
        ({"ExposeHeader": ["x y"]}, "InvalidRequest"),
        ({"ID": ["x" * 256]}, "InvalidArgument"),
    ],
)
def test_rules_from_document_refuses(rule: dict[str, list[str]], code: str) -> None:
    with pytest.raises(S3Error) as err:
        cors.rules_from_document(_doc(**rule))
    assert err.value.code == code


def test_at_most_100_rules() -> None:
    assert len(cors.rules_from_document(_doc() * 100)) == 100
    with pytest.raises(S3Error, match="MalformedXML"):
        cors.rules_from_document(_doc() * 101)
