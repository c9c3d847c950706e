"""``jingxin simulate``: simulated subscribers for the demo and tests - a SIMULATION, not
real behaviour (:mod:`jingxin.smsc.subscribers`).

- ``jingxin simulate responses (--campaign ID | --experiment E) [--seed N]
  [--clicks-via URL] [--mo-via URL] [--warehouse FILE] [--json]``: the experiment's
  reached subscribers click, reply, unsubscribe, complain and order with probabilities
  that follow the offer's relevance to their warehouse features and the hour it arrived;
  held-out ones order at the base rate. Without ``--mo-via`` the MO are stored and handled
  at once, as ``jingxin inbox process`` would; without ``--clicks-via`` clicks are recorded
  directly. Running it again with the same seed does nothing new.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from jingxin.cli.arguments import console

app = typer.Typer(help="Simulated subscribers (a simulation, not real behaviour).",
                  no_args_is_help=True)  # fmt: skip

LABELS = {"mo_handled": "MO handled by the inbox",
          "mo_pending": "MO waiting for the inbox (jingxin inbox process)"}
ACTIONS = (("clicked", "clicked"), ("replied", "replied"), ("opted_out", "opted out"),
           ("complained", "complained"), ("ordered", "ordered"))  # fmt: skip


@app.command("responses")
def responses_command(
    campaign: Annotated[int | None, typer.Option(
        "--campaign", min=1, help="The campaign's number (experiment campaign:ID).")] = None,
    experiment: Annotated[str | None, typer.Option(
        "--experiment", help="The experiment: campaign:12, journey:<flow>, fence:<code>.")]
    = None,
    seed: Annotated[int, typer.Option("--seed", help="The simulated world's seed.")] = 0,
    clicks_via: Annotated[str | None, typer.Option(
        "--clicks-via", help="Click through this short-link server (jingxin serve), e.g. "
        "http://127.0.0.1:8080; default: record the clicks directly.")] = None,
    mo_via: Annotated[str | None, typer.Option(
        "--mo-via", help="Send MO through the simulator's endpoint, e.g. "
        "http://127.0.0.1:8775 (a worker must be running); default: store and handle them "
        "here.")] = None,
    warehouse: Annotated[Path | None, typer.Option(
        "--warehouse", help="A DuckDB warehouse file (default: the settings' "
        "warehouse.path).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Let an experiment's subscribers react to its messages (a simulation)."""
    from jingxin.cli.arguments import read_warehouse, settings_and_store
    from jingxin.smsc.subscribers import respond

    if (campaign is None) == (experiment is None):
        raise typer.BadParameter("give --campaign ID or --experiment E (one of them)")
    name = f"campaign:{campaign}" if campaign is not None else str(experiment).strip()
    settings, store = settings_and_store()
    try:
        with read_warehouse(settings, warehouse) as wh:
            counts = respond(store, wh, experiment=name, seed=seed, click_via=clicks_via,
                             mo_via=mo_via, settings=settings)  # fmt: skip
    finally:
        store.dispose()
    if as_json:
        console.print_json(json.dumps({"experiment": name, "simulation": True, **counts}))
        return
    for line in summary(name, counts):
        console.print(line, markup=False)


def summary(experiment: str, counts: Counter[str]) -> list[str]:
    """The lines printed: who there was, what they did now, then everything else."""
    from jingxin.smsc.subscribers import NOTICE

    head = (f"{NOTICE}: {experiment}: {counts['assigned']:,} subscribers, "
            f"{counts['reached']:,} reached, {counts['held_out']:,} held out")
    lines = [head]
    did = ", ".join(f"{label} {counts[key]:,}" for key, label in ACTIONS)
    if counts["ordered_unreached"]:
        did += f" ({counts['ordered_unreached']:,} of the orders without a message)"
    lines.append(f"  {did}")
    shown = {"assigned", "reached", "held_out", "ordered_unreached", *dict(ACTIONS)}
    rest = sorted((k, v) for k, v in counts.items() if k not in shown and v)
    labels = dict(ACTIONS)
    already = [f"{labels.get(k[8:], k[8:])} {v:,}" for k, v in rest if k.startswith("already:")]
    if already:
        lines.append(f"  already done by an earlier run: {', '.join(already)}")
    other = [f"{LABELS.get(k, k)} {v:,}" for k, v in rest if not k.startswith("already:")]
    if other:
        lines.append(f"  also: {', '.join(other)}")
    return lines


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="simulate")
