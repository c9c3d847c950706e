"""Logging for every ``jingxin`` command: plain text or one JSON object per line, and
subscriber numbers masked in both.

Masking is a filter on the handler, not a habit of call sites: whatever a log call passes -
the message, its ``%`` arguments, its ``extra`` fields, a traceback - goes through
:class:`MaskNumbers` before any formatter sees it, so no call site can leak a number, even
one that forgets :func:`mask`. :func:`configure` installs that handler on the root logger
from the ``[log]`` settings (``format = "text" | "json"``, ``level``).

A JSON line looks like::

    {"ts": "2026-11-23T21:50:01.123Z", "level": "INFO", "logger": "jingxin.dispatch.worker",
     "msg": "message 7 to +861390000****: unresolved ...", "message_id": 7, "channel": "sim"}
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # any module may import this one: it stays free of pydantic
    from jingxin.config import LogSettings

__all__ = ["JsonFormatter", "MaskNumbers", "configure", "configure_from_settings", "mask",
           "mask_text"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# E.164 (+ and 8-15 digits), or a bare Chinese mobile (11 digits from 13x to 19x) with or
# without the 86 country code - the forms numbers take in our own messages and PDUs. Next
# to a '*' it is already masked (by mask() at the call site): left alone, not masked twice.
_NUMBER = re.compile(r"(?<![\d*])(?:\+\d{8,15}|(?:86)?1[3-9]\d{9})(?![\d*])")

# Extra fields whose whole value is a number, whatever it looks like (short codes included).
NUMBER_FIELDS = frozenset({
    "msisdn", "dest", "destination", "destination_addr", "source", "source_addr", "number",
})  # fmt: skip

# What every LogRecord carries; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


def mask(msisdn: str) -> str:
    """A number fit for logs: the last four digits hidden (short ones entirely)."""
    return msisdn[:-4] + "****" if len(msisdn) > 6 else "****"


def mask_text(text: str) -> str:
    """``text`` with every phone number in it masked by :func:`mask`."""
    return _NUMBER.sub(lambda match: mask(match.group()), text)


def _mask_value(name: str, value: Any) -> Any:
    if (
        name in NUMBER_FIELDS
        and isinstance(value, (str, int))
        and not isinstance(value, bool)
    ):
        return mask(str(value))
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_mask_value(name, item) for item in value)
    if isinstance(value, dict):
        return {key: _mask_value(str(key), item) for key, item in value.items()}
    return value


class MaskNumbers(logging.Filter):
    """Masks numbers in a record's message, arguments, extras and traceback, in place.

    The message is formatted here (``msg % args``) and the arguments dropped, so a number
    passed as an argument is masked like one written into the message.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        for name in set(vars(record)) - _STANDARD:
            setattr(record, name, _mask_value(name, getattr(record, name)))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a log call added through ``extra`` (message_id, channel, lane, ...)."""
    return {
        name: value for name, value in vars(record).items() if name not in _STANDARD
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC, ISO 8601), level, logger, msg, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in extras(record).items():
            line.setdefault(name, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        logging.Handler.__init__(self, level)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.setStream; stderr it stays
        pass


def configure(
    settings: LogSettings, *, stream: TextIO | None = None
) -> logging.Handler:
    """Install (or replace) jingxin's handler on the root logger; other handlers stay.

    Idempotent: the demo runs commands in-process and each may configure again.
    """
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    handler.addFilter(MaskNumbers())
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.set_name("jingxin")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "jingxin"]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Our own loggers at the configured level; libraries (py4j, urllib3, asyncio...) only
    # from WARNING up, so `level = "INFO"` shows jingxin's news, not every library's.
    root.setLevel(max(logging.WARNING, logging.getLevelName(settings.level)))
    logging.getLogger("jingxin").setLevel(settings.level)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # schema checks are not news
    return handler


def configure_from_settings() -> logging.Handler:
    """:func:`configure` from the ``[log]`` settings, for a process's entry point (the
    console script, ``python -m jingxin.smsc``). A settings error is left for the command to
    report; meanwhile the defaults log it."""
    from jingxin.config import LogSettings, load_settings
    from jingxin.errors import JingxinError

    try:
        settings = load_settings().log
    except JingxinError:
        settings = LogSettings()
    return configure(settings)
