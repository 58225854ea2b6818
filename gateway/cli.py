"""The `s3dedup` command line (a contract: users and acceptance checks rely on it)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import structlog

from dedup.index import ChunkerMismatchError
from gateway import admin_client, memory
from gateway.admin_client import AdminError
from gateway.config import Config, ConfigError, load
from gateway.credentials import CredentialsError, load_or_create, read_for_client


def setup_logging(fmt: str, level: str) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def cmd_serve(args: argparse.Namespace) -> int:
    config = load(
        Path(args.config) if args.config else None,
        {"data": args.data, "listen": args.listen, "log_format": args.log_format},
    )
    return _run_server(config)


def cmd_gateway(args: argparse.Namespace) -> int:
    """The gateway of a cluster: the index in DATA/index, chunks on the storage nodes."""
    config = load(
        Path(args.config) if args.config else None,
        {
            "data": args.data,
            "listen": args.listen,
            "log_format": args.log_format,
            "cluster_secret": args.cluster_secret,
            "replicas": args.replicas,
            "node_timeout": args.node_timeout,
            "repair_delay": args.repair_delay,
            "move_rate": args.move_rate,
            "scrub_rate": args.scrub_rate,
            "rebalance_threshold": args.rebalance_threshold,
        },
    )
    if not config.cluster_secret:
        raise CliError("--cluster-secret (or S3DEDUP_CLUSTER_SECRET) is required", 2)
    return _run_server(config, cluster=True)


def _run_server(config: Config, *, cluster: bool = False) -> int:
    from gateway.app import DataDirBusy, lock_data_dir, serve

    setup_logging(config.log_format, config.log_level)
    memory.limit_arenas()  # before any worker thread exists (see gateway/memory.py)
    try:
        lock = lock_data_dir(config.data)  # held until the process ends
    except DataDirBusy as exc:
        raise CliError(f"{exc} (is a server already running on it?)", 1) from exc
    try:
        creds, generated = load_or_create(config)

        def ready() -> None:
            _print_banner(
                config, creds.access_key, creds.secret, generated, from_env=bool(config.access_key)
            )

        loop_factory = None
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            pass
        try:
            # SIGTERM and SIGINT stop the server gracefully (see gateway.app.serve): the
            # requests in flight finish, then the index is closed cleanly; exit code 0.
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(serve(config, creds, on_ready=ready, cluster=cluster))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
                raise CliError(
                    f"cannot listen on {config.listen}: {os.strerror(exc.errno)}", 1
                ) from exc
            raise
        except ChunkerMismatchError as exc:
            raise CliError(f"{config.data}: {exc}", 1) from exc
    finally:
        os.close(lock)
    return 0


def _print_banner(config: Config, ak: str, sk: str, generated: bool, from_env: bool) -> None:
    endpoint = f"http://{config.listen}"
    lines = [f"s3dedup serving S3 on {endpoint} (data: {config.data.resolve()})"]
    if from_env:
        lines.append("credentials: from S3DEDUP_ACCESS_KEY / S3DEDUP_SECRET_KEY")
    else:
        where = "generated and saved" if generated else "loaded from"
        lines += [
            f"credentials {where} {config.data.resolve() / 'credentials.json'}:",
            f"  access key: {ak}",
            f"  secret key: {sk}",
            "try:",
            f"  AWS_ACCESS_KEY_ID={ak} AWS_SECRET_ACCESS_KEY={sk} \\",
            f"    aws --endpoint-url {endpoint} --region {config.region} s3 mb s3://my-bucket",
        ]
    print("\n".join(lines), flush=True)


def _client_creds(args: argparse.Namespace) -> tuple[str, str]:
    """The environment's key pair, else the one kept in the data directory (``--data``, or
    S3DEDUP_DATA, or the default ./s3dedup-data)."""
    data = getattr(args, "data", None) or os.environ.get("S3DEDUP_DATA") or Config().data
    return read_for_client(Path(data))


def cmd_stats(args: argparse.Namespace) -> int:
    ak, sk = _client_creds(args)
    stats = asyncio.run(admin_client.call("GET", args.endpoint, "/_s3dedup/admin/stats", ak, sk))
    if args.json:
        print(json.dumps(stats))
    else:
        for k, v in stats.items():
            print(f"{k:>14}: {v}")
    return 0


NODE_COLUMNS = ("id", "url", "state", "capacity", "used", "chunks")


def _node_state(node: dict[str, Any]) -> str:
    """up, down, or draining (an up node being drained)."""
    state = str(node.get("state", "?"))
    return "draining" if state == "up" and node.get("draining") else state


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def cmd_nodes(args: argparse.Namespace) -> int:
    ak, sk = _client_creds(args)
    try:
        answer = asyncio.run(
            admin_client.call("GET", args.endpoint, "/_s3dedup/cluster/nodes", ak, sk)
        )
    except AdminError as exc:
        if "NoSuchBucket" in str(exc) or "HTTP 404" in str(exc):
            raise CliError(f"{args.endpoint} is not a cluster gateway ({exc})", 1) from exc
        raise
    nodes = [
        {
            "id": n["id"],
            "url": n["url"],
            "state": _node_state(n),
            "capacity": n["capacity"],
            "used": n["used"],
            "chunks": n["count"],
            "seen_seconds_ago": n.get("seen_seconds_ago"),
        }
        for n in answer.get("nodes", [])
    ]
    if args.json:
        print(json.dumps({"nodes": nodes}))
        return 0
    rows = [[c.upper() for c in NODE_COLUMNS]]
    for n in nodes:
        used = f"{_size(n['used'])} ({100 * n['used'] / max(n['capacity'], 1):.0f}%)"
        rows.append([n["id"], n["url"], n["state"], _size(n["capacity"]), used, str(n["chunks"])])
    widths = [max(len(r[i]) for r in rows) for i in range(len(NODE_COLUMNS))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    up = sum(n["state"] == "up" for n in nodes)
    print(f"{len(nodes)} nodes, {up} up")
    return 0


_BYTE_COUNTERS = ("bytes", "moved_bytes", "scrubbed_bytes")


def _job_line(job: str, line: dict[str, Any]) -> str:
    """One progress line of a cluster job, for people: ``repair: copying: 12 done, ...``."""
    if "error" in line:
        return f"{job}: failed: {line['error']}"
    done = "result" in line
    fields = line["result"] if done else line
    counters = [
        f"{_size(v) if k in _BYTE_COUNTERS or k.endswith('_used') else v} {k.replace('_', ' ')}"
        for k, v in fields.items()
        if k not in ("job", "phase", "ok", "lost_ids")
    ]
    phase = "done" if done else fields.get("phase", "")
    return f"{job}: {phase}" + (": " + ", ".join(counters) if counters else "")


async def _stream_job(
    endpoint: str, job: str, query: dict[str, str], ak: str, sk: str, as_json: bool
) -> dict[str, Any]:
    """POST a cluster job and print its progress lines as they arrive; the last line's dict."""
    import urllib.parse

    import aiohttp

    path = "/_s3dedup/admin/" + job
    url = endpoint.rstrip("/") + path
    if not url.startswith(("http://", "https://")):
        raise AdminError(f"--endpoint must be an http:// or https:// URL, got {endpoint!r}")
    if query:
        url += "?" + urllib.parse.urlencode(sorted(query.items()), quote_via=urllib.parse.quote)
    headers = admin_client.sign("POST", url, ak, sk)
    last: dict[str, Any] = {}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=admin_client.TIMEOUT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(url, headers=headers) as resp:
                if resp.status != 200:
                    body = await resp.read()
                    raise AdminError(
                        f"POST {endpoint}{path} failed: {admin_client._describe(resp.status, body)}"
                    )
                async for raw in resp.content:
                    if not raw.strip():
                        continue
                    try:
                        last = json.loads(raw)
                    except ValueError as exc:
                        raise AdminError(f"{endpoint} sent a bad progress line: {exc}") from exc
                    print(json.dumps(last) if as_json else _job_line(job, last), flush=True)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise AdminError(f"cannot reach {endpoint}: {exc or type(exc).__name__}") from exc
    return last


