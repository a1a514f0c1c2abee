"""Grid output files. Atomic writes: write a temporary file in the target's directory, fsync, os.replace.

A reader (or a resumed run) therefore sees either the old file or the complete new
one, never a partial file, even if the process is killed mid-write.
"""
from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Callable, Iterator

TMP_MARK = ".tmp-"


def temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_with(path: str | Path, write: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def remove_stale_temps(directory: Path) -> int:
    """Delete temporary files an interrupted run left behind; returns how many."""
    n = 0
    if directory.is_dir():
        for p in directory.iterdir():
            if p.name.startswith(".") and TMP_MARK in p.name and p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()
                    n += 1
    return n


# ---------------------------------------------------------------- parquet with run identity

META_HASH = b"blis_sweep.spec_hash"
META_CHUNK = b"blis_sweep.chunk"


def write_parquet_atomic(path: Path, table, metadata: dict[bytes, bytes] | None = None) -> None:
    import pyarrow.parquet as pq

    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def parquet_identity(path: Path) -> tuple[str | None, int | None]:
    """(spec hash, number of rows) stored in a parquet file; (None, None) if unreadable."""
    import pyarrow.parquet as pq

    try:
        md = pq.read_metadata(path)
    except Exception:  # noqa: BLE001 - a damaged file just counts as missing
        return None, None
    kv = md.metadata or {}
    h = kv.get(META_HASH)
    return (h.decode() if h is not None else None), md.num_rows


def concat_parquet_atomic(path: Path, parts: list[Path], schema, metadata: dict[bytes, bytes]) -> int:
    """Stream `parts` (same schema) into one file, one part in memory at a time; returns rows written."""
    import pyarrow.parquet as pq

    schema = schema.with_metadata({**(schema.metadata or {}), **metadata})
    rows = 0
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for part in parts:
                table = pq.read_table(part).replace_schema_metadata(schema.metadata)
                writer.write_table(table.cast(schema))
                rows += table.num_rows
    return rows
