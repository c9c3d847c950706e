"""Settings: defaults need nothing; jingxin.toml and JINGXIN_* override; bad values are named."""

from __future__ import annotations

import pytest

from jingxin.config import load_settings
from jingxin.errors import ConfigError


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    for key in list(__import__("os").environ):
        if key.startswith("JINGXIN_"):
            monkeypatch.delenv(key)


def test_defaults_need_nothing() -> None:
    # Given no file and no environment
    settings = load_settings()
    # Then the stores are local files under ./var
    assert settings.store.url == "sqlite:///var/jingxin.db"
    assert settings.warehouse.backend == "duckdb"
    assert settings.warehouse.path == "var/warehouse.duckdb"
    assert settings.redis.url is None
    assert settings.channels[0].name == "sim-smpp"


def test_toml_file_then_environment_override(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a jingxin.toml and an environment variable for the same setting
    (tmp_path / "jingxin.toml").write_text(
        '[store]\nurl = "sqlite:///from-file.db"\n[warehouse]\nthreads = 2\n', encoding="utf-8"
    )
    monkeypatch.setenv("JINGXIN_STORE__URL", "postgresql+psycopg://localhost/jx")
    settings = load_settings()
    # Then the environment wins, and the file still fills the rest
    assert settings.store.url == "postgresql+psycopg://localhost/jx"
    assert settings.warehouse.threads == 2


def test_config_path_from_environment(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text('[policy]\nquiet_start = "22:00"\n', encoding="utf-8")
    monkeypatch.setenv("JINGXIN_CONFIG", str(other))
    assert load_settings().policy.quiet_start == "22:00"


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[warehouse]\nbackend = "oracle"\n', "warehouse.backend"),
        ('[store]\nurll = "x"\n', "store.urll"),
        ("[[channels]]\nport = 1\n", "channels.0.name"),
    ],
)
def test_bad_settings_name_the_field(tmp_path, toml: str, named: str) -> None:
    (tmp_path / "jingxin.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert named in str(info.value)


def test_malformed_toml_is_a_config_error(tmp_path) -> None:
    (tmp_path / "jingxin.toml").write_text("[store\nurl=", encoding="utf-8")
    with pytest.raises(ConfigError, match="settings file"):
        load_settings()
