"""How long the `farl` command takes to answer before any work: its help, and refusals of bad input.

    .venv/bin/python bench/bench_cli_start.py [--runs 5]

Each command runs `--runs` times in a fresh process; prints the median wall time of each beside
`python -c pass` (the interpreter's own start). torch and MuJoCo load only for work that needs them,
so every row here stays well under a second on an idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FARL = [sys.executable, "-m", "farl_bringup.cli"]


def commands(tmp: Path) -> list[tuple[str, list[str]]]:
    nowhere = str(tmp / "nowhere")
    return [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("farl --help", [*FARL, "--help"]),
        ("farl sim --help", [*FARL, "sim", "--help"]),
        ("farl sim --episodes -2 (refused)", [*FARL, "sim", "--episodes", "-2"]),
        ("farl replay MISSING (refused)", [*FARL, "replay", nowhere]),
        (
            "farl pretrain --demos MISSING (refused)",
            [*FARL, "pretrain", "--task", "fragile_push_wall", "--demos", nowhere, "--out", str(tmp / "run")],
        ),
        (
            "farl finetune --run MISSING (refused)",
            [*FARL, "finetune", "--run", nowhere, "--steps", "10", "--out", str(tmp / "ft")],
        ),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs of each command (default: %(default)s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name, cmd in commands(Path(tmp)):
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                subprocess.run(cmd, capture_output=True, check=False)
                times.append(time.perf_counter() - t0)
            rows.append((name, statistics.median(times)))
    width = max(len(n) for n, _ in rows)
    for name, t in rows:
        print(f"{name:{width}s}  {t * 1000:7.0f} ms (median of {args.runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
