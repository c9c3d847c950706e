"""MO handlers: who answers an inbound message, and the runner that makes sure one does.

Handlers register per service number and keyword (:class:`HandlerRegistry`): the
unsubscribe words, keyword auto-replies from ``[inbox]``, later the SMS business hall and
journeys waiting for an answer. :func:`run_pending` takes the ``mo_messages`` rows that
have no ``mo_outcomes`` row yet, attributes each to the message it answers
(:mod:`.attribution`), runs the matching handler and records the outcome: ``handled``,
``no_handler`` or ``failed`` (the error kept in ``detail``; the runner goes on). It works
in batches (:mod:`.handler_runs`): a handler gets all its MO of a batch at once through
``handle_batch`` when it has one (:func:`handle_all` loops ``handle`` otherwise), and the
replies handlers ask for (``HandlerResult.reply``) go out through one bulk delivery.

Crash-safety contract: a handler runs *at least once*. Its effects commit before its
outcome row does, so a crash in between leaves the MO pending and the handler runs again;
handlers are idempotent for that (an opt-out already recorded is not recorded twice, a
reply's idempotency key ``inbox:<mo_id>:reply`` makes the delivery entry answer
``duplicate``). The outcome insert skips an MO another runner recorded first.

Matching: keywords compare after NFKC, case folding and trimming (``ＴＤ``, ``td`` and
`` TD `` are one word) against the whole text or its first word. Among the registrations
that match, one with a keyword beats a catch-all (no keywords), then the longest service
number wins (``None`` = any), then the earliest registered.
"""

from __future__ import annotations

import binascii
import re
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from jingxin.data.store.engine import Store
from jingxin.data.store.models import DEFAULT_TENANT_ID, utc_now
from jingxin.dispatch.attribution import Attribution, sender_matches
from jingxin.dispatch.reply import (
    DeliveryReplier,
    Replier,
    ReplyRequest,
    ReplySent,
    send_replies,
)
from jingxin.errors import ConfigError

if TYPE_CHECKING:
    from jingxin.config import Settings
    from jingxin.dispatch.handler_runs import RunTally

DEFAULT_WINDOW = timedelta(hours=72)


def keyword_form(text: str) -> str:
    """``text`` folded for comparison: NFKC (full-width to half-width), case-folded,
    trimmed (the inbox's text search; keywords also drop punctuation: :func:`match_form`)."""
    return unicodedata.normalize("NFKC", text).casefold().strip()


def match_form(text: str) -> str:
    """``text`` as keywords compare: :func:`keyword_form`, then every punctuation mark and
    symbol (emoji, brackets, ``。``, ``!``) a space and the spaces collapsed, so ``TD.``,
    ``【TD】``, ``退订。`` and ``TD🙏`` read as the ``TD`` or ``退订`` they are - a subscriber's
    no must not be lost to a full stop. A text of nothing but marks (``?``) keeps them, so
    it can still be a keyword of its own. Letters and digits are never split: ``T恤`` stays
    one word."""
    folded = keyword_form(text)
    return " ".join(_MARKS.sub(" ", folded).split()) or folded


# Whatever is not a letter or a digit (``str.isalnum``: CJK and every script's letters
# are): punctuation, symbols and emoji, the emoji joiner, variation selectors, ``_``. One
# C-speed substitution - a long MO is matched too, at 2,000 MO/s.
_MARKS = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One whole MO (a ``mo_messages`` row) and the message it answers, if any."""

    id: int
    channel: str
    msisdn: str
    service_number: str
    text: str
    received_at: datetime
    coding: int = 0
    parts: int = 1
    parts_expected: int = 1
    complete: bool = True
    undecodable: bool = False  # ``text`` then holds the payload as hex
    attribution: Attribution | None = None

    @property
    def tenant_id(self) -> str:
        """Whose subscriber wrote: the attributed message's tenant, else the operator."""
        return self.attribution.tenant_id if self.attribution else DEFAULT_TENANT_ID

    @property
    def match_text(self) -> str:
        """The text keywords are matched against (see :func:`readable_text`)."""
        return match_form(readable_text(self.text, undecodable=self.undecodable))


def readable_text(text: str, *, undecodable: bool) -> str:
    """The MO's text; for an undecodable one, the printable ASCII of its payload, so a
    ``TD`` sent with an odd data coding still unsubscribes."""
    if not undecodable:
        return text
    try:
        payload = binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError):
        return text
    return "".join(chr(b) for b in payload if 0x20 <= b < 0x7F)


@dataclass(frozen=True, slots=True)
class HandlerResult:
    """What a handler did, in one line for ``jingxin inbox``, and its reply's message id.

    A handler may leave its reply to the runner: ``reply`` is then the text to answer
    with, sent with the batch's other replies in one delivery call; what became of it is
    appended to ``detail`` and its message id becomes ``reply_message_id``.
    """

    detail: str = ""
    reply_message_id: int | None = None
    reply: str | None = None
    # Who the reply is from on the one road: ``inbox`` (unsubscribe confirmations, keyword
    # replies) or the capability that answered (``hall``); and for which tenant (None: the
    # MO's attributed tenant).
    reply_source: str = "inbox"
    reply_tenant: str | None = None

    def replied(self, sent: ReplySent) -> HandlerResult:
        """This result once its ``reply`` went out as ``sent``."""
        detail = f"{self.detail}; {sent.describe()}" if self.detail else sent.describe()
        return HandlerResult(detail=detail, reply_message_id=sent.message_id)


