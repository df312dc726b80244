"""A fused, compiled float64 kernel of bench/arena.py's case beside pfhedge: #4's target's floor.

bench/arena.py's target asks the arena to score delta, Whalley-Wilmott and no hedge on 100,000
paths x 30 steps in less time than pfhedge 0.23 takes to hedge the same paths with delta alone.
This benchmark asks whether any implementation of the arena's work could: it writes that work
as one fused loop compiled by numba (no temporaries, no Python per step, every path's whole
episode in registers) and times it beside pfhedge's delta hedger, in turns, in one process.

Per path and step the kernel computes what the arena's episode build computes, in float64: the
GBM step from a standard normal, the short call's Black-Scholes price, delta, gamma, vega and
theta (the marks and the P&L attribution's greeks), and the EWMA realised vol; then, for each of
the three hedgers, its position (the delta hedge; the previous hedge clipped into Whalley and
Wilmott's band of risk aversion 0.1, :func:`hedgearena.baselines.bands.whalley_wilmott_half_width`;
no hedge), the trade's proportional cost and the P&L (option mark-to-market, hedge P&L, cost),
the hedge unwound at the end. It keeps each path's totals only, not the arena's per-step
records, metrics or standard errors: it is a lower bound of the arena's work. ``delta_only``
is the same loop with pfhedge's work alone (the spot, the delta, the delta hedge's cost and
P&L). The normals are numpy's (``default_rng(0).standard_normal``, float64), timed with the
kernel; the kernel is compiled before the first timed round.

Its mean transaction cost of the delta hedge should match the arena's (27.35 on seed 0,
``mean_cost_delta`` of bench/results/arena.json) within Monte Carlo error (its normals are
not the arena's): the same case. The JSON records each round's seconds, the ratios to
pfhedge within each round and the best times' ratios.

The same question for #3's vector env (``vector_vs_kernel_16384`` of bench/env_throughput.py,
target 0.35): :func:`vector_env` fuses a simplified ShortCall-v0 vector env (the GBM step, the
call's price and four greeks, the realised vol, a float32 observation of ten entries, the env's
twelve less its constant cost and liquidity entries and with simpler greek scalings, the
accounting of a given target position) on one thread at 16,384 paths, and
``fused_vector_vs_kernel_16384`` is its path-steps/s over the inputs/s of the bare kernel of
bench/kernel.py (d1 and one ndtr, numpy and scipy, one thread), the two in turns.

numba is not a dependency of hedgearena. ``make bench-floor`` installs numba 0.68.1 into
``.venv-pfhedge`` (pfhedge 0.23's venv, numpy < 2) and runs this there; pfhedge's hedger is
timed in a process of its own (bench/pfhedge_delta.py, as bench/arena.py does: numba's idle
worker threads would otherwise slow torch's), with as many threads. It never imports
hedgearena.

Usage: ``PYTHON bench/fused_floor.py [--out bench/results/fused_floor.json] [--paths 100000]
[--repeats 5] [--threads 2]`` (``PYTHON``: a Python with numba, scipy and pfhedge 0.23).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numba
import numpy as np
import torch
from numba import prange

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel import kernel_rate
from pfhedge_delta import PfhedgeProcess

STEPS = 30
DT = 1 / 250
SIGMA = 0.2
SPOT0 = STRIKE = 100.0
CONTRACTS = 100.0  # one short call on 100 shares
COST = 1e-3
RISK_AVERSION = 0.1
HALFLIFE = 10.0  # the arena's realised_vol_halflife, steps
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@numba.njit(inline="always")
def _greeks(spot: float, tau: float) -> tuple[float, float, float, float, float]:
    """Price, delta, gamma, vega and theta of one call (r = q = 0); the payoff at expiry."""
    if tau <= 0.0:
        return max(spot - STRIKE, 0.0), 1.0 if spot > STRIKE else 0.0, 0.0, 0.0, 0.0
    root = math.sqrt(tau)
    width = SIGMA * root
    d1 = (math.log(spot / STRIKE) + 0.5 * width * width) / width
    n1 = 0.5 * (1.0 + math.erf(d1 * INV_SQRT_2))
    n2 = 0.5 * (1.0 + math.erf((d1 - width) * INV_SQRT_2))
    pdf = math.exp(-0.5 * d1 * d1) * INV_SQRT_2PI
    return (spot * n1 - STRIKE * n2, n1, pdf / (spot * width), spot * pdf * root,
            -spot * pdf * SIGMA / (2.0 * root))


@numba.njit(parallel=True)
def three_hedgers(normals: np.ndarray, out: np.ndarray) -> None:
    """The arena's case for delta, Whalley-Wilmott 0.1 and no hedge: totals per path.

    ``normals`` ``(n_paths, STEPS)``; ``out`` ``(n_paths, 9)``: each hedger's P&L (3), the
    delta hedge's and the band's transaction costs (2), the sums of gamma, vega and theta the
    attribution reads (3) and of the realised vol the observations carry (1).
    """
    drift, scale = -0.5 * SIGMA * SIGMA * DT, SIGMA * math.sqrt(DT)
    decay = 0.5 ** (1.0 / HALFLIFE)
    for p in prange(normals.shape[0]):
        spot = SPOT0
        price, delta, gamma, vega, theta = _greeks(spot, STEPS * DT)
        variance = SIGMA * SIGMA
        hedge_d = hedge_w = 0.0
        pnl_d = pnl_w = pnl_n = cost_d = cost_w = 0.0
        sum_gamma = sum_vega = sum_theta = sum_vol = 0.0
        for t in range(STEPS + 1):
            if t > 0:  # the market moves, the book and the hedges are marked
                move = math.exp(drift + scale * normals[p, t - 1])
                new_spot = spot * move
                new_price, delta, gamma, vega, theta = _greeks(new_spot, (STEPS - t) * DT)
                option_mtm = -CONTRACTS * (new_price - price)
                pnl_d += option_mtm + hedge_d * (new_spot - spot)
                pnl_w += option_mtm + hedge_w * (new_spot - spot)
                pnl_n += option_mtm
                variance = decay * variance + (1.0 - decay) * math.log(move) ** 2 / DT
                spot, price = new_spot, new_price
            sum_gamma += gamma
            sum_vega += vega
            sum_vol += math.sqrt(variance)
            sum_theta += theta
            if t < STEPS:
                target_d = CONTRACTS * delta
                book_gamma = CONTRACTS * gamma
                half = (1.5 * COST * spot * book_gamma * book_gamma / RISK_AVERSION) ** (1.0 / 3.0)
                target_w = min(max(hedge_w, target_d - half), target_d + half)
            else:  # the unwind
                target_d = target_w = 0.0
            trade_cost = COST * spot * abs(target_d - hedge_d)
            cost_d += trade_cost
            pnl_d -= trade_cost
            trade_cost = COST * spot * abs(target_w - hedge_w)
            cost_w += trade_cost
            pnl_w -= trade_cost
            hedge_d, hedge_w = target_d, target_w
        out[p, 0], out[p, 1], out[p, 2] = pnl_d, pnl_w, pnl_n
        out[p, 3], out[p, 4] = cost_d, cost_w
        out[p, 5], out[p, 6], out[p, 7], out[p, 8] = sum_gamma, sum_vega, sum_theta, sum_vol


@numba.njit(parallel=True)
def delta_only(normals: np.ndarray, out: np.ndarray) -> None:
    """pfhedge's work: the spot, the delta and the delta hedge's cost and P&L, ``(n_paths, 2)``."""
    drift, scale = -0.5 * SIGMA * SIGMA * DT, SIGMA * math.sqrt(DT)
    for p in prange(normals.shape[0]):
        spot, hedge, pnl, cost = SPOT0, 0.0, 0.0, 0.0
        for t in range(STEPS + 1):
            if t > 0:
                new_spot = spot * math.exp(drift + scale * normals[p, t - 1])
                pnl += hedge * (new_spot - spot)
                spot = new_spot
            tau = (STEPS - t) * DT
            if t < STEPS:
                width = SIGMA * math.sqrt(tau)
                d1 = (math.log(spot / STRIKE) + 0.5 * width * width) / width
                target = CONTRACTS * 0.5 * (1.0 + math.erf(d1 * INV_SQRT_2))
            else:
                target = 0.0
            trade_cost = COST * spot * abs(target - hedge)
            cost += trade_cost
            pnl -= trade_cost
            hedge = target
        out[p, 0] = pnl - CONTRACTS * max(spot - STRIKE, 0.0)
        out[p, 1] = cost


VECTOR_PATHS = 16_384
N_FEATURES = 10


@numba.njit
def vector_env(normals: np.ndarray, actions: np.ndarray, obs: np.ndarray, out: np.ndarray
               ) -> None:
    """ShortCall-v0's vector env fused, one thread: episodes of ``(STEPS, n_paths)`` steps.

    Per path and step the GBM step, the call's price and four greeks, the realised vol, the
    float32 observation (``N_FEATURES`` entries: time, log-moneyness, the book's delta, gamma,
    vega, theta, the hedge, the model delta, implied and realised vol) and the accounting of
    the action's target position (``actions`` in [-1, 1] times 1.5 notionals; its cost, the
    P&L), the hedge unwound at the end; ``out`` each path's P&L.
    """
    drift, scale = -0.5 * SIGMA * SIGMA * DT, SIGMA * math.sqrt(DT)
    decay = 0.5 ** (1.0 / HALFLIFE)
    for p in range(normals.shape[1]):
        spot, hedge, pnl, variance = SPOT0, 0.0, 0.0, SIGMA * SIGMA
        price, delta, gamma, vega, theta = _greeks(spot, STEPS * DT)
        for t in range(STEPS + 1):
            if t > 0:
                move = math.exp(drift + scale * normals[t - 1, p])
                new_spot = spot * move
                new_price, delta, gamma, vega, theta = _greeks(new_spot, (STEPS - t) * DT)
                pnl += -CONTRACTS * (new_price - price) + hedge * (new_spot - spot)
                variance = decay * variance + (1.0 - decay) * math.log(move) ** 2 / DT
                spot, price = new_spot, new_price
            if t < STEPS:
                row = obs[t, p]
                row[0], row[1] = (STEPS - t) * DT, math.log(spot / STRIKE)
                row[2], row[3] = -CONTRACTS * delta, -CONTRACTS * gamma * spot
                row[4], row[5] = -CONTRACTS * vega / 100.0, -CONTRACTS * theta / 100.0
                row[6], row[7] = hedge / CONTRACTS, delta
                row[8], row[9] = SIGMA, math.sqrt(variance)
                target = actions[t, p] * 1.5 * CONTRACTS
            else:
                target = 0.0
            pnl -= COST * spot * abs(target - hedge)
            hedge = target
        out[p] = pnl


def vector_rate(n_paths: int) -> float:
    """Path-steps per second of :func:`vector_env` on ``n_paths``, normals and actions drawn."""
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    normals = rng.standard_normal((STEPS, n_paths))
    actions = rng.uniform(-1.0, 1.0, (STEPS, n_paths)).astype(np.float32)
    obs = np.empty((STEPS, n_paths, N_FEATURES), dtype=np.float32)
    vector_env(normals, actions, obs, np.empty(n_paths))
    return n_paths * STEPS / (time.perf_counter() - start)


def timed(kernel: numba.core.registry.CPUDispatcher, n_paths: int, width: int
          ) -> tuple[float, np.ndarray]:
    """Seconds of drawing the normals and running ``kernel`` on ``n_paths``, and its totals."""
    start = time.perf_counter()
    normals = np.random.default_rng(0).standard_normal((n_paths, STEPS))
    out = np.empty((n_paths, width))
    kernel(normals, out)
    return time.perf_counter() - start, out


def arena_mean_cost() -> float | None:
    """The arena's mean transaction cost of the delta hedge (bench/results/arena.json)."""
    path = Path(__file__).resolve().parent / "results" / "arena.json"
    if not path.exists():
        return None
    return float(json.loads(path.read_text())["mean_cost_delta"])


