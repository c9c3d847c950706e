"""The bad-input suite (issue #11): every ``jingxin`` command, driven as a new user drives it,
with wrong numbers, encodings, ports, zones, categories, tenants, files and specs.

Each case runs the real console entry point (``jingxin.cli.main``, in process) in one
shared workspace (SQLite store, DuckDB warehouse, files written by the case) and asserts:

- the exit code is not 0 (or, where the contract is a counted rejection, the count says so);
- the error names what to fix (the option, setting, file, line or field) in its first line;
- no traceback;
- nothing half-written: the store tables and warehouse tables the case could touch have
  the same rows after it as before.

The number of cases run is printed at the end of the session (``bad-input suite: ...``).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jingxin.cli import main

GBK_CSV = "msisdn,name\n13800138000,张三\n13900139000,李四\n".encode("gbk")
PLANS = ("plan_id,name,tier,payment,monthly_fee,data_mb,voice_min,sms,overage_data_per_mb,"
         "overage_voice_per_min,overage_sms,contract_months,generation\n"
         "P18,Basic 18,1,prepaid,18,1024,100,50,0.29,0.19,0.1,0,4\n")  # fmt: skip
STORE_TABLES = ("opt_outs", "blacklist", "consents", "subscriber_state", "messages",
                "contact_ledger", "campaigns", "templates", "decisions", "hall_orders",
                "hall_points", "hall_vouchers", "hall_staff", "probe_runs")  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One mistake: ``args`` (``{ws}`` is the workspace), what the error must name."""

    name: str
    args: tuple[str, ...]
    says: tuple[str, ...]  # every one of these, case-insensitive, in the error output
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes | str] = field(default_factory=dict)  # written before the run
    ok_code: bool = False  # a counted rejection: exit 0 is the contract, `says` the count


def busy_port() -> int:
    """A port something already listens on (the suite's own socket)."""
    return _LISTENER.getsockname()[1]


_LISTENER = socket.socket()
_LISTENER.bind(("127.0.0.1", 0))
_LISTENER.listen(1)

BAD_SPEC_FIELD = "name: x\ntemplate: {body: '您好'}\naudience: {path: a.csv}\ncolour: red\n"
SPEC_GBK_AUDIENCE = ("name: gbk\ncategory: notification\ntemplate: {body: '{{ name }}您好'," 
                     " variables: {name: str}}\naudience: {path: gbk.csv}\n")  # fmt: skip
SPEC_LAXER = ("name: lax\ncategory: notification\ntemplate: {code: promo}\n"
              "audience: {path: ok.csv}\n")  # fmt: skip
SPEC_TENANT = ("name: t\ntenant: nobody\ncategory: notification\ntemplate: {body: '您好'}\n"
               "audience: {path: ok.csv}\n")  # fmt: skip
RUNAWAY = ("code: runaway\ncategory: notification\nvariables: {name: str}\nbody: |-\n"
           "  {% set x = name * 100 %}{% for a in x %}{% for b in x %}{{ a }}{{ b }}"
           "{% endfor %}{% endfor %}\n")  # fmt: skip

