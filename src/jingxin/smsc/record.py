"""What the simulated SMSC received: an in-memory record (for tests), optionally a JSONL file,
and the handsets: what each subscriber number was sent, as its phone would show it.

Both protocol servers call :meth:`Record.add` for every request PDU they accept. ``keep``
bounds memory for long benchmark runs (the oldest entries go); counts are always exact.
Every submit (SMPP ``submit_sm``, ``CMPP_SUBMIT``) is also put on the :class:`Handsets` of
its destination numbers, which dial tests read back through ``GET /mt`` (smsc/mo.py).
"""

from __future__ import annotations

import collections
import itertools
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

_MT_COMMANDS = frozenset({"submit_sm", "CMPP_SUBMIT"})


@dataclass(frozen=True, slots=True)
class Received:
    """One request PDU the simulator received."""

    protocol: str  # 'smpp' | 'cmpp'
    system_id: str  # who sent it (bind system_id / CMPP source_addr)
    command: str  # e.g. 'submit_sm', 'bind_transceiver', 'CMPP_SUBMIT'
    sequence: int
    at: float = field(default_factory=time.time)
    fields: dict[str, Any] = field(default_factory=dict)


class Record:
    """Append-only log of received PDUs; ``path`` adds a JSON line per entry."""

    def __init__(self, *, keep: int | None = None, path: str | Path | None = None,
                 handsets: Handsets | None = None) -> None:  # fmt: skip
        self.entries: collections.deque[Received] = collections.deque(maxlen=keep)
        self.counts: collections.Counter[str] = collections.Counter()
        self.handsets = handsets if handsets is not None else Handsets()
        # Line-buffered: a simulator killed with -9 (the crash tests do it) keeps every PDU
        # it received up to the kill, which is what counting duplicates needs.
        self._file: IO[str] | None = (
            open(path, "a", encoding="utf-8", buffering=1) if path else None  # noqa: SIM115
        )

    def add(self, protocol: str, system_id: str, command: str, sequence: int, **fields: Any) -> Received:
        entry = Received(protocol, system_id, command, sequence, fields=fields)
        self.entries.append(entry)
        self.counts[command] += 1
        if command in _MT_COMMANDS and fields:
            self.handsets.receive(protocol, fields, at=entry.at)
        if self._file is not None:
            row = asdict(entry)
            row["fields"] = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in fields.items()}
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        return entry

    def of(self, command: str) -> list[Received]:
        """The kept entries of one command, oldest first."""
        return [entry for entry in self.entries if entry.command == command]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# ----------------------------------------------------------------------------- handsets


@dataclass(frozen=True, slots=True)
class MtText:
    """One whole MT as the subscriber's phone shows it: long messages joined and decoded.
    ``seq`` is the simulator-wide sequence of its last part (see :attr:`Handsets.cursor`)."""

    seq: int
    to: str
    sender: str
    text: str
    parts: int
    at: float  # when its last part arrived (epoch seconds)

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "to": self.to, "from": self.sender, "text": self.text,
                "parts": self.parts, "at": self.at}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Part:
    """One received part, read out of the submit's recorded fields."""

    seq: int
    at: float
    protocol: str
    to: str
    sender: str
    coding: int
    udhi: bool
    body: bytes

    @classmethod
    def of(cls, seq: int, at: float, protocol: str, to: str, fields: dict[str, Any]) -> _Part:
        if protocol == "cmpp":
            return cls(seq, at, protocol, to, str(fields.get("src_id", "")),
                       int(fields.get("msg_fmt", 0)), bool(fields.get("tp_udhi")),
                       bytes(fields.get("msg_content", b"")))  # fmt: skip
        body = fields.get("short_message") or (fields.get("tlvs") or {}).get("message_payload", b"")
        return cls(seq, at, protocol, to, str(fields.get("source_addr", "")),
                   int(fields.get("data_coding", 0)), bool(int(fields.get("esm_class", 0)) & 0x40),
                   bytes(body))  # fmt: skip


