"""The simulator's CMPP 2.0 server (an ISMG): CONNECT, SUBMIT, status reports and MO, per a
:class:`~jingxin.smsc.behaviour.Behaviour`.

One :class:`CmppSmsc` holds what all connections share (behaviour, record, Msg_Id
generator, connected SPs); one :class:`CmppConnection` per TCP connection speaks the
protocol, as an :class:`asyncio.Protocol` with writes batched per loop turn.

Behaviour on CMPP: ``credentials`` maps SP_Id (Source_Addr) → shared secret and the
AuthenticatorSource is checked against it (Status 2 unknown SP, 3 bad authenticator; any
SP is accepted when it is empty; Version above 0x20 gets Status 4); ``tps`` → SUBMIT_RESP
Result 8; ``submit_latency``; a status report per destination after ``receipt_delay``,
drawn from ``status_mix``; ``lose_response``; ``disconnect``; ``receipt_before_response``.
Test knobs beyond Behaviour live on :class:`CmppSmsc`: ``silent`` (stop answering
anything), ``reorder`` (hold N submit responses and send them in reverse order), ``force_result``
(answer every SUBMIT with this Result) and
``mo_udhi`` (the TP_udhi value of long MO parts: the spec's 0x01 or the gateways' 0x40).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import random
from collections.abc import Callable
from typing import Any

from jingxin.channels.cmpp import auth, outbound
from jingxin.channels.cmpp import pdu as p
from jingxin.channels.cmpp.concatenation import concat_udh
from jingxin.channels.cmpp.fields import VERSION_20, CommandId, MsgFmt
from jingxin.channels.cmpp.framer import Framer
from jingxin.channels.cmpp.msgid import MsgIdGenerator
from jingxin.channels.cmpp.report import StatusReport
from jingxin.channels.throttle import TokenBucket
from jingxin.channels.writer import BatchedWriter
from jingxin.errors import ProtocolError
from jingxin.smsc.behaviour import Behaviour
from jingxin.smsc.record import Received, Record

log = logging.getLogger(__name__)

GATEWAY_CODE = 0x01D2F  # the simulated ISMG's 22-bit code inside every Msg_Id
RESEND_AFTER = 1.0  # seconds before a status report the SP refused is sent again
_CONNECT_BAD_ADDR, _CONNECT_BAD_AUTH, _CONNECT_VERSION = 2, 3, 4


def _gbk_contents(text: str) -> tuple[int, list[bytes]]:
    """Msg_Fmt 15 parts: 134 octets of GBK after a 6-octet UDH, split between characters."""
    whole = text.encode("gbk")
    if len(whole) <= 140:
        return MsgFmt.GBK, [whole]
    parts, current = [], b""
    for char in text:
        octets = char.encode("gbk")
        if len(current) + len(octets) > 134:
            parts.append(current)
            current = b""
        current += octets
    return MsgFmt.GBK, [*parts, current]


def _name(pdu: p.Pdu) -> str:
    """The record's name for a PDU: ``CMPP_`` + its Command_Id name."""
    return f"CMPP_{CommandId(pdu.COMMAND).name}"


