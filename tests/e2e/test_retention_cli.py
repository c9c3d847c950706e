"""``jingxin retention`` end to end: extract a day from a DuckDB warehouse file, the
worklist, assign / visit / close, the rate per branch (tables and JSON); refused moves are
one line naming the order and both states, and the console script exits 2."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.data.warehouse.schema import TABLES
from jingxin.errors import InputError

ROWS = [  # id, payment, status, suspended_since, region
    (1, "prepaid", "double_stop", dt.date(2026, 3, 1), "浦东新区"),
    (2, "prepaid", "double_stop", dt.date(2026, 3, 5), "浦东新区"),  # 5 days on 03-10
    (3, "postpaid", "double_stop", dt.date(2026, 2, 1), "浦东新区"),
    (4, "prepaid", "double_stop", dt.date(2026, 2, 10), "闵行区"),
    (5, "prepaid", "active", None, "闵行区"),
]
TOML = """[store]
url = "sqlite:///retention.db"

[warehouse]
path = "wh.duckdb"

[retention]
double_stop_days = 7
default_branch = "客户服务中心"

[retention.branches]
"浦东新区" = "浦东分公司"
"""


def subscribers() -> pa.Table:
    schema = TABLES["subscribers"].schema
    n = len(ROWS)
    data = {
        "subscriber_id": [r[0] for r in ROWS], "msisdn": [f"+86139000000{r[0]:02d}" for r in ROWS],
        "carrier": ["china_mobile"] * n, "plan_id": ["P1"] * n,
        "payment": [r[1] for r in ROWS], "status": [r[2] for r in ROWS], "gender": [None] * n,
        "birthday": [None] * n, "entry_date": [dt.date(2021, 6, 1)] * n,
        "contract_end": [None] * n, "star_level": [1] * n, "region": [r[4] for r in ROWS],
        "handset_model": [None] * n, "handset_generation": [4] * n, "app_user": [True] * n,
        "suspended_since": [r[3] for r in ROWS],
    }
    return pa.table({f.name: pa.array(data[f.name], f.type) for f in schema}, schema=schema)


@pytest.fixture
def cli(tmp_path, monkeypatch):
    # Settings from a jingxin.toml in an empty directory: a store and a warehouse there
    from jingxin.data.warehouse.connection import open_duckdb

    monkeypatch.chdir(tmp_path)
    for name in ("JINGXIN_CONFIG", "JINGXIN_STORE__URL", "JINGXIN_WAREHOUSE__PATH"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "jingxin.toml").write_text(TOML, encoding="utf-8")
    wh = open_duckdb(tmp_path / "wh.duckdb")
    wh.con.create_table("subscribers", subscribers())
    wh.close()
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def _ok(done) -> str:
    assert done.exit_code == 0, f"{done.output}\n{done.exception!r}"
    return done.output


def test_extract_work_and_rate(cli) -> None:
    # When 2026-03-10 is extracted, twice
    first = _ok(cli("retention", "extract", "--date", "2026-03-10"))
    again = json.loads(_ok(cli("retention", "extract", "--date", "2026-03-10", "--json")))
    # Then 1 and 4 got an order (2 is barred 5 days, 3 is postpaid); the rerun adds none
    assert "2 candidates, 2 new orders, 0 already had theirs" in first
    assert "浦东分公司" in first and "客户服务中心" in first
    assert "no churn model" in first
    assert (again["candidates"], again["created"], again["existing"]) == (2, 0, 2)
    assert again["propensity_note"].startswith("no churn model")
    orders = json.loads(_ok(cli("retention", "orders", "--json")))
    assert [(o["subscriber_id"], o["branch"], o["state"]) for o in orders] == [
        (4, "客户服务中心", "created"), (1, "浦东分公司", "created")]  # unscored: longest barred first
    assert orders[0]["msisdn"] == "+861390000****"
    pudong = next(o["id"] for o in orders if o["branch"] == "浦东分公司")
    other = next(o["id"] for o in orders if o["branch"] == "客户服务中心")
    # When 浦东's order is assigned, visited and closed as reactivated; the other lost
    assert f"work order {pudong}: assigned (李娜)" in _ok(
        cli("retention", "assign", str(pudong), "--to", "李娜", "--by", "张经理"))
    _ok(cli("retention", "visit", str(pudong), "--note", "上门，已充值"))
    assert f"work order {pudong}: reactivated" in _ok(
        cli("retention", "close", str(pudong), "--reactivated"))
    _ok(cli("retention", "assign", str(other), "--to", "王强"))
    _ok(cli("retention", "close", str(other), "--lost", "--note", "已携号转网"))
    # Then the worklist of open orders is empty, and the rate is per branch
    assert "no work orders match" in _ok(cli("retention", "orders"))
    table = _ok(cli("retention", "orders", "--state", "all", "--branch", "浦东分公司"))
    assert "reactivated" in table and "李娜" in table
    rate = json.loads(_ok(cli("retention", "rate", "--since", "2026-03-01", "--json")))
    assert [(r["branch"], r["orders"], r["visited"], r["reactivated"], r["lost"], r["rate"])
            for r in rate["rows"]] == [("客户服务中心", 1, 0, 0, 1, 0.0),
                                       ("浦东分公司", 1, 1, 1, 0, 1.0)]
    text = _ok(cli("retention", "rate", "--since", "all"))
    assert "50.0%" in text and "all time" in text


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("retention", "extract", "--date", "10/03/2026"),
         "--date: '10/03/2026' is not a date (YYYY-MM-DD)"),
        (("retention", "orders", "--state", "done"), "--state: 'done' is not one of"),
        (("retention", "close", "1"), "close: give one of --reactivated or --lost"),
        (("retention", "close", "1", "--reactivated", "--lost"), "give one of"),
        (("retention", "visit", "99"), "work order 99: no such order"),
        (("retention", "rate", "--since", "soon"), "--since: 'soon' is neither a span"),
    ],
)
def test_bad_input_is_one_line(cli, args, says) -> None:
    done = cli(*args)
    assert isinstance(done.exception, InputError), done.output
    assert says in str(done.exception)


def test_a_refused_move_names_the_order_and_both_states(cli) -> None:
    _ok(cli("retention", "extract", "--date", "2026-03-10"))
    done = cli("retention", "close", "1", "--lost")
    assert isinstance(done.exception, InputError)
    assert str(done.exception) == ("work order 1: cannot go from created to lost "
                                   "(from created: assigned)")


def test_the_console_script_prints_one_line_and_exits_2(cli, tmp_path) -> None:
    script = Path(sys.executable).with_name("jingxin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINGXIN_")}
    done = subprocess.run([str(script), "retention", "visit", "7"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == "error: work order 7: no such order"
