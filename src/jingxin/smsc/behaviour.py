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