def cmd_job(args: argparse.Namespace) -> int:
    """repair, rebalance, scrub, drain, remove, reconcile: run on the gateway, progress shown."""
    ak, sk = _client_creds(args)
    job: str = args.admin
    query: dict[str, str] = {}
    if getattr(args, "node", None):
        query["node"] = args.node
    if getattr(args, "force", False):
        query["force"] = "true"
    if getattr(args, "rate", None) is not None:
        query["rate"] = str(args.rate)
    try:
        last = asyncio.run(_stream_job(args.endpoint, job, query, ak, sk, args.json))
    except AdminError as exc:
        if "NoSuchBucket" in str(exc) or "HTTP 404" in str(exc):
            raise CliError(f"{args.endpoint} is not a cluster gateway ({exc})", 1) from exc
        raise
    if "error" in last:
        raise CliError(f"{job} failed: {last['error']}", 1)
    if "result" not in last:
        raise CliError(f"the gateway ended the {job} stream without a result", 1)
    # non-zero while any chunk is lost or could not be handled (e.g. too few writable nodes):
    # an operator must not read success into a cluster still at risk
    return 0 if last["result"]["ok"] else 1


def cmd_gc(args: argparse.Namespace) -> int:
    ak, sk = _client_creds(args)
    query = {} if args.grace is None else {"grace": str(args.grace)}
    result = asyncio.run(
        admin_client.call("POST", args.endpoint, "/_s3dedup/admin/gc", ak, sk, query)
    )
    print(json.dumps(result))
    return 0


