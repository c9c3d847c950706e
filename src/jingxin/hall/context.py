"""What every hall command is given: the request (one MO) and the context of the run.

Contract for command modules (``orders``, ``referrals``, ``points``, ``vouchers``,
``feedback``, ...): a command is a function ``(ctx, request, ...) -> Answer``. It is run at
least once per MO (the inbox runs handlers at least once), so every effect it writes is
keyed by the MO (``request.mo_id``) or by a natural unique key, and a second run finds it
done and answers the same. Reply texts come from :meth:`HallContext.say`: a key, the
module's default text, and fields; the menu file's ``texts:`` may override any key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jingxin.config import HallSettings
from jingxin.data.store.engine import Store

if TYPE_CHECKING:
    from jingxin.dispatch.deliver import Delivered, Delivery, DeliveryContext


@dataclass(frozen=True, slots=True)
class HallRequest:
    """One MO as the hall sees it."""

    mo_id: int
    msisdn: str  # E.164
    service_number: str  # the number written to
    tenant_id: str  # the tenant whose hall this is (from the menu)
    text: str  # as received
    at: datetime  # when it was received (aware UTC)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a command answers: the reply text and, for the hall's records, what it was."""

    text: str
    command: str  # e.g. "balance", "order", "confirm", "referral"
    kind: str = "other"  # "query" | "order" | "other" (the hall report counts these)
    outcome: str = "answered"  # e.g. "answered", "pending", "placed", "failed:<reason>"
    zone: str | None = None


@dataclass
class HallContext:
    """The store, settings, BOSS and delivery of one handler run."""

    store: Store
    settings: HallSettings = field(default_factory=HallSettings)
    boss: Any = None  # a jingxin.hall.boss.Boss
    now: datetime | None = None
    texts: Mapping[str, str] = field(default_factory=dict)  # the menu's overrides
    delivery: DeliveryContext | None = None
    home: Path = Path(".")  # the settings' home: where relative paths (voucher_dir) live
    senders: tuple[str, ...] = ()  # the numbers of the batch: batch reads ask for all
    # What one handler batch reads once for all its MO (a zone's list, the campaigns).
    memo: dict[Any, Any] = field(default_factory=dict)
    # The same for what does not depend on this hall's texts (the campaigns' names, the
    # senders' points), shared by every hall of the batch: read before the batch's MO are
    # answered (jingxin.hall.handler), and dropped for all of them by ``forget``.
    shared: dict[Any, Any] = field(default_factory=dict)

    def once(self, key: Any, read: Callable[[], Any], *, shared: bool = False) -> Any:
        """``read()`` the first time ``key`` is asked in this context (one batch), then
        its answer again: every ``43`` of a batch lists the same campaigns. ``shared``:
        kept for every hall of the batch (what does not depend on the hall's texts)."""
        memo = self.shared if shared else self.memo
        if key not in memo:
            memo[key] = read()
        return memo[key]

    def forget(self, key: Any) -> None:
        """Drop ``key``'s answer (an effect changed what it said): read again when asked."""
        self.memo.pop(key, None)
        self.shared.pop(key, None)

    @classmethod
    def from_settings(cls, settings: Any, store: Store, *, now: datetime | None = None
                      ) -> HallContext:  # fmt: skip
        """The context the CLI and the scheduler use outside a handler run (``hall
        reconcile``): the BOSS kept in the store, replies through the delivery entry."""
        from jingxin.dispatch.deliver import DeliveryContext
        from jingxin.hall.boss import StoreBoss

        hall = settings.hall
        return cls(store=store, settings=hall, now=now, home=settings.home,
                   boss=StoreBoss(store, timeout_seconds=hall.boss_timeout_seconds),
                   delivery=DeliveryContext.from_settings(settings))  # fmt: skip

    def say(self, key: str, default: str, **fields: Any) -> str:
        """The text ``key`` (the menu's override, else ``default``) with ``fields`` filled in."""
        template = self.texts.get(key, default)
        try:
            return template.format(**fields)
        except (KeyError, IndexError, ValueError):
            # A menu text naming a field this reply does not have: say the default
            # rather than nothing (`jingxin hall menu check` reports such texts).
            return default.format(**fields)

    def deliver(self, deliveries: Sequence[Delivery]) -> list[Delivered]:
        """Send other messages (a referral offer) through the one delivery entry."""
        from jingxin.dispatch.deliver import deliver_many

        return deliver_many(self.store, deliveries=deliveries, context=self.delivery,
                            now=self.now)  # fmt: skip
