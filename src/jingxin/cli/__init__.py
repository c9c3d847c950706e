"""The ``jingxin`` command.

Each command group lives in its own module here and adds itself to the app through
``register(app)``; this module only assembles them and turns our errors into clean
messages with a non-zero exit code.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from jingxin.errors import JingxinError

app = typer.Typer(
    name="jingxin",
    help="jingxin (精信): precision SMS for telecom operators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# One module per command group; each exposes register(app).
COMMAND_MODULES = (
    "jingxin.cli.demo",
    "jingxin.cli.synth",
    "jingxin.cli.data",
    "jingxin.cli.audience",
    "jingxin.cli.content",
    "jingxin.cli.policy",
    "jingxin.cli.dispatch",
    "jingxin.cli.channels",
    "jingxin.cli.db",
    "jingxin.cli.bench",
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)

err_console = Console(stderr=True)


def main() -> None:
    """Entry point of the console script.

    Click (in standalone mode) handles usage errors, ``typer.Exit`` codes and Ctrl-C; our
    own errors arrive here and become one clean line and exit code 2.
    """
    _configure_logging()
    try:
        app()
    except JingxinError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)


def _configure_logging() -> None:
    """Every command logs as ``[log]`` says (text or JSON, numbers masked).

    Done here, in the console script, not in an app callback: tests that call ``app``
    in-process keep the logging set-up of their test runner.
    """
    from jingxin.logs import configure_from_settings

    configure_from_settings()
