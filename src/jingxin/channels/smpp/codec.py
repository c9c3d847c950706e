"""The SMPP 3.4 wire form: encode any :mod:`.pdu` to bytes and decode any bytes, totally.

``decode`` turns every byte string into a PDU or raises :class:`PduError` (a
ProtocolError) carrying the command id and sequence number when they could be read, and the
command_status a generic_nack should carry. Lengths are checked before anything is
allocated. submit_sm encoding and submit_sm_resp / deliver_sm decoding have hand-written
fast paths (the per-message hot loop); the table-driven code handles everything else and
is the reference the fast paths are tested against.
"""

from __future__ import annotations

import struct
from typing import Any

from jingxin.channels.smpp import pdu as p
from jingxin.channels.smpp import status as st
from jingxin.channels.smpp import tlv
from jingxin.errors import ProtocolError

HEADER = struct.Struct(">IIII")
HEADER_SIZE = 16
DEFAULT_MAX_PDU_LENGTH = 64 * 1024
_INT = {"i1": struct.Struct(">B"), "i2": struct.Struct(">H"), "i4": struct.Struct(">I")}
_UNSUCCESS_TAIL = struct.Struct(">I")


class PduError(ProtocolError):
    """A PDU that cannot be decoded or encoded.

    ``command_id`` / ``sequence_number`` are those of the offending PDU when known (0
    otherwise); ``status`` is what a generic_nack should answer; ``fatal`` means the byte
    stream itself can no longer be trusted (bad command_length), so the link must close.
    """

    def __init__(
        self,
        message: str,
        *,
        command_id: int = 0,
        sequence_number: int = 0,
        status: int = st.ESME_RUNKNOWNERR,
        fatal: bool = False,
    ) -> None:
        super().__init__(message)
        self.command_id = command_id
        self.sequence_number = sequence_number
        self.status = status
        self.fatal = fatal


# ----------------------------------------------------------------------------- encoding


def encode(message: p.Pdu) -> bytes:
    """The wire bytes of ``message``. Raises PduError if a field does not fit its type."""
    cls = type(message)
    if cls is p.SubmitSm or cls is p.DeliverSm:
        return encode_sm(cls.command_id, message)
    return encode_generic(message)


def encode_generic(message: p.Pdu) -> bytes:
    """The table-driven encoder (every PDU type; the reference for the fast path)."""
    cls = type(message)
    where = f"{cls.command_name} seq={message.sequence_number}"
    try:
        body = bytearray()
        for spec in cls.fields:
            _encode_field(body, spec, getattr(message, spec.name), where)
        body += tlv.encode(message.tlvs)
    except ProtocolError as exc:
        raise PduError(f"{where}: {exc}", command_id=cls.command_id) from None
    header = HEADER.pack(
        HEADER_SIZE + len(body), cls.command_id, message.command_status, message.sequence_number
    )
    return header + bytes(body)


def _cstring(value: str, size: int, name: str) -> bytes:
    if not value:
        return b""
    try:
        raw = value.encode("latin-1")
    except (UnicodeEncodeError, AttributeError):
        raise ProtocolError(f"field {name}: {value!r} is not an 8-bit string") from None
    if len(raw) >= size or b"\0" in raw:
        raise ProtocolError(
            f"field {name}: {value!r} must be at most {size - 1} octets without NUL"
        )
    return raw


def _encode_field(body: bytearray, spec: p.FieldSpec, value: Any, where: str) -> None:
    kind = spec.kind
    if kind == "c":
        body += _cstring(value, spec.size, spec.name)
        body.append(0)
    elif kind == "sm":
        if not isinstance(value, bytes | bytearray) or len(value) > spec.size:
            raise ProtocolError(f"field {spec.name}: at most {spec.size} octets")
        body.append(len(value))
        body += value
    elif kind == "dests":
        if len(value) > 254:
            raise ProtocolError("submit_multi: at most 254 destinations")
        body.append(len(value))
        for dest in value:
            body.append(dest.dest_flag)
            if dest.dest_flag == p.SME_ADDRESS:
                body += bytes((dest.ton, dest.npi))
                body += _cstring(dest.address, 21, "destination_addr") + b"\0"
            elif dest.dest_flag == p.DISTRIBUTION_LIST:
                body += _cstring(dest.address, 21, "dl_name") + b"\0"
            else:
                raise ProtocolError(f"dest_flag {dest.dest_flag} is neither 1 nor 2")
    elif kind == "unsuccess":
        if len(value) > 255:
            raise ProtocolError("submit_multi_resp: at most 255 unsuccess_sme entries")
        body.append(len(value))
        for sme in value:
            body += bytes((sme.ton, sme.npi))
            body += _cstring(sme.address, 21, "destination_addr") + b"\0"
            body += _UNSUCCESS_TAIL.pack(sme.error_status_code)
    else:
        try:
            body += _INT[kind].pack(value)
        except (struct.error, TypeError):
            raise ProtocolError(f"field {spec.name}: {value!r} does not fit {kind}") from None


