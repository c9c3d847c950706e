"""The demo's geofence step: a synthetic morning with airport trips.

The packaged example fences (Pudong and Hongqiao departures, Hongqiao railway station,
Yuyuan mall, the Lujiazui business hall) are checked, saved and one is drawn; a morning of
location events (06:00-11:00: commutes, airport trips, some flying abroad) is written for
the demo's subscribers and replayed through the matcher: stays, dwell and hours by the
events' time; each offer decided by policy now, as if the morning were live (at night,
quiet hours defer them; ``--event-time`` would decide them as of that morning instead).
The same morning replayed from scratch sends nothing twice: every offer's idempotency key
names the stay it answers. The worker sends what is due to the simulator, and the report
says what each fence's offers became.
"""

from __future__ import annotations

from pathlib import Path

from jingxin.demo.runner import Workspace

DAY = "2026-10-09"  # a Friday after the National Day week
EXAMPLE = Path(__file__).resolve().parent.parent / "geofence" / "example_fences.yaml"


def geofence(ws: Workspace) -> None:
    ws.heading("Geofences: the right offer while the subscriber is still there",
               f"Fences around the airports, a railway station, a mall and a business hall; "
               f"a synthetic morning of {DAY} with airport trips replayed through the matcher "
               "(dwell, hours, audience, residents, caps), offers through the delivery entry, "
               "roaming arrivals welcomed; replayed again from scratch, nothing is sent twice.")
    morning = ws.path("morning.csv")
    ws.run("fence", "check", str(EXAMPLE))
    ws.run("fence", "apply", str(EXAMPLE))
    ws.run("fence", "show", "hongqiao-railway", "--map", str(ws.path("hongqiao-railway.png")))
    ws.run("fence", "synth-morning", "--out", str(morning), "--day", DAY)
    ws.run("fence", "run", "--replay", str(morning))
    ws.run("fence", "run", "--replay", str(morning), "--fresh")
    ws.run("worker", "--once")
    ws.run("fence", "report", "--since", "all")
    ws.run("fence", "stats")
