"""What ``jingxin campaign run SPEC.yaml`` reads: the spec, its audience file, and the
fingerprint that says whether the same spec already ran.

A spec (YAML, :class:`CampaignSpec`) names the audience file (CSV or Parquet: a msisdn
column plus template variables), the template and the tenant. It may add an
``experiment`` (:class:`ExperimentSpec`: a hold-out, variants with their own templates
instead of the top-level one, a test share sent first), a ``link`` (the target of each
message's short link) and a ``send_time`` (:class:`SendTimeSpec`: each subscriber's best
hour, a random one, or both as two arms). Its fingerprint is the SHA-256 of its name,
tenant, category, template (code, or inline body and variables), experiment, link, send
time and the audience file's bytes: running the same spec twice is refused unless asked
again.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from jingxin.data.store.models import DEFAULT_TENANT_ID
from jingxin.errors import ImportFileError, SpecError


class TemplateSpec(BaseModel):
    """Either ``code`` - the approved version of a catalogue template (the normal way: it has
    been through review and approval) - or an inline ``body`` with its ``variables``, which
    must pass the automatic content review before anything is queued."""

    model_config = ConfigDict(extra="forbid")
    code: str | None = None
    body: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> TemplateSpec:
        if (self.code is None) == (self.body is None):
            raise ValueError("give either code (an approved catalogue template) or body")
        return self


class AudienceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Path
    msisdn_column: str = "msisdn"


MAX_HOLDOUT = 0.5
ARM_NAME_LENGTH = 32  # experiment_assignments.arm and messages.arm
WINNER_METRICS = ("clicked", "replied", "ordered")
SPLIT_ARMS = ("best-time", "random-time")


class VariantSpec(BaseModel):
    """One arm of an A/B/n test: its name, its template and its share of the treated."""

    model_config = ConfigDict(extra="forbid")
    name: str
    template: TemplateSpec
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)

    @field_validator("name")
    @classmethod
    def _short_name(cls, name: str) -> str:
        name = name.strip()
        if not name or len(name) > ARM_NAME_LENGTH:
            raise ValueError(f"{name!r}: a variant name has 1 to {ARM_NAME_LENGTH} characters")
        if name.lower() == "holdout":
            raise ValueError("'holdout' is the name of the hold-out arm; call the variant "
                             "something else")  # fmt: skip
        return name


class ExperimentSpec(BaseModel):
    """``experiment:``. ``holdout``: the share of the audience that gets nothing, to measure
    against (in (0, 0.5], e.g. 0.05 or 5%, or ``none``; left out: the ``[analytics]
    holdout`` setting for a marketing campaign, none for otp and notification). ``variants``: arms
    with their own templates. ``test_share``: send only this share of the treated now;
    ``jingxin campaign promote`` sends the winner (by ``winner_metric``) to the rest."""

    model_config = ConfigDict(extra="forbid")
    holdout: float | Literal["none"] | None = None
    variants: list[VariantSpec] = Field(default_factory=list)
    test_share: float | None = Field(default=None, allow_inf_nan=False)
    winner_metric: Literal["clicked", "replied", "ordered"] = "clicked"
    # The test phase's length: `jingxin scheduler` then promotes the best arm by itself.
    promote_after_hours: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @field_validator("holdout", mode="before")
    @classmethod
    def _holdout(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
            return None if value is None else "none"
        if isinstance(value, str) and value.strip().endswith("%"):  # "5%", as staff write it
            try:
                value = float(value.strip()[:-1]) / 100
            except ValueError:
                pass  # refused below, as written
        if isinstance(value, bool) or not isinstance(value, int | float):
            # ValueError: pydantic reports it with the field (a TypeError would escape).
            raise ValueError(f"{value!r}: give a share in (0, {MAX_HOLDOUT}] or none")  # noqa: TRY004
        if value == 0:
            raise ValueError("0 leaves nothing to compare against; use none to send to "
                             "everyone without measuring")  # fmt: skip
        if not 0 < value <= MAX_HOLDOUT:  # also NaN
            raise ValueError(f"{value!r}: the hold-out is a share of the audience in "
                             f"(0, {MAX_HOLDOUT}] (or none); {value!r} would hold out "
                             f"{'everyone' if value >= 1 else 'more than it sends to'}")  # fmt: skip
        return float(value)

    @field_validator("variants")
    @classmethod
    def _unique_names(cls, variants: list[VariantSpec]) -> list[VariantSpec]:
        names = [v.name for v in variants]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"variant {twice[0]!r} is named more than once")
        return variants

    @field_validator("test_share")
    @classmethod
    def _test_share(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value < 1:
            raise ValueError(f"{value!r}: the share of the treated sent first is above 0 and "
                             "below 1 (leave it out to send to everyone now)")  # fmt: skip
        return value

    @model_validator(mode="after")
    def _phase_needs_a_test(self) -> ExperimentSpec:
        if self.promote_after_hours is not None and self.test_share is None:
            raise ValueError("promote_after_hours: the test phase of what? give test_share "
                             "too (the share of the treated sent first)")  # fmt: skip
        return self

    def holdout_share(self, *, category: str, default: float) -> float:
        """The hold-out this campaign uses: its own, else ``default`` (the ``[analytics]``
        setting) for marketing and none for otp and notification."""
        if self.holdout == "none":
            return 0.0
        if self.holdout is not None:
            return self.holdout
        return default if category == "marketing" else 0.0


class SendTimeSpec(BaseModel):
    """``send_time:``. ``mode`` best: each subscriber at the hour they answer most (learnt
    from clicks and replies), random: a random time in the window, split: half each, as
    the arms ``best-time`` and ``random-time`` - so the optimisation is measured against
    chance in the same campaign. ``window``: local times; ``day``: default the campaign's
    day (the next one if the window is already over)."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["best", "random", "split"] = "best"
    window: tuple[time, time] = (time(10, 0), time(20, 0))
    day: date | None = None

    @field_validator("window", mode="before")
    @classmethod
    def _quoted_times(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and any(isinstance(v, int) for v in value):
            # YAML 1.1 reads an unquoted 10:00 as the number 600.
            raise ValueError("write the times in quotes, e.g. [\"10:00\", \"20:00\"]")
        return value

    @field_validator("window")
    @classmethod
    def _ordered(cls, window: tuple[time, time]) -> tuple[time, time]:
        if window[1] == time(0, 0):  # "20:00"-"00:00": to midnight, as plan_times reads it
            if window[0] == time(0, 0):
                raise ValueError("00:00-00:00 is empty")
            return window
        if window[0] >= window[1]:
            raise ValueError(f"{window[0]:%H:%M} is not before {window[1]:%H:%M}")
        return window


class CampaignSpec(BaseModel):
    """What ``jingxin campaign run SPEC.yaml`` reads. ``template`` is required unless the
    experiment has ``variants``, each with its own (then it is refused)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    tenant: str = DEFAULT_TENANT_ID  # the operator itself, created on first use
    category: str = "marketing"
    # Before ``template``: its check reads the experiment's variants.
    experiment: ExperimentSpec = Field(default_factory=ExperimentSpec)
    template: TemplateSpec | None = Field(default=None, validate_default=True)
    audience: AudienceSpec
    signature: str | None = None  # None: the tenant's
    sender: str | None = None  # the service number it goes out from (None: the channel's)
    start_at: datetime | None = None
    validity_hours: float = Field(default=24.0, gt=0)
    tariff: float | None = None  # price per part for the cost estimate
    link: str | None = None  # the target of each message's short link ({{ link }})
    send_time: SendTimeSpec | None = None

    @field_validator("template")
    @classmethod
    def _template_or_variants(cls, template: TemplateSpec | None,
                              info: ValidationInfo) -> TemplateSpec | None:  # fmt: skip
        experiment = info.data.get("experiment")
        if experiment is None:  # the experiment's own error is reported
            return template
        if experiment.variants and template is not None:
            raise ValueError("give either template or experiment.variants (each variant "
                             "names its template), not both")  # fmt: skip
        if not experiment.variants and template is None:
            raise ValueError("Field required (or experiment.variants, each with a template)")
        return template

    @field_validator("link")
    @classmethod
    def _link(cls, link: str | None) -> str | None:
        if link is None:
            return None
        from jingxin.analytics.links import check_target
        from jingxin.errors import InputError

        try:
            return check_target(link, where="link")
        except InputError as exc:  # as a ValueError pydantic reports it with the file
            raise ValueError(str(exc).removeprefix("link: ")) from None

    @model_validator(mode="after")
    def _combinations(self) -> CampaignSpec:
        experiment = self.experiment
        if self.category == "otp" and (experiment.holdout not in (None, "none")
                                       or experiment.test_share is not None):  # fmt: skip
            raise ValueError("experiment: an otp campaign goes to everyone who asked; it takes "
                             "no hold-out and no test share")  # fmt: skip
        if self.send_time is not None:
            if self.start_at is not None:
                raise ValueError("give either start_at or send_time, not both")
            if self.send_time.mode == "split" and experiment.variants:
                raise ValueError("send_time.mode split makes the arms best-time and "
                                 "random-time; it cannot be combined with experiment.variants")  # fmt: skip
        return self

    def arm_names(self) -> list[str]:
        """The arms the audience is split into (the hold-out aside)."""
        if self.experiment.variants:
            return [v.name for v in self.experiment.variants]
        if self.send_time is not None and self.send_time.mode == "split":
            return list(SPLIT_ARMS)
        return ["main"]


def load_spec(path: Path) -> CampaignSpec:
    """Read and validate a spec; errors name the file and the field."""
    import yaml

    from jingxin.data.textfile import read_text

    text = read_text(path, what="campaign spec", error=SpecError)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: cannot read the campaign spec: {exc}") from exc
    try:
        spec = CampaignSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{path}: invalid campaign spec:\n{spec_errors(exc)}") from exc
    if not spec.audience.path.is_absolute():
        spec.audience.path = path.parent / spec.audience.path
    return spec


def spec_errors(exc: ValidationError) -> str:
    """One line per error: the field's path and what is wrong with it."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {message}" if where else f"  {message}")
    return "\n".join(lines)


def read_audience(spec: AudienceSpec) -> pa.Table:
    """The audience; a missing file or column is an ImportFileError naming it."""
    path = spec.path
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            import pyarrow.csv as pcsv

            from jingxin.data.textfile import check_encoding

            codec = check_encoding(path, what="audience file", error=ImportFileError)
            table = pcsv.read_csv(
                path, read_options=pcsv.ReadOptions(encoding="utf8" if codec == "utf-8" else codec),
                convert_options=pcsv.ConvertOptions(
                    column_types={spec.msisdn_column: pa.string()}, strings_can_be_null=True))  # fmt: skip
    except (OSError, pa.ArrowInvalid) as exc:
        raise ImportFileError(f"{path}: cannot read the audience: {exc}") from exc
    if spec.msisdn_column not in table.column_names:
        raise ImportFileError(
            f"{path}: no column {spec.msisdn_column!r} (columns: {', '.join(table.column_names)})"
        )
    return table


def fingerprint(spec: CampaignSpec) -> str:
    """SHA-256 of what makes two runs the same campaign: name, tenant, category,
    template, experiment, link, send time and the audience file's content (not its path
    or modification time). A spec without experiment, link or send time hashes as it did
    before they existed, so its earlier runs still count."""
    digest = hashlib.sha256()
    template = spec.template.model_dump(mode="json") if spec.template is not None else None
    what: list[Any] = [spec.name, spec.tenant, spec.category, template]
    extra = {"experiment": spec.experiment.model_dump(mode="json", exclude_defaults=True),
             "link": spec.link,
             "send_time": spec.send_time.model_dump(mode="json") if spec.send_time else None}  # fmt: skip
    if extra["experiment"] or spec.link is not None or spec.send_time is not None:
        what.append(extra)
    digest.update(json.dumps(what, sort_keys=True, ensure_ascii=False).encode())
    try:
        with spec.audience.path.open("rb") as audience:
            for block in iter(lambda: audience.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ImportFileError(f"{spec.audience.path}: cannot read the audience: {exc}") from exc
    return digest.hexdigest()
