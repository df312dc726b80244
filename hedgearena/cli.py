"""The command line of hedgearena (``python train.py`` or the ``hedgearena`` console script).

Until the agents and the arena land, the main job is a demo of the environments: it hedges the
default case (``hedgearena/ShortCall-v0``: a short one-month at-the-money call, 1% costs) on the
same paths with no hedge, daily Black-Scholes delta and a fixed no-trade band, through the
native vector env, and prints the cost and risk of each.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from hedgearena.envs.vector_env import VecHedgingEnv

DEMO_POLICIES = {
    "no hedge": ("target", 0.0),
    "delta (daily)": ("fraction", 1.0),
    "band +-0.1 N": ("band", -0.6),
}
"""name: (action_mode, constant action); band -0.6 = half-width 0.2 * 0.5 = 0.1 notional."""


def run_demo(paths: int, seed: int, out: Path | None) -> dict[str, dict[str, float]]:
    """Hedge ``paths`` ShortCall episodes with each demo policy on the same paths (same seed)."""
    results: dict[str, dict[str, float]] = {}
    for name, (mode, action) in DEMO_POLICIES.items():
        env = VecHedgingEnv(num_envs=paths, preset="ShortCall", action_mode=mode, block=paths)
        env.reset(seed=seed)
        actions = np.full((paths, 1), action)
        terminated = np.zeros(paths, dtype=bool)
        while not terminated.all():
            _, _, terminated, _, infos = env.step(actions)
        totals = infos["episode"]
        hedging_cost = totals["initial_premium"] - totals["terminal_pnl"]
        results[name] = {
            "mean_cost": float(np.mean(hedging_cost)),
            "std_cost": float(np.std(hedging_cost)),
            "objective": float(np.mean(hedging_cost) + 1.5 * np.std(hedging_cost)),
            "mean_transaction_cost": float(np.mean(totals["cost"])),
            "premium": float(np.mean(totals["initial_premium"])),
        }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "demo.json").write_text(
            json.dumps({"paths": paths, "seed": seed, "results": results}, indent=2)
        )
    return results


def _print(results: dict[str, dict[str, float]], paths: int, seconds: float) -> None:
    table = Table(
        title=f"ShortCall-v0: hedging cost of a short ATM call, {paths:,} paths ({seconds:.1f} s)"
    )
    for column in (
        "hedger",
        "mean cost",
        "std cost",
        "mean + 1.5 std",
        "transaction cost",
        "premium",
    ):
        table.add_column(column, justify="right")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['mean_cost']:.2f}",
            f"{r['std_cost']:.2f}",
            f"{r['objective']:.2f}",
            f"{r['mean_transaction_cost']:.2f}",
            f"{r['premium']:.2f}",
        )
    Console().print(table)
    print("Hedging cost = premium received - final P&L, currency per option on 100 shares.")


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python train.py [--paths N] [--seed S] [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="train.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--paths", type=int, default=20_000, help="paths per hedger (default 20000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the common paths")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    args = parser.parse_args(argv)
    if args.paths < 1:
        parser.error(f"--paths must be >= 1, got {args.paths}")
    start = time.perf_counter()
    results = run_demo(args.paths, args.seed, args.out)
    _print(results, args.paths, time.perf_counter() - start)
