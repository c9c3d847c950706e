"""Reading a user's text file: UTF-8 by default, any encoding on request, and a clear
word when a file is not UTF-8.

Every reader of a file a person hands us (imports, audience and exclusion lists, lexicons,
campaign and segment specs, MO scripts) goes through here, so that a file saved as GBK by
Excel or Notepad is named as such, with the fix, instead of a ``UnicodeDecodeError`` or a
garbled value. Nothing is guessed silently: a non-UTF-8 file is refused unless the caller
names its encoding.

- :func:`read_text` — a whole file as ``str`` (a UTF-8 BOM is dropped).
- :func:`check_encoding` — for readers that stream the file themselves (Arrow CSV):
  the encoding to hand them, after sniffing the head when none is given.
- :func:`not_utf8_message` — the one line that names the file and says how to fix it.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jingxin.errors import InputError

SNIFF_BYTES = 256 * 1024
# GBK and GB2312 are subsets of GB18030: decoding with it reads them all.
_ALIASES = {"gbk": "gb18030", "gb2312": "gb18030", "cp936": "gb18030", "utf8": "utf-8"}
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def encoding_name(encoding: str, *, error: type[InputError] = InputError) -> str:
    """The Python codec for ``encoding`` (``gbk`` reads as GB18030), or ``error``."""
    wanted = _ALIASES.get(encoding.strip().lower(), encoding.strip().lower())
    try:
        return codecs.lookup(wanted).name
    except LookupError:
        raise error(f"--encoding {encoding!r}: unknown encoding "
                    "(e.g. utf-8, gbk, gb18030, big5)") from None


def guess_encoding(data: bytes) -> str | None:
    """A likely name for bytes that are not UTF-8: ``GBK/GB18030`` when they decode as
    GB18030 into mostly Chinese text, ``UTF-16`` for a UTF-16 BOM, else None."""
    if data.startswith(_UTF16_BOMS):
        text = data[: len(data) // 2 * 2].decode("utf-16", errors="replace")
        readable = sum(1 for ch in text if ch.isprintable() or ch in "\r\n\t")
        return "UTF-16" if readable >= 0.95 * len(text) else None
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError as exc:
        if exc.start < len(data) - 4:  # a cut multi-byte character at the end is fine
            return None
        text = data[: exc.start].decode("gb18030")
    wide = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff" or "\u3000" <= ch <= "\u303f"
               or "\uff00" <= ch <= "\uffef")
    high = sum(1 for ch in text if ord(ch) > 0x7F)
    return "GBK/GB18030" if high and wide * 2 >= high else None


def not_utf8_message(path: Path | str, data: bytes, *, what: str = "file",
                     encoding_option: str | None = None) -> str:
    """``FILE is not UTF-8 (looks like GBK/GB18030?): re-save it as UTF-8 ...``."""
    guess = guess_encoding(data)
    looks = f" (looks like {guess}?)" if guess else ""
    fix = "re-save it as UTF-8"
    if encoding_option:
        example = "gbk" if guess in (None, "GBK/GB18030") else guess.lower()
        fix += f" or pass {encoding_option} {example}"
    return f"{path}: the {what} is not UTF-8{looks}: {fix}"


def decode_text(data: bytes, *, path: Path | str, encoding: str | None = None,
                what: str = "file", error: type[InputError] = InputError,
                encoding_option: str | None = None) -> str:
    """``data`` as text: UTF-8 (BOM dropped) unless ``encoding`` names another codec."""
    codec = encoding_name(encoding, error=error) if encoding else "utf-8-sig"
    if codec == "utf-8":
        codec = "utf-8-sig"
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        if encoding and codec != "utf-8-sig":
            line = data[: exc.start].count(b"\n") + 1
            raise error(f"{path}: line {line}: not valid {encoding} text "
                        f"(byte {exc.start}); check the file's encoding") from None
        raise error(not_utf8_message(path, data, what=what,
                                     encoding_option=encoding_option)) from None


def read_text(path: Path | str, *, encoding: str | None = None, what: str = "file",
              error: type[InputError] = InputError,
              encoding_option: str | None = None) -> str:
    """The whole of ``path`` as text; a missing, unreadable or non-UTF-8 file is ``error``
    naming it (and, when the caller takes one, the ``encoding_option`` that fixes it)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: cannot read the {what}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: cannot read the {what}: it is a directory") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from exc
    return decode_text(data, path=path, encoding=encoding, what=what, error=error,
                       encoding_option=encoding_option)


def check_encoding(path: Path | str, *, encoding: str | None = None, what: str = "file",
                   error: type[InputError] = InputError,
                   encoding_option: str | None = None) -> str:
    """The codec a streaming reader (Arrow CSV) should use for ``path``: ``utf-8`` after
    checking the head when no encoding is given (a GBK file is refused here, before any
    row is read), else the named codec."""
    if encoding:
        return encoding_name(encoding, error=error)
    try:
        with Path(path).open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from exc
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The sniffed block may end inside a multi-byte character.
        if not (len(head) == SNIFF_BYTES and exc.start >= len(head) - 3):
            raise error(not_utf8_message(path, head, what=what,
                                         encoding_option=encoding_option)) from None
    return "utf-8"


def is_invalid_utf8(exc: BaseException) -> bool:
    """True for Arrow's complaint about bytes past the sniffed head that are not UTF-8."""
    text = str(exc).lower()
    return "utf8" in text.replace("-", "") and "invalid" in text


def yaml_problem(exc: Exception, *, source: str | Path, brief: bool = True) -> str:
    """One line for a YAML file that does not parse: ``<source>: line N: invalid YAML:
    <what>`` - the parser's problem alone (``brief``) or its whole message."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    what = (getattr(exc, "problem", None) or exc) if brief else exc
    return f"{source}: {where}invalid YAML: {what}"


def yaml_line(root: Any, loc: Sequence[Any]) -> int:
    """The line of ``loc`` (keys and list indices, as pydantic reports them) in a composed
    YAML document ``root`` (``yaml.compose``): the deepest part of it that is there."""
    import yaml

    node, line = root, (root.start_mark.line + 1) if root is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
