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
    access_key: str | None = None
    secret_key: str | None = None
    chunk_min: int = 64 * 1024
    chunk_avg: int = 256 * 1024
    chunk_max: int = 1024 * 1024
    inline_max: int = 4096
    gc_grace: float = 3600.0  # seconds a chunk stays at refcount zero before GC may take it
    gc_interval: float = 600.0  # seconds between background GC runs (0: never)
    presign_max_expires: int = 604800
    log_format: str = "console"  # or "json"
    log_level: str = "info"
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


def _cast(name: str, value: Any) -> Any:
    kind = str(_CASTS[name])
    if "Path" in kind:
        return Path(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    return None if value in ("", None) and "None" in kind else str(value)


def load(file: Path | None = None, flags: dict[str, Any] | None = None,
         environ: dict[str, str] | None = None) -> Config:
    values: dict[str, Any] = {}
    if file is not None:
        with file.open("rb") as fh:
            raw = tomllib.load(fh)
        for k, v in raw.items():
            name = k.replace("-", "_")
            if name not in _CASTS or name == "extra":
                raise ValueError(f"{file}: unknown setting {k!r}")
            values[name] = _cast(name, v)
    env = os.environ if environ is None else environ
    for name in _CASTS:
        v = env.get("S3DEDUP_" + name.upper())
        if v is not None and name != "extra":
            values[name] = _cast(name, v)
    for name, v in (flags or {}).items():
        if v is not None:
            values[name] = _cast(name, v)
    return replace(Config(), **values)
