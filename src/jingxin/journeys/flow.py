"""Multi-step journeys: the YAML file, checked and compiled into a :class:`Flow`.

A journey file says who enters, how many are held out, when they leave, and the steps::

    name: renewal_nudge
    tenant: operator
    category: marketing
    entry: {trigger: renewal}           # a trigger of the daily scan, or {audience: file.csv}
    holdout: 0.1                        # 0..0.5 (or 10%) held out, by a hash of the number
                                        # (experiment journey:<name>); none: no hold-out;
                                        # unset: [analytics] holdout if marketing, else none
    exit_on: [ordered]                  # leave at once when this happened since entry
    goal: ordered                       # what `jingxin flow status` counts as converted
    steps:
      - {id: offer, type: send, template: care.plan_renewal, variables: {offer: 返30元}}
      - {id: pause, type: wait, days: 3}
      - id: check
        type: branch
        on:                             # the first rule (in this order) that matched wins
          - {event: ordered, within: {days: 3}, goto: won}
          - {event: replied, within: {days: 3}, goto: won}
          - {event: none, within: {days: 3}, goto: reminder}
        default: reminder
      - {id: reminder, type: send, template: care.plan_fit, next: lost}
      - {id: won, type: exit, outcome: converted}
      - {id: lost, type: exit, outcome: no_response}

Steps follow one another in the file unless ``next`` (send, wait) or a branch says where
to go; a step with nothing after it ends the journey (``completed``). Branch events:
``replied`` (an MO attributed to a message of this journey), ``ordered`` (a placed hall
order), ``claimed`` (a gift claim), ``none`` (its window passed with none of them).

Every problem is reported at once, each naming the file, the line (from the YAML nodes'
marks) and the field: an unknown step type, a goto to no step, a loop with no wait in it
(it would send without pause), a template with no approved version (with a store).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jingxin.data.store.models.tenants import DEFAULT_TENANT_ID
from jingxin.errors import SpecError

if TYPE_CHECKING:
    from jingxin.data.store.engine import Store

EVENTS = ("replied", "ordered", "claimed")  # what a subscriber can do; "none": nothing
STEP_TYPES = ("send", "wait", "branch", "exit")
RUN_PREFIX = "flow:"  # journey_runs.trigger of a journey's daily enrolment: "flow:<name>"
NAME = r"^[a-z][a-z0-9_-]{0,26}$"  # "flow:" + name fits journey_runs.trigger (32)
STEP_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,31}$"

Where = tuple[str | int, ...]


class FlowError(SpecError):
    """A journey file that does not validate; ``problems`` lists every ``file:line: field: why``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Send:
    id: str
    template: str
    variables: Mapping[str, Any]
    next: str | None
    line: int


@dataclass(frozen=True, slots=True)
class Wait:
    id: str
    duration: timedelta
    next: str | None
    line: int


@dataclass(frozen=True, slots=True)
class Rule:
    event: str  # one of EVENTS or "none"
    within: timedelta
    goto: str
    line: int


@dataclass(frozen=True, slots=True)
class Branch:
    id: str
    rules: tuple[Rule, ...]
    default: str
    line: int

    @property
    def deadline(self) -> timedelta:
        """How long after its anchor the branch may still wait for an event."""
        return max(rule.within for rule in self.rules)


@dataclass(frozen=True, slots=True)
class Exit:
    id: str
    outcome: str
    line: int


Step = Send | Wait | Branch | Exit


@dataclass(frozen=True, slots=True)
class Entry:
    """Where subscribers come from: a trigger of the daily scan, or an audience file."""

    trigger: str | None = None
    audience: Path | None = None


