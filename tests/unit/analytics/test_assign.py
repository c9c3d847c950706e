"""Assignment to experiment arms: deterministic hashing, shares, independence, the record."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jingxin.analytics.assign import HOLDOUT, assign, assign_one, record_assignments, unit
from jingxin.errors import InputError

NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
NUMBERS = [f"+86139{i:08d}" for i in range(100_000)]


def test_unit_is_the_sha256_of_salt_and_number_in_0_1() -> None:
    # Given a few numbers, When hashed, Then each is the first 8 bytes of the digest / 2**64
    # (to the 53 bits a float keeps), the same on every call
    numbers = ["+8613900000001", "+8613900000002", "+8618612345678"]
    got = unit(numbers, "campaign:1:arm")
    for number, value in zip(numbers, got, strict=True):
        word = int.from_bytes(hashlib.sha256(f"campaign:1:arm:{number}".encode()).digest()[:8])
        assert value == pytest.approx(word / 2**64, abs=2**-52)
        assert 0.0 <= value < 1.0
    assert np.array_equal(unit(pa.array(numbers), "campaign:1:arm"), got)
    assert not np.array_equal(unit(numbers, "campaign:2:arm"), got)


def test_a_null_number_has_no_unit_and_no_arm() -> None:
    assert np.isnan(unit(["+8613900000001", None], "s")[1])
    assert assign(pa.array(["+8613900000001", None]), experiment="e").to_pylist() == ["main", None]


def test_shares_follow_the_hold_out_and_the_weights_on_100k_numbers() -> None:
    # Given 100,000 numbers, a 10% hold-out and arms weighted 1:2:1
    arms = assign(NUMBERS, experiment="campaign:7", arms=[("A", 1), ("B", 2), ("C", 1)],
                  holdout=0.1).to_numpy(zero_copy_only=False)  # fmt: skip
    # Then each share is within 4 standard errors of what was asked
    n = len(NUMBERS)
    for name, share in ((HOLDOUT, 0.1), ("A", 0.225), ("B", 0.45), ("C", 0.225)):
        tolerance = 4 * (share * (1 - share) / n) ** 0.5
        assert abs((arms == name).mean() - share) < tolerance, name


def test_the_hold_out_and_the_arms_are_independent() -> None:
    # Given the same experiment with and without a hold-out
    plain = assign(NUMBERS, experiment="campaign:3", arms=[("A", 1), ("B", 1)])
    held = assign(NUMBERS, experiment="campaign:3", arms=[("A", 1), ("B", 1)], holdout=0.2)
    plain, held = (a.to_numpy(zero_copy_only=False) for a in (plain, held))
    out = held == HOLDOUT
    # Then the treated keep the arm they would have had without a hold-out
    assert (held[~out] == plain[~out]).all()
    # And the held-out are split between the arms' hashes as everyone else is
    share_a_held, share_a_treated = (plain[out] == "A").mean(), (plain[~out] == "A").mean()
    assert abs(share_a_held - share_a_treated) < 4 * (0.25 / out.sum()) ** 0.5
    # And the two hashes do not correlate
    corr = np.corrcoef(unit(NUMBERS[:20_000], "campaign:3:holdout"),
                       unit(NUMBERS[:20_000], "campaign:3:arm"))[0, 1]  # fmt: skip
    assert abs(corr) < 0.03


def test_the_hold_out_does_not_depend_on_the_arms() -> None:
    one = assign(NUMBERS[:5000], experiment="e", holdout=0.05).to_pylist()
    two = assign(NUMBERS[:5000], experiment="e", arms=[("A", 3), ("B", 1)],
                 holdout=0.05).to_pylist()  # fmt: skip
    assert [a == HOLDOUT for a in one] == [a == HOLDOUT for a in two]


@settings(max_examples=40, deadline=None)
@given(
    numbers=st.lists(st.from_regex(r"\+861[3-9][0-9]{9}", fullmatch=True), max_size=30),
    weights=st.lists(st.floats(min_value=0.01, max_value=100), min_size=1, max_size=4),
    holdout=st.sampled_from([0.0, 0.05, 0.3, 0.5, 0.99]),
    experiment=st.text(min_size=1, max_size=12),
)
def test_assign_one_gives_the_same_answer_as_assign(numbers, weights, holdout, experiment) -> None:
    arms = [(f"arm{i}", w) for i, w in enumerate(weights)]
    many = assign(numbers, experiment=experiment, arms=arms, holdout=holdout).to_pylist()
    assert many == [assign_one(n, experiment=experiment, arms=arms, holdout=holdout)
                    for n in numbers]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"holdout": 1.0}, r"holdout 1.0: a share of at least 0 and below 1"),
    ({"holdout": -0.1}, r"holdout -0.1"),
    ({"holdout": True}, r"holdout True"),
    ({"arms": []}, r"at least one arm"),
    ({"arms": [("A", 1), ("A", 2)]}, r"arm A is given more than once"),
    ({"arms": [("holdout", 1)]}, r"kept for the hold-out"),
    ({"arms": [("A", 0)]}, r"arm A: weight 0 must be a number above 0"),
    ({"arms": [("x" * 33, 1)]}, r"1 to 32 characters"),
])  # fmt: skip
def test_bad_arms_and_shares_are_refused_by_name(kwargs, message) -> None:
    with pytest.raises(InputError, match=message):
        assign(["+8613900000001"], experiment="e", **kwargs)
    with pytest.raises(InputError, match=message):
        assign_one("+8613900000001", experiment="e", **kwargs)


def test_record_assignments_is_idempotent_and_flags_the_hold_out(tmp_path) -> None:
    from sqlalchemy import select

    from jingxin.data.store import open_store
    from jingxin.data.store.models import Base, ExperimentAssignment

    store = open_store(f"sqlite:///{tmp_path / 'jx.db'}")
    Base.metadata.create_all(store.engine)
    try:
        numbers = pa.array(["+8613900000001", "+8613900000002", "+8613900000001", None])
        arms = pa.array(["A", HOLDOUT, "A", "B"])
        # When recorded twice (a number twice in the input, a null number)
        first = record_assignments(store, experiment="campaign:1", tenant_id="t",
                                   msisdns=numbers, arms=arms, at=NOON)  # fmt: skip
        again = record_assignments(store, experiment="campaign:1", tenant_id="t",
                                   msisdns=numbers, arms=arms, at=NOON)  # fmt: skip
        # Then each number is recorded once, the hold-out flagged
        assert (first, again) == (2, 0)
        with store.sessions() as s:
            rows = s.execute(select(ExperimentAssignment.msisdn, ExperimentAssignment.arm,
                                    ExperimentAssignment.holdout,
                                    ExperimentAssignment.assigned_at)
                             .order_by(ExperimentAssignment.msisdn)).all()  # fmt: skip
        assert [tuple(r) for r in rows] == [("+8613900000001", "A", False, NOON),
                                            ("+8613900000002", HOLDOUT, True, NOON)]
        with pytest.raises(InputError, match="aware"):
            record_assignments(store, experiment="e", tenant_id="t", msisdns=["+8613900000001"],
                               arms=["A"], at=NOON.replace(tzinfo=None))  # fmt: skip
    finally:
        store.dispose()
