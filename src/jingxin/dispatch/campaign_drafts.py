"""Campaigns drafted before they run - what the API's campaign wizard makes - and their
scheduling.

``jingxin campaign run SPEC.yaml`` checks a spec and runs it at once. A draft is the same
spec (:class:`~jingxin.dispatch.campaign_spec.CampaignSpec`, as JSON) kept in a campaigns
row of status ``draft`` until it is scheduled; nothing is assigned or queued before. Two
things differ from a spec file, because the spec comes over the network:

- the audience is a file in the tenant's own audience folder,
  ``<home>/var/audiences/<tenant>/`` (``audience.path`` relative to it: nothing else on
  the server's disk is read), or a segment spec (``audience.segment``, counted in the
  warehouse: the operator's only) that is exported there, as
  ``campaign-<id>.parquet``, when the campaign is scheduled;
- the tenant is the caller's (a ``tenant`` naming another is refused), and an
  enterprise's campaign goes out under its own signature (``signature`` may only repeat
  it).

Scheduling runs the draft (:func:`~jingxin.dispatch.campaign.run_campaign` on the draft's
own row, so its id stays): the hold-out and arms are drawn, policy decides and the
messages are queued at once. With ``at`` (the spec's ``start_at``) they wait in the
outbox until then - the worker claims a message only when it is due - so a campaign is
scheduled through the same outbox as every message, no second scheduler. The audience is
read and policy decided when it is scheduled; the send-time re-check at claim still stops
a number that opted out or was blacklisted meanwhile.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from jingxin.dispatch.campaign_spec import CampaignSpec, read_audience, spec_errors
from jingxin.errors import ImportFileError, SpecError

AUDIENCES = "audiences"  # under the var directory: one folder per tenant
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Draft:
    """A draft spec, checked: ``spec`` validated (its audience path resolved in the
    tenant's folder; for a segment, where the segment will be exported), ``segment`` the
    audience segment's spec (else None), ``data`` what the campaigns row keeps (the spec
    as given, the tenant filled in)."""

    spec: CampaignSpec
    segment: dict[str, Any] | None
    data: dict[str, Any]
    folder: Path

    def audience_name(self) -> str:
        """The audience as the tenant knows it: the file in its folder, or the segment."""
        if self.segment is not None:
            return f"segment {self.segment.get('name', '')}".strip()
        return str(self.spec.audience.path.relative_to(self.folder))


def audience_folder(var_dir: Path, tenant_id: str) -> Path:
    """``<var>/audiences/<tenant>``: the only place a drafted campaign's audience file is
    read from."""
    if not _SAFE_NAME.fullmatch(tenant_id):
        raise SpecError(f"tenant {tenant_id!r}: its id cannot name an audience folder")
    return var_dir / AUDIENCES / tenant_id


def parse_draft(data: Mapping[str, Any], *, tenant_id: str, var_dir: Path,
                own_signature: str | None = None, operator: bool = False) -> Draft:  # fmt: skip
    """Validate a drafted spec for ``tenant_id``; a problem is a SpecError naming the field
    (``audience.path: ...``). ``own_signature``: the tenant's, which an enterprise's spec may
    only repeat (``operator``: the operator's staff may sign as they like, as in a file)."""
    from jingxin.content.envelope import signature_mark

    if not isinstance(data, Mapping):
        raise SpecError("spec: a campaign spec is a mapping")
    given = dict(data)
    if given.get("tenant") not in (None, tenant_id):
        raise SpecError(f"tenant: you act for tenant {tenant_id!r}; leave tenant out")
    given["tenant"] = tenant_id
    signature = given.get("signature")
    if signature is not None and not operator and own_signature is not None:
        try:
            same = signature_mark(str(signature)) == signature_mark(own_signature)
        except ValueError:
            same = False
        if not same:
            raise SpecError(f"signature: your campaigns go out under your own signature "
                            f"{signature_mark(own_signature)}; leave signature out")  # fmt: skip
    folder = audience_folder(var_dir, tenant_id)
    audience = given.get("audience")
    if not isinstance(audience, Mapping):
        raise SpecError("audience: give {path: FILE} (a file in your audience folder) or "
                        "{segment: {...}} (a segment spec)")  # fmt: skip
    audience = dict(audience)
    segment = audience.pop("segment", None)
    if segment is not None:
        if not isinstance(segment, Mapping):
            raise SpecError("audience.segment: a segment spec is a mapping")
        if "path" in audience:
            raise SpecError("audience: give either path or segment, not both")
        segment = dict(segment)
        audience["path"] = str(folder / "segment.parquet")  # where it goes when scheduled
    else:
        audience["path"] = str(_inside(folder, audience.get("path")))
    try:
        spec = CampaignSpec.model_validate({**given, "audience": audience})
    except ValidationError as exc:
        raise SpecError(f"invalid campaign spec:\n{spec_errors(exc)}") from exc
    return Draft(spec=spec, segment=segment, data=given, folder=folder)


def _inside(folder: Path, path: Any) -> Path:
    """``path`` (relative) in ``folder``; absolute paths and ``..`` are refused."""
    if not isinstance(path, str) or not path.strip():
        raise SpecError("audience.path: the name of a file in your audience folder, "
                        "e.g. renewal.parquet")  # fmt: skip
    if "\x00" in path or len(path) > 255:
        raise SpecError("audience.path: not a file name")
    relative = Path(path.strip())
    if relative.is_absolute() or ".." in relative.parts:
        raise SpecError(f"audience.path: {path!r}: a file in your audience folder, named "
                        "relative to it (no absolute path, no ..)")  # fmt: skip
    return folder / relative


def draft_audience(draft: Draft, *, segment_table: Callable[[dict[str, Any]], pa.Table] |
                   None = None) -> pa.Table:  # fmt: skip
    """The draft's audience as a table: its file (a missing or unreadable one is an
    ImportFileError naming it as the tenant knows it), or ``segment_table(segment)``."""
    if draft.segment is not None:
        if segment_table is None:
            raise SpecError("audience.segment: a segment audience needs the warehouse")
        return segment_table(draft.segment)
    name = draft.audience_name()
    try:
        there = draft.spec.audience.path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, say
        there = False
    if not there:
        raise ImportFileError(f"audience.path: there is no {name} in your audience folder")
    try:
        return read_audience(draft.spec.audience)
    except ImportFileError as exc:
        raise ImportFileError(str(exc).replace(str(draft.folder) + "/", "")) from None


def with_start(draft: Draft, at: datetime | None, *, audience: Path | None = None) -> CampaignSpec:
    """The draft's spec to run: starting ``at`` (its own ``start_at`` when None), with
    ``audience`` (the exported segment) as its file. The spec's own rules apply again
    (``start_at`` with ``send_time`` is refused)."""
    data = draft.spec.model_dump(mode="python")
    if at is not None:
        data["start_at"] = at
    if audience is not None:
        data["audience"]["path"] = audience
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"invalid campaign spec:\n{spec_errors(exc)}") from exc


def segment_file(draft: Draft, campaign_id: int) -> Path:
    """Where a segment audience is exported when campaign ``campaign_id`` is scheduled."""
    return draft.folder / f"campaign-{campaign_id}.parquet"
