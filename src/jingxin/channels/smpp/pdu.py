"""SMPP 3.4 PDU types: one slotted dataclass per PDU, generated from the field table.

Every PDU has ``sequence_number``, ``command_status``, its mandatory fields in wire order
(SPEC34 §4, PROTOCOLS.md §1.5-1.6) and ``tlvs`` (see :mod:`.tlv`). C-Octet strings are
``str`` (8-bit, Latin-1 both ways so that decoding never fails); octet strings are
``bytes``. The wire form lives in :mod:`.codec`.
"""

from __future__ import annotations

from dataclasses import field, make_dataclass
from typing import Any, ClassVar, NamedTuple


class Pdu:
    """Base of every PDU class; the class attributes are set by :func:`_define`."""

    __slots__ = ()
    command_id: ClassVar[int]
    command_name: ClassVar[str]
    fields: ClassVar[tuple[FieldSpec, ...]]
    is_response: ClassVar[bool]


class FieldSpec(NamedTuple):
    """One mandatory field: its name, kind and, for C-Octet strings, max size with NUL."""

    name: str
    kind: str  # 'c' C-Octet string, 'i1'/'i2'/'i4', 'sm' sm_length+short_message,
    #             'dests' submit_multi destinations, 'unsuccess' submit_multi_resp failures
    size: int = 0
    default: Any = None


class Destination(NamedTuple):
    """A submit_multi destination: an SME address (flag 1) or a distribution list (flag 2)."""

    dest_flag: int
    address: str
    ton: int = 0
    npi: int = 0


class UnsuccessSme(NamedTuple):
    """A submit_multi_resp entry for a destination the SMSC refused."""

    ton: int
    npi: int
    address: str
    error_status_code: int


SME_ADDRESS, DISTRIBUTION_LIST = 1, 2
RESPONSE_BIT = 0x80000000


def _c(name: str, size: int) -> FieldSpec:
    return FieldSpec(name, "c", size, "")


def _i(name: str, kind: str = "i1", default: int = 0) -> FieldSpec:
    return FieldSpec(name, kind, 0, default)


def _address(prefix: str, size: int, addr: str | None = None) -> tuple[FieldSpec, ...]:
    return (_i(f"{prefix}_ton"), _i(f"{prefix}_npi"), _c(addr or prefix, size))


_SOURCE = (_i("source_addr_ton"), _i("source_addr_npi"), _c("source_addr", 21))
_DEST = (_i("dest_addr_ton"), _i("dest_addr_npi"), _c("destination_addr", 21))
_SM_TAIL = (
    _i("esm_class"),
    _i("protocol_id"),
    _i("priority_flag"),
    _c("schedule_delivery_time", 17),
    _c("validity_period", 17),
    _i("registered_delivery"),
    _i("replace_if_present_flag"),
    _i("data_coding"),
    _i("sm_default_msg_id"),
    FieldSpec("short_message", "sm", 254, b""),
)
SM_BODY = (_c("service_type", 6), *_SOURCE, *_DEST, *_SM_TAIL)
_BIND = (
    _c("system_id", 16),
    _c("password", 9),
    _c("system_type", 13),
    _i("interface_version", default=0x34),
    _i("addr_ton"),
    _i("addr_npi"),
    _c("address_range", 41),
)
_MESSAGE_ID = (_c("message_id", 65),)

REGISTRY: dict[int, type[Pdu]] = {}


def _define(name: str, command_id: int, specs: tuple[FieldSpec, ...] = ()) -> type[Any]:
    attrs: list[tuple[str, Any, Any]] = [
        ("sequence_number", int, field(default=0)),
        ("command_status", int, field(default=0)),
    ]
    for spec in specs:
        if isinstance(spec.default, tuple):
            attrs.append((spec.name, tuple, field(default=())))
        else:
            attrs.append((spec.name, type(spec.default), field(default=spec.default)))
    attrs.append(("tlvs", dict, field(default_factory=dict)))
    class_name = "".join(part.capitalize() for part in name.split("_"))
    cls = make_dataclass(class_name, attrs, bases=(Pdu,), slots=True, eq=True)
    cls.__module__ = __name__
    cls.command_id = command_id
    cls.command_name = name
    cls.fields = specs
    cls.is_response = bool(command_id & RESPONSE_BIT)
    REGISTRY[command_id] = cls
    return cls


