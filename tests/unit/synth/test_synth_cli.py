"""``jingxin synth`` end to end through the CLI, and its bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jingxin.cli import app
from jingxin.data.synth import SynthParams, generator, synthesize
from jingxin.data.warehouse.schema import TABLES

runner = CliRunner()
SMALL = ["--subscribers", "300", "--location-subscribers", "50", "--cells", "600", "-q"]


def test_synth_writes_every_table_and_the_manifest(tmp_path):
    out = tmp_path / "wh"
    result = runner.invoke(app, ["synth", *SMALL, "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {f"{t}.parquet" for t in TABLES} | {"synth.json"}
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["parameters"]["seed"] == 3
    assert "oracle AUC" in result.output


def test_force_overwrites_and_keeps_other_files(tmp_path):
    out = tmp_path / "wh"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    refused = runner.invoke(app, ["synth", *SMALL, "--out", str(out)])
    assert refused.exit_code == 2
    said = " ".join(refused.output.split())  # the message wraps with the path's length
    assert "not empty" in said and "--force" in said
    done = runner.invoke(app, ["synth", *SMALL, "--out", str(out), "--force"])
    assert done.exit_code == 0, done.output
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subscribers", "0"], "--subscribers"),
        (["--subscribers", "-5"], "--subscribers"),
        (["--as-of", "2026-10-15"], "first day of a month"),
        (["--as-of", "October"], "not a date"),
        (["--location-days", "0"], "--location-days"),
        (["--location-subscribers", "-1"], "--location-subscribers"),
        (["--cells", "10"], "--cells"),
    ],
)
def test_bad_parameters_are_refused(tmp_path, args, message):
    result = runner.invoke(app, ["synth", *SMALL, "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "x").exists()


def test_unwritable_out_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "below"):
        result = runner.invoke(app, ["synth", *SMALL, "--out", str(out)])
        assert result.exit_code == 2
        assert str(out) in result.output.replace("\n", "")


def test_stations_file_places_cells(tmp_path):
    stations = tmp_path / "stations.csv"
    stations.write_text("latitude,longitude\n31.2304,121.4737\n31.1443,121.8083\n"
                        "45.0,100.0\n")
    out = tmp_path / "wh"
    result = runner.invoke(app, ["synth", *SMALL, "--out", str(out),
                                 "--stations", str(stations)])
    assert result.exit_code == 0, result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("lat;lon\n1;2\n")
    result = runner.invoke(app, ["synth", *SMALL, "--out", str(tmp_path / "w2"),
                                 "--stations", str(bad)])
    assert result.exit_code == 2 and "latitude" in result.output


def test_a_failed_run_leaves_nothing_half_written(tmp_path, monkeypatch):
    # Given a generator that fails in the middle of the second chunk
    monkeypatch.setattr(generator, "CHUNK", 100)
    real = generator.offers.offers
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(generator.offers, "offers", failing)
    out = tmp_path / "wh"
    # When it runs, Then the error surfaces and the output directory holds no table
    with pytest.raises(RuntimeError, match="disk on fire"):
        synthesize(params=SynthParams(subscribers=300, location_subscribers=0, cells=600),
                   out=out)
    assert list(out.iterdir()) == []


def test_uses_real_station_file_when_present(tmp_path):
    real = Path("/work/shared/data/shanghai_base_stations.csv")
    if not real.exists():
        pytest.skip("no shared station file on this machine")
    synthesize(params=SynthParams(subscribers=200, location_subscribers=20, cells=3_000,
                                  stations=real), out=tmp_path / "wh")


def test_the_importer_accepts_every_row(tmp_path, monkeypatch):
    # Given a synthetic warehouse directory
    monkeypatch.chdir(tmp_path)  # rejects files, if any, land here
    out = tmp_path / "wh"
    assert runner.invoke(app, ["synth", *SMALL, "--out", str(out)]).exit_code == 0
    # When `jingxin import-dir` loads it, Then no table rejects a row
    result = runner.invoke(app, ["import-dir", str(out), "--warehouse",
                                 str(tmp_path / "w.duckdb")])
    assert result.exit_code == 0, result.output
    loaded = [line for line in result.output.splitlines() if " rows loaded, " in line]
    assert len(loaded) == len(TABLES)
    assert all(", 0 rejected of " in line for line in loaded), result.output
