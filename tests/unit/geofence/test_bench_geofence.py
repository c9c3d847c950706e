"""``jingxin bench geofence-match`` at a tiny size: it runs in seconds, reports its figures
and a baseline, and the dict-per-subscriber baseline finds exactly what the matcher finds
on the same sample; results are appended where asked."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from jingxin.bench.geofence import record
from jingxin.cli import app

TINY = ["--subscribers", "20000", "--fences", "300", "--events", "20000", "--batch", "2000",
        "--runs", "2", "--cells", "3000", "--baseline-events", "6000", "--no-record"]  # fmt: skip


def test_geofence_match_runs_at_a_tiny_size():
    result = CliRunner().invoke(app, ["bench", "geofence-match", *TINY])
    assert result.exit_code == 0, result.output + repr(result.exception)
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["benchmark"] == "geofence-match"
    assert (figures["subscribers"], figures["fences"], figures["events"]) == (20000, 300, 20000)
    assert figures["timed_events"] == 20000 - 2000 * figures["warmup_batches"]
    assert len(figures["runs_events_per_s"]) == 2 and figures["events_per_s"] > 0
    counts = figures["counts"]
    assert counts["events"] == figures["timed_events"]
    # the feed's flaws are there, and stays begin, end and fire
    for key in ("unknown_subscriber", "off_grid", "duplicate", "entries", "exits", "triggered"):
        assert counts[key] > 0, key
    assert figures["triggers"] == counts["triggered"]
    assert 0 < figures["world"]["events_in_fences_share"] < 0.5  # most events in no fence
    assert figures["state_bytes"] > 20000 * 12  # last ts and cell per subscriber at least
    # the baseline ran on its sample and agrees with the matcher there
    assert figures["baseline_events"] == 6000 and figures["baseline_events_per_s"] > 0
    assert figures["baseline_agrees"] is True, figures.get("baseline_differs")
    assert figures["speedup_vs_baseline"] > 0


def test_results_are_appended_to_the_folder_asked(tmp_path):
    record("geofence-match", '{"a": 1}', tmp_path / "results")
    path = record("geofence-match", '{"a": 2}', tmp_path / "results")
    assert path == tmp_path / "results" / "geofence-match.jsonl"
    assert path.read_text().splitlines() == ['{"a": 1}', '{"a": 2}']
