"""The CMPP 2.0 status report: the 60-octet Msg_Content of a DELIVER whose
Registered_Delivery is 1 (PROTOCOLS.md §3.8).

2.0 has a 21-octet Dest_terminal_Id (60 octets in all); 3.0 has 32 (71). gocmpp uses 60
for both versions; this module is 2.0 only and refuses any other length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from jingxin.channels.cmpp.fields import octets, text
from jingxin.errors import ProtocolError


@dataclass(frozen=True, slots=True)
class StatusReport:
    """§3.8 the 60-octet Msg_Content of a DELIVER with Registered_Delivery = 1 (2.0)."""

    _S: ClassVar[struct.Struct] = struct.Struct(">Q7s10s10s21sI")
    msg_id: int
    stat: str
    submit_time: str  # YYMMDDHHMM
    done_time: str  # YYMMDDHHMM
    dest_terminal_id: str
    smsc_sequence: int = 0

    def encode(self) -> bytes:
        return self._S.pack(
            self.msg_id, octets(self.stat, 7, "report Stat"),
            octets(self.submit_time, 10, "report Submit_time"),
            octets(self.done_time, 10, "report Done_time"),
            octets(self.dest_terminal_id, 21, "report Dest_terminal_Id"), self.smsc_sequence,
        )  # fmt: skip

    @classmethod
    def decode(cls, content: bytes) -> StatusReport:
        if len(content) != 60:
            raise ProtocolError(f"status report is {len(content)} octets; CMPP 2.0 has 60")
        m, stat, sub, done, dest, seq = cls._S.unpack(content)
        return cls(m, text(stat), text(sub), text(done), text(dest), seq)
