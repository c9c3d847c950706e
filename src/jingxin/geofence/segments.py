"""A fence's audience segment, made self-contained for the store.

A fence names its segment as an audience spec (a mapping) or as a spec file beside the
fences file. The store keeps it as data every matcher can read without the files: the spec
checked against the field catalogue (:func:`jingxin.audience.validate.check`), the segment
files it combines inlined, its exclusion files made absolute (they must exist; a matcher on
another machine needs them at that path).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jingxin.errors import SpecError


def segment_data(value: Any, *, base_dir: Path | None) -> dict[str, Any]:
    """An audience spec (a mapping, or the path of a spec file relative to ``base_dir``)
    checked against the field catalogue and made self-contained: referenced segment
    files inlined, exclusion files made absolute (they must exist)."""
    from jingxin.audience.spec import load_spec, parse_spec

    if isinstance(value, str):
        if base_dir is None:
            raise SpecError(f"segment {value!r}: a segment file is only read from a fences "
                            "file or the command line")  # fmt: skip
        path = (base_dir / value).resolve()
        return _inline(load_spec(path), spec_dir=path.parent, source=str(path), seen=(path,))
    if isinstance(value, Mapping):
        return _inline(parse_spec(dict(value), source="segment"), spec_dir=base_dir,
                       source="segment", seen=())  # fmt: skip
    raise SpecError("a segment is an audience spec (a mapping) or the path of a segment file")


def _inline(spec: Any, *, spec_dir: Path | None, source: str,
            seen: tuple[Path, ...]) -> dict[str, Any]:
    from jingxin.audience.spec import load_spec
    from jingxin.audience.validate import check

    check(spec, source=source)
    data = spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    for i, comb in enumerate(spec.combine):
        if not isinstance(comb.segment, str):
            data["combine"][i]["segment"] = _inline(comb.segment, spec_dir=spec_dir,
                                                    source=f"{source}: combine[{i}]", seen=seen)
            continue
        if spec_dir is None:
            raise SpecError(f"{source}: combine[{i}].segment: a file only in a segment file")
        path = (spec_dir / comb.segment).resolve()
        if path in seen:
            raise SpecError(f"{source}: combine[{i}].segment: {comb.segment} refers back to itself")
        data["combine"][i]["segment"] = _inline(load_spec(path), spec_dir=path.parent,
                                                source=str(path), seen=(*seen, path))
    if spec.exclude_files and spec_dir is not None:
        files = [(spec_dir / name).resolve() for name in spec.exclude_files]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise SpecError(f"{source}: exclude_files: no such file: {', '.join(missing)}")
        data["exclude_files"] = [str(f) for f in files]
    return data
