"""``jingxin campaign promote``: send the winning arm of a campaign's test to the rest.

A campaign whose spec has ``experiment.test_share`` sent only that share of its treated
numbers at run time (:mod:`jingxin.dispatch.campaign`, status ``testing``). Promotion:

1. collects the event log (:func:`jingxin.analytics.events.collect`) and ranks the arms
   by the rate of the winner metric (clicked, replied or ordered) among the subscribers
   each arm was sent to (:func:`jingxin.analytics.metrics.arm_table`);
2. unless forced, refuses when the best arm is not significantly better than the
   runner-up at the confidence asked (the pooled two-proportion test of
   :func:`jingxin.analytics.stats.compare`), and says why;
3. records the chosen arm in the campaign's row, then delivers the winner's template to
   every treated number not in the test share, each keeping its assigned arm (so the
   arms stay comparable on who was assigned), and marks the promotion done.

Crash safety: the chosen arm is committed before anything is delivered, so a promotion
interrupted half way resumes with the same arm; keys ``campaign:<id>:<msisdn>`` make the
numbers already queued duplicates. A completed promotion is never repeated: a second
``promote`` says so and queues nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select

from jingxin.analytics.assign import HOLDOUT, unit
from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import Campaign, ExperimentAssignment, utc_now
from jingxin.dispatch.campaign import (
    PROMOTION,
    CampaignSummary,
    arm_counts,
    deliver_arms,
    finish_if_final,
    templates_of,
    tenant_signature,
)
from jingxin.dispatch.campaign_arms import Arm, arms_of, experiment_name, test_salt
from jingxin.dispatch.campaign_spec import (
    WINNER_METRICS,
    CampaignSpec,
    fingerprint,
    read_audience,
    spec_errors,
)
from jingxin.dispatch.deliver import DeliveryContext
from jingxin.errors import InputError, JingxinError, SpecError

if TYPE_CHECKING:
    from jingxin.config import AnalyticsSettings

__all__ = ["PromotionDuties", "Promotion", "Standing", "due_for_promotion", "promote",
           "promote_due"]  # fmt: skip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Standing:
    """One treated arm's result on the metric: ``n`` subscribers sent, ``successes``."""

    arm: str
    n: int
    successes: int

    @property
    def rate(self) -> float | None:
        return self.successes / self.n if self.n else None


@dataclass
class Promotion:
    """What ``promote`` did: the arm chosen, the standings it was chosen on, the test of
    best against runner-up, and the summary of what it delivered (None: nothing to do)."""

    campaign_id: int
    metric: str
    winner: str
    standings: list[Standing] = field(default_factory=list)
    p_value: float | None = None
    confidence: float = 0.95
    forced: bool = False
    summary: CampaignSummary | None = None
    note: str = ""

    def lines(self) -> list[str]:
        out = [f"campaign {self.campaign_id}: {self.note}"] if self.note else []
        for s in self.standings:
            rate = "-" if s.rate is None else f"{s.rate:.2%}"
            out.append(f"  arm {s.arm:<12} {self.metric} {s.successes}/{s.n} = {rate}")
        if self.p_value is not None:
            out.append(f"  best vs runner-up: p = {self.p_value:.4g} "
                       f"(significant at {self.confidence:.0%}: "
                       f"{'yes' if self.p_value < 1 - self.confidence else 'no'})")  # fmt: skip
        return out


