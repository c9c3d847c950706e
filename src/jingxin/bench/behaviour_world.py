"""The world of ``jingxin bench behaviour``: a small synthetic operator in a folder of its
own, and campaigns sent to it on a simulated timeline.

:func:`build_world` does what a newcomer does with the CLI (``jingxin synth``,
``import-dir``, ``audience features``, the composite model's segment, ``db upgrade``,
``hall seed``) in Python: a SQLite store and a DuckDB warehouse under the folder, nothing
of the user's ``var/``. The operator's tenant gets marketing caps wide enough for the six
campaigns of the benchmark (one a day, seven a week): what is measured is behaviour, not
the caps.

:func:`send_campaign` runs a campaign spec (``dispatch.campaign.run_campaign``) decided at
a simulated instant, then delivers it through the SMSC simulator with a worker whose clock
is simulated too (:mod:`jingxin.bench.behaviour_clock`), so every time the store keeps -
decided, assigned, submitted, delivered, clicked, replied - lies on one timeline, and a
message planned for 19:40 is submitted at 19:40-19:49 of its day. Then the simulated
subscribers react (``smsc.subscribers.respond``, a SIMULATION) and the event log is
brought up to date (``analytics.events.collect``). Orders are booked by the BOSS at the
wall clock, a few days after the simulated sends and within the attribution window, so
each is attributed to the latest message or hold-out before it, as in production.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pyarrow as pa

if TYPE_CHECKING:
    from jingxin.config import Settings
    from jingxin.data.store.engine import Store
    from jingxin.data.warehouse.connection import Warehouse

ZONE = ZoneInfo("Asia/Shanghai")
# One data-pack offer for every campaign: a data offer to the simulated subscribers
# (流量, GB), with the tracked short link.
BODY = "流量加油包：5GB通用流量仅需10元，月底前有效，点击 {{ link }} 立即办理"
LINK = "https://shop.example.cn/data-5gb"
CAPS = {"marketing": {"day": 1, "week": 7, "month": 14}}


@dataclass
class World:
    """The folder, the settings that point into it, the store and the warehouse."""

    root: Path
    settings: Settings
    store: Store
    warehouse: Warehouse
    as_of: dt.date
    everyone: list[str]  # every subscriber's number in the feature build, E.164
    composite: list[str]  # the composite model's audience
    seconds: dict[str, float] = field(default_factory=dict)

    def close(self) -> None:
        self.warehouse.close()
        self.store.dispose()


def as_of_for(today: dt.date) -> dt.date:
    """The synthetic operator's as-of date: the first of the month before ``today``'s
    month, so the feature build predates every simulated send."""
    first = today.replace(day=1)
    return (first - dt.timedelta(days=1)).replace(day=1)


def build_world(root: Path, *, subscribers: int, seed: int, today: dt.date,
                channels: list[dict[str, Any]]) -> World:  # fmt: skip
    """Synthesise ``subscribers`` into ``root`` (emptied first) and set everything up."""
    import time

    from jingxin.audience.compile import compile_spec
    from jingxin.audience.features import build_features
    from jingxin.config import load_settings
    from jingxin.data.store import open_store
    from jingxin.data.synth import SynthParams, synthesize
    from jingxin.data.warehouse.connection import open_duckdb
    from jingxin.data.warehouse.directory import import_directory
    from jingxin.hall.seed import seed_boss

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    as_of = as_of_for(today)
    params = SynthParams(subscribers=subscribers, seed=seed, as_of=as_of,
                         location_subscribers=subscribers,
                         cells=max(500, min(20_000, subscribers // 10)))  # fmt: skip
    synthesize(params=params, out=root / "synth")
    warehouse = open_duckdb(root / "warehouse.duckdb")
    import_directory(warehouse, root / "synth", replace=True)
    build_features(warehouse, as_of=as_of)
    from jingxin.demo.steps import COMPOSITE  # the demo's segment: resident in the centre,
    # data-heavy, price-tolerant, not complaint-sensitive

    (root / "composite.yaml").write_text(COMPOSITE, encoding="utf-8")
    composite = compile_spec(warehouse, root / "composite.yaml").expr
    composite_numbers = composite.select("msisdn").to_pyarrow().column("msisdn").to_pylist()
    everyone = _everyone(warehouse, as_of)
    seconds["warehouse"] = time.perf_counter() - started
    settings = load_settings(
        home=root, store={"url": f"sqlite:///{root / 'store.db'}"},
        warehouse={"path": str(root / "warehouse.duckdb")}, channels=channels,
        dispatch={"routes": []})  # fmt: skip
    started = time.perf_counter()
    store = open_store(settings.store.url, upgrade=True)
    _tenant(store)
    seed_boss(store, warehouse)
    seconds["store"] = time.perf_counter() - started
    shutil.rmtree(root / "synth", ignore_errors=True)
    return World(root=root, settings=settings, store=store, warehouse=warehouse, as_of=as_of,
                 everyone=everyone, composite=sorted(composite_numbers), seconds=seconds)


def _everyone(warehouse: Warehouse, as_of: dt.date) -> list[str]:
    from jingxin.audience.subscriber_rows import feature_rows

    rows = feature_rows(warehouse, as_of=as_of)
    return sorted(rows.frame["msisdn"].tolist())


def _tenant(store: Store) -> None:
    """The operator's tenant, with caps that let one subscriber get one offer a day."""
    from jingxin.data.store.tenants import ensure_default_tenant

    with store.transaction() as session:
        tenant = ensure_default_tenant(session)
        tenant.settings = {**(tenant.settings or {}), "policy": {"caps": CAPS}}


