"""Keyword auto-replies: ``[[inbox.auto_replies]]`` answers a keyword with a fixed text.

Each entry (``keyword``, ``reply``, optionally ``service_number``) becomes one registration
in :func:`jingxin.dispatch.handlers.default_registry`. The reply is an approved text from
the operator's own configuration; the runner sends it through the delivery entry with the
batch's other replies, like every message (policy may still refuse or defer it), once per
MO. The handler has no effect of its own, so a batch is just one result per MO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jingxin.dispatch.handlers import HandlerContext, HandlerResult, InboundMessage


@dataclass(frozen=True, slots=True)
class AutoReplyHandler:
    """Answers ``keyword`` with ``reply``."""

    reply: str
    keyword: str
    name: str = "autoreply"

    def handle(self, mo: InboundMessage, *, context: HandlerContext) -> HandlerResult:
        return HandlerResult(detail=f"keyword {self.keyword!r}", reply=self.reply)

    def handle_batch(self, mos: Sequence[InboundMessage], *,
                     context: HandlerContext) -> list[HandlerResult]:  # fmt: skip
        return [self.handle(mo, context=context) for mo in mos]