@dataclass(frozen=True)
class HandlerContext:
    """What handlers may use: the store, the attribution settings and the replier.

    :func:`run_pending` fills in ``store`` and ``now`` (the instant of the run, which
    an opt-out is recorded at); tests pass a fake ``reply``.
    """

    store: Store | None = None
    now: datetime | None = None
    window: timedelta = DEFAULT_WINDOW
    default_senders: Mapping[str, str] = field(default_factory=dict)
    reply: Replier = field(default_factory=DeliveryReplier)
    cursor: PendingCursor = field(default_factory=lambda: PendingCursor())

    @classmethod
    def from_settings(cls, settings: Settings, *, store: Store | None = None) -> HandlerContext:
        """The production context: the window from ``[inbox]``, each channel's default
        ``source_addr``, and replies through the delivery entry."""
        from jingxin.dispatch.deliver import DeliveryContext

        return cls(
            store=store,
            window=timedelta(hours=settings.inbox.attribution_window_hours),
            default_senders={c.name: c.source_addr for c in settings.channels},
            reply=DeliveryReplier(DeliveryContext.from_settings(settings)),
        )

    def send_reply(self, mo: InboundMessage, *, text: str, source: str = "inbox",
                   tenant_id: str | None = None) -> ReplySent:  # fmt: skip
        """Answer ``mo`` with ``text`` (at most once per MO; see :mod:`.reply`)."""
        return self.reply(self.bound_store(), mo_id=mo.id, msisdn=mo.msisdn,
                          service_number=mo.service_number, text=text,
                          tenant_id=tenant_id or mo.tenant_id, now=self.now,
                          source=source)  # fmt: skip

    def send_replies(self, requests: Sequence[ReplyRequest]) -> dict[int, ReplySent]:
        """Answer a batch of MO at once (see :func:`.reply.send_replies`), by MO id."""
        return send_replies(self.reply, self.bound_store(), requests=requests, now=self.now)

    def bound_store(self) -> Store:
        """The store of this run (handlers run only through :func:`run_pending`)."""
        if self.store is None:
            raise RuntimeError("HandlerContext.store is unset: run handlers via run_pending")
        return self.store

    def bound(self, store: Store, *, now: datetime) -> HandlerContext:
        """This context for one run against ``store`` at ``now``."""
        return replace(self, store=store, now=now)


class PendingCursor:
    """Where the next run may start looking for pending MO.

    Every MO up to ``after`` has an outcome, so a run after each MO reads only the new
    rows instead of anti-joining the whole inbox. Ids can commit out of order when several
    workers write (an id is taken before its transaction commits), so every
    ``rescan_every`` seconds a run looks ``lookback`` ids further back; the first run of a
    process looks at everything (what a crashed worker left pending).
    """

    def __init__(self, *, rescan_every: float = 60.0, lookback: int = 10_000) -> None:
        self.after = 0
        self.rescan_every = rescan_every
        self.lookback = lookback
        self._last_scan: float | None = None

    def start(self) -> int:
        """The id after which to look."""
        clock = time.monotonic()
        if self._last_scan is None:
            self._last_scan = clock
            return 0
        if clock - self._last_scan >= self.rescan_every:
            self._last_scan = clock
            return max(0, self.after - self.lookback)
        return self.after

    def advance(self, mo_id: int) -> None:
        self.after = max(self.after, mo_id)


class MoHandler(Protocol):
    """Answers the MO it is registered for; must be idempotent (it may run twice).

    A handler may also have ``handle_batch(mos, *, context) -> list[HandlerResult]`` (one
    result per MO, in order) to apply its effects for a whole batch at once; it must do
    what ``handle`` would do for each, and raise rather than half-apply a bad MO (the
    runner then handles that batch one MO at a time).
    """

    name: str

    def handle(self, mo: InboundMessage, *, context: HandlerContext) -> HandlerResult: ...


def handle_all(handler: MoHandler, mos: Sequence[InboundMessage], *,
               context: HandlerContext) -> list[HandlerResult]:  # fmt: skip
    """``handler.handle_batch`` when it has one, else ``handle`` for each MO."""
    batch = getattr(handler, "handle_batch", None)
    if batch is None:
        return [handler.handle(mo, context=context) for mo in mos]
    results = list(batch(mos, context=context))
    if len(results) != len(mos):
        raise RuntimeError(f"handler {handler.name!r}: handle_batch gave {len(results)} "
                           f"results for {len(mos)} MO")  # fmt: skip
    return results


