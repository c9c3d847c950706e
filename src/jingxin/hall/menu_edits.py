"""Hall menus edited over the API: one YAML file per hall, beside the operator's menu file.

The menu file (``[hall] menu_path``, else the packaged one) is the operator's: it says
which halls there are, at which service numbers, for which tenants. An edit of one hall
(``PUT /api/v1/hall/menus/{service_number}``) is kept as
``<home>/var/hall/menus/<service_number>.yaml``, written whole to a temporary file in that
directory and renamed over the old one (:func:`save_edit`): a reader sees the old menu or
the new one, never half of either. The menu in use (:func:`effective_menu`) is the menu
file's halls, each replaced by its edit when there is one.

An edit replaces a hall's texts, zones, rewards and survey; it cannot add a hall, move one
to another number or give it to another tenant - that stays the menu file's. An edit whose
hall has left the menu file, or changed tenant there, is not used (and said so).

An edit is checked by :func:`parse_hall`, with the validation of the menu file itself
(:class:`~jingxin.hall.menu.HallMenu`) and the text checks of ``jingxin hall menu check``;
every problem names its field and YAML line.

The worker's hall picks an edit up by itself (:class:`MenuSource`): at its next batch of
MO, it looks at the directory (at most every :data:`RELOAD_SECONDS`) and rebuilds the menu
when a file changed there. An edit that does not validate when it is read (a file changed
by hand) stops the worker at start, like a bad menu file; while running it is logged at
ERROR and the menu before it is kept.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from jingxin.config import Settings
from jingxin.errors import ConfigError, InputError
from jingxin.hall.menu import HallMenu, Menu, load_menu, read_menu_text, text_problems

log = logging.getLogger(__name__)

RELOAD_SECONDS = 2.0  # the worker looks for changed edits at most this often
MAX_MENU_BYTES = 64 * 1024


def edits_dir(settings: Settings) -> Path:
    """Where edited halls are kept: ``<home>/var/hall/menus``."""
    return settings.var_dir() / "hall" / "menus"


# ----------------------------------------------------------------------------- checking


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an edited hall: the field (``zones.42.discount_pct``; ``yaml``
    for the document itself), its line in the YAML text (when known), what is wrong."""

    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        field = "" if self.field == "yaml" else f"{self.field}: "
        return f"{where}{field}{self.message}"


class MenuRefused(InputError):
    """An edited hall that does not validate; ``problems`` says every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def parse_hall(text: str, *, service_number: str, tenant: str) -> HallMenu:
    """The hall in YAML ``text`` - one hall's mapping (the entry of a menu file), or a
    menu file of that one hall - for ``service_number`` of ``tenant``: either may be left
    out of the text, neither may differ. Raises :class:`MenuRefused` naming every problem."""
    if len(text.encode()) > MAX_MENU_BYTES:
        raise MenuRefused([Problem("yaml", f"the menu is over {MAX_MENU_BYTES // 1024} KB")])
    try:
        root = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise MenuRefused([Problem("yaml", f"invalid YAML: {getattr(exc, 'problem', None) or exc}",
                                   None if mark is None else mark.line + 1)]) from exc  # fmt: skip
    raw, base = _one_hall(raw)
    problems: list[Problem] = []
    raw = dict(raw)
    for name, wanted in (("service_number", service_number), ("tenant", tenant)):
        given = raw.setdefault(name, wanted)
        if str(given) != wanted:
            problems.append(Problem(name, f"{given!r}: this hall is {wanted!r}; an edit cannot "
                                    f"change its {name.replace('_', ' ')}",
                                    _line(root, (*base, name))))  # fmt: skip
    try:
        hall = HallMenu.model_validate(raw)
    except ValidationError as exc:
        problems += [_problem(error, root, base) for error in exc.errors()]
        raise MenuRefused(problems) from exc
    problems += [Problem(f"texts.{key}", message, _line(root, (*base, "texts", key)))
                 for key, message in text_problems(hall)]  # fmt: skip
    if problems:
        raise MenuRefused(problems)
    return hall


def _one_hall(raw: Any) -> tuple[Mapping[str, Any], tuple[Any, ...]]:
    """The hall's mapping in a parsed document, and where it sits in it."""
    if isinstance(raw, Mapping) and "halls" in raw:
        halls, base = raw["halls"], ("halls",)
    elif isinstance(raw, list):
        halls, base = raw, ()
    else:
        halls, base = [raw], None
    if not isinstance(halls, list) or len(halls) != 1:
        raise MenuRefused([Problem("yaml", "give one hall (its service_number, name, menu, "
                                   "zones, ...), not a list of halls")])  # fmt: skip
    if not isinstance(halls[0], Mapping):
        raise MenuRefused([Problem("yaml", "expected a hall: a mapping of service_number, "
                                   "name, menu, zones, rewards, survey, texts")])  # fmt: skip
    return halls[0], () if base is None else (*base, 0)


def _problem(error: Mapping[str, Any], root: Any, base: tuple[Any, ...]) -> Problem:
    loc = tuple(error.get("loc", ()))
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    return Problem(".".join(str(p) for p in loc) or "(the hall)", message,
                   _line(root, (*base, *loc)))  # fmt: skip


