"""The demo's two-way step: a campaign goes out, one subscriber answers and the answer is
attributed to it, another answers ``TD`` and the next campaign passes them by.

It runs inside the simulator's environment (after the campaign steps): the subscribers'
answers are posted to the simulator while a worker is bound, as a phone would send them.
The first campaign is decided as of yesterday noon (so it is due now, whatever the hour
of the demo) and the second as of tomorrow noon (so it sees today's opt-out).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from jingxin.demo.runner import DemoError, Workspace, demo_environment

# Two China Mobile numbers of our own (the synthetic operator never hands them out).
INTERESTED = "+8613700000001"
UNSUBSCRIBER = "+8613700000002"
# The campaign goes out from an extension of the CMPP channel's service number; replies
# come back to that very number, which is how they are attributed.
SENDER = "1069012345888"
AUTO_REPLIES = [{"service_number": SENDER, "keyword": "JY",
                 "reply": "【中国移动】已为您预约流量包，稍后客服将与您联系。"}]  # fmt: skip

SPEC = """\
name: {name}
tenant: operator
category: marketing
sender: "{sender}"
template:
  body: "{{{{ name }}}}您好，5G流量包限时五折，回复JY办理。"
  variables: {{name: str}}
audience: {{path: twoway.csv}}
validity_hours: 48
experiment: {{holdout: none}}   # two subscribers of our own: nobody held out
"""


def _noon(days: int, zone: str = "Asia/Shanghai") -> str:
    day = datetime.now(ZoneInfo(zone)).date() + timedelta(days=days)
    return f"{day.isoformat()}T12:00:00+08:00"


def _post_answers(ws: Workspace, answers: list[tuple[str, str]]) -> None:
    """Post the subscribers' answers once the worker is bound (a phone needs a network):
    the simulator refuses an MO while no client is bound to receive it."""
    deadline = time.monotonic() + 15
    for number, text in answers:
        while True:
            try:
                ws.run("smsc", "mo", "--from", number, "--to", SENDER, "--text", text)
                break
            except DemoError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)


def _answered(ws: Workspace, count: int) -> bool:
    """``count`` MO handled and every reply they caused on its way to the SMSC."""
    from sqlalchemy import func, select

    from jingxin.data.store import open_store
    from jingxin.data.store.models import Message, MoOutcome

    store = open_store(ws.store_url)
    try:
        with store.transaction() as session:
            handled = session.scalar(select(func.count()).select_from(MoOutcome))
            waiting = session.scalar(select(func.count()).where(
                Message.source == "inbox", Message.state.in_(("queued", "submitting"))))
    finally:
        store.dispose()
    return handled >= count and waiting == 0


def _answer_then_stop(ws: Workspace, answers: list[tuple[str, str]], failures: list[str],
                      running: threading.Event) -> None:  # fmt: skip
    try:
        time.sleep(1.0)  # the worker binds
        _post_answers(ws, answers)
        deadline = time.monotonic() + 20
        while not _answered(ws, len(answers)):
            if time.monotonic() > deadline:
                failures.append("the answers were not handled within 20 s")
                break
            time.sleep(0.3)
        time.sleep(1.0)  # the replies' receipts
    except DemoError as exc:
        failures.append(str(exc))
    finally:
        ws.console.print("[dim](Ctrl-C: the answers are handled)[/]")
        if running.is_set():
            signal.raise_signal(signal.SIGINT)  # the worker's handler stops it cleanly


def _worker_while_answering(ws: Workspace, answers: list[tuple[str, str]]) -> None:
    """``jingxin worker`` (not --once: it must stay bound for the answers) until they are
    handled and replied to, then Ctrl-C, as an operator would."""
    failures: list[str] = []
    running = threading.Event()
    poster = threading.Thread(target=_answer_then_stop, args=(ws, answers, failures, running),
                              daemon=True)  # fmt: skip
    running.set()
    poster.start()
    try:
        ws.run("worker")
    finally:
        running.clear()
        poster.join(30)
    if failures:
        raise DemoError("; ".join(failures))


def twoway(ws: Workspace) -> None:
    """The step: needs the simulator's channels in the environment (JINGXIN_CHANNELS)."""
    ws.heading("Two-way: answers are attributed, TD unsubscribes at once",
               "A marketing SMS goes out from service number " + SENDER + "; one subscriber "
               "answers JY (attributed to the campaign, answered by a keyword reply), the "
               "other answers TD: opted out at once, one confirmation, and the next "
               "campaign passes them by.")
    ws.path("twoway.csv").write_text(
        f"msisdn,name\n{INTERESTED},王先生\n{UNSUBSCRIBER},李女士\n", encoding="utf-8")
    for n in (1, 2):
        ws.path(f"twoway-{n}.yaml").write_text(
            SPEC.format(name=f"twoway-offer-{n}", sender=SENDER), encoding="utf-8")
    with demo_environment(ws, {"JINGXIN_INBOX__AUTO_REPLIES": json.dumps(AUTO_REPLIES)}):
        for number in (INTERESTED, UNSUBSCRIBER):
            ws.run("consent", "add", "--msisdn", number, "--category", "marketing",
                   "--wording", "同意接收流量优惠短信", "--at", _noon(-30))  # fmt: skip
        ws.run("campaign", "run", str(ws.path("twoway-1.yaml")), "--at", _noon(-1))
        ws.run("worker", "--once")
        _worker_while_answering(ws, [(INTERESTED, "jy"), (UNSUBSCRIBER, "ＴＤ")])
        ws.run("inbox", "list", "--service-number", SENDER)
        ws.run("inbox", "show", str(_mo_id(ws, UNSUBSCRIBER)))
        ws.run("inbox", "stats")
        ws.run("campaign", "run", str(ws.path("twoway-2.yaml")), "--at", _noon(1))
        ws.run("why", UNSUBSCRIBER, "--days", "3650")


def _mo_id(ws: Workspace, msisdn: str) -> int:
    from jingxin.data.store import open_store
    from jingxin.dispatch.inbox_view import MoFilter, list_mo

    store = open_store(ws.store_url)
    try:
        rows = list_mo(store, where=MoFilter(msisdn=msisdn, limit=1))
    finally:
        store.dispose()
    if not rows:
        raise DemoError(f"no MO from {msisdn[:-4]}**** reached the inbox")
    return rows[0].id
