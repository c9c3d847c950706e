"""Key checks of an import: a key may appear once in a file and, when appending, must not
already be in the table. The first good copy of a duplicated key is kept; later copies are
rejected with the position of the first."""

from __future__ import annotations

from typing import Any

from jingxin.data.warehouse.rejects import PROBLEMS
from jingxin.data.warehouse.schema import TableSpec
from jingxin.data.warehouse.tables import quote, scalar

DUP_KEYS = "__import_dupkeys"


def check_keys(con: Any, spec: TableSpec, *, typed: str, bad: str, against_table: bool) -> None:
    """Add key problems for the rows of ``typed`` not already listed in ``bad``."""
    if not spec.key:
        return
    keys = ", ".join(quote(k) for k in spec.key)
    field = "+".join(spec.key)
    good = f"__row NOT IN (SELECT __row FROM {bad})"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {DUP_KEYS} AS SELECT {keys}, min(__row) AS __first "
        f"FROM {typed} WHERE {good} GROUP BY {keys} HAVING count(*) > 1"
    )
    try:
        if scalar(con, f"SELECT count(*) FROM {DUP_KEYS}"):
            con.execute(
                f"INSERT INTO {PROBLEMS} SELECT t.__row, '{field}', 'duplicate key in file', "
                f"d.__first FROM {typed} t JOIN {DUP_KEYS} d USING ({keys}) "
                f"WHERE t.__row <> d.__first AND t.{good}"
            )
    finally:
        con.execute(f"DROP TABLE IF EXISTS {DUP_KEYS}")
    if against_table:
        match = " AND ".join(f"w.{quote(k)} = t.{quote(k)}" for k in spec.key)
        con.execute(
            f"INSERT INTO {PROBLEMS} SELECT t.__row, '{field}', 'key already in the table', "
            f"NULL FROM {typed} t WHERE t.{good} AND EXISTS "
            f"(SELECT 1 FROM {quote(spec.name)} w WHERE {match})"
        )
