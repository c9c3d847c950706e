"""How well an uplift score ranks the persuadable first: the Qini curve, its coefficient,
the uplift curve and its area (AUUC), measured on subscribers whose treatment (a message
sent, or held out) and outcome (ordered, ...) are known.

Definitions, with the subscribers sorted by score, highest first, and φ the fraction of
them targeted (subscribers with equal scores enter together: one point per distinct score,
straight lines between points):

* ``N_t(φ)``, ``N_c(φ)``: treated and control (held-out) subscribers in the top φ;
  ``R_t(φ)``, ``R_c(φ)``: those of them with the outcome.
* **Qini curve** (Radcliffe 2007, "Using control groups to target on predicted lift:
  building and assessing uplift models", Direct Marketing Analytics Journal 1:14-21):
  ``Q(φ) = R_t(φ) − R_c(φ) · N_t(φ) / N_c(φ)``, the incremental outcomes among the treated
  in the top φ, the control's outcomes scaled to the treated count (0 while ``N_c`` is
  0). A random ordering gives, in expectation, the diagonal from (0, 0) to (1, Q(1)).
* **Qini coefficient**: Radcliffe's Q, the area between the model's Qini curve and the
  diagonal divided by the same area for the optimum ordering (treated subscribers with the
  outcome first, control subscribers with the outcome last). 0 for a random ordering, 1
  for the optimum, negative for an ordering worse than random.
* **Uplift curve**: ``U(φ) = (R_t/N_t − R_c/N_c) · (N_t + N_c)``, the incremental
  outcomes had everyone in the top φ been treated (a rate is 0 while its group is empty).
* **AUUC**: the area under ``U(φ) / N`` over φ in [0, 1], N every subscriber, so a rate:
  the mean over φ of ``φ · uplift(top φ)``. A random ordering gives half the observed
  uplift (:func:`random_auuc`).
* **Top uplift**: the observed uplift (treated rate − control rate) among the top share
  (a decile by default), against the observed uplift of all.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jingxin.errors import InputError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def as_bools(values: ArrayLike, *, what: str) -> np.ndarray:
    """``values`` as a boolean array: booleans, or numbers that are all 0 or 1."""
    array = np.asarray(values)
    if array.dtype == bool:
        return array
    if array.dtype.kind in "iuf":
        bad = ~np.isin(array, (0, 1))
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise InputError(f"{what}: value {array[first].item()!r} at position {first} is not "
                             "0/1 or true/false")
        return array.astype(bool)
    raise InputError(f"{what}: expected booleans or 0/1 (got {array.dtype})")


def _inputs(scores: ArrayLike, treated: ArrayLike,
            outcome: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype="float64")
    t = as_bools(treated, what="treated")
    y = as_bools(outcome, what="outcome")
    if not len(s) == len(t) == len(y):
        raise InputError(f"scores, treated and outcome differ in length ({len(s)}, "
                         f"{len(t)}, {len(y)})")
    if len(s) == 0:
        raise InputError("no subscribers to measure the uplift on")
    if not np.isfinite(s).all():
        raise InputError(f"{int((~np.isfinite(s)).sum())} uplift scores are not finite")
    return s, t, y


def _points(scores: ArrayLike, treated: ArrayLike,
            outcome: ArrayLike) -> tuple[np.ndarray, ...]:
    """Cumulative N_t, N_c, R_t, R_c at 0 and at the end of each group of equal scores."""
    s, t, y = _inputs(scores, treated, outcome)
    order = np.argsort(-s, kind="stable")
    s, t, y = s[order], t[order], y[order]
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
    return tuple(np.r_[0, np.cumsum(part)[ends]].astype("float64")
                 for part in (t, ~t, t & y, ~t & y))


def _area(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def qini_curve(scores: ArrayLike, treated: ArrayLike,
               outcome: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(fractions targeted, incremental outcomes among the treated): Radcliffe's Qini
    curve, starting at (0, 0)."""
    nt, nc, rt, rc = _points(scores, treated, outcome)
    scaled = np.divide(rc * nt, nc, out=np.zeros_like(rc), where=nc > 0)
    return (nt + nc) / (nt[-1] + nc[-1]), rt - scaled


