"""`jingxin demo`, the README's main job, runs end to end (small, in a temp workspace)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    # Given a clean environment that points nowhere in particular
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINGXIN_")}
    env["COLUMNS"] = "120"
    # When the demo runs on a small synthetic operator
    done = subprocess.run(
        [sys.executable, "-m", "jingxin.cli", "demo", "--subscribers", "3000",
         "--dir", str(tmp_path / "demo")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    out = done.stdout + done.stderr
    # Then every step ran and the demo said so
    assert done.returncode == 0, out[-4000:]
    assert "demo finished" in out
    for command in ("$ jingxin synth", "$ jingxin import-dir", "$ jingxin summary",
                    "$ jingxin audience features", "$ jingxin audience planfit",
                    "$ jingxin template seed-library", "$ jingxin policy batch",
                    "$ jingxin campaign run", "$ jingxin worker --once",
                    "$ jingxin send --channel sim-smpp", "$ jingxin send --channel sim-cmpp",
                    "$ jingxin hall seed", "$ jingxin probe run", "$ jingxin hall report",
                    "$ jingxin journeys run", "$ jingxin flow advance",
                    "$ jingxin retention extract", "$ jingxin simulate responses",
                    "$ jingxin events collect", "$ jingxin experiment results campaign",
                    "$ jingxin report campaign", "$ jingxin users add",
                    "$ jingxin keys create"):
        assert command in out, command
    # And the messages really went through the simulator and came back with receipts
    assert out.count("receipt ") >= 3
    assert '"submitted": 0' not in out and '"receipts": 0' not in out
    # And the hall answered every step of the conversation: an order placed, points
    # earned and spent, a voucher redeemed once and refused the second time
    hall = out[out.find("→ 10086"):out.find("→ 10086") + 6000] if "→ 10086" in out else out[-4000:]
    for said in ("订购成功", "您当前积分100分", "兑换成功", "核销成功", "已核销过", "投诉已受理"):
        assert said in out, f"{said!r} not in the hall conversation:\n{hall}"
    # (the balance asked twice over SMPP, the same text: answered twice, the order between)
    assert out.count("subscriber A → 10086: ye") == 2 and out.count("您的账户余额为") == 2, hall
    assert "2 probes, 2 passed, 0 failed" in out
    # And the day of journeys queued its messages once: the second scan found it done
    assert "[holiday] 【中国移动】" in out and "done (earlier)" in out
    # And the proof step ends the demo: a simulation that says so, arms against their
    # hold-outs, and the report written where the last line says
    assert "(a simulation, not real behaviour)" in out and "vs holdout" in out
    report = out.rsplit("the campaign report:", 1)[1].split()[0]
    html = Path(report).read_text(encoding="utf-8")
    assert report.endswith(".html") and "plotly" in html and "<script src=\"http" not in html
    # And the API step sent an OTP over HTTP, replayed it, refused a bad batch whole, saw
    # the message's final status, and a log-in that works is printed at the end
    assert "POST /api/v1/send → 202" in out and "POST /api/v1/send (again) → 200" in out
    assert "POST /api/v1/send/batch → 422" in out and "body.messages.1.msisdn" in out
    # (its receipt's status: the simulator fails a few in a hundred, as SMSCs do, so the
    # OTP is now and then undeliverable or expired, never left waiting)
    followed = out[out.find("GET /api/v1/messages/"):].split("\n", 1)[0]
    assert any(f'"status": "{final}"' in followed for final in ("delivered", "undeliverable",
                                                               "expired")), followed
    assert "GET /api/v1/dashboard → 200" in out
    assert "POST /api/v1/auth/login → 200" in out
    assert "log in as admin with the password" in out
    # And the demo kept to its own workspace
    assert (tmp_path / "demo" / "jingxin.db").exists()
    assert not (tmp_path / "var").exists()


def test_a_demo_too_small_for_its_acts_is_refused_before_it_starts(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from jingxin.cli import app

    # When a newcomer asks for a demo of 100 subscribers
    done = CliRunner().invoke(app, ["demo", "-n", "100", "--dir", str(tmp_path / "demo")])
    # Then it is refused at once, saying the least it takes, and nothing was made
    assert done.exit_code == 2
    assert "1000" in done.output
    assert not (tmp_path / "demo").exists()
