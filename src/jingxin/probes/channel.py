"""Where a probe sends its MO and reads the reply: the :class:`ProbeChannel` seam, and its
implementation over the simulator's HTTP endpoint (``POST /mo``, ``GET /mt``; smsc/mo.py).

An operator's own dial-test gateway (a SIM bank, a handset farm) plugs in as another
``ProbeChannel``. The HTTP client here is a dozen lines of asyncio rather than urllib in
threads: probes wait concurrently, and a thread pool would queue them and add its queueing
to the latency they measure.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, Protocol

from jingxin.errors import ChannelError, ConfigError

CONNECT_TIMEOUT = 3.0


class SimulatorUnreachable(ChannelError):
    """Nothing answers at the channel's address: every probe of the run fails for it."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One MT the test SIM received: ``seq`` orders it after the MO's cursor."""

    seq: int
    sender: str
    text: str


class ProbeChannel(Protocol):
    """Sends an MO as a subscriber and reads what that subscriber is sent."""

    where: str  # for messages: "simulator at http://..."

    async def check(self) -> None:
        """Raise SimulatorUnreachable when nothing answers (asked once per run)."""

    async def send_mo(self, *, source: str, destination: str, text: str) -> int:
        """Deliver the MO; returns the cursor after which its reply will be."""

    async def replies(self, *, to: str, after: int, wait: float) -> list[Reply]:
        """MT to ``to`` after ``after``, oldest first; may wait up to ``wait`` s for one."""


class SimulatorChannel:
    """The built-in simulator's HTTP endpoint at ``url`` (``[probing] smsc_url``)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(f"invalid setting probing.smsc_url: {url!r} is not an http:// URL "
                              "(the simulator's HTTP endpoint, e.g. http://127.0.0.1:8775)")  # fmt: skip
        self.url = url.rstrip("/")
        self.where = f"simulator at {self.url}"
        self._host, self._port = parts.hostname, parts.port or 80
        self._prefix = parts.path.rstrip("/")

    async def check(self) -> None:
        await self._request("GET", "/status", timeout=CONNECT_TIMEOUT)

    async def send_mo(self, *, source: str, destination: str, text: str) -> int:
        body = json.dumps({"from": source, "to": destination, "text": text}, ensure_ascii=False)
        answer = await self._request("POST", "/mo", body=body.encode(), timeout=10.0)
        if not isinstance(answer.get("cursor"), int):
            raise ChannelError(f"{self.where} does not report an MT cursor: an older simulator "
                               "without GET /mt cannot show replies")  # fmt: skip
        return answer["cursor"]

    async def replies(self, *, to: str, after: int, wait: float) -> list[Reply]:
        query = urllib.parse.urlencode({"to": to, "after": after, "wait": f"{wait:.3f}"})
        answer = await self._request("GET", f"/mt?{query}", timeout=wait + 10.0)
        return [Reply(int(m["seq"]), str(m.get("from", "")), str(m["text"]))
                for m in answer.get("messages", [])]  # fmt: skip

    async def _request(self, method: str, target: str, *, body: bytes | None = None,
                       timeout: float) -> dict[str, Any]:  # fmt: skip
        """One request on its own connection (the simulator answers with Connection: close)."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self._host, self._port), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise SimulatorUnreachable(f"{self.where} not reachable ({_why(exc)})") from exc
        try:
            head = (f"{method} {self._prefix}{target} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
                    "Connection: close\r\n")  # fmt: skip
            if body is not None:
                head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode("latin-1") + b"\r\n" + (body or b""))
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), timeout)
        except (OSError, TimeoutError) as exc:
            raise ChannelError(f"{self.where} broke off {method} {target} ({_why(exc)})") from exc
        finally:
            writer.close()
        return self._answer(method, target, raw)

    def _answer(self, method: str, target: str, raw: bytes) -> dict[str, Any]:
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].split()
        code = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
        try:
            answer = json.loads(body) if body else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            answer = {"error": body[:200].decode("utf-8", "replace")}
        if code != 200 or not isinstance(answer, dict):
            detail = answer.get("error", answer) if isinstance(answer, dict) else answer
            raise ChannelError(f"{self.where} refused {method} {target.split('?')[0]} "
                               f"({code or 'no HTTP status'}): {detail}")  # fmt: skip
        return answer


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
