"""What a campaign would send, before anything is sent: the preview of a spec or a draft.

From a prepared spec (:func:`~jingxin.dispatch.campaign.prepare_campaign`: tenant,
templates and link already checked) and its audience table:

- the split the run would draw - the same :func:`~jingxin.dispatch.campaign_arms.split_audience`,
  with the draft's id when there is one, so the preview of a draft holds out the numbers
  its run will hold out - giving numbers held out, per arm the numbers assigned and the
  messages sent now, and the numbers left for ``campaign promote`` after a test share;
- per arm, a sample of the rows sent now rendered as the delivery entry renders them (the
  same :func:`~jingxin.content.templates.render`: signature, unsubscribe route, and a
  short-link placeholder of a real link's length), for their parts and the rows that
  would fail (``render_error``, ``too_long``);
- the cost: parts times the tariff (the spec's, else ``[analytics] tariff``).

Policy is not asked (opt-outs, caps, quiet hours and the contact ledger are decided when
the campaign runs), so the messages are an upper bound.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from jingxin.errors import TemplateError

if TYPE_CHECKING:
    from jingxin.dispatch.campaign import PreparedCampaign
    from jingxin.dispatch.campaign_arms import Arm

SAMPLE_ROWS = 200  # rendered per arm: enough for the spread of parts, cheap on any audience


@dataclass
class ArmEstimate:
    name: str
    assigned: int  # distinct numbers
    messages: int  # distinct numbers sent now
    sampled: int = 0  # rows rendered
    parts_min: int | None = None
    parts_max: int | None = None
    parts_mean: float | None = None
    failed: dict[str, int] = field(default_factory=dict)  # of the sampled rows, by reason
    example: str | None = None  # the first sampled row's text
    error: str | None = None  # the first render error's message


@dataclass
class Estimate:
    rows: int  # of the audience
    numbers: int  # distinct valid numbers
    invalid: int  # rows without a valid number (rejected as invalid_number)
    held_out: int
    waiting: int  # treated numbers left for `campaign promote` (a test share)
    messages: int  # sent now, before policy
    parts: int  # estimated, of the messages sent now
    parts_per_message: float | None
    tariff: float
    cost: float
    arms: list[ArmEstimate]
    warnings: list[str]


def estimate_campaign(prepared: PreparedCampaign, audience: pa.Table, *, tariff: float,
                      campaign_id: int = 0, sample: int = SAMPLE_ROWS) -> Estimate:  # fmt: skip
    """The estimate of :mod:`this module <jingxin.dispatch.campaign_estimate>`."""
    from jingxin.dispatch.campaign_arms import split_audience

    spec = prepared.spec
    column = spec.audience.msisdn_column
    split = split_audience(audience, msisdn_column=column, campaign_id=campaign_id,
                           arms=prepared.arms, holdout=prepared.holdout,
                           test_share=spec.experiment.test_share)  # fmt: skip
    now = split.now
    arm_column = now.column("arm")
    arms, messages, parts = [], 0, 0.0
    for arm in prepared.arms:
        rows = now.filter(pc.fill_null(pc.equal(arm_column, arm.name), False))
        est = ArmEstimate(name=arm.name, assigned=int(split.assigned.get(arm.name, 0)),
                          messages=_distinct_numbers(rows, column))  # fmt: skip
        _render_sample(est, rows.slice(0, sample), arm=arm, prepared=prepared)
        ok_share = 1.0 - (sum(est.failed.values()) / est.sampled if est.sampled else 0.0)
        messages += est.messages
        if est.parts_mean is not None:
            parts += est.messages * ok_share * est.parts_mean
        arms.append(est)
    rendered = [a for a in arms if a.parts_mean is not None]
    total_parts = round(parts)
    per_message = None
    if rendered:
        per_message = round(parts / max(1, sum(a.messages for a in rendered)), 3)
    valid = len(split.numbers)
    return Estimate(rows=audience.num_rows, numbers=int(pc.count_distinct(split.numbers).as_py()),
                    invalid=audience.num_rows - valid, held_out=split.held_out,
                    waiting=split.waiting, messages=messages, parts=total_parts,
                    parts_per_message=per_message, tariff=tariff,
                    cost=round(total_parts * tariff, 4), arms=arms,
                    warnings=list(split.warnings))  # fmt: skip


def _distinct_numbers(rows: pa.Table, column: str) -> int:
    from jingxin.data.msisdn import normalise_msisdns

    if not rows.num_rows:
        return 0
    numbers = normalise_msisdns(rows.column(column)).e164
    return int(pc.count_distinct(numbers).as_py())


def _render_sample(est: ArmEstimate, rows: pa.Table, *, arm: Arm,
                   prepared: PreparedCampaign) -> None:  # fmt: skip
    """Render ``rows`` with the arm's template as the delivery entry would."""
    from jingxin.content.templates import render
    from jingxin.dispatch.deliver import LINK_VARIABLE
    from jingxin.dispatch.short_links import LinkPlan

    spec, content = prepared.spec, prepared.context.content
    compiled = arm.template.compiled
    names = [n for n in compiled.variables if n in rows.column_names and n != LINK_VARIABLE]
    linked = LINK_VARIABLE in compiled.variables and (
        spec.link is not None or "link" in rows.column_names)
    placeholder = LinkPlan.make(prepared.context.links).placeholder_url if linked else None
    columns = {n: rows.column(n).to_pylist() for n in names}
    counts: list[int] = []
    failed: Counter[str] = Counter()
    for i in range(rows.num_rows):
        values: dict[str, Any] = {n: columns[n][i] for n in names}
        if placeholder is not None:
            values[LINK_VARIABLE] = placeholder
        try:
            result = render(compiled, values, category=spec.category,
                            signature=prepared.signature,
                            unsubscribe_text=content.unsubscribe_text,
                            max_parts=content.max_parts, where=f"audience row {i + 1}")  # fmt: skip
        except TemplateError as exc:
            failed["render_error"] += 1
            est.error = est.error or str(exc)
            continue
        if est.example is None:
            est.example = result.text
        if not result.fits:
            failed["too_long"] += 1
            est.error = est.error or result.error
            continue
        counts.append(result.parts.parts)
    est.sampled = rows.num_rows
    est.failed = dict(failed)
    if counts:
        est.parts_min, est.parts_max = min(counts), max(counts)
        est.parts_mean = round(sum(counts) / len(counts), 3)
