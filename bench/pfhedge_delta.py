"""pfhedge's Black-Scholes delta hedger on bench/arena.py's case, timed on request.

The reference side of bench/arena.py's ``seconds_vs_pfhedge_delta``. pfhedge 0.23 needs
numpy < 2, so it runs in a venv of its own (``make bench-pfhedge`` builds ``.venv-pfhedge``) and
this script runs in that venv's Python, started once by bench/arena.py. It never imports
hedgearena.

Protocol: after one untimed warm-up run, each line ``N`` read from stdin runs one timed
``Hedger(BlackScholes(option)).compute_pnl(option, n_paths=N)`` (simulating the GBM paths and
hedging them, as pfhedge's own examples do, under ``torch.no_grad``) and prints one JSON line
``{"seconds": ..., "mean_pnl": ..., "n_paths": N}``; an empty line or end of input stops it.

The case is bench/arena.py's, scale-free: a European call struck at the money on a spot of 1,
maturity 30 steps of 1/250 years, GBM with sigma 0.2 and no drift, 1e-3 proportional cost on
every trade of the underlying. pfhedge computes in float32, the P&L only (no per-step records,
metrics or attribution).

Usage: ``PYTHON bench/pfhedge_delta.py --threads T`` (``PYTHON``: a Python with pfhedge 0.23).
Other benchmarks start and ask it through :class:`PfhedgeProcess` (importable without pfhedge:
pfhedge is imported by the served process only).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

STEPS = 30
DT = 1 / 250


def timed_run(n_paths: int) -> dict[str, float]:
    """Seconds of one pfhedge delta hedge of ``n_paths`` paths, and its mean P&L (per unit)."""
    from pfhedge.instruments import BrownianStock, EuropeanOption
    from pfhedge.nn import BlackScholes, Hedger

    torch.manual_seed(0)
    option = EuropeanOption(BrownianStock(sigma=0.2, cost=1e-3, dt=DT), maturity=STEPS * DT)
    model = BlackScholes(option)
    hedger = Hedger(model, model.inputs())
    start = time.perf_counter()
    with torch.no_grad():
        pnl = hedger.compute_pnl(option, n_paths=n_paths)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "mean_pnl": float(pnl.mean()), "n_paths": n_paths}


class PfhedgeProcess:
    """This script in its own Python process, timing one run per request (its protocol)."""

    def __init__(self, python: str, threads: int) -> None:
        script = Path(__file__).resolve()
        self.process = subprocess.Popen(
            [python, str(script), "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def seconds(self, n_paths: int) -> float:
        """Seconds of one pfhedge delta hedge of ``n_paths`` paths (timed in its process)."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f"{n_paths}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"bench/pfhedge_delta.py exited ({self.process.wait()}): is "
                               "pfhedge 0.23 installed in that Python? (make bench-pfhedge)")
        return float(json.loads(line)["seconds"])

    def close(self) -> None:
        """End the process."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def main() -> None:
    """Serve timed runs, one per line of stdin."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    timed_run(4096)  # warm up
    for line in sys.stdin:
        if not line.strip():
            break
        print(json.dumps(timed_run(int(line))), flush=True)


if __name__ == "__main__":
    main()
