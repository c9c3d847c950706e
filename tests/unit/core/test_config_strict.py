"""Strict settings: a mistyped variable, a missing file or a value out of range stops the
command naming it (issue #11)."""

from __future__ import annotations

import os

import pytest

from jingxin.config import ENV_NOT_SETTINGS, check_environment, config_file, load_settings
from jingxin.errors import ConfigError


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.upper().startswith("JINGXIN_"):
            monkeypatch.delenv(key)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("JINGXIN_STORE_URL", "did you mean JINGXIN_STORE__URL?"),
        ("JINGXIN_WAREHOUSE_PATH", "did you mean JINGXIN_WAREHOUSE__PATH?"),
        ("JINGXIN_STORE__URLL", "did you mean JINGXIN_STORE__URL?"),
        ("JINGXIN_NOTHING_LIKE_IT", "settings are JINGXIN_<SECTION>__<KEY>"),
        ("jingxin_store_url", "did you mean JINGXIN_STORE__URL?"),
    ],
)
def test_an_unknown_variable_is_named_with_a_suggestion(monkeypatch, name: str,
                                                        says: str) -> None:
    monkeypatch.setenv(name, "sqlite:///x.db")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert f"unknown environment variable {name}" in str(caught.value)
    assert says in str(caught.value)


def test_settings_and_variables_read_elsewhere_pass() -> None:
    # Given every form of variable the code base legitimately sets
    environ = {
        "JINGXIN_STORE__URL": "sqlite://", "JINGXIN_HOME": ".", "JINGXIN_CHANNELS": "[]",
        "JINGXIN_DISPATCH__TARIFFS": "{}", "JINGXIN_DISPATCH__TARIFFS__SIM": "0.05",
        "JINGXIN_BENCH_STORE_URL": "x", "JINGXIN_TEST_PG_HOST": "x", "JINGXIN_CRASH_N": "1",
        "OTHER_THING": "x", **{name: "x" for name in ENV_NOT_SETTINGS},
    }  # fmt: skip
    # Then none of them is refused
    check_environment(environ)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("/no/such/file.toml", "JINGXIN_CONFIG=/no/such/file.toml: no such file"),
        ("", "JINGXIN_CONFIG is set but empty"),
        (".", "JINGXIN_CONFIG=.: not a readable file"),
    ],
)
def test_a_config_file_that_cannot_be_read_is_named(monkeypatch, value: str, says: str) -> None:
    monkeypatch.setenv("JINGXIN_CONFIG", value)
    with pytest.raises(ConfigError, match=f"^{says}"):
        load_settings()


def test_devnull_reads_no_file_and_no_variable_means_jingxin_toml() -> None:
    assert load_settings().store.url == "sqlite:///var/jingxin.db"
    assert str(config_file({"JINGXIN_CONFIG": os.devnull})) == os.devnull
    assert str(config_file({})) == "jingxin.toml"


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[smsc]\nsmpp_port = 99999\n", "smsc.smpp_port"),
        ('[[channels]]\nname = "a"\nport = 0\n', "channels.0.port"),
        ("[dispatch]\nmetrics_port = 70000\n", "dispatch.metrics_port"),
        ('[policy]\ndefault_timezone = "Mars/Base"\n', "policy.default_timezone"),
        ('[policy]\nquiet_start = "25:00"\n', "policy.quiet_start"),
        ("[content]\nmax_parts = 0\n", "content.max_parts"),
        ("[dispatch.tariffs]\nsim = -0.1\n", "dispatch.tariffs.sim"),
        ("[dispatch]\nretry_base = 10\nretry_max = 5\n", "retry_max (5) is below retry_base"),
    ],
)
def test_values_out_of_range_are_named_when_settings_load(tmp_path, toml: str,
                                                          named: str) -> None:
    (tmp_path / "jingxin.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert named in str(caught.value)


def test_the_console_script_stops_on_a_mistyped_variable_even_with_url(monkeypatch,
                                                                       capsys) -> None:
    import sys

    import jingxin.cli
    from jingxin.cli import main

    monkeypatch.setattr(jingxin.cli, "_configure_logging", lambda: None)  # keep pytest's logs

    # Given JINGXIN_STORE_URL (one underscore) and a command given --url, which would
    # never read the settings
    monkeypatch.setenv("JINGXIN_STORE_URL", "sqlite:///elsewhere.db")
    monkeypatch.setattr(sys, "argv", ["jingxin", "db", "current", "--url", "sqlite://"])
    # When it runs, Then it stops with one line naming the variable, exit code 2
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "JINGXIN_STORE__URL" in err
