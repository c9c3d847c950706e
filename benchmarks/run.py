"""Run shipped benchmarks several times, alone, and keep every JSON line.

    .venv/bin/python benchmarks/run.py synth:10000000:3 policy-batch:1000000:5 ...

Each argument is NAME[:SCALE[:RUNS]]. Every run is ``jingxin bench NAME --scale SCALE`` in
a fresh process; its last line (one JSON object) is appended to
``benchmarks/results/NAME.jsonl`` and the median of every numeric top-level figure over
the runs is printed. Run it on a quiet machine: nothing else should use the cores.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
JINGXIN = Path(sys.executable).with_name("jingxin")


def run_once(name: str, scale: int | None) -> dict:
    command = [str(JINGXIN), "bench", name] + (["--scale", str(scale)] if scale else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def medians(results: list[dict]) -> dict:
    keys = [k for k, v in results[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    return {k: statistics.median(r[k] for r in results if k in r) for k in keys}


def main(args: list[str]) -> None:
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    for arg in args:
        name, _, rest = arg.partition(":")
        scale_text, _, runs_text = rest.partition(":")
        scale = int(scale_text) if scale_text else None
        runs = int(runs_text) if runs_text else 3
        results = []
        for i in range(runs):
            result = run_once(name, scale)
            results.append(result)
            with open(out / f"{name}.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(result, ensure_ascii=False, sort_keys=True) + "\n")
            print(f"{name} run {i + 1}/{runs} done", file=sys.stderr, flush=True)
        print(json.dumps({"benchmark": name, "scale": scale, "runs": runs,
                          "median": medians(results)}, ensure_ascii=False, sort_keys=True),
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
