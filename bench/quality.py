"""Quality: the learned hedgers against daily delta and the best bands, Cao et al.'s case.

Case (Cao, Chen, Hull and Poulos 2021, "Deep hedging of derivatives using reinforcement
learning"): GBM mu 5%, sigma 20%, S0 = K = 100, r = q = 0, 250 days a year; short one
at-the-money call on 100 shares, the hedge starting at zero shares; 1% of traded value on every
trade, the unwind at expiry included; daily rebalancing. Maturities one month (20 days,
``hedgearena/ShortCall-v0`` as it is) and three months (60 days). The objective is
``Y = mean(C) + 1.5 std(C)`` of the hedging cost ``C`` (currency per episode; lower is better).

The cost is read as in Cao et al.'s accounting-P&L formulation, whose improvements over delta
(about 16% and 29%) the targets are set against: each step's accounting P&L is
``R = V_{i+1} - V_i + H_i (S_{i+1} - S_i) - kappa |S_{i+1} (H_{i+1} - H_i)|`` with the option
``V`` marked to Black-Scholes, and the cost is ``-sum R``; for a short option ``V_0`` is minus
the premium received, so this cost is the arena's hedging cost (``premium_0 - PnL_T``, which
counts the payout and not the premium) less the premium. The premium is the same number on every
path, so both readings rank hedgers alike and have the same std; only ``Y`` moves by the premium,
and with it the ratios ``1 - Y / Y_delta``. Both are written.

For each maturity the script

1. trains every agent of ``configs/quality_<maturity>_<agent>.yml`` (hedgearena run configs:
   the env, the agent's algorithm, hyperparameters and view of the env) through hedgearena's
   own :func:`hedgearena.training.train_agent`, timing it (the run folders go to ``--runs``;
   ``python train.py evaluate <folder>`` scores one again);
2. tunes the three band families on tuning paths (Whalley-Wilmott's and Zakamouline's risk
   aversion, the constant band's tolerance; :func:`hedgearena.baselines.benchmark.tune_family`,
   seed ``--tune-seed``);
3. scores daily delta, the three tuned bands and every agent on the same ``--paths`` fresh
   paths (seed ``--seed``, used by no training, validation or tuning) with the arena;
4. prints the tables and writes JSON: under ``1m`` and ``3m``, in the accounting reading,
   ``Y_delta``, ``Y_ww``, ``Y_zakamouline``, ``Y_constant_band``, ``Y_best_band`` (the lowest
   of the three bands, named by ``best_band_name``), ``Y_best_agent``, ``Y_sb3`` (the best
   stable-baselines3 agent's), each hedger's ``Y``, its standard error, ``mean``, ``std`` and
   the agents' training seconds, the improvement ratios ``1 - Y / Y_delta``, the premium and
   the paths' seed; and under ``including_premium`` the same numbers with the premium
   counted (see :func:`cost_of`).

Usage::

    python bench/quality.py                       # both maturities, 100,000 paths (15 min)
    python bench/quality.py --maturities 1m --agents deep_hedging ppo
    python bench/quality.py --quick               # smoke run: tiny budgets, 4,096 paths
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from hedgearena.agents.sb3 import SB3_ALGOS
from hedgearena.baselines import metrics
from hedgearena.baselines.arena import ArenaResult, run_arena
from hedgearena.baselines.benchmark import BenchmarkSettings, tune_family
from hedgearena.baselines.delta import BlackScholesDelta
from hedgearena.baselines.hedger import Hedger
from hedgearena.baselines.registry import family_member
from hedgearena.envs.config import EnvConfig, make_config
from hedgearena.run_config import RunConfig, load_config
from hedgearena.training import agent_name, load_agent, train_run

ROOT = Path(__file__).resolve().parent.parent
MATURITIES = {"1m": 20, "3m": 60}
"""Maturity label -> days (market steps) of the short call."""
BANDS = {
    "whalley_wilmott": ("ww", "Whalley-Wilmott", "risk_aversion"),
    "zakamouline": ("zakamouline", "Zakamouline", "risk_aversion"),
    "constant_band": ("band", "constant band", "tolerance"),
}
"""The tuned bands: JSON key -> (family of the registry, label, the parameter tuned)."""
C = 1.5
"""Weight of the cost's standard deviation in the objective (Cao et al.)."""
READINGS = {
    "accounting": "accounting hedging cost C - premium_0 = -(sum of the accounting P&L)",
    "including_premium": "hedging cost C = premium_0 - PnL_T (what the book pays out)",
}
"""The two readings of the hedging cost, the headline one first (see :func:`cost_of`)."""
QUICK_HYPERPARAMS: dict[str, dict[str, Any]] = {
    "deep_hedging": {"steps": 4, "batch_size": 256, "n_train": 512, "n_valid": 256,
                     "eval_every": 2, "checkpoint_every": 4},
    "ppo": {"n_timesteps": 2048, "n_envs": 32, "n_steps": 32, "batch_size": 256},
    "recurrent_ppo": {"n_timesteps": 2048, "n_envs": 32, "n_steps": 32, "batch_size": 256},
    **{algo: {"n_timesteps": 2048, "n_envs": 32, "learning_starts": 256, "batch_size": 64}
       for algo in ("sac", "td3", "ddpg", "tqc")},
}
"""Tiny budgets of ``--quick`` (on top of each config's hyperparameters)."""


