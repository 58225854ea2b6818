"""The admin API (JSON, SigV4-authenticated like S3) and the health check.

Paths live under ``/_s3dedup/``: an underscore is not allowed in bucket names, so they can
never shadow a bucket (a plain ``/health`` would be ListObjects on a bucket named "health").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from dedup.fsck import fsck
from gateway.s3.auth import authenticate
from gateway.s3.dispatch import CONFIG, CREDENTIALS, ENGINE
from gateway.s3.errors import S3Error

PREFIX = "/_s3dedup"

log = structlog.get_logger("s3dedup.admin")


def _authenticate(request: web.Request) -> None:
    raw_path, _, raw_query = request.raw_path.partition("?")
    auth = authenticate(
        request.method,
        raw_path,
        raw_query,
        request.headers,
        request.app[CREDENTIALS],
        request.app[CONFIG].region,
        datetime.now(UTC),
    )
    if auth.access_key is None:
        raise S3Error("AccessDenied")


def stats_of(app: web.Application) -> dict[str, Any]:
    s = app[ENGINE].index.stats()
    stored = s["chunk_bytes"] + s["inline_bytes"]
    return {
        "objects": s["objects"],
        "logical_bytes": s["logical_bytes"],
        "stored_bytes": stored,
        "chunks": s["chunks"],
        "chunk_bytes": s["chunk_bytes"],
        "inline_bytes": s["inline_bytes"],
        "dedup_ratio": round(s["logical_bytes"] / stored, 4) if stored else 1.0,
    }


async def stats(request: web.Request) -> web.Response:
    _authenticate(request)
    return web.json_response(stats_of(request.app))


async def gc(request: web.Request) -> web.Response:
    _authenticate(request)
    raw = request.query.get("grace")
    try:
        grace = request.app[CONFIG].gc_grace if raw is None else float(raw)
    except ValueError as exc:
        raise S3Error("InvalidArgument", "grace must be a number of seconds") from exc
    if grace < 0 or math.isnan(grace):
        raise S3Error("InvalidArgument", "grace must be a number of seconds")
    result = await request.app[ENGINE].collect_garbage(grace)
    return web.json_response(
        {"chunks_deleted": result.chunks_deleted, "bytes_freed": result.bytes_freed}
    )


async def lifecycle_handler(request: web.Request) -> web.Response:
    """Apply the buckets' lifecycle rules now. ``dry-run=true`` only reports what would go;
    ``at=<ISO 8601 time>`` (dry runs only) evaluates the rules as of that time."""
    _authenticate(request)
    dry_run = request.query.get("dry-run") == "true"
    at = request.query.get("at")
    as_of = None
    if at is not None:
        if not dry_run:
            raise S3Error("InvalidArgument", "at is only for dry runs (dry-run=true)")
        try:
            when = datetime.fromisoformat(at)
        except ValueError as exc:
            raise S3Error("InvalidArgument", "at must be an ISO 8601 time") from exc
        as_of = int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)
    result = await request.app[ENGINE].apply_lifecycle(as_of, dry_run=dry_run)
    return web.json_response(result.as_dict())


async def fsck_handler(request: web.Request) -> web.Response:
    _authenticate(request)
    engine = request.app[ENGINE]
    verify = request.query.get("verify-data") == "true"
    report = await fsck(engine.index, engine.store, verify_data=verify)
    answer = report.as_dict()
    from gateway.cluster.maintain import MAINTAINER, placement_problems

    maintainer = request.app.get(MAINTAINER)
    if maintainer is not None:  # a cluster: every chunk on R live nodes, as recorded
        problems, counts = await placement_problems(maintainer)
        answer["problems"] += problems
        answer["ok"] = not answer["problems"]
        answer.update(counts)
    return web.json_response(answer)


CLUSTER_JOBS = ("repair", "reconcile", "rebalance", "drain", "remove", "scrub")


def _job_args(job: str, query: Mapping[str, str]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if job in ("reconcile", "drain", "remove"):
        node = query.get("node")
        if not node:
            raise S3Error("InvalidArgument", f"{job} needs node=ID")
        args["node"] = node
    if job == "remove":
        args["force"] = query.get("force") == "true"
    if job == "scrub":
        raw = query.get("rate", "0")
        if not raw.isdigit():
            raise S3Error("InvalidArgument", "rate must be bytes per second (0: unlimited)")
        args["rate"] = int(raw)
    return args


async def cluster_job(request: web.Request) -> web.StreamResponse:
    """Run a cluster job (see gateway/cluster/maintain.py), streaming progress: one JSON object
    per line, the last one ``{"result": {...}}`` (or ``{"error": "..."}``)."""
    _authenticate(request)
    from gateway.cluster.maintain import MAINTAINER, JobError

    job = request.match_info["job"]
    maintainer = request.app.get(MAINTAINER)
    if maintainer is None:
        raise S3Error("InvalidRequest", f"{job} needs a cluster gateway (s3dedup gateway)")
    args = _job_args(job, request.query)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    gone = False

    async def send(line: dict[str, Any]) -> None:
        nonlocal gone
        if gone:
            return
        try:
            await response.write(json.dumps(line).encode() + b"\n")
        except (ConnectionError, RuntimeError):
            gone = True  # the client left: the job still runs to its end

    try:
        result = await maintainer.run(job, send, **args)
    except JobError as exc:
        await send({"error": str(exc)})
    except Exception as exc:  # the status line is sent: the error goes in the stream
        log.exception("cluster job failed", job=job)
        await send({"error": f"{type(exc).__name__}: {exc}"})
    else:
        await send({"result": result})
    if not gone:
        await response.write_eof()
    return response


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def add_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX + "/health", health)
    app.router.add_get(PREFIX + "/admin/stats", stats)
    app.router.add_post(PREFIX + "/admin/gc", gc)
    app.router.add_post(PREFIX + "/admin/fsck", fsck_handler)
    app.router.add_post(PREFIX + "/admin/lifecycle", lifecycle_handler)
    app.router.add_post(PREFIX + "/admin/{job:" + "|".join(CLUSTER_JOBS) + "}", cluster_job)
