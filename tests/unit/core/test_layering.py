"""The lines that must never be crossed (docs/architecture.md), checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src" / "jingxin"

# package -> jingxin packages it must never import
FORBIDDEN = {
    "domain": {"data", "audience", "content", "policy", "dispatch", "channels", "smsc",
               "hall", "journeys", "geofence", "analytics", "api", "console", "cli"},
    "channels": {"dispatch", "policy", "data", "audience", "journeys", "geofence", "hall",
                 "analytics", "api", "console", "cli", "smsc"},
    "policy": {"data", "dispatch", "channels", "api", "console", "cli", "smsc"},
    "content": {"dispatch", "channels", "api", "console", "cli", "smsc"},
    "audience": {"cli", "api", "console", "smsc"},
    "data": {"cli", "api", "console", "smsc"},
    "dispatch": {"cli", "api", "console", "smsc"},
}


def jingxin_imports(path: Path) -> set[str]:
    """The first-level jingxin packages a module imports (``jingxin.X...`` → ``X``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "jingxin" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_its_lines(package: str) -> None:
    root = SRC / package
    if not root.exists():
        pytest.skip(f"jingxin.{package} does not exist yet")
    crossings = []
    for module in sorted(root.rglob("*.py")):
        bad = jingxin_imports(module) & FORBIDDEN[package]
        if bad:
            crossings.append(f"{module.relative_to(SRC)} imports {sorted(bad)}")
    assert not crossings, "\n".join(crossings)


def test_content_package_import_stays_light() -> None:
    # channels import jingxin.content.encoding; that must not drag in Jinja2 or OpenCC.
    init = SRC / "content" / "__init__.py"
    if not init.exists():
        pytest.skip("jingxin.content does not exist yet")
    text = init.read_text(encoding="utf-8")
    assert "jinja2" not in text and "opencc" not in text
