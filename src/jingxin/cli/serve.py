"""``jingxin serve [--host H] [--port P]``: the web application (short links; later the API
and the console) under uvicorn, one process.

The listening socket is bound here, before uvicorn starts, so the address printed is the
real one (``--port 0`` takes any free port) and a port in use is one clear line. uvicorn
runs with uvloop and httptools when they are installed, without its access log: that log
would write every client's address and every token, and it costs more than the redirect.
Ctrl-C or SIGTERM shut down gracefully: the clicks still pending are written first.
"""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from jingxin.errors import ConfigError


def serve_command(
    host: Annotated[str | None, typer.Option(
        "--host", help="Address to listen on (default: serve.host).")] = None,
    port: Annotated[int | None, typer.Option(
        "--port", min=0, max=65535, help="Port (default: serve.port; 0: any free port).")]
    = None,
) -> None:
    """Serve the short-link redirect (and /healthz) over HTTP."""
    import uvicorn

    from jingxin.api import check_serving, create_app
    from jingxin.config import load_settings
    from jingxin.data.store import open_store

    settings = load_settings()
    check_serving(settings)  # before touching the store
    host = host or settings.serve.host
    port = settings.serve.port if port is None else port
    listener = listen(host, port)
    store = None
    try:
        store = open_store(settings.store.url, upgrade=True)
        app = create_app(settings, store=store)
        bound = listener.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        print(f"jingxin serve: listening on http://{shown}:{bound} (short links "
              f"https://{settings.analytics.link_domain}/<token>; Ctrl-C stops)", flush=True)
        config = uvicorn.Config(app, loop="auto", http="auto", lifespan="on", access_log=False,
                                log_config=None, server_header=False,
                                timeout_graceful_shutdown=10)  # fmt: skip
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()
        if store is not None:
            store.dispose()


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, or a ConfigError naming the address."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host!r} (--host or [serve] host): "
                          f"{exc.strerror or exc}") from exc  # fmt: skip
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} (--host/--port or [serve]): "
                          f"{exc.strerror or exc}") from exc  # fmt: skip
    return sock


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
