"""The demo's API step: an admin for the console, an API key for an enterprise's system,
then the API over real HTTP - an OTP sent, the same request replayed, a batch with a
wrong number refused whole, the message's status after the worker sent it, the dashboard
of a logged-in user - and, when the demo serves at the end, the console's address.

It runs inside the simulator's environment (the worker sends through it). The server is
the application ``jingxin serve`` runs, on a free loopback port in a thread of this
process; :class:`DemoServer` stops it.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from jingxin.demo.runner import DemoError, Workspace
from jingxin.errors import ConfigError

ADMIN = "admin"
OTP_NUMBER = "+8613912340000"


@dataclass
class DemoServer:
    """The web application on a loopback port, in a thread."""

    url: str
    server: Any
    thread: threading.Thread
    store: Any

    def stop(self) -> None:
        """Stop serving (once; a second call does nothing)."""
        if self.server.should_exit:
            return
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.store.dispose()

    def wait(self) -> None:
        """Serve until Ctrl-C."""
        try:
            while self.thread.is_alive():
                self.thread.join(timeout=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()


def start_server() -> DemoServer:
    """``jingxin serve``'s application on 127.0.0.1 (``[serve] port`` if it is free, else any
    free port), in a thread."""
    import uvicorn

    from jingxin.api import create_app
    from jingxin.cli.serve import listen
    from jingxin.config import load_settings
    from jingxin.data.store import open_store

    settings = load_settings()
    try:  # the configured port (8080) when it is free, so the address is the usual one
        listener = listen("127.0.0.1", settings.serve.port)
    except ConfigError:
        listener = listen("127.0.0.1", 0)
    store = open_store(settings.store.url, upgrade=True)
    app = create_app(settings, store=store)
    config = uvicorn.Config(app, lifespan="on", access_log=False, log_config=None,
                            server_header=False, timeout_graceful_shutdown=5)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]},
                              name="demo-serve", daemon=True)  # fmt: skip
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise DemoError("the web application did not start")
        time.sleep(0.02)
    return DemoServer(url=f"http://127.0.0.1:{listener.getsockname()[1]}", server=server,
                      thread=thread, store=store)  # fmt: skip


def _stdin(text: str) -> contextlib.AbstractContextManager[Any]:
    @contextlib.contextmanager
    def swapped() -> Any:
        saved = sys.stdin
        sys.stdin = io.StringIO(text)
        try:
            yield
        finally:
            sys.stdin = saved

    return swapped()


def _captured(ws: Workspace, *args: str) -> str:
    """Run a command and return what it printed on standard output (also shown)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ws.run(*args)
    printed = out.getvalue()
    ws.console.print(printed.rstrip(), highlight=False, markup=False)
    return printed


def _show(ws: Workspace, method: str, path: str, response: Any, *,
          keep: tuple[str, ...] = ()) -> dict[str, Any]:
    body = response.json() if response.content else {}
    shown = {key: body[key] for key in keep if key in body} if keep else body
    text = json.dumps(shown, ensure_ascii=False)
    if len(text) > 300:
        text = text[:297] + "..."
    ws.console.print(f"[bold cyan]{method} {path}[/] → {response.status_code} {text}",
                     highlight=False, soft_wrap=True)  # fmt: skip
    return body


def api(ws: Workspace) -> tuple[DemoServer, str]:
    """Run the API step; returns the running server and the admin's password."""
    import httpx

    ws.heading(
        "API and console: the same functions over HTTP",
        "An admin for the web console and an API key for an enterprise's system; then, over "
        "real HTTP, an OTP is sent, replayed with its idempotency key (the same message), a "
        "batch with one wrong number is refused whole, and the message's status follows the "
        "worker; a logged-in user reads the dashboard.",
    )
    password = secrets.token_urlsafe(9)
    with _stdin(password + "\n"):
        ws.run("users", "add", ADMIN, "--role", "admin", "--password-stdin")
    printed = _captured(ws, "keys", "create", "--name", "demo CRM", "--role", "api-client")
    key = printed.strip().splitlines()[-1]  # the key is printed alone, last
    ws.run("tenants", "list")
    server = start_server()
    ws.console.print(f"[dim]the web application is listening on {server.url}[/]")
    try:
        with httpx.Client(base_url=server.url, timeout=10.0,
                          headers={"Authorization": f"Bearer {key}"}) as client:  # fmt: skip
            otp = {"msisdn": OTP_NUMBER, "category": "otp", "template": "otp.login",
                   "variables": {"code": "386512", "minutes": "5"},
                   "idempotency_key": "login-386512"}  # fmt: skip
            sent = _show(ws, "POST", "/api/v1/send", client.post("/api/v1/send", json=otp))
            _show(ws, "POST", "/api/v1/send (again)", client.post("/api/v1/send", json=otp),
                  keep=("message_id", "status"))  # fmt: skip
            batch = {"messages": [dict(otp, idempotency_key="b-1", msisdn="+8613912340001"),
                                  dict(otp, idempotency_key="b-2", msisdn="12345")]}  # fmt: skip
            _show(ws, "POST", "/api/v1/send/batch",
                  client.post("/api/v1/send/batch", json=batch))  # fmt: skip
            message_id = sent.get("message_id")
            if message_id is None:
                raise DemoError(f"the send API did not queue the OTP: {sent}")
            ws.run("worker", "--once")
            _show(ws, "GET", f"/api/v1/messages/{message_id}",
                  client.get(f"/api/v1/messages/{message_id}"),
                  keep=("message_id", "status", "parts", "delivered_at"))  # fmt: skip
        with httpx.Client(base_url=server.url, timeout=10.0) as browser:
            login = browser.post("/api/v1/auth/login",
                                 json={"username": ADMIN, "password": password})  # fmt: skip
            _show(ws, "POST", "/api/v1/auth/login", login, keep=("user",))
            _show(ws, "GET", "/api/v1/dashboard", browser.get("/api/v1/dashboard"))
    except BaseException:
        server.stop()
        raise
    return server, password
