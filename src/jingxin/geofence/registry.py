"""The fences in the store (table ``fences``): what every matcher process reads.

A fence's row keeps its definition as written (:meth:`FenceDef.definition`, a segment file
inlined) and the cells it resolved to when it was saved, so matchers on other machines need
neither the file nor the cell table to agree on it. ``version`` goes up when the definition,
the cells or the enabled flag change, never on a re-apply of the same file; the runner
polls :func:`store_version` and reloads when it moves.

Crash safety: :func:`apply` writes a whole file in one transaction (every fence of it, or
none); each other call is its own transaction. The row-level forms (:func:`insert`,
:func:`rewrite`, :func:`switch`, :func:`template_warnings`) work inside the caller's
transaction, for the API (which also audits there).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from jingxin.data.store.models.geofence import FenceRow
from jingxin.data.store.models.tenants import DEFAULT_TENANT_ID
from jingxin.errors import ConflictError, InputError
from jingxin.geofence.fences import DefinedFence, FenceDef, fence_of
from jingxin.geofence.types import Fence

# The order a fence's fields are written in (export): who and where first, then the offer.
_EXPORT_ORDER = ("code", "name", "scenario", "tenant", "enabled", "cells", "centre", "radius_m",
                 "hours", "dwell_seconds", "segment", "template", "category", "variables",
                 "cap_per_day", "residents", "sender", "validity_minutes")  # fmt: skip
_ALWAYS = ("code", "name", "scenario", "template")


class FenceExists(ConflictError):
    """A new fence whose code its tenant already has."""


@dataclass
class ApplyReport:
    """What :func:`apply` did, by fence code."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "removed": self.removed}  # fmt: skip


def definition_of(fence: Fence) -> dict[str, Any]:
    """The definition the store keeps for ``fence`` (its own, or one built from it)."""
    if isinstance(fence, DefinedFence) and fence.definition:
        data = dict(fence.definition)
    else:
        data = FenceDef.from_fence(fence).definition(tenant=fence.tenant_id)
    data["tenant"] = fence.tenant_id
    data["enabled"] = fence.enabled
    return data


def from_row(row: FenceRow) -> DefinedFence:
    """The fence of a stored row (its version and enabled flag are the row's)."""
    definition = dict(row.definition)
    definition["tenant"], definition["enabled"] = row.tenant_id, row.enabled
    return fence_of(definition, row.cells, version=row.version, enabled=row.enabled)


def _values(fence: Fence) -> dict[str, Any]:
    return {"name": fence.name, "scenario": fence.scenario, "definition": definition_of(fence),
            "cells": sorted(fence.cells), "enabled": fence.enabled}  # fmt: skip


def _changed(row: FenceRow, values: dict[str, Any]) -> bool:
    return any(getattr(row, key) != value for key, value in values.items())


def apply(store: Any, fences: Sequence[Fence], *, prune: bool = False) -> ApplyReport:
    """Save ``fences`` (upsert by tenant and code) in one transaction; with ``prune``, also
    remove the fences of the same tenants that ``fences`` does not name."""
    codes = Counter((f.tenant_id, f.code) for f in fences)
    twice = sorted(f"{t}/{c}" for (t, c), n in codes.items() if n > 1)
    if twice:
        raise InputError(f"fence(s) given twice: {', '.join(twice)}")
    report = ApplyReport()
    tenants = sorted({f.tenant_id for f in fences})
    with store.transaction() as session:
        rows = {(r.tenant_id, r.code): r for r in session.scalars(
            select(FenceRow).where(FenceRow.tenant_id.in_(tenants)))}  # fmt: skip
        for fence in fences:
            values = _values(fence)
            row = rows.get((fence.tenant_id, fence.code))
            if row is None:
                session.add(FenceRow(tenant_id=fence.tenant_id, code=fence.code, version=1,
                                     **values))  # fmt: skip
                report.created.append(fence.code)
            elif _rewrite(row, values):
                report.updated.append(fence.code)
            else:
                report.unchanged.append(fence.code)
        if prune:
            named = set(codes)
            gone = [row for key, row in sorted(rows.items()) if key not in named]
            for row in gone:
                session.delete(row)
            report.removed = [row.code for row in gone]
    return report


def add(store: Any, fence: Fence) -> DefinedFence:
    """Save a new fence; a code the tenant already has is an InputError."""
    with store.transaction() as session:
        return from_row(insert(session, fence))


def insert(session: Session, fence: Fence) -> FenceRow:
    """:func:`add` in the caller's transaction: the new row (flushed, so it has its id);
    a code the tenant already has is :class:`FenceExists`."""
    if _find(session, fence.code, fence.tenant_id) is not None:
        raise FenceExists(f"fence {fence.code!r} already exists (tenant {fence.tenant_id}): "
                          "change it with `jingxin fence apply FILE`, or remove it first")
    row = FenceRow(tenant_id=fence.tenant_id, code=fence.code, version=1, **_values(fence))
    session.add(row)
    session.flush()
    return row


def rewrite(row: FenceRow, fence: Fence) -> bool:
    """Give the stored ``row`` the definition, cells and enabled flag of ``fence`` (the
    same tenant and code); its version goes up only when something changed, as
    :func:`apply` does. Whether it changed."""
    if (row.tenant_id, row.code) != (fence.tenant_id, fence.code):
        raise InputError(f"fence {row.code!r} (tenant {row.tenant_id}) cannot become "
                         f"{fence.code!r} (tenant {fence.tenant_id})")  # fmt: skip
    return _rewrite(row, _values(fence))


