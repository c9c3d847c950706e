"""A campaign's experiment: who is held out, who gets which arm, who is sent now, and when.

Chosen before the delivery entry (:mod:`jingxin.analytics.assign`, experiment
``campaign:<id>``): the hold-out never reaches policy, so arms are compared on who was
*assigned*. :func:`split_audience` hashes every number of the audience once per salt and
answers, without a Python object per row:

* the rows to deliver now - treated rows (and rows whose number is invalid, so the
  delivery entry rejects them with their reason), with their ``arm`` and, for variants,
  their ``template``; with a test share only the treated numbers whose independent hash
  (salt ``campaign:<id>:test``) falls in it;
* the assignments to record (hold-out included), and the counts the summary shows.

:func:`wanted_times` gives each row its send time when the spec has a ``send_time``: the
subscriber's best hour or a random time in the window (:func:`jingxin.analytics.sendtime.plan_times`),
per arm for the ``split`` mode.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jingxin.analytics.assign import HOLDOUT, assign, unit
from jingxin.dispatch.admission import TS
from jingxin.dispatch.approval import ApprovedTemplate
from jingxin.dispatch.campaign_spec import CampaignSpec, SendTimeSpec

__all__ = ["Arm", "Split", "arms_of", "experiment_name", "split_audience", "test_salt",
           "wanted_times"]  # fmt: skip


@dataclass(frozen=True)
class Arm:
    """One treated arm: its share of the treated, its template, its send-time mode."""

    name: str
    weight: float
    template: ApprovedTemplate
    send_mode: str | None = None  # 'best' | 'random'; None: no send_time


@dataclass
class Split:
    """The audience as assigned: ``now`` is the table to deliver now; ``numbers`` and
    ``arms`` the assignments to record (valid numbers, hold-out included)."""

    now: pa.Table
    numbers: pa.Array
    arms: pa.Array
    assigned: Counter[str] = field(default_factory=Counter)  # distinct numbers per arm
    held_out: int = 0  # distinct numbers held out
    waiting: int = 0  # distinct treated numbers left for `campaign promote`
    repeated: int = 0  # rows held out or left waiting whose number came earlier
    warnings: list[str] = field(default_factory=list)


def experiment_name(campaign_id: int) -> str:
    return f"campaign:{campaign_id}"


def test_salt(campaign_id: int) -> str:
    """The salt of the test share: independent of the hold-out's and the arms'."""
    return f"{experiment_name(campaign_id)}:test"


def arms_of(spec: CampaignSpec, templates: dict[str, ApprovedTemplate]) -> list[Arm]:
    """The spec's treated arms; ``templates`` by arm name (``main`` without variants)."""
    modes = {"best": "best", "random": "random"}
    if spec.experiment.variants:
        mode = modes.get(spec.send_time.mode) if spec.send_time else None
        return [Arm(v.name, v.weight, templates[v.name], mode) for v in spec.experiment.variants]
    if spec.send_time is not None and spec.send_time.mode == "split":
        return [Arm("best-time", 1.0, templates["main"], "best"),
                Arm("random-time", 1.0, templates["main"], "random")]  # fmt: skip
    return [Arm("main", 1.0, templates["main"], spec.send_time.mode if spec.send_time else None)]


def split_audience(audience: pa.Table, *, msisdn_column: str, campaign_id: int,
                   arms: list[Arm], holdout: float, test_share: float | None) -> Split:  # fmt: skip
    """Assign every number (module docstring); rows of an invalid number go out now with
    no arm (the delivery entry rejects them as ``invalid_number``)."""
    from jingxin.data.msisdn import normalise_msisdns

    experiment = experiment_name(campaign_id)
    numbers = normalise_msisdns(audience.column(msisdn_column)).e164
    numbers = numbers.combine_chunks() if isinstance(numbers, pa.ChunkedArray) else numbers
    arm_of = assign(numbers, experiment=experiment, arms=[(a.name, a.weight) for a in arms],
                    holdout=holdout)  # fmt: skip
    valid = pc.is_valid(numbers)
    held = pc.fill_null(pc.equal(arm_of, HOLDOUT), False)
    later = pa.repeat(pa.scalar(False), len(numbers))
    if test_share is not None:
        outside = unit(numbers, test_salt(campaign_id)) >= test_share  # NaN: False
        later = pc.and_(pc.and_(valid, pc.invert(held)), pa.array(outside))
    send_now = pc.and_(pc.invert(held), pc.invert(later))
    split = Split(now=_with_arms(audience.filter(send_now), arm_of.filter(send_now), arms),
                  numbers=numbers.filter(valid), arms=arm_of.filter(valid))  # fmt: skip
    distinct_arms = split.arms
    if pc.count_distinct(split.numbers).as_py() < len(split.numbers):  # a number twice
        # A number has one arm wherever it appears: count each number once.
        pairs = pa.table({"m": split.numbers, "arm": split.arms}).group_by(["m", "arm"])
        distinct_arms = pairs.aggregate([]).column("arm")
    split.assigned.update({r["values"]: r["counts"] for r in
                           pc.value_counts(distinct_arms).to_pylist()})  # fmt: skip
    split.held_out = split.assigned.get(HOLDOUT, 0)
    split.waiting = _distinct(numbers.filter(later))
    rows_aside = (pc.sum(held).as_py() or 0) + (pc.sum(later).as_py() or 0)
    split.repeated = rows_aside - split.held_out - split.waiting
    split.warnings = _empty_arms(split.assigned, arms, holdout, sum(split.assigned.values()))
    return split


