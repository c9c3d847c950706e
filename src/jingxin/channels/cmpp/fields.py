"""The building blocks of CMPP 2.0 PDUs: header, command ids, Msg_Fmt, Octet Strings.

PROTOCOLS.md §3.1 (header), §3.2 (Command_Id), §3.11 (Msg_Fmt). Octet Strings are fixed
width and NUL-padded on the right [CMPP30 §8.1]; we read one up to its first NUL.
"""

from __future__ import annotations

import struct
from enum import IntEnum, IntFlag

from jingxin.errors import ProtocolError

HEADER = struct.Struct(">III")  # §3.1 Total_Length, Command_Id, Sequence_Id
HEADER_LENGTH = HEADER.size
VERSION_20 = 0x20  # §3.3: high nibble major, low nibble minor
MAX_DESTINATIONS = 99  # §3.5: DestUsr_tl < 100
MAX_CONTENT = 255  # Msg_Length is one octet
# The largest legal 2.0 PDU is a SUBMIT to 99 numbers with 255 octets (§3.5): 2472.
MAX_PDU_LENGTH = HEADER_LENGTH + 117 + 21 * MAX_DESTINATIONS + 1 + MAX_CONTENT + 8


class CommandId(IntEnum):
    """§3.2: the SP-side commands; a response is the request | 0x80000000."""

    CONNECT = 0x00000001
    TERMINATE = 0x00000002
    SUBMIT = 0x00000004
    DELIVER = 0x00000005
    QUERY = 0x00000006
    CANCEL = 0x00000007
    ACTIVE_TEST = 0x00000008
    CONNECT_RESP = 0x80000001
    TERMINATE_RESP = 0x80000002
    SUBMIT_RESP = 0x80000004
    DELIVER_RESP = 0x80000005
    QUERY_RESP = 0x80000006
    CANCEL_RESP = 0x80000007
    ACTIVE_TEST_RESP = 0x80000008


class MsgFmt(IntEnum):
    """§3.11 Msg_Fmt values."""

    ASCII = 0
    WRITE_CARD = 3
    BINARY = 4
    UCS2 = 8
    GBK = 15


class TpUdhi(IntFlag):
    """§3.7 note: the spec uses bit 0, but gateways send 0x40 for long MO messages."""

    SPEC = 0x01
    GATEWAYS = 0x40


def udhi_set(tp_udhi: int) -> bool:
    return (tp_udhi & 0x41) != 0


def octets(value: str, width: int, name: str) -> bytes:
    """``value`` as at most ``width`` octets (struct pads the rest with NUL)."""
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise ProtocolError(f"{name} {value!r}: only one-octet characters allowed") from None
    if len(raw) > width:
        raise ProtocolError(f"{name} {value!r} is longer than its {width} octets")
    return raw


def text(raw: bytes) -> str:
    return raw.partition(b"\0")[0].decode("latin-1")


def fixed(name: str, body: bytes, sizes: tuple[int, ...]) -> None:
    if len(body) not in sizes:
        want = " or ".join(str(s) for s in sizes)
        raise ProtocolError(f"{name} body is {len(body)} octets; CMPP 2.0 has {want}")
