"""Black-Scholes pricing throughput, measured side by side with a bare numpy kernel in one run.

- ``greeks_rate``: inputs/s of ``black_scholes_greeks(..., select=(price, delta, gamma, vega))``
  on 10^6 random inputs (spot, strike, tau, vol all arrays; r, q scalars; calls), numpy in,
  numpy out.
- ``kernel_rate``: inputs/s of the bare kernel on the same inputs: ``d1`` and one
  ``scipy.special.ndtr(d1)`` (no price, no greeks).
- ``ratio``: greeks over kernel (target >= 0.5: all four numbers for at most twice the cost of
  one cdf).
- ``kernel_same_cdf_rate`` and ``ratio_same_cdf`` (for reference, not the target's): the same
  kernel with the normal cdf the pricing itself uses
  (:func:`hedgearena.envs.normal.normal_cdf`, torch's SIMD erfc on one thread), which is about
  twice as fast as ``ndtr``'s scalar loop; against it the ratio is about half of ``ratio``.

Both run on one core (torch's intra-op threads are set to 1 for the run; the numpy kernel is
single-threaded anyway); ``greeks_rate_all_threads`` adds the rate with torch's default threads.
Each figure is the best of ``--repeats`` runs, interleaved; ``ratio_rounds`` records the ratio
within each round (its spread is the machine's noise) and the load average is recorded.

Usage: ``python bench/pricing.py [--out bench/results/pricing.json] [--n 1000000]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hedgearena.envs.black_scholes import black_scholes_greeks
from hedgearena.envs.normal import normal_cdf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel import DIVIDEND, RATE, inputs, kernel


def kernel_same_cdf(s: np.ndarray, k: np.ndarray, tau: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The reference with the pricing's own normal cdf (torch's erfc) instead of ``ndtr``."""
    d1 = (np.log(s / k) + (RATE - DIVIDEND + 0.5 * v * v) * tau) / (v * np.sqrt(tau))
    return normal_cdf(d1)


def greeks(s: np.ndarray, k: np.ndarray, tau: np.ndarray, v: np.ndarray) -> object:
    """Price, delta, gamma and vega of calls."""
    return black_scholes_greeks(
        s, k, tau, v, RATE, DIVIDEND, True, select=("price", "delta", "gamma", "vega")
    )


def rate(fn: object, args: tuple[np.ndarray, ...]) -> float:
    """Inputs per second of one call."""
    start = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return args[0].size / (time.perf_counter() - start)


def main() -> None:
    """Run the benchmark, print the figures and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/pricing.json"))
    parser.add_argument("--n", type=int, default=1_000_000, help="inputs per call")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    data = inputs(args.n)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    greeks(*data), kernel(*data), kernel_same_cdf(*data)  # warm up
    greeks_rates, kernel_rates, same_cdf_rates = [], [], []
    for i in range(args.repeats):
        kernel_rates.append(rate(kernel, data))
        greeks_rates.append(rate(greeks, data))
        same_cdf_rates.append(rate(kernel_same_cdf, data))
        print(f"repeat {i + 1}/{args.repeats}: kernel {kernel_rates[-1]:,.0f}/s, "
              f"greeks {greeks_rates[-1]:,.0f}/s, "
              f"kernel (same cdf) {same_cdf_rates[-1]:,.0f}/s", flush=True)
    torch.set_num_threads(threads)
    all_threads = max(rate(greeks, data) for _ in range(args.repeats))
    result = {
        "n": args.n,
        "greeks_rate": max(greeks_rates),
        "kernel_rate": max(kernel_rates),
        "ratio": max(greeks_rates) / max(kernel_rates),
        "target_ratio": 0.5,
        "kernel_same_cdf_rate": max(same_cdf_rates),
        "ratio_same_cdf": max(greeks_rates) / max(same_cdf_rates),
        "repeats": args.repeats,
        "ratio_rounds": [round(g / k, 4) for g, k in zip(greeks_rates, kernel_rates, strict=True)],
        "greeks_rate_all_threads": all_threads,
        "torch_threads": 1,  # what the ratio was measured with
        "torch_threads_all": threads,  # greeks_rate_all_threads
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
    for key, value in result.items():
        print(f"{key:<24} {value:,.3f}" if isinstance(value, float) else f"{key:<24} {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