def promote(store: Store, *, campaign_id: int, context: DeliveryContext,
            analytics: AnalyticsSettings | None = None, metric: str | None = None,
            min_confidence: float = 0.95, force: bool = False,
            now: datetime | None = None) -> Promotion:  # fmt: skip
    """Promote the campaign's best arm (module docstring). Refusals are SpecErrors that
    say why: no test share, cancelled, the audience file changed, no results yet, or a
    best arm not significantly better than the runner-up (without ``force``)."""
    from jingxin.config import AnalyticsSettings

    analytics = analytics or AnalyticsSettings()
    now = now or utc_now()
    if not 0 < min_confidence < 1:
        raise InputError(f"--min-confidence {min_confidence!r}: a confidence above 0 and "
                         "below 1, e.g. 0.95")  # fmt: skip
    spec, promotion = _campaign(store, campaign_id)
    metric = metric or (promotion or {}).get("metric") or spec.experiment.winner_metric
    if metric not in WINNER_METRICS:
        raise InputError(f"--metric {metric!r}: use {', '.join(WINNER_METRICS)}")
    if promotion and promotion.get("done"):
        return Promotion(campaign_id, promotion.get("metric", metric), promotion["arm"],
                         note=f"already promoted: arm {promotion['arm']} went to the rest "
                              f"at {promotion.get('done_at') or promotion.get('at')}; "
                              "nothing more to send")  # fmt: skip
    signature = tenant_signature(store, spec=spec, context=context)
    arms = arms_of(spec, templates_of(store, spec=spec, context=context, signature=signature))
    if promotion:  # an interrupted promotion resumes with the arm it chose
        result = Promotion(campaign_id, promotion.get("metric", metric), promotion["arm"],
                           forced=bool(promotion.get("forced")),
                           note=f"resuming the promotion of arm {promotion['arm']}")  # fmt: skip
    else:
        result = _choose(store, campaign_id=campaign_id, arms=arms, metric=metric,
                         min_confidence=min_confidence, force=force, now=now,
                         analytics=analytics)  # fmt: skip
        claimed = _claim(store, campaign_id, {"arm": result.winner, "metric": metric,
                                              "p_value": result.p_value, "forced": result.forced,
                                              "at": now.isoformat(), "done": False})  # fmt: skip
        if claimed["arm"] != result.winner or claimed["at"] != now.isoformat():
            # Another promotion (the scheduler, a colleague) recorded its arm first: the
            # rest get that one, never a mix of two winners.
            result = Promotion(campaign_id, claimed.get("metric", metric), claimed["arm"],
                               forced=bool(claimed.get("forced")),
                               note=f"another promotion chose arm {claimed['arm']} first; "
                                    "sending that one")  # fmt: skip
    winner = next(a for a in arms if a.name == result.winner)
    result.summary = _deliver_rest(store, spec=spec, campaign_id=campaign_id, arms=arms,
                                   winner=winner, context=context, now=now,
                                   signature=signature)  # fmt: skip
    _mark(store, campaign_id, {"done": True, "done_at": now.isoformat()}, finish=True, now=now)
    return result


def _campaign(store: Store, campaign_id: int) -> tuple[CampaignSpec, dict | None]:
    """The campaign, the spec it ran and its promotion so far; refused when there is
    nothing to promote or the audience file is no longer the one it ran on."""
    from pydantic import ValidationError

    with store_errors(f"reading campaign {campaign_id}"), store.sessions() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise SpecError(f"no campaign with id {campaign_id}")
        session.expunge(campaign)
    stored = dict(campaign.spec or {})
    promotion = stored.pop(PROMOTION, None)
    try:
        spec = CampaignSpec.model_validate(stored)
    except ValidationError as exc:
        raise SpecError(f"campaign {campaign_id}: its stored spec no longer validates:\n"
                        f"{spec_errors(exc)}") from exc  # fmt: skip
    if spec.experiment.test_share is None:
        raise SpecError(f"campaign {campaign_id} has no experiment.test_share: it was sent to "
                        "every treated number when it ran; there is nothing to promote")  # fmt: skip
    if campaign.status == "cancelled":
        raise SpecError(f"campaign {campaign_id} is cancelled; it cannot be promoted")
    if fingerprint(spec) != campaign.fingerprint:
        raise SpecError(f"campaign {campaign_id}: the audience file {spec.audience.path} changed "
                        "since the campaign ran; promote sends to the numbers it ran on, so "
                        "put that file back (or run a new campaign)")  # fmt: skip
    return spec, promotion


