"""``jingxin fence``: geofences from the CLI (docs/geofence.md).

Defining fences lives here; running the matcher is in :mod:`jingxin.cli.fence_run`,
feeding and inspecting the streams in :mod:`jingxin.cli.fence_stream`.

- ``jingxin fence check FILE [--warehouse W]``: validate a fences file and resolve it
  against the cell table; warnings printed, nothing saved;
- ``jingxin fence apply FILE [--prune]``: save a whole file in one transaction (a fence's
  version goes up only when it changed; ``--prune`` removes the tenants' other fences);
- ``jingxin fence add CODE --name --scenario (--cells a,b | --centre LAT,LON --radius M)
  --template T [...]``: one fence from options;
- ``jingxin fence list``, ``show CODE [--map out.png]`` (its cells and a PNG map, by default
  ``var/geofence/<code>.png``), ``export [--out FILE]``, ``enable``, ``disable``,
  ``remove CODE``.

Bad input is one error naming the file, line and field (or the option).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from jingxin.cli.arguments import read_warehouse, settings_and_store
from jingxin.errors import InputError

if TYPE_CHECKING:
    from jingxin.geofence.fences import DefinedFence

app = typer.Typer(help="Geofences: define them, run the matcher, feed it events.",
                  no_args_is_help=True)  # fmt: skip
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)

FileArgument = Annotated[Path, typer.Argument(help="A fences file (YAML).", show_default=False)]
CodeArgument = Annotated[str, typer.Argument(help="The fence's code.", show_default=False)]
WarehouseOption = Annotated[Path | None, typer.Option(
    "--warehouse", help="DuckDB warehouse file with the cells table (default: warehouse.path).")]
TenantOption = Annotated[str | None, typer.Option(
    "--tenant", help="Tenant (default: geofence.tenant).")]  # fmt: skip
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _resolve(settings: Any, defs: list, warehouse: Path | None,
             tenant: str | None) -> tuple[list[DefinedFence], list[str]]:
    from jingxin.geofence.directory import CellIndex
    from jingxin.geofence.fences import resolve

    with read_warehouse(settings, warehouse) as wh:
        cells = CellIndex.from_warehouse(wh)
    return resolve(defs, cells, tenant=tenant or settings.geofence.tenant)


def _print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        console.print(Text.assemble(("warning: ", "yellow"), warning))


def _summary(fences: list[DefinedFence], title: str) -> None:
    table = Table("code", "name", "scenario", "cells", "hours", "dwell", "cap", "residents",
                  "template", "enabled", "version", title=title)  # fmt: skip
    for f in fences:
        table.add_row(f.code, Text(f.name), f.scenario, str(len(f.cells)), _hours(f),
                      f"{f.dwell_seconds}s", str(f.cap_per_day), f.residents, f.template,
                      "yes" if f.enabled else "no", str(f.version))  # fmt: skip
    console.print(table)


def _hours(fence: DefinedFence) -> str:
    from jingxin.geofence.fences import hours_text

    return ", ".join(hours_text(fence.hours)) or "all day"


@app.command("check")
def check_command(file: FileArgument, warehouse: WarehouseOption = None,
                  tenant: TenantOption = None) -> None:  # fmt: skip
    """Validate a fences file and resolve it against the cell table (nothing is saved)."""
    from jingxin.config import load_settings
    from jingxin.geofence.fences import load_fences

    settings = load_settings()
    defs = load_fences(file)
    fences, warnings = _resolve(settings, defs, warehouse, tenant)
    _summary(fences, f"{file}: {len(fences)} fence(s), all valid")
    _print_warnings(warnings)


@app.command("apply")
def apply_command(
    file: FileArgument,
    prune: Annotated[bool, typer.Option(
        "--prune", help="Also remove the tenants' fences the file does not name.")] = False,
    warehouse: WarehouseOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Save every fence of a file (all or none); unchanged fences keep their version."""
    from jingxin.geofence import registry
    from jingxin.geofence.fences import load_fences

    defs = load_fences(file)
    settings, store = settings_and_store()
    try:
        fences, warnings = _resolve(settings, defs, warehouse, tenant)
        warnings += _template_warnings(store, fences)
        report = registry.apply(store, fences, prune=prune)
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps({**report.to_json(), "warnings": warnings}, ensure_ascii=False,
                              indent=2))  # fmt: skip
        return
    console.print(f"{file}: {len(report.created)} created, {len(report.updated)} updated, "
                  f"{len(report.unchanged)} unchanged, {len(report.removed)} removed")
    for label in ("created", "updated", "removed"):
        if getattr(report, label):
            console.print(f"{label}: {', '.join(getattr(report, label))}")
    _print_warnings(warnings)


def _template_warnings(store: Any, fences: list[DefinedFence]) -> list[str]:
    """Fences whose template has no approved version yet, or needs variables they lack."""
    from jingxin.geofence.registry import template_warnings

    with store.transaction() as session:
        return template_warnings(session, fences)