class CmppSmsc:
    """Shared state of the CMPP side of the simulator."""

    def __init__(
        self, behaviour: Behaviour, record: Record, on_event: Callable[[Received], None] | None = None
    ) -> None:
        self.behaviour = behaviour
        self.record = record
        self.on_event = on_event
        self.rng = random.Random(behaviour.seed)
        # Drops and lost responses draw from a stream of their own, one draw per submit,
        # so a seed fixes which submit they hit whatever the receipts' timing draws meanwhile.
        self.faults = random.Random(behaviour.seed)
        self.connections: set[CmppConnection] = set()
        self.msg_ids = MsgIdGenerator(gateway=GATEWAY_CODE, clock=auth.beijing_now)
        states = list(behaviour.status_mix.items())
        total = sum(weight for _, weight in states) or 1.0
        self._stats = [name for name, _ in states]
        self._cumulative = list(itertools.accumulate(weight / total for _, weight in states))
        self._mo_refs = itertools.count(1)
        self._mo_turn = itertools.count()
        self.silent = False
        self.reorder = 0
        self.force_result: int | None = None
        self.mo_udhi = 0x01
        self.receipts_sent = 0
        self.receipts_resent = 0
        self.mo_sent = 0
        self.throttled = 0
        # Status reports and MO not acknowledged when their connection closed (or due while
        # the SP was away), per SP: sent again when it connects, as an ISMG does.
        self.unacked_reports: dict[str, list[p.Deliver]] = {}

    def redeliver(self, sp_id: str, report: p.Deliver) -> None:
        """Send a status report again to a connection of ``sp_id``, or keep it for later."""
        connected = self.connected(sp_id)
        if connected:
            connected[0].send_report(report)
        else:
            self.unacked_reports.setdefault(sp_id, []).append(report)

    def note(self, sp_id: str | None, command: str, sequence: int, **fields: Any) -> None:
        """Record what arrived, and tell ``on_event`` about it."""
        entry = self.record.add("cmpp", sp_id or "", command, sequence, **fields)
        if self.on_event is not None:
            self.on_event(entry)

    def pick_stat(self) -> str:
        index = bisect.bisect_left(self._cumulative, self.rng.random())
        return self._stats[min(index, len(self._stats) - 1)]

    def connected(self, sp_id: str | None = None) -> list[CmppConnection]:
        return [
            c for c in self.connections if c.sp_id is not None and (sp_id is None or c.sp_id == sp_id)
        ]

    def inject_mo(self, source: str, destination: str, text: str, *, gbk: bool = False) -> int:
        """Deliver an MO to one connected SP (round robin); returns the parts sent.

        ASCII short text goes as Msg_Fmt 0, the rest as UCS-2 (8), or as GBK (15) with
        ``gbk``; long ones in parts with a UDH and TP_udhi (``mo_udhi``). Each part is kept
        until the SP's DELIVER_RESP: one never answered is sent again when it reconnects."""
        targets = self.connected()
        if not targets:
            raise LookupError("no CMPP client is connected")
        conn = targets[next(self._mo_turn) % len(targets)]
        fmt, payloads = _gbk_contents(text) if gbk else outbound.contents(text)
        ref = next(self._mo_refs) & 0xFF
        for number, payload in enumerate(payloads, start=1):
            udh = concat_udh(reference=ref, total=len(payloads), number=number) if len(payloads) > 1 else b""
            conn.send_report(p.Deliver(
                msg_id=self.msg_ids.next(), dest_id=destination, src_terminal_id=source,
                msg_content=udh + payload, registered_delivery=0, msg_fmt=fmt,
                tp_udhi=self.mo_udhi if udh else 0,
            ))  # fmt: skip
        self.mo_sent += 1
        return len(payloads)

    def active_test(self) -> int:
        """Send CMPP_ACTIVE_TEST on every connection (the ISMG's keep-alive)."""
        for conn in self.connected():
            conn.send_request(p.ActiveTest())
        return len(self.connected())

    def terminate(self) -> int:
        """Send CMPP_TERMINATE on every connection; each closes when its SP answers."""
        for conn in self.connected():
            conn.send_request(p.Terminate())
        return len(self.connected())

    def close(self) -> None:
        for conn in list(self.connections):
            conn.close()


