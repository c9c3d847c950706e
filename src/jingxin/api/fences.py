"""API routes: geofences (短信围栏) - list, define, change, switch on and off, and their cells
on a map (``jingxin fence list|add|apply|show|enable|disable``).

A fence is written in the structure of a fences file (one entry of ``fences:``,
:class:`~jingxin.geofence.fences.FenceDef`, validated by the same model), resolved against
the warehouse's cell table (:func:`~jingxin.geofence.fences.resolve`) and saved by the
registry's own row functions, in one transaction with its audit entry. The cell table is
read once per warehouse file version and kept (:func:`cell_table`). Fences are the
caller's tenant's only: another tenant's id answers 404.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from jingxin.access import Principal
from jingxin.api import auth, errors
from jingxin.api.auth import allow
from jingxin.api.limits import BIGINT_MAX, OFFSET_MAX
from jingxin.data.store.models.geofence import FenceRow
from jingxin.errors import InputError
from jingxin.geofence import registry
from jingxin.geofence.fences import (
    DefinedFence,
    FenceDef,
    hours_text,
    overlaps,
    resolve,
)

if TYPE_CHECKING:
    from jingxin.config import Settings
    from jingxin.geofence.directory import CellIndex

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["fences"])

FenceId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="The fence's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such fence (or another tenant's)."}}  # fmt: skip
NO_CELLS: dict[int | str, dict[str, Any]] = {
    503: {"description": "The warehouse's cell table cannot be read."}}  # fmt: skip


class Point(BaseModel):
    lat: float
    lon: float


class FenceSummary(BaseModel):
    id: int
    code: str
    name: str
    scenario: str
    enabled: bool
    version: int = Field(description="Goes up whenever the definition, cells or flag change.")
    template: str
    category: str
    hours: list[str] = Field(description="Local HH:MM-HH:MM windows; empty: all day.")
    dwell_seconds: int
    cap_per_day: int
    residents: str
    cell_count: int
    created_at: datetime
    updated_at: datetime


class FenceDetail(FenceSummary):
    cells: list[str] = Field(description="The cell ids it resolved to when saved.")
    centre: Point | None
    radius_m: float | None
    definition: dict[str, Any] = Field(description="The fence as a fences file writes it "
                                       "(defaults left out): what PUT takes back.")  # fmt: skip


class FenceSaved(FenceDetail):
    warnings: list[str] = Field(description="What will not work as it stands: a template with "
                                "no approved version, variables it lacks, cells shared with "
                                "another fence.")  # fmt: skip


class FenceList(BaseModel):
    items: list[FenceSummary]
    total: int


class Cell(BaseModel):
    cell_id: str
    lat: float | None = Field(description="None: the cell table no longer has this cell.")
    lon: float | None
    district: str | None
    kind: str | None


class FenceCells(BaseModel):
    fence_id: int
    centre: Point | None = Field(description="The centre it was drawn around, if by radius.")
    radius_m: float | None
    items: list[Cell]
    total: int


# ----------------------------------------------------------------------------- the cell table

_cells_lock = threading.Lock()
_cells_cache: dict[str, tuple[tuple[int, int], CellIndex]] = {}
_map_lock = threading.Lock()  # one map drawn at a time: matplotlib's font caches, 2 cores


def cell_table(settings: Settings) -> CellIndex:
    """The warehouse's cell table as a :class:`CellIndex`, kept per DuckDB file until the
    file changes (a reload is one read of a table of a few hundred thousand rows); 503
    when it cannot be read (the detail goes to the log)."""
    from jingxin.data.warehouse.connection import open_duckdb, open_warehouse
    from jingxin.geofence.directory import CellIndex

    config = settings.warehouse
    try:
        if config.backend != "duckdb":
            warehouse = open_warehouse(config)
            try:
                return CellIndex.from_warehouse(warehouse)
            finally:
                warehouse.close()
        path = FilePath(config.path)
        if not path.is_file():
            raise FileNotFoundError(f"no warehouse at {path} (warehouse.path)")
        stat = path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
        with _cells_lock:
            known = _cells_cache.get(str(path))
            if known is not None and known[0] == version:
                return known[1]
            warehouse = open_duckdb(path, threads=config.threads,
                                    memory_limit=config.memory_limit, read_only=True)  # fmt: skip
            try:
                cells = CellIndex.from_warehouse(warehouse)
            finally:
                warehouse.close()
            _cells_cache[str(path)] = (version, cells)
            return cells
    except Exception as exc:  # the warehouse's own errors: DuckDB, Ibis, files
        log.warning("the cell table cannot be read: %s", exc)
        raise errors.ApiError(503, "the warehouse's cell table cannot be read; the server's "
                              "log has the details") from exc  # fmt: skip


# ----------------------------------------------------------------------------- shapes


def _summary(row: FenceRow) -> dict[str, Any]:
    fence = registry.from_row(row)
    return {"id": row.id, "code": row.code, "name": row.name, "scenario": row.scenario,
            "enabled": row.enabled, "version": row.version, "template": fence.template,
            "category": fence.category, "hours": hours_text(fence.hours),
            "dwell_seconds": fence.dwell_seconds, "cap_per_day": fence.cap_per_day,
            "residents": fence.residents, "cell_count": len(row.cells),
            "created_at": row.created_at, "updated_at": row.updated_at}  # fmt: skip


def _detail(row: FenceRow) -> dict[str, Any]:
    fence = registry.from_row(row)
    return {**_summary(row), "cells": list(row.cells), "centre": _centre(fence),
            "radius_m": fence.radius_m, "definition": registry.export_entry(fence)}  # fmt: skip


def _centre(fence: DefinedFence) -> Point | None:
    return Point(lat=fence.centre[0], lon=fence.centre[1]) if fence.centre else None


def _owned(session: Any, who: Principal, fence_id: int) -> FenceRow:
    return errors.owned(session, FenceRow, fence_id, tenant_id=who.tenant_id, what="fence")


# ----------------------------------------------------------------------------- saving


def _resolved(request: Request, who: Principal, body: FenceDef) -> DefinedFence:
    """``body`` resolved against the cell table, in the caller's tenant; a problem is a
    422 naming the field."""
    if body.tenant is not None and body.tenant != who.tenant_id:
        raise errors.ApiError(422, f"tenant: fences are made in your own tenant "
                              f"({who.tenant_id}), not {body.tenant!r}", field="body.tenant")
    if body.segment is not None and _names_files(body.segment):
        raise errors.ApiError(422, "segment: exclude_files name files on the server; over the "
                              "API give the audience spec without them (apply a fences file "
                              "for exclusion lists)", field="body.segment")  # fmt: skip
    cells = cell_table(request.app.state.settings)
    try:
        (fence,), _ = resolve([body], cells, tenant=who.tenant_id)
    except InputError as exc:
        # resolve names "<code>: <field>: why"; the field goes to the answer's fields
        message = str(exc)
        named = message.removeprefix(f"{body.code}: ").split(":", 1)[0]
        field = f"body.{named}" if named in FenceDef.model_fields else None
        raise errors.ApiError(422, message, field=field) from None
    return fence


def _names_files(spec: Any) -> bool:
    """Whether an audience spec (combined ones too) lists exclusion files."""
    if isinstance(spec, dict):
        return bool(spec.get("exclude_files")) or any(_names_files(v) for v in spec.values())
    if isinstance(spec, list):
        return any(_names_files(v) for v in spec)
    return False


def _warnings(session: Any, fence: DefinedFence, row: FenceRow) -> list[str]:
    """The registry's template warnings, and cells shared with the tenant's other fences."""
    found = registry.template_warnings(session, [fence])
    others = session.scalars(select(FenceRow).where(FenceRow.tenant_id == row.tenant_id,
                                                    FenceRow.id != row.id)
                             .order_by(FenceRow.code))  # fmt: skip
    mine = set(fence.cells)
    for other in others:
        if mine.intersection(other.cells):
            found += overlaps([fence, registry.from_row(other)])
    return found


@router.get("/fences", response_model=FenceList)
def list_fences(
    request: Request,
    who: Annotated[Principal, Depends(allow("fences.read"))],
    enabled: Annotated[bool | None, Query(
        description="Only enabled (true) or disabled (false) ones.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=OFFSET_MAX)] = 0,
) -> FenceList:
    """The caller's tenant's fences, by code (``jingxin fence list``)."""
    query = select(FenceRow).where(FenceRow.tenant_id == who.tenant_id)
    if enabled is not None:
        query = query.where(FenceRow.enabled.is_(enabled))
    with request.app.state.store.transaction() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery()))
        rows = session.scalars(query.order_by(FenceRow.code).limit(limit).offset(offset))
        items = [FenceSummary(**_summary(row)) for row in rows]
    return FenceList(items=items, total=int(total or 0))


@router.post("/fences", response_model=FenceSaved, status_code=201,
             responses={409: {"description": "The tenant has a fence with this code."},
                        **NO_CELLS})  # fmt: skip
def create_fence(request: Request, body: FenceDef,
                 who: Annotated[Principal, Depends(allow("fences.write"))]) -> FenceSaved:
    """Define a fence: one entry of a fences file (``code``, ``name``, ``scenario``,
    ``cells`` or ``centre`` + ``radius_m``, ``template``, ``hours``, ``dwell``, ``segment``
    as an audience spec, ...; docs/geofence.md), checked and resolved against the cell
    table like ``jingxin fence add``. A segment file name is refused: give the spec."""
    fence = _resolved(request, who, body)
    with request.app.state.store.transaction() as session:
        try:
            row = registry.insert(session, fence)
        except registry.FenceExists as exc:
            raise errors.ApiError(409, str(exc), field="body.code") from None
        warnings = _warnings(session, fence, row)
        auth.audit(session, who, "fence.create", "fence", row.id,
                   {"code": row.code, "version": row.version, "cells": len(row.cells)})
        return FenceSaved(**_detail(row), warnings=warnings)


@router.get("/fences/{fence_id}", response_model=FenceDetail, responses=NOT_FOUND)
def get_fence(request: Request, fence_id: FenceId,
              who: Annotated[Principal, Depends(allow("fences.read"))]) -> FenceDetail:
    """One fence: its settings, its cells, and its definition as a fences file writes it
    (``jingxin fence show``)."""
    with request.app.state.store.transaction() as session:
        return FenceDetail(**_detail(_owned(session, who, fence_id)))


@router.put("/fences/{fence_id}", response_model=FenceSaved,
            responses={**NOT_FOUND, **NO_CELLS})  # fmt: skip
def replace_fence(request: Request, fence_id: FenceId, body: FenceDef,
                  who: Annotated[Principal, Depends(allow("fences.write"))]) -> FenceSaved:
    """Replace a fence's definition (the structure POST takes; its ``definition`` as GET
    gives it is a good start). The code stays: it names the fence's offers and its
    experiment. Without ``enabled`` the fence keeps its flag. The version goes up only
    when something changed (``jingxin fence apply``)."""
    with request.app.state.store.transaction() as session:
        row = _owned(session, who, fence_id)
        if body.code != row.code:
            raise errors.ApiError(422, f"code: fence {fence_id} is {row.code!r} and stays so "
                                  "(its offers and experiment are named by it); make a new "
                                  "fence for a new code", field="body.code")  # fmt: skip
        fence = _resolved(request, who, body)
        if "enabled" not in body.model_fields_set:
            fence = replace(fence, enabled=row.enabled)
        changed = registry.rewrite(row, fence)
        session.flush()
        warnings = _warnings(session, fence, row)
        auth.audit(session, who, "fence.update", "fence", row.id,
                   {"code": row.code, "version": row.version, "changed": changed})
        return FenceSaved(**_detail(row), warnings=warnings)


def _switch(request: Request, who: Principal, fence_id: int, enabled: bool) -> FenceDetail:
    with request.app.state.store.transaction() as session:
        row = _owned(session, who, fence_id)
        changed = registry.switch(row, enabled)
        session.flush()
        auth.audit(session, who, "fence.activate" if enabled else "fence.deactivate", "fence",
                   row.id, {"code": row.code, "version": row.version, "changed": changed})
        return FenceDetail(**_detail(row))


@router.post("/fences/{fence_id}/activate", response_model=FenceDetail, responses=NOT_FOUND)
def activate_fence(request: Request, fence_id: FenceId,
                   who: Annotated[Principal, Depends(allow("fences.write"))]) -> FenceDetail:
    """Let the fence trigger offers again (``jingxin fence enable``); the matchers pick
    it up within ``[geofence] fences_refresh_seconds``."""
    return _switch(request, who, fence_id, True)


@router.post("/fences/{fence_id}/deactivate", response_model=FenceDetail,
             responses=NOT_FOUND)  # fmt: skip
def deactivate_fence(request: Request, fence_id: FenceId,
                     who: Annotated[Principal, Depends(allow("fences.write"))]
                     ) -> FenceDetail:  # fmt: skip
    """Stop the fence's offers, keeping its definition (``jingxin fence disable``)."""
    return _switch(request, who, fence_id, False)


