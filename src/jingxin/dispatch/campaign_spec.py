"""What ``jingxin campaign run SPEC.yaml`` reads: the spec, its audience file, and the
fingerprint that says whether the same spec already ran.

A spec (YAML, :class:`CampaignSpec`) names the audience file (CSV or Parquet: a msisdn
column plus template variables), the template and the tenant. Its fingerprint is the
SHA-256 of its name, tenant, category, template (code, or inline body and variables) and
the audience file's bytes: running the same spec twice is refused unless asked again.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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


class CampaignSpec(BaseModel):
    """What ``jingxin campaign run SPEC.yaml`` reads."""

    model_config = ConfigDict(extra="forbid")
    name: str
    tenant: str = DEFAULT_TENANT_ID  # the operator itself, created on first use
    category: str = "marketing"
    template: TemplateSpec
    audience: AudienceSpec
    signature: str | None = None  # None: the tenant's
    sender: str | None = None  # the service number it goes out from (None: the channel's)
    start_at: datetime | None = None
    validity_hours: float = Field(default=24.0, gt=0)
    tariff: float | None = None  # price per part for the cost estimate


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
        lines = [
            f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        ]
        raise SpecError(f"{path}: invalid campaign spec:\n" + "\n".join(lines)) from exc
    if not spec.audience.path.is_absolute():
        spec.audience.path = path.parent / spec.audience.path
    return spec


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
    template and the audience file's content (not its path or modification time)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([spec.name, spec.tenant, spec.category,
                              spec.template.model_dump(mode="json")],
                             sort_keys=True, ensure_ascii=False).encode())  # fmt: skip
    try:
        with spec.audience.path.open("rb") as audience:
            for block in iter(lambda: audience.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ImportFileError(f"{spec.audience.path}: cannot read the audience: {exc}") from exc
    return digest.hexdigest()
