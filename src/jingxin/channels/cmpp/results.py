"""What CMPP 2.0 status and result codes mean, and which ones are worth a retry.

CONNECT_RESP Status (PROTOCOLS.md §3.4) and SUBMIT_RESP / DELIVER_RESP Result (§3.6,
§3.9). The 2.0 text defines Result 0–8 and "9+ other errors"; gocmpp applies the 3.0
meanings of 9–13 to 2.0 as well. We name 9–13 with their 3.0 meaning *marked as such*, so
an operator sees both readings, and treat them all as permanent.
"""

from __future__ import annotations

from jingxin.errors import ChannelError

CONNECT_STATUS = {
    0: "ok",
    1: "bad message structure",
    2: "invalid source address",
    3: "authentication failed",
    4: "version too high",
}

SUBMIT_RESULT = {
    0: "ok",
    1: "bad message structure",
    2: "bad command id",
    3: "duplicate sequence number",
    4: "bad message length",
    5: "bad fee code",
    6: "exceeds maximum message length",
    7: "bad service code (Service_Id)",
    8: "flow control (流量控制): sending too fast or too many outstanding",
    9: "other error (3.0: this gateway does not serve the charged number)",
    10: "other error (3.0: bad Src_Id)",
    11: "other error (3.0: bad Msg_src)",
    12: "other error (3.0: bad Fee_terminal_Id)",
    13: "other error (3.0: bad Dest_terminal_Id)",
}

RESULT_OK = 0
RESULT_FLOW_CONTROL = 8


def connect_status_text(status: int) -> str:
    return CONNECT_STATUS.get(status, "other error")


def submit_result_text(result: int) -> str:
    return SUBMIT_RESULT.get(result, "other error")


class SubmitError(ChannelError):
    """A CMPP_SUBMIT that failed. ``status`` is the SUBMIT_RESP Result when there was one;
    ``unresolved`` means no answer came (the link broke or timed out): the ISMG may or may
    not have the message, so resending it risks a duplicate. Same attributes as the SMPP
    channel's error, so dispatch can treat both alike."""

    def __init__(self, message: str, *, status: int | None = None, unresolved: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.unresolved = unresolved