def _line(root: Any, loc: tuple[Any, ...]) -> int | None:
    from jingxin.data.textfile import yaml_line

    return None if root is None else yaml_line(root, loc)


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class Edit:
    """One edited hall as found on disk: its text and, when it is usable, its hall."""

    service_number: str
    text: str
    updated_at: datetime
    hall: HallMenu | None  # None: not used, ``problem`` says why
    problem: str | None = None


def read_edits(directory: Path, base: Menu) -> dict[str, Edit]:
    """The edits in ``directory`` by service number, each checked against the hall of
    ``base`` it replaces (an edit without one, or of another tenant, is not used)."""
    edits: dict[str, Edit] = {}
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else ():
        number = path.stem
        try:
            text = path.read_text("utf-8")
            updated = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except (OSError, UnicodeDecodeError) as exc:
            log.error("hall menu edit %s cannot be read: %s", path, exc)
            continue
        owner = base.hall_at(number)
        if owner is None:
            edits[number] = Edit(number, text, updated, None,
                                 f"the menu file has no hall at {number}")  # fmt: skip
            continue
        try:
            hall = parse_hall(text, service_number=number, tenant=owner.tenant)
        except MenuRefused as exc:
            edits[number] = Edit(number, text, updated, None, f"{path}: {exc}")
            continue
        edits[number] = Edit(number, text, updated, hall)
    return edits


def with_edits(base: Menu, edits: Mapping[str, Edit], *, strict: bool = False) -> Menu:
    """``base`` with each hall that has a usable edit replaced by it. ``strict``: an edit
    that is not usable (but for a hall the menu file no longer has) is a ConfigError."""
    bad = [e.problem for e in edits.values()
           if e.hall is None and base.hall_at(e.service_number) is not None]  # fmt: skip
    if strict and bad:
        raise ConfigError("hall menu edit does not validate: " + "; ".join(map(str, bad)))
    if not any(e.hall is not None for e in edits.values()):
        return base
    halls = tuple(edits[h.service_number].hall or h if h.service_number in edits else h
                  for h in base.halls)  # fmt: skip
    return Menu(halls, source=f"{base.source} + edits")


def effective_menu(settings: Settings, *, strict: bool = False) -> Menu:
    """The halls in use: the menu file's, with the edits of :func:`edits_dir` applied."""
    base = load_menu(settings.hall.menu_path)
    return with_edits(base, read_edits(edits_dir(settings), base), strict=strict)


def base_hall_yaml(settings: Settings, service_number: str) -> str | None:
    """The YAML of the menu file's hall at ``service_number`` (its entry, re-emitted: the
    file's comments are not kept), or None."""
    text, _ = read_menu_text(settings.hall.menu_path)
    raw = yaml.safe_load(text)
    halls = raw.get("halls") if isinstance(raw, Mapping) else raw
    for entry in halls if isinstance(halls, list) else ():
        if isinstance(entry, Mapping) and str(entry.get("service_number")) == service_number:
            return yaml.dump(dict(entry), Dumper=_Dumper, allow_unicode=True, sort_keys=False,
                             default_flow_style=False, width=100)  # fmt: skip
    return None


class _Dumper(yaml.SafeDumper):
    """Multi-line texts as literal blocks (``menu: |``), as a person writes them."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


# ----------------------------------------------------------------------------- writing


def save_edit(settings: Settings, *, service_number: str, text: str) -> Path:
    """Keep ``text`` (already checked by :func:`parse_hall`) as the edit of the hall at
    ``service_number``: a temporary file in the directory, flushed, renamed over the old."""
    directory = edits_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{service_number}.yaml"
    handle, temporary = tempfile.mkstemp(prefix=f".{service_number}.", suffix=".tmp",
                                         dir=directory)  # fmt: skip
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text if text.endswith("\n") else text + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


# ----------------------------------------------------------------------------- the worker


class MenuSource:
    """The menu a running hall answers with: the menu file read once, the edits read again
    when one changed (looked for at most every ``every`` seconds, when asked)."""

    def __init__(self, settings: Settings, *, every: float = RELOAD_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.base = load_menu(settings.hall.menu_path)
        self.directory = edits_dir(settings)
        self.every = every
        self.clock = clock
        self._signature = _signature(self.directory)
        self.menu = with_edits(self.base, read_edits(self.directory, self.base), strict=True)
        self._looked = clock()

    def current(self) -> Menu:
        """The menu now: the last one built, or a new one when an edit changed."""
        now = self.clock()
        if now - self._looked < self.every:
            return self.menu
        self._looked = now
        signature = _signature(self.directory)
        if signature == self._signature:
            return self.menu
        self._signature = signature
        try:
            self.menu = with_edits(self.base, read_edits(self.directory, self.base), strict=True)
        except ConfigError as exc:
            log.error("%s; the hall keeps answering with the menu before it", exc)
            return self.menu
        log.info("hall menu edits reloaded from %s", self.directory)
        return self.menu


def _signature(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when an edit is written: each file's name, mtime and size."""
    try:
        entries = [(e.name, e.stat()) for e in os.scandir(directory)
                   if e.name.endswith(".yaml") and e.is_file()]  # fmt: skip
    except OSError:
        return ()
    return tuple(sorted((name, st.st_mtime_ns, st.st_size) for name, st in entries))
