"""Clicks on short links: who is a bot, where a token leads, and writing clicks in batches.

A short link ``https://<link_domain>/<token>`` is answered by ``jingxin serve``
(:mod:`jingxin.api.links`); this module is what it stands on, with no web framework in it:

- :func:`is_bot`: a HEAD request, or an agent that names a crawler or a link preview
  (``[analytics] bot_agents``, matched case-insensitively). An empty agent is a person:
  some phones' browsers send none.
- :class:`LinkDirectory`: token → :class:`LinkTarget` (message id, target, when it was
  written), with an LRU cache in front of ``messages.link_token``. A token never changes
  once written, so a cached answer never goes stale; a token not found is not cached.
- :class:`ClickRecorder`: clicks kept in memory and written every ``click_flush_seconds``
  in one transaction, from a thread of its own, so the web server's event loop never waits
  on the database.

Crash safety: a click is acknowledged (the redirect answered) before it is written; a
process killed between the two loses at most one flush interval of clicks (50 ms by
default). A failed write keeps its rows and is retried with a growing pause; while the
store is away at most ``max_pending`` clicks wait in memory and later ones are counted as
dropped (logged), so a long outage costs clicks, never the server's memory. Stopping the
recorder writes what is pending.

The subscriber's number is never read here: a click knows its token and message id only.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from hashlib import sha256
from typing import Any

from sqlalchemy import bindparam, func, insert, select

from jingxin.data.store import Store, store_errors
from jingxin.data.store.models import LinkClick, Message

log = logging.getLogger(__name__)

AGENT_LENGTH = 200  # link_clicks.agent
CLIENT_LENGTH = 32  # link_clicks.client: hex digits of the keyed hash
SUMMARY_CHUNK = 10_000  # message ids per query of click_summary
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ClickRow:
    """One request on a short link, as ``link_clicks`` keeps it."""

    token: str
    message_id: int | None
    at: datetime
    bot: bool
    method: str = "GET"
    agent: str | None = None  # at most AGENT_LENGTH characters (see clean_agent)
    client: str | None = None  # hash_client of the address, never the address


def record_clicks(store: Store, rows: Sequence[ClickRow]) -> int:
    """Insert ``rows`` into ``link_clicks`` in one transaction; returns how many."""
    if not rows:
        return 0
    values = [{"token": r.token, "message_id": r.message_id, "at": r.at, "bot": r.bot,
               "method": r.method, "agent": r.agent, "client": r.client}
              for r in rows]  # fmt: skip
    with store.transaction() as session:
        session.execute(insert(LinkClick), values)
    return len(values)


# -- who is a bot --------------------------------------------------------------------------


def is_bot(method: str, agent: str | None, patterns: Sequence[str]) -> bool:
    """A HEAD request, or an agent containing one of ``patterns`` (any case). No agent, or
    an empty one, is not a bot."""
    if method == "HEAD":
        return True
    if not agent:
        return False
    matcher = _agent_matcher(tuple(patterns))
    return matcher is not None and matcher(agent) is not None


@lru_cache(maxsize=16)
def _agent_matcher(patterns: tuple[str, ...]) -> Callable[[str], Any] | None:
    words = [re.escape(p) for p in patterns if p]
    return re.compile("|".join(words), re.IGNORECASE).search if words else None


def clean_agent(agent: str | None) -> str | None:
    """The agent fit for ``link_clicks``: control characters (NUL included, which
    PostgreSQL refuses) blanked, cut to AGENT_LENGTH; empty is None."""
    if not agent:
        return None
    return _CONTROL.sub(" ", agent[:AGENT_LENGTH]) or None


def hash_client(address: str | None, secret: str) -> str | None:
    """The client address keyed with the link secret: the same address gives the same
    value (distinct clickers can be told apart), the address itself is never kept."""
    if not address:
        return None
    digest = hmac.new(secret.encode(), address.encode(), sha256).hexdigest()
    return digest[:CLIENT_LENGTH]


# -- where a token leads -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """Where a token redirects: its message, the target URL, and when the message was due
    to go out (``scheduled_at``: a campaign planned days ahead does not lose those days of
    its links' ``link_days``)."""

    message_id: int
    url: str
    due_at: datetime  # when the message was due to go out: the link lives from then


_BY_TOKENS = (
    select(Message.link_token, Message.id, Message.link_url, Message.scheduled_at)
    .where(Message.link_token.in_(bindparam("tokens", expanding=True)))
    .where(Message.link_url.is_not(None))
)


class LinkDirectory:
    """Tokens to targets, an LRU cache of ``size`` tokens in front of the store.

    :meth:`cached` never touches the store (the web server calls it on its event loop);
    :meth:`load` asks the store for several tokens in one query (call it in a thread) and
    caches what it finds. Both are safe from any thread.
    """

    def __init__(self, store: Store, *, size: int = 100_000) -> None:
        if size < 1:
            raise ValueError(f"LinkDirectory size must be at least 1, not {size}")
        self.store = store
        self.size = size
        self._cache: OrderedDict[str, LinkTarget] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def cached(self, token: str) -> LinkTarget | None:
        """The target if the cache holds it (and it becomes the most recent), else None."""
        with self._lock:
            target = self._cache.get(token)
            if target is not None:
                self._cache.move_to_end(token)
            return target

    def load(self, tokens: Iterable[str]) -> dict[str, LinkTarget]:
        """The targets of those ``tokens`` that exist, from the store; cached."""
        wanted = list(dict.fromkeys(tokens))
        if not wanted:
            return {}
        with store_errors("looking up short-link tokens"), self.store.engine.connect() as conn:
            rows = conn.execute(_BY_TOKENS, {"tokens": wanted}).all()
        found = {token: LinkTarget(message_id=id_, url=url, due_at=due_at)
                 for token, id_, url, due_at in rows}  # fmt: skip
        with self._lock:
            for token, target in found.items():
                self._cache[token] = target
                self._cache.move_to_end(token)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return found

    def lookup(self, token: str) -> LinkTarget | None:
        """The target of one token: from the cache, else the store (blocking)."""
        return self.cached(token) or self.load([token]).get(token)


# -- writing clicks in batches -------------------------------------------------------------


class ClickRecorder:
    """Clicks held in memory and written in batches by a thread of its own.

    ``add`` is what a request calls (a lock and an append); every ``flush_seconds`` the
    thread takes everything pending and hands it to ``write`` (one transaction). A failed
    write puts its rows back first in line and the next attempt waits twice as long (up to
    ``max_backoff``); more than ``max_pending`` clicks waiting and new ones are dropped and
    counted. :meth:`stop` ends the thread and writes what is left.
    """

    def __init__(self, write: Callable[[Sequence[ClickRow]], int], *,
                 flush_seconds: float = 0.05, max_pending: int = 200_000,
                 max_backoff: float = 5.0) -> None:  # fmt: skip
        if flush_seconds <= 0 or max_pending < 1:
            raise ValueError("ClickRecorder needs flush_seconds > 0 and max_pending >= 1")
        self.write = write
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending
        self.max_backoff = max(max_backoff, flush_seconds)
        self.written = 0
        self.dropped = 0
        self.failures = 0  # failed writes, all told
        self._dropped_logged = 0
        self._pending: list[ClickRow] = []
        self._lock = threading.Lock()  # guards _pending and dropped
        self._flushing = threading.Lock()  # one write at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def to_store(cls, store: Store, **options: Any) -> ClickRecorder:
        """A recorder writing with :func:`record_clicks` into ``store``."""
        return cls(lambda rows: record_clicks(store, rows), **options)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, row: ClickRow) -> bool:
        """Queue one click; False if it was dropped (too many already waiting)."""
        with self._lock:
            if len(self._pending) >= self.max_pending:
                self.dropped += 1
                return False
            self._pending.append(row)
            return True

    def flush(self) -> int:
        """Write everything pending now, in one transaction; returns the rows written. On
        failure the rows are kept (first in line) and the error is raised."""
        with self._flushing:
            with self._lock:
                rows, self._pending = self._pending, []
            if not rows:
                return 0
            try:
                written = self.write(rows)
            except BaseException:
                with self._lock:
                    self._pending[:0] = rows
                raise
            self.written += written
            return written

    def start(self) -> None:
        """Start the flushing thread (again, after a stop)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="click-recorder", daemon=True)
        self._thread.start()

    def stop(self, *, attempts: int = 3) -> None:
        """Stop the thread and write what is pending (``attempts`` tries; what still
        cannot be written is logged as lost)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for attempt in range(1, attempts + 1):
            if self._try_flush(final=attempt == attempts):
                return
            time.sleep(min(self.flush_seconds * 2**attempt, 1.0))

    def _run(self) -> None:
        wait = self.flush_seconds
        while not self._stop.wait(wait):
            ok = self._try_flush(final=False)
            wait = self.flush_seconds if ok else min(wait * 2, self.max_backoff)

    def _try_flush(self, *, final: bool) -> bool:
        dropped = self._take_dropped()
        if dropped:
            log.warning("%d clicks dropped: more than %d were waiting to be written",
                        dropped, self.max_pending)  # fmt: skip
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - any failure: keep the rows, try again
            self.failures += 1
            if final:
                log.error("%d clicks could not be written and are lost: %s",
                          self.pending, exc)  # fmt: skip
            else:
                log.warning("writing %d clicks failed, kept for the next try: %s",
                            self.pending, exc)  # fmt: skip
            return False
        return True

    def _take_dropped(self) -> int:
        with self._lock:
            dropped, self._dropped_logged = self.dropped - self._dropped_logged, self.dropped
        return dropped


