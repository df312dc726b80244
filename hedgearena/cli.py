"""The command line of hedgearena: ``python train.py [command] ...`` (or the ``hedgearena`` script).

Commands:

- ``train`` (the default): train an agent on an env, then score it against the classical hedgers
  on the same fresh paths; writes a run folder (config, checkpoints, model, TensorBoard logs,
  score tables, plots).
- ``evaluate RUN_DIR``: load a run's saved agent and score it again (same numbers for the same
  paths).
- ``benchmark``: score the classical hedgers alone.

Every command takes ``--config FILE`` (YAML, see :mod:`hedgearena.run_config`) and
``--set key=value`` overrides; ``python train.py COMMAND --help`` lists the shortcuts.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from hedgearena.run_config import RunConfig, load_config

COMMANDS = ("train", "evaluate", "benchmark")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="a run config (YAML)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config field (repeatable), "
                        "e.g. --set env.kwargs.cost=0.002")
    parser.add_argument("--env", help="env id (env.id), e.g. hedgearena/ShortCall-v0")
    parser.add_argument("--paths", type=int, help="scoring paths per hedger (arena.paths)")
    parser.add_argument("--seed", type=int, help="seed of training (seed)")
    parser.add_argument("--arena-seed", type=int, help="seed of the scoring paths (arena.seed)")
    parser.add_argument("--hedgers", nargs="+", help="baseline hedger specs (arena.hedgers), "
                        "e.g. no_hedge delta delta:5 band:0.05 ww:best adaptive leland")
    parser.add_argument("--out", help="parent folder of run folders (out)")
    parser.add_argument("--name", help="the run folder's name (name)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(prog="train.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser("train", help="train an agent and score it (the default)")
    _common(train)
    train.add_argument("--agent", help="agent algorithm (agent.algo)")
    evaluate = commands.add_parser("evaluate", help="score a saved agent again")
    evaluate.add_argument("run_dir", type=Path, help="a run folder written by train")
    _common(evaluate)
    bench = commands.add_parser("benchmark", help="score the classical hedgers alone")
    _common(bench)
    return parser


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """The run config of parsed arguments: file, then ``--set``, then the shortcuts."""
    shortcuts = {
        "env__id": args.env, "arena__paths": args.paths, "seed": args.seed,
        "arena__seed": args.arena_seed, "arena__hedgers": args.hedgers, "out": args.out,
        "name": args.name, "agent__algo": getattr(args, "agent", None),
    }
    path = args.config
    if path is None and getattr(args, "run_dir", None) is not None:
        path = args.run_dir / "config.yaml"  # evaluate: the run's own config by default
    return load_config(path, args.overrides, **shortcuts)


def run_benchmark(config: RunConfig, progress: bool, console: Console | None = None) -> Path:
    """Score the classical hedgers of ``config.arena`` on its env; returns the report folder."""
    from hedgearena.baselines.benchmark import benchmark
    from hedgearena.baselines.report import print_table

    console = console or Console(width=max(Console().width, 160))
    env_config = config.env.config()
    out_dir = config.run_dir if config.name else Path(config.out) / (
        "benchmark-" + config.env.id.split("/")[-1] + f"-seed{config.arena.seed}")
    config.dump(out_dir / "run_config.yaml")
    title = f"{config.env.id}: {config.arena.paths:,} paths, seed {config.arena.seed}"
    start = time.perf_counter()
    result = benchmark(env_config, config.arena.hedgers, config.arena.settings(progress), out_dir,
                       title)
    print_table(result.table, title, console, c=config.arena.c,
                risk_aversion=config.arena.risk_aversion)
    console.print(f"{time.perf_counter() - start:.1f} s; report in {out_dir}/ "
                  f"({', '.join(sorted(p.name for p in result.files.values()))})")
    return out_dir


def _dispatch(command: str) -> Callable[[argparse.Namespace, RunConfig], Any]:
    if command == "benchmark":
        return lambda args, config: run_benchmark(config, not args.no_progress)
    from hedgearena import training

    if command == "evaluate":
        return lambda args, config: training.evaluate_run(args.run_dir, config,
                                                          progress=not args.no_progress)
    return lambda args, config: training.train_and_score(config, progress=not args.no_progress)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: ``python train.py [train|evaluate|benchmark] [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv = ["train", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = resolve_config(args)
        _dispatch(args.command)(args, config)
    except ValueError as error:
        parser.exit(2, f"train.py {args.command}: error: {error}\n")