# --------------------------------------------------------------------------- campaigns


@dataclass(frozen=True)
class Sent:
    """One campaign of the benchmark, sent and answered."""

    name: str
    campaign_id: int
    experiment: str
    audience: int
    summary: dict[str, Any]
    delivery: dict[str, Any]
    responses: dict[str, int]


def local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """``day`` at ``hour:minute`` in Shanghai, as an aware UTC instant."""
    return dt.datetime.combine(day, dt.time(hour, minute), ZONE).astimezone(dt.UTC)


def send_campaign(world: World, *, name: str, numbers: list[str], day: dt.date,
                  decide_at: dt.datetime, holdout: float | str,
                  send_time: dict[str, Any] | None = None, seed: int = 0,
                  step_minutes: int = 10) -> Sent:  # fmt: skip
    """Run a campaign of the data offer to ``numbers`` decided at ``decide_at``, deliver
    it on the simulated clock, let the subscribers react until 06:00 the next day (or the
    wall clock, if earlier), and collect the events."""
    import pyarrow.parquet as pq

    from jingxin.analytics.events import collect
    from jingxin.bench.behaviour_clock import deliver
    from jingxin.data.store.models import utc_now
    from jingxin.dispatch.campaign import CampaignSpec, run_campaign
    from jingxin.smsc.subscribers import respond

    path = world.root / f"{name}.parquet"
    pq.write_table(pa.table({"msisdn": pa.array(numbers, pa.string())}), path)
    spec = CampaignSpec.model_validate({
        "name": name, "category": "marketing", "tariff": 0.05, "link": LINK,
        "template": {"body": BODY, "variables": {"link": "url"}},
        "audience": {"path": str(path)}, "experiment": {"holdout": holdout},
        **({"send_time": {**send_time, "day": day.isoformat()}} if send_time else {}),
    })  # fmt: skip
    settings = world.settings
    policy = {"quiet_start": settings.policy.quiet_start, "quiet_end": settings.policy.quiet_end,
              "default_timezone": settings.policy.default_timezone}  # as `campaign run`
    summary = run_campaign(world.store, spec=spec, now=decide_at, policy_defaults=policy,
                           content=settings.content, analytics=settings.analytics)  # fmt: skip
    delivery = deliver(settings, world.store, campaign_id=summary.campaign_id,
                       step_minutes=step_minutes)  # fmt: skip
    answered_by = min(local(day + dt.timedelta(days=1), 6), utc_now())
    experiment = f"campaign:{summary.campaign_id}"
    responses = respond(world.store, world.warehouse, experiment=experiment, seed=seed,
                        now=answered_by, settings=settings)  # fmt: skip
    collect(world.store, now=utc_now(), attribution_days=settings.analytics.attribution_days)
    return Sent(name=name, campaign_id=summary.campaign_id, experiment=experiment,
                audience=len(numbers), summary=_summary(summary), delivery=delivery,
                responses=dict(sorted(Counter(responses).items())))  # fmt: skip


def _summary(summary: Any) -> dict[str, Any]:
    out = summary.as_dict()
    keep = ("accepted", "deferred", "rejected", "held_out", "arms", "duplicates")
    return {k: out[k] for k in keep if k in out}
