"""Writing the warehouse files: one Parquet file per table, streamed, validated, and only
put in place when the whole run succeeded.

Every batch is checked against the table's :class:`~jingxin.data.warehouse.schema.TableSpec`
(exact Arrow types, no nulls where the schema forbids them, categorical values among the
allowed choices) before it is written. Encoding and compression happen on a background
thread (Arrow releases the GIL there), so writing overlaps generating on a second core. Files are written into a hidden staging directory
inside the output directory and renamed over the final names at the end, so an
interrupted run never leaves a half-written table behind.
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jingxin.data.warehouse.schema import TABLES, TableSpec
from jingxin.errors import InputError

STAGING = ".synth-staging"


def check_batch(spec: TableSpec, batch: pa.Table) -> None:
    """Raise :class:`InputError` naming the table and column if ``batch`` breaks the spec."""
    if not batch.schema.equals(spec.schema):
        raise InputError(f"synth: table {spec.name!r} batch has schema {batch.schema}, "
                         f"expected {spec.schema}")
    for col in spec.columns:
        data = batch.column(col.name)
        if not col.nullable and data.null_count:
            raise InputError(f"synth: table {spec.name!r} column {col.name!r} has "
                             f"{data.null_count} nulls")
        if col.choices is not None:
            bad = set(pc.unique(data.drop_null()).to_pylist()) - set(col.choices)
            if bad:
                raise InputError(f"synth: table {spec.name!r} column {col.name!r} has values "
                                 f"outside its choices: {sorted(bad)[:5]}")


def prepare_output(out: Path, *, force: bool) -> Path:
    """Check ``out`` can take the run and return the staging directory."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    if out.exists() and any(p.name != STAGING for p in out.iterdir()) and not force:
        raise InputError(f"--out {out} is not empty; pass --force to overwrite its tables")
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = out / STAGING
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    except OSError as exc:
        raise InputError(f"--out {out} is not writable: {exc}") from exc
    return staging


def dictionary_columns(spec: TableSpec) -> list[str]:
    """String columns worth dictionary-encoding: all but numbers and single-column keys.
    (Trying a dictionary on unique or float columns only costs time.)"""
    unique = set(spec.msisdn_columns) | (set(spec.key) if len(spec.key) == 1 else set())
    return [c.name for c in spec.columns if c.type == pa.string() and c.name not in unique]


class TableSink:
    """Open Parquet writers, one per table, fed through a bounded queue to one writer
    thread; counts rows. ``write`` re-raises a failure of the writer thread."""

    def __init__(self, staging: Path, *, compression: str = "zstd", depth: int = 6) -> None:
        self.staging = staging
        self.rows = {name: 0 for name in TABLES}
        self.compression = compression
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="synth-writer", daemon=True)
        self._thread.start()

    def write(self, name: str, batch: pa.Table) -> None:
        check_batch(TABLES[name], batch)
        self._raise_if_failed()
        self._queue.put((name, batch))
        self.rows[name] += batch.num_rows

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # keep draining so that the producer never blocks
            try:
                self._write_now(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the producer
                self._error = exc

    def _open(self, name: str) -> pq.ParquetWriter:
        spec = TABLES[name]
        writer = self._writers.get(name)
        if writer is None:
            writer = pq.ParquetWriter(self.staging / f"{name}.parquet", spec.schema,
                                      compression=self.compression,
                                      use_dictionary=dictionary_columns(spec))
            self._writers[name] = writer
        return writer

    def _write_now(self, name: str, batch: pa.Table) -> None:
        self._open(name).write_table(batch, row_group_size=max(batch.num_rows, 1))

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise InputError(f"synth: writing to {self.staging} failed: {self._error}") \
                from self._error

    def _stop(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def close(self) -> None:
        self._stop()
        self._raise_if_failed()
        for name in TABLES:
            self._open(name)  # an empty table still gets its file
        for writer in self._writers.values():
            writer.close()

    def abort(self) -> None:
        if self._thread.is_alive():
            self._stop()
        for writer in self._writers.values():
            with contextlib.suppress(Exception):  # best effort: the run is failing anyway
                writer.close()
        shutil.rmtree(self.staging, ignore_errors=True)


def commit(staging: Path, out: Path) -> None:
    """Move every staged file over its final name, then drop the staging directory."""
    for path in sorted(staging.iterdir()):
        path.replace(out / path.name)
    staging.rmdir()