# Which option sets which field of a definition (errors name the option).
_OPTIONS = {"name": "--name", "scenario": "--scenario", "cells": "--cells",
            "centre": "--centre", "radius_m": "--radius", "template": "--template",
            "hours": "--hours", "dwell": "--dwell", "cap_per_day": "--cap",
            "residents": "--residents", "segment": "--segment", "variables": "--variable",
            "sender": "--sender", "category": "--category", "validity_minutes": "--validity",
            "code": "CODE"}  # fmt: skip


@app.command("add")
def add_command(
    code: CodeArgument,
    name: Annotated[str, typer.Option("--name", help="What staff call the place.")],
    scenario: Annotated[str, typer.Option("--scenario", help="airport_departure, mall, ...")],
    template: Annotated[str, typer.Option("--template", help="Catalogue template code.")],
    cells: Annotated[str | None, typer.Option("--cells", help="Cell ids: a,b,c.")] = None,
    centre: Annotated[str | None, typer.Option("--centre", help="LAT,LON")] = None,
    radius: Annotated[float | None, typer.Option("--radius", help="Metres.")] = None,
    hours: Annotated[list[str] | None, typer.Option(
        "--hours", help="HH:MM-HH:MM (repeat for more; default all day).")] = None,
    dwell: Annotated[str, typer.Option("--dwell", help="e.g. 300, 90s, 5m.")] = "0",
    cap: Annotated[int, typer.Option("--cap", help="Offers per subscriber per day.")] = 1,
    residents: Annotated[str, typer.Option("--residents", help="once, repeat or skip.")] = "once",
    segment: Annotated[Path | None, typer.Option("--segment", help="Segment spec file.")] = None,
    variable: Annotated[list[str] | None, typer.Option(
        "--variable", help="k=v: a constant template variable (repeatable).")] = None,
    sender: Annotated[str | None, typer.Option("--sender", help="Service number.")] = None,
    category: Annotated[str, typer.Option("--category", help="marketing or notification.")]
    = "marketing",
    validity: Annotated[int, typer.Option("--validity", help="Offer validity, minutes.")] = 120,
    holdout: Annotated[str | None, typer.Option(
        "--holdout", help="Share held out to measure the offers: 0.05, 5% or none "
        "(default: [analytics] holdout for marketing).")] = None,
    warehouse: WarehouseOption = None,
    tenant: TenantOption = None,
) -> None:
    """Define one fence from options and save it."""
    from jingxin.geofence import registry

    raw: dict[str, Any] = {
        "code": code, "name": name, "scenario": scenario, "template": template,
        "hours": hours or [], "dwell": dwell, "cap_per_day": cap, "residents": residents,
        "variables": _variables(variable or []), "category": category,
        "validity_minutes": validity, "tenant": tenant}  # fmt: skip
    if cells is not None:
        raw["cells"] = cells
    if centre is not None and not _LAT_LON.match(centre):
        raise InputError(f"--centre: {centre!r} is not LAT,LON (e.g. 31.1946,121.3204)")
    if centre is not None or radius is not None:
        raw["centre"], raw["radius_m"] = centre, radius
    if segment is not None:
        raw["segment"] = str(segment)
    if sender is not None:
        raw["sender"] = sender
    if holdout is not None:
        raw["holdout"] = holdout
    definition = _definition(raw)
    settings, store = settings_and_store()
    try:
        (fence,), warnings = _resolve(settings, [definition], warehouse, tenant)
        warnings += _template_warnings(store, [fence])
        saved = registry.add(store, fence)
    finally:
        store.dispose()
    console.print(f"fence {saved.code} added ({saved.tenant_id}): {len(saved.cells)} cell(s)")
    _print_warnings(warnings)


_LAT_LON = re.compile(r"^\s*[-+]?\d+(\.\d+)?\s*,\s*[-+]?\d+(\.\d+)?\s*$")


