"""The real ``jingxin`` entry point: review exit codes that scripts rely on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

JINGXIN = Path(sys.executable).with_name("jingxin")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["review", "【精信】您的验证码为482913。"], 0),
        (["review", "【精信】兼职刷单，日赚千元"], 1),
        (["review", "x", "--lexicon", "/nonexistent/words.txt"], 2),
    ],
)
def test_review_exit_codes_from_the_console_script(
    tmp_path: Path, args: list[str], code: int
) -> None:
    if not JINGXIN.exists():
        pytest.skip("the jingxin console script is not installed next to this Python")
    env = {**os.environ, "JINGXIN_CONFIG": os.devnull}
    done = subprocess.run(
        [str(JINGXIN), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == code, (done.stdout, done.stderr)
