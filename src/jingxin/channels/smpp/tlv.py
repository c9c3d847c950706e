"""SMPP 3.4 optional parameters (TLVs): the tag table and their wire form.

A PDU keeps its TLVs in one dict: known tags under their spec name with a typed value
(int, str for C-Octet strings, bytes for octet strings), unknown tags under the integer tag
with the raw value. Unknown tags are kept so that a relay can pass them on, and otherwise
ignored (SPEC34 §3.2.4.1).
"""

from __future__ import annotations

import struct

from jingxin.errors import ProtocolError

# kind: 'i1' / 'i2' / 'i4' unsigned ints, 'c' C-Octet string (NUL added on the wire),
# 'o' raw octets. Sizes are the limits of the value on the wire.
TAGS: dict[str, tuple[int, str]] = {
    "dest_addr_subunit": (0x0005, "i1"),
    "dest_network_type": (0x0006, "i1"),
    "dest_bearer_type": (0x0007, "i1"),
    "dest_telematics_id": (0x0008, "i2"),
    "source_addr_subunit": (0x000D, "i1"),
    "source_network_type": (0x000E, "i1"),
    "source_bearer_type": (0x000F, "i1"),
    "source_telematics_id": (0x0010, "i1"),
    "qos_time_to_live": (0x0017, "i4"),
    "payload_type": (0x0019, "i1"),
    "additional_status_info_text": (0x001D, "c"),
    "receipted_message_id": (0x001E, "c"),
    "ms_msg_wait_facilities": (0x0030, "i1"),
    "privacy_indicator": (0x0201, "i1"),
    "source_subaddress": (0x0202, "o"),
    "dest_subaddress": (0x0203, "o"),
    "user_message_reference": (0x0204, "i2"),
    "user_response_code": (0x0205, "i1"),
    "source_port": (0x020A, "i2"),
    "destination_port": (0x020B, "i2"),
    "sar_msg_ref_num": (0x020C, "i2"),
    "language_indicator": (0x020D, "i1"),
    "sar_total_segments": (0x020E, "i1"),
    "sar_segment_seqnum": (0x020F, "i1"),
    "sc_interface_version": (0x0210, "i1"),
    "callback_num_pres_ind": (0x0302, "i1"),
    "callback_num_atag": (0x0303, "o"),
    "number_of_messages": (0x0304, "i1"),
    "callback_num": (0x0381, "o"),
    "dpf_result": (0x0420, "i1"),
    "set_dpf": (0x0421, "i1"),
    "ms_availability_status": (0x0422, "i1"),
    "network_error_code": (0x0423, "o"),
    "message_payload": (0x0424, "o"),
    "delivery_failure_reason": (0x0425, "i1"),
    "more_messages_to_send": (0x0426, "i1"),
    "message_state": (0x0427, "i1"),
    "ussd_service_op": (0x0501, "o"),
    "display_time": (0x1201, "i1"),
    "sms_signal": (0x1203, "i2"),
    "ms_validity": (0x1204, "i1"),
    "alert_on_message_delivery": (0x130C, "o"),
    "its_reply_type": (0x1380, "i1"),
    "its_session_info": (0x1383, "o"),
}
BY_TAG: dict[int, tuple[str, str]] = {tag: (name, kind) for name, (tag, kind) in TAGS.items()}

_INT_SIZES = {"i1": 1, "i2": 2, "i4": 4}
_TL = struct.Struct(">HH")

TlvValue = int | str | bytes
Tlvs = dict[str | int, TlvValue]


def encode(tlvs: Tlvs) -> bytes:
    """The wire form of ``tlvs`` (in dict order). Raises ProtocolError on a bad value."""
    if not tlvs:
        return b""
    out = bytearray()
    for key, value in tlvs.items():
        if isinstance(key, int):
            tag, kind = key, "o"
            name = f"0x{key:04X}"
        else:
            try:
                tag, kind = TAGS[key]
            except KeyError:
                raise ProtocolError(f"unknown TLV name {key!r}") from None
            name = key
        raw = _encode_value(name, kind, value)
        if len(raw) > 0xFFFF:
            raise ProtocolError(f"TLV {name}: value of {len(raw)} octets exceeds 65535")
        out += _TL.pack(tag, len(raw))
        out += raw
    return bytes(out)


def _encode_value(name: str, kind: str, value: TlvValue) -> bytes:
    size = _INT_SIZES.get(kind)
    if size is not None:
        if not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
            raise ProtocolError(f"TLV {name}: {value!r} is not a {size}-octet unsigned int")
        return value.to_bytes(size, "big")
    if kind == "c":
        if not isinstance(value, str) or "\0" in value:
            raise ProtocolError(f"TLV {name}: {value!r} is not a C-Octet string")
        try:
            return value.encode("latin-1") + b"\0"
        except UnicodeEncodeError:
            raise ProtocolError(f"TLV {name}: {value!r} is not 8-bit text") from None
    if not isinstance(value, bytes | bytearray):
        raise ProtocolError(f"TLV {name}: {value!r} is not an octet string")
    return bytes(value)


def decode(data: bytes | memoryview, start: int, end: int, *, where: str) -> Tlvs:
    """Decode the TLVs in ``data[start:end]``. ``where`` names the PDU in errors."""
    tlvs: Tlvs = {}
    pos = start
    while pos < end:
        if end - pos < 4:
            raise ProtocolError(f"{where}: truncated TLV header at offset {pos}")
        tag, length = _TL.unpack_from(data, pos)
        pos += 4
        if pos + length > end:
            raise ProtocolError(
                f"{where}: TLV 0x{tag:04X} length {length} runs past the PDU end at {end}"
            )
        raw = bytes(data[pos : pos + length])
        pos += length
        known = BY_TAG.get(tag)
        if known is None:
            tlvs[tag] = raw
        elif known[1] == "i1" and length == 1:  # the common case, without a call
            tlvs[known[0]] = raw[0]
        else:
            tlvs[known[0]] = _decode_value(known[0], known[1], raw, where)
    return tlvs


def _decode_value(name: str, kind: str, raw: bytes, where: str) -> TlvValue:
    size = _INT_SIZES.get(kind)
    if size is not None:
        if len(raw) != size:
            raise ProtocolError(f"{where}: TLV {name} has {len(raw)} octets, expected {size}")
        return int.from_bytes(raw, "big")
    if kind == "c":
        # Some SMSCs omit the NUL; accept both, and stop at the first NUL.
        nul = raw.find(b"\0")
        return (raw if nul < 0 else raw[:nul]).decode("latin-1")
    return raw
