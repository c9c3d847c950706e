"""``jingxin bench receipt-updates``: the receipts' batch updates against the plain join
they replaced, on a throwaway PostgreSQL database; a scale below one batch is refused."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from jingxin.bench.receipt_updates import receipt_updates
from jingxin.cli import app


def test_both_forms_finish_every_receipt_of_the_batch_and_are_timed(pg_server, monkeypatch) -> None:
    monkeypatch.setenv("JINGXIN_BENCH_PG", pg_server)
    # A run of 1,000 messages: only the smallest backlog (400 waiting) fits
    figures = receipt_updates(1000)
    assert figures["messages"] == 1000 and figures["batch"] == 300
    assert [k for k in figures if k.startswith("waiting_")] == ["waiting_400"]
    backlog = figures["waiting_400"]
    for statement in ("finish", "parts"):
        assert backlog[f"{statement}_shipped_ms"] > 0 and backlog[f"{statement}_plain_ms"] > 0
        assert backlog[f"{statement}_plain_over_shipped"] == pytest.approx(
            backlog[f"{statement}_plain_ms"] / backlog[f"{statement}_shipped_ms"], rel=0.02)


def test_a_scale_below_one_batch_is_refused_with_the_figure(pg_server, monkeypatch) -> None:
    monkeypatch.setenv("JINGXIN_BENCH_PG", pg_server)
    result = CliRunner().invoke(app, ["bench", "receipt-updates", "--scale", "10"])
    assert result.exit_code != 0
    assert "--scale 10" in result.output and "300" in result.output


def test_the_command_ends_with_one_json_line(pg_server, monkeypatch) -> None:
    monkeypatch.setenv("JINGXIN_BENCH_PG", pg_server)
    result = CliRunner().invoke(app, ["bench", "receipt-updates", "--scale", "600"])
    assert result.exit_code == 0, result.output
    line = json.loads(result.output.strip().splitlines()[-1])
    assert line["benchmark"] == "receipt-updates" and "waiting_400" in line