CASES = [
    # -- numbers --------------------------------------------------------------------
    Case("optout-not-a-number", ("optout", "add", "--msisdn", "abc"), ("--msisdn", "abc")),
    Case("optout-too-short", ("optout", "add", "--msisdn", "1380013800"), ("--msisdn",)),
    Case("blacklist-landline", ("blacklist", "add", "--msisdn", "010-12345678"), ("--msisdn",)),
    Case("consent-letters", ("consent", "add", "--msisdn", "138OO138000"), ("--msisdn",)),
    Case("subscriber-bad-number", ("subscriber", "set", "--msisdn", "+1-555", "--in-service"),
         ("--msisdn",)),
    Case("decide-bad-number", ("policy", "decide", "--msisdn", "12", "--category", "otp"),
         ("--msisdn",)),
    Case("why-bad-number", ("why", "13800"), ("msisdn", "13800")),
    Case("send-bad-number", ("send", "--to", "123", "--text", "hi", "--wait", "0"),
         ("--to", "123")),
    Case("inbox-bad-limit", ("inbox", "list", "--limit", "-5"), ("--limit",)),
    # -- categories, tenants, sources, countries, zones -------------------------------
    Case("optout-category", ("optout", "add", "--msisdn", "13800138000", "--category", "spam"),
         ("--category", "spam")),
    Case("decide-category", ("policy", "decide", "--msisdn", "13800138000", "--category",
                             "promo"), ("category", "promo")),
    Case("decide-source", ("policy", "decide", "--msisdn", "13800138000", "--category", "otp",
                           "--source", "fax"), ("source", "fax")),
    Case("optout-tenant", ("optout", "add", "--msisdn", "13800138000", "--tenant", "nobody"),
         ("tenant", "nobody")),
    Case("consent-channel", ("consent", "add", "--msisdn", "13800138000", "--channel",
                             "pigeon"), ("channel", "pigeon")),
    Case("subscriber-country", ("subscriber", "set", "--msisdn", "13800138000", "--roaming",
                                "XX"), ("XX",)),
    Case("subscriber-zone", ("subscriber", "set", "--msisdn", "13800138000", "--timezone",
                             "Mars/Olympus"), ("Mars/Olympus",)),
    Case("send-category", ("send", "--to", "13800138000", "--text", "hi", "--category",
                           "spam", "--wait", "0"), ("category", "spam")),
    Case("send-too-long", ("send", "--to", "13800138000", "--text", "长" * 2000, "--wait",
                           "0"), ("part",)),
    Case("inbox-outcome", ("inbox", "list", "--outcome", "maybe"), ("--outcome", "maybe")),
    Case("inbox-since", ("inbox", "list", "--since", "yesterday-ish"), ("--since",)),
    Case("inbox-show-missing", ("inbox", "show", "987654"), ("987654",)),
    Case("why-days", ("why", "13800138000", "--days", "0"), ("--days",)),
    # -- settings -------------------------------------------------------------------
    Case("env-one-underscore", ("outbox", "stats"), ("JINGXIN_STORE_URL", "JINGXIN_STORE__URL"),
         env={"JINGXIN_STORE_URL": "sqlite:///elsewhere.db"}),
    Case("env-config-missing", ("outbox", "stats"), ("JINGXIN_CONFIG", "no-such.toml"),
         env={"JINGXIN_CONFIG": "no-such.toml"}),
    Case("env-zone", ("outbox", "stats"), ("default_timezone", "Mars/Olympus"),
         env={"JINGXIN_POLICY__DEFAULT_TIMEZONE": "Mars/Olympus"}),
    Case("env-max-parts", ("outbox", "stats"), ("max_parts",),
         env={"JINGXIN_CONTENT__MAX_PARTS": "0"}),
    Case("env-quiet-hours", ("outbox", "stats"), ("quiet_start",),
         env={"JINGXIN_POLICY__QUIET_START": "25:99"}),
    Case("env-channel-port", ("outbox", "stats"), ("port",),
         env={"JINGXIN_CHANNELS": json.dumps([{"name": "x", "port": 70000}])}),
    Case("config-file-typo", ("outbox", "stats"), ("jingxin.toml",),
         files={"jingxin.toml": "[stor]\nurl = 'sqlite:///x.db'\n"},
         env={"JINGXIN_CONFIG": "jingxin.toml"}),
    # -- ports ----------------------------------------------------------------------
    Case("smsc-port-range", ("smsc", "--smpp-port", "99999"), ("--smpp-port",)),
    Case("smsc-port-busy", ("smsc", "--smpp-port", "{busy}", "--no-cmpp", "--http-port",
                            "0"), ("{busy}",)),
    # -- files and encodings ----------------------------------------------------------
    Case("import-gbk", ("import", "plans", "gbk_plans.csv"), ("gbk_plans.csv", "UTF-8"),
         files={"gbk_plans.csv": PLANS.replace("Basic", "基础").encode("gbk")}),
    Case("import-missing-file", ("import", "plans", "nope.csv"), ("nope.csv",)),
    Case("import-unknown-table", ("import", "plan", "ok_plans.csv"), ("plan",),
         files={"ok_plans.csv": PLANS}),
    Case("import-all-bad-replace", ("import", "plans", "bad_plans.csv", "--replace"),
         ("bad_plans.csv",),
         files={"bad_plans.csv": PLANS.replace("P18,Basic 18,1", "P99,Bad,x")}),
    Case("import-dir-one-broken", ("import-dir", "dir"), ("dir",),
         files={"dir/plans.csv": PLANS.replace("P18", "P19"),
                "dir/subscribers.csv": b"\xff\xfe\x00garbage"}),
    Case("import-bad-encoding-name", ("import", "plans", "ok_plans.csv", "--encoding",
                                      "klingon"), ("klingon",), files={"ok_plans.csv": PLANS}),
    Case("batch-gbk", ("policy", "batch", "gbk.csv"), ("gbk.csv", "UTF-8"),
         files={"gbk.csv": GBK_CSV}),
    Case("lexicon-gbk", ("review", "您好", "--lexicon", "words.txt"), ("words.txt", "UTF-8"),
         files={"words.txt": "兼职刷单\n".encode("gbk")}),
    Case("template-file-gbk", ("template", "add", "t.yaml"), ("t.yaml", "UTF-8"),
         files={"t.yaml": "code: x\ncategory: notification\nbody: 您好\n".encode("gbk")}),
    Case("template-runaway", ("template", "add", "runaway.yaml"), ("runaway",),
         files={"runaway.yaml": RUNAWAY}),
    Case("audience-spec-missing", ("audience", "count", "nope.yaml"), ("nope.yaml",)),
    # -- campaign specs ---------------------------------------------------------------
    Case("campaign-spec-missing", ("campaign", "run", "nope.yaml"), ("nope.yaml",)),
    Case("campaign-spec-field", ("campaign", "run", "bad.yaml"), ("bad.yaml", "colour"),
         files={"bad.yaml": BAD_SPEC_FIELD, "a.csv": "msisdn\n13800138000\n"}),
    Case("campaign-spec-gbk", ("campaign", "run", "g.yaml"), ("g.yaml", "UTF-8"),
         files={"g.yaml": "name: 春节\ntemplate: {body: 您好}\naudience: {path: a.csv}\n"
                .encode("gbk"), "a.csv": "msisdn\n13800138000\n"}),
    Case("campaign-audience-gbk", ("campaign", "run", "s.yaml"), ("gbk.csv", "UTF-8"),
         files={"s.yaml": SPEC_GBK_AUDIENCE, "gbk.csv": GBK_CSV}),
    Case("campaign-laxer-category", ("campaign", "run", "lax.yaml"), ("marketing",),
         files={"lax.yaml": SPEC_LAXER, "ok.csv": "msisdn\n13800138000\n"}),
    Case("campaign-unknown-tenant", ("campaign", "run", "t.yaml"), ("tenant", "nobody"),
         files={"t.yaml": SPEC_TENANT, "ok.csv": "msisdn\n13800138000\n"}),
    Case("campaign-no-such-id", ("campaign", "pause", "424242"), ("424242",)),
    Case("campaign-bad-numbers-counted", ("campaign", "run", "n.yaml"), ('"invalid_number": 2',),
         files={"n.yaml": SPEC_TENANT.replace("tenant: nobody\n", "").replace("name: t",
                                                                           "name: numbers"),
                "ok.csv": "msisdn\nabc\n123\n"}, ok_code=True),
    Case("campaign-at", ("campaign", "run", "n2.yaml", "--at", "tomorrow"), ("--at",),
         files={"n2.yaml": SPEC_TENANT.replace("tenant: nobody\n", ""),
                "ok.csv": "msisdn\n13800138000\n"}),
    # -- store ------------------------------------------------------------------------
    Case("db-bad-url", ("db", "current", "--url", "mysql+nothing://x"), ("url",)),
    # -- the SMS business hall and dial tests ---------------------------------------------
    Case("hall-menu-spec-broken-yaml", ("hall", "menu", "check", "menu.yaml"),
         ("menu.yaml", "line 4", "invalid YAML"), files={"menu.yaml": "halls:\n - service_number: 10086\n   menu: [\n"}),
    Case("hall-menu-spec-missing-field", ("worker", "--once"), ("menu2.yaml", "halls[0]", "name"),
         env={"JINGXIN_HALL__MENU_PATH": "menu2.yaml"},
         files={"menu2.yaml": "halls:\n  - service_number: '10086'\n    menu: hi\n"}),
    Case("hall-points-bad-number", ("hall", "points", "--msisdn", "1380013"), ("--msisdn",)),
    Case("hall-voucher-unknown", ("hall", "voucher", "qr", "NOSUCHCODE"), ("NOSUCHCODE",)),
    Case("hall-leaderboard-bad-since", ("hall", "leaderboard", "--since", "3x"), ("--since", "3x")),
    Case("hall-staff-file-missing", ("hall", "staff", "import", "staff.csv"), ("staff.csv",)),
    Case("probe-settings-bad-regex", ("probe", "run"), ("probes[0].expect",),
         env={"JINGXIN_PROBES": json.dumps([{"name": "menu", "text": "0", "expect": "(["}])}),
]

