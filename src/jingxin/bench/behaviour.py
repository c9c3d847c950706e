"""``jingxin bench behaviour``: three claims of issue #16 shown on simulated subscribers.

The subscribers are the SIMULATION of :mod:`jingxin.smsc.subscribers` (``jingxin simulate
responses``): their clicks, replies and orders follow the offer's relevance to their
warehouse features and the hour the message arrives against a latent peak hour of theirs.
The figures say what the platform's tools find in that simulated behaviour - not what real
subscribers do. Everything else is the product: ``synth`` and the warehouse, the composite
segment, campaigns with hold-outs and send-time plans, the delivery entry and policy, a
worker and the SMSC simulator over SMPP on loopback (receipts before anyone reacts), the
BOSS for orders, the event log, ``sendtime.learn_hours`` and ``audience.uplift``.

One world (:mod:`jingxin.bench.behaviour_world`), six campaigns of one data-pack offer on
six simulated days (the worker's clock is simulated, :mod:`jingxin.bench.behaviour_clock`):

1. *history* (day 1, and ``--history N`` days in all, 3 by default): everyone, at random
   times between 08:00 and 21:00, 30 % held out (the uplift model learns from day 1's);
2. *send-time split* (day 2): everyone, ``send_time: {mode: split}`` - half at the best
   hour learnt from day 1's clicks and replies, half at random times;
3. *targeted* (day 3) and *blast* (day 4): the composite model's audience, and a random
   sample of the same size, each with 25 % held out, sent at 10:00;
4. *uplift top decile* (day 5) and *random decile* (day 6): the tenth of the subscribers
   the uplift model (trained on day 1's treated against its hold-out) ranks highest, and
   a random tenth, each with half held out, sent at 10:00.

Claims (:mod:`jingxin.bench.behaviour_figures`): targeting beats a blast (orders per
message sent, incremental orders against each hold-out); the best-time arm answers more
than the random-time arm; the uplift model ranks better than random on day 1's test part
(Qini, AUUC) and its top decile gains more on a fresh campaign than a random decile (also
compared with the simulator's known probabilities). The JSON line is appended to
``benchmarks/results/behaviour.jsonl``.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer

SIMULATION = ("smsc.subscribers: simulated subscribers (a SIMULATION, not real "
              "behaviour)")  # fmt: skip


@dataclass(frozen=True)
class BehaviourPlan:
    subscribers: int = 20_000
    seed: int = 7
    step_minutes: int = 10  # the simulated clock's step while delivering (divides an hour)
    window: tuple[int, int] = (8, 21)  # send-time window, local hours [start, end)
    history_holdout: float = 0.3
    targeting_holdout: float = 0.25
    fresh_holdout: float = 0.5
    send_hour: int = 10  # local hour of the campaigns without a send-time plan
    top_share: float = 0.1
    history: int = 3  # campaigns at random times before the split: the hours learnt from

    def __post_init__(self) -> None:
        from jingxin.errors import InputError

        if self.subscribers < 500:
            raise InputError(f"--subscribers {self.subscribers}: at least 500 (the composite "
                             "audience and the hold-outs need a few hundred)")  # fmt: skip
        if not 1 <= self.history <= 10:
            raise InputError(f"--history {self.history}: 1 to 10 campaigns at random times")
        if not 1 <= self.step_minutes <= 60 or 60 % self.step_minutes:
            raise InputError(f"--step-minutes {self.step_minutes}: must divide an hour (1, 2, "
                             "3, 4, 5, 6, 10, 12, 15, 20, 30 or 60)")  # fmt: skip
        start, end = self.window
        if not 8 <= start < end <= 21 or not 8 <= self.send_hour < 21:
            raise InputError(f"window {self.window}, send_hour {self.send_hour}: local hours "
                             "between 08:00 and 21:00 (marketing waits out the quiet hours)")  # fmt: skip


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def behaviour(plan: BehaviourPlan, *, workdir: Path, today: dt.date | None = None) -> dict:
    """Build the world under ``workdir``, run the six campaigns, return the figures."""
    from jingxin.bench.behaviour_clock import simulator
    from jingxin.bench.behaviour_world import ZONE, build_world

    started = time.perf_counter()
    today = today or dt.datetime.now(ZONE).date()
    count = plan.history + 5
    days = [today - dt.timedelta(days=count + 1 - k) for k in range(1, count + 1)]
    workdir.mkdir(parents=True, exist_ok=True)
    with simulator(workdir / "smsc.log") as channels:
        world = build_world(workdir / "world", subscribers=plan.subscribers, seed=plan.seed,
                            today=today, channels=channels)  # fmt: skip
        _say(f"world: {len(world.everyone):,} subscribers, composite audience "
             f"{len(world.composite):,}")
        try:
            if not world.composite:
                from jingxin.errors import InputError

                raise InputError(f"--subscribers {plan.subscribers}: the composite model's "
                                 "audience is empty; use more subscribers")  # fmt: skip
            figures = _campaigns(world, plan, days)
        finally:
            world.close()
    figures["seconds"] = {**{k: round(v, 1) for k, v in world.seconds.items()},
                          "total": round(time.perf_counter() - started, 1)}  # fmt: skip
    return {"subscribers": plan.subscribers, "simulation": SIMULATION,
            "plan": asdict(plan), "days": [d.isoformat() for d in days], **figures}


def _campaigns(world: Any, plan: BehaviourPlan, days: list[dt.date]) -> dict[str, Any]:
    from jingxin.analytics.sendtime import learn_hours
    from jingxin.bench import behaviour_figures as fig
    from jingxin.bench.behaviour_world import ZONE, local, send_campaign

    rng = np.random.default_rng(plan.seed)
    window = {"window": [f"{plan.window[0]:02d}:00", f"{plan.window[1]:02d}:00"]}
    common = {"seed": plan.seed, "step_minutes": plan.step_minutes}
    sent = {}

    def run(name: str, numbers: list[str], day: dt.date, **spec: Any) -> Any:
        hour = plan.window[0] - 1 if spec.get("send_time") else plan.send_hour
        began = time.perf_counter()
        sent[name] = send_campaign(world, name=name, numbers=numbers, day=day,
                                   decide_at=local(day, hour, 30 if spec.get("send_time") else 0),
                                   **spec, **common)  # fmt: skip
        s = sent[name]
        _say(f"{name}: campaign {s.campaign_id}, {s.summary.get('accepted', 0):,} queued, "
             f"{s.summary.get('held_out', 0):,} held out, {s.delivery['steps']} clock steps; "
             f"{time.perf_counter() - began:.1f} s")
        return s

    history = run("history", world.everyone, days[0], holdout=plan.history_holdout,
                  send_time={"mode": "random", **window})  # fmt: skip
    for k in range(1, plan.history):  # more history: the hours of those who answer twice
        run(f"history-{k + 1}", world.everyone, days[k], holdout=plan.history_holdout,
            send_time={"mode": "random", **window})  # fmt: skip
    days = days[plan.history - 1:]  # the rest as before: split, targeted, blast, deciles
    hours = learn_hours(world.store, tz=world.settings.policy.default_timezone)
    split = run("send-time-split", world.everyone, days[1], holdout="none",
                send_time={"mode": "split", **window})  # fmt: skip
    size = len(world.composite)
    blast_numbers = sorted(rng.choice(world.everyone, size=size, replace=False).tolist())
    targeted = run("targeted", world.composite, days[2], holdout=plan.targeting_holdout)
    blast = run("blast", blast_numbers, days[3], holdout=plan.targeting_holdout)
    out: dict[str, Any] = {
        "targeting": fig.targeting(world.store, targeted, blast),
        "send_time": fig.send_time(world.store, split, hours=hours, seed=plan.seed, zone=ZONE,
                                   window=(plan.window[0], plan.window[1] - 1)),
        "uplift": _uplift(world, plan, history, days, rng, run),
    }  # fmt: skip
    out["campaigns"] = {name: {"campaign_id": s.campaign_id, "audience": s.audience,
                               "queued": s.summary.get("accepted", 0),
                               "held_out": s.summary.get("held_out", 0),
                               "rejected": s.summary.get("rejected", {}),
                               "delivery": s.delivery, "responses": s.responses}
                        for name, s in sent.items()}  # fmt: skip
    return out


def _uplift(world: Any, plan: BehaviourPlan, history: Any, days: list[dt.date],
            rng: np.random.Generator, run: Any) -> dict[str, Any]:  # fmt: skip
    """Train both methods on the history campaign; target a fresh one by the better."""
    from jingxin.bench import behaviour_figures as fig
    from jingxin.errors import InputError

    try:
        rows, models = _train(world, history.campaign_id, seed=plan.seed)
    except InputError as exc:  # too few orders in a group, at a tiny scale
        return {"skipped": str(exc), "models": {}, "fresh": None}
    evaluations = {method: fig.evaluation(model) for method, model in models.items()}
    chosen = max(evaluations, key=lambda m: evaluations[m]["qini"] or -1.0)
    scores = _scores(world, models[chosen])
    size = max(1, round(plan.top_share * len(scores)))
    top = scores[:size]
    rand = sorted(rng.choice(scores, size=size, replace=False).tolist())
    first = run("uplift-top-decile", top, days[4], holdout=plan.fresh_holdout)
    second = run("random-decile", rand, days[5], holdout=plan.fresh_holdout)
    t = rows.treated
    return {"training": {"campaign_id": history.campaign_id, "treated": int(t.sum()),
                         "held_out": int((~t).sum()), "ordered_treated": int(rows.outcomes[t].sum()),
                         "ordered_held_out": int(rows.outcomes[~t].sum()),
                         "features_as_of": rows.as_of.isoformat()},
            "models": evaluations, "chosen": chosen,
            "fresh": fig.fresh(world.store, world.warehouse, first, second, top_numbers=top,
                               random_numbers=rand, everyone=world.everyone, seed=plan.seed,
                               hour=plan.send_hour)}  # fmt: skip


def _train(world: Any, campaign_id: int, *, seed: int) -> tuple[Any, dict[str, Any]]:
    from jingxin.audience import uplift
    from jingxin.audience.uplift_campaign import campaign_rows

    from jingxin.bench.behaviour_figures import ATTRIBUTION_DAYS

    rows = campaign_rows(world.store, world.warehouse, campaign_id=campaign_id,
                         outcome="ordered", attribution_days=ATTRIBUTION_DAYS)  # fmt: skip
    models = {}
    for method in uplift.METHODS:
        training = uplift.train_uplift(rows.features(), rows.treated, rows.outcomes,
                                       method=method, seed=seed, outcome_name="ordered",
                                       where=f"campaign {campaign_id}")  # fmt: skip
        models[method] = training.model
    return rows, models


def _scores(world: Any, model: Any) -> list[str]:
    """Every subscriber of the feature build, highest predicted uplift first."""
    from jingxin.audience.subscriber_rows import feature_rows

    rows = feature_rows(world.warehouse, as_of=world.as_of)
    scored = rows.frame[["msisdn", "subscriber_id"]].assign(uplift=model.predict(rows.features()))
    scored = scored.sort_values(["uplift", "subscriber_id"], ascending=[False, True])
    return scored["msisdn"].tolist()


# --------------------------------------------------------------------------- output


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def _ci(pair: list[float | None], digits: int = 2) -> str:
    if pair[0] is None:
        return ""
    return f" [{100 * pair[0]:.{digits}f}, {100 * pair[1]:.{digits}f}]"


def _p(value: float | None) -> str:
    return "-" if value is None else ("<0.0001" if value < 1e-4 else f"{value:.4f}")


def print_table(figures: dict[str, Any]) -> None:
    """The three results, one table (rates in percent, 95 % intervals in brackets)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"Simulated behaviour, {figures['subscribers']:,} subscribers "
                        f"({figures['simulation']})")
    for column in ("claim", "measure", "A", "B", "A - B [95% CI]", "p", "verdict"):
        table.add_column(column, justify="left" if column in ("claim", "measure") else "right")
    for row in _rows(figures):
        table.add_row(*row)
    console.print(table)