@dataclass(frozen=True)
class Flow:
    """A checked journey."""

    name: str
    tenant: str
    category: str
    entry: Entry
    holdout: float | None  # the share held out; None: the default (:meth:`holdout_share`)
    exit_on: tuple[str, ...]
    goal: str
    steps: tuple[Step, ...]
    path: str = "<journey>"
    _by_id: dict[str, Step] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_id.update((s.id, s) for s in self.steps)

    @property
    def first(self) -> Step:
        return self.steps[0]

    @property
    def experiment(self) -> str:
        """The experiment its enrolments are assigned in: ``journey:<name>``."""
        return f"journey:{self.name}"

    def holdout_share(self, default: float) -> float:
        """The share held out: its own ``holdout``, else ``default`` (``[analytics]
        holdout``) for a marketing journey and none for the others
        (:func:`jingxin.analytics.holdout.share_for`)."""
        from jingxin.analytics.holdout import share_for

        return share_for(self.holdout, category=self.category, default=default)

    @property
    def run_name(self) -> str:
        """Its daily enrolment's name in ``journey_runs``."""
        return RUN_PREFIX + self.name

    def step(self, step_id: str | None) -> Step | None:
        return self._by_id.get(step_id) if step_id is not None else None

    def after(self, step: Step) -> str | None:
        """The id of the step a send or wait leads to (its ``next``, else the one below it
        in the file); None: the journey is complete."""
        if isinstance(step, Send | Wait) and step.next is not None:
            return step.next
        index = self.steps.index(step)
        return self.steps[index + 1].id if index + 1 < len(self.steps) else None

    def successors(self, step: Step) -> list[str]:
        if isinstance(step, Exit):
            return []
        if isinstance(step, Branch):
            return [rule.goto for rule in step.rules] + [step.default]
        following = self.after(step)
        return [following] if following is not None else []


# ----------------------------------------------------------------------------- the file's shape


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Duration(_Doc):
    days: int = Field(default=0, ge=0)
    hours: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _positive(self) -> _Duration:
        if not self.days and not self.hours:
            raise ValueError("give days or hours, more than 0")
        return self

    def delta(self) -> timedelta:
        return timedelta(days=self.days, hours=self.hours)


class _Send(_Doc):
    id: str = Field(pattern=STEP_ID)
    type: Literal["send"]
    template: str = Field(min_length=1, max_length=64)
    variables: dict[str, Any] = Field(default_factory=dict)
    next: str | None = None

    @field_validator("variables")
    @classmethod
    def _scalars(cls, variables: dict[str, Any]) -> dict[str, Any]:
        for name, value in variables.items():
            if not isinstance(value, str | int | float | date):
                raise ValueError(f"variable {name!r}: give a text, a number or a date, "
                                 f"not {type(value).__name__}")  # fmt: skip
        return variables


class _Wait(_Duration):
    id: str = Field(pattern=STEP_ID)
    type: Literal["wait"]
    next: str | None = None


class _Rule(_Doc):
    event: Literal["replied", "ordered", "claimed", "none"]
    within: _Duration
    goto: str


class _Branch(_Doc):
    id: str = Field(pattern=STEP_ID)
    type: Literal["branch"]
    on: list[_Rule] = Field(min_length=1)
    default: str


class _Exit(_Doc):
    id: str = Field(pattern=STEP_ID)
    type: Literal["exit"]
    outcome: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,48}$")


_STEP_DOCS: dict[str, type[_Doc]] = {"send": _Send, "wait": _Wait, "branch": _Branch, "exit": _Exit}


class _Entry(_Doc):
    trigger: str | None = None
    audience: str | None = None

    @model_validator(mode="after")
    def _one(self) -> _Entry:
        if (self.trigger is None) == (self.audience is None):
            raise ValueError("give exactly one of trigger and audience")
        return self


class _Journey(_Doc):
    name: str = Field(pattern=NAME)
    tenant: str = DEFAULT_TENANT_ID
    category: Literal["otp", "notification", "marketing"] = "marketing"
    entry: _Entry
    holdout: float | None = None
    exit_on: list[Literal["replied", "ordered", "claimed"]] = Field(default_factory=list)
    goal: Literal["replied", "ordered", "claimed"] = "ordered"
    steps: list[Any] = Field(min_length=1)

    @field_validator("holdout", mode="before")
    @classmethod
    def _holdout(cls, value: Any) -> Any:
        from jingxin.analytics.holdout import parse_share

        return parse_share(value)


