"""Crash safety of the way back at CI size: on PostgreSQL, with real ``jingxin worker`` and
``jingxin smsc`` processes, kill -9 the worker while MO (short and long) stream into the
simulator's MO endpoint, start it again, and count with :mod:`jingxin.bench.mo`.

The same run at full size is ``jingxin bench mo-crash``. The report is printed (``pytest
-s``): MO lost, stored twice, handled twice, replies sent twice - all must be 0.
"""

from __future__ import annotations

import json

import pytest

from jingxin.bench.mo import MoPlan, invariants, mo_crash

# kill -9 and restarts on a timeline: run alone, after the parallel part (./dev test).
pytestmark = pytest.mark.serial


@pytest.mark.postgres
@pytest.mark.slow
def test_kill_9_worker_while_mo_stream_in(pg_url, tmp_path) -> None:
    # Given 300 MO (two short TD for each long one, every one from a number of its own)
    # streaming into the simulator while a worker stores and answers them
    # When the worker is killed with SIGKILL a third of the way in, and starts again
    report = mo_crash(store_url=pg_url, workdir=tmp_path, plan=MoPlan(messages=300, timeout=60))
    print(f"\nmo crash report: {json.dumps(report, default=str)}")
    # Then no MO is lost or stored twice, none handled twice, no reply sent twice
    assert report["failures"] == [], report["failures"]
    assert report["mo_messages"] == report["injected"] == 300
    # And the kill landed mid-stream: MO went on arriving after it, and every MO has an outcome
    assert report["injected_at_kill"] < 300
    assert sum(report["outcomes"].values()) == 300


def test_the_invariants_name_each_broken_promise() -> None:
    sound = {"lost": 0, "stored_twice": 0, "opt_outs_twice": 0, "replies_sent_twice": 0}
    assert invariants(sound) == []
    for key, words in [("lost", "lost"), ("stored_twice", "stored twice"),
                       ("opt_outs_twice", "handled twice"), ("replies_sent_twice", "sent twice")]:  # fmt: skip
        assert any(words in line for line in invariants({**sound, key: 2}))