RESULTS: list[tuple[str, bool]] = []


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one approved marketing template (`promo`) and a warehouse with plans."""
    ws = tmp_path_factory.mktemp("bad-input")
    env = _env(ws)
    saved, cwd = dict(os.environ), os.getcwd()
    os.environ.update(env)
    os.chdir(ws)
    try:
        (ws / "promo.yaml").write_text(
            "code: promo\ncategory: marketing\nbody: 流量包限时五折\n", encoding="utf-8")
        (ws / "plans.csv").write_text(PLANS, encoding="utf-8")
        for args in (("db", "upgrade"), ("template", "add", "promo.yaml"),
                     ("template", "submit", "1"), ("template", "approve", "1", "--reviewer", "王审核"),
                     ("import", "plans", "plans.csv"),
                     ("optout", "add", "--msisdn", "13700137000")):  # fmt: skip
            code, out = _call(args)
            assert code == 0, (args, out)
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)
    return ws


def _env(ws: Path) -> dict[str, str]:
    return {"JINGXIN_CONFIG": os.devnull, "JINGXIN_STORE__URL": f"sqlite:///{ws / 'jx.db'}",
            "JINGXIN_WAREHOUSE__PATH": str(ws / "wh.duckdb"),
            "JINGXIN_CHANNELS": json.dumps([{"name": "sim-smpp", "port": 1}])}  # fmt: skip


def _call(args: tuple[str, ...]) -> tuple[int, str]:
    """Run the console script in process; (exit code, what it printed on both streams)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["jingxin", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return code, err.getvalue() + out.getvalue()


def _snapshot(ws: Path) -> dict[str, object]:
    """Every store table's rows and every warehouse table's rows, as comparable values."""
    import sqlite3

    import duckdb

    seen: dict[str, object] = {}
    with sqlite3.connect(ws / "jx.db") as db:
        for table in STORE_TABLES:
            seen[table] = sorted(map(repr, db.execute(f"SELECT * FROM {table}").fetchall()))
    con = duckdb.connect(str(ws / "wh.duckdb"), read_only=True)
    try:
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
            seen[f"warehouse.{table}"] = sorted(map(repr, con.execute(
                f'SELECT * FROM "{table}"').fetchall()))  # fmt: skip
    finally:
        con.close()
    return seen


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the shared workspace and the case's files
    monkeypatch.chdir(workspace)
    for name, value in {**_env(workspace), **case.env}.items():
        monkeypatch.setenv(name, value)
    for name, content in case.files.items():
        path = workspace / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    args = tuple(a.replace("{busy}", str(busy_port())) for a in case.args)
    says = tuple(s.replace("{busy}", str(busy_port())) for s in case.says)
    before = _snapshot(workspace)
    ok = False
    try:
        # When the command runs
        code, output = _call(args)
        # Then it refuses (or counts the rejection), names what to fix, and shows no traceback
        assert "Traceback" not in output, output
        if case.ok_code:
            assert code == 0, output
        else:
            assert code != 0, f"exit 0 for {args}: {output}"
        lowered = output.lower()
        missing = [s for s in says if s.lower() not in lowered]
        assert not missing, f"{missing} not named in: {output}"
        # And nothing was half-written
        if not case.ok_code:
            after = _snapshot(workspace)
            changed = [t for t in before if before[t] != after.get(t)]
            assert not changed, f"{args} changed {changed}"
        ok = True
    finally:
        RESULTS.append((case.name, ok))


def test_the_suite_covers_every_kind_of_mistake() -> None:
    # The issue names the kinds: each must have cases
    names = " ".join(c.name for c in CASES)
    for kind in ("number", "gbk", "port", "zone", "category", "tenant", "spec", "import"):
        assert kind in names, kind
    assert len(CASES) >= 50
