"""The daily double-stop (双停) extraction: prepaid subscribers barred both ways for
``[retention] double_stop_days`` days or more become work orders for their branch.

Who is extracted on ``day`` (computed in the warehouse with Ibis, never a loop over
subscribers): ``payment = 'prepaid'``, ``status = 'double_stop'`` and ``suspended_since <=
day - double_stop_days``. A double-stopped subscriber without ``suspended_since`` cannot be
dated and is counted as skipped with that reason.

One order per barring episode: the order's ``episode`` is the barring start
(``suspended_since``, ISO date) and ``(kind, subscriber_id, episode)`` is unique, so the
daily run inserts with ``ON CONFLICT DO NOTHING`` and a subscriber still barred tomorrow
gets no second order, while a later barring (a new ``suspended_since``) is a new order.

Crash safety: orders go in chunks of :data:`CHUNK`, each chunk's orders and their
``created`` events in one transaction. A run cut off half-way leaves whole chunks; the
next run of any day inserts the rest and skips what is there.

The branch: the district of the subscriber's home cell when a feature build (``jingxin
audience features``, which runs the residence code of :mod:`jingxin.audience.residence`)
on or before ``day`` gives one - no second residence pass over the location feed here -,
else the billing ``region``; that district mapped through ``[retention] branches``
(district -> branch). A home district that no branch covers falls back to the region's
branch, then to ``default_branch``.

The churn propensity: when ``jingxin audience train-churn`` has saved a model
(``<var>/models/churn.joblib``), each new order's subscriber is scored with it on the
same feature build, as ``jingxin audience score`` does; without a model, or without a
build on or before ``day``, the propensity stays null and the report says why. This
module never trains. Every candidate is scored on every run (cheap next to the warehouse
scan); an order already there keeps the score it was created with. With the score go its
top reasons (:mod:`jingxin.audience.reasons`: feature, value, contribution), written into
the order's ``created`` event note after ``REASONS_LABEL``, where
:func:`jingxin.retention.workorders.order_reasons` reads them back (work orders have no
column of their own for them).

The warehouse is a snapshot of today: extracting a past day (catching up) applies that
day's threshold to today's statuses and barring dates.

Closing on evidence: an open order whose subscriber the warehouse now shows ``active``
is closed as ``reactivated``, and one now ``churned`` as ``lost``, both by ``system``
(the reactivation rate needs them). Anything else - still double-stopped, one-way
``suspended``, or double-stopped again from a later date (a new order covers that) -
stays open for the branch: the warehouse is a snapshot of today, and only those two
statuses say how the episode ended.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from jingxin.data.store.models.journeys import WorkOrder, WorkOrderEvent
from jingxin.retention.workorders import OPEN_STATES, REASONS_LABEL, close_by_system

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd
    import pyarrow as pa
    from sqlalchemy import Connection

    from jingxin.config import Settings
    from jingxin.data.store.engine import Store
    from jingxin.data.warehouse.connection import Warehouse

KIND = "double_stop"
CHUNK = 1000  # orders per transaction
KEY = ("kind", "subscriber_id", "episode")
# The subscriber columns the extraction reads, and those the churn model was trained on.
COLUMNS = ("subscriber_id", "msisdn", "payment", "status", "region", "suspended_since")


@dataclass(frozen=True)
class ExtractReport:
    """What one day's extraction found and did."""

    day: date
    threshold_days: int
    candidates: int  # double-stopped for threshold_days or more
    created: int  # new orders (the rest had their episode's order already)
    existing: int
    by_branch: dict[str, int]  # new orders per branch
    branched_by: dict[str, int]  # new orders per basis: home, region, default
    feature_build: date | None  # the build that gave home districts and scores
    scored: int  # new orders with a churn propensity
    propensity_note: str | None  # why some or all new orders have none
    reactivated: int  # open orders closed by the system: active again
    lost: int  # open orders closed by the system: churned
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> subscribers

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        out = asdict(self)
        out["day"] = self.day.isoformat()
        out["feature_build"] = self.feature_build and self.feature_build.isoformat()
        return out


