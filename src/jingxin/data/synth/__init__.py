"""The synthetic operator: a realistic, reproducible warehouse for development, tests,
benchmarks and demos (``jingxin synth``).

:func:`synthesize` writes every table of :mod:`jingxin.data.warehouse.schema` as Parquet
plus ``synth.json`` (parameters, row counts, the ground truth of the label models). The
behaviour model is described in docs/synth.md.
"""

from jingxin.data.synth.generator import CHUNK, Outcome, SynthParams, synthesize

__all__ = ["CHUNK", "Outcome", "SynthParams", "synthesize"]
