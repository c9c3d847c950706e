"""How the simulated SMSC behaves: one frozen dataclass, and the named presets.

Both the SMPP and the CMPP servers of the simulator read the same :class:`Behaviour`, so a
preset means the same thing on either protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from jingxin.errors import ConfigError


@dataclass(frozen=True)
class Behaviour:
    """Knobs of the simulator. Probabilities are in [0, 1]; times in seconds."""

    tps: float = 0.0  # submits per second per bind above which answers are throttled; 0 = unlimited
    submit_latency: float = 0.0  # delay before each submit response
    receipt_delay: float = 0.05  # delay between the submit response and its receipt
    status_mix: dict[str, float] = field(default_factory=lambda: {"DELIVRD": 1.0})
    lose_response: float = 0.0  # probability a submit gets no response at all
    disconnect: float = 0.0  # probability, per submit, that the server drops the connection
    receipt_before_response: bool = False  # send the receipt before the submit response
    credentials: dict[str, str] = field(default_factory=dict)  # system_id -> password; empty = any
    seed: int | None = None

    def with_(self, **changes: object) -> Behaviour:
        return replace(self, **changes)  # type: ignore[arg-type]


PRESETS: dict[str, Behaviour] = {
    "happy": Behaviour(),
    "throttling": Behaviour(tps=50.0),
    "flaky": Behaviour(
        status_mix={"DELIVRD": 0.85, "UNDELIV": 0.08, "EXPIRED": 0.04, "REJECTD": 0.03},
        lose_response=0.01,
        disconnect=0.002,
        submit_latency=0.002,
    ),
    "receipt-before-response": Behaviour(receipt_before_response=True, receipt_delay=0.0),
}


def preset(name: str) -> Behaviour:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown SMSC preset {name!r}; known presets: {', '.join(PRESETS)}"
        ) from None


def parse_status_mix(text: str) -> dict[str, float]:
    """``'DELIVRD=0.9,UNDELIV=0.1'`` → weights; statuses are the receipt ``stat:`` words."""
    known = {"DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD", "UNKNOWN", "REJECTD", "ENROUTE"}
    mix: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, weight = item.partition("=")
        name = name.strip().upper()
        if not sep or name not in known:
            raise ConfigError(
                f"status mix item {item!r}: expected STAT=weight with STAT one of {sorted(known)}"
            )
        try:
            mix[name] = float(weight)
        except ValueError:
            raise ConfigError(f"status mix item {item!r}: weight is not a number") from None
        if mix[name] < 0:
            raise ConfigError(f"status mix item {item!r}: weight must be >= 0")
    if not mix or sum(mix.values()) <= 0:
        raise ConfigError(f"status mix {text!r} has no positive weight")
    return mix


def parse_credentials(items: list[str]) -> dict[str, str]:
    """``['alice:pw1', 'bob:pw2']`` → {system_id: password}."""
    credentials = {}
    for item in items:
        system_id, sep, password = item.partition(":")
        if not sep or not system_id:
            raise ConfigError(f"credentials {item!r}: expected system_id:password")
        credentials[system_id] = password
    return credentials


def from_flags(
    preset_name: str = "happy",
    *,
    tps: float | None = None,
    latency: float | None = None,
    receipt_delay: float | None = None,
    status_mix: str | None = None,
    lose_response: float | None = None,
    disconnect: float | None = None,
    credentials: list[str] | None = None,
    seed: int | None = None,
) -> Behaviour:
    """A preset with command-line flags overriding its knobs (None = keep the preset's)."""
    changes: dict[str, object] = {}
    for key, value in (("tps", tps), ("submit_latency", latency), ("receipt_delay", receipt_delay),
                       ("lose_response", lose_response), ("disconnect", disconnect), ("seed", seed)):  # fmt: skip
        if value is not None:
            if key != "seed" and value < 0:  # type: ignore[operator]
                raise ConfigError(f"simulator flag {key} must be >= 0, got {value}")
            changes[key] = value
    for key in ("lose_response", "disconnect"):
        if float(changes.get(key, 0.0)) > 1:  # type: ignore[arg-type]
            raise ConfigError(f"simulator flag {key} is a probability, got {changes[key]}")
    if status_mix:
        changes["status_mix"] = parse_status_mix(status_mix)
    if credentials:
        changes["credentials"] = parse_credentials(credentials)
    return preset(preset_name).with_(**changes)
