"""Analytics: how messages did, and whether they made a difference (issue #16).

What is here now:

- :mod:`jingxin.analytics.stats`: the statistics of experiments on counts: rates with
  Wilson intervals, arms compared (difference with a Newcombe interval, lift, pooled
  two-proportion z-test, Holm-adjusted p-values for A/B/n), uplift against a hold-out as
  incremental conversions, and sample sizes before launch (``jingxin experiment``).

What it will hold: per-arm metrics (delivered, clicked, replied, converted, unsubscribed,
complained) counted from the event log and fed to those statistics; tracked links; a
hold-out on every sender; and the reports built on them. See docs/experiments.md.

Importing the package imports nothing heavy; import the module you need (``stats`` loads
SciPy).
"""
