"""Settings: one pydantic-settings object, nested per component.

Sources, strongest first: keyword arguments, ``JINGXIN_*`` environment variables (nested
with ``__``, e.g. ``JINGXIN_STORE__URL``), the TOML file named by ``JINGXIN_CONFIG`` or
``./jingxin.toml``, then the defaults. The defaults need nothing: an SQLite file and a
DuckDB file under ``./var/``.

Each component owns one section class here; components read only their own section.

Strict: an unknown ``JINGXIN_*`` variable (``JINGXIN_STORE_URL`` with one underscore), a
``JINGXIN_CONFIG`` file that is missing or unreadable, and a value out of its range (a port
outside 1-65535, an unknown time zone or country, a part limit below 1, a negative tariff)
stop the command with a :class:`ConfigError` naming them. Set ``JINGXIN_CONFIG`` to
``/dev/null`` (``os.devnull``) to read no file at all.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from jingxin.errors import ConfigError

ENV_PREFIX = "JINGXIN_"
# JINGXIN_* variables read outside Settings: the file to read, benchmark and test knobs.
ENV_NOT_SETTINGS = frozenset({"JINGXIN_CONFIG", "JINGXIN_LEXICON_DIR"})
ENV_NOT_SETTINGS_PREFIXES = ("JINGXIN_BENCH_", "JINGXIN_TEST_", "JINGXIN_CRASH_")

Port = Annotated[int, Field(ge=1, le=65535)]
ListenPort = Annotated[int, Field(ge=0, le=65535)]  # 0: any free port (simulator) or off (metrics)
NonNegative = Annotated[float, Field(ge=0)]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
    return value


def _country(value: str) -> str:
    from jingxin.data.validate import valid_country
    from jingxin.errors import InputError

    try:
        return valid_country(value)
    except InputError:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code") from None


def _clock(value: str) -> str:
    if not _CLOCK.match(value):
        raise ValueError(f"{value!r} is not a time of day HH:MM (00:00-23:59)")
    return value


# Field types others can reuse: an IANA zone, an ISO 3166-1 alpha-2 country, HH:MM.
TimeZoneName = Annotated[str, AfterValidator(_zone)]
CountryCode = Annotated[str, AfterValidator(_country)]
ClockTime = Annotated[str, AfterValidator(_clock)]


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
    # An import whose rejects pass this share of its rows loads nothing (``--max-rejects``).
    max_reject_share: float = Field(default=0.05, ge=0.0, le=1.0)


class RedisSettings(Section):
    """Optional Redis for shared rate limits, caps and streams; empty URL means in-process."""

    url: str | None = None


class ContentSettings(Section):
    """Templates, parts and review."""

    unsubscribe_text: str = "回T退订"
    max_parts: int = Field(default=6, ge=1)
    lexicon_paths: list[str] = Field(default_factory=list)
    allowed_domains: list[str] = Field(default_factory=lambda: ["jx.cn"])


class PolicySettings(Section):
    """Defaults for the policy rules; tenants may override them in the store."""

    quiet_start: ClockTime = "21:00"
    quiet_end: ClockTime = "08:00"
    default_timezone: TimeZoneName = "Asia/Shanghai"


class ChannelSettings(Section):
    """One SMSC link."""

    name: str
    protocol: Literal["smpp", "cmpp"] = "smpp"
    host: str = "127.0.0.1"
    port: Port = 2775
    system_id: str = "jingxin"
    password: str = "secret"
    source_addr: str = "10690000"
    window: int = Field(default=10, ge=1)
    tps: float = Field(default=0.0, ge=0)
    long_messages: Literal["udh", "payload"] = "udh"
    service_id: str = ""  # CMPP Service_Id (业务代码, ≤ 10 characters); SMPP ignores it
    # CMPP: hash an SP_Id shorter than 6 octets as given ("none") or NUL-padded to 6 ("nul")
    # in the CONNECT authenticator; some ISMGs want the padded form (docs/channels-cmpp.md).
    sp_id_padding: Literal["none", "nul"] = "none"


class SmscSettings(Section):
    """The built-in SMSC simulator."""

    host: str = "127.0.0.1"
    smpp_port: ListenPort = 2775
    cmpp_port: ListenPort = 7890
    http_port: ListenPort = 8775
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
    retry_base: float = Field(default=1.0, gt=0)
    retry_max: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=50, ge=1)
    # An unanswered submit, per source or category: resend (possible duplicate) or fail.
    # Inbox replies are sent at most once; everything else is resent.
    unresolved: dict[str, Literal["resend", "fail"]] = Field(
        default_factory=lambda: {"inbox": "fail", "hall": "fail"})
    routes: list[RouteSettings] = Field(default_factory=list)
    tps: dict[str, NonNegative] = Field(default_factory=dict)  # channel -> submits/s shared by all workers
    tariffs: dict[str, NonNegative] = Field(default_factory=dict)  # channel -> price per part
    receipt_grace: float = Field(default=600.0, ge=0)  # after expires_at: no receipt → expired
    invalid_after: int = Field(default=3, ge=1)  # permanent failures before a number is invalid
    invalid_statuses: list[str] = Field(default_factory=lambda: ["undeliverable"])
    error_rate_limit: float = Field(default=0.5, gt=0, le=1)
    metrics_port: ListenPort | None = None
    # While MO wait to be stored or handled, new claims fill at most this share of
    # max_in_flight (the way back outranks bulk sends; 1.0: no yielding).
    mo_first_share: float = Field(default=0.25, gt=0, le=1)

    @field_validator("unresolved")
    @classmethod
    def _unresolved_keys(cls, value: dict[str, str]) -> dict[str, str]:
        """Keys are categories or sources; inbox replies stay at most once unless the
        settings say ``inbox = "resend"``."""
        from jingxin.domain.candidate import Source

        known = {"otp", "notification", "marketing"} | {s.value for s in Source}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown category or source {', '.join(unknown)} "
                             f"(use {', '.join(sorted(known))})")  # fmt: skip
        return {"inbox": "fail", **value}

    @model_validator(mode="after")
    def _retry_order(self) -> DispatchSettings:
        if self.retry_max < self.retry_base:
            raise ValueError(f"retry_max ({self.retry_max:g}) is below retry_base "
                             f"({self.retry_base:g})")  # fmt: skip
        return self


class AutoReplySettings(Section):
    """``[[inbox.auto_replies]]``: answer an MO whose text is ``keyword`` (to
    ``service_number`` or, unset, to any of ours) with ``reply``."""

    keyword: str = Field(min_length=1)
    reply: str = Field(min_length=1)
    service_number: str | None = None


class InboxSettings(Section):
    """``[inbox]``: two-way messaging - unsubscribe words, attribution, keyword replies
    (see docs/twoway.md). Words match after NFKC, case folding and trimming."""

    unsubscribe_words: list[str] = Field(
        default_factory=lambda: ["TD", "T", "N", "R", "退订"], min_length=1)
    unsubscribe_reply: str = Field(default="您已成功退订，将不再收到营销短信。", min_length=1)
    attribution_window_hours: float = Field(default=72.0, gt=0)
    auto_replies: list[AutoReplySettings] = Field(default_factory=list)
    # The durable MO inbox (docs/dispatch.md): how long parts of a long MO wait for their
    # siblings before what came is stored as incomplete, and how long a PDU without an
    # SMSC id, identical to a stored part not yet acknowledged, counts as its redelivery.
    part_timeout_seconds: float = Field(default=600.0, gt=0)
    duplicate_window_seconds: float = Field(default=600.0, gt=0)
    # Where a worker runs the MO handlers: "process" - a child process of its own, so a
    # reply never waits for the interpreter lock the event loop and the store lane hold;
    # "thread" - a thread of the worker; "auto" - a process on PostgreSQL, a thread on
    # SQLite (one writer at a time there: a second process would only wait for the lock,
    # and "process" on SQLite is refused).
    handler_mode: Literal["auto", "process", "thread"] = "auto"
    # In process mode, how many handler processes a worker runs: a batch of MO is shared
    # among them by sender (one number's MO always in one, in order).
    handler_processes: int = Field(default=2, ge=1, le=16)


class HallSettings(Section):
    """``[hall]``: the SMS business hall (docs/hall.md). Its commands, zones and reply texts
    are in a menu file (YAML, per service number and tenant); unset, the packaged one."""

    enabled: bool = True
    menu_path: str | None = None
    confirm_seconds: float = Field(default=600.0, gt=0)  # time to answer Y to an order
    session_seconds: float = Field(default=1800.0, gt=0)  # menu position kept this long
    referral_points: int = Field(default=100, ge=0)  # earned when a referred friend orders
    home_carriers: list[str] = Field(default_factory=lambda: ["china_mobile"])
    voucher_link_base: str = "https://jx.cn/v/"
    voucher_dir: str = "var/vouchers"  # QR images of issued vouchers
    voucher_days: int = Field(default=30, ge=1)
    boss_timeout_seconds: float = Field(default=2.0, gt=0)
    reconcile_after_seconds: float = Field(default=30.0, ge=0)  # an unknown order is asked for


class JourneySettings(Section):
    """``[journeys]``: the daily lifecycle scan (docs/journeys.md) and multi-step journeys.

    Times are local to ``[policy] default_timezone``. ``triggers`` empty: all of them."""

    triggers: list[str] = Field(default_factory=list)
    scheduled: bool = True  # `jingxin scheduler` runs the daily scans and journey steps
    tenant: str = "operator"
    send_at: ClockTime = "10:00"  # when the day's messages are wanted
    scan_at: ClockTime = "08:30"  # when `jingxin scheduler` runs the day's scan
    renewal_days_before: int = Field(default=30, ge=1)
    usage_thresholds: list[float] = Field(default_factory=lambda: [0.8, 1.0])
    surge_ratio: float = Field(default=2.0, gt=1)  # this month / last month above: a surge
    drop_ratio: float = Field(default=0.3, gt=0, lt=1)  # below: a drop
    gift_voice_min: int = Field(default=100, ge=0)
    gift_data_mb: int = Field(default=1024, ge=0)
    claim_days: int = Field(default=30, ge=1)  # a gift may be claimed this long
    holiday_file: str | None = None  # official schedules for years chinese-calendar lacks
    knowledge_path: str | None = None  # roaming destinations; None: the packaged table
    journeys_dir: str | None = None  # multi-step journey files (*.yaml)
    hall_number: str = "10086"  # the SMS-hall service number taught in messages


class GeofenceSettings(Section):
    """``[geofence]``: base-station fences over streaming location events (docs/geofence.md).

    Fences themselves are in the store (``jingxin fence apply FILE``); this says how the
    matcher reads events, keeps its state and sends offers."""

    tenant: str = "operator"  # fences without a tenant belong to this one
    sender: str | None = None  # the offers' service number; None: [journeys] hall_number
    streams: int = Field(default=8, ge=1, le=1024)  # subscribers sharded over this many
    stream_prefix: str = "jingxin:loc"  # stream k is "<prefix>:<k>"
    group: str = "jingxin-geofence"  # the consumer group every matcher reads with
    max_stream_length: int = Field(default=1_000_000, ge=1000)  # ~events kept per stream
    batch_size: int = Field(default=5000, ge=1)  # events read per round
    block_ms: int = Field(default=100, ge=0)  # how long a read waits for new events
    checkpoint_dir: str = "var/geofence"  # the matcher's state, one file per shard set
    checkpoint_seconds: float = Field(default=5.0, gt=0)  # state saved, events acked
    audience_refresh_seconds: float = Field(default=900.0, gt=0)  # segments re-read
    fences_refresh_seconds: float = Field(default=30.0, gt=0)  # fences re-read from the store
    lease_seconds: float = Field(default=30.0, gt=0)  # a shard's Redis lease
    roaming: bool = True  # detect arrivals abroad / in another province, welcome them
    roaming_quiet_days: int = Field(default=7, ge=1)  # not seen there this long: new arrival
    networks_path: str | None = None  # MCC -> country; None: the packaged table
    provinces_path: str | None = None  # CSV cell-id prefix -> province (national cells)


class AnalyticsSettings(Section):
    """``[analytics]``: short links, clicks, experiments and reports (docs/analytics.md)."""

    link_domain: str = "jx.cn"  # short links are https://<link_domain>/<token>
    # Tokens are an HMAC of the message's idempotency key under this secret: change it in
    # production (``jingxin serve`` refuses the default outside development).
    link_secret: str = "jingxin-development-secret"
    link_days: int = Field(default=30, ge=1)  # a link redirects this long after it was sent
    bot_agents: list[str] = Field(default_factory=lambda: [
        "bot", "spider", "crawler", "preview", "facebookexternalhit", "slackbot", "twitterbot",
        "whatsapp", "telegrambot", "skypeuripreview", "curl", "wget", "python-requests"])
    click_flush_seconds: float = Field(default=0.05, gt=0)  # clicks written in batches
    holdout: float = Field(default=0.05, ge=0.0, lt=1.0)  # default hold-out of every sender
    attribution_days: float = Field(default=7.0, gt=0)  # an order counts for a send this long
    tariff: float = Field(default=0.05, ge=0)  # yuan per part, for reports' cost (no route's)
    reports_dir: str = "var/reports"


class ServeSettings(Section):
    """``[serve]``: the web application (short links now; the API and console later)."""

    host: str = "127.0.0.1"
    port: ListenPort = 8080  # 0: any free port
    environment: Literal["development", "production"] = "development"


class ApiSettings(Section):
    """``[api]``: the REST API and the console (docs/api.md)."""

    session_minutes: int = Field(default=480, ge=1)  # a console log-in lasts this long
    key_rate_per_second: float = Field(default=100.0, gt=0)  # default per API key
    key_burst_seconds: float = Field(default=1.0, gt=0)  # a key may burst this many seconds' worth
    batch_max: int = Field(default=1000, ge=1, le=10000)  # messages per send request
    body_max_bytes: int = Field(default=1_048_576, ge=1024)  # larger request bodies: 413
    callback_timeout_seconds: float = Field(default=5.0, gt=0)
    callback_max_attempts: int = Field(default=12, ge=1)  # then the delivery is "dead"
    callback_backoff_seconds: float = Field(default=2.0, gt=0)  # doubled per attempt
    callback_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    callback_batch: int = Field(default=200, ge=1)  # deliveries taken per pass
    secure_cookies: bool = False  # the session cookie's Secure flag: set true behind HTTPS


class RetentionSettings(Section):
    """``[retention]``: double-stop (双停) work orders (docs/journeys.md)."""

    double_stop_days: int = Field(default=7, ge=1)
    branches: dict[str, str] = Field(default_factory=dict)  # district (home, else billing region) -> branch
    default_branch: str = "客户服务中心"


class ProbeSettings(Section):
    """``[[probes]]``: one dial test - an MO sent as a subscriber would, the reply expected
    (a regular expression) within ``max_latency_ms``."""

    name: str = Field(min_length=1)
    msisdn: str = "+8613900000000"  # the test SIM the MO comes from
    service_number: str = "10086"
    text: str = Field(min_length=1)
    expect: str = Field(min_length=1)
    max_latency_ms: int = Field(default=5000, gt=0)


class ProbingSettings(Section):
    """``[probing]``: how dial tests run (``jingxin probe run``, ``jingxin scheduler``)."""

    smsc_url: str = "http://127.0.0.1:8775"  # the simulator's HTTP endpoint (MO in, MT seen)
    interval_seconds: float = Field(default=300.0, gt=0)
    timeout_seconds: float = Field(default=10.0, gt=0)  # give up waiting for a reply


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
    inbox: InboxSettings = Field(default_factory=InboxSettings)
    hall: HallSettings = Field(default_factory=HallSettings)
    probes: list[ProbeSettings] = Field(default_factory=list)
    probing: ProbingSettings = Field(default_factory=ProbingSettings)
    journeys: JourneySettings = Field(default_factory=JourneySettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    geofence: GeofenceSettings = Field(default_factory=GeofenceSettings)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = config_file(os.environ)
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

    def var_dir(self) -> Path:
        return self.home / "var"

    def geofence_dir(self) -> Path:
        """Where matcher checkpoints and fence maps go (``[geofence] checkpoint_dir``,
        relative to ``home``)."""
        return self.home / self.geofence.checkpoint_dir


def config_file(environ: Mapping[str, str]) -> Path:
    """The TOML file to read: ``JINGXIN_CONFIG`` (which must exist and be readable), else
    ``./jingxin.toml`` if there is one."""
    named = environ.get("JINGXIN_CONFIG")
    if named is None:
        return Path("jingxin.toml")
    path = Path(named)
    if not named.strip():
        raise ConfigError("JINGXIN_CONFIG is set but empty; unset it, or name a file "
                          f"({os.devnull} to read none)")  # fmt: skip
    if not path.exists():
        raise ConfigError(f"JINGXIN_CONFIG={named}: no such file ({os.devnull} to read none)")
    if path.is_dir() or not os.access(path, os.R_OK):
        raise ConfigError(f"JINGXIN_CONFIG={named}: not a readable file")
    return path


def _env_names() -> dict[str, tuple[str, ...]]:
    """Every ``JINGXIN_*`` name Settings reads -> the settings path it sets."""
    names: dict[str, tuple[str, ...]] = {}
    for name, info in Settings.model_fields.items():
        names[f"{ENV_PREFIX}{name.upper()}"] = (name,)
        section = info.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            for sub in section.model_fields:
                names[f"{ENV_PREFIX}{name.upper()}__{sub.upper()}"] = (name, sub)
    return names


def check_environment(environ: Mapping[str, str]) -> None:
    """Refuse a ``JINGXIN_*`` variable that no setting reads (a typo is never silent)."""
    known = _env_names()
    for key in sorted(environ):
        upper = key.upper()
        if not upper.startswith(ENV_PREFIX) or upper in ENV_NOT_SETTINGS:
            continue
        if upper.startswith(ENV_NOT_SETTINGS_PREFIXES) or _known_env(upper, known):
            continue
        raise ConfigError(f"unknown environment variable {key}" + _suggestion(upper, known))


def _known_env(name: str, known: Mapping[str, tuple[str, ...]]) -> bool:
    if name in known:
        return True
    # Deeper keys (JINGXIN_DISPATCH__TARIFFS__SIM) are checked by pydantic itself once the
    # section and field are known.
    head = "__".join(name.split("__")[:2])
    return head in known and head != name and _is_container(known[head])


def _is_container(path: tuple[str, ...]) -> bool:
    model: Any = Settings
    info = None
    for part in path:
        info = model.model_fields[part]
        model = info.annotation
    text = str(info.annotation) if info else ""
    return any(word in text for word in ("dict", "list", "Settings"))


def _suggestion(name: str, known: Mapping[str, tuple[str, ...]]) -> str:
    rest = name[len(ENV_PREFIX):]
    for i, ch in enumerate(rest):  # one underscore where the nesting wants two
        if ch == "_":
            candidate = f"{ENV_PREFIX}{rest[:i]}__{rest[i + 1:]}"
            if candidate in known:
                return f"; did you mean {candidate}?"
    rests = {k[len(ENV_PREFIX):]: k for k in known}
    close = difflib.get_close_matches(rest, list(rests), n=1, cutoff=0.75)
    if close:
        return f"; did you mean {rests[close[0]]}?"
    return "; settings are JINGXIN_<SECTION>__<KEY>, e.g. JINGXIN_STORE__URL"


def _source_of(loc: tuple) -> str:
    """Where a bad setting came from: `` (JINGXIN_X__Y)`` when the environment sets that
    section, else `` (in FILE)`` when a settings file is read; empty when neither says."""
    section = f"{ENV_PREFIX}{str(loc[0]).upper()}" if loc else ""
    named = sorted(n for n in os.environ if section and (n == section or n.startswith(section + "__")))
    if named:
        return f" ({', '.join(named)})"
    try:
        path = config_file(os.environ)
    except ConfigError:
        return ""
    return f" (in {path})" if path.exists() else ""


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning validation errors into a readable :class:`ConfigError`."""
    check_environment(os.environ)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in err['loc'])}{_source_of(err['loc'])}: "
                 f"{err['msg'].removeprefix('Value error, ')}" for err in exc.errors()]  # fmt: skip
        if len(lines) == 1:  # the usual case: one line that names the setting
            raise ConfigError(f"invalid setting {lines[0]}") from exc
        raise ConfigError("invalid settings:\n" + "\n".join(f"  {line}" for line in lines)) from exc
    except (OSError, ValueError) as exc:  # an unreadable or malformed jingxin.toml
        raise ConfigError(f"cannot read the settings file: {exc}") from exc
