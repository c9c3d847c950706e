"""Send-time optimisation: hours learned from replies and clicks (local hours, on SQLite
and PostgreSQL), smoothed toward the population's; planned instants inside the window,
deterministic, and the window's errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from jingxin.analytics.sendtime import learn_hours, plan_times, smooth
from jingxin.data.store import open_store
from jingxin.data.store.models.analytics import AnalyticsEvent
from jingxin.errors import InputError

SHANGHAI = ZoneInfo("Asia/Shanghai")
A, B, C = "+8613900000001", "+8613900000002", "+8613900000003"


def local(hour: int, minute: int = 10, *, day: int = 1) -> datetime:
    return datetime(2026, 5, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def add(store, rows: list[tuple[str, str, datetime]]) -> None:
    with store.transaction() as session:
        for i, (msisdn, kind, at) in enumerate(rows):
            session.add(AnalyticsEvent(event_key=f"{kind}:{i}", kind=kind, at=at, msisdn=msisdn,
                                       tenant_id="operator", message_id=i))  # fmt: skip


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, upgrade=True)
    yield opened
    opened.dispose()


def test_the_best_hour_is_learned_in_local_time_from_replies_and_clicks(store) -> None:
    # Given A answers at 20h local (UTC 12h) on several days, B at 08h, and events of
    # other kinds at other hours
    add(store, [*[(A, "replied", local(20, day=d)) for d in range(1, 6)],
                *[(A, "clicked", local(20, 40, day=d)) for d in range(1, 4)],
                *[(B, "clicked", local(8, day=d)) for d in range(1, 5)],
                (B, "replied", local(9)),
                *[(A, "delivered", local(3, day=d)) for d in range(1, 9)],
                (C, "sent", local(5))])  # fmt: skip
    # When the hours are learned
    hours = learn_hours(store, tz="Asia/Shanghai", prior_weight=3.0)
    rows = {r["msisdn"]: r for r in hours.to_pylist()}
    # Then each subscriber's best hour is their local one; only responses count
    assert set(rows) == {A, B}
    assert (rows[A]["best_hour"], rows[A]["responses"]) == (20, 8)
    assert (rows[B]["best_hour"], rows[B]["responses"]) == (8, 5)
    assert rows[A]["confidence"] == pytest.approx(8 / 11)  # all 8 within 20h ± 1, prior 3
    assert rows[B]["confidence"] == pytest.approx(5 / 8)  # 08h and 09h are neighbours
    assert hours.schema.field("best_hour").type == pa.int8()


def test_few_events_are_smoothed_toward_the_population(tmp_path, migrated_sqlite) -> None:
    store = open_store(migrated_sqlite(tmp_path / "jx.db"))
    try:
        # Given a population that answers at 19h, and C with a single reply at 07h
        add(store, [*[(f"+86139000010{i:02d}", "replied", local(19, day=1 + i % 5))
                      for i in range(30)], (C, "replied", local(7))])  # fmt: skip
        hours = learn_hours(store, tz="Asia/Shanghai", prior_weight=3.0)
        smoothed = {r["msisdn"]: r for r in hours.to_pylist()}[C]
        # Then one reply does not outweigh the population's hour (and none of C's own
        # responses supports it: confidence 0); without a prior it would
        assert (smoothed["best_hour"], smoothed["confidence"]) == (19, 0.0)
        alone = {r["msisdn"]: r for r in learn_hours(store, prior_weight=0).to_pylist()}[C]
        assert alone["best_hour"] == 7 and alone["confidence"] == 1.0
        # And the zone matters: the same reply is at 23h UTC
        assert {r["msisdn"]: r for r in learn_hours(store, tz="UTC", prior_weight=0)
                .to_pylist()}[C]["best_hour"] == 23  # fmt: skip
    finally:
        store.dispose()


def test_summer_time_is_applied_per_event(tmp_path, migrated_sqlite) -> None:
    store = open_store(migrated_sqlite(tmp_path / "jx.db"))
    try:
        # Given 18:00 Berlin time in winter (UTC+1) and in summer (UTC+2)
        berlin = ZoneInfo("Europe/Berlin")
        add(store, [(A, "replied", datetime(2026, 1, 15, 18, 5, tzinfo=berlin)),
                    (A, "replied", datetime(2026, 7, 15, 18, 5, tzinfo=berlin))])  # fmt: skip
        row = learn_hours(store, tz="Europe/Berlin", prior_weight=0).to_pylist()[0]
        assert (row["best_hour"], row["confidence"]) == (18, 1.0)
    finally:
        store.dispose()


def test_smoothing_by_hand() -> None:
    population = [0.0] * 24
    population[12] = 1.0
    # Two responses at 23h against a prior of 3 at 12h: the prior wins, unsupported
    best, confidence = smooth([[0] * 23 + [2]], population, 3.0)
    assert (int(best[0]), float(confidence[0])) == (12, 0.0)
    # Four outweigh it; 00h is 23h's neighbour (circular)
    best, confidence = smooth([[1] + [0] * 22 + [4]], population, 3.0)
    assert (int(best[0]), float(confidence[0])) == (23, pytest.approx(5 / 8))


def hours_table() -> pa.Table:
    table = pa.table({"msisdn": [A, B], "best_hour": pa.array([20, 6], pa.int8()),
                      "responses": pa.array([9, 4], pa.int32()),
                      "confidence": [0.8, 0.5]})  # fmt: skip
    shares = [0.0] * 24
    shares[10], shares[19], shares[6] = 0.5, 0.3, 0.2
    import json

    return table.replace_schema_metadata({b"jingxin.population": json.dumps(shares).encode()})


def local_of(instant: datetime) -> datetime:
    assert instant.tzinfo is not None and instant.utcoffset() == timedelta(0)
    return instant.astimezone(SHANGHAI)


def test_best_sends_in_the_subscriber_s_hour_or_the_population_s_inside_the_window() -> None:
    window = (time(9, 0), time(21, 0))
    at = plan_times([A, B, C], day=date(2026, 5, 4), window=window, tz="Asia/Shanghai",
                    hours=hours_table(), mode="best")  # fmt: skip
    a, b, c = (local_of(x) for x in at)
    assert a.date() == date(2026, 5, 4) and a.hour == 20  # A's own hour is in the window
    # B's 06h is outside, C is unknown: the population's best hour inside the window (10h)
    assert (b.hour, c.hour) == (10, 10)
    # The same inputs give the same instants; another seed moves the minute, not the hour
    assert plan_times([A, B, C], day=date(2026, 5, 4), window=window, hours=hours_table()) == at
    other = plan_times([A, B, C], day=date(2026, 5, 4), window=window, hours=hours_table(),
                       seed=7)  # fmt: skip
    assert [local_of(x).hour for x in other] == [20, 10, 10] and other != at


def test_a_best_hour_cut_by_the_window_stays_inside_it() -> None:
    at = plan_times([A] * 1 + [f"+861390000{i:04d}" for i in range(50)], day=date(2026, 5, 4),
                    window=(time(20, 30), time(20, 45)), hours=hours_table())  # fmt: skip
    for instant in at:
        moment = local_of(instant)
        assert time(20, 30) <= moment.time() < time(20, 45)


def test_random_is_uniform_in_the_window_and_deterministic_per_number_and_seed() -> None:
    numbers = [f"+861390000{i:04d}" for i in range(400)]
    window = (time(10, 0), time(12, 0))
    at = plan_times(numbers, day=date(2026, 5, 4), window=window, mode="random", seed=1)
    minutes = [(local_of(x).hour - 10) * 60 + local_of(x).minute for x in at]
    assert all(0 <= m < 120 for m in minutes)
    assert 150 < sum(m < 60 for m in minutes) < 250  # about half in each hour
    assert plan_times(numbers, day=date(2026, 5, 4), window=window, mode="random", seed=1) == at
    assert plan_times(numbers, day=date(2026, 5, 4), window=window, mode="random", seed=2) != at
    # Without learned hours, best draws the same way over the window
    assert all(time(10) <= local_of(x).time() < time(12) for x in
               plan_times(numbers[:20], day=date(2026, 5, 4), window=window, hours=None))


@pytest.mark.parametrize(("window", "mode", "message"), [
    ((time(22, 0), time(6, 0)), "best", "send_time.window: 22:00-06:00 wraps midnight"),
    ((time(9, 0), time(9, 0)), "best", "send_time.window: 09:00-09:00 is empty"),
    (("9", "10"), "best", "send_time.window: give (start, end) local times"),
    ((time(9, 0), time(10, 0)), "often", "send_time.mode: 'often' is not one of best, random"),
])  # fmt: skip
def test_bad_windows_and_modes_are_named(window, mode, message) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_times([A], day=date(2026, 5, 4), window=window, mode=mode, hours=None)


def test_a_window_to_midnight_and_an_unknown_zone() -> None:
    (at,) = plan_times([A], day=date(2026, 5, 4), window=(time(23, 0), time(0, 0)),
                       mode="random")  # fmt: skip
    assert local_of(at).hour == 23
    with pytest.raises(InputError, match="tz: 'Mars/Olympus' is no IANA time zone"):
        plan_times([A], day=date(2026, 5, 4), window=(time(9), time(10)), tz="Mars/Olympus")


def test_hours_learned_in_another_zone_are_refused() -> None:
    hours = hours_table()
    hours = hours.replace_schema_metadata({**hours.schema.metadata, b"jingxin.tz": b"UTC"})
    with pytest.raises(InputError, match="send_time: the hours were learned in UTC, not Asia"):
        plan_times([A], day=date(2026, 5, 4), window=(time(9), time(10)), hours=hours)


def test_the_commands_learn_and_show(tmp_path, monkeypatch) -> None:
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from jingxin.cli import app

    url = f"sqlite:///{tmp_path / 'jx.db'}"
    store = open_store(url, upgrade=True)
    add(store, [*[(A, "replied", local(20, day=d)) for d in range(1, 5)], (B, "clicked", local(9))])
    store.dispose()
    config = tmp_path / "jingxin.toml"
    config.write_text(f'[store]\nurl = "{url}"\n', encoding="utf-8")
    monkeypatch.setenv("JINGXIN_CONFIG", str(config))
    run = CliRunner().invoke
    learned = run(app, ["sendtime", "learn", "--out", str(tmp_path / "hours.parquet")])
    assert learned.exit_code == 0, learned.output
    assert "5 from 2 subscribers" in learned.output and "20h ████" in learned.output
    assert "2 subscribers have responses of their own; 1 have at least 3" in learned.output
    assert pq.read_table(tmp_path / "hours.parquet").num_rows == 2
    shown = run(app, ["sendtime", "show", "13900000001"])
    assert shown.exit_code == 0 and "+8613900000001: 4 responses" in shown.output
    assert "best hour 20:00-20:59, confidence 0.57" in shown.output
    bad = run(app, ["sendtime", "show", "12345"])
    assert bad.exit_code != 0 and "NUMBER: invalid msisdn '12345'" in str(bad.exception)


def _hours(population: list[float], known: dict[str, int]) -> pa.Table:
    import json

    from jingxin.analytics.sendtime import POPULATION_KEY, ZONE_KEY

    table = pa.table({"msisdn": list(known), "best_hour": pa.array(list(known.values()), pa.int8()),
                      "responses": pa.array([3] * len(known), pa.int32()),
                      "confidence": [0.5] * len(known)})  # fmt: skip
    return table.replace_schema_metadata({POPULATION_KEY: json.dumps(population).encode(),
                                          ZONE_KEY: b"Asia/Shanghai"})


def test_without_own_hours_a_flat_population_means_random_times_not_its_noise() -> None:
    # Given a population whose hours are flat (a 4% bump at 15:00 is noise) and one
    # subscriber with an hour of their own
    flat = [1 / 24] * 24
    flat[15] += 0.01
    hours = _hours(flat, {"+8613900000001": 19})
    others = [f"+86139{i:08d}" for i in range(2, 400)]
    window = (time(9, 0), time(21, 0))
    planned = plan_times(["+8613900000001", *others], day=date(2026, 10, 9), window=window,
                         hours=hours, mode="best")  # fmt: skip
    local = [p.astimezone(ZoneInfo("Asia/Shanghai")).hour for p in planned]
    # Then the subscriber goes at their hour, and the others are spread over the window,
    # as random times would be - not all at 15:00
    assert local[0] == 19
    assert len(set(local[1:])) == 12 and local[1:].count(15) < 80
    # Given a clear evening peak instead, Then those without hours go at the peak
    peaked = [0.02] * 24
    peaked[20] = 0.54
    planned = plan_times(others, day=date(2026, 10, 9), window=window,
                         hours=_hours(peaked, {}), mode="best")  # fmt: skip
    assert {p.astimezone(ZoneInfo("Asia/Shanghai")).hour for p in planned} == {20}
