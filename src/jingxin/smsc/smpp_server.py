"""The simulator's SMPP 3.4 server: binds, submits, receipts and MO, per a :class:`Behaviour`.

One :class:`SmppSmsc` holds what all connections share (behaviour, record, message ids,
bound sessions for receipts and MO); one :class:`SmscConnection` per TCP connection
speaks the protocol. Like the client it is an :class:`asyncio.Protocol` with batched
writes, so a benchmark measures the client, not the simulator.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import random
import struct
from datetime import datetime
from typing import Any

from jingxin.channels.smpp import codec, receipt, short_message, tlv
from jingxin.channels.smpp import pdu as p
from jingxin.channels.smpp import status as st
from jingxin.channels.smpp.concat import UDHI
from jingxin.channels.smpp.framer import Framer
from jingxin.channels.throttle import TokenBucket
from jingxin.channels.writer import BatchedWriter
from jingxin.domain.sms import ReceiptStatus
from jingxin.smsc.behaviour import Behaviour
from jingxin.smsc.record import Record

log = logging.getLogger(__name__)

SMSC_SYSTEM_ID = "jingxin-sim"
WRITE_BATCH = 5
RESEND_AFTER = 1.0  # seconds before a receipt the ESME refused is delivered again
_SUBMIT_SM_RESP = p.SubmitSmResp.command_id
_DELIVER_SM = p.DeliverSm.command_id
_DELIVER_SM_RESP_ID = p.DeliverSmResp.command_id.to_bytes(4, "big")
_RECEIPTED_ID_TAG = tlv.TAGS["receipted_message_id"][0]
_TRANSMIT = {p.BindTransmitter, p.BindTransceiver}
_RECEIVE = {p.BindReceiver, p.BindTransceiver}
_HEADER_ONLY_RESP = {p.EnquireLink: p.EnquireLinkResp, p.Unbind: p.UnbindResp,
                     p.CancelSm: p.CancelSmResp, p.ReplaceSm: p.ReplaceSmResp}  # fmt: skip


class SmppSmsc:
    """Shared state of the SMPP side of the simulator."""

    def __init__(self, behaviour: Behaviour, record: Record) -> None:
        self.behaviour = behaviour
        self.record = record
        self.rng = random.Random(behaviour.seed)
        # Drops and lost responses draw from a stream of their own, one draw per submit,
        # so a seed fixes which submit they hit whatever the receipts' timing draws meanwhile.
        self.faults = random.Random(behaviour.seed)
        self.connections: set[SmscConnection] = set()
        self._ids = itertools.count(1)
        self._run = self.rng.randrange(0x1000, 0xFFFF)
        self._mo_refs = itertools.count(1)
        self._mo_turn = itertools.count()
        states = [(ReceiptStatus(name), weight) for name, weight in behaviour.status_mix.items()]
        total = sum(weight for _, weight in states) or 1.0
        self._states = [state for state, _ in states]
        self._cumulative = list(itertools.accumulate(weight / total for _, weight in states))
        self.receipts_sent = 0
        self.receipts_resent = 0
        self.mo_sent = 0
        # Receipts and MO a connection was closed with before the ESME acknowledged them,
        # per system_id: sent again on its next receiver bind, as a real SMSC does.
        self.unacked_receipts: dict[str, list[bytes]] = {}
        self._tlv_cache: dict[tuple[ReceiptStatus, int], bytes] = {}

    def receipt_tlvs(self, message_id: str, status: ReceiptStatus, error: int) -> bytes:
        """receipted_message_id + the (cached) message_state and network_error_code TLVs."""
        tail = self._tlv_cache.get((status, error))
        if tail is None:
            tlvs = receipt.tlvs_for(message_id="", status=status, error=error)
            del tlvs["receipted_message_id"]
            tail = self._tlv_cache[(status, error)] = tlv.encode(tlvs)
        raw = message_id.encode("latin-1")
        return struct.pack(">HH", _RECEIPTED_ID_TAG, len(raw) + 1) + raw + b"\0" + tail

    def new_message_id(self) -> str:
        return f"{self._run:04x}{next(self._ids):08x}"

    def pick_status(self) -> ReceiptStatus:
        index = bisect.bisect_left(self._cumulative, self.rng.random())
        return self._states[min(index, len(self._states) - 1)]

    def receivers(self, system_id: str | None = None) -> list[SmscConnection]:
        return [
            conn for conn in self.connections
            if conn.bind_class in _RECEIVE and (system_id is None or conn.system_id == system_id)
        ]  # fmt: skip

    def redeliver(self, system_id: str, data: bytes) -> None:
        """Send an encoded deliver_sm again (new sequence number) to a receiver of
        ``system_id``, or keep it for that ESME's next bind."""
        receivers = self.receivers(system_id)
        if not receivers:
            self.unacked_receipts.setdefault(system_id, []).append(data)
            return
        receivers[0].send_receipt(data)

    def inject_mo(self, *, source: str, destination: str, text: str) -> int:
        """Deliver an MO to one bound receiver (round robin); returns the parts sent.
        Each part is kept until the ESME acknowledges it: one the ESME never answered is
        delivered again on its next bind (the same PDU, a new sequence number)."""
        receivers = self.receivers()
        if not receivers:
            raise LookupError("no ESME is bound as receiver or transceiver")
        conn = receivers[next(self._mo_turn) % len(receivers)]
        parts = short_message.parts(text, ref=next(self._mo_refs) & 0xFF)
        for part in parts:
            conn.send_receipt(codec.encode(p.DeliverSm(
                0, source_addr=source, destination_addr=destination, esm_class=part.esm_class,
                data_coding=part.data_coding, short_message=part.short_message, tlvs=part.tlvs,
            )))  # fmt: skip
        self.mo_sent += 1
        return len(parts)