GenericNack = _define("generic_nack", 0x80000000)
BindReceiver = _define("bind_receiver", 0x00000001, _BIND)
BindReceiverResp = _define("bind_receiver_resp", 0x80000001, (_c("system_id", 16),))
BindTransmitter = _define("bind_transmitter", 0x00000002, _BIND)
BindTransmitterResp = _define("bind_transmitter_resp", 0x80000002, (_c("system_id", 16),))
QuerySm = _define("query_sm", 0x00000003, (*_MESSAGE_ID, *_SOURCE))
QuerySmResp = _define(
    "query_sm_resp",
    0x80000003,
    (*_MESSAGE_ID, _c("final_date", 17), _i("message_state"), _i("error_code")),
)
SubmitSm = _define("submit_sm", 0x00000004, SM_BODY)
SubmitSmResp = _define("submit_sm_resp", 0x80000004, _MESSAGE_ID)
DeliverSm = _define("deliver_sm", 0x00000005, SM_BODY)
DeliverSmResp = _define("deliver_sm_resp", 0x80000005, _MESSAGE_ID)
Unbind = _define("unbind", 0x00000006)
UnbindResp = _define("unbind_resp", 0x80000006)
ReplaceSm = _define(
    "replace_sm",
    0x00000007,
    (
        *_MESSAGE_ID,
        *_SOURCE,
        _c("schedule_delivery_time", 17),
        _c("validity_period", 17),
        _i("registered_delivery"),
        _i("sm_default_msg_id"),
        FieldSpec("short_message", "sm", 254, b""),
    ),
)
ReplaceSmResp = _define("replace_sm_resp", 0x80000007)
CancelSm = _define("cancel_sm", 0x00000008, (_c("service_type", 6), *_MESSAGE_ID, *_SOURCE, *_DEST))
CancelSmResp = _define("cancel_sm_resp", 0x80000008)
BindTransceiver = _define("bind_transceiver", 0x00000009, _BIND)
BindTransceiverResp = _define("bind_transceiver_resp", 0x80000009, (_c("system_id", 16),))
Outbind = _define("outbind", 0x0000000B, (_c("system_id", 16), _c("password", 9)))
EnquireLink = _define("enquire_link", 0x00000015)
EnquireLinkResp = _define("enquire_link_resp", 0x80000015)
SubmitMulti = _define(
    "submit_multi",
    0x00000021,
    (_c("service_type", 6), *_SOURCE, FieldSpec("dest_addresses", "dests", 0, ()), *_SM_TAIL),
)
SubmitMultiResp = _define(
    "submit_multi_resp",
    0x80000021,
    (*_MESSAGE_ID, FieldSpec("unsuccess_smes", "unsuccess", 0, ())),
)
AlertNotification = _define(
    "alert_notification",
    0x00000102,
    (*_address("source_addr", 65), *_address("esme_addr", 65)),
)
DataSm = _define(
    "data_sm",
    0x00000103,
    (
        _c("service_type", 6),
        *_address("source_addr", 65),
        _i("dest_addr_ton"),
        _i("dest_addr_npi"),
        _c("destination_addr", 65),
        _i("esm_class"),
        _i("registered_delivery"),
        _i("data_coding"),
    ),
)
DataSmResp = _define("data_sm_resp", 0x80000103, _MESSAGE_ID)

BIND_REQUESTS = (BindTransmitter, BindReceiver, BindTransceiver)


def response_class(request: type[Pdu]) -> type[Pdu] | None:
    """The response type of a request type (None for outbind and alert_notification)."""
    return REGISTRY.get(request.command_id | RESPONSE_BIT)


def command_label(command_id: int) -> str:
    cls = REGISTRY.get(command_id)
    return cls.command_name if cls else f"command 0x{command_id:08X}"