def _choose(store: Store, *, campaign_id: int, arms: list[Arm], metric: str,
            min_confidence: float, force: bool, now: datetime,
            analytics: AnalyticsSettings) -> Promotion:  # fmt: skip
    """The best arm by the metric's rate among the subscribers each arm was sent to."""
    from jingxin.analytics.events import collect
    from jingxin.analytics.metrics import subscriber_outcomes
    from jingxin.analytics.stats import Arm as Counts
    from jingxin.analytics.stats import compare

    result = Promotion(campaign_id, metric, arms[0].name, confidence=min_confidence,
                       forced=force)  # fmt: skip
    if len(arms) == 1:
        result.note = f"one arm ({arms[0].name}): it goes to the rest"
        return result
    collect(store, now=now, attribution_days=analytics.attribution_days)
    # Among the subscribers each arm was SENT to, both the count and its successes: orders
    # count by assignment, and the numbers still waiting outside the test share would
    # otherwise add their orders to a rate over those sent.
    people = subscriber_outcomes(store, experiment_name(campaign_id),
                                 attribution_days=analytics.attribution_days)  # fmt: skip
    sent = people.filter(pc.and_(people["sent"], pc.invert(people["holdout"])))
    n = dict(Counter(sent["arm"].to_pylist()))
    hits = dict(Counter(sent.filter(sent[metric])["arm"].to_pylist()))
    standings = [Standing(a.name, int(n.get(a.name, 0)), int(hits.get(a.name, 0)))
                 for a in arms]  # fmt: skip
    # Best rate first; a tie goes to the arm with more evidence, then to the spec's order.
    ranked = sorted((s for s in standings if s.n), key=lambda s: (-s.rate, -s.n))
    result.standings = standings
    if not ranked:
        raise SpecError(f"campaign {campaign_id}: no arm has been sent yet, so there is no "
                        "result to promote on; run the worker (and let replies and clicks "
                        "come in) first")  # fmt: skip
    best = ranked[0]
    result.winner = best.arm
    silent = [s.arm for s in standings if not s.n]
    if silent or len(ranked) < 2:
        why = f"arm {', '.join(silent)} has been sent to nobody yet"
    else:
        runner_up = ranked[1]
        test = compare(Counts(best.arm, best.n, best.successes),
                       Counts(runner_up.arm, runner_up.n, runner_up.successes),
                       alpha=1 - min_confidence)  # fmt: skip
        result.p_value = test.p_value
        if test.diff > 0 and test.p_value < 1 - min_confidence:
            result.note = (f"arm {best.arm} is significantly better than {runner_up.arm} on "
                           f"{metric} at {min_confidence:.0%}")  # fmt: skip
            return result
        why = (f"arm {best.arm} ({_rate(best)}) is not significantly better than "
               f"{runner_up.arm} ({_rate(runner_up)}) on {metric}: p = {test.p_value:.3g}, "
               f"needs < {1 - min_confidence:.3g} for {min_confidence:.0%} confidence")  # fmt: skip
    if not force:
        raise SpecError(f"campaign {campaign_id}: {why}; wait for more results, or promote "
                        f"anyway with --force")  # fmt: skip
    result.note = f"forced: {why}; promoting arm {best.arm}"
    return result


def _rate(standing: Standing) -> str:
    return f"{standing.successes}/{standing.n} = {standing.rate:.2%}"


def _deliver_rest(store: Store, *, spec: CampaignSpec, campaign_id: int, arms: list[Arm],
                  winner: Arm, context: DeliveryContext, now: datetime,
                  signature: str | None) -> CampaignSummary:  # fmt: skip
    """The treated numbers outside the test share, with their assigned arm and the
    winner's template, through the delivery entry."""
    from jingxin.data.msisdn import normalise_msisdns

    audience = read_audience(spec.audience)
    numbers = normalise_msisdns(audience.column(spec.audience.msisdn_column)).e164
    numbers = numbers.combine_chunks() if isinstance(numbers, pa.ChunkedArray) else numbers
    assigned_numbers, assigned_arms = _treated(store, campaign_id)
    at = pc.index_in(numbers, value_set=assigned_numbers)
    arm_of = assigned_arms.take(at)
    outside = pa.array(unit(numbers, test_salt(campaign_id)) >= spec.experiment.test_share)
    rest = pc.fill_null(pc.and_(pc.is_valid(arm_of), outside), False)
    table = audience.filter(rest)
    arm_column = arm_of.filter(rest)
    if "arm" in table.column_names:
        table = table.drop_columns(["arm"])
    if "template" in table.column_names:
        table = table.drop_columns(["template"])
    table = table.append_column("arm", arm_column)
    # Every row goes with the winner's template, whatever its arm.
    sent = [Arm(a.name, a.weight, winner.template, a.send_mode) for a in arms]
    summary = CampaignSummary(campaign_id=campaign_id)
    deliver_arms(store, spec=spec, table=table, arms=sent, campaign_id=campaign_id,
                 context=context, now=now, summary=summary, signature=signature)  # fmt: skip
    summary.arms = arm_counts(store, campaign_id=campaign_id)
    return summary


def _treated(store: Store, campaign_id: int) -> tuple[pa.Array, pa.Array]:
    """The campaign's treated assignments (number, arm) as recorded when it ran."""
    a = ExperimentAssignment
    with store_errors(f"reading the assignments of campaign {campaign_id}"), \
            store.engine.connect() as connection:  # fmt: skip
        rows = connection.execute(
            select(a.msisdn, a.arm).where(a.experiment == experiment_name(campaign_id),
                                          a.arm != HOLDOUT)).cursor.fetchall()  # fmt: skip
    numbers, arms = zip(*rows, strict=True) if rows else ((), ())
    return pa.array(numbers, pa.string()), pa.array(arms, pa.string())