def extract(settings: Settings, store: Store, warehouse: Warehouse, *, day: date,
            now: datetime | None = None) -> ExtractReport:
    """Extract ``day``'s double-stop work orders and close the open ones the warehouse
    settles (see the module docstring)."""
    moment = now or datetime.now(UTC)
    days = settings.retention.double_stop_days
    build = feature_build(warehouse, day)
    rows = candidate_rows(warehouse, day=day, days=days, build=build,
                          branches=settings.retention.branches,
                          default_branch=settings.retention.default_branch).to_pandas()
    scores, reasons, note = churn_scores(rows, models_dir=settings.var_dir() / "models",
                                         build=build, day=day,
                                         explain=~has_order(store, rows))
    rows["propensity"] = scores
    rows["reasons"] = reasons
    created = _insert(store, rows, day=day, days=days, now=moment)
    reactivated, lost = settle(store, warehouse, day=day, now=moment)
    new = rows[rows["subscriber_id"].isin(created)]
    return ExtractReport(
        day=day, threshold_days=days, candidates=len(rows), created=len(created),
        existing=len(rows) - len(created),
        by_branch=dict(sorted(Counter(new["branch"]).items())),
        branched_by=dict(sorted(Counter(new["branched_by"]).items())),
        feature_build=build, scored=int(new["propensity"].notna().sum()),
        propensity_note=note, reactivated=reactivated, lost=lost,
        skipped=undated(warehouse),
    )


# ----------------------------------------------------------------------------- warehouse


def barred(warehouse: Warehouse, *, day: date, days: int) -> ir.Table:
    """Prepaid subscribers double-stopped since ``day - days`` or earlier (every column
    of ``subscribers``; :data:`COLUMNS` and the churn model's profile checked)."""
    from jingxin.audience.propensity import PROFILE
    from jingxin.audience.source import read

    s = read(warehouse, "subscribers", columns=dict.fromkeys((*COLUMNS, *PROFILE)))
    cutoff = day - timedelta(days=days)
    return s.filter((s.payment == "prepaid") & (s.status == "double_stop")
                    & s.suspended_since.notnull() & (s.suspended_since <= cutoff))


def undated(warehouse: Warehouse) -> dict[str, int]:
    """Double-stopped prepaid subscribers who cannot be dated (no ``suspended_since``)."""
    from jingxin.audience.source import read

    s = read(warehouse, "subscribers", columns=COLUMNS)
    n = int(s.filter((s.payment == "prepaid") & (s.status == "double_stop")
                     & s.suspended_since.isnull()).count().execute())
    return {"double_stop without suspended_since": n} if n else {}


def feature_build(warehouse: Warehouse, day: date) -> date | None:
    """The latest feature build on or before ``day`` (a build as of B uses data before B
    only, so any B <= day is what was known on ``day``); None without one."""
    from jingxin.audience.store import dates

    built = [d for d in dates(warehouse, "features") if d <= day]
    return built[-1] if built else None


def candidate_rows(warehouse: Warehouse, *, day: date, days: int, build: date | None,
                   branches: dict[str, str], default_branch: str) -> pa.Table:
    """One row per candidate: the order's columns (``branch``, ``branched_by``,
    ``barred_since``), the profile columns the churn model reads and, with a ``build``,
    that build's feature row (``as_of`` null when the subscriber is not in it)."""
    import ibis

    from jingxin.audience.propensity import PROFILE

    t = barred(warehouse, day=day, days=days)
    t = t.select("msisdn", "region", *PROFILE, barred_since=t.suspended_since)
    if build is not None:
        f = warehouse.table("features")
        clash = [c for c in PROFILE if c != "subscriber_id" and c in f.columns]
        f = f.filter(f.as_of == build)
        t = t.left_join(f.drop(*clash) if clash else f, "subscriber_id")
        t = t.drop("subscriber_id_right")
    home = t.home_district if "home_district" in t.columns else ibis.null().cast("string")
    by_home, by_region = _branch_of(home, branches), _branch_of(t.region, branches)
    t = t.mutate(
        branch=ibis.coalesce(by_home, by_region, ibis.literal(default_branch)),
        branched_by=ibis.cases((by_home.notnull(), "home"), (by_region.notnull(), "region"),
                               else_="default"),
    )
    return t.order_by("subscriber_id").to_pyarrow()