def case(maturity: str) -> EnvConfig:
    """The env config of a maturity (``ShortCall-v0`` with the call's expiry)."""
    days = MATURITIES[maturity]
    return make_config("ShortCall", book={"options": [
        {"moneyness": 1.0, "expiry_steps": days, "contracts": -1.0}]})


def quality_configs(maturity: str, agents: list[str] | None) -> dict[str, Path]:
    """Agent name -> its run config file ``configs/quality_<maturity>_<agent>.yml``."""
    found = {p.stem.removeprefix(f"quality_{maturity}_"): p
             for p in sorted((ROOT / "configs").glob(f"quality_{maturity}_*.yml"))}
    if agents is None:
        return found
    missing = sorted(set(agents) - set(found))
    if missing:
        raise SystemExit(f"no configs/quality_{maturity}_<agent>.yml for {missing}; "
                         f"found {sorted(found)}")
    return {a: found[a] for a in agents}


def load_run(path: Path, maturity: str, runs: Path, quick: bool) -> RunConfig:
    """The run config of an agent, its outputs under ``runs`` (tiny budgets with ``quick``)."""
    name = path.stem.removeprefix(f"quality_{maturity}_")
    config = load_config(path, [f"out={runs}", f"name=quality-{maturity}-{name}"])
    if config.env.config() != case(maturity):
        raise SystemExit(f"{path}: its env is not the {maturity} case of this benchmark")
    if quick:
        hyperparams = {**config.agent.hyperparams, **QUICK_HYPERPARAMS[config.agent.algo]}
        agent = config.agent.model_copy(update={"hyperparams": hyperparams, "eval_paths": 256})
        config = config.model_copy(update={"agent": agent})
    return config


def train(config: RunConfig, progress: bool) -> tuple[Hedger, float]:
    """Train an agent from scratch (its old run folder removed); the hedger and the seconds."""
    if config.run_dir.exists():
        shutil.rmtree(config.run_dir)
    config, info = train_run(config, progress)
    return load_agent(config.run_dir, config), info["seconds"]


def score(cost: np.ndarray, y_delta: float | None) -> dict[str, float]:
    """Y (with its standard error), mean and std of the hedging cost; improvement vs delta."""
    estimate = metrics.cost_objective(cost, C)
    out = {"Y": estimate.value, "Y_se": estimate.se, "mean": float(cost.mean()),
           "std": float(cost.std(ddof=1))}
    if y_delta is not None:
        out["improvement_vs_delta"] = 1.0 - estimate.value / y_delta
    return out


