"""``--at`` means the same thing for every command: bare times in the operator's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jingxin.cli.instants import parse_instant
from jingxin.errors import InputError


def test_a_bare_time_is_read_in_the_operators_zone() -> None:
    when = parse_instant("2026-10-08T10:00", zone="Asia/Shanghai")
    assert when.astimezone(UTC) == datetime(2026, 10, 8, 2, 0, tzinfo=UTC)


def test_the_default_zone_comes_from_the_policy_settings(monkeypatch) -> None:
    monkeypatch.setenv("JINGXIN_POLICY__DEFAULT_TIMEZONE", "Asia/Urumqi")
    assert parse_instant("2026-10-08T10:00").utcoffset() == timedelta(hours=6)


def test_an_offset_is_kept_as_written() -> None:
    assert parse_instant("2026-10-08T10:00Z", zone="Asia/Shanghai") == datetime(
        2026, 10, 8, 10, 0, tzinfo=UTC
    )


def test_garbage_names_the_option() -> None:
    with pytest.raises(InputError, match=r"--complained-at: 'yesterday' is not an ISO"):
        parse_instant("yesterday", option="--complained-at")