def _rewrite(row: FenceRow, values: dict[str, Any]) -> bool:
    if not _changed(row, values):
        return False
    for key, value in values.items():
        setattr(row, key, value)
    row.version += 1
    return True


def list_fences(store: Any, tenant: str | None = None, enabled_only: bool = False
                ) -> list[DefinedFence]:  # fmt: skip
    """The stored fences (of ``tenant``, when given), by tenant and code."""
    query = select(FenceRow).order_by(FenceRow.tenant_id, FenceRow.code)
    if tenant is not None:
        query = query.where(FenceRow.tenant_id == tenant)
    if enabled_only:
        query = query.where(FenceRow.enabled.is_(True))
    with store.transaction() as session:
        return [from_row(row) for row in session.scalars(query)]


def get(store: Any, code: str, tenant: str = DEFAULT_TENANT_ID) -> DefinedFence:
    """The stored fence ``code`` of ``tenant``; none is an InputError naming it."""
    with store.transaction() as session:
        return from_row(_required(session, code, tenant))


def set_enabled(store: Any, code: str, enabled: bool, *,
                tenant: str = DEFAULT_TENANT_ID) -> DefinedFence:
    """Enable or disable a fence (its version goes up when the flag changes)."""
    with store.transaction() as session:
        row = _required(session, code, tenant)
        switch(row, enabled)
        return from_row(row)


def switch(row: FenceRow, enabled: bool) -> bool:
    """Enable or disable a stored fence in the caller's transaction (its version goes up
    when the flag changes); whether it changed."""
    if row.enabled == enabled:
        return False
    row.enabled = enabled
    row.definition = {**row.definition, "enabled": enabled}
    row.version += 1
    return True


def template_warnings(session: Session, fences: Sequence[Fence]) -> list[str]:
    """Fences whose template has no approved version yet (they would send nothing), or
    declares variables the fence does not set (its offers would be refused)."""
    from jingxin.content.catalog import list_templates
    from jingxin.geofence.fences import RESERVED_VARIABLES

    out = []
    for tenant, code in sorted({(f.tenant_id, f.template) for f in fences}):
        users = [f for f in fences if (f.tenant_id, f.template) == (tenant, code)]
        approved = list_templates(session, tenant_id=tenant, code=code, status="approved")
        if not approved:
            out.append(f"template {tenant}/{code} has no approved version: fence(s) "
                       f"{', '.join(f.code for f in users)} send nothing until it is "
                       "approved (`jingxin template seed-library`)")  # fmt: skip
            continue
        declared = set(approved[-1].variables) - set(RESERVED_VARIABLES)
        for fence in users:
            if missing := sorted(declared - set(fence.variables)):
                out.append(f"fence {fence.code}: template {code} needs variable(s) "
                           f"{', '.join(missing)} the fence does not set")  # fmt: skip
    return out


def remove(store: Any, code: str, *, tenant: str = DEFAULT_TENANT_ID) -> None:
    """Delete a fence (the matcher drops its open stays at its next reload)."""
    with store.transaction() as session:
        _required(session, code, tenant)
        session.execute(delete(FenceRow).where(FenceRow.tenant_id == tenant,
                                               FenceRow.code == code))  # fmt: skip


def store_version(store: Any) -> int:
    """A number that moves whenever any fence is added, changed, enabled, disabled or
    removed: a hash of every row's (id, tenant, code, version, updated_at). Not
    ``max(version) + count``, which stays put when a fence below the top version changes."""
    query = select(FenceRow.id, FenceRow.tenant_id, FenceRow.code, FenceRow.version,
                   FenceRow.updated_at).order_by(FenceRow.id)  # fmt: skip
    digest = hashlib.blake2b(digest_size=8)
    with store.transaction() as session:
        for row in session.execute(query):
            digest.update(repr(tuple(row)).encode())
    return int.from_bytes(digest.digest(), "big") >> 1  # a positive int64


def export_yaml(fences: Iterable[Fence]) -> str:
    """A fences file of ``fences`` (defaults left out), which ``apply`` reads back."""
    items = [export_entry(fence) for fence in fences]
    return yaml.safe_dump({"fences": items}, allow_unicode=True, sort_keys=False, width=100)


def export_entry(fence: Fence) -> dict[str, Any]:
    """One fence as a fences file writes it: its definition, defaults left out."""
    data = definition_of(fence)
    fields = FenceDef.model_fields
    out = {}
    for key in _EXPORT_ORDER:
        if key not in data:
            continue
        info, value = fields.get(key), data[key]
        if key not in _ALWAYS and info is not None and not info.is_required() \
                and _plain(info.get_default(call_default_factory=True)) == value:
            continue
        out[key] = int(value) if isinstance(value, float) and value.is_integer() else value
    return out


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _find(session: Session, code: str, tenant: str) -> FenceRow | None:
    return session.scalars(select(FenceRow).where(FenceRow.tenant_id == tenant,
                                                  FenceRow.code == code)).one_or_none()  # fmt: skip


def _required(session: Session, code: str, tenant: str) -> FenceRow:
    row = _find(session, code, tenant)
    if row is None:
        known = session.scalars(select(FenceRow.code).where(FenceRow.tenant_id == tenant)
                                .order_by(FenceRow.code).limit(10)).all()  # fmt: skip
        hint = f" (fences: {', '.join(known)})" if known else " (no fences yet)"
        raise InputError(f"no fence {code!r} for tenant {tenant}{hint}")
    return row
