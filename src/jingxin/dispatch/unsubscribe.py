"""The unsubscribe handler: an unsubscribe word (TD, T, N, R, 退订 ...) opts the number out.

The opt-out is for the tenant whose message the subscriber answered (the attributed
message's; the operator's own when the MO answers nothing), for all marketing, recorded
at once with source ``sms_reply`` - so the very next policy decision sees it. Then ONE
confirmation goes back through the delivery entry (``[inbox] unsubscribe_reply``), sent
by the runner with the batch's other replies.

A batch of TD is one transaction (:func:`jingxin.data.store.contact.record_noted_opt_outs`,
the checks of a single opt-out but the tenant's: a subscriber's no is recorded whatever
tenant it names): on PostgreSQL one statement in autocommit inserts the opt-outs whose
note is not yet recorded and answers which went in; a number that does not normalise
fails the whole insert, and the runner handles that batch one MO at a time.

Idempotent, as every handler must be: run again for the same MO (after a crash), it finds
its own opt-out (the note names the MO) and records nothing new, and the reply's
idempotency key makes the second delivery a ``duplicate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jingxin.data.store.contact import record_noted_opt_outs
from jingxin.dispatch.handlers import HandlerContext, HandlerResult, InboundMessage

OPT_OUT_SOURCE = "sms_reply"


def opt_out_note(mo: InboundMessage) -> str:
    """The note an MO's opt-out carries: how it is found again on a re-run."""
    return f"MO {mo.id} to {mo.service_number}"


@dataclass(frozen=True, slots=True)
class UnsubscribeHandler:
    """Opts the sender out of the attributed tenant's marketing and confirms it."""

    reply: str
    name: str = "unsubscribe"

    def handle(self, mo: InboundMessage, *, context: HandlerContext) -> HandlerResult:
        return self.handle_batch([mo], context=context)[0]

    def handle_batch(self, mos: Sequence[InboundMessage], *,
                     context: HandlerContext) -> list[HandlerResult]:  # fmt: skip
        notes = {mo.id: opt_out_note(mo) for mo in mos}
        # One statement on PostgreSQL, in autocommit (one round trip: no BEGIN, no
        # COMMIT): the opt-outs whose note is not yet recorded go in, and it answers which
        # did; a re-run after a crash records nothing twice. SQLite: a transaction.
        with context.bound_store().reading() as session:
            fresh = record_noted_opt_outs(session, source=OPT_OUT_SOURCE, at=context.now,
                                          check_tenants=False, entries=[
                {"msisdn": mo.msisdn, "tenant_id": mo.tenant_id, "note": notes[mo.id]}
                for mo in mos])  # fmt: skip
        return [HandlerResult(detail=_detail(mo, again=(mo.msisdn, notes[mo.id]) not in fresh),
                              reply=self.reply) for mo in mos]  # fmt: skip


def _detail(mo: InboundMessage, *, again: bool) -> str:
    return f"opted out of {mo.tenant_id} marketing ({'already recorded' if again else 'recorded'})"
