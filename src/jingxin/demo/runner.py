"""The demo's machinery: a workspace of its own, real ``jingxin`` commands run in-process
and printed as a user would type them, and the simulator in a child process.

The demo never touches the user's own ``var/``: it points the settings (through the
``JINGXIN_*`` environment) at ``var/demo/`` for as long as it runs.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from jingxin.errors import JingxinError


class DemoError(JingxinError):
    """A demo step failed; says which command."""


@dataclass
class Workspace:
    """Where the demo keeps its files, and the console it talks to."""

    root: Path
    console: Console = field(default_factory=lambda: Console(highlight=False))
    step: int = 0
    steps: int = 0
    timings: list[tuple[str, float]] = field(default_factory=list)

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.root / 'jingxin.db'}"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    def path(self, name: str) -> Path:
        return self.root / name

    def heading(self, title: str, why: str) -> None:
        self.step += 1
        self.console.print()
        self.console.print(
            Panel(f"[bold]{title}[/]\n{why}", title=f"step {self.step}/{self.steps}",
                  title_align="left", border_style="cyan")
        )

    def run(self, *args: str, expect: int = 0) -> None:
        """Run one ``jingxin`` command in this process, as the user would type it;
        ``expect`` is the exit code the step is meant to show (a review that blocks: 1)."""
        from jingxin.cli import command

        self.console.print(f"[bold green]$ jingxin {shlex.join(args)}[/]")
        began = time.perf_counter()
        try:
            code = command()(list(args), standalone_mode=False, prog_name="jingxin")
        except JingxinError as exc:
            raise DemoError(f"`jingxin {shlex.join(args)}` failed: {exc}") from exc
        except SystemExit as exc:  # a command that exits on its own
            code = exc.code
        code = code if isinstance(code, int) else 0
        if code != expect:
            raise DemoError(f"`jingxin {shlex.join(args)}` exited with {code}, not {expect}")
        if expect:
            self.console.print(f"[dim](exit code {code}, as meant)[/]")
        self.timings.append((" ".join(args[:2]), time.perf_counter() - began))


@contextmanager
def demo_environment(workspace: Workspace, extra: dict[str, str]) -> Iterator[None]:
    """Point the settings at the demo's workspace for as long as the demo runs."""
    wanted = {
        "JINGXIN_STORE__URL": workspace.store_url,
        "JINGXIN_WAREHOUSE__PATH": str(workspace.warehouse),
        "JINGXIN_HOME": str(workspace.root),  # models and other var/ files
        **extra,
    }
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait_listening(port: int, process: subprocess.Popen) -> None:
    from jingxin.smsc.spawn import wait_listening

    try:
        wait_listening(port, process)
    except RuntimeError as exc:
        raise DemoError(str(exc)) from None


@contextmanager
def simulator_process(workspace: Workspace) -> Iterator[dict[str, str]]:
    """Start ``python -m jingxin.smsc`` on free loopback ports; yield the channel settings
    (as ``JINGXIN_*`` variables) that point at it."""
    from jingxin.smsc.spawn import free_port, stop

    smpp, cmpp, http = free_port(), free_port(), free_port()
    log = open(workspace.path("smsc.log"), "w", encoding="utf-8")  # noqa: SIM115
    command = [sys.executable, "-m", "jingxin.smsc", "--smpp-port", str(smpp),
               "--cmpp-port", str(cmpp), "--http-port", str(http),
               "--receipt-delay", "0.2",
               # The default channels' credentials, so both binds are really checked.
               "--credentials", "jingxin:secret", "--credentials", "901234:secret", "--status-mix", "DELIVRD=0.93,UNDELIV=0.05,EXPIRED=0.02"]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        for port in (smpp, cmpp, http):
            _wait_listening(port, process)
        channels = [
            {"name": "sim-smpp", "protocol": "smpp", "port": smpp},
            {"name": "sim-cmpp", "protocol": "cmpp", "port": cmpp, "system_id": "901234",
             "source_addr": "1069012345", "window": 16},
        ]
        from jingxin.demo.steps import ROUTES

        yield {
            "JINGXIN_CHANNELS": json.dumps(channels),
            "JINGXIN_DISPATCH__ROUTES": json.dumps(ROUTES),
            "JINGXIN_SMSC__SMPP_PORT": str(smpp),
            "JINGXIN_SMSC__CMPP_PORT": str(cmpp),
            "JINGXIN_SMSC__HTTP_PORT": str(http),
        }
    finally:
        stop(process)
        log.close()
