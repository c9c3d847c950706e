"""Template documents (YAML/JSON files) and the starter library shipped in the package.

A document holds one template (a mapping) or several (``templates: [...]``)::

    templates:
      - code: care.birthday          # letters, digits, . _ -
        category: marketing          # otp | notification | marketing
        title: 生日祝福               # optional, for people
        variables: {name: str, gift_data_mb: int}
        body: |-
          {{ name }}，今天是您的生日，祝您生日快乐！
          送您{{ gift_data_mb|data_size }}生日流量，回复“SR”领取。
        sample: {name: 李女士, gift_data_mb: 2048}   # optional, for previews and checks

Line breaks in a body are for the file's reader only: they are removed, with a space kept
between two narrow (Latin) characters, so Chinese text joins without stray spaces.
"""

from __future__ import annotations

import json
import unicodedata
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jingxin.content.templates import CompiledTemplate, compile_template
from jingxin.errors import TemplateError

LIBRARY_PACKAGE = "jingxin.content.starter"


class TemplateDocument(BaseModel):
    """One template as written in a file, validated at the edge."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    category: Literal["otp", "notification", "marketing"]
    body: str = Field(min_length=1)
    title: str = ""
    variables: dict[str, str] = Field(default_factory=dict)
    sample: dict[str, Any] = Field(default_factory=dict)

    @field_validator("body")
    @classmethod
    def _join_lines(cls, body: str) -> str:
        return join_lines(body)

    def compile(self, *, where: str | None = None) -> CompiledTemplate:
        return compile_template(self.body, self.variables, where=where or self.code)


def _wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def join_lines(body: str) -> str:
    """Join the lines of ``body``: nothing between wide characters, a space between narrow."""
    lines = [line.strip() for line in body.strip().splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    out = lines[0]
    for line in lines[1:]:
        joiner = "" if _wide(out[-1]) or _wide(line[0]) or out[-1] in "}%" else " "
        out += joiner + line
    return out


def _read(path: Path) -> Any:
    from jingxin.data.textfile import read_text, yaml_problem

    text = read_text(path, what="template file", error=TemplateError)
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from exc
    except yaml.YAMLError as exc:
        raise TemplateError(yaml_problem(exc, source=path, brief=False)) from exc


def parse_documents(raw: Any, *, source: str) -> list[TemplateDocument]:
    """Validate a loaded document (one mapping or ``templates: [...]``); errors name the field."""
    if isinstance(raw, dict) and "templates" in raw:
        items = raw["templates"]
        if not isinstance(items, list):
            raise TemplateError(f"{source}: 'templates' must be a list")
    elif isinstance(raw, dict):
        items = [raw]
    else:
        raise TemplateError(f"{source}: expected a template mapping or 'templates: [...]'")
    documents = []
    for index, item in enumerate(items):
        where = f"{source}: templates[{index}]"
        try:
            document = TemplateDocument.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "(document)"
            raise TemplateError(f"{where}: field {field!r}: {err['msg']}") from exc
        document.compile(where=f"{source}: {document.code}")
        documents.append(document)
    return documents


def load_documents(path: str | Path) -> list[TemplateDocument]:
    """Templates from a YAML or JSON file; each is compiled, so a bad one names its line."""
    path = Path(path)
    return parse_documents(_read(path), source=str(path))


def starter_library() -> list[TemplateDocument]:
    """The templates shipped with jingxin: operator care and industry notifications."""
    documents: list[TemplateDocument] = []
    folder = resources.files(LIBRARY_PACKAGE)
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            raw = yaml.safe_load(entry.read_text(encoding="utf-8"))
            documents.extend(parse_documents(raw, source=f"starter/{entry.name}"))
    return documents


def library_document(code: str) -> TemplateDocument | None:
    """The starter-library template with this code (for its sample values), or None."""
    return next((d for d in starter_library() if d.code == code), None)