# -- what the clicks add up to -------------------------------------------------------------


def click_summary(store: Store, message_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """Clicks on the links of ``message_ids`` (None: all): ``unique_clickers`` (distinct
    tokens clicked by a person, i.e. messages whose link was followed), ``clicks`` (requests
    by people), ``bot_requests`` and ``first_click_at`` (the first click by a person, or
    None)."""
    summary: dict[str, Any] = {"unique_clickers": 0, "clicks": 0, "bot_requests": 0,
                               "first_click_at": None}  # fmt: skip
    query = (select(LinkClick.bot, func.count(), func.count(LinkClick.token.distinct()),
                    func.min(LinkClick.at)).group_by(LinkClick.bot))  # fmt: skip
    if message_ids is None:
        chunks: list[Any] = [query]
    else:
        ids = sorted(set(message_ids))
        chunks = [query.where(LinkClick.message_id.in_(ids[i:i + SUMMARY_CHUNK]))
                  for i in range(0, len(ids), SUMMARY_CHUNK)]  # fmt: skip
    with store_errors("summing up link clicks"), store.sessions() as session:
        for chunk in chunks:
            for bot, requests, tokens, first in session.execute(chunk):
                if bot:
                    summary["bot_requests"] += requests
                    continue
                # A token belongs to one message: per-chunk distinct counts add up.
                summary["clicks"] += requests
                summary["unique_clickers"] += tokens
                if first is not None and (summary["first_click_at"] is None
                                          or first < summary["first_click_at"]):
                    summary["first_click_at"] = first
    return summary


__all__ = ["ClickRecorder", "ClickRow", "LinkDirectory", "LinkTarget", "clean_agent",
           "click_summary", "hash_client", "is_bot", "record_clicks"]  # fmt: skip
