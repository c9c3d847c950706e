"""The worker's MO handlers in a process of their own (``[inbox] handler_mode``).

A worker's event loop (reading and acknowledging PDUs, submitting, receipts), its MO
store lane and its handler lane are Python threads sharing one interpreter lock. Under
load the handler lane, which waits for PostgreSQL a dozen times a batch, waits for the
lock again after each answer: the replies queue up behind the campaign's PDUs. Here the
handlers run in a child process with its own interpreter, store connection, registry and
context, built from the same settings; the worker's handler lane only passes it the ids it
stored (or asks it for whatever is pending) over a pipe and waits for the answer, so the
lane keeps its order and its back-pressure.

Nothing about the way back's guarantees changes: the child reads only committed rows, the
handlers are idempotent and run at least once (a sweep re-runs what has no outcome). If
the child dies mid-batch, the call raises, the worker counts a handler error and starts a
new child on the next call; the batch's MO are still pending and the next sweep (or the
next run that is behind) answers them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from jingxin.errors import JingxinError

log = logging.getLogger("jingxin.dispatch.worker")


class HandlerProcessError(JingxinError):
    """The handler process failed a call (its error, or it died)."""


def _die_with(parent: int) -> None:
    """Linux: the kernel kills this process when the worker dies, even by kill -9 - a
    handler batch must not go on after its worker is gone, while a new worker's handlers
    answer the same MO. Elsewhere the pipe's end stops it after the batch in hand."""
    if sys.platform.startswith("linux"):
        import ctypes

        # prctl(PR_SET_PDEATHSIG, SIGKILL): no library wraps it; ctypes reaches libc's.
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)  # the worker died before the line above took effect


def _serve(settings: Any, store_url: str, limit: int, most: int, conn: Any, parent: int) -> None:
    """The child: build the runner once, then answer calls until told to stop."""
    _die_with(parent)
    # Ctrl-C or a service manager's TERM stops the worker, which then stops us (or the
    # kernel does, above) - not in the middle of the last batch the worker asks for.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from jingxin.data.store import open_store
    from jingxin.dispatch.bootstrap import freeze_heap, mo_handlers, warm_statements
    from jingxin.logs import configure

    configure(settings.log)
    store = open_store(store_url)
    try:
        try:
            runner = mo_handlers(settings, store, limit=limit, most=most)
        except Exception as exc:  # noqa: BLE001 - the worker reports it, as in thread mode
            conn.send(("failed", _portable(exc)))
            return
        warm_statements(runner)
        freeze_heap()
        conn.send(("ready", None))
        while True:
            try:
                call = conn.recv()
            except EOFError:
                return  # the worker went away
            if call is None:
                return
            kind, ids = call
            try:
                answer = runner.handle_ids(ids) if kind == "ids" else runner()
                conn.send(("ok", answer))
            except Exception as exc:  # noqa: BLE001 - the worker decides; the child lives on
                log.exception("MO handlers failed in the handler process")
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        store.dispose()


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives the pipe (jingxin's own errors do), else its text."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any error that does not pickle
        return HandlerProcessError(f"{type(exc).__name__}: {exc}")


class HandlerProcess:
    """:class:`~jingxin.dispatch.bootstrap.MoHandlerRunner`'s calls, answered by a child
    process: ``__call__`` (whatever is pending; true when it stopped at its limit) and
    :meth:`handle_ids`. :meth:`start` starts it (the worker does when it is built; a call
    starts it too, again after it died); :meth:`close` stops it."""

    def __init__(self, settings: Any, *, store_url: str, limit: int = 64, most: int = 256,
                 start_timeout: float = 60.0) -> None:  # fmt: skip
        self.settings, self.store_url = settings, store_url
        self.limit, self.most, self.start_timeout = limit, most, start_timeout
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: Any = None

    def __call__(self) -> bool:
        return bool(self._ask(("pending", None)))

    def handle_ids(self, ids: Sequence[int]) -> None:
        self._ask(("ids", list(ids)))

    def start(self) -> None:
        """Start the child and wait until its runner is built (imports, the number parser's
        data, the hall menu): the first MO must not pay for that."""
        if self._spawn():
            self._await_ready()

    def _spawn(self) -> bool:
        """Start the child unless it is alive; true when it was started (and is not ready
        yet: :meth:`_await_ready`)."""
        if self._process is not None:
            if self._process.is_alive():
                return False
            log.warning("the MO handler process died (exit code %s); starting a new one",
                        self._process.exitcode)  # fmt: skip
        self.close()
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_serve,
            args=(self.settings, self.store_url, self.limit, self.most, child, os.getpid()),
            name="jingxin-mo-handlers", daemon=True)  # fmt: skip
        process.start()
        child.close()
        self._process, self._conn = process, parent
        return True

    def _await_ready(self) -> None:
        parent = self._conn
        if not parent.poll(self.start_timeout):
            self.close()
            raise HandlerProcessError(f"the MO handler process did not start within {self.start_timeout:.0f} s")
        kind, detail = self._receive()
        if kind != "ready":
            self.close()
            if isinstance(detail, JingxinError):
                raise detail  # a bad setting or menu reads as it does in thread mode
            raise HandlerProcessError(f"the MO handler process did not start: {detail}")

    def close(self) -> None:
        """Ask the child to stop, then make sure it has."""
        process, conn, self._process, self._conn = self._process, self._conn, None, None
        if conn is not None:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
            conn.close()
        if process is not None:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()

    def _ask(self, call: tuple[str, Any]) -> Any:
        self._begin(call)
        return self._end()

    def _begin(self, call: tuple[str, Any]) -> None:
        """Hand ``call`` to the child (:meth:`_end` waits for its answer)."""
        self.start()
        try:
            self._send(call)
        except HandlerProcessError:
            self.close()  # a new child on the next call; the MO stay pending meanwhile
            raise

    def _end(self) -> Any:
        try:
            kind, answer = self._receive()
        except HandlerProcessError:
            self.close()
            raise
        if kind == "error":
            raise HandlerProcessError(f"MO handlers failed: {answer}")
        return answer

    def _send(self, call: tuple[str, Any]) -> None:
        """Hand ``call`` to the child. A pipe closed on us means the child died after the
        last call, its exit not yet finished when :meth:`start` looked (a killed child
        closes its end before it can be reaped): the call never reached it, so a new child
        takes it - once; a second failure is the child's death, as in :meth:`_receive`."""
        try:
            self._conn.send(call)
            return
        except OSError:
            log.warning("the MO handler process had died; starting a new one")
        self.close()
        self.start()
        try:
            self._conn.send(call)
        except OSError as exc:
            raise HandlerProcessError("the MO handler process died as it started") from exc

    def _receive(self) -> tuple[str, Any]:
        try:
            return self._conn.recv()
        except (EOFError, OSError) as exc:
            code = self._process.exitcode if self._process is not None else None
            raise HandlerProcessError(f"the MO handler process died (exit code {code})") from exc


