"""``jingxin bench``: list and run the benchmarks that ship with the product.

Every module in the :mod:`jingxin.bench` package is imported here. A module registers
plain benchmarks with :func:`jingxin.bench.benchmark` (run as ``jingxin bench NAME
[--scale N]``) and may add load tools with options of their own by defining
``register_commands(bench_app)`` (``jingxin bench smpp --host ...``). Bench modules keep
their heavy imports inside functions, so that the ``jingxin`` command starts fast.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer
from rich.console import Console

from jingxin import bench

bench_app = typer.Typer(
    help="Run a benchmark; its figures end as one JSON line. Without a name: list them.",
    invoke_without_command=True,
)
console = Console()


@bench_app.callback()
def bench_main(
    ctx: typer.Context,
    list_: bool = typer.Option(False, "--list", help="Name the benchmarks and exit."),
) -> None:
    if ctx.invoked_subcommand is None or list_:
        for cmd in sorted(bench_app.registered_commands, key=lambda c: c.name or ""):
            doc = (cmd.callback.__doc__ or "").strip().splitlines()
            console.print(f"{cmd.name:<22} {doc[0] if doc else ''}", highlight=False)
        raise typer.Exit(0)


def _add_registered(entry: bench.Benchmark) -> None:
    def run(
        scale: int = typer.Option(entry.default_scale, "--scale", help="Size of the run."),
    ) -> None:
        figures = entry.run(scale)
        print(bench.emit({"benchmark": entry.name, "scale": scale, **figures}), flush=True)

    run.__doc__ = f"{entry.summary} (default --scale {entry.default_scale})"
    bench_app.command(entry.name)(run)


def register(app: typer.Typer) -> None:
    for info in pkgutil.iter_modules(bench.__path__, prefix="jingxin.bench."):
        module = importlib.import_module(info.name)
        hook = getattr(module, "register_commands", None)
        if hook is not None:
            hook(bench_app)
    for entry in sorted(bench.REGISTRY.values(), key=lambda e: e.name):
        _add_registered(entry)
    app.add_typer(bench_app, name="bench")
