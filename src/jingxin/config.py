"""Settings: one pydantic-settings object, nested per component.

Sources, strongest first: keyword arguments, ``JINGXIN_*`` environment variables (nested
with ``__``, e.g. ``JINGXIN_STORE__URL``), the TOML file named by ``JINGXIN_CONFIG`` or
``./jingxin.toml``, then the defaults. The defaults need nothing: an SQLite file and a
DuckDB file under ``./var/``.

Each component owns one section class here; components read only their own section.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from jingxin.errors import ConfigError


class Section(BaseModel):
    """A settings section: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


class StoreSettings(Section):
    """The operational store (SQLAlchemy URL)."""

    url: str = "sqlite:///var/jingxin.db"
    echo: bool = False


class WarehouseSettings(Section):
    """The analytical warehouse (Ibis)."""

    backend: Literal["duckdb", "pyspark"] = "duckdb"
    path: str = "var/warehouse.duckdb"
    threads: int | None = None
    memory_limit: str | None = None
    # PySpark (``--spark``, backend "pyspark") reads ``<table>.parquet`` from here; unset,
    # the DuckDB warehouse is exported to Parquet under var/spark/ on first use.
    parquet_dir: str | None = None


class RedisSettings(Section):
    """Optional Redis for shared rate limits, caps and streams; empty URL means in-process."""

    url: str | None = None


class ContentSettings(Section):
    """Templates, parts and review."""

    unsubscribe_text: str = "回T退订"
    max_parts: int = 6
    lexicon_paths: list[str] = Field(default_factory=list)
    allowed_domains: list[str] = Field(default_factory=lambda: ["jx.cn"])


class PolicySettings(Section):
    """Defaults for the policy rules; tenants may override them in the store."""

    quiet_start: str = "21:00"
    quiet_end: str = "08:00"
    default_timezone: str = "Asia/Shanghai"


class ChannelSettings(Section):
    """One SMSC link."""

    name: str
    protocol: Literal["smpp", "cmpp"] = "smpp"
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = "jingxin"
    password: str = "secret"
    source_addr: str = "10690000"
    window: int = 10
    tps: float = 0.0
    long_messages: Literal["udh", "payload"] = "udh"
    service_id: str = ""  # CMPP Service_Id (业务代码, ≤ 10 characters); SMPP ignores it


class SmscSettings(Section):
    """The built-in SMSC simulator."""

    host: str = "127.0.0.1"
    smpp_port: int = 2775
    cmpp_port: int = 7890
    http_port: int = 8775
    preset: str = "happy"


class RouteSettings(Section):
    """One routing rule: numbers matching a prefix or a carrier go to ``channel``."""

    channel: str
    prefixes: list[str] = Field(default_factory=list)  # E.164 prefixes, e.g. "+86139"
    carriers: list[str] = Field(default_factory=list)  # e.g. "china_mobile"
    backup: str | None = None  # used while ``channel`` is unbound or failing


class DispatchSettings(Section):
    """Workers, routing, retries and tariffs of the outbox (see docs/dispatch.md)."""

    worker_name: str = ""  # empty: the host name (a restarted worker recovers its own rows)
    max_in_flight: int = Field(default=200, ge=1)
    flush_interval: float = Field(default=0.05, gt=0)
    stale_after: float = Field(default=120.0, gt=0)  # seconds before another worker's submit counts as unresolved
    validity_hours: float = Field(default=24.0, gt=0)
    retry_base: float = 1.0
    retry_max: float = 300.0
    max_attempts: int = Field(default=50, ge=1)
    unresolved: dict[str, Literal["resend", "fail"]] = Field(default_factory=dict)
    routes: list[RouteSettings] = Field(default_factory=list)
    tps: dict[str, float] = Field(default_factory=dict)  # channel -> submits/s shared by all workers
    tariffs: dict[str, float] = Field(default_factory=dict)  # channel -> price per part
    receipt_grace: float = Field(default=600.0, ge=0)  # after expires_at: no receipt → expired
    invalid_after: int = Field(default=3, ge=1)  # permanent failures before a number is invalid
    invalid_statuses: list[str] = Field(default_factory=lambda: ["undeliverable"])
    error_rate_limit: float = Field(default=0.5, gt=0, le=1)
    metrics_port: int | None = None


class LogSettings(Section):
    """``[log]``: how every ``jingxin`` command logs; numbers are masked in either format."""

    format: Literal["text", "json"] = "text"  # json: one object per line
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    """Everything jingxin can be told. ``Settings()`` with no file and no env just works."""

    model_config = SettingsConfigDict(
        env_prefix="JINGXIN_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    home: Path = Path(".")
    store: StoreSettings = Field(default_factory=StoreSettings)
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    content: ContentSettings = Field(default_factory=ContentSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    # The defaults point at the built-in simulator (`jingxin smsc`): SMPP and CMPP.
    channels: list[ChannelSettings] = Field(
        default_factory=lambda: [
            ChannelSettings(name="sim-smpp"),
            ChannelSettings(name="sim-cmpp", protocol="cmpp", port=7890, system_id="901234",
                            source_addr="1069012345", window=16),
        ]
    )
    smsc: SmscSettings = Field(default_factory=SmscSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("JINGXIN_CONFIG", "jingxin.toml"))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

    def var_dir(self) -> Path:
        return self.home / "var"


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning validation errors into a readable :class:`ConfigError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        ]
        raise ConfigError("invalid settings:\n" + "\n".join(lines)) from exc
    except (OSError, ValueError) as exc:  # an unreadable or malformed jingxin.toml
        raise ConfigError(f"cannot read the settings file: {exc}") from exc