# ----------------------------------------------------------------------------- reading


class _Loader(yaml.SafeLoader):
    """YAML as people write journeys: ``on``, ``off``, ``yes``, ``no`` are words, not
    booleans (YAML 1.1 would read the branch's ``on:`` as ``True:``)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag != "tag:yaml.org,2002:bool"] for first, resolvers in
    yaml.SafeLoader.yaml_implicit_resolvers.items()}  # fmt: skip
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))  # fmt: skip


class _Lines:
    """Where each key and item of a YAML document starts (1-based), by path."""

    def __init__(self, root: yaml.Node | None, problems: list[str], source: str) -> None:
        self.at: dict[Where, int] = {}
        if root is not None:
            self.at[()] = root.start_mark.line + 1
            self._walk(root, (), problems, source)

    def _walk(self, node: yaml.Node, path: Where, problems: list[str], source: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
                if path + (name,) in self.at:
                    problems.append(f"{source}:{key.start_mark.line + 1}: "
                                    f"{_field(path + (name,))}: given twice")  # fmt: skip
                self.at[path + (name,)] = key.start_mark.line + 1
                self._walk(value, path + (name,), problems, source)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.at[path + (index,)] = item.start_mark.line + 1
                self._walk(item, path + (index,), problems, source)

    def __call__(self, path: Iterable[str | int]) -> int:
        """The line of ``path``, or of its nearest ancestor the file has."""
        path = tuple(path)
        while path and path not in self.at:
            path = path[:-1]
        return self.at.get(path, 1)


def _field(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(file)"


class _Problems:
    def __init__(self, source: str, lines: _Lines, found: list[str]) -> None:
        self.source, self.lines, self.found = source, lines, found

    def add(self, path: Where, why: str) -> None:
        self.found.append(f"{self.source}:{self.lines(path)}: {_field(path)}: {why}")

    def pydantic(self, exc: ValidationError, prefix: Where = ()) -> None:
        for err in exc.errors():
            path = prefix + tuple(err["loc"])
            why = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                why = "unknown field"
            elif err["type"] == "literal_error":
                why = f"{why}, got {err.get('input')!r}"
            self.add(path, why)


def parse_flow(text: str, *, source: str = "<journey>", base_dir: Path | None = None,
               store: Store | None = None) -> Flow:  # fmt: skip
    """The journey in ``text`` checked (templates too, against ``store``'s approved
    catalogue, when given); every problem at once in a :class:`FlowError`."""
    found: list[str] = []
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            raw = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise FlowError([f"{source}:{line}: (file): not valid YAML: {exc.problem}"]) from exc
    except yaml.YAMLError as exc:
        raise FlowError([f"{source}:1: (file): not valid YAML: {exc}"]) from exc
    problems = _Problems(source, _Lines(root, found, source), found)
    if not isinstance(raw, dict):
        problems.add((), "a journey is a mapping with name, entry and steps")
        raise FlowError(found)
    try:
        journey = _Journey.model_validate(raw)
    except ValidationError as exc:
        problems.pydantic(exc)
        journey = None
    steps = _steps(raw.get("steps"), problems)
    if journey is None or steps is None or found:
        raise FlowError(found or [f"{source}:1: steps: no valid step"])
    entry = Entry(trigger=journey.entry.trigger,
                  audience=_audience_path(journey.entry.audience, base_dir))  # fmt: skip
    flow = Flow(name=journey.name, tenant=journey.tenant, category=journey.category,
                entry=entry, holdout=journey.holdout, exit_on=tuple(journey.exit_on),
                goal=journey.goal, steps=tuple(steps), path=source)  # fmt: skip
    _check_graph(flow, problems)
    _check_entry(flow, problems)
    if store is not None and not found:
        _check_templates(flow, store, problems)
    if found:
        raise FlowError(found)
    return flow


def _audience_path(audience: str | None, base_dir: Path | None) -> Path | None:
    if audience is None:
        return None
    path = Path(audience)
    return path if path.is_absolute() or base_dir is None else base_dir / path


def _steps(raw: Any, problems: _Problems) -> list[Step] | None:
    if not isinstance(raw, list):
        return None
    steps: list[Step] = []
    for index, item in enumerate(raw):
        where: Where = ("steps", index)
        if not isinstance(item, dict):
            problems.add(where, "a step is a mapping with id and type")
            continue
        kind = item.get("type")
        if kind not in _STEP_DOCS:
            problems.add(where + ("type",), "missing step type (use send, wait, branch, exit)"
                         if kind is None else
                         f"unknown step type {kind!r} (use send, wait, branch, exit)")  # fmt: skip
            continue
        try:
            doc = _STEP_DOCS[kind].model_validate(item)
        except ValidationError as exc:
            problems.pydantic(exc, where)
            continue
        steps.append(_step(doc, problems.lines, where))
    return steps


def _step(doc: _Doc, lines: _Lines, where: Where) -> Step:
    line = lines(where)
    if isinstance(doc, _Send):
        return Send(doc.id, doc.template, dict(doc.variables), doc.next, line)
    if isinstance(doc, _Wait):
        return Wait(doc.id, doc.delta(), doc.next, line)
    if isinstance(doc, _Branch):
        rules = tuple(Rule(r.event, r.within.delta(), r.goto, lines(where + ("on", i)))
                      for i, r in enumerate(doc.on))  # fmt: skip
        return Branch(doc.id, rules, doc.default, line)
    assert isinstance(doc, _Exit)
    return Exit(doc.id, doc.outcome, line)


def _targets(step: Step, index: int) -> list[tuple[Where, str]]:
    """(where it is written, the step id) of every step ``step`` names."""
    where: Where = ("steps", index)
    if isinstance(step, Branch):
        return [(where + ("on", i, "goto"), r.goto) for i, r in enumerate(step.rules)] + [
            (where + ("default",), step.default)]
    if isinstance(step, Send | Wait) and step.next is not None:
        return [(where + ("next",), step.next)]
    return []


def _check_graph(flow: Flow, problems: _Problems) -> None:
    """Unique ids, targets that exist, and no loop without a wait."""
    seen: set[str] = set()
    for index, step in enumerate(flow.steps):
        if step.id in seen:
            problems.add(("steps", index, "id"), f"step id {step.id!r} is used twice")
        seen.add(step.id)
    missing = False
    for index, step in enumerate(flow.steps):
        for where, target in _targets(step, index):
            if target not in seen:
                missing = True
                problems.add(where, f"goes to step {target!r}, which does not exist "
                                    f"(steps: {', '.join(s.id for s in flow.steps)})")  # fmt: skip
    if not missing:
        _check_loops(flow, problems)


def _check_loops(flow: Flow, problems: _Problems) -> None:
    """A loop through sends and branches only would send again and again at once: every
    loop must pass a wait."""
    index = {step.id: i for i, step in enumerate(flow.steps)}
    edges = {s.id: [t for t in flow.successors(s) if not isinstance(flow.step(t), Wait)]
             for s in flow.steps if not isinstance(s, Wait)}  # fmt: skip
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    reported: set[frozenset[str]] = set()

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for target in edges[node]:
            if state.get(target) == 1:
                loop = path[path.index(target):] + [target]
                if frozenset(loop) not in reported:
                    reported.add(frozenset(loop))
                    problems.add(("steps", index[node]),
                                 f"the loop {' -> '.join(loop)} has no wait step: it would "
                                 "send without pause (put a wait in it)")  # fmt: skip
            elif target not in state:
                visit(target, path)
        path.pop()
        state[node] = 2

    for start in edges:
        if start not in state:
            visit(start, [])


def _check_entry(flow: Flow, problems: _Problems) -> None:
    from jingxin.journeys.triggers import TRIGGERS

    if flow.name in TRIGGERS:  # their messages' source ids share the "<name>:" prefix
        problems.add(("name",), f"{flow.name!r} is the name of a daily-scan trigger; replies "
                                "to the two could not be told apart (choose another)")  # fmt: skip
    if flow.entry.trigger is not None and flow.entry.trigger not in TRIGGERS:
        problems.add(("entry", "trigger"), f"unknown trigger {flow.entry.trigger!r} "
                                           f"(known: {', '.join(TRIGGERS)})")  # fmt: skip
    if flow.entry.audience is not None and not flow.entry.audience.is_file():
        problems.add(("entry", "audience"), f"no audience file at {flow.entry.audience}")


def _check_templates(flow: Flow, store: Store, problems: _Problems) -> None:
    """Each send's template has an approved version the journey's category may send."""
    from jingxin.content.catalog import approved_version
    from jingxin.data.store.engine import store_errors
    from jingxin.dispatch.approval import check_category
    from jingxin.errors import InputError

    with store_errors("reading the template catalogue"), store.sessions() as session:
        for index, step in enumerate(flow.steps):
            if not isinstance(step, Send):
                continue
            where = ("steps", index, "template")
            try:
                template = approved_version(session, tenant_id=flow.tenant, code=step.template)
                check_category(approved=template.category, sending=flow.category,
                               what=f"template {step.template}")  # fmt: skip
            except InputError as exc:
                problems.add(where, str(exc).removeprefix("category: "))


def load_flow(path: str | Path, *, store: Store | None = None) -> Flow:
    """The journey in the file at ``path``, checked (see :func:`parse_flow`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError([f"{path}:1: (file): cannot read the journey file: {exc}"]) from exc
    return parse_flow(text, source=str(path), base_dir=path.parent, store=store)


def load_flows(directory: str | Path, *, store: Store | None = None) -> list[Flow]:
    """Every journey (``*.yaml``, ``*.yml``) in ``directory``; the problems of all files at
    once, and two files with one name are refused."""
    flows, problems = read_flows(directory, store=store)
    if problems:
        raise FlowError(problems)
    return flows


def read_flows(directory: str | Path, *,
               store: Store | None = None) -> tuple[list[Flow], list[str]]:  # fmt: skip
    """The journeys of ``directory`` that validate, and the problems of those that do not
    (:func:`load_flows` refuses them all when there is one; a reader that only shows the
    journeys, like the API, lists the good ones and the problems). Of two files with one
    name, the first (by file name) is kept."""
    folder = Path(directory)
    if not folder.is_dir():
        return [], [f"{folder}:1: journeys_dir: no such directory"]
    flows: list[Flow] = []
    problems: list[str] = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            flows.append(load_flow(path, store=store))
        except FlowError as exc:
            problems.extend(exc.problems)
    names: dict[str, str] = {}
    kept: list[Flow] = []
    for flow in flows:
        if flow.name in names:
            problems.append(f"{flow.path}:1: name: journey {flow.name!r} is also "
                            f"defined in {names[flow.name]}")  # fmt: skip
            continue
        names[flow.name] = flow.path
        kept.append(flow)
    return kept, problems


def step_key(step_id: str, visit: int) -> str:
    """The step as events and message keys name it: ``offer``, then ``offer#2`` when a
    loop (through a wait) comes back to it."""
    return step_id if visit <= 1 else f"{step_id}#{visit}"


_KEY_STEP = re.compile(r"#\d+$")


def step_of_key(key: str) -> str:
    return _KEY_STEP.sub("", key)
