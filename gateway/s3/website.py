"""Static website hosting: a bucket's WebsiteConfiguration (checked, stored as JSON) and the
website endpoint that serves it, as S3's "Hosting a static website" describes.

With ``website_domain`` configured, a request for ``Host: <bucket>.<website_domain>`` is a
website request: GET and HEAD only, unsigned, answered in HTML. It serves only what the
bucket's policy lets everyone read (a website bucket must be public, as on S3). ``/`` and
keys ending in ``/`` get the index document; a key that is missing but has an index document
under it is redirected (302) to ``key/``; an object's ``x-amz-website-redirect-location``
redirects (301); RedirectAllRequestsTo and RoutingRules redirect as configured; a missing
key gets the error document with status 404 (or a plain HTML 404).
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote
from xml.etree.ElementTree import Element

from gateway.s3.errors import S3Error
from gateway.s3.xml import Node, child_text, decimal, parse

KIND = "website"
MAX_RULES = 50


@dataclass(frozen=True, slots=True)
class Redirect:
    host: str | None = None
    protocol: str | None = None  # "http" / "https"; None: the request's
    replace_key_prefix: str | None = None
    replace_key: str | None = None
    code: str | None = None  # HttpRedirectCode; None: 301


@dataclass(frozen=True, slots=True)
class RoutingRule:
    redirect: Redirect
    key_prefix: str | None = None  # Condition KeyPrefixEquals
    error_code: str | None = None  # Condition HttpErrorCodeReturnedEquals


@dataclass(frozen=True, slots=True)
class Website:
    index: str | None = None  # IndexDocument Suffix
    error: str | None = None  # ErrorDocument Key
    redirect_all: Redirect | None = None  # RedirectAllRequestsTo (HostName, Protocol)
    rules: tuple[RoutingRule, ...] = field(default_factory=tuple)

    def rule_before(self, key: str) -> RoutingRule | None:
        """The first rule that redirects ``key`` before it is looked up."""
        for rule in self.rules:
            if rule.error_code is None and key.startswith(rule.key_prefix or ""):
                return rule
        return None

    def rule_after(self, key: str, status: int) -> RoutingRule | None:
        """The first rule that redirects ``key`` once it answered ``status``."""
        for rule in self.rules:
            if rule.error_code == str(status) and key.startswith(rule.key_prefix or ""):
                return rule
        return None


def _redirect(el: Element, *, all_requests: bool) -> Redirect:
    protocol = child_text(el, "Protocol")
    if protocol is not None and protocol not in ("http", "https"):
        raise S3Error("InvalidArgument", "Invalid protocol, protocol can be http or https.")
    if all_requests:
        host = child_text(el, "HostName")
        if not host:
            raise S3Error("MalformedXML")
        return Redirect(host=host, protocol=protocol)
    code = child_text(el, "HttpRedirectCode")
    value = decimal(code, digits=3)
    if code is not None and (value is None or not 300 <= value <= 399):
        raise S3Error("InvalidArgument", "The provided HTTP redirect code is not valid.")
    prefix, whole = child_text(el, "ReplaceKeyPrefixWith"), child_text(el, "ReplaceKeyWith")
    host = child_text(el, "HostName")
    if all(v is None for v in (protocol, code, prefix, whole, host)):
        raise S3Error("InvalidRequest", "Redirect must have at least one child element.")
    if prefix is not None and whole is not None:
        raise S3Error(
            "InvalidArgument",
            "You can only define ReplaceKeyPrefix or ReplaceKey but not both.",
        )
    return Redirect(host, protocol, prefix, whole, code)


def from_xml(body: bytes) -> Website:
    """A WebsiteConfiguration document, checked (PutBucketWebsite)."""
    root = parse(body)
    if root.tag != "WebsiteConfiguration":
        raise S3Error("MalformedXML")
    all_to = root.find("RedirectAllRequestsTo")
    index_el, error_el = root.find("IndexDocument"), root.find("ErrorDocument")
    rules_el = root.find("RoutingRules")
    if all_to is not None:
        if index_el is not None or error_el is not None or rules_el is not None:
            raise S3Error(
                "InvalidRequest",
                "RedirectAllRequestsTo cannot be provided in conjunction with other Routing Rules.",
            )
        return Website(redirect_all=_redirect(all_to, all_requests=True))
    if index_el is None:
        raise S3Error("InvalidArgument", "A value for IndexDocument Suffix must be provided")
    suffix = child_text(index_el, "Suffix")
    if not suffix or "/" in suffix:
        raise S3Error(
            "InvalidArgument",
            "The IndexDocument Suffix is not well formed",
            ArgumentName="IndexDocument",
            ArgumentValue=suffix or "",
        )
    error_key = None if error_el is None else child_text(error_el, "Key")
    if error_el is not None and not error_key:
        raise S3Error("InvalidArgument", "The ErrorDocument Key is not well formed")
    rules: list[RoutingRule] = []
    for rule_el in [] if rules_el is None else rules_el.findall("RoutingRule"):
        redirect_el = rule_el.find("Redirect")
        if redirect_el is None:
            raise S3Error("MalformedXML")
        cond = rule_el.find("Condition")
        key_prefix = None if cond is None else child_text(cond, "KeyPrefixEquals")
        error_code = None if cond is None else child_text(cond, "HttpErrorCodeReturnedEquals")
        if cond is not None and key_prefix is None and error_code is None:
            raise S3Error("MalformedXML")
        status = decimal(error_code, digits=3)
        if error_code is not None and (status is None or not 400 <= status < 600):
            raise S3Error("InvalidArgument", "The provided HTTP error code is not valid.")
        rules.append(
            RoutingRule(_redirect(redirect_el, all_requests=False), key_prefix, error_code)
        )
    if len(rules) > MAX_RULES:
        raise S3Error("InvalidRequest", f"The number of routing rules must not exceed {MAX_RULES}.")
    return Website(index=suffix, error=error_key, rules=tuple(rules))


def to_document(site: Website) -> dict[str, Node]:
    """The WebsiteConfiguration content GetBucketWebsite answers."""
    if site.redirect_all is not None:
        r = site.redirect_all
        return {"RedirectAllRequestsTo": {"HostName": r.host, "Protocol": r.protocol}}
    doc: dict[str, Node] = {
        "IndexDocument": {"Suffix": site.index},
        "ErrorDocument": None if site.error is None else {"Key": site.error},
    }
    if site.rules:
        doc["RoutingRules"] = {
            "RoutingRule": [
                {
                    "Condition": (
                        None
                        if rule.key_prefix is None and rule.error_code is None
                        else {
                            "KeyPrefixEquals": rule.key_prefix,
                            "HttpErrorCodeReturnedEquals": rule.error_code,
                        }
                    ),
                    "Redirect": {
                        "HostName": rule.redirect.host,
                        "HttpRedirectCode": rule.redirect.code,
                        "Protocol": rule.redirect.protocol,
                        "ReplaceKeyPrefixWith": rule.redirect.replace_key_prefix,
                        "ReplaceKeyWith": rule.redirect.replace_key,
                    },
                }
                for rule in site.rules
            ]
        }
    return doc


def to_json(site: Website) -> str:
    return json.dumps(asdict(site))


@lru_cache(maxsize=256)
def from_json(raw: str) -> Website:
    d: dict[str, Any] = json.loads(raw)
    redirect_all = None if d["redirect_all"] is None else Redirect(**d["redirect_all"])
    rules = tuple(
        RoutingRule(Redirect(**r["redirect"]), r["key_prefix"], r["error_code"]) for r in d["rules"]
    )
    return Website(d["index"], d["error"], redirect_all, rules)


def redirect_location(redirect: Redirect, key: str, prefix: str, scheme: str, host: str) -> str:
    """Where a routing rule (or RedirectAllRequestsTo) sends a request for ``key``;
    ``prefix`` is the rule's KeyPrefixEquals that ReplaceKeyPrefixWith replaces."""
    if redirect.replace_key is not None:
        new_key = redirect.replace_key
    elif redirect.replace_key_prefix is not None:
        new_key = redirect.replace_key_prefix + key[len(prefix) :]
    else:
        new_key = key
    return f"{redirect.protocol or scheme}://{redirect.host or host}/{encode_key(new_key)}"


def encode_key(key: str) -> str:
    """A key as it goes into a Location: percent-encoded (spaces, "?", CR/LF, non-ASCII)."""
    return quote(key, safe="/")


def _items(fields: dict[str, str]) -> str:
    return "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in fields.items())


def error_page(
    status: int,
    reason: str,
    fields: dict[str, str],
    error_document: dict[str, str] | None = None,
) -> str:
    """The HTML page a website endpoint answers an error with (S3's layout: Code, Message,
    details; and, when the custom error document could not be served, why)."""
    title = f"{status} {html.escape(reason)}"
    nested = ""
    if error_document is not None:
        nested = (
            "<h3>An Error Occurred While Attempting to Retrieve a Custom Error Document</h3>\n"
            f"<ul>{_items(error_document)}</ul>\n"
        )
    return (
        f"<html>\n<head><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n"
        f"<ul>{_items(fields)}</ul>\n{nested}<hr/>\n</body>\n</html>\n"
    )
