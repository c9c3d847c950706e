"""Simulated subscribers (jingxin.smsc.reactions, .subscribers, .subscriber_effects): the
model's probabilities follow relevance and the responsive hour, the draws are
deterministic, targeting by relevance measurably beats a random blast of the same size,
and respond() acts through the real doors (BOSS, clicks, MO inbox, HTTP) exactly once."""

from __future__ import annotations

import datetime as dt
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from jingxin.audience.features import FEATURES
from jingxin.config import Settings
from jingxin.data.store import open_store
from jingxin.data.store.models import (
    BossAccount,
    BossOrder,
    ExperimentAssignment,
    HallComplaint,
    LinkClick,
    Message,
    MoMessage,
    MoOutcome,
    OptOut,
)
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES
from jingxin.errors import InputError, WarehouseError
from jingxin.hall.seed import load_catalogue, seed_products
from jingxin.smsc.reactions import (
    BehaviourParams,
    chances,
    hour_factor,
    offer_kind,
    peak_hours,
    profile_table,
    react,
    relevance,
)
from jingxin.smsc.subscribers import relevance_scores, respond

SENT_AT = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
NOW = SENT_AT + timedelta(hours=3)
EAGER = BehaviourParams(click_base=0.5, reply_base=0.15, opt_out_base=0.1,
                        complain_base=0.08, order_base=0.2, order_lift=0.4)  # fmt: skip


def number(i: int) -> str:
    return f"+86139{i:08d}"


# ------------------------------------------------------------------------ the model


@pytest.mark.parametrize(("text", "kind"), [
    ("【精信】5GB流量包仅需20元，回复KTLL20开通", "data"),
    ("本月流量即将用完", "data"),
    ("话费充100送20，8折优惠", "discount"),
    ("感谢您入网五周年，送您一份关怀礼包", "care"),
    ("祝您生日快乐", "care"),
    ("出境漫游包，日租10元", "roaming"),
    ("您好，欢迎使用", "generic"),
    ("", "generic"),
])  # fmt: skip
def test_the_offer_kind_is_read_from_the_words(text, kind) -> None:
    assert offer_kind(text) == kind


def population(n: int, seed: int = 7) -> pa.Table:
    """``n`` synthetic subscribers: a third data-heavy, price sensitivity skewed low."""
    rng = np.random.default_rng(seed)
    return profile_table({
        "msisdn": [number(i) for i in range(n)],
        "known": [True] * n,
        "product_preference": rng.choice(["data_heavy", "balanced", "voice_heavy"], n,
                                         p=[0.3, 0.4, 0.3]).tolist(),
        "usage_trend": rng.choice(["surge", "stable", "drop"], n, p=[0.1, 0.8, 0.1]).tolist(),
        "plan_fit": rng.choice(["over", "fit", "under", "unknown"], n).tolist(),
        "price_sensitivity": rng.beta(2, 4, n).tolist(),
        "electronic": (rng.random(n) < 0.5).tolist(),
        "complaint_sensitive": (rng.random(n) < 0.05).tolist(),
    })  # fmt: skip


def two(**differences) -> pa.Table:
    """Two otherwise neutral subscribers that differ in the given columns."""
    columns = {"msisdn": [number(1), number(2)]}
    columns.update({name: list(values) for name, values in differences.items()})
    return profile_table(columns)


def odds(table: pa.Table, *, factor=None):
    n = table.num_rows
    return chances(relevance(table, "data") if factor is None else factor[0],
                   factor=np.ones(n) if factor is None else factor[1],
                   complaint_sensitive=table.column("complaint_sensitive").to_numpy(),
                   electronic=table.column("electronic").to_numpy())  # fmt: skip


def test_heavy_data_users_answer_a_data_offer_more_than_light_ones() -> None:
    table = two(product_preference=["data_heavy", "voice_heavy"])
    r = relevance(table, "data")
    assert r[0] > r[1] > 0  # everybody keeps the base relevance
    got = odds(table)
    for p in (got.click, got.reply, got.order_base, got.order_treated):
        assert p[0] > p[1]
    assert got.opt_out[0] < got.opt_out[1]  # an offer that does not fit annoys
    # A discount offer does not care about the data preference
    assert relevance(table, "discount")[0] == relevance(table, "discount")[1]