def _variables(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--variable {item!r}: give NAME=VALUE")
        out[key.strip()] = value
    return out


def _definition(raw: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from jingxin.geofence.fences import FenceDef

    try:
        return FenceDef.model_validate(raw, context={"base_dir": Path.cwd()})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc, why = err["loc"], str(err["msg"]).removeprefix("Value error, ")
            if not loc:  # the fence as a whole: say it in options
                lines.append("give --cells a,b, or --centre LAT,LON and --radius M")
                continue
            lines.append(f"{_OPTIONS.get(str(loc[0]), str(loc[0]))}: {why}")
        raise InputError("\n".join(lines)) from None


@app.command("list")
def list_command(tenant: TenantOption = None, as_json: JsonOption = False) -> None:
    """The fences in the store (every tenant's unless --tenant)."""
    from jingxin.geofence import registry

    _, store = settings_and_store()
    try:
        fences = registry.list_fences(store, tenant=tenant)
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps([_fence_json(f) for f in fences], ensure_ascii=False, indent=2))
        return
    if not fences:
        console.print("no fences (define them with `jingxin fence apply FILE`)")
        return
    _summary(fences, f"fences: {len(fences)}")


def _fence_json(fence: DefinedFence) -> dict[str, Any]:
    return {"code": fence.code, "tenant": fence.tenant_id, "version": fence.version,
            "enabled": fence.enabled, "cells": list(fence.cells),
            "definition": dict(fence.definition)}  # fmt: skip


@app.command("show")
def show_command(
    code: CodeArgument,
    map_path: Annotated[Path | None, typer.Option(
        "--map", help="Where to write the map (default: var/geofence/<code>.png).")] = None,
    no_map: Annotated[bool, typer.Option("--no-map", help="Do not draw the map.")] = False,
    warehouse: WarehouseOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """A fence: its definition, its cells (lat, lon, district, kind) and a PNG map."""
    from jingxin.geofence import registry
    from jingxin.geofence.directory import CellIndex

    settings, store = settings_and_store()
    try:
        fence = registry.get(store, code, tenant or settings.geofence.tenant)
    finally:
        store.dispose()
    with read_warehouse(settings, warehouse) as wh:
        cells = CellIndex.from_warehouse(wh)
    drawn = None
    if not no_map:
        from jingxin.geofence.mapimage import draw

        target = map_path or settings.geofence_dir() / f"{fence.code}.png"
        try:
            drawn = draw(fence, cells, target)
        except InputError as exc:  # the cell table no longer has its cells: still show it
            _print_warnings([f"no map: {exc}"])
    rows = _cell_rows(fence, cells)
    if as_json:
        typer.echo(json.dumps({**_fence_json(fence), "cells": rows,
                               "map": str(drawn) if drawn else None}, ensure_ascii=False,
                              indent=2))  # fmt: skip
        return
    import yaml

    console.print(Text(f"fence {fence.code} (tenant {fence.tenant_id}, version {fence.version}, "
                       f"{'enabled' if fence.enabled else 'disabled'})"))
    console.print(Text(yaml.safe_dump(registry.export_entry(fence), allow_unicode=True,
                                      sort_keys=False, width=100)))  # fmt: skip
    table = Table("cell", "lat", "lon", "district", "kind", title=f"{len(rows)} cell(s)")
    for r in rows:
        table.add_row(r["cell"], _number(r["lat"]), _number(r["lon"]), Text(r["district"] or "-"),
                      r["kind"] or "-")  # fmt: skip
    console.print(table)
    if drawn:
        console.print(Text(f"map: {drawn}"))


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def _cell_rows(fence: DefinedFence, cells: Any) -> list[dict[str, Any]]:
    """Each cell of the fence with what the cell table says of it (None: not in it)."""
    return cells.places(list(fence.cells))


@app.command("export")
def export_command(
    out: Annotated[Path | None, typer.Option("--out", help="Write here (default: stdout).")]
    = None,
    tenant: TenantOption = None,
) -> None:
    """The stored fences as a fences file (what `apply` reads back)."""
    from jingxin.geofence import registry

    _, store = settings_and_store()
    try:
        text = registry.export_yaml(registry.list_fences(store, tenant=tenant))
    finally:
        store.dispose()
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(Text(f"wrote {out}"))


def _enabled(code: str, tenant: str | None, enabled: bool) -> None:
    from jingxin.geofence import registry

    settings, store = settings_and_store()
    try:
        fence = registry.set_enabled(store, code, enabled,
                                     tenant=tenant or settings.geofence.tenant)  # fmt: skip
    finally:
        store.dispose()
    state = "enabled" if fence.enabled else "disabled"
    console.print(Text(f"fence {fence.code}: {state} (version {fence.version})"))


@app.command("enable")
def enable_command(code: CodeArgument, tenant: TenantOption = None) -> None:
    """Let a fence trigger offers again."""
    _enabled(code, tenant, True)


@app.command("disable")
def disable_command(code: CodeArgument, tenant: TenantOption = None) -> None:
    """Stop a fence's offers (its definition is kept)."""
    _enabled(code, tenant, False)


@app.command("remove")
def remove_command(code: CodeArgument, tenant: TenantOption = None) -> None:
    """Delete a fence from the store."""
    from jingxin.geofence import registry

    settings, store = settings_and_store()
    try:
        registry.remove(store, code, tenant=tenant or settings.geofence.tenant)
    finally:
        store.dispose()
    console.print(Text(f"fence {code}: removed"))


def register(root: typer.Typer) -> None:
    from jingxin.cli import fence_data, fence_report, fence_run, fence_stream

    fence_run.register(app)
    fence_report.register(app)
    fence_data.register(app)
    fence_stream.register(app)
    root.add_typer(app, name="fence")