@dataclass(frozen=True, slots=True)
class _Entry:
    handler: MoHandler
    service_number: str | None
    keywords: frozenset[str]
    order: int

    def matches(self, mo: InboundMessage, text: str, first_word: str) -> bool:
        if self.service_number is not None and not sender_matches(
            mo.service_number, self.service_number
        ):
            return False
        return not self.keywords or text in self.keywords or first_word in self.keywords

    def rank(self) -> tuple[int, int, int]:
        return (0 if self.keywords else 1, -len(self.service_number or ""), self.order)


class HandlerRegistry:
    """Handlers by service number and keyword; :meth:`match` picks the one for an MO."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def register(self, handler: MoHandler, *, service_number: str | None = None,
                 keywords: Sequence[str] = ()) -> None:  # fmt: skip
        """``handler`` answers MO to ``service_number`` (or one it prefixes; None = any)
        whose text is one of ``keywords`` (none = every text)."""
        words = frozenset(match_form(k) for k in keywords)
        if "" in words:
            raise ConfigError(f"handler {handler.name!r}: an empty keyword would match nothing")
        entry = _Entry(handler, service_number or None, words, len(self._entries))
        self._entries.append(entry)
        self._entries.sort(key=_Entry.rank)

    def match(self, mo: InboundMessage) -> MoHandler | None:
        text = mo.match_text
        first_word = text.split(maxsplit=1)[0] if text else ""
        for entry in self._entries:
            if entry.matches(mo, text, first_word):
                return entry.handler
        return None

    def __len__(self) -> int:
        return len(self._entries)


def default_registry(settings: Settings) -> HandlerRegistry:
    """The unsubscribe words (any service number), the gift claims ``LB``/``SR``
    (:mod:`jingxin.journeys.gifts`), the ``[inbox]`` auto-replies and, when ``[hall]
    enabled``, the SMS business hall at each of its menu's service numbers."""
    from jingxin.dispatch.autoreply import AutoReplyHandler
    from jingxin.dispatch.unsubscribe import UnsubscribeHandler

    inbox = settings.inbox
    registry = HandlerRegistry()
    registry.register(UnsubscribeHandler(reply=inbox.unsubscribe_reply),
                      keywords=inbox.unsubscribe_words)  # fmt: skip
    # Gift claims (LB, SR) after the anniversary and birthday messages, at any number;
    # keywords, so they win over the hall's catch-all below.
    from jingxin.journeys.gifts import KEYWORDS, GiftClaimHandler

    registry.register(GiftClaimHandler.from_settings(settings), keywords=KEYWORDS)
    words = {match_form(w) for w in inbox.unsubscribe_words}
    for n, auto in enumerate(inbox.auto_replies):
        keyword = match_form(auto.keyword)
        if keyword in words:
            raise ConfigError(
                f"inbox.auto_replies[{n}].keyword: {auto.keyword!r} is an unsubscribe word "
                "(inbox.unsubscribe_words); an unsubscribe cannot be answered otherwise"
            )
        if not keyword:
            raise ConfigError(f"inbox.auto_replies[{n}].keyword: empty after trimming")
        registry.register(AutoReplyHandler(reply=auto.reply, keyword=keyword),
                          service_number=auto.service_number, keywords=[keyword])  # fmt: skip
    if settings.hall.enabled:
        # The SMS business hall: a catch-all per hall service number, so the keywords
        # above (unsubscribe words first) still win over it.
        from jingxin.hall.handler import hall_handler

        hall = hall_handler(settings)
        for number in hall.menu.service_numbers:
            registry.register(hall, service_number=number)
    return registry


# What the first run of a process needs (the delivery entry's single and bulk paths,
# policy, content, the number parser): ~0.4 s of imports the first MO should not wait for.
WARM_MODULES = (
    "jingxin.dispatch.handler_runs", "jingxin.dispatch.admission",
    "jingxin.dispatch.delivery_table", "jingxin.dispatch.outbox", "jingxin.policy.decide",
    "jingxin.policy.batch", "jingxin.policy.state_join", "jingxin.data.store.policy_state",
    "jingxin.data.store.ledger", "jingxin.data.store.audit", "jingxin.content.templates",
    "jingxin.content.encoding", "jingxin.data.store.bulk", "jingxin.data.warehouse.schema",
)  # fmt: skip


def warm_up() -> None:
    """Import what a run needs and load the number parser's data, once per process, so the
    first MO a worker answers is as fast as the next (the worker calls it at start)."""
    import importlib

    from jingxin.data.msisdn import normalise_msisdn

    for name in WARM_MODULES:
        importlib.import_module(name)
    normalise_msisdn("+8613800138000")


def run_pending(store: Store, *, registry: HandlerRegistry, context: HandlerContext,
                limit: int = 500, now: datetime | None = None,
                ids: Sequence[int] | None = None) -> RunTally:  # fmt: skip
    """Handle up to ``limit`` pending MO, oldest first (see the module docstring); with
    ``ids``, only those of them still pending."""
    from jingxin.dispatch.handler_runs import run_batch

    return run_batch(store, registry=registry, context=context.bound(store, now=now or utc_now()),
                     limit=limit, ids=ids)  # fmt: skip