def cmd_lifecycle(args: argparse.Namespace) -> int:
    ak, sk = _client_creds(args)
    query = {}
    if args.dry_run:
        query["dry-run"] = "true"
    if args.at is not None:
        if not args.dry_run:
            raise CliError("--at is only for a --dry-run", 2)
        query["at"] = args.at
    path = "/_s3dedup/admin/lifecycle"
    result = asyncio.run(admin_client.call("POST", args.endpoint, path, ak, sk, query))
    print(json.dumps(result))
    return 0


def cmd_fsck(args: argparse.Namespace) -> int:
    if args.endpoint:
        ak, sk = _client_creds(args)
        query = {"verify-data": "true"} if args.verify_data else {}
        report = asyncio.run(
            admin_client.call("POST", args.endpoint, "/_s3dedup/admin/fsck", ak, sk, query)
        )
    elif args.data:
        report = asyncio.run(_fsck_local(Path(args.data), args.verify_data))
    else:
        print("fsck needs --data DIR (server stopped) or --endpoint URL", file=sys.stderr)
        return 2
    for problem in report["problems"]:
        print(problem)
    summary = {k: v for k, v in report.items() if k != "problems"}
    n = len(report["problems"])
    print(json.dumps(summary) if args.json else f"fsck: {n} problems, {summary}")
    return 0 if report["ok"] else 1


async def _fsck_local(data: Path, verify: bool) -> dict[str, Any]:
    from dedup.fsck import fsck
    from dedup.index import Index
    from dedup.store import DirectoryChunkStore
    from gateway.app import DataDirBusy, lock_data_dir

    if not (data / "index").is_dir():
        raise CliError(f"{data}: no s3dedup index here", 1)
    try:
        lock = lock_data_dir(data)
    except DataDirBusy as exc:
        raise CliError(
            f"{exc}: fsck --data needs the server stopped (or use fsck --endpoint URL)", 1
        ) from exc
    try:
        index = Index(data / "index")
        store = DirectoryChunkStore(data / "store")
        try:
            return (await fsck(index, store, verify_data=verify)).as_dict()
        finally:
            await store.close()
            index.close()
    finally:
        os.close(lock)


