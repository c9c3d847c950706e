"""Dial tests (拨测): MO commands sent as a subscriber would, replies checked against a
pattern and a latency bound, so the SMS business hall is seen working end to end.

- :mod:`~jingxin.probes.probe` - ``[[probes]]`` checked and compiled (:func:`load_probes`);
- :mod:`~jingxin.probes.channel` - where MO go and replies are read
  (:class:`ProbeChannel`; :class:`SimulatorChannel` over the simulator's HTTP endpoint);
- :mod:`~jingxin.probes.runner` - run, judge, alert (:func:`run_probes`,
  :func:`run_and_record`);
- :mod:`~jingxin.probes.history` - ``probe_runs`` rows and the history report;
- :mod:`~jingxin.probes.metrics` - Prometheus gauges and counters;
- :mod:`~jingxin.probes.scheduler` - ``jingxin scheduler``: probes every interval, never
  overlapping, then the hall's reconcile hook.

Commands: ``jingxin probe run|history|list`` and ``jingxin scheduler`` (jingxin/cli).
"""

from jingxin.probes.channel import ProbeChannel, Reply, SimulatorChannel, SimulatorUnreachable
from jingxin.probes.history import (
    History,
    HistoryRow,
    ProbeStats,
    last_runs,
    probe_history,
    record_results,
)
from jingxin.probes.metrics import ProbeMetrics
from jingxin.probes.probe import Probe, load_probes
from jingxin.probes.runner import ProbeResult, RunReport, judge, run_and_record, run_probe, run_probes
from jingxin.probes.scheduler import HallTick, hall_reconcile, run_schedule

__all__ = [
    "HallTick", "History", "HistoryRow", "Probe", "ProbeChannel", "ProbeMetrics", "ProbeResult",
    "ProbeStats", "Reply", "RunReport", "SimulatorChannel", "SimulatorUnreachable",
    "hall_reconcile", "judge", "last_runs", "load_probes", "probe_history", "record_results",
    "run_and_record", "run_probe", "run_probes", "run_schedule",
]  # fmt: skip
