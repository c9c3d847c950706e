"""Mobile-originated traffic for the simulator: a tiny HTTP endpoint, its client, and scripts.

The running simulator listens for ``POST /mo`` with ``{"from": ..., "to": ..., "text": ...}``
and delivers the message to a bound ESME as deliver_sm (split with a UDH when long); its
answer carries ``cursor``, the simulator's MT sequence at that moment.
``GET /mt?to=N&after=C`` returns the MT the simulator received for number N after cursor C,
long messages joined and decoded (``&wait=S`` holds the request up to S seconds, at most
5, until one is there): how a dial test sees the reply to its MO. ``GET /status`` reports
counters. A script of simulated subscribers is a text file of lines
``delay, from, to, text`` (delay in seconds after the previous line; ``#`` starts a comment;
the text is everything after the third comma).
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jingxin.errors import ChannelError, InputError
from jingxin.smsc.record import Handsets

MoInjector = Callable[..., int]  # (source=, destination=, text=) -> parts delivered
_MAX_BODY = 64 * 1024
MAX_WAIT = 5.0  # seconds a GET /mt may be held (the whole request must end within 10 s)
_WAIT_STEP = 0.01


@dataclass(frozen=True, slots=True)
class ScriptLine:
    delay: float
    source: str
    destination: str
    text: str


def read_script(path: str | Path) -> list[ScriptLine]:
    """Parse a subscriber script; errors name the file and line."""
    from jingxin.data.textfile import read_text

    lines = []
    content = read_text(path, what="MO script")
    for number, raw in enumerate(content.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [field.strip() for field in line.split(",", 3)]
        if len(fields) != 4:
            raise InputError(f"{path}:{number}: expected 'delay, from, to, text', got {raw!r}")
        try:
            delay = float(fields[0])
        except ValueError:
            raise InputError(f"{path}:{number}: delay {fields[0]!r} is not a number") from None
        if delay < 0 or not fields[1] or not fields[2]:
            raise InputError(f"{path}:{number}: delay must be >= 0 and from/to non-empty")
        lines.append(ScriptLine(delay, fields[1], fields[2], fields[3]))
    return lines


async def run_script(lines: list[ScriptLine], inject: MoInjector) -> int:
    """Play a script against ``inject``; returns the number of messages sent. Delays count
    from the previous line's due time, so a paced script keeps its rate (time spent
    injecting does not add up)."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    for line in lines:
        due += line.delay
        if line.delay:
            await asyncio.sleep(max(0.0, due - loop.time()))
        inject(source=line.source, destination=line.destination, text=line.text)
    return len(lines)


# ----------------------------------------------------------------------------- endpoint


async def start_mo_endpoint(
    *, host: str, port: int, inject: MoInjector, status: Callable[[], dict[str, Any]],
    handsets: Handsets | None = None,
) -> asyncio.Server:
    """Serve ``POST /mo``, ``GET /mt`` (with ``handsets``) and ``GET /status`` on
    ``host:port`` (0 = any free port)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            code, answer = await asyncio.wait_for(_serve(reader, inject, status, handsets), 10.0)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            code, answer = 400, {"error": f"bad request: {exc}"}
        body = json.dumps(answer, ensure_ascii=False).encode()
        head = f"HTTP/1.1 {code} {'OK' if code == 200 else 'Error'}\r\nContent-Type: application/json\r\n"
        writer.write(head.encode() + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        try:
            await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)


async def _serve(
    reader: asyncio.StreamReader, inject: MoInjector, status: Callable, handsets: Handsets | None
) -> tuple[int, dict]:
    request_line = (await reader.readline()).decode("latin-1").split()
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if len(request_line) < 2:
        return 400, {"error": "no request line"}
    method, target = request_line[0], request_line[1]
    path, _, query = target.partition("?")
    if method == "GET" and path == "/status":
        return 200, status()
    if method == "GET" and path == "/mt" and handsets is not None:
        return await _mt(handsets, urllib.parse.parse_qs(query))
    if method != "POST" or path != "/mo":
        return 404, {"error": f"{method} {path}: only POST /mo, GET /mt and GET /status"}
    length = int(headers.get("content-length", "0"))
    if not 0 < length <= _MAX_BODY:
        return 400, {"error": f"Content-Length must be 1..{_MAX_BODY}"}
    try:
        data = json.loads(await reader.readexactly(length))
        source, destination, text = str(data["from"]), str(data["to"]), str(data["text"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        return 400, {"error": f'body must be JSON {{"from", "to", "text"}}: {exc}'}
    try:
        parts = inject(source=source, destination=destination, text=text)
    except LookupError as exc:
        return 409, {"error": str(exc)}
    answer: dict[str, Any] = {"delivered": True, "parts": parts}
    if handsets is not None:
        answer["cursor"] = handsets.cursor
    return 200, answer


async def _mt(handsets: Handsets, query: dict[str, list[str]]) -> tuple[int, dict]:
    """``GET /mt?to=N[&after=C][&wait=S]``: the MT for N after cursor C, waiting up to S s."""
    to = (query.get("to") or [""])[0].strip()
    if not to:
        return 400, {"error": "GET /mt needs ?to=<number>"}
    try:
        after = int((query.get("after") or ["0"])[0])
        wait = min(max(float((query.get("wait") or ["0"])[0]), 0.0), MAX_WAIT)
    except ValueError as exc:
        return 400, {"error": f"after must be an integer and wait a number of seconds: {exc}"}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    # Polled, not signalled: the record is written from protocol callbacks that know
    # nothing of HTTP waiters, and 10 ms is well below any latency a probe bounds.
    while not (messages := handsets.messages(to, after=after)) and loop.time() < deadline:
        await asyncio.sleep(_WAIT_STEP)
    return 200, {"to": to, "cursor": handsets.cursor,
                 "messages": [message.to_json() for message in messages]}  # fmt: skip


def post_mo(url: str, *, source: str, destination: str, text: str, timeout: float = 5.0) -> dict:
    """Client side: ask the running simulator at ``url`` to deliver one MO."""
    body = json.dumps({"from": source, "to": destination, "text": text}).encode()
    request = urllib.request.Request(
        url.rstrip("/") + "/mo", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        raise ChannelError(f"simulator at {url} refused the MO ({exc.code}): {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ChannelError(f"cannot reach the simulator's MO endpoint at {url}: {exc}") from exc


def get_mt(url: str, *, to: str, after: int = 0, wait: float = 0.0, timeout: float = 10.0) -> dict:
    """Client side: what the running simulator at ``url`` was sent for ``to`` after cursor
    ``after`` (``{"cursor", "messages": [{"seq", "from", "text", ...}]}``)."""
    query = urllib.parse.urlencode({"to": to, "after": after, "wait": wait})
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/mt?{query}", timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        raise ChannelError(f"simulator at {url} refused GET /mt ({exc.code}): {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ChannelError(f"cannot reach the simulator's MT endpoint at {url}: {exc}") from exc