def _branch_of(district: ir.StringValue, branches: dict[str, str]) -> ir.StringValue:
    """The branch covering ``district``, null when none does."""
    import ibis

    none = ibis.null().cast("string")
    return district.substitute(branches, else_=none) if branches else none


# ----------------------------------------------------------------------------- propensity


def churn_scores(rows: pd.DataFrame, *, models_dir: Path, build: date | None, day: date,
                 explain: pd.Series | None = None) -> tuple[pd.Series, pd.Series, str | None]:
    """The churn propensity of each row and its top reasons as text (both null where
    none can be given) and, when some or all are null, why. Reasons cost a prediction per
    feature: only the rows where ``explain`` is true get them (default: all)."""
    import pandas as pd

    from jingxin.audience import tabular
    from jingxin.audience.propensity import scoring_frame
    from jingxin.audience.reasons import format_reasons, top_reasons

    none = pd.Series([None] * len(rows), index=rows.index, dtype="object")
    path = models_dir / "churn.joblib"
    if not path.exists():
        return none, none, (f"no churn model at {path}: orders carry no propensity (train "
                            "one with `jingxin audience train-churn`)")
    if build is None:
        return none, none, (f"no feature build on or before {day}: orders carry no "
                            f"propensity (build one with `jingxin audience features "
                            f"--as-of {day}`)")
    if rows.empty:
        return none, none, None
    trained = tabular.load(path)
    featured = rows[rows["as_of"].notna()].copy()
    featured["as_of"] = pd.to_datetime(featured["as_of"]).dt.date
    scores, reasons = none.copy(), none.copy()
    if not featured.empty:
        frame = scoring_frame(featured)
        scores[featured.index] = trained.score(frame).round(5)
        if explain is not None:
            frame = frame[explain[frame.index].to_numpy(bool)]
        if not frame.empty:
            reasons[frame.index] = [format_reasons(r) or None
                                    for r in top_reasons(trained, frame)]
    missing = int(scores.isna().sum())
    note = (f"{missing} of {len(rows)} candidates are not in the feature build of {build}: "
            "no propensity for them") if missing else None
    return scores, reasons, note


# ----------------------------------------------------------------------------- store


def has_order(store: Store, rows: pd.DataFrame) -> pd.Series:
    """Whether each candidate's barring episode has its order already."""
    import pandas as pd

    episodes = [_date(v).isoformat() for v in rows["barred_since"]]
    ids = [int(v) for v in rows["subscriber_id"]]
    known: set[tuple[int, str]] = set()
    for start in range(0, len(ids), CHUNK):
        with store.transaction() as session:
            known.update(session.execute(select(WorkOrder.subscriber_id, WorkOrder.episode)
                                         .where(WorkOrder.kind == KIND, WorkOrder.subscriber_id
                                                .in_(ids[start : start + CHUNK]))).all())
    return pd.Series([(i, e) in known for i, e in zip(ids, episodes, strict=True)],
                     index=rows.index, dtype=bool)


