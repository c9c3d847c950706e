"""Staff and agents whose codes customers quote when they order (``kt10 s1234``).

A staff code attributes an order to a member of staff or an agent and their branch (the
incentive leaderboard). Codes are kept in one canonical form, upper case
(:func:`canonical_code`): subscribers' texts arrive case-folded (``s1234``) and operators'
lists say ``S1234``; both are the same person.

:func:`import_staff` reads a CSV (``code,name,branch``) and writes all of it or nothing:
every line is checked first, and an error names the file, the line and the field.
Importing the same list again changes nothing; a corrected list updates names and
branches (and re-activates a code) in place.

:func:`deactivate_staff` takes a code out of use when someone leaves: the row stays, so
past orders and the leaderboard keep their name and branch, but an order quoting the code
no longer counts for it (:func:`find_staff`). Adding or importing the code re-activates it.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import DEFAULT_TENANT_ID, HallStaff
from jingxin.errors import ImportFileError, InputError

__all__ = ["StaffImport", "StaffRow", "add_staff", "canonical_code", "deactivate_staff",
           "find_staff", "import_staff", "list_staff"]  # fmt: skip

CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,31}")
COLUMNS = ("code", "name", "branch")
MAX_TEXT = 64  # HallStaff.name and .branch


@dataclass(frozen=True, slots=True)
class StaffRow:
    """One checked line of a staff list."""

    code: str  # canonical
    name: str
    branch: str


@dataclass(frozen=True, slots=True)
class StaffImport:
    """What an import did."""

    added: int
    updated: int
    unchanged: int


def canonical_code(code: str) -> str:
    """The stored form of a staff code: trimmed, upper case."""
    return code.strip().upper()


def checked_row(*, code: str, name: str, branch: str, where: str = "staff") -> StaffRow:
    """The row with its code canonical; an :class:`InputError` naming ``where`` and the
    field if the code is not 1-32 letters, digits, ``_`` or ``-``, or a name or branch is
    empty or longer than 64 characters."""
    canonical = canonical_code(code)
    if CODE.fullmatch(canonical) is None:
        raise InputError(f"{where}: code: {code!r} is not a staff code "
                         "(1-32 letters, digits, '_' or '-', starting with a letter or digit)")
    fields = {"name": name.strip(), "branch": branch.strip()}
    for field, value in fields.items():
        if not value or len(value) > MAX_TEXT:
            raise InputError(f"{where}: {field}: must be 1-{MAX_TEXT} characters, "
                             f"got {value!r}")  # fmt: skip
    return StaffRow(code=canonical, **fields)


def find_staff(session: Session, code: str, *, tenant_id: str) -> HallStaff | None:
    """The active staff member of ``tenant_id`` with ``code`` (any case), or None."""
    row = session.get(HallStaff, canonical_code(code))
    if row is None or not row.active or row.tenant_id != tenant_id:
        return None
    return row


def add_staff(session: Session, *, code: str, name: str, branch: str,
              tenant_id: str = DEFAULT_TENANT_ID) -> HallStaff:  # fmt: skip
    """Add a staff member, or update (and re-activate) the one with this code."""
    row = checked_row(code=code, name=name, branch=branch)
    return _upsert(session, row, tenant_id=tenant_id)[0]


def list_staff(session: Session, *, branch: str | None = None, tenant_id: str | None = None,
               include_inactive: bool = False) -> list[HallStaff]:  # fmt: skip
    """The registered staff by branch and code: only the active ones unless
    ``include_inactive``, only ``branch``'s (exact name) and ``tenant_id``'s if given."""
    query = select(HallStaff).order_by(HallStaff.branch, HallStaff.code)
    if not include_inactive:
        query = query.where(HallStaff.active.is_(True))
    if branch is not None:
        query = query.where(HallStaff.branch == branch.strip())
    if tenant_id is not None:
        query = query.where(HallStaff.tenant_id == tenant_id)
    return list(session.scalars(query))


def deactivate_staff(session: Session, *, code: str,
                     tenant_id: str = DEFAULT_TENANT_ID) -> tuple[HallStaff, bool]:  # fmt: skip
    """Take the staff code ``code`` (any case) of ``tenant_id`` out of use, keeping its row;
    the row and whether it changed (False: it was inactive already). An unknown code, or
    another tenant's, is an :class:`InputError`."""
    row = session.get(HallStaff, canonical_code(code))
    if row is None or row.tenant_id != tenant_id:
        raise InputError(f"staff code {code.strip()!r}: no such staff in tenant {tenant_id!r} "
                         "(see `jingxin hall staff list --all`)")  # fmt: skip
    if not row.active:
        return row, False
    row.active = False
    session.flush()
    return row, True


def import_staff(store: Store, path: str | Path, *,
                 tenant_id: str = DEFAULT_TENANT_ID) -> StaffImport:  # fmt: skip
    """Import the staff list at ``path`` (CSV, header ``code,name,branch``, UTF-8 with or
    without a BOM): all of it in one transaction, or nothing if any line is wrong."""
    rows = read_staff_csv(Path(path))
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    with store.transaction() as session, store_errors(f"importing the staff list {path}"):
        for row in rows:
            counts[_upsert(session, row, tenant_id=tenant_id)[1]] += 1
    return StaffImport(**counts)


def read_staff_csv(path: Path) -> list[StaffRow]:
    """Every line of the staff list, checked; the first error names file, line and field."""
    from jingxin.data.textfile import read_text

    # (read_text: a GBK file from Excel is named as such, with the fix)
    text = read_text(path, what="staff list", error=ImportFileError)
    try:
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ImportFileError(f"{path}: cannot read the staff list: {exc}") from exc
    if not lines:
        raise ImportFileError(f"{path}: empty file (expected a header code,name,branch)")
    header = [cell.strip().lower() for cell in lines[0]]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ImportFileError(f"{path}:1: missing column(s) {', '.join(missing)} "
                              f"(header is {','.join(lines[0])})")  # fmt: skip
    index = {c: header.index(c) for c in COLUMNS}
    rows: list[StaffRow] = []
    seen: dict[str, int] = {}
    for number, cells in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        where = f"{path}:{number}"
        if len(cells) < len(header):
            raise InputError(f"{where}: expected {len(header)} fields, got {len(cells)}")
        row = checked_row(where=where, **{c: cells[i] for c, i in index.items()})
        if row.code in seen:
            raise InputError(f"{where}: code: {row.code} is already on line {seen[row.code]}")
        seen[row.code] = number
        rows.append(row)
    return rows


def _upsert(session: Session, row: StaffRow, *, tenant_id: str) -> tuple[HallStaff, str]:
    existing = session.scalar(select(HallStaff).where(HallStaff.code == row.code))
    if existing is None:
        staff = HallStaff(code=row.code, name=row.name, branch=row.branch, tenant_id=tenant_id,
                          active=True)  # fmt: skip
        session.add(staff)
        session.flush()
        return staff, "added"
    wanted = (row.name, row.branch, tenant_id, True)
    if (existing.name, existing.branch, existing.tenant_id, existing.active) == wanted:
        return existing, "unchanged"
    existing.name, existing.branch, existing.tenant_id, existing.active = wanted
    return existing, "updated"