def encode_message_id_resp(command_id: int, sequence: int, message_id: str, status: int = 0) -> bytes:
    """Fast path for submit_sm_resp / deliver_sm_resp / data_sm_resp without TLVs."""
    raw = _cstring(message_id, 65, "message_id")
    return HEADER.pack(17 + len(raw), command_id, status, sequence) + raw + b"\0"


_SM_FORMAT = b"%b\0%c%c%b\0%c%c%b\0%c%c%c%b\0%b\0%c%c%c%c%c%b"


def encode_sm(command_id: int, m: Any, *, tlv_bytes: bytes = b"") -> bytes:
    """Fast path for submit_sm and deliver_sm (same layout): one bytes %-format.

    ``tlv_bytes`` are TLVs already in wire form, appended after ``m.tlvs`` (a sender that
    repeats the same TLVs encodes them once)."""
    sm = m.short_message
    try:
        if len(sm) > 254:
            raise ProtocolError("field short_message: at most 254 octets")
        body = _SM_FORMAT % (
            _cstring(m.service_type, 6, "service_type"),
            m.source_addr_ton, m.source_addr_npi,
            _cstring(m.source_addr, 21, "source_addr"),
            m.dest_addr_ton, m.dest_addr_npi,
            _cstring(m.destination_addr, 21, "destination_addr"),
            m.esm_class, m.protocol_id, m.priority_flag,
            _cstring(m.schedule_delivery_time, 17, "schedule_delivery_time"),
            _cstring(m.validity_period, 17, "validity_period"),
            m.registered_delivery, m.replace_if_present_flag, m.data_coding,
            m.sm_default_msg_id, len(sm), sm,
        )  # fmt: skip
        if m.tlvs:
            body += tlv.encode(m.tlvs)
        body += tlv_bytes
    except (ProtocolError, ValueError, TypeError, OverflowError) as exc:
        name = p.REGISTRY[command_id].command_name
        raise PduError(f"{name} seq={m.sequence_number}: {exc}", command_id=command_id) from None
    return HEADER.pack(HEADER_SIZE + len(body), command_id, m.command_status, m.sequence_number) + body


# ----------------------------------------------------------------------------- decoding


def decode(data: bytes, *, max_length: int = DEFAULT_MAX_PDU_LENGTH) -> p.Pdu:
    """Decode one whole PDU. Total: returns a PDU or raises :class:`PduError`."""
    size = len(data)
    if size < HEADER_SIZE:
        raise PduError(
            f"PDU of {size} octets is shorter than the 16-octet header",
            status=st.ESME_RINVCMDLEN,
            fatal=True,
        )
    length, command_id, status, sequence = HEADER.unpack_from(data)
    check_length(length, max_length, command_id=command_id, sequence_number=sequence)
    if length != size:
        raise PduError(
            f"command_length {length} does not match the {size} octets received",
            command_id=command_id,
            sequence_number=sequence,
            status=st.ESME_RINVCMDLEN,
            fatal=True,
        )
    cls = p.REGISTRY.get(command_id)
    if cls is None:
        raise PduError(
            f"unknown command_id 0x{command_id:08X} (seq={sequence})",
            command_id=command_id,
            sequence_number=sequence,
            status=st.ESME_RINVCMDID,
        )
    # The error context is only formatted when there is an error (this is the hot path).
    where = cls.command_name
    try:
        if cls is p.SubmitSmResp or cls is p.DeliverSmResp:
            return _decode_message_id_resp(cls, data, status, sequence, where)
        if cls is p.DeliverSm or cls is p.SubmitSm:
            return _decode_sm(cls, data, status, sequence, where)
        return _decode_generic(cls, data, status, sequence, where)
    except ProtocolError as exc:
        reason = str(exc).removeprefix(f"{where}: ")
        raise PduError(
            f"{where} seq={sequence}: {reason}",
            command_id=command_id,
            sequence_number=sequence,
            status=st.ESME_RINVCMDLEN,
        ) from None