def _insert(store: Store, rows: pd.DataFrame, *, day: date, days: int,
            now: datetime) -> set[int]:
    """Insert the orders that are new, chunk by chunk, each with its ``created`` event;
    return the subscriber ids that got one."""
    orders = [_order(row, day=day, now=now) for row in rows.itertuples(index=False)]
    reasons = dict(zip(rows["subscriber_id"].astype(int), rows["reasons"], strict=True))
    created: set[int] = set()
    for start in range(0, len(orders), CHUNK):
        with store.transaction() as session:
            connection = session.connection()
            new = _insert_new(connection, orders[start : start + CHUNK])
            if new:
                connection.execute(WorkOrderEvent.__table__.insert(), [
                    {"order_id": order_id, "state": "created", "by": "system", "at": now,
                     "note": created_note(episode, days=days, day=day,
                                          reasons=reasons.get(subscriber))}
                    for order_id, subscriber, episode in new])  # fmt: skip
            created.update(subscriber for _, subscriber, _ in new)
    return created


def created_note(episode: str, *, days: int, day: date, reasons: str | None) -> str:
    """The ``created`` event's note: why the order exists and, with a churn score, the
    score's top reasons on a line of their own."""
    note = f"double-stopped since {episode}, {days}+ days on {day}"
    return f"{note}\n{REASONS_LABEL}{reasons}" if reasons else note


def _order(row: Any, *, day: date, now: datetime) -> dict[str, Any]:
    import pandas as pd

    barred_since = _date(row.barred_since)
    propensity = row.propensity
    return {"kind": KIND, "subscriber_id": int(row.subscriber_id), "msisdn": row.msisdn,
            "episode": barred_since.isoformat(), "branch": row.branch, "region": row.region,
            "state": "created", "propensity": None if pd.isna(propensity) else float(propensity),
            "barred_since": barred_since, "extracted_on": day, "updated_at": now}


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return value.to_pydatetime().date()  # a pandas Timestamp


def _insert_new(connection: Connection, orders: list[dict[str, Any]]) -> list[tuple]:
    """``INSERT ... ON CONFLICT (kind, subscriber_id, episode) DO NOTHING RETURNING``:
    (id, subscriber_id, episode) of each order that was new (SQLite and PostgreSQL)."""
    if not orders:
        return []
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    table = WorkOrder.__table__
    statement = (dialect.insert(table).on_conflict_do_nothing(index_elements=list(KEY))
                 .returning(table.c.id, table.c.subscriber_id, table.c.episode))  # fmt: skip
    return [tuple(row) for row in connection.execute(statement, orders)]


def settle(store: Store, warehouse: Warehouse, *, day: date,
           now: datetime) -> tuple[int, int]:
    """Close the open orders the warehouse settles: (reactivated, lost)."""
    import ibis
    import pyarrow as pa

    from jingxin.audience.source import read

    with store.transaction() as session:
        open_ids = session.execute(select(WorkOrder.id, WorkOrder.subscriber_id).where(
            WorkOrder.kind == KIND, WorkOrder.state.in_(OPEN_STATES))).all()
    if not open_ids:
        return 0, 0
    orders = ibis.memtable(pa.table({
        "order_id": pa.array([i for i, _ in open_ids], pa.int64()),
        "subscriber_id": pa.array([s for _, s in open_ids], pa.int64())}))  # fmt: skip
    s = read(warehouse, "subscribers", columns=COLUMNS)
    s = s.filter(s.status.isin(("active", "churned"))).select("subscriber_id", "status")
    settled = orders.join(s, "subscriber_id").select("order_id", "status").to_pyarrow()
    ids = settled.column("order_id").to_pylist()
    status = settled.column("status").to_pylist()
    back = [i for i, st in zip(ids, status, strict=True) if st == "active"]
    gone = [i for i, st in zip(ids, status, strict=True) if st == "churned"]
    return (close_by_system(store, back, to="reactivated", now=now,
                            note=f"the warehouse shows the subscriber active on {day}"),
            close_by_system(store, gone, to="lost", now=now,
                            note=f"the warehouse shows the subscriber churned on {day}"))