def test_price_sensitive_users_answer_a_discount_more() -> None:
    table = two(price_sensitivity=[0.9, 0.1])
    r = relevance(table, "discount")
    assert r[0] > r[1]
    got = chances(r, factor=np.ones(2), complaint_sensitive=np.zeros(2, bool),
                  electronic=np.zeros(2, bool))  # fmt: skip
    assert got.order_treated[0] > got.order_treated[1] and got.click[0] > got.click[1]


def test_complaint_sensitive_users_complain_more() -> None:
    table = two(complaint_sensitive=[True, False])
    got = odds(table)
    assert got.complain[0] > 5 * got.complain[1] and got.opt_out[0] > got.opt_out[1]


def test_relevance_is_monotone_over_a_population() -> None:
    table = population(500)
    pref = np.array(table.column("product_preference").to_pylist())
    r = relevance(table, "data")
    assert r[pref == "data_heavy"].min() > r[pref == "voice_heavy"].max()
    price = table.column("price_sensitivity").to_numpy()
    d = relevance(table, "discount")
    low = table.column("value_tier").to_numpy(zero_copy_only=False) == "low"
    assert np.all(np.diff(d[~low][np.argsort(price[~low])]) >= 0)


def test_a_message_at_the_responsive_hour_is_acted_on_more() -> None:
    params = BehaviourParams()
    peaks = np.array([8, 8, 8, 23, 8], dtype=np.int8)
    factor = hour_factor(peaks, np.array([8, 9, 12, 0, -1]), params)
    assert factor.tolist() == [1.8, 1.8, 1.0, 1.8, 1.0]  # ±1 h, across midnight, no message
    assert hour_factor(np.array([20]), np.array([3]), params)[0] == params.night_factor
    # And through the draws: the same subscribers, reached at or away from their peak
    n = 4000
    table = population(n, seed=3)
    msisdns = table.column("msisdn").to_pylist()
    peaks = peak_hours(msisdns, seed=0)
    r = relevance(table, "data")
    rates = {}
    for name, hours in (("peak", peaks.astype(int)), ("off", (peaks.astype(int) + 6) % 24)):
        f = hour_factor(peaks, hours, params)
        got = chances(r, factor=f, complaint_sensitive=np.zeros(n, bool),
                      electronic=np.zeros(n, bool))  # fmt: skip
        did = react(msisdns, odds=got, treated=np.ones(n, bool), factor=f,
                    experiment="campaign:1", seed=0)  # fmt: skip
        rates[name] = (did.clicked.mean(), did.replied.mean(), np.median(did.mo_delay))
    assert rates["peak"][0] > 1.4 * rates["off"][0]
    assert rates["peak"][1] > 1.2 * rates["off"][1]
    assert rates["peak"][2] < rates["off"][2]  # and sooner


def test_peak_hours_follow_the_daily_curve_and_the_seed() -> None:
    msisdns = [number(i) for i in range(5000)]
    peaks = peak_hours(msisdns, seed=0)
    counts = np.bincount(peaks, minlength=24)
    assert counts[21] > 5 * counts[3] and counts[8] > 3 * counts[5]  # evening and commute
    assert np.array_equal(peaks, peak_hours(msisdns, seed=0))
    assert not np.array_equal(peaks, peak_hours(msisdns, seed=1))