def _claim(store: Store, campaign_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """Record ``values`` as the campaign's promotion unless one is recorded already (the
    row locked on PostgreSQL; SQLite writes one transaction at a time); returns the
    promotion that stands."""
    with store_errors(f"recording the promotion of campaign {campaign_id}"), \
            store.transaction() as session:  # fmt: skip
        campaign = session.scalar(select(Campaign).where(Campaign.id == campaign_id)
                                  .with_for_update())  # fmt: skip
        document = dict(campaign.spec or {})
        if document.get(PROMOTION):
            return dict(document[PROMOTION])
        document[PROMOTION] = dict(values)
        campaign.spec = document  # a new dict: the JSON column sees the change
        return dict(values)


def _mark(store: Store, campaign_id: int, values: dict[str, Any], *, finish: bool = False,
          now: datetime | None = None) -> None:  # fmt: skip
    """Merge ``values`` into the campaign's promotion record; when ``finish``, a testing
    campaign becomes running (and finished, if every message is already final)."""
    with store_errors(f"recording the promotion of campaign {campaign_id}"), \
            store.transaction() as session:  # fmt: skip
        campaign = session.get(Campaign, campaign_id)
        document = dict(campaign.spec or {})
        document[PROMOTION] = {**(document.get(PROMOTION) or {}), **values}
        campaign.spec = document  # a new dict: the JSON column sees the change
        if finish and campaign.status == "testing":
            campaign.status = "running"
            session.flush()
            finish_if_final(session, campaign_id=campaign_id, now=now)


# ----------------------------------------------------------------------------- automatic


def due_for_promotion(store: Store, *, now: datetime) -> list[int]:
    """Campaigns still testing whose spec sets ``experiment.promote_after_hours`` and whose
    test phase (that long after they started) is over."""
    with store_errors("reading the campaigns in their test phase"), store.sessions() as session:
        rows = session.execute(select(Campaign.id, Campaign.spec, Campaign.started_at,
                                      Campaign.created_at)
                               .where(Campaign.status == "testing")).all()  # fmt: skip
    due = []
    for campaign_id, spec, started_at, created_at in rows:
        stored = spec or {}
        hours = (stored.get("experiment") or {}).get("promote_after_hours")
        if hours is None or (stored.get(PROMOTION) or {}).get("done"):
            continue
        began = started_at or created_at
        if began is not None and now >= began + timedelta(hours=float(hours)):
            due.append(campaign_id)
    return due


def promote_due(store: Store, *, context: DeliveryContext,
                analytics: AnalyticsSettings | None = None, min_confidence: float = 0.95,
                now: datetime | None = None) -> list[Promotion]:  # fmt: skip
    """Promote every campaign whose test phase is over (:func:`due_for_promotion`): the best
    arm, significantly better or not - the phase the operator set is over and the rest of
    the audience must not wait for ever (a result that is not significant says so in the
    note, as ``--force`` does). A campaign with no result yet (nothing sent) is left for the
    next round and logged; one campaign's failure does not stop the others."""
    now = now or utc_now()
    done = []
    for campaign_id in due_for_promotion(store, now=now):
        try:
            result = promote(store, campaign_id=campaign_id, context=context,
                             analytics=analytics, min_confidence=min_confidence, force=True,
                             now=now)  # fmt: skip
        except JingxinError as exc:  # one campaign's trouble leaves the others to go
            log.warning("campaign %d: its test phase is over but it cannot be promoted yet: %s",
                        campaign_id, exc)  # fmt: skip
            continue
        log.info("campaign %d promoted at the end of its test phase: %s", campaign_id,
                 result.note or f"arm {result.winner}")  # fmt: skip
        done.append(result)
    return done


@dataclass
class PromotionDuties:
    """The scheduler's part that ends test phases (``jingxin scheduler``): each tick,
    :func:`promote_due`, in a thread (it writes the outbox through the delivery entry)."""

    settings: Any
    store: Store
    keep: Callable[[], bool] | None = None
    clock: Callable[[], datetime] = utc_now

    async def __call__(self, n: int) -> list[Promotion]:
        return await asyncio.to_thread(self.run, n)

    def run(self, n: int = 0) -> list[Promotion]:
        if self.keep is not None and not self.keep():
            return []
        try:
            return promote_due(self.store, context=DeliveryContext.from_settings(self.settings),
                               analytics=self.settings.analytics, now=self.clock())  # fmt: skip
        except Exception:  # noqa: BLE001 - a scheduler alerts in the log, never stops
            log.exception("promoting the campaigns whose test phase is over failed")
            return []
