"""Structured logs (jingxin.logs): one JSON object per line, and no number left readable -
in the message, its arguments, its extras or a traceback - in either format."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator

import pytest

from jingxin.config import LogSettings
from jingxin.logs import TEXT_FORMAT, configure, mask, mask_text

FULL_NUMBER = re.compile(r"(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)")


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO, dict[str, str]]]:
    """A logger and what the handler ``configure`` installs writes; ``fmt["format"]``
    picks text or json before the first call. The root logger is restored afterwards."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    out = io.StringIO()
    fmt = {"format": "json"}
    logger = logging.getLogger("jingxin.test.logs")

    def install() -> None:
        configure(LogSettings(format=fmt["format"], level="DEBUG"), stream=out)

    logger.install = install  # type: ignore[attr-defined]
    yield logger, out, fmt
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]


@pytest.mark.parametrize(("text", "expected"), [
    ("+8613912345678", "+861391234****"),  # E.164
    ("13912345678", "1391234****"),  # a bare 11-digit mobile
    ("8613912345678", "861391234****"),  # the PDU form: country code, no '+'
    ("to 13912345678, 15011112222.", "to 1391234****, 1501111****."),
    ("+861391234****", "+861391234****"),  # already masked: not masked twice
    ("message 1700000000000 id 12345", "message 1700000000000 id 12345"),  # not numbers
    ("12345678901", "12345678901"),  # 11 digits, but no Chinese mobile prefix
])  # fmt: skip
def test_mask_text_hides_the_last_digits_of_every_number(
    text: str, expected: str
) -> None:
    assert mask_text(text) == expected


def test_mask_keeps_the_worker_rule() -> None:
    from jingxin.dispatch.worker import mask as worker_mask

    for number in ("+8613912345678", "10086", "1"):
        assert mask(number) == worker_mask(number)


def test_json_line_per_record_with_extras_and_numbers_masked(logged) -> None:
    logger, out, _ = logged
    logger.install()
    # Given a call that puts a number in its message, its arguments and its extras
    logger.warning(
        "resend to +8613912345678 (%s)", "13800138000",
        extra={"message_id": 7, "channel": "sim", "lane": 1, "campaign_id": 3,
               "msisdn": "+8613912345678", "source": "10690000",
               "detail": {"dest": "13800138000", "note": "from 13900001111"}},
    )  # fmt: skip
    logger.info("second line")
    # Then each line is one JSON object with the fields a log shipper needs
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["level"] == "WARNING"
    assert first["logger"] == "jingxin.test.logs"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first["msg"] == "resend to +861391234**** (1380013****)"
    assert (first["message_id"], first["channel"], first["lane"], first["campaign_id"]) == (
        7, "sim", 1, 3,
    )  # fmt: skip
    # And numbers are masked in the extras too: named number fields entirely, others by shape
    assert first["msisdn"] == "+861391234****"
    assert first["source"] == "1069****"
    assert first["detail"] == {"dest": "1380013****", "note": "from 1390000****"}
    assert json.loads(lines[1])["msg"] == "second line"
    assert not FULL_NUMBER.search(out.getvalue())


def test_tracebacks_are_masked_and_kept_in_json(logged) -> None:
    logger, out, _ = logged
    logger.install()
    try:
        raise ValueError("cannot route +8613912345678")
    except ValueError:
        logger.exception("submit failed")
    line = json.loads(out.getvalue())
    assert "ValueError: cannot route +861391234****" in line["exc"]
    assert not FULL_NUMBER.search(out.getvalue())


def test_text_format_is_the_classic_line_with_numbers_masked(logged) -> None:
    logger, out, fmt = logged
    fmt["format"] = "text"
    logger.install()
    logger.info("message %s to %s", 5, "+8613912345678", extra={"channel": "sim"})
    expected = logging.Formatter(TEXT_FORMAT).format(
        logging.makeLogRecord({"name": logger.name, "levelname": "INFO", "levelno": 20,
                               "msg": "message 5 to +861391234****"})
    )  # fmt: skip
    line = out.getvalue().rstrip("\n")
    # The timestamp differs; everything after it is the old format, unchanged
    assert line.split(" ", 2)[2] == expected.split(" ", 2)[2]
    assert line.endswith("INFO jingxin.test.logs: message 5 to +861391234****")


def test_configure_replaces_its_own_handler_and_keeps_others(logged) -> None:
    logger, out, _ = logged
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    logger.install()
    logger.install()
    handlers = logging.getLogger().handlers
    assert sum(h.get_name() == "jingxin" for h in handlers) == 1
    assert other in handlers
    logger.debug("once")
    assert len(out.getvalue().splitlines()) == 1


def test_log_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from jingxin.config import load_settings
    from jingxin.errors import ConfigError

    monkeypatch.setenv("JINGXIN_LOG__FORMAT", "json")
    monkeypatch.setenv("JINGXIN_LOG__LEVEL", "warning")
    assert load_settings().log == LogSettings(format="json", level="WARNING")
    monkeypatch.setenv("JINGXIN_LOG__FORMAT", "xml")
    with pytest.raises(ConfigError, match="log.format"):
        load_settings()


def test_the_console_script_sets_up_logging_from_settings(
    logged, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from jingxin.cli import _configure_logging
    from jingxin.logs import JsonFormatter

    # Given JSON logs asked for in the environment (and a broken settings file next)
    monkeypatch.setenv("JINGXIN_CONFIG", os.devnull)
    monkeypatch.setenv("JINGXIN_LOG__FORMAT", "json")
    _configure_logging()
    (ours,) = [h for h in logging.getLogger().handlers if h.get_name() == "jingxin"]
    assert isinstance(ours.formatter, JsonFormatter)
    # A bad setting does not stop the set-up: text logs, and the command reports the error
    monkeypatch.setenv("JINGXIN_LOG__FORMAT", "xml")
    _configure_logging()
    (ours,) = [h for h in logging.getLogger().handlers if h.get_name() == "jingxin"]
    assert not isinstance(ours.formatter, JsonFormatter)