def read_message_id_resp(frame: bytes) -> tuple[int, str] | None:
    """(command_status, message_id) of a TLV-free submit_sm_resp frame, or None to decode it
    fully. The session's hot path: no PDU object is built."""
    size = len(frame)
    status = int.from_bytes(frame[8:12], "big")
    if size == HEADER_SIZE:
        return status, ""
    nul = frame.find(b"\0", HEADER_SIZE, HEADER_SIZE + 65)
    if nul != size - 1:
        return None
    return status, frame[HEADER_SIZE:nul].decode("latin-1")


def check_length(length: int, max_length: int, *, command_id: int = 0, sequence_number: int = 0) -> None:
    """Refuse a command_length before reading (or allocating) the body."""
    if length < HEADER_SIZE or length > max_length:
        raise PduError(
            f"command_length {length} outside 16..{max_length}",
            command_id=command_id,
            sequence_number=sequence_number,
            status=st.ESME_RINVCMDLEN,
            fatal=True,
        )


def _read_cstring(data: bytes, pos: int, end: int, size: int, name: str, where: str) -> tuple[str, int]:
    nul = data.find(b"\0", pos, min(end, pos + size))
    if nul < 0:
        if end - pos < size:
            raise ProtocolError(f"{where}: field {name} has no NUL before the body ends at {end}")
        raise ProtocolError(f"{where}: field {name} is longer than {size - 1} octets")
    return data[pos:nul].decode("latin-1"), nul + 1


def _decode_message_id_resp(cls: Any, data: bytes, status: int, seq: int, where: str) -> p.Pdu:
    end = len(data)
    if end == HEADER_SIZE:  # an error response may carry no body at all
        return cls(seq, status)
    if data[end - 1] == 0 and data.find(b"\0", HEADER_SIZE) == end - 1 and end - HEADER_SIZE <= 65:
        return cls(seq, status, data[HEADER_SIZE : end - 1].decode("latin-1"), {})
    message_id, pos = _read_cstring(data, HEADER_SIZE, end, 65, "message_id", where)
    tlvs = tlv.decode(data, pos, end, where=where) if pos < end else {}
    return cls(seq, status, message_id, tlvs)


def _decode_sm(cls: Any, data: bytes, status: int, seq: int, where: str) -> p.Pdu:
    # Hand-inlined: empty C-strings (service_type, the two times) are the norm and cost one
    # index; the addresses cost one find each. Errors go through _read_cstring for the reason.
    end = len(data)
    rc = _read_cstring
    pos = HEADER_SIZE
    if pos < end and data[pos] == 0:
        service_type, pos = "", pos + 1
    else:
        service_type, pos = rc(data, pos, end, 6, "service_type", where)
    if pos + 2 > end:
        raise ProtocolError(f"{where}: body ends before source_addr")
    source_ton, source_npi = data[pos], data[pos + 1]
    pos += 2
    nul = data.find(b"\0", pos, min(end, pos + 21))
    if nul < 0:
        rc(data, pos, end, 21, "source_addr", where)
    source_addr, pos = data[pos:nul].decode("latin-1"), nul + 1
    if pos + 2 > end:
        raise ProtocolError(f"{where}: body ends before destination_addr")
    dest_ton, dest_npi = data[pos], data[pos + 1]
    pos += 2
    nul = data.find(b"\0", pos, min(end, pos + 21))
    if nul < 0:
        rc(data, pos, end, 21, "destination_addr", where)
    destination, pos = data[pos:nul].decode("latin-1"), nul + 1
    if pos + 5 > end:
        raise ProtocolError(f"{where}: body ends before esm_class")
    esm_class, protocol_id, priority = data[pos], data[pos + 1], data[pos + 2]
    pos += 3
    if data[pos] == 0:
        schedule, pos = "", pos + 1
    else:
        schedule, pos = rc(data, pos, end, 17, "schedule_delivery_time", where)
    if pos < end and data[pos] == 0:
        validity, pos = "", pos + 1
    else:
        validity, pos = rc(data, pos, end, 17, "validity_period", where)
    if pos + 5 > end:
        raise ProtocolError(f"{where}: body ends before short_message")
    registered, replace, coding, default_id, sm_length = data[pos : pos + 5]
    pos += 5
    if pos + sm_length > end:
        raise ProtocolError(f"{where}: sm_length {sm_length} runs past the PDU end")
    short_message = data[pos : pos + sm_length]
    pos += sm_length
    tlvs = tlv.decode(data, pos, end, where=where) if pos < end else {}
    return cls(
        seq, status, service_type, source_ton, source_npi, source_addr, dest_ton, dest_npi,
        destination, esm_class, protocol_id, priority, schedule, validity, registered,
        replace, coding, default_id, short_message, tlvs,
    )  # fmt: skip