class HandlerProcesses:
    """Several :class:`HandlerProcess` children (``[inbox] handler_processes``), so one
    worker answers a batch of MO on several cores: a child spends half its time waiting
    for PostgreSQL (and for a core), and one child was the way back's limit - about 1,000
    hall MO/s from a backlog, with most of the machine idle (BENCHMARKS.md).

    :meth:`handle_split` answers groups of MO ids at once, a group a child; the handler
    lane makes the groups by sender (:func:`by_sender`), so one number's MO are answered
    by one child, in order - its ``KT`` before its ``Y`` - and two children never write
    one number's rows (its session, its ledger, its opt-out) at the same time. Each
    batch waits for every child, so the next batch sees what this one wrote. Everything
    else - whatever is pending (a sweep, a lane that is behind), a small batch - goes to
    the first child, as with one. Nothing about the guarantees changes: the children are
    as several workers' handler lanes are to each other (idempotent, at least once, an
    outcome per MO)."""

    def __init__(self, children: Sequence[HandlerProcess]) -> None:
        if not children:
            raise ValueError("HandlerProcesses needs at least one child")
        self.children = list(children)

    def __call__(self) -> bool:
        return self.children[0]()

    def handle_ids(self, ids: Sequence[int]) -> None:
        self.children[0].handle_ids(ids)

    def handle_split(self, groups: Sequence[Sequence[int]]) -> None:
        """Answer each non-empty group of MO ids in a child of its own, all at once; when
        every child has answered, raise the first failure (the others' MO are answered)."""
        asked = []
        failure: Exception | None = None
        for child, ids in zip(self.children, groups, strict=False):
            if ids:
                try:
                    child._begin(("ids", list(ids)))
                    asked.append(child)
                except HandlerProcessError as exc:
                    failure = failure or exc
        for child in asked:
            try:
                child._end()
            except HandlerProcessError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def start(self) -> None:
        """Start the children side by side, then wait for each: a restarted worker waits
        for one child's start-up (imports, the hall menu: seconds on a slow machine), not
        for the sum of them - a crash test's resends expired while two started in turn."""
        started = [child for child in self.children if child._spawn()]
        try:
            for child in started:
                child._await_ready()
        except Exception:
            self.close()  # none left running beside a child that could not start
            raise

    def close(self) -> None:
        for child in self.children:
            child.close()


def by_sender(items: Sequence[Any], ways: int) -> list[list[int]]:
    """The MO ids of ``items`` (each with ``mo_id`` and ``sender``) in ``ways`` groups, a
    number's MO always in the same group (a stable hash of the number), in their order."""
    import zlib

    groups: list[list[int]] = [[] for _ in range(ways)]
    for item in items:
        groups[zlib.crc32(item.sender.encode()) % ways].append(item.mo_id)
    return groups