class SmscConnection(asyncio.Protocol):
    """One ESME connection to the simulator."""

    def __init__(self, smsc: SmppSmsc) -> None:
        self.smsc = smsc
        self.behaviour = smsc.behaviour
        self.bind_class: type | None = None
        self.system_id = ""
        self._loop = asyncio.get_running_loop()
        self._framer = Framer()
        self._transport: asyncio.Transport | None = None
        self._bucket = TokenBucket(self.behaviour.tps, burst=max(1.0, self.behaviour.tps / 10))
        self._sequence = itertools.count(1)
        # Responses leave in batches of at most WRITE_BATCH, so the ESME can start on the
        # first ones while the rest are produced.
        self._writer = BatchedWriter(flush_at=WRITE_BATCH)
        self.unacked = 0
        self._receipts: dict[int, bytes] = {}  # sequence_number -> deliver_sm not yet acked

    # ------------------------------------------------------------------ transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._writer.attach(self._transport)
        self.smsc.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.smsc.connections.discard(self)
        self._transport = None
        self._writer.attach(None)
        if self._receipts:
            self.smsc.unacked_receipts.setdefault(self.system_id, []).extend(self._receipts.values())
            self._receipts.clear()

    def send_receipt(self, data: bytes) -> None:
        """Send an encoded deliver_sm (a receipt or an MO part) under a fresh sequence
        number and keep it until the ESME acknowledges it."""
        seq = next(self._sequence)
        data = data[:12] + seq.to_bytes(4, "big") + data[16:]
        self._receipts[seq] = data
        self.unacked += 1
        self.send(data)

    def send(self, data: bytes) -> None:
        self._writer.write(data)

    def send_request(self, message: p.Pdu) -> None:
        message.sequence_number = next(self._sequence)
        self.unacked += 1
        self.send(codec.encode(message))

    def close(self) -> None:
        if self._transport is not None:
            self._writer.flush()
            self._transport.close()

    # ------------------------------------------------------------------ receiving

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._framer.feed(data)
        except codec.PduError as exc:
            self._nack(exc)
            self.close()
            return
        for frame in frames:
            if frame[4:8] == _DELIVER_SM_RESP_ID:  # the ESME acknowledging a receipt/MO
                self._acknowledged(int.from_bytes(frame[12:16], "big"), int.from_bytes(frame[8:12], "big"))
                continue
            try:
                message = codec.decode(frame)
            except codec.PduError as exc:
                self._nack(exc)
                continue
            self._dispatch(message)

    def _acknowledged(self, seq: int, status: int) -> None:
        self.unacked -= 1
        data = self._receipts.pop(seq, None)
        if data is not None and status != st.ESME_ROK:  # the ESME could not take it: try later
            self.smsc.receipts_resent += 1
            self._loop.call_later(RESEND_AFTER, self.smsc.redeliver, self.system_id, data)

    def _nack(self, exc: codec.PduError) -> None:
        self.smsc.record.add("smpp", self.system_id, "garbage", exc.sequence_number, error=str(exc))
        self.send(codec.HEADER.pack(16, p.GenericNack.command_id, exc.status, exc.sequence_number))

    def _dispatch(self, message: Any) -> None:
        cls = type(message)
        seq = message.sequence_number
        if cls.is_response:
            self.unacked -= 1
            return
        if cls is p.SubmitSm:
            self._submit(message)
            return
        self.smsc.record.add("smpp", self.system_id, cls.command_name, seq)
        if cls in p.BIND_REQUESTS:
            self._bind(message)
        elif self.bind_class is None and cls is not p.EnquireLink:
            self._respond(cls, seq, st.ESME_RINVBNDSTS)
        elif cls in _HEADER_ONLY_RESP:
            self.send(codec.HEADER.pack(16, _HEADER_ONLY_RESP[cls].command_id, 0, seq))
            if cls is p.Unbind:
                self.close()
        elif cls is p.QuerySm:
            self.send(codec.encode(p.QuerySmResp(seq, 0, message.message_id, "", 2, 0)))
        elif cls is p.SubmitMulti:
            msg_id = self.smsc.new_message_id()
            self.send(codec.encode(p.SubmitMultiResp(seq, 0, msg_id, ())))
        elif cls is p.DataSm:
            self.send(codec.encode(p.DataSmResp(seq, 0, self.smsc.new_message_id())))
        else:
            self._respond(cls, seq, st.ESME_RINVCMDID)

    def _respond(self, cls: Any, seq: int, status: int) -> None:
        resp = p.response_class(cls) or p.GenericNack
        self.send(codec.encode(resp(seq, status)))

    def _bind(self, message: Any) -> None:
        cls = type(message)
        resp = p.response_class(cls)
        assert resp is not None
        status = st.ESME_ROK
        credentials = self.behaviour.credentials
        if self.bind_class is not None:
            status = st.ESME_RALYBND
        elif credentials and message.system_id not in credentials:
            status = st.ESME_RINVSYSID
        elif credentials and credentials[message.system_id] != message.password:
            status = st.ESME_RINVPASWD
        if status != st.ESME_ROK:
            self.send(codec.encode(resp(message.sequence_number, status)))
            return
        self.bind_class = cls
        self.system_id = message.system_id
        self.send(codec.encode(resp(message.sequence_number, 0, SMSC_SYSTEM_ID, {"sc_interface_version": 0x34})))
        if cls in _RECEIVE:
            for data in self.smsc.unacked_receipts.pop(self.system_id, []):
                self.send_receipt(data)
                self.smsc.receipts_resent += 1

    # ------------------------------------------------------------------ submit_sm

    def _submit(self, message: Any) -> None:
        smsc, behaviour, seq = self.smsc, self.behaviour, message.sequence_number
        if self.bind_class not in _TRANSMIT:
            self.send(codec.encode(p.SubmitSmResp(seq, st.ESME_RINVBNDSTS)))
            return
        if not self._bucket.try_take():
            self.send(codec.encode(p.SubmitSmResp(seq, st.ESME_RTHROTTLED)))
            return
        message_id = smsc.new_message_id()
        smsc.record.add(
            "smpp", self.system_id, "submit_sm", seq, message_id=message_id,
            source_addr=message.source_addr, destination_addr=message.destination_addr,
            data_coding=message.data_coding, esm_class=message.esm_class,
            registered_delivery=message.registered_delivery,
            short_message=message.short_message, tlvs=message.tlvs,
        )  # fmt: skip
        rng = smsc.faults
        if behaviour.disconnect and rng.random() < behaviour.disconnect:
            self.close()
            return
        lost = bool(behaviour.lose_response) and rng.random() < behaviour.lose_response
        wants_receipt = message.registered_delivery & 0x03 in (1, 2)
        if wants_receipt and behaviour.receipt_before_response:
            self._receipt(message, message_id)
        if not lost:
            resp = codec.encode_message_id_resp(_SUBMIT_SM_RESP, seq, message_id)
            if behaviour.submit_latency > 0:
                self._loop.call_later(behaviour.submit_latency, self.send, resp)
            else:
                self.send(resp)
        if wants_receipt and not behaviour.receipt_before_response:
            delay = behaviour.receipt_delay + behaviour.submit_latency
            if delay > 0:
                self._loop.call_later(delay, self._receipt, message, message_id)
            else:
                self._receipt(message, message_id)

    def _receipt(self, submit: Any, message_id: str) -> None:
        smsc = self.smsc
        status = smsc.pick_status()
        if submit.registered_delivery & 0x03 == 2 and status is ReceiptStatus.DELIVERED:
            return  # receipts on failure only
        error = 0 if status is ReceiptStatus.DELIVERED else 1
        now = datetime.now()
        body = submit.short_message or submit.tlvs.get("message_payload", b"")
        if submit.esm_class & UDHI and body:
            body = body[1 + body[0] :]
        # 20 characters of text: 20 septets in GSM (unpacked), 40 octets in UCS-2.
        sample = body[:40] if submit.data_coding == short_message.DC_UCS2 else body[:20]
        text = receipt.format_text(
            message_id=message_id, status=status, submit_date=now, done_date=now, error=error,
            text=short_message.decode(sample, submit.data_coding),
        )  # fmt: skip
        deliver = p.DeliverSm(
            0, source_addr=submit.destination_addr, destination_addr=submit.source_addr,
            esm_class=0x04, short_message=text.encode("latin-1", "replace"),
        )  # fmt: skip
        data = codec.encode_sm(_DELIVER_SM, deliver, tlv_bytes=smsc.receipt_tlvs(message_id, status, error))
        smsc.receipts_sent += 1
        if self.bind_class in _RECEIVE and self._transport:
            self.send_receipt(data)
        else:  # another receiver of this ESME, or its next bind
            smsc.redeliver(self.system_id, data)


async def start_smpp_server(
    *, host: str, port: int, behaviour: Behaviour, record: Record
) -> tuple[asyncio.Server, SmppSmsc]:
    """Listen on ``host:port`` (0 = any free port)."""
    smsc = SmppSmsc(behaviour, record)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SmscConnection(smsc), host, port)
    return server, smsc
