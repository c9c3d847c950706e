"""Reading warehouse tables for the audience layer, with their columns checked.

Every query of this package starts here: a table that lacks a column the contract in
:mod:`jingxin.data.warehouse.schema` promises fails *before* any query runs, with a
:class:`~jingxin.errors.WarehouseError` naming the table and the column. Optional tables
(location events, offers, complaints, contacts) may be absent; they read as empty.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from jingxin.data.warehouse.schema import table_spec
from jingxin.errors import WarehouseError

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from jingxin.data.warehouse.connection import Warehouse

OPTIONAL = {"location_events", "offers", "complaints", "channel_contacts", "holdings",
            "products", "churn_labels"}


log = logging.getLogger(__name__)


def exists(warehouse: Warehouse, name: str) -> bool:
    """Whether the warehouse has table ``name``."""
    return warehouse.has_table(name)


def require_columns(table: ir.Table, name: str, columns: Iterable[str]) -> None:
    have = set(table.columns)
    for col in columns:
        if col not in have:
            raise WarehouseError(
                f"warehouse table {name!r} has no column {col!r} "
                f"(columns: {', '.join(table.columns)})")


def read(warehouse: Warehouse, name: str, *, columns: Iterable[str] | None = None,
         optional: bool | None = None) -> ir.Table:
    """The table ``name`` with ``columns`` (default: all the contract's) checked."""
    import ibis

    spec = table_spec(name)
    optional = name in OPTIONAL if optional is None else optional
    if optional and not exists(warehouse, name):
        log.warning("warehouse table %r is missing; reading it as empty", name)
        return ibis.memtable(spec.schema.empty_table())
    table = warehouse.table(name)
    require_columns(table, name, spec.names if columns is None else columns)
    return table