class CmppConnection(asyncio.Protocol):
    """One SP connection to the simulated ISMG."""

    def __init__(self, smsc: CmppSmsc) -> None:
        self.smsc = smsc
        self.behaviour = smsc.behaviour
        self.sp_id: str | None = None
        self._loop = asyncio.get_running_loop()
        self._framer = Framer()
        self._transport: asyncio.Transport | None = None
        self._bucket = TokenBucket(self.behaviour.tps, burst=max(1.0, self.behaviour.tps / 10))
        self._sequence = itertools.count(1)
        self._writer = BatchedWriter(flush_at=16)  # the CMPP window
        self._held: list[bytes] = []
        self.unacked = 0
        self._reports: dict[int, p.Deliver] = {}  # Sequence_Id -> report not yet answered

    # -- transport ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._writer.attach(self._transport)
        self.smsc.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.smsc.connections.discard(self)
        self._transport = None
        self._writer.attach(None)
        if self._reports and self.sp_id is not None:
            self.smsc.unacked_reports.setdefault(self.sp_id, []).extend(self._reports.values())
        self._reports.clear()

    def send_report(self, report: p.Deliver) -> None:
        """Send a status report and keep it until the SP's DELIVER_RESP with Result 0."""
        seq = next(self._sequence)
        self._reports[seq] = report
        self.unacked += 1
        self.send(p.encode(report, sequence_id=seq))

    def send(self, data: bytes) -> None:
        self._writer.write(data)

    def send_request(self, request: p.Pdu) -> None:
        self.unacked += 1
        self.send(p.encode(request, sequence_id=next(self._sequence)))

    def close(self) -> None:
        if self._transport is not None:
            self._writer.flush()
            self._transport.close()

    # -- receiving ---------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        try:
            pdus = self._framer.feed(data)
        except ProtocolError as exc:
            self.smsc.note(self.sp_id, "garbage", 0, error=str(exc))
            self.close()
            return
        for pdu in pdus:
            if self.smsc.silent:
                self.smsc.note(self.sp_id, "ignored", pdu.sequence_id, pdu=_name(pdu))
                continue
            self._dispatch(pdu)

    def _dispatch(self, pdu: p.Pdu) -> None:
        note, seq = self.smsc.note, pdu.sequence_id
        if isinstance(pdu, p.Submit):
            self._submit(pdu)
        elif isinstance(pdu, p.DeliverResp):
            self.unacked -= 1
            report = self._reports.pop(seq, None)
            if report is not None and pdu.result != 0 and self.sp_id is not None:
                self.smsc.receipts_resent += 1
                self._loop.call_later(RESEND_AFTER, self.smsc.redeliver, self.sp_id, report)
            note(self.sp_id, "CMPP_DELIVER_RESP", seq, msg_id=pdu.msg_id, result=pdu.result)
        elif isinstance(pdu, p.Connect):
            self._connect(pdu)
        elif self.sp_id is None:
            note(None, _name(pdu), seq, error="before CMPP_CONNECT")
            self.close()
        elif isinstance(pdu, p.ActiveTest):
            note(self.sp_id, "CMPP_ACTIVE_TEST", seq)
            self.send(p.encode(p.ActiveTestResp(sequence_id=seq)))
        elif isinstance(pdu, p.Terminate):
            note(self.sp_id, "CMPP_TERMINATE", seq)
            self.send(p.encode(p.TerminateResp(sequence_id=seq)))
            self.close()
        elif isinstance(pdu, p.TerminateResp):
            note(self.sp_id, "CMPP_TERMINATE_RESP", seq)
            self.close()
        elif isinstance(pdu, p.Query):
            self.send(p.encode(p.QueryResp(pdu.time, pdu.query_type, pdu.query_code, (0,) * 8, seq)))
        elif isinstance(pdu, p.Cancel):
            self.send(p.encode(p.CancelResp(1, seq)))  # 1: too late, it has gone out
        elif pdu.COMMAND & 0x80000000:
            note(self.sp_id, _name(pdu), seq)
        else:
            note(self.sp_id, _name(pdu), seq, error="unexpected from an SP")

    def _connect(self, pdu: p.Connect) -> None:
        secret = self.behaviour.credentials.get(pdu.source_addr)
        status = 0
        if pdu.version > VERSION_20:
            status = _CONNECT_VERSION
        elif self.behaviour.credentials and secret is None:
            status = _CONNECT_BAD_ADDR
        elif secret is not None and not auth.source_matches(
            authenticator=pdu.authenticator, source_addr=pdu.source_addr,
            secret=secret, timestamp=pdu.timestamp,
        ):  # fmt: skip
            status = _CONNECT_BAD_AUTH
        self.smsc.note(
            pdu.source_addr, "CMPP_CONNECT", pdu.sequence_id, status=status,
            version=pdu.version, timestamp=pdu.timestamp,
        )  # fmt: skip
        ismg = bytes(16)
        if status == 0:
            self.sp_id = pdu.source_addr
            ismg = auth.authenticator_ismg(
                status=0, authenticator_source=pdu.authenticator, secret=secret or ""
            )
        self.send(p.encode(p.ConnectResp(status, ismg, VERSION_20, pdu.sequence_id)))
        if status == 0:
            for report in self.smsc.unacked_reports.pop(pdu.source_addr, []):
                self.send_report(report)
                self.smsc.receipts_resent += 1

    # -- CMPP_SUBMIT -------------------------------------------------------------------
    def _submit(self, pdu: p.Submit) -> None:
        smsc, behaviour, seq = self.smsc, self.behaviour, pdu.sequence_id
        if self.sp_id is None:
            smsc.note(None, "CMPP_SUBMIT", seq, error="before CMPP_CONNECT")
            self.close()
            return
        if not self._bucket.try_take():
            smsc.throttled += 1
            self._answer(p.encode(p.SubmitResp(0, 8, seq)))
            return
        limit = 159 if pdu.msg_fmt == MsgFmt.ASCII else 140
        msg_id = smsc.msg_ids.next()
        smsc.note(
            self.sp_id, "CMPP_SUBMIT", seq, msg_id=msg_id, src_id=pdu.src_id,
            msg_src=pdu.msg_src, service_id=pdu.service_id,
            dest_terminal_ids=list(pdu.dest_terminal_ids), msg_fmt=pdu.msg_fmt,
            tp_udhi=pdu.tp_udhi, pk_total=pdu.pk_total, pk_number=pdu.pk_number,
            registered_delivery=pdu.registered_delivery, fee_type=pdu.fee_type,
            fee_code=pdu.fee_code, msg_level=pdu.msg_level, msg_content=pdu.msg_content,
        )  # fmt: skip
        if len(pdu.msg_content) > limit or smsc.force_result is not None:
            result = 6 if smsc.force_result is None else smsc.force_result
            self._answer(p.encode(p.SubmitResp(0, result, seq)))
            return
        rng = smsc.faults
        if behaviour.disconnect and rng.random() < behaviour.disconnect:
            self.close()
            return
        lost = bool(behaviour.lose_response) and rng.random() < behaviour.lose_response
        wants_report = pdu.registered_delivery == 1
        if wants_report and behaviour.receipt_before_response:
            self._report(pdu, msg_id)
        if not lost:
            self._answer(p.encode(p.SubmitResp(msg_id, 0, seq)))
        if wants_report and not behaviour.receipt_before_response:
            delay = behaviour.receipt_delay + behaviour.submit_latency
            if delay > 0:
                self._loop.call_later(delay, self._report, pdu, msg_id)
            else:
                self._report(pdu, msg_id)

    def _answer(self, response: bytes) -> None:
        if self.smsc.reorder > 0:
            self._held.append(response)
            if len(self._held) >= self.smsc.reorder:
                held, self._held = self._held, []
                for data in reversed(held):
                    self.send(data)
            return
        latency = self.behaviour.submit_latency
        if latency > 0:
            self._loop.call_later(latency, self.send, response)
        else:
            self.send(response)

    def _report(self, submit: p.Submit, msg_id: int) -> None:
        stamp = auth.beijing_now().strftime("%y%m%d%H%M")
        for number, dest in enumerate(submit.dest_terminal_ids):
            report = StatusReport(msg_id, self.smsc.pick_stat(), stamp, stamp, dest, number)
            deliver = p.Deliver(
                msg_id=self.smsc.msg_ids.next(), dest_id=submit.src_id, src_terminal_id=dest,
                msg_content=report.encode(), registered_delivery=1,
                service_id=submit.service_id,
            )  # fmt: skip
            self.smsc.receipts_sent += 1
            if self._transport is not None:
                self.send_report(deliver)
            elif self.sp_id is not None:  # another connection of this SP, or its next one
                self.smsc.redeliver(self.sp_id, deliver)


async def start_cmpp_server(
    *,
    host: str,
    port: int,
    behaviour: Behaviour,
    record: Record,
    on_event: Callable[[Received], None] | None = None,
) -> tuple[asyncio.Server, CmppSmsc]:
    """Listen on ``host:port`` (0 = any free port); returns the server and its shared state.
    ``on_event`` is called with every entry the server records."""
    smsc = CmppSmsc(behaviour, record, on_event)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: CmppConnection(smsc), host, port)
    return server, smsc
