"""Uplift models on synthetic subscribers whose true uplift is known.

Two hidden kinds of subscriber: *persuadables* (feature ``persuadable`` > 0.7) order 35
points more often when treated; *sure things* (feature ``sure`` > 0.6) order often
whether treated or not. A good uplift model ranks the persuadables first, not the sure
things (a response model would rank the sure things first). Random scores rank nobody.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jingxin.audience import uplift
from jingxin.audience.qini import qini_chart, write_chart
from jingxin.errors import InputError


def subscribers(n: int = 5000, seed: int = 0, treated_share: float = 0.5):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 4))
    base = 0.05 + 0.4 * (x[:, 1] > 0.6)  # sure things: a high base rate
    effect = 0.35 * (x[:, 0] > 0.7)  # persuadables: the message works on them
    treated = rng.random(n) < treated_share
    ordered = rng.random(n) < base + treated * effect
    frame = pd.DataFrame(x, columns=["persuadable", "sure", "noise", "noise2"])
    return frame, treated, ordered, effect


@pytest.fixture(scope="module")
def data():
    return subscribers()


@pytest.mark.parametrize("method", uplift.METHODS)
@pytest.mark.parametrize("learner", uplift.LEARNERS)
def test_both_methods_rank_the_persuadable_first(data, method, learner) -> None:
    frame, treated, ordered, effect = data
    # When a model is trained on 70 % and measured on the other 30 %
    training = uplift.train_uplift(frame, treated, ordered, method=method, learner=learner,
                                   seed=0, outcome_name="ordered")
    e = training.evaluation
    test = training.test
    assert e.test_rows == test.sum() == 1500 and e.train_rows == 3500
    # Then the Qini coefficient is clearly above a random ordering's 0 (which the optimum
    # ordering, 1, is far above: a real ranking from noisy outcomes ends near 0.1-0.2)
    assert e.qini > 0.05
    assert e.auuc > e.auuc_random + 0.01
    # And the top decile by predicted uplift holds the persuadables: its true uplift is
    # far above the average, and so is its observed uplift
    scores = training.scores[test]
    top = np.argsort(-scores)[: len(scores) // 10]
    assert effect[test][top].mean() > 2 * effect[test].mean()
    assert e.top_uplift > e.test_uplift
    # And the model does not mistake the sure things for persuadables
    persuadable = effect[test] > 0
    sure = (frame["sure"].to_numpy()[test] > 0.6) & ~persuadable
    assert scores[persuadable].mean() > scores[sure].mean() + 0.1


def test_random_scores_give_about_zero(data) -> None:
    frame, treated, ordered, _ = data
    rng = np.random.default_rng(7)
    q = [uplift.qini_coefficient(rng.random(len(frame)), treated, ordered) for _ in range(20)]
    assert abs(np.mean(q)) < 0.03 and max(map(abs, q)) < 0.15
    # The true uplift ranks best; the reversed true uplift worst
    _, _, _, effect = data
    assert uplift.qini_coefficient(effect, treated, ordered) > 0.1
    assert uplift.qini_coefficient(-effect, treated, ordered) < -0.1


def test_curves_by_hand() -> None:
    # Given 4 treated (2 ordered) and 4 control (1 ordered), scores in that order
    scores = [8, 7, 6, 5, 4, 3, 2, 1]
    treated = [1, 0, 1, 0, 1, 0, 1, 0]
    ordered = [1, 0, 1, 1, 0, 0, 0, 0]
    x, q = uplift.qini_curve(scores, treated, ordered)
    assert x.tolist() == pytest.approx([0, .125, .25, .375, .5, .625, .75, .875, 1])
    # top 4: treated 2 of 2 ordered, control 1 of 2: 2 - 1 * 2/2 = 1; all: 2 - 1 * 4/4 = 1
    assert q[4] == pytest.approx(1.0) and q[-1] == pytest.approx(1.0)
    assert q[1] == pytest.approx(1.0)  # no control yet: the treated's outcomes
    assert uplift.observed_uplift(treated, ordered) == pytest.approx(0.25)
    assert uplift.random_auuc(treated, ordered) == pytest.approx(0.125)
    x, u = uplift.uplift_curve(scores, treated, ordered)
    assert u[4] == pytest.approx((1.0 - 0.5) * 4) and u[-1] == pytest.approx(0.25 * 8)
    assert uplift.top_uplift(scores, treated, ordered, share=0.5) == pytest.approx(0.5)
    # Equal scores enter together: one point for the whole tie
    x, q = uplift.qini_curve([1] * 8, treated, ordered)
    assert x.tolist() == [0, 1] and uplift.qini_coefficient([1] * 8, treated, ordered) == 0


def test_refuses_what_it_cannot_learn_from() -> None:
    frame, treated, ordered, _ = subscribers(400, seed=1, treated_share=0.9)
    # No hold-out at all
    with pytest.raises(InputError, match="no hold-out: all 400 subscribers were treated"):
        uplift.check_groups(np.ones(400, bool), ordered, where="campaign 3")
    # A hold-out too small: the group and its size are named
    small = treated.copy()
    small[np.flatnonzero(~treated)[30:]] = True
    with pytest.raises(InputError, match=r"campaign 3: the hold-out \(control\) group has "
                                         r"30 subscribers; .* at least 50"):
        uplift.train_uplift(frame, small, ordered, where="campaign 3")
    # Nobody in the control group clicked (held-out subscribers get no message)
    _, half, ordered, _ = subscribers(400, seed=1)
    with pytest.raises(InputError, match=r"no subscriber of the hold-out \(control\) group "
                                         r"\(\d+\) has 'clicked'.*such as ordered"):
        uplift.check_groups(half, ordered & half, outcome_name="clicked", where="campaign 3")
    with pytest.raises(InputError, match="--method 'best'"):
        uplift.fit_uplift(frame, treated, ordered, method="best")
    with pytest.raises(InputError, match="--test-size 1.5"):
        uplift.train_uplift(frame, half, ordered, test_size=1.5)
    with pytest.raises(InputError, match="outcome: value 2 at position 0"):
        uplift.qini_curve([1.0], [True], [2])


def test_model_saves_loads_and_scores_arrays(tmp_path, data) -> None:
    frame, treated, ordered, _ = data
    model = uplift.fit_uplift(frame.to_numpy(), treated, ordered, method="transformed",
                              learner="linear")
    assert model.features == ["x0", "x1", "x2", "x3"]
    path = uplift.save(model, tmp_path / "m.joblib")
    again = uplift.load(path)
    assert np.allclose(again.predict(frame.to_numpy()[:5]), model.predict(frame.to_numpy()[:5]))
    with pytest.raises(InputError, match="columns missing: x3"):
        again.predict(pd.DataFrame(frame.to_numpy()[:, :3], columns=["x0", "x1", "x2"]))
    with pytest.raises(InputError, match="no such model"):
        uplift.load(tmp_path / "none.joblib")
    # And the Qini chart is one self-contained page (plotly.js inlined, no CDN)
    x, q = uplift.qini_curve(model.predict(frame.to_numpy()), treated, ordered)
    page = write_chart(qini_chart({"model": (x, q)}, title="t"), tmp_path / "q.html")
    html = page.read_text(encoding="utf-8")
    assert '<script src="https://cdn.plot.ly' not in html and len(html) > 1_000_000


def test_a_group_with_one_responder_cannot_be_split() -> None:
    frame, treated, ordered, _ = subscribers(400, seed=1)
    one = ordered & (treated | (np.cumsum(~treated & ordered) == 1))
    with pytest.raises(InputError, match=r"the hold-out \(control\) group has 1 subscriber "
                                         "with the outcome: too few"):
        uplift.train_uplift(frame, treated, one)
