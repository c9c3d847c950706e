"""The exception tree of jingxin.

Every error jingxin raises on purpose derives from :class:`JingxinError`. Third-party
errors (database, protocol, file parsing) are converted where they enter our code
(``raise OurError(...) from exc``), so callers only ever catch these::

    JingxinError
    ├── ConfigError             settings that cannot work (bad file, bad value)
    ├── InputError              bad input from a user, a file or a peer; says where
    │   ├── ImportFileError     a whole import file is unusable (not CSV/Parquet, empty, no header)
    │   ├── SpecError           a segment / campaign spec that does not validate
    │   ├── ConflictError       well-formed, but the current state refuses it (a name taken)
    │   └── TemplateError       a template that does not parse, render or fit
    ├── StoreError              the operational store failed (connection, migration, constraint)
    ├── WarehouseError          the analytical warehouse failed (missing table or column)
    ├── ProtocolError           a PDU that cannot be decoded or a peer that broke the protocol
    ├── ChannelError            a channel cannot send: bind refused, connection lost, ...
    │   └── Retry               a temporary failure: try again after ``delay`` seconds
    └── PolicyError             a rule set that cannot be evaluated (unknown tenant, ...)
"""

from __future__ import annotations


class JingxinError(Exception):
    """The root of every error jingxin raises on purpose."""


class ConfigError(JingxinError):
    """Settings that cannot work."""


class InputError(JingxinError):
    """Bad input from a user, a file or a peer. The message says where (file, line, field)."""


class ImportFileError(InputError):
    """A whole import file is unusable: not CSV or Parquet, empty, missing columns."""


class ConflictError(InputError):
    """Well-formed input that the current state refuses (a taken name, a transition the
    thing's state forbids); the message says what to do. The API answers it 409."""


class SpecError(InputError):
    """A segment or campaign spec that does not validate; names the spec path."""


class TemplateError(InputError):
    """A template that does not parse, does not render, or does not fit."""


class StoreError(JingxinError):
    """The operational store failed."""


class WarehouseError(JingxinError):
    """The analytical warehouse failed: a missing table or column, a failed query."""


class ProtocolError(JingxinError):
    """A PDU that cannot be decoded, or a peer that broke the protocol."""


class ChannelError(JingxinError):
    """A channel cannot send: bind refused, connection lost, unresolved submits."""


class Retry(ChannelError):
    """A temporary failure: the same request may succeed after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


class PolicyError(JingxinError):
    """A rule set that cannot be evaluated."""
