"""The contract between the daily scan and its triggers.

A trigger answers one question for one day: who should get which lifecycle message. It
computes that in the warehouse (Ibis expressions: DuckDB by default, PySpark at scale) and
hands back an Arrow table of candidates, one row per message:

* ``msisdn`` (E.164 string) and ``subscriber_id`` (int64, null for a number the warehouse
  does not know, e.g. a hall order);
* ``template`` - the catalogue code of an approved template (``care.birthday``), and one
  column per template variable, named like the variable;
* optionally ``category`` (default: the template's), ``wanted_at`` (timestamp, UTC; default
  the day at ``[journeys] send_at`` local time) and ``idempotency_key`` (default
  ``journey:<trigger>:<day>:<msisdn>``; set it when one subscriber may get two messages
  of one trigger on one day, e.g. two usage alerts).

Subscribers the trigger had to leave out (no birth date, an impossible one, no plan) are
counted in ``skipped`` by reason - never an error that stops the scan. What a trigger can
work around it says in ``warning`` (a year without an official holiday schedule: the
greeting goes out without the days off); a trigger that cannot run at all (its table
missing, a template not approved) raises :class:`~jingxin.errors.JingxinError` with a
message that names what is missing, and the scan records that trigger as failed with the
message and goes on with the others.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

if TYPE_CHECKING:
    from jingxin.config import Settings
    from jingxin.data.store.engine import Store
    from jingxin.data.warehouse.connection import Warehouse


@dataclass(frozen=True)
class TriggerContext:
    """What a trigger may read: the warehouse, the store (hall orders, MO), the settings."""

    warehouse: Warehouse
    day: date
    settings: Settings
    store: Store | None = None


@dataclass
class TriggerOutput:
    """A trigger's candidates for the day, and who it left out, by reason."""

    candidates: pa.Table
    skipped: Counter[str] = field(default_factory=Counter)
    warning: str | None = None  # e.g. "no official schedule for 2027: lunar dates only"


class Trigger(Protocol):
    """One lifecycle trigger of the daily scan."""

    name: str  # e.g. "birthday"; also the key's and the run's name

    def candidates(self, ctx: TriggerContext) -> TriggerOutput: ...