def number_key(address: str) -> str:
    """One key for the forms a CN number takes on the wire (``+8613...``, ``8613...``,
    ``008613...``, ``13...``): the national digits, so a probe asking for its E.164 number
    finds what a worker sent to the bare one."""
    digits = address[1:] if address[:1] == "+" else address
    if not digits.isdigit():
        digits = "".join(char for char in address if char.isdigit())
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits


class Handsets:
    """What each number was sent, newest ``per_number`` parts of the newest ``numbers``
    numbers (a benchmark's million numbers must not grow memory without bound).

    A part is kept as the submit's recorded fields and read, joined and decoded only when
    asked for: the submit path stays a lookup and an append. Every part takes the next
    value of one counter, so a reader that noted :attr:`cursor` before it caused a reply
    sees exactly the messages completed after.
    """

    def __init__(self, *, per_number: int = 16, numbers: int = 5_000) -> None:
        self.per_number = per_number
        self.numbers = numbers
        # number -> (seq, at, protocol, address as sent, the submit's fields), oldest first
        self._parts: collections.OrderedDict[str, collections.deque[tuple]] = collections.OrderedDict()
        self._sequence = itertools.count(1)
        self.cursor = 0  # the sequence of the last part received (0: none yet)

    def receive(self, protocol: str, fields: dict[str, Any], *, at: float | None = None) -> None:
        """Put one submit's part (its recorded fields) on the handset of each destination."""
        if protocol == "cmpp":
            destinations: Iterable[str] = fields.get("dest_terminal_ids") or ()
        else:
            destinations = (str(fields.get("destination_addr", "")),)
        self.cursor = seq = next(self._sequence)
        at = time.time() if at is None else at
        for to in destinations:
            key = number_key(to)
            kept = self._parts.get(key)
            if kept is None:
                kept = self._parts[key] = collections.deque(maxlen=self.per_number)
                if len(self._parts) > self.numbers:
                    self._parts.popitem(last=False)
            else:
                self._parts.move_to_end(key)
            kept.append((seq, at, protocol, to, fields))

    def messages(self, to: str, *, after: int = 0) -> list[MtText]:
        """The whole messages sent to ``to`` whose last part came after ``after``, oldest
        first. A long message whose other parts have not arrived (or were pushed out of
        the buffer) is not shown."""
        parts = [_Part.of(*kept) for kept in self._parts.get(number_key(to), ())]
        return [message for message in _joined(parts) if message.seq > after]


def _joined(parts: Iterable[_Part]) -> Iterator[MtText]:
    from jingxin.channels.smpp.concat import split_udh

    groups: dict[tuple, dict[int, tuple[_Part, bytes]]] = {}
    whole: list[MtText] = []
    for part in parts:
        info, data = split_udh(part.body) if part.udhi else (None, part.body)
        if info is None:
            whole.append(_message([(part, data)]))
            continue
        group = groups.setdefault((part.protocol, part.sender, info.ref, info.total), {})
        group.setdefault(info.seq, (part, data))  # a resent part: the first one counts
        if len(group) == info.total:
            whole.append(_message([group[seq] for seq in sorted(group)]))
            del groups[(part.protocol, part.sender, info.ref, info.total)]
    return iter(sorted(whole, key=lambda message: message.seq))


def _message(pieces: list[tuple[_Part, bytes]]) -> MtText:
    last = max((part for part, _ in pieces), key=lambda part: part.seq)
    payload = b"".join(data for _, data in pieces)
    return MtText(last.seq, last.to, last.sender, _decode(last.protocol, payload, last.coding),
                  len(pieces), last.at)  # fmt: skip


def _decode(protocol: str, payload: bytes, coding: int) -> str:
    if protocol == "cmpp":
        from jingxin.channels.cmpp.inbound import decode_text

        return decode_text(payload, coding)[0]
    from jingxin.channels.smpp.short_message import decode

    return decode(payload, coding)
