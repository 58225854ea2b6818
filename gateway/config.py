"""Configuration: defaults < TOML file < environment (S3DEDUP_*) < command-line flags."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dedup.chunker import ChunkerParams


@dataclass(frozen=True)
class Config:
    data: Path = Path("./s3dedup-data")
    listen: str = "127.0.0.1:9000"
    region: str = "us-east-1"
    domain: str | None = None  # virtual-host style requests when set
    website_domain: str | None = None  # <bucket>.<website_domain>: the website endpoint
    access_key: str | None = None
    secret_key: str | None = None
    chunk_min: int = 64 * 1024
    chunk_avg: int = 256 * 1024
    chunk_max: int = 1024 * 1024
    inline_max: int = 4096
    gc_grace: float = 3600.0  # seconds a chunk stays at refcount zero before GC may take it
    gc_interval: float = 600.0  # seconds between background GC runs (0: never)
    presign_max_expires: int = 604800
    inflight_bytes: int = 32 * 1024 * 1024  # upload bytes held in memory at most (backpressure)
    read_ahead: int = 0  # chunks a GET fetches ahead of the client (0: twice read_batch)
    read_batch: int = 0  # chunks a GET asks of the store at once (0: 8 embedded, 16 cluster)
    upload_expiry: float = 7 * 24 * 3600.0  # multipart uploads idle longer are aborted
    lifecycle_interval: float = 3600.0  # seconds between bucket lifecycle passes (0: never)
    trim_interval: float = 5.0  # seconds between giving free memory back to the OS when idle
    shutdown_timeout: float = 30.0  # seconds requests in flight get to finish on SIGTERM
    log_format: str = "console"  # or "json"
    log_level: str = "info"
    # cluster mode (`s3dedup gateway`): chunks live on storage nodes
    cluster_secret: str | None = None  # shared with the nodes (S3DEDUP_CLUSTER_SECRET)
    replicas: int = 2  # copies of every chunk, on distinct nodes
    node_timeout: float = 10.0  # seconds without a heartbeat before a node is marked down
    node_io_timeout: float = 30.0  # seconds a node may take to answer one read
    repair_delay: float = 300.0  # seconds a node stays down before its chunks are re-replicated
    move_rate: int = 64 * 1024 * 1024  # bytes/s rebalance and drain may copy (0: unlimited)
    scrub_rate: int = 4 * 1024 * 1024  # bytes/s each node re-hashes in the background (0: off)
    rebalance_threshold: float = 0.10  # spread of node fill allowed, relative to the mean fill
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def chunker(self) -> ChunkerParams:
        return ChunkerParams(self.chunk_min, self.chunk_avg, self.chunk_max)


_CASTS = {f.name: f.type for f in fields(Config)}


class ConfigError(ValueError):
    """A setting that cannot be used (the message names the setting and where it came from)."""


def _cast(name: str, value: Any, source: str = "") -> Any:
    kind = str(_CASTS[name])
    try:
        if "Path" in kind:
            return Path(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except (TypeError, ValueError) as exc:
        where = f"{source}: " if source else ""
        raise ConfigError(f"{where}{name} must be {kind}, got {value!r}") from exc
    return None if value in ("", None) and "None" in kind else str(value)


def _check(config: Config) -> Config:
    host, sep, port = config.listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"listen must be HOST:PORT (e.g. 127.0.0.1:9000), got {config.listen!r}")
    if config.log_format not in ("console", "json"):
        raise ConfigError(f"log_format must be console or json, got {config.log_format!r}")
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(
            f"log_level must be debug, info, warning, error or critical, got {config.log_level!r}"
        )
    if config.inflight_bytes < 8 * config.chunk_max:
        raise ConfigError(
            f"inflight_bytes must be at least 8 maximum chunks ({8 * config.chunk_max}),"
            f" got {config.inflight_bytes}"
        )
    if config.read_ahead < 0:
        raise ConfigError(f"read_ahead must be >= 0 (0: automatic), got {config.read_ahead}")
    if config.read_batch < 0:
        raise ConfigError(f"read_batch must be >= 0 (0: automatic), got {config.read_batch}")
    if config.replicas < 1:
        raise ConfigError(f"replicas must be >= 1, got {config.replicas}")
    for name in ("node_timeout", "node_io_timeout"):
        value = getattr(config, name)
        if not value > 0:  # also refuses NaN
            raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r}")
    for name in ("move_rate", "scrub_rate"):
        if getattr(config, name) < 0:
            raise ConfigError(f"{name} must be bytes per second >= 0, got {getattr(config, name)}")
    if not 0 < config.rebalance_threshold < 10:
        raise ConfigError(
            f"rebalance_threshold must be a fraction > 0, got {config.rebalance_threshold!r}"
        )
    for name in (
        "gc_grace",
        "gc_interval",
        "shutdown_timeout",
        "upload_expiry",
        "lifecycle_interval",
        "trim_interval",
        "repair_delay",
    ):
        value = getattr(config, name)
        if not value >= 0:  # also refuses NaN
            raise ConfigError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return config


def load(
    file: Path | None = None,
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Raises :class:`ConfigError`, with a message meant for the user."""
    values: dict[str, Any] = {}
    if file is not None:
        try:
            with file.open("rb") as fh:
                raw = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"{file}: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
        for k, v in raw.items():
            name = k.replace("-", "_")
            if name not in _CASTS or name == "extra":
                raise ConfigError(f"{file}: unknown setting {k!r}")
            values[name] = _cast(name, v, str(file))
    env = os.environ if environ is None else environ
    for name in _CASTS:
        v = env.get("S3DEDUP_" + name.upper())
        if v is not None and name != "extra":
            values[name] = _cast(name, v, "S3DEDUP_" + name.upper())
    for name, v in (flags or {}).items():
        if v is not None:
            values[name] = _cast(name, v, "--" + name.replace("_", "-"))
    return _check(replace(Config(), **values))
