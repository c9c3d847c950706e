"""Exclusion lists: files of msisdns that a segment must never contain.

Accepted: ``.parquet`` or ``.csv`` with an ``msisdn`` column, or a plain text file with
one number per line (``#`` starts a comment). Numbers are normalised to E.164 by the same
normaliser as every other entry (:func:`jingxin.data.msisdn.normalise_msisdns`):
``13812345678`` and ``8613812345678`` become ``+8613812345678``; a line that is not a
usable number stops the whole file with its file, line and reason.
"""

from __future__ import annotations

import csv
from pathlib import Path

from jingxin.errors import SpecError


def _column(values: list[str], path: Path, lines: list[int]) -> list[str]:
    """The E.164 numbers of ``values`` (read from ``lines`` of ``path``), or a SpecError
    naming the first line that is not a usable number."""
    import pyarrow as pa

    from jingxin.data.msisdn import normalise_msisdns

    result = normalise_msisdns(pa.array(values, pa.string()))
    if result.rejected:
        reasons = result.reason.to_pylist()
        i = next(i for i, r in enumerate(reasons) if r is not None)
        raise SpecError(f"{path}:{lines[i]}: not a phone number: {values[i]!r} "
                        f"({reasons[i].replace('_', ' ')})")  # fmt: skip
    return result.e164.to_pylist()


def read_exclusions(path: str | Path) -> list[str]:
    """The normalised msisdns of an exclusion file (SpecError naming file and line)."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"{path}: exclusion file not found")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        if "msisdn" not in table.column_names:
            raise SpecError(f"{path}: no 'msisdn' column (columns: {table.column_names})")
        values = ["" if v is None else str(v) for v in table.column("msisdn").to_pylist()]
        return _column(values, path, list(range(1, len(values) + 1)))
    from jingxin.data.textfile import read_text

    lines = read_text(path, what="exclusion file", error=SpecError).splitlines()
    if suffix == ".csv" and lines:
        rows = list(csv.reader(lines))
        header = [h.strip().lower() for h in rows[0]]
        if "msisdn" in header:
            i = header.index("msisdn")
            kept = [(n, r[i]) for n, r in enumerate(rows[1:], start=2)
                    if len(r) > i and r[i].strip()]  # fmt: skip
            return _column([v for _, v in kept], path, [n for n, _ in kept])
    kept = [(n, raw.split("#")[0].strip()) for n, raw in enumerate(lines, start=1)]
    kept = [(n, raw) for n, raw in kept if raw]
    return _column([v for _, v in kept], path, [n for n, _ in kept])
