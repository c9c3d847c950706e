"""``jingxin bench send-api`` at a tiny size: the load client as a process of its own
against the API under uvicorn (here in a thread of the test, on a copy of the migrated
store, so the test takes seconds), every accepted request in the outbox, the baseline
measured in the same run. The command itself is checked to be registered."""

from __future__ import annotations

import shutil
import threading
import time
from contextlib import contextmanager


@contextmanager
def served_in_a_thread(url, _folder):
    import uvicorn

    from jingxin.api import create_app
    from jingxin.cli.serve import listen
    from jingxin.config import Settings, StoreSettings
    from jingxin.data.store import open_store

    store = open_store(url)
    app = create_app(Settings(store=StoreSettings(url=url)), store=store)
    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", access_log=False,
                                           log_config=None))  # fmt: skip
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1], None
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        store.dispose()


def test_send_api_bench_at_a_tiny_size(tmp_path, migrated_templates):
    from jingxin.bench.send_api import run_send_api

    path = tmp_path / "jingxin.db"
    shutil.copyfile(migrated_templates["sqlite"], path)
    figures = run_send_api(requests=60, concurrency=4, store_url=f"sqlite:///{path}",
                           serve=served_in_a_thread)  # fmt: skip
    assert figures["statuses"] == {"202": 60} and figures["errors"] == 0
    assert figures["accepted"] == figures["in_outbox"] == 60 and figures["outbox_matches"]
    assert figures["req_per_s"] > 0 and figures["p99_ms"] is not None
    assert figures["baseline_deliver_one"]["messages"] == 60


def test_send_api_is_a_bench_command():
    from typer.testing import CliRunner

    from jingxin.cli import app

    result = CliRunner().invoke(app, ["bench", "--list"])
    assert result.exit_code == 0 and "send-api" in result.output
