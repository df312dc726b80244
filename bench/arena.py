"""Arena speed: seconds to score delta, Whalley-Wilmott and no hedge on the same paths.

Case: 100,000 paths x 30 daily steps, GBM sigma 0.2, a short at-the-money call (1 contract on
100 shares), 1e-3 proportional cost. ``seconds`` is the wall time of
``run_arena(config, [delta, Whalley-Wilmott, no hedge], 100_000)``: building the paths (market,
book marks, features) once and stepping the three hedgers through the env's core, best of
``--repeats``. The three read the env's state only (``uses_observations = False``), so the
arena builds no float32 observations for them. For reference, pfhedge 0.23 scores its BS delta
hedger alone on this case in about 0.2 s on one of these machines (target: all three in less
than that). An absolute time has no reference run beside it, so the JSON records every run's
time (``seconds_rounds``) and the load average before and after.

Usage: ``python bench/arena.py [--out bench/results/arena.json] [--paths 100000]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.bands import WhalleyWilmott
from hedgearena.baselines.delta import BlackScholesDelta, NoHedge
from hedgearena.envs.config import make_config

STEPS = 30


def case() -> object:
    """The benchmark's env config."""
    return make_config(
        "ShortCall", market_kwargs={"mu": 0.0, "sigma": 0.2, "spot0": 100.0}, cost=1e-3,
        book={"options": [{"moneyness": 1.0, "expiry_steps": STEPS, "contracts": -1.0}]},
    )


def one_run(n_paths: int) -> dict[str, float]:
    """Wall time of one arena run and its parts."""
    hedgers = [BlackScholesDelta(), WhalleyWilmott(0.1), NoHedge()]
    start = time.perf_counter()
    result = run_arena(case(), hedgers, n_paths=n_paths, seed=0, progress=False)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "build_seconds": result.build_seconds,
            **{f"seconds_{name}": value for name, value in result.seconds.items()},
            "mean_cost_delta": float(np.mean(result.records["delta"].totals["cost"]))}


def main() -> None:
    """Run the benchmark, print the figures and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/arena.json"))
    parser.add_argument("--paths", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    one_run(4096)  # warm up
    runs = []
    for i in range(args.repeats):
        runs.append(one_run(args.paths))
        print(f"repeat {i + 1}/{args.repeats}: {runs[-1]['seconds']:.3f} s", flush=True)
    best = min(runs, key=lambda r: r["seconds"])
    result = {
        **best, "paths": args.paths, "steps": STEPS, "target_seconds": 0.2,
        "repeats": args.repeats, "seconds_rounds": [round(r["seconds"], 4) for r in runs],
        "torch_threads": torch.get_num_threads(), "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(), "numpy": np.__version__,
    }
    for key, value in result.items():
        print(f"{key:<32} {value:,.4f}" if isinstance(value, float) else f"{key:<32} {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
