"""The SMS business hall (短信营业厅): subscribers text short codes to a service number and
are served in SMS - menus, zones 41/42/43, queries, orders with confirmation, referrals,
points, vouchers, surveys and complaints (docs/hall.md).

The hall is a set of handlers on the durable MO inbox (:mod:`jingxin.dispatch.handlers`);
its replies go out through the one delivery entry (source ``hall``, category
``notification``), and so does every other message it sends (a referral offer). It never
writes the outbox or the contact ledger itself.
"""