# ----------------------------------------------------------------------------- the map


def _stored(request: Request, who: Principal, fence_id: int) -> DefinedFence:
    with request.app.state.store.transaction() as session:
        row = _owned(session, who, fence_id)
        return registry.from_row(row)


@router.get("/fences/{fence_id}/cells", response_model=FenceCells,
            responses={**NOT_FOUND, **NO_CELLS})  # fmt: skip
def fence_cells(request: Request, fence_id: FenceId,
                who: Annotated[Principal, Depends(allow("fences.read"))]) -> FenceCells:
    """The fence's cells with their position, district and land use from the cell table,
    for a map; the centre and radius it was drawn with, if it was."""
    fence = _stored(request, who, fence_id)
    places = cell_table(request.app.state.settings).places(list(fence.cells))
    items = [Cell(cell_id=p["cell"], lat=p["lat"], lon=p["lon"], district=p["district"],
                  kind=p["kind"]) for p in places]  # fmt: skip
    return FenceCells(fence_id=fence_id, centre=_centre(fence), radius_m=fence.radius_m,
                      items=items, total=len(items))  # fmt: skip


@router.get("/fences/{fence_id}/map.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "The map (PNG)."},
                       409: {"description": "None of its cells is in the cell table."},
                       **NOT_FOUND, **NO_CELLS})  # fmt: skip
def fence_map(request: Request, fence_id: FenceId,
              who: Annotated[Principal, Depends(allow("fences.read"))]) -> Response:
    """The fence drawn on the cell table (PNG, ~0.1 s): its cells, the cells around them,
    its radius and a scale bar (``jingxin fence show --map``)."""
    from jingxin.geofence.mapimage import render

    fence = _stored(request, who, fence_id)
    cells = cell_table(request.app.state.settings)
    try:
        with _map_lock:
            image = render(fence, cells)
    except InputError as exc:
        raise errors.ApiError(409, str(exc)) from None
    return Response(image, media_type="image/png",
                    headers={"Cache-Control": "private, max-age=60"})  # fmt: skip
