"""CMPP 2.0 PDUs: the frozen dataclasses, their byte-exact encoding and a total decoder.

Layouts are those of /work/shared/PROTOCOLS.md §3 (CMPP 2.0 sizes, not 3.0): integers are
unsigned big-endian; Octet Strings are fixed width, NUL-padded on the right. On decode an
Octet String ends at its first NUL (C-string reading), which also copes with gateways
that leave garbage after the terminator.

:func:`decode` is total: any byte string gives a PDU or a :class:`ProtocolError` whose
message names the PDU and the field. :func:`encode` refuses a value that does not fit its
field instead of truncating it (``struct`` would truncate silently).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from jingxin.channels.cmpp.fields import (
    HEADER,
    HEADER_LENGTH,
    MAX_CONTENT,
    MAX_DESTINATIONS,
    VERSION_20,
    CommandId,
    MsgFmt,
    fixed,
    octets,
    text,
)
from jingxin.errors import ProtocolError

@dataclass(frozen=True, slots=True)
class Connect:
    """§3.3 CMPP_CONNECT (body 27)."""

    COMMAND: ClassVar[int] = CommandId.CONNECT
    _S: ClassVar[struct.Struct] = struct.Struct(">6s16sBI")
    source_addr: str
    authenticator: bytes
    timestamp: int
    version: int = VERSION_20
    sequence_id: int = 0

    def body(self) -> bytes:
        if len(self.authenticator) != 16:
            raise ProtocolError("CONNECT AuthenticatorSource must be 16 octets")
        src = octets(self.source_addr, 6, "CONNECT Source_Addr")
        return self._S.pack(src, self.authenticator, self.version, self.timestamp)

    @classmethod
    def parse(cls, body: bytes, sequence_id: int) -> Connect:
        fixed("CONNECT", body, (27,))
        src, auth, version, ts = cls._S.unpack(body)
        return cls(text(src), auth, ts, version, sequence_id)


@dataclass(frozen=True, slots=True)
class ConnectResp:
    """§3.4 CMPP_CONNECT_RESP, 2.0: Status is one octet (body 18; 3.0 would be 21)."""

    COMMAND: ClassVar[int] = CommandId.CONNECT_RESP
    _S: ClassVar[struct.Struct] = struct.Struct(">B16sB")
    status: int
    authenticator: bytes = bytes(16)
    version: int = VERSION_20
    sequence_id: int = 0

    def body(self) -> bytes:
        if len(self.authenticator) != 16:
            raise ProtocolError("CONNECT_RESP AuthenticatorISMG must be 16 octets")
        return self._S.pack(self.status, self.authenticator, self.version)

    @classmethod
    def parse(cls, body: bytes, sequence_id: int) -> ConnectResp:
        if len(body) == 21:
            raise ProtocolError("CONNECT_RESP body is 21 octets: a CMPP 3.0 answer (2.0 has 18)")
        fixed("CONNECT_RESP", body, (18,))
        return cls(*cls._S.unpack(body), sequence_id)


@dataclass(frozen=True, slots=True)
class Terminate:
    COMMAND: ClassVar[int] = CommandId.TERMINATE
    sequence_id: int = 0

    def body(self) -> bytes:
        return b""

    @classmethod
    def parse(cls, body: bytes, sequence_id: int) -> Terminate:
        fixed("TERMINATE", body, (0,))
        return cls(sequence_id)


@dataclass(frozen=True, slots=True)
class TerminateResp:
    COMMAND: ClassVar[int] = CommandId.TERMINATE_RESP
    sequence_id: int = 0

    def body(self) -> bytes:
        return b""

    @classmethod
    def parse(cls, body: bytes, sequence_id: int) -> TerminateResp:
        fixed("TERMINATE_RESP", body, (0,))
        return cls(sequence_id)


@dataclass(frozen=True, slots=True)
class ActiveTest:
    COMMAND: ClassVar[int] = CommandId.ACTIVE_TEST
    sequence_id: int = 0

    def body(self) -> bytes:
        return b""

    @classmethod
    def parse(cls, body: bytes, sequence_id: int) -> ActiveTest:
        fixed("ACTIVE_TEST", body, (0,))
        return cls(sequence_id)


@dataclass(frozen=True, slots=True)
class ActiveTestResp:
    """§3.13: the response carries one Reserved octet (13 bytes); a bare header is accepted."""

    COMMAND: ClassVar[int] = CommandId.ACTIVE_TEST_RESP
    reserved: int = 0
    sequence_id: int = 0

    def body(self) -> bytes:
        return bytes((self.reserved,))

    @classmethod
    def parse(cls, body: bytes, sequence_id: int) -> ActiveTestResp:
        fixed("ACTIVE_TEST_RESP", body, (0, 1))
        return cls(body[0] if body else 0, sequence_id)


@dataclass(frozen=True, slots=True)
class Submit:
    """§3.5 CMPP_SUBMIT (2.0): body 117 + 21·DestUsr_tl + 1 + Msg_Length + 8."""

    COMMAND: ClassVar[int] = CommandId.SUBMIT
    _HEAD: ClassVar[struct.Struct] = struct.Struct(">QBBBB10sB21sBBB6s2s6s17s17s21sB")
    dest_terminal_ids: tuple[str, ...]
    msg_content: bytes
    msg_id: int = 0
    pk_total: int = 1
    pk_number: int = 1
    registered_delivery: int = 0
    msg_level: int = 0
    service_id: str = ""
    fee_user_type: int = 0
    fee_terminal_id: str = ""
    tp_pid: int = 0
    tp_udhi: int = 0
    msg_fmt: int = MsgFmt.ASCII
    msg_src: str = ""
    fee_type: str = "01"
    fee_code: str = "000000"
    valid_time: str = ""
    at_time: str = ""
    src_id: str = ""
    reserve: bytes = bytes(8)
    sequence_id: int = 0

    def body(self) -> bytes:
        count = len(self.dest_terminal_ids)
        if not 1 <= count <= MAX_DESTINATIONS:
            raise ProtocolError(f"SUBMIT DestUsr_tl {count} outside 1..{MAX_DESTINATIONS}")
        if len(self.msg_content) > MAX_CONTENT or len(self.reserve) > 8:
            raise ProtocolError(f"SUBMIT Msg_Content of {len(self.msg_content)} octets > 255")
        try:
            head = self._HEAD.pack(
                self.msg_id, self.pk_total, self.pk_number, self.registered_delivery,
                self.msg_level, octets(self.service_id, 10, "SUBMIT Service_Id"),
                self.fee_user_type, octets(self.fee_terminal_id, 21, "SUBMIT Fee_terminal_Id"),
                self.tp_pid, self.tp_udhi, self.msg_fmt, octets(self.msg_src, 6, "SUBMIT Msg_src"),
                octets(self.fee_type, 2, "SUBMIT FeeType"), octets(self.fee_code, 6, "SUBMIT FeeCode"),
                octets(self.valid_time, 17, "SUBMIT ValId_Time"), octets(self.at_time, 17, "SUBMIT At_Time"),
                octets(self.src_id, 21, "SUBMIT Src_Id"), count,
            )  # fmt: skip
        except struct.error as exc:
            raise ProtocolError(f"SUBMIT integer field out of range: {exc}") from None
        dests = b"".join(
            octets(d, 21, "SUBMIT Dest_terminal_Id").ljust(21, b"\0") for d in self.dest_terminal_ids
        )
        tail = bytes((len(self.msg_content),)) + self.msg_content + self.reserve.ljust(8, b"\0")
        return head + dests + tail

    @classmethod
    def parse(cls, body: bytes, sequence_id: int) -> Submit:
        if len(body) < 117 + 1 + 8:
            raise ProtocolError(f"SUBMIT body is {len(body)} octets; the least is 126")
        h = cls._HEAD.unpack_from(body)
        count = h[17]
        if not 1 <= count <= MAX_DESTINATIONS:
            raise ProtocolError(f"SUBMIT DestUsr_tl {count} outside 1..{MAX_DESTINATIONS}")
        at = 117 + 21 * count
        if len(body) < at + 1 + 8:
            raise ProtocolError(f"SUBMIT body of {len(body)} octets is short of {count} Dest_terminal_Id")
        length = body[at]
        if at + 1 + length + 8 != len(body):
            raise ProtocolError(
                f"SUBMIT Msg_Length {length} disagrees with the body "
                f"({len(body) - at - 9} octets left for Msg_Content)"
            )
        dests = tuple(text(body[117 + 21 * i : 138 + 21 * i]) for i in range(count))
        content = body[at + 1 : at + 1 + length]
        return cls(
            dests, content, h[0], h[1], h[2], h[3], h[4], text(h[5]), h[6], text(h[7]), h[8],
            h[9], h[10], text(h[11]), text(h[12]), text(h[13]), text(h[14]), text(h[15]),
            text(h[16]), body[at + 1 + length :], sequence_id,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SubmitResp:
    """§3.6: Msg_Id 8 + Result 1 (2.0)."""

    COMMAND: ClassVar[int] = CommandId.SUBMIT_RESP
    _S: ClassVar[struct.Struct] = struct.Struct(">QB")
    msg_id: int
    result: int = 0
    sequence_id: int = 0

    def body(self) -> bytes:
        return self._S.pack(self.msg_id, self.result)

    @classmethod
    def parse(cls, body: bytes, sequence_id: int) -> SubmitResp:
        fixed("SUBMIT_RESP", body, (9,))
        return cls(*cls._S.unpack(body), sequence_id)


@dataclass(frozen=True, slots=True)
class Deliver:
    """§3.7 CMPP_DELIVER (2.0): body 65 + Msg_Length + 8."""

    COMMAND: ClassVar[int] = CommandId.DELIVER
    _HEAD: ClassVar[struct.Struct] = struct.Struct(">Q21s10sBBB21sBB")
    msg_id: int
    dest_id: str
    src_terminal_id: str
    msg_content: bytes
    registered_delivery: int = 0
    service_id: str = ""
    tp_pid: int = 0
    tp_udhi: int = 0
    msg_fmt: int = MsgFmt.ASCII
    reserved: bytes = bytes(8)
    sequence_id: int = 0

    def body(self) -> bytes:
        if len(self.msg_content) > MAX_CONTENT or len(self.reserved) > 8:
            raise ProtocolError(f"DELIVER Msg_Content of {len(self.msg_content)} octets > 255")
        try:
            head = self._HEAD.pack(
                self.msg_id, octets(self.dest_id, 21, "DELIVER Dest_Id"),
                octets(self.service_id, 10, "DELIVER Service_Id"), self.tp_pid, self.tp_udhi,
                self.msg_fmt, octets(self.src_terminal_id, 21, "DELIVER Src_terminal_Id"),
                self.registered_delivery, len(self.msg_content),
            )  # fmt: skip
        except struct.error as exc:
            raise ProtocolError(f"DELIVER integer field out of range: {exc}") from None
        return head + self.msg_content + self.reserved.ljust(8, b"\0")

    @classmethod
    def parse(cls, body: bytes, sequence_id: int) -> Deliver:
        if len(body) < 65 + 8:
            raise ProtocolError(f"DELIVER body is {len(body)} octets; the least is 73")
        h = cls._HEAD.unpack_from(body)
        length = h[8]
        if 65 + length + 8 != len(body):
            raise ProtocolError(
                f"DELIVER Msg_Length {length} disagrees with the body "
                f"({len(body) - 73} octets left for Msg_Content)"
            )
        return cls(
            h[0], text(h[1]), text(h[6]), body[65 : 65 + length], h[7], text(h[2]), h[3],
            h[4], h[5], body[65 + length :], sequence_id,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeliverResp:
    """§3.9: Msg_Id (copied from the DELIVER) 8 + Result 1."""

    COMMAND: ClassVar[int] = CommandId.DELIVER_RESP
    _S: ClassVar[struct.Struct] = struct.Struct(">QB")
    msg_id: int
    result: int = 0
    sequence_id: int = 0

    def body(self) -> bytes:
        return self._S.pack(self.msg_id, self.result)

    @classmethod
    def parse(cls, body: bytes, sequence_id: int) -> DeliverResp:
        fixed("DELIVER_RESP", body, (9,))
        return cls(*cls._S.unpack(body), sequence_id)


@dataclass(frozen=True, slots=True)
class Query:
    """§3.14 CMPP_QUERY: Time 8 (YYYYMMDD) · Query_Type 1 · Query_Code 10 · Reserve 8."""

    COMMAND: ClassVar[int] = CommandId.QUERY
    _S: ClassVar[struct.Struct] = struct.Struct(">8sB10s8s")
    time: str
    query_type: int = 0
    query_code: str = ""
    reserve: str = ""
    sequence_id: int = 0

    def body(self) -> bytes:
        return self._S.pack(
            octets(self.time, 8, "QUERY Time"), self.query_type,
            octets(self.query_code, 10, "QUERY Query_Code"), octets(self.reserve, 8, "QUERY Reserve"),
        )  # fmt: skip

    @classmethod
    def parse(cls, body: bytes, sequence_id: int) -> Query:
        fixed("QUERY", body, (27,))
        t, qt, qc, r = cls._S.unpack(body)
        return cls(text(t), qt, text(qc), text(r), sequence_id)


@dataclass(frozen=True, slots=True)
class QueryResp:
    """§3.14 CMPP_QUERY_RESP: Time · Query_Type · Query_Code · eight 4-octet counters."""

    COMMAND: ClassVar[int] = CommandId.QUERY_RESP
    _S: ClassVar[struct.Struct] = struct.Struct(">8sB10s8I")
    time: str
    query_type: int
    query_code: str
    counters: tuple[int, int, int, int, int, int, int, int]  # MT_TLMsg … MO_FL
    sequence_id: int = 0

    def body(self) -> bytes:
        return self._S.pack(
            octets(self.time, 8, "QUERY_RESP Time"), self.query_type,
            octets(self.query_code, 10, "QUERY_RESP Query_Code"), *self.counters,
        )  # fmt: skip

    @classmethod
    def parse(cls, body: bytes, sequence_id: int) -> QueryResp:
        fixed("QUERY_RESP", body, (51,))
        t, qt, qc, *counters = cls._S.unpack(body)
        return cls(text(t), qt, text(qc), tuple(counters), sequence_id)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Cancel:
    COMMAND: ClassVar[int] = CommandId.CANCEL
    msg_id: int
    sequence_id: int = 0

    def body(self) -> bytes:
        return self.msg_id.to_bytes(8, "big")

    @classmethod
    def parse(cls, body: bytes, sequence_id: int) -> Cancel:
        fixed("CANCEL", body, (8,))
        return cls(int.from_bytes(body, "big"), sequence_id)


@dataclass(frozen=True, slots=True)
class CancelResp:
    """§3.14: Success_Id. Its 2.0 width is unconfirmed: we send 4 octets (SMSGate), read 1 or 4."""

    COMMAND: ClassVar[int] = CommandId.CANCEL_RESP
    success_id: int
    sequence_id: int = 0

    def body(self) -> bytes:
        return self.success_id.to_bytes(4, "big")

    @classmethod
    def parse(cls, body: bytes, sequence_id: int) -> CancelResp:
        fixed("CANCEL_RESP", body, (1, 4))
        return cls(int.from_bytes(body, "big"), sequence_id)


Pdu = (
    Connect | ConnectResp | Terminate | TerminateResp | ActiveTest | ActiveTestResp | Submit
    | SubmitResp | Deliver | DeliverResp | Query | QueryResp | Cancel | CancelResp
)  # fmt: skip
PDU_TYPES: tuple[type, ...] = (
    Connect, ConnectResp, Terminate, TerminateResp, ActiveTest, ActiveTestResp, Submit,
    SubmitResp, Deliver, DeliverResp, Query, QueryResp, Cancel, CancelResp,
)  # fmt: skip
_PARSERS: dict[int, Callable[[bytes, int], Pdu]] = {t.COMMAND: t.parse for t in PDU_TYPES}  # type: ignore[attr-defined]


def encode(pdu: Pdu, *, sequence_id: int | None = None) -> bytes:
    """The PDU on the wire; ``sequence_id`` overrides the one the PDU carries."""
    body = pdu.body()
    seq = pdu.sequence_id if sequence_id is None else sequence_id
    return HEADER.pack(HEADER_LENGTH + len(body), pdu.COMMAND, seq) + body


def decode(frame: bytes) -> Pdu:
    """One whole PDU (header included) → the PDU, or ProtocolError saying what is wrong."""
    if len(frame) < HEADER_LENGTH:
        raise ProtocolError(f"PDU of {len(frame)} octets is shorter than the 12-octet header")
    total, command, seq = HEADER.unpack_from(frame)
    if total != len(frame):
        raise ProtocolError(f"Total_Length {total} but the PDU has {len(frame)} octets")
    parser = _PARSERS.get(command)
    if parser is None:
        raise ProtocolError(f"unknown Command_Id 0x{command:08X} (Sequence_Id {seq})")
    return parser(bytes(frame[HEADER_LENGTH:]), seq)
