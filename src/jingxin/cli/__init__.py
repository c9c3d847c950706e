"""The ``jingxin`` command.

Each command group lives in its own module here and adds itself to the app through
``register(app)``; this module only assembles them and turns our errors into clean
messages with a non-zero exit code.
"""

from __future__ import annotations

import functools
import importlib
import sys
from typing import Any

import typer
import typer.main
from rich.console import Console
from rich.text import Text

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
    "jingxin.cli.contact",
    "jingxin.cli.dispatch",
    "jingxin.cli.inbox",
    "jingxin.cli.hall",
    "jingxin.cli.journeys",
    "jingxin.cli.retention",
    "jingxin.cli.probe",
    "jingxin.cli.scheduler",
    "jingxin.cli.flows",
    "jingxin.cli.fence",
    "jingxin.cli.experiment",
    "jingxin.cli.events",
    "jingxin.cli.simulate",
    "jingxin.cli.sendtime",
    "jingxin.cli.report",
    "jingxin.cli.channels",
    "jingxin.cli.serve",
    "jingxin.cli.db",
    "jingxin.cli.access",
    "jingxin.cli.callbacks",
    "jingxin.cli.bench",
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


@functools.cache
def command() -> Any:
    """The click command of :data:`app`, built once per process. Typer builds the whole
    tree (every command's signature and type hints, ~0.3 s) each time the app is called;
    the demo runs a hundred commands in one process, so it calls this instead."""
    return typer.main.get_command(app)


err_console = Console(stderr=True, soft_wrap=True)  # one error, one line: never wrapped


def error_line(exc: BaseException) -> Text:
    """``error: <message>``: the message as plain text, so a ``[warehouse]`` or ``[/]`` in
    it is printed as written, not read as rich markup."""
    return Text.assemble(("error:", "bold red"), " ", str(exc))


def main() -> None:
    """Entry point of the console script.

    Click (in standalone mode) handles usage errors, ``typer.Exit`` codes and Ctrl-C; our
    own errors arrive here and become one clean line and exit code 2.
    """
    _configure_logging()
    try:
        _check_environment()
        app()
    except JingxinError as exc:
        err_console.print(error_line(exc), highlight=False)
        sys.exit(2)


def _check_environment() -> None:
    """Stop every command, not only those that read the settings, on a mistyped
    ``JINGXIN_*`` variable or a ``JINGXIN_CONFIG`` that names no readable file (an option
    like ``--url`` must not hide a setting that would silently never apply)."""
    import os

    from jingxin.config import check_environment, config_file

    check_environment(os.environ)
    config_file(os.environ)


def _configure_logging() -> None:
    """Every command logs as ``[log]`` says (text or JSON, numbers masked).

    Done here, in the console script, not in an app callback: tests that call ``app``
    in-process keep the logging set-up of their test runner.
    """
    from jingxin.logs import configure_from_settings

    configure_from_settings()
