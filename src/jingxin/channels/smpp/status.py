"""SMPP 3.4 command_status values: their names and what a client should do about them.

Retry classes (PROTOCOLS.md §1.4): ``TEMPORARY`` (wait, resend the same PDU),
``THROTTLED`` (also slow down), ``SESSION`` (rebind, then resend) and ``PERMANENT`` (the
request itself is wrong). Vendor codes 0x400-0x4FF mean what the SMSC says they mean, so
they default to permanent and a channel may reclassify them.
"""

from __future__ import annotations

from enum import StrEnum


class RetryClass(StrEnum):
    OK = "ok"
    TEMPORARY = "temporary"
    THROTTLED = "throttled"
    SESSION = "session"
    PERMANENT = "permanent"


ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RSYSERR = 0x08
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RSUBMITFAIL = 0x45
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64
ESME_RINVOPTPARSTREAM = 0xC0
ESME_RINVPARLEN = 0xC2
ESME_RUNKNOWNERR = 0xFF

NAMES: dict[int, str] = {
    0x00: "ESME_ROK",
    0x01: "ESME_RINVMSGLEN",
    0x02: "ESME_RINVCMDLEN",
    0x03: "ESME_RINVCMDID",
    0x04: "ESME_RINVBNDSTS",
    0x05: "ESME_RALYBND",
    0x06: "ESME_RINVPRTFLG",
    0x07: "ESME_RINVREGDLVFLG",
    0x08: "ESME_RSYSERR",
    0x0A: "ESME_RINVSRCADR",
    0x0B: "ESME_RINVDSTADR",
    0x0C: "ESME_RINVMSGID",
    0x0D: "ESME_RBINDFAIL",
    0x0E: "ESME_RINVPASWD",
    0x0F: "ESME_RINVSYSID",
    0x11: "ESME_RCANCELFAIL",
    0x13: "ESME_RREPLACEFAIL",
    0x14: "ESME_RMSGQFUL",
    0x15: "ESME_RINVSERTYP",
    0x33: "ESME_RINVNUMDESTS",
    0x34: "ESME_RINVDLNAME",
    0x40: "ESME_RINVDESTFLAG",
    0x42: "ESME_RINVSUBREP",
    0x43: "ESME_RINVESMCLASS",
    0x44: "ESME_RCNTSUBDL",
    0x45: "ESME_RSUBMITFAIL",
    0x48: "ESME_RINVSRCTON",
    0x49: "ESME_RINVSRCNPI",
    0x50: "ESME_RINVDSTTON",
    0x51: "ESME_RINVDSTNPI",
    0x53: "ESME_RINVSYSTYP",
    0x54: "ESME_RINVREPFLAG",
    0x55: "ESME_RINVNUMMSGS",
    0x58: "ESME_RTHROTTLED",
    0x61: "ESME_RINVSCHED",
    0x62: "ESME_RINVEXPIRY",
    0x63: "ESME_RINVDFTMSGID",
    0x64: "ESME_RX_T_APPN",
    0x65: "ESME_RX_P_APPN",
    0x66: "ESME_RX_R_APPN",
    0x67: "ESME_RQUERYFAIL",
    0xC0: "ESME_RINVOPTPARSTREAM",
    0xC1: "ESME_ROPTPARNOTALLWD",
    0xC2: "ESME_RINVPARLEN",
    0xC3: "ESME_RMISSINGOPTPARAM",
    0xC4: "ESME_RINVOPTPARAMVAL",
    0xFE: "ESME_RDELIVERYFAILURE",
    0xFF: "ESME_RUNKNOWNERR",
}
CODES: dict[str, int] = {name: code for code, name in NAMES.items()}

_CLASSES: dict[int, RetryClass] = {
    0x00: RetryClass.OK,
    0x08: RetryClass.TEMPORARY,
    0x64: RetryClass.TEMPORARY,
    0x14: RetryClass.THROTTLED,
    0x58: RetryClass.THROTTLED,
    0x04: RetryClass.SESSION,
    0x05: RetryClass.SESSION,
}


def name(status: int) -> str:
    """``ESME_RINVDSTADR`` for 0x0B; ``VENDOR_0x00000401`` / ``UNKNOWN_...`` otherwise."""
    known = NAMES.get(status)
    if known is not None:
        return known
    if 0x400 <= status <= 0x4FF:
        return f"VENDOR_0x{status:08X}"
    return f"UNKNOWN_0x{status:08X}"


def describe(status: int) -> str:
    """The form errors use: ``'ESME_RINVDSTADR (0x0000000B)'``."""
    return f"{name(status)} (0x{status:08X})"


def retry_class(status: int, *, overrides: dict[int, RetryClass] | None = None) -> RetryClass:
    """What to do about ``status``; ``overrides`` reclassifies vendor codes per channel."""
    if overrides and status in overrides:
        return overrides[status]
    return _CLASSES.get(status, RetryClass.PERMANENT)


def parse(text: str) -> int:
    """``'ESME_RTHROTTLED'``, ``'0x58'`` or ``'88'`` → 88 (for CLI flags and settings)."""
    value = text.strip()
    if value.upper() in CODES:
        return CODES[value.upper()]
    try:
        return int(value, 0)
    except ValueError:
        raise ValueError(f"unknown SMPP command_status {text!r}") from None
