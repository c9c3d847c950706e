"""The demo's journeys step: a day of lifecycle care, a multi-step journey, double-stop
work orders.

The daily scan runs for the eve of National Day (the greeting goes out the day before),
so the holiday trigger fires beside birthdays, anniversaries, renewals, usage alerts and
roaming welcomes from the synthetic operator's data; the counts per trigger and one
rendered message each are printed. The same day is scanned again to show that nothing is
sent twice. Then a multi-step journey (renewal offer, wait, branch on what the subscriber
did) is checked, enrolled from the renewal trigger and advanced; and the double-stop
subscribers become work orders for their branches, most at risk first.
"""

from __future__ import annotations

from jingxin.demo.runner import Workspace, demo_environment

DAY = "2026-09-30"
FLOW = """\
name: renewal_nudge
tenant: operator
category: marketing
entry: {trigger: renewal}
holdout: 0.1
exit_on: [ordered]
goal: ordered
steps:
  - {id: offer, type: send, template: care.plan_fit}
  - {id: pause, type: wait, days: 3}
  - id: check
    type: branch
    on:
      - {event: ordered, within: {days: 3}, goto: won}
      - {event: replied, within: {days: 3}, goto: won}
      - {event: none, within: {days: 3}, goto: reminder}
    default: reminder
  - {id: reminder, type: send, template: care.plan_fit, next: lost}
  - {id: won, type: exit, outcome: converted}
  - {id: lost, type: exit, outcome: no_response}
"""


def journeys(ws: Workspace) -> None:
    ws.heading("Journeys: a day of lifecycle care, a multi-step journey, retention",
               f"The daily scan of {DAY} (the eve of National Day): every trigger computed in "
               "the warehouse and handed to the delivery entry; scanned again, nothing is "
               "sent twice. A renewal journey with a hold-out group is enrolled and advanced. "
               "Double-stop subscribers become work orders for their branches.")
    flows = ws.path("journeys")
    flows.mkdir(exist_ok=True)
    flow = flows / "renewal_nudge.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    with demo_environment(ws, {"JINGXIN_RETENTION__BRANCHES":
                               '{"浦东新区": "浦东营业厅", "徐汇区": "徐汇营业厅"}'}):
        ws.run("journeys", "run", "--date", DAY)
        ws.run("journeys", "run", "--date", DAY, "--trigger", "birthday")
        ws.run("flow", "validate", str(flow))
        ws.run("flow", "enrol", str(flow), "--trigger", "renewal", "--date", DAY,
               "--now", f"{DAY}T09:00:00+08:00")  # fmt: skip
        # The offer goes out; four days later, nobody having answered, the reminder.
        ws.run("flow", "advance", "--dir", str(flows), "--now", f"{DAY}T10:00:00+08:00")
        ws.run("flow", "advance", "--dir", str(flows), "--now", "2026-10-04T10:00:00+08:00")
        ws.run("flow", "status", "renewal_nudge")
        ws.run("retention", "extract", "--date", "2026-10-01")
        ws.run("retention", "orders", "--limit", "5")
        ws.run("retention", "rate", "--since", "all")
