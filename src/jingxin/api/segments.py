"""API routes: segments - the example segments, and a segment spec counted in the warehouse.

A segment is a spec (:mod:`jingxin.audience.spec`, the same structure as the YAML that
``jingxin audience count`` reads), validated against the field catalogue before any query
runs and counted by the same functions (:mod:`jingxin.audience.compile`,
:mod:`jingxin.audience.explain`) over the settings' warehouse. A bad spec is 422 naming its
path in the spec (``spec: where.all[2].field: unknown field 'arpuu'; did you mean
'arpu'?``).

Two rules of the edge:

- the warehouse holds the operator's subscribers (profiles, usage, location), and nothing
  in it belongs to a tenant: only the operator's own people count segments; an
  enterprise's callers get 403 (their audiences are their own lists);
- a spec sent over HTTP may not name files (``combine[].segment`` as a path,
  ``exclude_files``): the server would read them from its disk. Give segments inline.

jingxin keeps no library of saved segments: ``GET /segments`` lists the examples of
:mod:`jingxin.audience.examples` to start from.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from jingxin.access.principal import Principal
from jingxin.api.auth import allow
from jingxin.api.errors import ApiError
from jingxin.api.warehouse import read_warehouse
from jingxin.errors import SpecError

router = APIRouter(prefix="/api/v1", tags=["segments"])

SOURCE = "spec"  # how errors name the spec: "spec: where.all[2].field: ..."
MAX_ROWS = 20
ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not the operator's tenant, or no segments.read"},
    422: {"description": "The spec does not validate (the message names its path)"},
    503: {"description": "The warehouse cannot answer (missing, or a table not built)"},
}


class SegmentOut(BaseModel):
    name: str
    description: str
    spec: dict[str, Any]
    needs: list[str] = Field(description="warehouse tables the spec reads")
    example: bool = True


class SegmentList(BaseModel):
    items: list[SegmentOut]
    total: int


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="a segment spec, as `jingxin audience count` "
                                 "reads it (name optional here)")  # fmt: skip
    breakdown: bool = Field(default=False, description="also count by plan, tenure, region")
    rows: int = Field(default=0, ge=0, le=MAX_ROWS, description="sample rows to return")


class Group(BaseModel):
    value: Any
    subscribers: int


class SegmentPreview(BaseModel):
    name: str
    count: int
    as_of: dt.date | None = Field(description="the feature build used, if any")
    warnings: list[str]
    breakdown: dict[str, list[Group]] | None = None
    rows: list[dict[str, Any]] | None = Field(
        default=None, description="the first rows by subscriber id; numbers masked without "
        "numbers.view")  # fmt: skip


# ------------------------------------------------------------------------------ helpers


def operator_only(who: Principal) -> None:
    if not who.operator:
        raise ApiError(403, "segments count the operator's subscribers in the warehouse: "
                       "only the operator's own people may use them (send to your own lists)")


def no_files(spec: Any, *, where: str = SOURCE) -> None:
    """Refuse a spec (or an inline segment it combines) that names a file."""
    if spec.exclude_files:
        raise SpecError(f"{where}: exclude_files: files are not read over the API (put the "
                        "numbers in a segment condition or leave them out)")  # fmt: skip
    for i, combined in enumerate(spec.combine):
        if isinstance(combined.segment, str):
            raise SpecError(f"{where}: combine[{i}].segment: a segment file is not read over "
                            "the API: give the segment inline (a mapping)")  # fmt: skip
        no_files(combined.segment, where=f"{where}: combine[{i}].segment")


def prepared_spec(raw: dict[str, Any], *, source: str = SOURCE) -> Any:
    """The spec parsed, file-free and checked against the field catalogue (no query yet):
    a :class:`~jingxin.audience.compile.Prepared`, or a SpecError naming the path
    (``source``: how the message names the spec)."""
    from jingxin.audience.compile import prepare
    from jingxin.audience.spec import parse_spec

    spec = parse_spec({"name": "preview", **raw}, source=source)
    no_files(spec, where=source)
    return prepare(spec, source=source)


def plain(value: Any) -> Any:
    """A value of a pandas or Arrow row as JSON can carry it (NaN and NaT as null)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return plain(item())
    try:
        import pandas as pd

        if pd.isna(value):
            return None
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
    except (TypeError, ValueError):
        pass
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


# ------------------------------------------------------------------------------- routes


@router.get("/segments", response_model=SegmentList, responses={403: ERRORS[403]})
def list_segments(who: Principal = Depends(allow("segments.read"))) -> SegmentList:
    """The example segments to start from (jingxin keeps no saved segments: a segment is
    a spec, sent inline to ``POST /segments/preview`` or a campaign's audience)."""
    from jingxin.audience.examples import EXAMPLES

    operator_only(who)
    items = [SegmentOut(name=e.name, description=e.description, spec=e.spec,
                        needs=list(e.needs)) for e in EXAMPLES]  # fmt: skip
    return SegmentList(items=items, total=len(items))


@router.post("/segments/preview", response_model=SegmentPreview, responses=ERRORS)
def preview_segment(body: PreviewIn, request: Request,
                    who: Principal = Depends(allow("segments.read"))) -> SegmentPreview:  # fmt: skip
    """How many subscribers the spec selects (as ``jingxin audience count``), its warnings
    (conditions that can never match), optionally counts by plan, tenure group and region
    and the first rows (numbers masked unless you may see them). Changes nothing."""
    from jingxin.audience import explain
    from jingxin.audience.compile import compile_prepared

    operator_only(who)
    prepared = prepared_spec(body.spec)
    with read_warehouse(request.app.state.settings) as wh:
        compiled = compile_prepared(wh, prepared)
        out = SegmentPreview(name=prepared.spec.name, count=explain.count(compiled),
                             as_of=compiled.as_of, warnings=compiled.warnings)  # fmt: skip
        if body.breakdown:
            out.breakdown = {
                name: [Group(value=plain(row[name]), subscribers=int(row["subscribers"]))
                       for row in frame.to_dict("records")]
                for name, frame in explain.breakdown(wh, compiled).items()}  # fmt: skip
        if body.rows:
            frame = explain.preview(compiled, rows=body.rows, shown=who.number)
            out.rows = [{str(k): plain(v) for k, v in row.items()}
                        for row in frame.to_dict("records")]  # fmt: skip
    return out
