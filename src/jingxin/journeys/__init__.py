"""Journeys: the subscriber lifecycle of the source documents turned into messages.

A daily scan (:mod:`jingxin.journeys.scan`) asks every trigger (birthday, network-entry
anniversary, plan renewal, holidays, usage, roaming, the query tail, abandoned orders) for
the day's candidates - computed in the warehouse, never with a Python loop over
subscribers - and hands them to the one delivery entry (source ``journey``); multi-step
journeys (:mod:`jingxin.journeys.flow`) carry a subscriber through steps with waits and
branches on what they did. Nothing here writes the outbox or the contact ledger itself.
"""
