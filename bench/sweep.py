"""A sweep on Ray Tune against the same trials run one after another.

The trials: deep hedging on ShortCall-v0 over a grid of seeds x cost levels (a small budget,
about 15 s a trial on one core). First they run one after another in this process
(:func:`hedgearena.training.train_and_score`) with one torch thread, the sweep's per-trial
resources (``--sequential-threads 1 2`` adds a run with two threads: on a machine where another
process holds a core, torch's multi-threaded steps wait on it and a trial takes 20-40x longer,
so it is not the default); then as a sweep (``train.py sweep``: a local Ray instance with
``--num-cpus`` CPUs started by the command, one CPU and one torch thread per trial). All times
are wall clock, Ray's start and the workers' imports included; the objectives of the runs of
each trial are compared (same seeds, same paths). The machine's load average is recorded.

    python bench/sweep.py                       # writes bench/results/sweep.json
    python bench/sweep.py --seeds 0 1 2 --costs 0.001 0.005 0.01 --num-cpus 2
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from hedgearena.run_config import RunConfig, apply_overrides, load_config
from hedgearena.sweep import run_sweep, trial_metrics
from hedgearena.training import agent_name, train_and_score

HERE = Path(__file__).resolve().parent


def base_config(args: argparse.Namespace, out: Path) -> RunConfig:
    hyperparams = {"steps": args.steps, "batch_size": 1024, "n_train": 8192, "n_valid": 4096,
                   "eval_every": max(args.steps // 4, 1), "checkpoint_every": args.steps}
    return load_config(None, [
        "agent.algo=deep_hedging", f"agent.hyperparams={json.dumps(hyperparams)}",
        f"arena.paths={args.paths}", "arena.tune_paths=4096", "arena.n_boot=50",
        "arena.hedgers=[no_hedge, delta, 'band:best']", f"out={out}",
    ])


def grid(args: argparse.Namespace) -> list[dict[str, Any]]:
    return [{"seed": seed, "env.kwargs.cost": cost}
            for seed, cost in itertools.product(args.seeds, args.costs)]


def run_sequential(config: RunConfig, points: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    objectives, training = {}, {}
    start = time.perf_counter()
    for index, point in enumerate(points):
        trial = apply_overrides(config, point, out=str(out), name=f"trial{index}")
        with open(out / f"trial{index}.log", "w") as log, contextlib.redirect_stdout(log), \
                contextlib.redirect_stderr(log):
            run_dir = train_and_score(trial, progress=False)
        objectives[_key(point)] = trial_metrics(run_dir / "report" / "scores.json",
                                                agent_name(trial))["objective"]
        training[_key(point)] = _training_seconds(run_dir)
        print(f"  sequential trial {index + 1}/{len(points)} {point}: "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    return {"seconds": time.perf_counter() - start, "objectives": objectives,
            "training_seconds": training}


def _training_seconds(run_dir: Path) -> float:
    return round(json.loads((run_dir / "training.json").read_text())["seconds"], 2)


def run_ray_sweep(config: RunConfig, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    swept = apply_overrides(config, {
        "sweep": {"space": {"seed": {"grid": args.seeds}, "env.kwargs.cost": {"grid": args.costs}},
                  "cpus_per_trial": 1, "max_failures": 0},
        "ray": {"num_cpus": args.num_cpus},
    }, out=str(out), name="sweep")
    start = time.perf_counter()
    result = run_sweep(swept, progress=False)
    seconds = time.perf_counter() - start
    table = result.table
    keys = [_key({"seed": row["seed"], "env.kwargs.cost": row["env.kwargs.cost"]})
            for _, row in table.iterrows()]
    return {"seconds": seconds, "objectives": dict(zip(keys, table["objective"], strict=True)),
            "training_seconds": {key: _training_seconds(Path(run_dir)) for key, run_dir
                                 in zip(keys, table["run_dir"], strict=True)},
            "failed": int((table["status"] != "ok").sum())}


def _key(point: dict[str, Any]) -> str:
    return f"seed={point['seed']},cost={point['env.kwargs.cost']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--costs", type=float, nargs="+", default=[0.001, 0.01])
    parser.add_argument("--steps", type=int, default=400, help="deep hedging steps per trial")
    parser.add_argument("--paths", type=int, default=20_000, help="arena paths per trial")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2,
                        help="CPUs of the sweep's local Ray instance")
    parser.add_argument("--sequential-threads", type=int, nargs="+", default=[1],
                        help="torch threads of the sequential runs (one run each)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sweep.json")
    args = parser.parse_args()

    import ray

    work = Path(tempfile.mkdtemp(prefix="hedgearena-bench-sweep-"))
    default_threads = torch.get_num_threads()
    load_before = os.getloadavg()
    sequential = {}
    try:
        config = base_config(args, work)
        points = grid(args)
        for threads in args.sequential_threads:
            print(f"{len(points)} trials, {args.steps} deep hedging steps and {args.paths:,} "
                  f"arena paths each; one after another, {threads} torch thread(s):", flush=True)
            torch.set_num_threads(threads)
            (work / f"sequential{threads}").mkdir()
            sequential[threads] = run_sequential(config, points, work / f"sequential{threads}")
        torch.set_num_threads(default_threads)
        print(f"sweep on a local Ray instance with {args.num_cpus} CPUs:", flush=True)
        sweep = run_ray_sweep(config, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    differences = [abs(sweep["objectives"][k] - v) for run in sequential.values()
                   for k, v in run["objectives"].items()]
    best = min(sequential.values(), key=lambda run: run["seconds"])
    document = {
        "trials": len(points),
        "space": {"seed": args.seeds, "env.kwargs.cost": args.costs},
        "trial": {"agent": "deep_hedging", "steps": args.steps, "batch_size": 1024,
                  "arena_paths": args.paths, "env": "hedgearena/ShortCall-v0"},
        "sequential_seconds": round(best["seconds"], 2),
        "sweep_seconds": round(sweep["seconds"], 2),
        "speedup": round(best["seconds"] / sweep["seconds"], 3),
        "sequential_by_torch_threads": {str(t): round(run["seconds"], 2)
                                        for t, run in sequential.items()},
        "sweep": {"ray_num_cpus": args.num_cpus, "cpus_per_trial": 1, "torch_threads": 1,
                  "failed_trials": sweep["failed"]},
        "max_objective_difference": max(differences),
        "training_seconds_per_trial": {
            "sweep": sweep["training_seconds"],
            **{f"sequential_{t}_threads": run["training_seconds"]
               for t, run in sequential.items()}},
        "objectives": {"sweep": sweep["objectives"],
                       **{f"sequential_{t}_threads": run["objectives"]
                          for t, run in sequential.items()}},
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "ray": ray.__version__, "torch": torch.__version__,
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "note": "wall clock; sequential_seconds is the faster sequential run; the sweep's time "
                "includes starting Ray and each trial's worker process",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"sequential {document['sequential_seconds']} s, sweep {document['sweep_seconds']} s, "
          f"speedup {document['speedup']}x -> {args.out}")


if __name__ == "__main__":
    main()
