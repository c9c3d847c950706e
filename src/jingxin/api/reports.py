"""API routes: a campaign's report, and an experiment's results.

``GET /reports/campaigns/{id}`` is :func:`jingxin.analytics.report.campaign_report`, the
report ``jingxin report campaign`` writes: ``format=json`` gives its figures (headline,
notes, every table as rows), ``html``/``csv``/``xlsx`` the file itself as a download
(:func:`~jingxin.analytics.report.write_report`). No report lists a subscriber's number
(the domain's rule), so there is nothing to mask for roles without ``numbers.view``. The
breakdowns by segment, district, tenure and plan join the recipients with the operator's
warehouse: they are the operator's to see, and an enterprise's report leaves them out
with a note.

``GET /experiments/{kind}/{id}`` is :func:`jingxin.analytics.report_experiment.
experiment_results`, what ``jingxin experiment results`` prints with ``--json``. An
experiment is the caller's when its campaign (or, for a journey or fence, every
assignment and message of it) belongs to the caller's tenant; anything else is 404.
"""

from __future__ import annotations

import tempfile
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from jingxin.access.principal import Principal
from jingxin.api import errors
from jingxin.api.auth import allow
from jingxin.api.segments import plain
from jingxin.api.warehouse import optional_warehouse
from jingxin.data.store.models import Campaign, ExperimentAssignment, Message

router = APIRouter(prefix="/api/v1", tags=["reports"])

MEDIA = {"html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}  # fmt: skip


class Headline(BaseModel):
    label: str
    value: str


class ReportTable(BaseModel):
    heading: str
    columns: list[str]
    rows: list[dict[str, Any]]


class CampaignReport(BaseModel):
    title: str
    subtitle: str
    generated_at: datetime
    headline: list[Headline]
    notes: list[str]
    tables: dict[str, ReportTable] = Field(description="summary, funnel, arms, comparisons, "
                                           "breakdowns, timeline, messages")  # fmt: skip


class ExperimentResults(BaseModel):
    experiment: str
    metric: str
    alpha: float
    correction: str
    holdout: str | None = Field(description="the hold-out arm, if any")
    uplift_measurable: bool
    notes: list[str]
    arms: list[dict[str, Any]] = Field(description="per arm: assigned, distinct subscribers "
                                       "per outcome, order value, parts and cost")  # fmt: skip
    comparison: dict[str, Any] | None = Field(
        description="rates with Wilson intervals; per treated arm the difference (Newcombe "
        "interval), lift, p-values (adjusted) and, against a hold-out, incremental successes")


def _report_json(report: Any) -> CampaignReport:
    tables = {name: ReportTable(heading=report.headings.get(name, name),
                                columns=list(table.column_names),
                                rows=[{k: plain(v) for k, v in row.items()}
                                      for row in table.to_pylist()])
              for name, table in report.tables.items()}  # fmt: skip
    return CampaignReport(title=report.title, subtitle=report.subtitle,
                          generated_at=report.generated_at,
                          headline=[Headline(label=k, value=v) for k, v in report.headline],
                          notes=list(report.notes), tables=tables)  # fmt: skip


@router.get("/reports/campaigns/{campaign_id}", response_model=CampaignReport,
            responses={200: {"content": {m: {} for m in MEDIA.values()},
                             "description": "json: the figures; html, csv, xlsx: the file"},
                       404: {"description": "No such campaign in your tenant"}})  # fmt: skip
def campaign_report(
    campaign_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)],
    request: Request,
    format: Literal["json", "html", "csv", "xlsx"] = Query(default="json"),
    who: Principal = Depends(allow("reports.read")),
) -> Any:
    """A campaign's report, as ``jingxin report campaign`` writes it: the funnel, the arms
    against the hold-out with intervals and p-values, cost, revenue and ROI, events per
    hour and (the operator's) breakdowns. ``format`` json gives the figures; html (one
    offline page), csv or xlsx the file as a download."""
    from jingxin.analytics.report import campaign_report as report_of
    from jingxin.analytics.report import write_report

    settings, store = request.app.state.settings, request.app.state.store
    with store.transaction() as session:
        errors.owned(session, Campaign, campaign_id, tenant_id=who.tenant_id, what="campaign")
    # The breakdowns read the operator's warehouse: not an enterprise's to see.
    warehouse = optional_warehouse(settings) if who.operator else nullcontext(None)
    with warehouse as wh:
        report = report_of(store, wh, campaign_id, settings=settings,
                           breakdowns_shown=who.operator)  # fmt: skip
    if format == "json":
        return _report_json(report)
    name = f"campaign-{campaign_id}.{format}"
    with tempfile.TemporaryDirectory(prefix="jx-report-") as folder:
        path = write_report(report, Path(folder) / name)
        content = path.read_bytes()
    return Response(content, media_type=MEDIA[format],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _owned(session: Any, who: Principal, experiment: str) -> bool:
    """Is ``experiment`` the caller's: its campaign theirs, and every assignment and
    message of it their tenant's (and there is at least one)?"""
    from jingxin.analytics.metrics import of_experiment, split_experiment

    source, source_id = split_experiment(experiment)
    if source == "campaign":
        row = session.get(Campaign, int(source_id))
        if row is None or row.tenant_id != who.tenant_id:
            return False
    tenants = set(session.scalars(select(ExperimentAssignment.tenant_id).where(
        ExperimentAssignment.experiment == experiment).distinct()))  # fmt: skip
    tenants |= set(session.scalars(select(Message.tenant_id).where(
        of_experiment(Message, source, source_id)).distinct()))  # fmt: skip
    return tenants == {who.tenant_id}


@router.get("/experiments/{kind}/{name}", response_model=ExperimentResults,
            responses={404: {"description": "No such experiment of your tenant"},
                       422: {"description": "A bad metric, correction or campaign id"}})  # fmt: skip
def experiment_results(
    kind: Literal["campaign", "journey", "fence"],
    name: Annotated[str, PathParam(min_length=1, max_length=64)],
    request: Request,
    metric: Literal["ordered", "clicked", "replied", "delivered", "opted_out", "complained",
                    "failed", "sent"] = Query(default="ordered"),
    alpha: float = Query(default=0.05, gt=0, lt=1, description="two-sided significance"),
    correction: Literal["holm", "bonferroni", "none"] = Query(default="holm"),
    who: Principal = Depends(allow("reports.read")),
) -> ExperimentResults:
    """An experiment's arms against its hold-out (or, without one, its first arm) on
    ``metric``, as ``jingxin experiment results --json`` prints them: the arms' counts,
    each rate with its interval, the differences, lift, adjusted p-values and the
    incremental successes. ``name``: the campaign's id, the journey's name or the fence's
    code."""
    from jingxin.analytics.report_experiment import experiment_name
    from jingxin.analytics.report_experiment import experiment_results as results_of

    experiment = experiment_name(kind, name)
    store = request.app.state.store
    with store.transaction() as session:
        if not _owned(session, who, experiment):
            raise errors.not_found("experiment", experiment)
    results = results_of(store, experiment=experiment, settings=request.app.state.settings,
                         metric=metric, alpha=alpha, correction=correction)  # fmt: skip
    return ExperimentResults(**plain(results.as_dict()))