def _optimum(treated: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """The best ordering Radcliffe describes: treated responders first, control
    responders last, everyone else between."""
    return (treated & outcome).astype("float64") - (~treated & outcome)


def qini_coefficient(scores: ArrayLike, treated: ArrayLike, outcome: ArrayLike) -> float:
    """Radcliffe's Q: (model area − diagonal area) / (optimum area − diagonal area);
    NaN when the optimum is no better than the diagonal (no outcome at all)."""
    s, t, y = _inputs(scores, treated, outcome)
    x, q = qini_curve(s, t, y)
    best_x, best_q = qini_curve(_optimum(t, y), t, y)
    diagonal = q[-1] / 2
    room = _area(best_x, best_q) - diagonal
    return (_area(x, q) - diagonal) / room if room > 0 else math.nan


def uplift_curve(scores: ArrayLike, treated: ArrayLike,
                 outcome: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(fractions targeted, incremental outcomes had the top fraction all been treated)."""
    nt, nc, rt, rc = _points(scores, treated, outcome)
    rate_t = np.divide(rt, nt, out=np.zeros_like(rt), where=nt > 0)
    rate_c = np.divide(rc, nc, out=np.zeros_like(rc), where=nc > 0)
    return (nt + nc) / (nt[-1] + nc[-1]), (rate_t - rate_c) * (nt + nc)


def auuc(scores: ArrayLike, treated: ArrayLike, outcome: ArrayLike) -> float:
    """The area under the uplift curve divided by the number of subscribers (a rate)."""
    x, gain = uplift_curve(scores, treated, outcome)
    return _area(x, gain / len(np.asarray(scores)))


def observed_uplift(treated: ArrayLike, outcome: ArrayLike) -> float:
    """Treated outcome rate − control outcome rate; NaN when a group is empty."""
    t = as_bools(treated, what="treated")
    y = as_bools(outcome, what="outcome")
    if t.all() or not t.any():
        return math.nan
    return float(y[t].mean() - y[~t].mean())


def random_auuc(treated: ArrayLike, outcome: ArrayLike) -> float:
    """What :func:`auuc` gives in expectation for a random ordering."""
    return observed_uplift(treated, outcome) / 2


def top_uplift(scores: ArrayLike, treated: ArrayLike, outcome: ArrayLike, *,
               share: float = 0.1) -> float:
    """The observed uplift among the ``share`` of subscribers with the highest scores."""
    if not 0 < share <= 1:
        raise InputError(f"top share {share}: must be in (0, 1]")
    s, t, y = _inputs(scores, treated, outcome)
    top = np.argsort(-s, kind="stable")[: max(1, math.ceil(share * len(s)))]
    return observed_uplift(t[top], y[top])


def qini_chart(curves: dict[str, tuple[np.ndarray, np.ndarray]], *, title: str,
               subtitle: str = "") -> Any:
    """A plotly figure of Qini curves (name → (fractions, incremental)), with the
    diagonal of a random ordering drawn from the first curve's end."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for name, (x, q) in curves.items():
        figure.add_trace(go.Scatter(x=x * 100, y=q, mode="lines", name=name))
    x, q = next(iter(curves.values()))
    figure.add_trace(go.Scatter(x=[0, 100], y=[0, q[-1]], mode="lines", name="random "
                                "ordering", line={"dash": "dash", "color": "grey"}))
    figure.update_layout(
        title={"text": title + (f"<br><sup>{subtitle}</sup>" if subtitle else "")},
        xaxis_title="subscribers targeted, highest uplift score first (%)",
        yaxis_title="incremental outcomes (treated − scaled control)",
        template="plotly_white")
    return figure


def write_chart(figure: Any, out: Path) -> Path:
    """The figure as one self-contained HTML file (plotly.js inlined: works offline);
    written to a temporary file first, so a failure leaves no half-written page."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    figure.write_html(tmp, include_plotlyjs=True, full_html=True)
    tmp.replace(out)
    return out
