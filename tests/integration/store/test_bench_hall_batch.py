"""``jingxin bench hall-batch``: one hall handler batch timed in process by size, on
PostgreSQL. Every MO is answered once (an outcome, an interaction, a reply), the CPU
splits into a fixed cost per batch and a cost per MO, and bad sizes are refused."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from jingxin.bench.hall_batch import HallBatchPlan, hall_batch_bench, sizes_option, split_cost
from jingxin.cli import app


def test_every_mo_of_every_batch_is_answered_once_and_the_cost_is_split(pg_url, tmp_path) -> None:
    report = hall_batch_bench(store_url=pg_url, workdir=tmp_path,
                              plan=HallBatchPlan(sizes=(5, 1), batches=6))  # fmt: skip
    assert report["failures"] == []
    assert report["not_handled"] == report["without_reply"] == 0
    assert report["without_interaction"] == report["interactions_twice"] == 0
    assert list(report["sizes"]) == ["1", "5"]  # timed smallest first
    for figures in report["sizes"].values():
        assert figures["cpu_ms_per_batch"] > 0 and figures["wall_p50_ms"] > 0
    assert report["cpu_fixed_ms_per_batch"] is not None and report["cpu_ms_per_mo"] is not None


def test_the_cost_per_mo_is_the_slope_of_the_largest_sizes_and_the_rest_is_fixed() -> None:
    fixed, per_mo = split_cost({1: 3.6, 10: 5.0, 40: 8.0})
    assert per_mo == pytest.approx(0.1)
    assert fixed == pytest.approx(3.5)
    assert split_cost({20: 10.0}) == (None, 0.5)  # one size: nothing to tell apart


@pytest.mark.parametrize("given", ["", "a,b", "0,10", "1,300", "1.5"])
def test_a_bad_list_of_sizes_is_refused_with_the_value(given) -> None:
    with pytest.raises(typer.BadParameter, match="batch size|whole numbers"):
        sizes_option(given)
    assert sizes_option(" 1, 10 ,40") == (1, 10, 40)


def test_the_command_names_the_bad_sizes() -> None:
    result = CliRunner().invoke(app, ["bench", "hall-batch", "--sizes", "ten"])
    assert result.exit_code == 2
    assert "whole numbers" in result.output