def main() -> None:
    """Run the rounds, print the figures and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/fused_floor.json"))
    parser.add_argument("--paths", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="numba's and torch's threads")
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    load_before = [round(x, 2) for x in os.getloadavg()]
    timed(three_hedgers, 64, 9)  # compile
    timed(delta_only, 64, 2)
    pfhedge = PfhedgeProcess(sys.executable, args.threads)  # it warms itself up
    rounds: list[dict[str, float]] = []
    for i in range(args.repeats):
        fused, totals = timed(three_hedgers, args.paths, 9)
        alone, _ = timed(delta_only, args.paths, 2)
        reference = pfhedge.seconds(args.paths)
        rounds.append({"three_hedgers": fused, "delta_only": alone, "pfhedge_delta": reference})
        print(f"repeat {i + 1}/{args.repeats}: fused three hedgers {fused:.3f} s, fused delta "
              f"alone {alone:.3f} s, pfhedge's delta {reference:.3f} s", flush=True)
    pfhedge.close()
    vector_rate(64)  # compile
    vector_rounds = []
    for i in range(args.repeats):  # one thread each, in turns
        vector_rounds.append((vector_rate(VECTOR_PATHS), kernel_rate(1_000_000)))
        print(f"repeat {i + 1}/{args.repeats}: fused vector env {vector_rounds[-1][0]:,.0f} "
              f"path-steps/s, kernel {vector_rounds[-1][1]:,.0f} inputs/s", flush=True)
    vector, kernel = (max(column) for column in zip(*vector_rounds, strict=True))
    best = {key: min(r[key] for r in rounds) for key in rounds[0]}
    cost = totals[:, 3]
    result = {
        "seconds_three_hedgers": best["three_hedgers"],
        "seconds_delta_only": best["delta_only"],
        "pfhedge_delta_seconds": best["pfhedge_delta"],
        "three_hedgers_vs_pfhedge_delta": best["three_hedgers"] / best["pfhedge_delta"],
        "delta_only_vs_pfhedge_delta": best["delta_only"] / best["pfhedge_delta"],
        "target_vs_pfhedge_delta": 1.0,
        "ratio_rounds": {
            "three_hedgers_vs_pfhedge_delta": [round(r["three_hedgers"] / r["pfhedge_delta"], 4)
                                               for r in rounds],
            "delta_only_vs_pfhedge_delta": [round(r["delta_only"] / r["pfhedge_delta"], 4)
                                            for r in rounds],
        },
        "seconds_rounds": rounds,
        "fused_vector_path_steps_per_s_16384": vector,
        "kernel_inputs_per_s": kernel,
        "fused_vector_vs_kernel_16384": vector / kernel,
        "target_vector_vs_kernel_16384": 0.35,
        "vector_ratio_rounds": [round(v / k, 4) for v, k in vector_rounds],
        "mean_cost_delta": float(cost.mean()),
        "mean_cost_delta_se": float(cost.std(ddof=1) / math.sqrt(len(cost))),
        "arena_mean_cost_delta": arena_mean_cost(),
        "paths": args.paths, "steps": STEPS, "threads": args.threads,
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(), "numpy": np.__version__,
        "numba": numba.__version__, "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():
        if not isinstance(value, dict | list):
            print(f"{key:34s} {value}")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