def _decode_generic(cls: Any, data: bytes, status: int, seq: int, where: str) -> p.Pdu:
    end = len(data)
    if cls.is_response and end == HEADER_SIZE:
        return cls(seq, status)
    values: list[Any] = [seq, status]
    pos = HEADER_SIZE
    for spec in cls.fields:
        value, pos = _decode_field(spec, data, pos, end, where)
        values.append(value)
    tlvs = tlv.decode(data, pos, end, where=where) if pos < end else {}
    return cls(*values, tlvs)


def _byte(data: bytes, pos: int, end: int, name: str, where: str) -> int:
    if pos >= end:
        raise ProtocolError(f"{where}: body ends before {name}")
    return data[pos]


def _decode_field(spec: p.FieldSpec, data: bytes, pos: int, end: int, where: str) -> tuple[Any, int]:
    kind = spec.kind
    if kind == "c":
        return _read_cstring(data, pos, end, spec.size, spec.name, where)
    if kind == "sm":
        length = _byte(data, pos, end, "sm_length", where)
        if pos + 1 + length > end:
            raise ProtocolError(f"{where}: sm_length {length} runs past the PDU end")
        return data[pos + 1 : pos + 1 + length], pos + 1 + length
    if kind == "dests":
        return _decode_dests(data, pos, end, where)
    if kind == "unsuccess":
        return _decode_unsuccess(data, pos, end, where)
    packer = _INT[kind]
    if pos + packer.size > end:
        raise ProtocolError(f"{where}: body ends before {spec.name}")
    return packer.unpack_from(data, pos)[0], pos + packer.size


def _decode_dests(data: bytes, pos: int, end: int, where: str) -> tuple[tuple, int]:
    count = _byte(data, pos, end, "number_of_dests", where)
    pos += 1
    dests = []
    for _ in range(count):
        flag = _byte(data, pos, end, "dest_flag", where)
        if flag == p.SME_ADDRESS:
            if pos + 3 > end:
                raise ProtocolError(f"{where}: body ends inside a destination")
            ton, npi = data[pos + 1], data[pos + 2]
            address, pos = _read_cstring(data, pos + 3, end, 21, "destination_addr", where)
            dests.append(p.Destination(flag, address, ton, npi))
        elif flag == p.DISTRIBUTION_LIST:
            name, pos = _read_cstring(data, pos + 1, end, 21, "dl_name", where)
            dests.append(p.Destination(flag, name))
        else:
            raise ProtocolError(f"{where}: dest_flag {flag} is neither 1 nor 2")
    return tuple(dests), pos


def _decode_unsuccess(data: bytes, pos: int, end: int, where: str) -> tuple[tuple, int]:
    count = _byte(data, pos, end, "no_unsuccess", where)
    pos += 1
    smes = []
    for _ in range(count):
        if pos + 2 > end:
            raise ProtocolError(f"{where}: body ends inside unsuccess_sme")
        ton, npi = data[pos], data[pos + 1]
        address, pos = _read_cstring(data, pos + 2, end, 21, "destination_addr", where)
        if pos + 4 > end:
            raise ProtocolError(f"{where}: body ends before error_status_code")
        smes.append(p.UnsuccessSme(ton, npi, address, _UNSUCCESS_TAIL.unpack_from(data, pos)[0]))
        pos += 4
    return tuple(smes), pos