def _with_arms(table: pa.Table, arm_of: pa.Array, arms: list[Arm]) -> pa.Table:
    """``table`` with its ``arm`` column and, when arms differ in template, ``template``
    (a row without an arm - an invalid number - gets the first arm's)."""
    table = _set(table, "arm", arm_of)
    codes = {a.name: a.template.code for a in arms}
    if len(set(codes.values())) > 1:
        names = pa.array(list(codes), pa.string())
        index = pc.fill_null(pc.index_in(arm_of, value_set=names), 0)
        table = _set(table, "template", pa.array(list(codes.values()), pa.string()).take(index))
    return table


def _set(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, column)
    return table.append_column(name, column)


def _distinct(numbers: pa.Array) -> int:
    return len(pc.unique(numbers)) if len(numbers) else 0


def _empty_arms(assigned: Counter[str], arms: list[Arm], holdout: float, n: int) -> list[str]:
    """Warnings for arms that got nobody (a tiny weight or a tiny audience): the campaign
    still runs, but that arm measures nothing."""
    if not n:
        return []
    total = sum(a.weight for a in arms)
    warnings = [f"arm {a.name} got nobody of {n} numbers (weight {a.weight:g} of {total:g}): "
                "it measures nothing; give it more weight or a larger audience"
                for a in arms if not assigned.get(a.name)]  # fmt: skip
    if holdout > 0 and not assigned.get(HOLDOUT):
        warnings.append(f"the hold-out ({holdout:g}) got nobody of {n} numbers: there is "
                        "nothing to measure the campaign against")  # fmt: skip
    return warnings


# --------------------------------------------------------------------------- send times


def wanted_times(store, table: pa.Table, *, msisdn_column: str, arms: list[Arm],
                 send_time: SendTimeSpec, tz: str, now: datetime, seed: int) -> pa.Array:  # fmt: skip
    """Each row's wanted instant (UTC; null for a row without a valid number): its arm's
    mode over ``send_time``'s window on its day. Hours are learnt from the event log only
    when an arm asks for the best time."""
    from jingxin.analytics.sendtime import learn_hours, plan_times
    from jingxin.data.msisdn import normalise_msisdns

    numbers = normalise_msisdns(table.column(msisdn_column)).e164
    numbers = numbers.combine_chunks() if isinstance(numbers, pa.ChunkedArray) else numbers
    arm_column = table.column("arm").combine_chunks()
    modes = {a.name: a.send_mode for a in arms}
    hours = learn_hours(store, tz=tz) if "best" in modes.values() else None
    day = send_time.day or default_day(send_time, tz=tz, now=now)
    out = np.full(len(numbers), -1, dtype=np.int64)  # microseconds since the epoch
    for name, mode in modes.items():
        mine = pc.fill_null(pc.and_(pc.equal(arm_column, name), pc.is_valid(numbers)), False)
        index = np.flatnonzero(mine.to_numpy(zero_copy_only=False))
        if not len(index) or mode is None:
            continue
        times = plan_times(numbers.take(pa.array(index)).to_pylist(), day=day,
                           window=send_time.window, tz=tz, hours=hours, mode=mode, seed=seed)  # fmt: skip
        out[index] = pa.array(times, TS).cast(pa.int64()).to_numpy()
    return pa.array(out, pa.int64(), mask=out < 0).cast(TS)


def default_day(send_time: SendTimeSpec, *, tz: str, now: datetime) -> date:
    """The local day of ``now``, or the next one when the window is already over."""
    local = now.astimezone(ZoneInfo(tz))
    end = send_time.window[1]
    over = end.hour or end.minute  # a window ending at 00:00 runs to midnight
    if over and local.time() >= end:
        return local.date() + timedelta(days=1)
    return local.date()
