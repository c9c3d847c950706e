"""``jingxin demo``: the whole platform end to end on embedded defaults, in a couple of
minutes. Each step runs the real ``jingxin`` commands and prints them, so the demo is also
a tour of the command line.
"""

from jingxin.demo.steps import run_demo

__all__ = ["run_demo"]
