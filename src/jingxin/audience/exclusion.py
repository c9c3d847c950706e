"""Exclusion lists: files of msisdns that a segment must never contain.

Accepted: ``.parquet`` or ``.csv`` with an ``msisdn`` column, or a plain text file with
one number per line (``#`` starts a comment). Numbers are normalised to E.164 the way the
warehouse stores them: ``13812345678`` and ``8613812345678`` become ``+8613812345678``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from jingxin.errors import SpecError

_DIGITS = re.compile(r"^\+?\d{5,15}$")


def normalise(raw: str) -> str | None:
    s = raw.strip().replace(" ", "").replace("-", "")
    if not s or not _DIGITS.match(s):
        return None
    if s.startswith("+"):
        return s
    if len(s) == 11 and s.startswith("1"):
        return "+86" + s
    if len(s) == 13 and s.startswith("86"):
        return "+" + s
    return "+" + s


def _column(values: list[str], path: Path, first_line: int) -> list[str]:
    out = []
    for i, raw in enumerate(values):
        n = normalise(str(raw))
        if n is None:
            raise SpecError(f"{path}:{first_line + i}: not a phone number: {raw!r}")
        out.append(n)
    return out


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
        return _column([str(v) for v in table.column("msisdn").to_pylist()], path, 1)
    lines = path.read_text(encoding="utf-8").splitlines()
    if suffix == ".csv" and lines:
        rows = list(csv.reader(lines))
        header = [h.strip().lower() for h in rows[0]]
        if "msisdn" in header:
            i = header.index("msisdn")
            return _column([r[i] for r in rows[1:] if len(r) > i and r[i].strip()], path, 2)
    kept = [(n, raw.split("#")[0]) for n, raw in enumerate(lines, start=1)]
    out = []
    for n, raw in kept:
        if raw.strip():
            out.extend(_column([raw], path, n))
    return out
