"""``jingxin demo``: the README's main job — the platform end to end in a couple of minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    subscribers: Annotated[int, typer.Option(
        "--subscribers", "-n", min=1000,
        help="Size of the synthetic operator (at least 1,000: the hall's act needs a "
        "few prepaid subscribers of each kind).")] = 100_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 7,
    root: Annotated[Path, typer.Option("--dir", help="Workspace (wiped first).")] = Path("var/demo"),
    serve: Annotated[bool | None, typer.Option(
        "--serve/--no-serve", help="Keep the console and API running at the end until Ctrl-C "
        "(default: when the output is a terminal).", show_default=False)] = None,
) -> None:
    """Run the whole platform end to end on embedded defaults (SQLite, DuckDB, simulator)."""
    import sys

    from jingxin.demo import run_demo

    run_demo(root=root, subscribers=subscribers, seed=seed,
             serve=sys.stdout.isatty() if serve is None else serve)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