def test_draws_are_deterministic_for_a_seed_and_independent_of_the_batch() -> None:
    table = population(300)
    msisdns = table.column("msisdn").to_pylist()
    got = odds(table)
    ones = np.ones(300)

    def draw(seed, rows=slice(None)):
        sub = {k: v[rows] for k, v in vars(got).items()}
        return react(msisdns[rows], odds=type(got)(**sub), treated=np.ones(300, bool)[rows],
                     factor=ones[rows], experiment="campaign:1", seed=seed)  # fmt: skip

    a, b, c = draw(0), draw(0), draw(1)
    assert np.array_equal(a.clicked, b.clicked) and np.array_equal(a.ordered, b.ordered)
    assert not np.array_equal(a.clicked, c.clicked)
    half = draw(0, slice(0, 150))
    assert np.array_equal(half.clicked, a.clicked[:150])
    # One MO at most per subscriber
    assert not np.any(a.replied & a.opted_out) and not np.any(a.complained & a.replied)


def test_a_targeted_half_converts_more_than_a_random_half_of_the_same_size() -> None:
    # Given 3,000 synthetic subscribers and a data-pack offer
    n = 3000
    table = population(n)
    msisdns = table.column("msisdn").to_pylist()
    r = relevance(table, "data")
    f = np.ones(n)
    got = chances(r, factor=f, complaint_sensitive=table.column("complaint_sensitive").to_numpy(),
                  electronic=table.column("electronic").to_numpy())  # fmt: skip
    top = np.argsort(-r, kind="stable")[: n // 2]
    blast = np.random.default_rng(11).permutation(n)[: n // 2]
    pooled = {"top": [0, 0], "random": [0, 0]}
    for seed in range(3):
        for name, chosen in (("top", top), ("random", blast)):
            treated = np.zeros(n, bool)
            treated[chosen] = True
            did = react(msisdns, odds=got, treated=treated, factor=f,
                        experiment=f"campaign:{name}", seed=seed)  # fmt: skip
            pooled[name][0] += int(did.ordered[chosen].sum())
            pooled[name][1] += len(chosen)
            if seed == 0:
                # the uplift over the untreated is real in both: treated ⊇ base orders
                base = react(msisdns, odds=got, treated=np.zeros(n, bool), factor=f,
                             experiment=f"campaign:{name}", seed=seed)  # fmt: skip
                assert np.all(did.ordered[chosen] >= base.ordered[chosen] & ~(
                    did.opted_out | did.complained)[chosen])  # fmt: skip
    # Then ordered per sent is clearly higher for the targeted half (two-proportion z)
    (x1, n1), (x2, n2) = pooled["top"], pooled["random"]
    p1, p2 = x1 / n1, x2 / n2
    p = (x1 + x2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    assert p1 > 1.3 * p2 and z > 3, (p1, p2, z)
    # And the model says so before any draw
    assert got.order_treated[top].mean() > 1.3 * got.order_treated[blast].mean()


# ---------------------------------------------------------------- warehouse and store


def warehouse(rows: list[tuple[int, str, float, str]], *, roaming: dict[int, int] | None = None):
    """An in-memory warehouse: subscriber i (number(i)) with product preference, price
    sensitivity and channel preference; features as of 2026-03-01."""
    wh = open_duckdb(":memory:")
    n = len(rows)
    spec = TABLES["subscribers"]
    subs = {
        "subscriber_id": [r[0] for r in rows], "msisdn": [number(r[0]) for r in rows],
        "carrier": ["china_mobile"] * n, "plan_id": ["P1"] * n, "payment": ["postpaid"] * n,
        "status": ["active"] * n, "gender": ["F"] * n, "birthday": [None] * n,
        "entry_date": [dt.date(2020, 1, 1)] * n, "contract_end": [None] * n,
        "star_level": [3] * n, "region": ["浦东新区"] * n, "handset_model": [None] * n,
        "handset_generation": [5] * n, "app_user": [False] * n, "suspended_since": [None] * n,
    }  # fmt: skip
    wh.con.create_table("subscribers", pa.table(
        {f.name: pa.array(subs[f.name], f.type) for f in spec.schema}, schema=spec.schema))
    defaults = {"as_of": dt.date(2026, 3, 1), "arpu": 58.0, "arpu_prev": 58.0,
                "data_mb_3m": 3000.0, "voice_min_3m": 300.0, "sms_3m": 10.0,
                "topup_count_3m": 0, "topup_amount_3m": 0.0, "usage_trend": "stable",
                "value_tier": "mid", "plan_fit": "fit", "handset_upgrade": False,
                "tenure_months": 74, "tenure_group": "over_12m", "hall_contacts": 0,
                "electronic_contacts": 3, "complaint_count": 0, "complaint_sensitive": False,
                "home_cell": None, "home_district": None, "home_lat": None, "home_lon": None,
                "work_cell": None, "work_district": None}  # fmt: skip
    feats = {f.name: [defaults.get(f.name)] * n for f in FEATURES.schema}
    feats["subscriber_id"] = [r[0] for r in rows]
    feats["product_preference"] = [r[1] for r in rows]
    feats["price_sensitivity"] = [r[2] for r in rows]
    feats["channel_preference"] = [r[3] for r in rows]
    wh.con.create_table("features", pa.table(
        {f.name: pa.array(feats[f.name], f.type) for f in FEATURES.schema},
        schema=FEATURES.schema))  # fmt: skip
    if roaming is not None:
        spec = TABLES["usage_monthly"]
        ids = list(roaming)
        k = len(ids)
        usage = {"subscriber_id": ids, "month": [dt.date(2026, 2, 1)] * k,
                 "plan_id": ["P1"] * k, "data_mb": [1.0] * k, "voice_min": [1.0] * k,
                 "sms": [1] * k, "bill": [58.0] * k, "topup_count": [0] * k,
                 "topup_amount": [0.0] * k, "roaming_days_domestic": list(roaming.values()),
                 "roaming_days_international": [0] * k}  # fmt: skip
        wh.con.create_table("usage_monthly", pa.table(
            {f.name: pa.array(usage[f.name], f.type) for f in spec.schema}, schema=spec.schema))
    return wh


def test_relevance_scores_read_the_warehouse() -> None:
    wh = warehouse([(1, "data_heavy", 0.1, "electronic"), (2, "voice_heavy", 0.9, "physical")],
                   roaming={1: 12})  # fmt: skip
    data = relevance_scores(wh, [number(2), number(1), number(99)], "data")
    assert data[1] > data[2] > data[0]  # heavy > an unknown (average) number > voice-heavy
    discount = relevance_scores(wh, [number(1), number(2)], "话费8折优惠")  # a text works too
    assert discount[1] > discount[0]
    roaming = relevance_scores(wh.con, [number(1), number(2)], "roaming")  # a bare backend
    assert roaming[0] > roaming[1]
    with pytest.raises(WarehouseError, match="audience features"):
        relevance_scores(open_duckdb(":memory:"), [number(1)], "data")


def seeded(url: str):
    opened = open_store(url, upgrade=True)
    seed_products(opened, load_catalogue())
    return opened


@pytest.fixture
def store(tmp_path):
    opened = seeded(f"sqlite:///{tmp_path / 'jx.db'}")
    yield opened
    opened.dispose()


@pytest.fixture
def both_stores(store_url):
    """The same test on SQLite and PostgreSQL."""
    opened = seeded(store_url)
    yield opened
    opened.dispose()


def experiment(store, n: int, *, holdout: int = 0, campaign: int = 7, link: bool = True,
               text: str = "【精信】5GB流量包仅需20元，回复KTLL20开通 https://jx.cn/x",
               state: str = "delivered") -> None:  # fmt: skip
    """Campaign ``campaign``: subscribers 1..n assigned (the last ``holdout`` held out), a
    delivered message to each treated one, a postpaid BOSS account for everybody."""
    with store.transaction() as session:
        for i in range(1, n + 1):
            held = i > n - holdout
            session.add(ExperimentAssignment(experiment=f"campaign:{campaign}",
                                             msisdn=number(i), arm="holdout" if held else "main",
                                             holdout=held, tenant_id="operator",
                                             assigned_at=SENT_AT))  # fmt: skip
            session.add(BossAccount(msisdn=number(i), plan_id="P1", plan_name="畅享",
                                    payment="postpaid", star_level=3, balance_fen=0))
            if held:
                continue
            session.add(Message(
                tenant_id="operator", campaign_id=campaign, msisdn=number(i),
                category="marketing", lane=2, text=text, idempotency_key=f"c{campaign}:{i}",
                state=state, scheduled_at=SENT_AT, submitted_at=SENT_AT, source="campaign",
                source_id=str(campaign), sender="10086", channel="sim", arm="main",
                link_token=f"tok{campaign}x{i:05d}" if link else None))  # fmt: skip


def count(store, model, *where) -> int:
    with store.transaction() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_respond_acts_through_the_store_once(both_stores) -> None:
    store = both_stores
    # Given a campaign to 60 subscribers, 10 held out, and a warehouse that knows them
    experiment(store, 60, holdout=10)
    wh = warehouse([(i, "data_heavy" if i % 2 else "balanced", 0.3, "electronic")
                    for i in range(1, 61)])  # fmt: skip
    settings = Settings()
    # When the simulated subscribers respond (eager parameters: every action happens)
    first = respond(store, wh, experiment="campaign:7", seed=1, now=NOW, settings=settings,
                    params=EAGER)  # fmt: skip
    # Then each action happened and went through its door
    assert (first["assigned"], first["reached"], first["held_out"]) == (60, 50, 10)
    for action in ("clicked", "replied", "opted_out", "complained", "ordered"):
        assert first[action] > 0, (action, first)
    assert first["ordered_unreached"] > 0  # held-out subscribers order at the base rate
    assert count(store, LinkClick, LinkClick.bot.is_(False)) == first["clicked"]
    assert count(store, BossOrder, BossOrder.state == "placed",
                 BossOrder.channel == "app") == first["ordered"]  # fmt: skip
    mo = first["replied"] + first["opted_out"] + first["complained"]
    assert count(store, MoMessage) == mo == count(store, MoOutcome)  # stored and handled
    assert count(store, OptOut) == first["opted_out"]
    assert count(store, HallComplaint) == first["complained"]
    with store.transaction() as session:
        orders = session.execute(select(BossOrder.product_id)).scalars().all()
        clicked_at = session.execute(select(LinkClick.at)).scalars().all()
        mo_at = session.execute(select(MoMessage.received_at)).scalars().all()
    assert set(orders) <= {"LL20", "LL10", "LL30"}  # the data pack the text names, else one
    assert all(SENT_AT <= at <= NOW for at in [*clicked_at, *mo_at])
    # When it runs again with the same seed, Then nothing new happens
    again = respond(store, wh, experiment="campaign:7", seed=1, now=NOW + timedelta(hours=1),
                    settings=settings, params=EAGER)  # fmt: skip
    for action in ("clicked", "replied", "opted_out", "complained", "ordered"):
        assert again[action] == 0 and again[f"already:{action}"] == first[action], again
    assert count(store, MoMessage) == mo and count(store, BossOrder) == first["ordered"]


def test_without_settings_mo_wait_for_the_inbox(store) -> None:
    experiment(store, 30, link=False)
    wh = warehouse([(i, "data_heavy", 0.3, "physical") for i in range(1, 31)])
    counts = respond(store, wh, experiment="campaign:7", now=NOW, params=EAGER)
    mo = counts["replied"] + counts["opted_out"] + counts["complained"]
    assert mo > 0 and counts["mo_pending"] == mo and count(store, MoOutcome) == 0
    assert counts["clicked"] == 0  # no link, no click
    with store.transaction() as session:
        to = set(session.scalars(select(MoMessage.service_number)))
    assert to <= {"10086"}  # replies to the sender; complaints to the packaged hall


def test_undelivered_messages_are_not_acted_on(store) -> None:
    experiment(store, 20, state="failed")
    wh = warehouse([(i, "data_heavy", 0.3, "physical") for i in range(1, 21)])
    counts = respond(store, wh, experiment="campaign:7", now=NOW, params=EAGER)
    assert counts["reached"] == 0 and counts["clicked"] == counts["replied"] == 0
    assert counts["ordered"] == counts["ordered_unreached"]


def test_bad_experiments_are_refused(store) -> None:
    wh = warehouse([(1, "data_heavy", 0.3, "physical")])
    for name in ("campaign", "campaign:x", "survey:1", "campaign:"):
        with pytest.raises(InputError, match="experiment"):
            respond(store, wh, experiment=name, now=NOW)
    with pytest.raises(InputError, match="no subscriber"):
        respond(store, wh, experiment="campaign:99", now=NOW)


class Endpoint(BaseHTTPRequestHandler):
    """A short-link server and an MO endpoint in one: remembers what it was asked."""

    seen: ClassVar[list] = []

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path, self.headers.get("User-Agent")))
        code = 404 if self.path.endswith("00003") else 302
        self.send_response(code)
        self.send_header("Location", "https://example.com/offer")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(("POST", self.path, body))
        answer = b'{"delivered": true, "parts": 1}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def endpoint():
    Endpoint.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Endpoint.seen
    server.shutdown()
    server.server_close()


def test_clicks_and_mo_go_through_http_when_asked(store, endpoint) -> None:
    url, seen = endpoint
    experiment(store, 30)
    wh = warehouse([(i, "data_heavy", 0.3, "electronic") for i in range(1, 31)])
    counts = respond(store, wh, experiment="campaign:7", now=NOW, click_via=url, mo_via=url,
                     params=EAGER)  # fmt: skip
    gets = [s for s in seen if s[0] == "GET"]
    posts = [s[2] for s in seen if s[0] == "POST"]
    assert len(gets) == counts["clicked"] + counts["refused:click:unknown_link"]
    assert all(agent and "Mobile" in agent for _, _, agent in gets)
    assert len(posts) == counts["replied"] + counts["opted_out"] + counts["complained"] > 0
    assert all(p["from"].startswith("86139") and p["to"] == "10086" for p in posts)
    assert {"TD", "投诉 骚扰短信"} & {p["text"] for p in posts}
    assert count(store, LinkClick) == 0 and count(store, MoMessage) == 0  # the servers' job


def test_an_unreachable_endpoint_stops_the_run_after_three_tries(store) -> None:
    from jingxin.errors import ChannelError

    experiment(store, 30)
    wh = warehouse([(i, "data_heavy", 0.3, "electronic") for i in range(1, 31)])
    with pytest.raises(ChannelError, match="3 failures in a row"):
        respond(store, wh, experiment="campaign:7", now=NOW, click_via="http://127.0.0.1:9",
                params=EAGER)  # fmt: skip
    assert count(store, BossOrder) > 0  # the orders before it are kept


def test_the_cli_says_it_is_a_simulation(store, tmp_path, monkeypatch) -> None:
    from jingxin.cli import app

    experiment(store, 40, holdout=5)
    path = tmp_path / "wh.duckdb"
    wh = open_duckdb(path)
    source = warehouse([(i, "data_heavy", 0.3, "electronic") for i in range(1, 41)])
    for name in ("subscribers", "features"):
        wh.con.create_table(name, source.table(name).to_pyarrow())
    wh.close()
    config = tmp_path / "jingxin.toml"
    config.write_text(f'[store]\nurl = "{store.engine.url}"\n\n[warehouse]\npath = "{path}"\n',
                      encoding="utf-8")
    monkeypatch.setenv("JINGXIN_CONFIG", str(config))
    runner = CliRunner()
    out = runner.invoke(app, ["simulate", "responses", "--campaign", "7", "--seed", "3"])
    assert out.exit_code == 0, out.output
    assert "a simulation, not real behaviour" in out.output and "40 subscribers" in out.output
    again = runner.invoke(app, ["simulate", "responses", "--experiment", "campaign:7",
                                "--seed", "3", "--json"])  # fmt: skip
    assert again.exit_code == 0, again.output
    counts = json.loads(again.stdout)
    assert counts["simulation"] is True and counts.get("ordered", 0) == 0
    both = runner.invoke(app, ["simulate", "responses", "--campaign", "7", "--experiment", "x"])
    assert both.exit_code != 0
