"""The unsubscribe handler: an unsubscribe word (TD, T, N, R, 退订 ...) opts the number out.

The opt-out is for the tenant whose message the subscriber answered (the attributed
message's; the operator's own when the MO answers nothing), for all marketing, recorded
at once with source ``sms_reply`` - so the very next policy decision sees it. Then ONE
confirmation goes back through the delivery entry (``[inbox] unsubscribe_reply``), sent
by the runner with the batch's other replies.

A batch of TD is one transaction: one query finds the opt-outs already recorded, one
insert (:func:`jingxin.data.store.contact.record_opt_outs`, the same checks as a single
opt-out) records the rest; a number that does not normalise fails the whole insert, and
the runner handles that batch one MO at a time.

Idempotent, as every handler must be: run again for the same MO (after a crash), it finds
its own opt-out (the note names the MO) and records nothing new, and the reply's
idempotency key makes the second delivery a ``duplicate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from jingxin.data.store.bulk import among
from jingxin.data.store.contact import record_opt_outs
from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import OptOut
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
        with context.bound_store().transaction() as session:
            with store_errors(f"looking up the opt-outs of {len(mos)} MO"):
                # among: on PostgreSQL one array parameter each - one statement text
                # whatever the batch, so it is parsed and prepared once.
                conn = session.connection()
                done = {(msisdn, note) for msisdn, note in session.execute(
                    select(OptOut.msisdn, OptOut.note).where(
                        among(conn, OptOut.msisdn, sorted({mo.msisdn for mo in mos})),
                        among(conn, OptOut.note, sorted(set(notes.values())))))}  # fmt: skip
            fresh = [mo for mo in mos if (mo.msisdn, notes[mo.id]) not in done]
            record_opt_outs(session, source=OPT_OUT_SOURCE, at=context.now, entries=[
                {"msisdn": mo.msisdn, "tenant_id": mo.tenant_id, "note": notes[mo.id]}
                for mo in fresh])  # fmt: skip
        return [HandlerResult(detail=_detail(mo, again=(mo.msisdn, notes[mo.id]) in done),
                              reply=self.reply) for mo in mos]  # fmt: skip


def _detail(mo: InboundMessage, *, again: bool) -> str:
    return f"opted out of {mo.tenant_id} marketing ({'already recorded' if again else 'recorded'})"
