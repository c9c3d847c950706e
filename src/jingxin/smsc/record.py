"""What the simulated SMSC received: an in-memory record (for tests), optionally a JSONL file.

Both protocol servers call :meth:`Record.add` for every request PDU they accept. ``keep``
bounds memory for long benchmark runs (the oldest entries go); counts are always exact.
"""

from __future__ import annotations

import collections
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any


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

    def __init__(self, *, keep: int | None = None, path: str | Path | None = None) -> None:
        self.entries: collections.deque[Received] = collections.deque(maxlen=keep)
        self.counts: collections.Counter[str] = collections.Counter()
        # Line-buffered: a simulator killed with -9 (the crash tests do it) keeps every PDU
        # it received up to the kill, which is what counting duplicates needs.
        self._file: IO[str] | None = (
            open(path, "a", encoding="utf-8", buffering=1) if path else None  # noqa: SIM115
        )

    def add(self, protocol: str, system_id: str, command: str, sequence: int, **fields: Any) -> Received:
        entry = Received(protocol, system_id, command, sequence, fields=fields)
        self.entries.append(entry)
        self.counts[command] += 1
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