def _parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CliError(f"--listen must be HOST:PORT (e.g. 127.0.0.1:9100), got {listen!r}", 2)
    return host.strip("[]"), int(port)


def cmd_node(args: argparse.Namespace) -> int:
    from storage_node.app import NodeConfig, NodeDirBusy
    from storage_node.server import serve as serve_node

    secret = args.cluster_secret or os.environ.get("S3DEDUP_CLUSTER_SECRET")
    if not secret:
        raise CliError("--cluster-secret (or S3DEDUP_CLUSTER_SECRET) is required", 2)
    if args.capacity is not None and args.capacity <= 0:
        raise CliError("--capacity must be a positive number of bytes", 2)
    if args.heartbeat <= 0:
        raise CliError("--heartbeat must be positive", 2)
    host, port = _parse_listen(args.listen)
    setup_logging(args.log_format or "console", os.environ.get("S3DEDUP_LOG_LEVEL", "info"))
    config = NodeConfig(
        data=Path(args.data),
        secret=secret,
        host=host,
        port=port,
        gateway=args.gateway,
        advertise=args.advertise,
        capacity=args.capacity,
        heartbeat=args.heartbeat,
    )

    def ready(node_id: str) -> None:
        print(
            f"s3dedup node {node_id} serving on {config.url} (data: {config.data.resolve()})",
            flush=True,
        )

    try:
        # SIGTERM and SIGINT stop the node gracefully: requests in flight finish, the store
        # is closed and the usage summary is written (marked clean); exit code 0.
        asyncio.run(serve_node(config, on_ready=ready))
    except NodeDirBusy as exc:
        raise CliError(str(exc), 1) from exc
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise CliError(f"cannot listen on {args.listen}: {os.strerror(exc.errno)}", 1) from exc
        raise
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="s3dedup", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="the embedded S3 server (gateway + local chunk store)")
    serve.add_argument("--data", help="data directory (default ./s3dedup-data)")
    serve.add_argument("--listen", help="HOST:PORT (default 127.0.0.1:9000)")
    serve.add_argument("--config", help="TOML configuration file")
    serve.add_argument("--log-format", choices=["console", "json"])
    serve.set_defaults(fn=cmd_serve)

    gw = sub.add_parser("gateway", help="the gateway of a cluster (chunks on storage nodes)")
    gw.add_argument("--data", help="data directory: index and credentials (default ./s3dedup-data)")
    gw.add_argument("--listen", help="HOST:PORT (default 127.0.0.1:9000)")
    gw.add_argument("--config", help="TOML configuration file")
    gw.add_argument(
        "--cluster-secret", help="shared secret of the cluster (or S3DEDUP_CLUSTER_SECRET)"
    )
    gw.add_argument("--replicas", type=int, help="copies of every chunk (default 2)")
    gw.add_argument(
        "--node-timeout", type=float, help="seconds without a heartbeat before a node is down"
    )
    gw.add_argument(
        "--repair-delay",
        type=float,
        help="seconds a node stays down before its chunks are re-replicated (default 300)",
    )
    gw.add_argument(
        "--move-rate", type=int, help="bytes/s rebalance and drain may copy (0: unlimited)"
    )
    gw.add_argument(
        "--scrub-rate", type=int, help="bytes/s each node re-hashes in the background (0: off)"
    )
    gw.add_argument(
        "--rebalance-threshold",
        type=float,
        help="spread of node fill allowed, relative to the mean fill (default 0.10)",
    )
    gw.add_argument("--log-format", choices=["console", "json"])
    gw.set_defaults(fn=cmd_gateway)

    node = sub.add_parser("node", help="a storage node of a cluster")
    node.add_argument("--data", required=True, help="the node's directory")
    node.add_argument("--listen", required=True, help="HOST:PORT")
    node.add_argument("--gateway", required=True, help="URL of the gateway to register with")
    node.add_argument(
        "--cluster-secret", help="shared secret of the cluster (or S3DEDUP_CLUSTER_SECRET)"
    )
    node.add_argument("--capacity", type=int, help="bytes offered (default: the disk's size)")
    node.add_argument("--advertise", help="URL the gateway uses (default http://LISTEN)")
    node.add_argument("--heartbeat", type=float, default=2.0, help="seconds between heartbeats")
    node.add_argument("--log-format", choices=["console", "json"])
    node.set_defaults(fn=cmd_node)

    adm = sub.add_parser("admin", help="administer a store").add_subparsers(
        dest="admin", required=True
    )
    st = adm.add_parser("stats", help="objects, logical and stored bytes, dedup ratio")
    st.add_argument("--endpoint", required=True)
    st.add_argument("--data", help="read credentials from this data directory")
    st.add_argument("--json", action="store_true")
    st.set_defaults(fn=cmd_stats)
    nd = adm.add_parser("nodes", help="the storage nodes a cluster gateway knows")
    nd.add_argument("--endpoint", required=True, help="URL of the cluster gateway")
    nd.add_argument("--data", help="read credentials from this data directory")
    nd.add_argument("--json", action="store_true")
    nd.set_defaults(fn=cmd_nodes)
    jobs = {
        "repair": "re-replicate chunks with fewer than R live copies, re-copy damaged ones",
        "rebalance": "move copies until every node's fill is within the threshold of the mean",
        "scrub": "re-hash every chunk on every node; re-copy damaged ones from a good replica",
        "drain": "move every copy off a node (it takes no new chunks from now on)",
        "remove": "forget a drained node (--force: one lost for good; its chunks are repaired)",
        "reconcile": "make a node's holdings agree with the index",
    }
    for job, text in jobs.items():
        jp = adm.add_parser(job, help=text)
        if job in ("drain", "remove", "reconcile"):
            jp.add_argument("node", help="node id, unique id prefix, number or url")
        if job == "remove":
            jp.add_argument("--force", action="store_true", help="the node is lost for good")
        if job == "scrub":
            jp.add_argument("--rate", type=int, help="bytes/s per node (default: unlimited)")
        jp.add_argument("--endpoint", required=True, help="URL of the cluster gateway")
        jp.add_argument("--data", help="read credentials from this data directory")
        jp.add_argument("--json", action="store_true", help="print the progress lines as JSON")
        jp.set_defaults(fn=cmd_job)
    gc = adm.add_parser("gc", help="garbage-collect unreferenced chunks now")
    gc.add_argument("--endpoint", required=True)
    gc.add_argument("--data", help="read credentials from this data directory")
    gc.add_argument("--grace", type=float, help="seconds at refcount zero before deletion")
    gc.set_defaults(fn=cmd_gc)
    lc = adm.add_parser("lifecycle", help="apply the buckets' lifecycle rules now")
    lc.add_argument("--endpoint", required=True)
    lc.add_argument("--data", help="read credentials from this data directory")
    lc.add_argument("--dry-run", action="store_true", help="only report what would go")
    lc.add_argument("--at", help="with --dry-run: evaluate as of this ISO 8601 time")
    lc.set_defaults(fn=cmd_lifecycle)
    fs = adm.add_parser("fsck", help="recompute refcounts and compare with index and store")
    fs.add_argument("--data", help="data directory of a stopped server")
    fs.add_argument("--endpoint", help="URL of a running server")
    fs.add_argument("--verify-data", action="store_true", help="re-hash every stored chunk")
    fs.add_argument("--json", action="store_true")
    fs.set_defaults(fn=cmd_fsck)
    return p


class CliError(Exception):
    """A failure explained to the user in one line, with the exit code to use."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    prog = "s3dedup " + args.command + (f" {args.admin}" if args.command == "admin" else "")
    try:
        rc: int = args.fn(args)
    except CliError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.code
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except (CredentialsError, AdminError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
