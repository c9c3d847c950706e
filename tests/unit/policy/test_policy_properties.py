"""Invariants of policy, on random candidates, states and tenant rules (hypothesis)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from policy_strategies import contested_scenarios, scenarios

from jingxin.domain.candidate import Category, Decision, Outcome, Reason
from jingxin.policy.arbitration import decide_many
from jingxin.policy.batch import decide_batch
from jingxin.policy.caps import periods
from jingxin.policy.columns import batch_table, decisions_of, ledger_table
from jingxin.policy.decide import decide
from jingxin.policy.localtime import (
    day_number,
    day_of_date,
    local_us,
    minute_of_day,
    subscriber_zone,
    to_us,
)
from jingxin.policy.state import ContactState, state_view
from jingxin.policy.timing import in_quiet_hours

FEW = settings(max_examples=40, deadline=None)
MANY = settings(max_examples=150, deadline=None)
NEVER_FOR_OTP = {
    Reason.QUIET_HOURS,
    Reason.BLACKOUT,
    Reason.CAP_DAY,
    Reason.CAP_WEEK,
    Reason.CAP_MONTH,
    Reason.CAMPAIGN_CAP_DAY,
    Reason.CAMPAIGN_CAP_WEEK,
    Reason.CAMPAIGN_CAP_MONTH,
    Reason.OUTRANKED,
    Reason.OPTED_OUT,
    Reason.NO_CONSENT,
}


def state_of(states, c) -> ContactState:
    return states.get(c.msisdn) or ContactState(msisdn=c.msisdn)


@MANY
@given(scenarios())
def test_batch_form_equals_single_form(scenario):
    # Given random candidates, states and tenant rules
    now, config, batch, states = scenario
    # When the vectorised batch form and the reference (single form + arbitration) decide
    table = batch_table(batch, states, now)
    batch_decisions = decisions_of(
        decide_batch(table, now=now, config=config, ledger=ledger_table(states))
    )
    reference = decide_many(batch, states, now, config)
    # Then they agree row for row, to the microsecond and reason
    assert batch_decisions == reference


@MANY
@given(contested_scenarios())
def test_batch_form_equals_single_form_when_candidates_compete(scenario):
    # Given valid candidates competing for one or two subscribers' caps
    now, config, batch, states = scenario
    # When both forms decide
    table = batch_table(batch, states, now)
    got = decisions_of(decide_batch(table, now=now, config=config, ledger=ledger_table(states)))
    # Then the winners, the outranked (and whom they lost to) and the instants agree
    assert got == decide_many(batch, states, now, config)


@FEW
@given(scenarios(max_candidates=1))
def test_a_lone_candidate_is_decided_as_by_the_single_form(scenario):
    now, config, batch, states = scenario
    candidate = batch[0]
    assert decide_many(batch, states, now, config) == [
        decide(candidate, state_of(states, candidate), now, config)
    ]


@FEW
@given(scenarios())
def test_otp_is_never_deferred_capped_or_outranked(scenario):
    now, config, batch, states = scenario
    for candidate, decision in zip(batch, decide_many(batch, states, now, config), strict=True):
        if candidate.category != Category.OTP:
            continue
        assert decision.outcome != Outcome.DEFER
        assert not NEVER_FOR_OTP & set(decision.reasons)
        if decision.outcome == Outcome.SEND:
            wanted = candidate.wanted_at or now
            assert decision.send_at == max(now, wanted)


@FEW
@given(contested_scenarios() | scenarios())
def test_no_marketing_is_scheduled_inside_quiet_hours_on_the_local_clock(scenario):
    now, config, batch, states = scenario
    for candidate, decision in zip(batch, decide_many(batch, states, now, config), strict=True):
        if candidate.category != Category.MARKETING or decision.outcome == Outcome.REJECT:
            continue
        rules = config.rules_for(candidate.tenant_id)
        state = state_of(states, candidate)
        # The clock of the visited country when roaming, else the subscriber's, else default.
        zone = subscriber_zone(state.roaming_country, state.timezone, rules.default_timezone)
        minute = minute_of_day(local_us(zone, to_us(decision.send_at)))
        assert not in_quiet_hours(minute, rules.quiet_start_minute, rules.quiet_end_minute), (
            zone,
            decision,
        )


@FEW
@given(contested_scenarios() | scenarios(), st.randoms(use_true_random=False))
def test_caps_hold_for_any_interleaving(scenario, random):
    now, config, batch, states = scenario
    shuffled = list(batch)
    random.shuffle(shuffled)
    decisions = decide_many(shuffled, states, now, config)
    used: Counter = Counter()
    for candidate, decision in zip(shuffled, decisions, strict=True):
        if decision.outcome == Outcome.REJECT or candidate.category == Category.OTP:
            continue
        rules = config.rules_for(candidate.tenant_id)
        state = state_of(states, candidate)
        zone = subscriber_zone(state.roaming_country, state.timezone, rules.default_timezone)
        day = day_number(local_us(zone, to_us(decision.send_at)))
        limits = rules.category_caps(candidate.category)
        for index, (limit, period) in enumerate(zip(limits, periods(day), strict=True)):
            window = (candidate.msisdn, candidate.category, index, period)
            used[window] += 1
            ledger = sum(
                m.category == candidate.category
                and periods(day_of_date(m.local_date))[index] == period
                for m in state.contacts
            )
            assert limit is None or ledger + used[window] <= limit, (window, decision)


@FEW
@given(scenarios())
def test_opted_out_or_complaint_sensitive_subscribers_never_get_marketing(scenario):
    now, config, batch, states = scenario
    now_us = to_us(now)
    for candidate, decision in zip(batch, decide_many(batch, states, now, config), strict=True):
        if candidate.category != Category.MARKETING:
            continue
        state = state_of(states, candidate)
        view = state_view(candidate, state, now_us)
        if view.opted_out or state.complaint_sensitive:
            assert decision.outcome == Outcome.REJECT


@FEW
@given(scenarios(), st.randoms(use_true_random=False))
def test_decisions_are_deterministic_and_independent_of_input_order(scenario, random):
    now, config, batch, states = scenario
    # Given unique idempotency keys (input position only breaks ties between equal keys)
    unique = list({c.idempotency_key: c for c in batch if c.idempotency_key}.values())
    first = decide_many(unique, states, now, config)
    assert decide_many(unique, states, now, config) == first
    order = list(range(len(unique)))
    random.shuffle(order)
    again = decide_many([unique[i] for i in order], states, now, config)
    by_key: dict[str, Decision] = {
        unique[i].idempotency_key: d for i, d in zip(order, again, strict=True)
    }
    assert [by_key[c.idempotency_key] for c in unique] == first
