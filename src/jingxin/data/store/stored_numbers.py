"""Numbers already stored in another form than E.164: finding them and rewriting them.

Before every entry normalised numbers (jingxin < 0.x), ``optout add --msisdn 13800138000``
stored the number as typed, and policy, which looks numbers up in E.164, never saw it: a
"no" that did not mean no. :func:`scan_numbers` finds such rows in the contact evidence
tables (consents, opt-outs, blacklist, subscriber state); :func:`normalise_numbers`
rewrites them.

Crash-safety: the rewrite runs in the caller's ONE transaction (``store.transaction()``):
it commits whole or not at all, so a crash leaves the old rows, and running it again is
harmless (a second run finds nothing to do). Rows whose number does not normalise at all
are counted and left as they are: they are evidence, and nobody can say which subscriber
they meant.

Duplicates made by the rewrite are merged: two blacklist entries for one number and scope
keep the earliest (it was in force first); two subscriber states keep the newest answers,
except that a complaint flag or date from either survives (the stricter reading).
Consents and opt-outs are append-only evidence, so each row keeps its own identity.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import BlacklistEntry, Consent, OptOut, SubscriberState

TABLES = {"consents": Consent, "opt_outs": OptOut, "blacklist": BlacklistEntry,
          "subscriber_state": SubscriberState}  # fmt: skip
_SAMPLES = 3


@dataclass(frozen=True, slots=True)
class NumberScan:
    """One table's numbers that are not E.164: how many rows can be rewritten, how many
    hold no usable number, and a few examples of each (for the report)."""

    table: str
    rewritable: int
    invalid: int
    examples: tuple[str, ...] = ()

    def describe(self) -> str:
        shown = ", ".join(self.examples)
        return (f"{self.table}: {self.rewritable} row(s) not in E.164, {self.invalid} row(s) "
                "with no usable number" + (f" (e.g. {shown})" if shown else ""))  # fmt: skip


@dataclass
class NormaliseTally:
    """What :func:`normalise_numbers` did, per table."""

    rewritten: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    merged: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    invalid: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def total(self) -> int:
        return sum(self.rewritten.values())


def _forms(session: Session, model: type) -> tuple[dict[str, str], dict[str, int], dict[str, int]]:
    """(raw -> E.164 for the numbers stored in another form, rows per raw number, rows
    per number that does not normalise) of one table."""
    import pyarrow as pa

    from jingxin.data.msisdn import normalise_msisdns

    with store_errors(f"reading the numbers of {model.__tablename__}"):
        counts = dict(session.execute(
            select(model.msisdn, func.count()).group_by(model.msisdn)).all())  # fmt: skip
    raw = list(counts)
    if not raw:
        return {}, {}, {}
    result = normalise_msisdns(pa.array(raw, pa.string()))
    mapping: dict[str, str] = {}
    invalid: dict[str, int] = {}
    for text, e164 in zip(raw, result.e164.to_pylist(), strict=True):
        if e164 is None:
            invalid[text] = counts[text]
        elif e164 != text:
            mapping[text] = e164
    return mapping, {k: counts[k] for k in mapping}, invalid


def scan_numbers(session: Session) -> list[NumberScan]:
    """Every contact table's numbers not stored in E.164 (clean tables included)."""
    scans = []
    for name, model in TABLES.items():
        mapping, rows, invalid = _forms(session, model)
        examples = [f"{raw!r} -> {e164}" for raw, e164 in list(mapping.items())[:_SAMPLES]]
        examples += [f"{raw!r} (unusable)" for raw in list(invalid)[:_SAMPLES]]
        scans.append(NumberScan(name, sum(rows.values()), sum(invalid.values()), tuple(examples)))
    return scans


def normalise_numbers(session: Session) -> NormaliseTally:
    """Rewrite every contact row's number into E.164 in the caller's transaction."""
    tally = NormaliseTally()
    for name, model in TABLES.items():
        mapping, _rows, invalid = _forms(session, model)
        tally.invalid[name] = sum(invalid.values())
        if not mapping:
            continue
        with store_errors(f"rewriting the numbers of {name}"):
            if model is BlacklistEntry:
                tally.merged[name] = _merge_blacklist(session, mapping)
            elif model is SubscriberState:
                tally.merged[name] = _merge_states(session, mapping)
            for raw, e164 in mapping.items():
                result = session.execute(
                    update(model).where(model.msisdn == raw).values(msisdn=e164),
                    execution_options={"synchronize_session": False})  # fmt: skip
                tally.rewritten[name] += int(result.rowcount)  # type: ignore[attr-defined]
            session.flush()
    return tally


def _merge_blacklist(session: Session, mapping: dict[str, str]) -> int:
    """Delete all but the earliest entry of each (number, scope); returns how many went."""
    numbers = set(mapping) | set(mapping.values())
    entries = session.execute(
        select(BlacklistEntry.id, BlacklistEntry.msisdn, BlacklistEntry.tenant_id,
               BlacklistEntry.added_at).where(BlacklistEntry.msisdn.in_(numbers))
    ).all()  # fmt: skip
    groups: dict[tuple[str, str | None], list] = defaultdict(list)
    for entry in entries:
        groups[(mapping.get(entry.msisdn, entry.msisdn), entry.tenant_id)].append(entry)
    doomed = [e.id for group in groups.values()
              for e in sorted(group, key=lambda e: (e.added_at, e.id))[1:]]  # fmt: skip
    if doomed:
        session.execute(delete(BlacklistEntry).where(BlacklistEntry.id.in_(doomed)),
                        execution_options={"synchronize_session": False})  # fmt: skip
    return len(doomed)


def _merge_states(session: Session, mapping: dict[str, str]) -> int:
    """Fold the states of one number into its newest row; returns how many rows went."""
    numbers = set(mapping) | set(mapping.values())
    states = list(session.scalars(
        select(SubscriberState).where(SubscriberState.msisdn.in_(numbers))))  # fmt: skip
    groups: dict[str, list[SubscriberState]] = defaultdict(list)
    for state in states:
        groups[mapping.get(state.msisdn, state.msisdn)].append(state)
    gone = 0
    for group in groups.values():
        if len(group) < 2:
            continue
        group.sort(key=lambda s: s.updated_at)
        keep, older = group[-1], group[:-1]
        complaints = [s.last_complaint_at for s in group if s.last_complaint_at is not None]
        sensitive = any(s.complaint_sensitive for s in group)
        for state in older:
            session.delete(state)
        session.flush()  # the older rows go before the kept one may take their key
        keep.complaint_sensitive = sensitive
        keep.last_complaint_at = max(complaints) if complaints else None
        gone += len(older)
    session.flush()
    return gone
