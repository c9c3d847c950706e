"""``python -m jingxin.cli``: the same as the ``jingxin`` command."""

from jingxin.cli import main

main()
