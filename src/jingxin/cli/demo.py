"""``jingxin demo``: the README's main job — the platform end to end in a couple of minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    subscribers: Annotated[int, typer.Option("--subscribers", "-n",
                                             help="Size of the synthetic operator.")] = 100_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 7,
    root: Annotated[Path, typer.Option("--dir", help="Workspace (wiped first).")] = Path("var/demo"),
) -> None:
    """Run the whole platform end to end on embedded defaults (SQLite, DuckDB, simulator)."""
    from jingxin.demo import run_demo

    run_demo(root=root, subscribers=subscribers, seed=seed)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