def run_maturity(maturity: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train, tune and score everything of one maturity; the JSON section."""
    config = case(maturity)
    print(f"\n[{maturity}] {config.n_steps} days, {args.paths:,} test paths (seed {args.seed})",
          flush=True)
    agents: dict[str, tuple[Hedger, float, str]] = {}
    for name, path in quality_configs(maturity, args.agents).items():
        run = load_run(path, maturity, args.runs, args.quick)
        print(f"[{maturity}] training {name} ({path.relative_to(ROOT)}) ...", flush=True)
        hedger, seconds = train(run, not args.no_progress)
        hedger.name = agent_name(run)
        agents[name] = (hedger, seconds, run.agent.algo)
        print(f"[{maturity}] {name}: trained in {seconds:.0f} s -> {run.run_dir}", flush=True)
    settings = BenchmarkSettings(n_paths=args.paths, seed=args.seed, tune_paths=args.tune_paths,
                                 tune_seed=args.tune_seed, c=C, progress=not args.no_progress)
    print(f"[{maturity}] tuning the band families on {args.tune_paths:,} paths "
          f"(seed {args.tune_seed}) ...", flush=True)
    tuned = {key: tune_family(config, family, settings)[0] for key, (family, _, _) in BANDS.items()}
    bands = {}
    for key, (family, label, _) in BANDS.items():
        bands[key] = family_member(family, tuned[key])
        bands[key].name = f"{label} {tuned[key]:g}"
    baselines: list[Hedger] = [BlackScholesDelta(), *bands.values()]
    print(f"[{maturity}] scoring {len(baselines) + len(agents)} hedgers ...", flush=True)
    result = run_arena(config, [*baselines, *(a[0] for a in agents.values())], args.paths,
                       seed=args.seed, progress=not args.no_progress)

    premium = float(np.mean(result.totals("delta")["initial_premium"]))
    extras: dict[str, dict[str, Any]] = {
        **{key: {parameter: tuned[key]} for key, (_, _, parameter) in BANDS.items()},
        **{name: {"train_seconds": seconds, "algo": algo,
                  "config": f"configs/quality_{maturity}_{name}.yml"}
           for name, (_, seconds, algo) in agents.items()}}
    names = {"delta": "delta", **{key: band.name for key, band in bands.items()},
             **{name: a[0].name for name, a in agents.items()}}
    readings = {reading: score_all({key: cost_of(result, name, reading)
                                    for key, name in names.items()}, extras)
                for reading in READINGS}
    hedgers = readings["accounting"]
    section = summary(hedgers, agents)
    gross = readings["including_premium"]
    section["including_premium"] = {"premium": premium, **summary(gross, agents),
                                    "hedgers": gross}
    section.update({"cost_reading": READINGS["accounting"], "premium": premium,
                    "days": config.n_steps, "paths": args.paths, "seed": args.seed,
                    "tune_paths": args.tune_paths, "tune_seed": args.tune_seed,
                    "hedgers": hedgers})
    print_table(maturity, hedgers, READINGS["accounting"])
    print_table(maturity, gross, READINGS["including_premium"])
    return section


def summary(hedgers: dict[str, dict[str, Any]], agents: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of one reading: the Y's of the references and the best agents."""
    def best(names: list[str]) -> str | None:
        return min(names, key=lambda n: hedgers[n]["Y"]) if names else None

    best_agent = best(list(agents))
    best_sb3 = best([n for n, a in agents.items() if a[2] in SB3_ALGOS])
    best_band = cast(str, best(list(BANDS)))
    y_delta = hedgers["delta"]["Y"]
    y_band, y_ww = hedgers[best_band]["Y"], hedgers["whalley_wilmott"]["Y"]
    out: dict[str, Any] = {
        "Y_delta": y_delta, "Y_ww": y_ww, "Y_zakamouline": hedgers["zakamouline"]["Y"],
        "Y_constant_band": hedgers["constant_band"]["Y"], "Y_best_band": y_band,
        "best_band_name": best_band,
    }
    for key, name in (("best_agent", best_agent), ("sb3", best_sb3)):
        y = hedgers[name]["Y"] if name else None
        out[f"Y_{key}"] = y
        out[f"{key}_name"] = name
        out[f"{key}_improvement_vs_delta"] = None if y is None else 1.0 - y / y_delta
        out[f"{key}_improvement_vs_best_band"] = None if y is None else 1.0 - y / y_band
        out[f"{key}_improvement_vs_ww"] = None if y is None else 1.0 - y / y_ww
    return out


def cost_of(result: ArenaResult, name: str, reading: str) -> np.ndarray:
    """Hedger ``name``'s cost per path, ``(n_paths,)`` currency, in one of :data:`READINGS`.

    ``including_premium`` is the arena's hedging cost ``C = premium_0 - exp(-r T) PnL_T``;
    ``accounting`` nets the premium received: ``C - premium_0 = -exp(-r T) PnL_T``, minus the
    sum of the steps' accounting P&L ``dV + H dS - cost`` with the option marked to model
    (Cao et al.'s accounting-P&L formulation).
    """
    cost = result.cost(name)
    if reading == "including_premium":
        return cost
    return cost - result.totals(name)["initial_premium"]


def score_all(costs: dict[str, np.ndarray],
              extras: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each hedger's :func:`score` against the first (delta's), with its ``extras``."""
    y_delta = metrics.cost_objective(next(iter(costs.values())), C).value
    return {key: {**score(cost, y_delta), **extras.get(key, {})} for key, cost in costs.items()}


def print_table(maturity: str, hedgers: dict[str, dict[str, Any]], reading: str) -> None:
    """The maturity's table in one reading of the cost: one row per hedger."""
    print(f"\n{maturity}: {reading} (currency per episode), Y = mean + {C} std")
    print(f"{'hedger':<18}{'Y':>9}{'+-se':>7}{'mean':>9}{'std':>8}{'vs delta':>10}{'train s':>9}")
    for name, row in hedgers.items():
        seconds = f"{row['train_seconds']:9.0f}" if "train_seconds" in row else f"{'':>9}"
        print(f"{name:<18}{row['Y']:9.1f}{row['Y_se']:7.1f}{row['mean']:9.1f}{row['std']:8.1f}"
              f"{-100 * row['improvement_vs_delta']:9.1f}%{seconds}", flush=True)


def main() -> None:
    """Parse the arguments, run the maturities, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default bench/results/quality.json; "
                             "bench/results/quality_quick.json with --quick)")
    parser.add_argument("--maturities", nargs="+", choices=list(MATURITIES),
                        default=list(MATURITIES))
    parser.add_argument("--agents", nargs="+", help="agents to train (default: every "
                        "configs/quality_<maturity>_<agent>.yml)")
    parser.add_argument("--paths", type=int, default=100_000, help="test paths")
    parser.add_argument("--seed", type=int, default=31_415, help="seed of the test paths")
    parser.add_argument("--tune-paths", type=int, default=100_000)
    parser.add_argument("--tune-seed", type=int, default=27_182,
                        help="seed of the baselines' tuning paths")
    parser.add_argument("--runs", type=Path, default=Path("runs/quality"),
                        help="parent folder of the agents' run folders")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny training budgets, 4,096 test and tuning paths")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # two threads on a loaded two-core machine run much slower
    if args.quick:
        args.paths, args.tune_paths = min(args.paths, 4096), min(args.tune_paths, 4096)
    out = args.out or Path("bench/results/quality_quick.json" if args.quick
                           else "bench/results/quality.json")
    start = time.perf_counter()
    results: dict[str, Any] = {}
    for maturity in args.maturities:
        results[maturity] = run_maturity(maturity, args)
    results["settings"] = {
        "c": C, "quick": args.quick, "seconds": time.perf_counter() - start,
        "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "numpy": np.__version__, "torch": torch.__version__,
        "command": "python bench/quality.py" + (" --quick" if args.quick else ""),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten {out} ({results['settings']['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
