"""A bucket's CORS rules: checked from a PutBucketCors document, kept as JSON in the bucket
record, matched against browser requests, turned into response headers. No HTTP here.

Matching is Amazon S3's: the first rule whose AllowedOrigin matches the ``Origin`` (one ``*``
wildcard allowed in each), whose AllowedMethod has the method (for a preflight, the
``Access-Control-Request-Method``), and — for a preflight — whose AllowedHeader patterns
cover every header of ``Access-Control-Request-Headers`` (case-insensitive) is the one used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from gateway.s3.errors import S3Error
from gateway.s3.xml import Node, decimal

METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")
MAX_RULES = 100
MAX_ID_LEN = 255
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")


@dataclass(frozen=True, slots=True)
class CorsRule:
    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...] = ()
    expose: tuple[str, ...] = ()
    max_age: int | None = None
    id: str | None = None

    def allows(self, origin: str, method: str) -> bool:
        return method in self.methods and any(_wildcard(p, origin) for p in self.origins)

    def allows_headers(self, names: Sequence[str]) -> bool:
        return all(any(_wildcard(p.lower(), n.lower()) for p in self.headers) for n in names)


def _wildcard(pattern: str, text: str) -> bool:
    """``pattern`` with at most one ``*`` (any run of characters) matches all of ``text``."""
    head, star, tail = pattern.partition("*")
    if not star:
        return pattern == text
    return len(text) >= len(head) + len(tail) and text.startswith(head) and text.endswith(tail)


def _one_wildcard(element: str, values: Sequence[str]) -> None:
    for v in values:
        if v.count("*") > 1:
            raise S3Error("InvalidRequest", f'{element} "{v}" can not have more than one wildcard.')


def rules_from_document(parsed: Sequence[Mapping[str, list[str]]]) -> tuple[CorsRule, ...]:
    """The rules of a parsed CORSConfiguration (:func:`gateway.s3.xml.parse_cors`), or the
    S3 error that refuses it."""
    if len(parsed) > MAX_RULES:
        raise S3Error("MalformedXML")
    rules = []
    for r in parsed:
        origins, methods = r["AllowedOrigin"], r["AllowedMethod"]
        if not origins or not methods or len(r["ID"]) > 1 or len(r["MaxAgeSeconds"]) > 1:
            raise S3Error("MalformedXML")
        for m in methods:
            if m not in METHODS:
                raise S3Error(
                    "InvalidRequest",
                    f"Found unsupported HTTP method in CORS config. Unsupported method is {m}",
                )
        _one_wildcard("AllowedOrigin", origins)
        _one_wildcard("AllowedHeader", r["AllowedHeader"])
        for name in r["ExposeHeader"]:
            if "*" in name:
                raise S3Error(
                    "InvalidRequest",
                    f'ExposeHeader "{name}" contains wildcard. We currently do not support'
                    " wildcard for ExposeHeader.",
                )
            if not _HEADER_NAME.fullmatch(name):
                raise S3Error(
                    "InvalidRequest", f'ExposeHeader "{name}" contains invalid character.'
                )
        max_age = None
        if r["MaxAgeSeconds"]:
            max_age = decimal(r["MaxAgeSeconds"][0])  # S3 keeps a negative one too
            if max_age is None:
                raise S3Error("MalformedXML")
        rule_id = r["ID"][0] if r["ID"] else None
        if rule_id is not None and len(rule_id) > MAX_ID_LEN:
            raise S3Error("InvalidArgument", "ID length should not exceed allowed limit of 255")
        rules.append(
            CorsRule(
                origins=tuple(origins),
                methods=tuple(methods),
                headers=tuple(r["AllowedHeader"]),
                expose=tuple(r["ExposeHeader"]),
                max_age=max_age,
                id=rule_id,
            )
        )
    return tuple(rules)


def to_json(rules: Sequence[CorsRule]) -> str:
    return json.dumps(
        [
            {
                "origins": r.origins,
                "methods": r.methods,
                "headers": r.headers,
                "expose": r.expose,
                "max_age": r.max_age,
                "id": r.id,
            }
            for r in rules
        ]
    )


@lru_cache(maxsize=256)
def from_json(raw: str) -> tuple[CorsRule, ...]:
    """The rules stored as ``raw`` (cached: every request with an ``Origin`` needs them)."""
    return tuple(
        CorsRule(
            origins=tuple(r["origins"]),
            methods=tuple(r["methods"]),
            headers=tuple(r["headers"]),
            expose=tuple(r["expose"]),
            max_age=r["max_age"],
            id=r["id"],
        )
        for r in json.loads(raw)
    )


def to_document(rules: Sequence[CorsRule]) -> dict[str, Node]:
    """The CORSConfiguration content GetBucketCors answers (AWS's element order)."""
    out: list[Node] = []
    for r in rules:
        out.append(
            {
                "ID": r.id,
                "AllowedHeader": list(r.headers),
                "AllowedMethod": list(r.methods),
                "AllowedOrigin": list(r.origins),
                "ExposeHeader": list(r.expose),
                "MaxAgeSeconds": r.max_age,
            }
        )
    return {"CORSRule": out}


def find_rule(
    rules: Sequence[CorsRule], origin: str, method: str, headers: Sequence[str] = ()
) -> CorsRule | None:
    for rule in rules:
        if rule.allows(origin, method) and rule.allows_headers(headers):
            return rule
    return None


def response_headers(
    rule: CorsRule, origin: str, *, requested_headers: Sequence[str] | None = None
) -> dict[str, str]:
    """The CORS headers of a response to ``origin`` under ``rule``; ``requested_headers``
    for a preflight (its Access-Control-Request-Headers, which it then allows)."""
    out: dict[str, str] = {}
    if "*" in rule.origins:
        out["Access-Control-Allow-Origin"] = "*"
    else:
        out["Access-Control-Allow-Origin"] = origin
        out["Access-Control-Allow-Credentials"] = "true"
    out["Access-Control-Allow-Methods"] = ", ".join(rule.methods)
    if requested_headers:
        out["Access-Control-Allow-Headers"] = ", ".join(h.lower() for h in requested_headers)
    if rule.expose:
        out["Access-Control-Expose-Headers"] = ", ".join(rule.expose)
    if rule.max_age is not None:
        out["Access-Control-Max-Age"] = str(rule.max_age)
    out["Vary"] = VARY
    return out


def split_header_list(value: str | None) -> list[str]:
    """Access-Control-Request-Headers: comma-separated names, empty entries dropped."""
    return [h.strip() for h in (value or "").split(",") if h.strip()]
