"""``jingxin hall`` end to end: seed the BOSS from a synthetic warehouse, list products and
orders, the report and the leaderboard (tables and JSON), staff and merchants (added,
listed, removed); bad input is one line naming the option or file, and exit code 2 from
the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.data.store import open_store
from jingxin.data.store.models.hall import HallInteraction, HallOrder, HallReferral
from jingxin.errors import InputError, JingxinError

NUMBER = "+8613912345678"
FRIEND = "+8613912340000"


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    from jingxin.data.synth import SynthParams, synthesize

    out = tmp_path_factory.mktemp("hall-synth") / "synth"
    synthesize(params=SynthParams(subscribers=300, location_subscribers=5, location_days=1,
                                  cells=600), out=out)  # fmt: skip
    return out


@pytest.fixture
def cli(tmp_path, migrated_sqlite, monkeypatch, synth_dir):
    # Settings from a jingxin.toml in an empty directory: a store and a warehouse there
    from jingxin.data.warehouse.connection import open_duckdb
    from jingxin.data.warehouse.directory import import_directory

    monkeypatch.chdir(tmp_path)
    for name in ("JINGXIN_CONFIG", "JINGXIN_STORE__URL", "JINGXIN_WAREHOUSE__PATH"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "jingxin.toml").write_text(
        '[store]\nurl = "sqlite:///hall.db"\n\n[warehouse]\npath = "wh.duckdb"\n',
        encoding="utf-8")  # fmt: skip
    wh = open_duckdb(tmp_path / "wh.duckdb")
    import_directory(wh, synth_dir, rejects_dir=tmp_path / "rejects")
    wh.close()
    store = open_store(migrated_sqlite(tmp_path / "hall.db"))
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    yield invoke, store
    store.dispose()


def _ok(done) -> str:
    assert done.exit_code == 0, f"{done.output}\n{done.exception!r}"
    return done.output


def test_seed_then_products(cli) -> None:
    invoke, _ = cli
    # When the BOSS is seeded from the warehouse's first 50 subscribers, twice
    first = _ok(invoke("hall", "seed", "--limit", "50", "--demo"))
    again = _ok(invoke("hall", "seed", "--limit", "50"))
    # Then the tallies agree (a second seed updates, never duplicates)
    assert "BOSS seeded: 17 products and 34 plans (0 retired), 50 accounts" in first
    assert "demo hall: 4 staff, 2 merchants" in first
    assert first.splitlines()[0] == again.splitlines()[0]
    # And the products are listed by zone
    trials = _ok(invoke("hall", "products", "--zone", "41"))
    assert "BOSS products: 10" in trials and "TXSP" in trials and "LL10" not in trials
    everything = _ok(invoke("hall", "products"))
    assert "BOSS products: 51" in everything and "RBT5" in everything  # 17 + 34 plans
    assert "postpaid" in everything and "star ≥ 3" in everything


def _activity(store) -> None:
    at = datetime.now(UTC) - timedelta(days=1)
    with store.transaction() as s:
        s.add_all([
            HallInteraction(mo_id=1, msisdn=NUMBER, service_number="10086", command="zone",
                            zone="42", kind="query", outcome="answered", at=at),
            HallInteraction(mo_id=2, msisdn=NUMBER, service_number="10086", command="order",
                            zone="42", kind="order", outcome="placed", at=at),
            HallOrder(request_key="hall:2", msisdn=NUMBER, service_number="10086",
                      product_id="LL10", zone="42", list_fee_fen=1000, price_fen=800,
                      discount_pct=20, discounted_months=3, staff_code="S1001",
                      state="placed", created_at=at, updated_at=at),
            HallOrder(request_key="hall:3", msisdn=FRIEND, service_number="10086",
                      product_id="RBT5", list_fee_fen=500, price_fen=500, state="unknown",
                      reason="boss_timeout", created_at=at, updated_at=at),
            HallReferral(referrer=NUMBER, friend=FRIEND, product_id="RBT5", state="offered",
                         created_at=at),
        ])  # fmt: skip


def test_report_leaderboard_and_orders(cli) -> None:
    invoke, store = cli
    _ok(invoke("hall", "staff", "add", "s1001", "--name", "王芳", "--branch", "浦东营业厅"))
    _activity(store)
    # The report as JSON: one user, one query and one order, zone 42 converted
    report = json.loads(_ok(invoke("hall", "report", "--json")))
    assert (report["users"], report["kinds"], report["months"]) == (
        1, {"order": 1, "query": 1}, 3)
    assert report["zones"] == [{"zone": "42", "viewers": 1, "orders": 1, "placed": 1,
                                "conversion": 1.0}]  # fmt: skip
    assert report["order_states"] == {"placed": 1, "unknown": 1}
    chain = report["referrals"]["longest"][0]
    assert chain["msisdns"] == ["+861391234****", "+861391234****"]  # masked
    # As tables
    shown = _ok(invoke("hall", "report"))
    assert "users" in shown and "100.0%" in shown and "orders by state: placed 1, unknown 1" \
        in shown and NUMBER not in shown  # fmt: skip
    # The leaderboard by staff and by branch
    board = json.loads(_ok(invoke("hall", "leaderboard", "--since", "7d", "--json")))
    assert [(r["key"], r["name"], r["orders"]) for r in board["rows"]] == [("S1001", "王芳", 1)]
    branch = _ok(invoke("hall", "leaderboard", "--by", "branch"))
    assert "浦东营业厅" in branch and "leaderboard by branch" in branch
    assert "no orders" in _ok(invoke("hall", "leaderboard", "--since", "2099-01-01"))
    # The orders waiting for reconciliation
    unknown = _ok(invoke("hall", "orders", "--state", "unknown"))
    assert "hall orders: 1" in unknown and "boss_timeout" in unknown and FRIEND not in unknown
    mine = _ok(invoke("hall", "orders", "--msisdn", "13912345678"))
    assert "20% off × 3 months" in mine and "S1001" in mine


def test_staff_import_and_merchant_add(cli, tmp_path) -> None:
    invoke, _ = cli
    staff = tmp_path / "staff.csv"
    staff.write_text("code,name,branch\nS1,王芳,浦东营业厅\ns2,李强,徐汇营业厅\n",
                     encoding="utf-8")  # fmt: skip
    assert "2 added, 0 updated, 0 unchanged" in _ok(invoke("hall", "staff", "import", str(staff)))
    assert "0 added, 0 updated, 2 unchanged" in _ok(invoke("hall", "staff", "import", str(staff)))
    added = _ok(invoke("hall", "merchant", "add", "M9", "--name", "咖啡店", "--msisdn",
                       "13700009999"))  # fmt: skip
    assert "merchant M9 added" in added and "13700009999" not in added


def test_staff_are_listed_and_removed(cli, tmp_path) -> None:
    invoke, _ = cli
    assert "no active staff: add them with `jingxin hall staff add`" in _ok(
        invoke("hall", "staff", "list"))
    staff = tmp_path / "staff.csv"
    staff.write_text("code,name,branch\nS1,王芳,浦东营业厅\ns2,李强,徐汇营业厅\n",
                     encoding="utf-8")  # fmt: skip
    _ok(invoke("hall", "staff", "import", str(staff)))
    # Listed as a table, as JSON, and by branch
    table = _ok(invoke("hall", "staff", "list"))
    assert "staff: 2" in table and "王芳" in table and "徐汇营业厅" in table
    listed = json.loads(_ok(invoke("hall", "staff", "list", "--json")))
    assert listed == [
        {"code": "S2", "name": "李强", "branch": "徐汇营业厅", "tenant": "operator", "active": True},
        {"code": "S1", "name": "王芳", "branch": "浦东营业厅", "tenant": "operator", "active": True},
    ]  # fmt: skip
    pudong = json.loads(_ok(invoke("hall", "staff", "list", "--branch", "浦东营业厅", "--json")))
    assert [r["code"] for r in pudong] == ["S1"]
    # When S1 leaves (the code typed in lower case), and is removed again
    removed = _ok(invoke("hall", "staff", "remove", "s1"))
    assert "staff S1 (王芳, 浦东营业厅) removed" in removed
    assert "staff S1 (王芳, 浦东营业厅) was already removed" in _ok(
        invoke("hall", "staff", "remove", "S1"))
    # Then the list leaves it out unless --all, and --all shows it inactive
    assert "王芳" not in _ok(invoke("hall", "staff", "list"))
    everyone = json.loads(_ok(invoke("hall", "staff", "list", "--all", "--json")))
    assert [(r["code"], r["active"]) for r in everyone] == [("S2", True), ("S1", False)]
    assert "no active staff of branch '浦东营业厅'" in _ok(
        invoke("hall", "staff", "list", "--branch", "浦东营业厅"))
    assert json.loads(_ok(invoke("hall", "staff", "list", "--tenant", "t2", "--json"))) == []
    other = invoke("hall", "staff", "remove", "S2", "--tenant", "t2")  # not t2's to remove
    assert isinstance(other.exception, InputError)
    assert "staff code 'S2': no such staff in tenant 't2'" in str(other.exception)
    # And adding it again re-activates it
    _ok(invoke("hall", "staff", "add", "S1", "--name", "王芳", "--branch", "浦东营业厅"))
    assert "王芳" in _ok(invoke("hall", "staff", "list"))


def test_a_removed_staff_code_keeps_its_past_orders_on_the_leaderboard(cli) -> None:
    invoke, store = cli
    _ok(invoke("hall", "staff", "add", "s1001", "--name", "王芳", "--branch", "浦东营业厅"))
    _activity(store)
    _ok(invoke("hall", "staff", "remove", "S1001"))
    board = json.loads(_ok(invoke("hall", "leaderboard", "--since", "7d", "--json")))
    assert [(r["key"], r["name"], r["branch"], r["orders"]) for r in board["rows"]] == [
        ("S1001", "王芳", "浦东营业厅", 1)]
    assert "S1001" in _ok(invoke("hall", "orders", "--msisdn", "13912345678"))


def test_merchants_are_listed_masked_and_removed(cli) -> None:
    invoke, _ = cli
    assert "no active merchants: add them with `jingxin hall merchant add`" in _ok(
        invoke("hall", "merchant", "list"))
    _ok(invoke("hall", "merchant", "add", "M9", "--name", "咖啡店", "--msisdn", "13700009999"))
    # Listed with the number masked, in the table and in JSON
    table = _ok(invoke("hall", "merchant", "list"))
    assert "merchants: 1" in table and "咖啡店" in table and "+861370000****" in table
    assert "9999" not in table
    listed = json.loads(_ok(invoke("hall", "merchant", "list", "--json")))
    assert listed == [{"id": "M9", "name": "咖啡店", "msisdn": "+861370000****",
                       "tenant": "operator", "active": True}]  # fmt: skip
    # When it is removed, twice
    assert "merchant M9 (咖啡店) removed: it can no longer redeem vouchers" in _ok(
        invoke("hall", "merchant", "remove", "M9"))
    assert "merchant M9 (咖啡店) was already removed" in _ok(
        invoke("hall", "merchant", "remove", "M9"))
    # Then it is listed only with --all, inactive, and it cannot redeem at the counter
    assert "no active merchants" in _ok(invoke("hall", "merchant", "list"))
    everyone = json.loads(_ok(invoke("hall", "merchant", "list", "--all", "--json")))
    assert [(r["id"], r["active"]) for r in everyone] == [("M9", False)]
    refused = invoke("hall", "voucher", "redeem", "ABCDEFGH23", "--merchant", "M9")
    assert refused.exit_code == 1 and "unknown_merchant" in refused.output
    # And adding it again re-activates it
    _ok(invoke("hall", "merchant", "add", "M9", "--name", "咖啡店", "--msisdn", "13700009999"))
    assert "咖啡店" in _ok(invoke("hall", "merchant", "list"))


@pytest.mark.parametrize(("args", "says"), [
    (("hall", "products", "--zone", "43"), "--zone: '43' is not one of 41, 42"),
    (("hall", "report", "--months", "0"), "--months: 0 must be at least 1"),
    (("hall", "leaderboard", "--by", "region"), "--by: 'region' is not one of staff, branch"),
    (("hall", "leaderboard", "--since", "yesterday-ish"), "--since: 'yesterday-ish'"),
    (("hall", "orders", "--state", "lost"), "--state: 'lost' is not one of"),
    (("hall", "orders", "--msisdn", "12345"), "--msisdn"),
    (("hall", "seed", "--limit", "0"), "--limit: 0 must be at least 1"),
    (("hall", "seed", "--as-of", "2024-13-01"), "--as-of: '2024-13-01' is not a date"),
    (("hall", "seed", "--catalogue", "nowhere.yaml"), "nowhere.yaml"),
    (("hall", "seed", "--warehouse", "nowhere.duckdb"), "--warehouse: no warehouse at"),
    (("hall", "staff", "add", "S 1", "--name", "x", "--branch", "y"), "code: 'S 1'"),
    (("hall", "merchant", "add", "M9", "--name", "x", "--msisdn", "123"), "merchant.msisdn"),
    (("hall", "staff", "remove", "S404"), "staff code 'S404': no such staff in tenant 'operator'"),
    (("hall", "merchant", "remove", "M404"), "merchant 'M404': no such merchant"),
])  # fmt: skip
def test_bad_input_is_one_clear_error(cli, args, says) -> None:
    invoke, _ = cli
    done = invoke(*args)
    assert isinstance(done.exception, JingxinError), done.output
    assert says in str(done.exception)


def test_a_bad_staff_file_names_the_line(cli, tmp_path) -> None:
    invoke, _ = cli
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name,branch\nS1,王芳,浦东营业厅\nS2,,徐汇营业厅\n", encoding="utf-8")
    done = invoke("hall", "staff", "import", str(bad))
    assert isinstance(done.exception, InputError)
    assert f"{bad}:3: name" in str(done.exception)


def _script(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The installed ``jingxin`` console script run in ``cwd`` (its jingxin.toml, its
    migrated store), with no JINGXIN_ settings from the test's own environment."""
    script = Path(sys.executable).with_name("jingxin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINGXIN_")}
    return subprocess.run([str(script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_the_console_script_prints_one_line_and_exits_2(cli, tmp_path) -> None:
    done = _script(tmp_path, "hall", "report", "--months", "0")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --months: 0 must be at least 1"


def test_removing_an_unknown_code_is_one_line_and_exit_2(cli, tmp_path) -> None:
    done = _script(tmp_path, "hall", "staff", "remove", "s404")
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: staff code 's404': no such staff in tenant "
                                   "'operator' (see `jingxin hall staff list --all`)")