def _rows(figures: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    tg = figures["targeting"]
    t, b = tg["targeted"], tg["blast"]
    verdict = "targeted wins" if tg["targeted_wins"] else "no clear win"
    d = tg["orders_per_sent_difference"]
    rows.append(("1 targeting (A) vs blast (B)", f"orders / sent (n {t['sent']:,} / {b['sent']:,})",
                 _pct(t["orders_per_sent"]["rate"]) + _ci(t["orders_per_sent"]["ci"]),
                 _pct(b["orders_per_sent"]["rate"]) + _ci(b["orders_per_sent"]["ci"]),
                 _pct(d["diff"]) + _ci(d["ci"]), _p(d["p"]), verdict))
    d = tg["incremental_rate_difference"]
    rows.append(("", "incremental orders / assigned vs own hold-out",
                 _pct(t["incremental_rate"]) + _ci(t["incremental_rate_ci"]),
                 _pct(b["incremental_rate"]) + _ci(b["incremental_rate_ci"]),
                 _pct(d["diff"]) + _ci(d["ci"]), _p(d["p"]) + " (approx.)", ""))
    rows.append(("", "incremental orders per 1,000 sent",
                 f"{t.get('incremental_orders_per_1000_sent') or 0:.1f}",
                 f"{b.get('incremental_orders_per_1000_sent') or 0:.1f}", "", "", ""))
    st = figures["send_time"]
    for i, metric in enumerate(("responded", "clicked", "replied", "ordered")):
        best, rand = st["arms"]["best-time"][metric], st["arms"]["random-time"][metric]
        d = st["comparisons"][metric]
        verdict = ("best time wins" if st["best_time_wins"] else "no clear win") if not i else ""
        rows.append(("2 best time (A) vs random time (B)" if not i else "",
                     f"{metric} / assigned" + (f" (n {best['n']:,} / {rand['n']:,})" if not i else ""),
                     _pct(best["rate"]) + _ci(best["ci"]), _pct(rand["rate"]) + _ci(rand["ci"]),
                     _pct(d["diff"]) + _ci(d["ci"]), _p(d["p"]), verdict))
    rows.append(("", "arrived within 1 h of the latent peak",
                 _pct(st["arms"]["best-time"]["at_latent_peak"], 1),
                 _pct(st["arms"]["random-time"]["at_latent_peak"], 1), "", "", ""))
    for group, label in (("own_hours", "with hours of their own"),
                         ("population_hour", "without (population's hour)")):
        best, rand = (st["by_history"][a][group] for a in ("best-time", "random-time"))
        measure = f"{label} (n {best['assigned']:,} / {rand['assigned']:,}): at peak; responded"
        rows.append(("", measure,
                     f"{_pct(best['at_latent_peak'], 1)}; {_pct(best['responded']['rate'])}",
                     f"{_pct(rand['at_latent_peak'], 1)}; {_pct(rand['responded']['rate'])}",
                     "", "", ""))
    rows.extend(_uplift_rows(figures["uplift"]))
    return rows


def _uplift_rows(up: dict[str, Any]) -> list[tuple[str, ...]]:
    if up.get("skipped"):
        return [("3 uplift model", "skipped", up["skipped"], "", "", "", "")]
    rows = []
    for method, e in up["models"].items():
        chosen = " (chosen)" if method == up["chosen"] else ""
        rows.append(("3 uplift model (A) vs random (B)" if not rows else "",
                     f"{method}{chosen}: Qini coefficient, test part", f"{e['qini']:.3f}", "0",
                     "", "", ""))
        rows.append(("", f"{method}: AUUC, test part", f"{e['auuc']:.4f}",
                     f"{e['auuc_random']:.4f}", "", "", ""))
        rows.append(("", f"{method}: uplift of top decile vs all, test part",
                     _pct(e["top_decile_uplift"]), _pct(e["test_uplift"]), "", "", ""))
    fresh = up["fresh"]
    top, rand, d = fresh["top_decile"], fresh["random_decile"], fresh["incremental_rate_difference"]
    rows.append(("", "fresh campaign: incremental orders / assigned",
                 _pct(top["incremental_rate"]) + _ci(top["incremental_rate_ci"]),
                 _pct(rand["incremental_rate"]) + _ci(rand["incremental_rate_ci"]),
                 _pct(d["diff"]) + _ci(d["ci"]), _p(d["p"]) + " (approx.)",
                 "model wins" if fresh["model_wins"] else "no clear win"))
    known = fresh["known"]
    rows.append(("", "simulator's known incremental probability", _pct(known["top_decile"]),
                 _pct(known["random_decile"]), "", "",
                 f"best decile {_pct(known['best_possible_decile'])}"))
    return rows


# --------------------------------------------------------------------------- command


def register_commands(bench_app: typer.Typer) -> None:
    @bench_app.command("behaviour")
    def behaviour_command(
        subscribers: int = typer.Option(20_000, "--subscribers", min=500,
                                        help="Synthetic subscribers."),
        seed: int = typer.Option(7, "--seed", help="Seed of the operator and of the "
                                 "simulated subscribers."),
        step_minutes: int = typer.Option(10, "--step-minutes", min=1, max=60,
                                         help="Step of the simulated clock (divides 60)."),
        history: int = typer.Option(3, "--history", min=1, max=10,
                                    help="Campaigns at random times before the send-time "
                                    "split: the history its best hours are learnt from."),
        workdir: Path = typer.Option(None, "--workdir", help="Keep the world in "
                                     "DIR/world, replaced if there (default: a temporary "
                                     "folder, removed)."),
        no_record: bool = typer.Option(False, "--no-record",
                                       help="Do not append to benchmarks/results."),
    ) -> None:
        """Targeting vs a blast, best vs random send time, an uplift model's top decile:
        on simulated subscribers (default 20,000), through the whole product."""
        from jingxin.bench import emit
        from jingxin.bench.geofence import record

        plan = BehaviourPlan(subscribers=subscribers, seed=seed, step_minutes=step_minutes,
                             history=history)
        if workdir is None:
            with tempfile.TemporaryDirectory(prefix="jingxin-behaviour-") as tmp:
                figures = behaviour(plan, workdir=Path(tmp))
        else:
            figures = behaviour(plan, workdir=workdir)
        print_table(figures)
        line = emit({"benchmark": "behaviour", **figures})
        path = None if no_record else record("behaviour", line, None)
        if path is not None:
            _say(f"recorded in {path}")
        print(line, flush=True)
