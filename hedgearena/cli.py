"""The command line of hedgearena: ``python train.py [command] ...`` (or the ``hedgearena`` script).

Commands:

- ``train`` (the default): train an agent on an env, then score it against the classical hedgers
  on the same fresh paths; writes a run folder (config, checkpoints, model, TensorBoard logs,
  score tables, plots).
- ``evaluate RUN_DIR``: load a run's saved agent and score it again (same numbers for the same
  paths).
- ``benchmark``: score the classical hedgers, and saved agents with ``--agent RUN_DIR...``,
  on the same paths (one report: paired tests, frontier, attribution).
- ``stress``: every hedger (the baselines, and saved agents with ``--agent RUN_DIR``) across the
  stress scenarios of :mod:`hedgearena.envs.scenarios`: tables, heat maps and worst paths.
- ``sweep``: a Ray Tune sweep of training runs over seeds and any config field (the config's
  ``sweep`` section; ``--resume`` continues an interrupted one): see :mod:`hedgearena.sweep`.
- ``rllib``: train an RLlib agent (the config's ``rllib`` section) with several env runners on
  the native vector env, then score it like ``train``: see :mod:`hedgearena.agents.rllib`.
  ``sweep`` and ``rllib`` need the ``ray`` extra; they start a local Ray instance
  (``--num-cpus``) or join a cluster (``--address``).

Every command takes ``--config FILE`` (YAML, see :mod:`hedgearena.run_config`) and
``--set key=value`` overrides; ``python train.py COMMAND --help`` lists the shortcuts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from hedgearena.agents import saved
from hedgearena.agents.saved import REPORTS  # noqa: F401  (the report files, named here before)
from hedgearena.run_config import RunConfig, load_config, parse_override

COMMANDS = ("train", "evaluate", "benchmark", "stress", "sweep", "rllib")


def _common(parser: argparse.ArgumentParser, trains: bool = True, new_run: bool = True) -> None:
    parser.add_argument("--config", type=Path, help="a run config (YAML)")
    example = "env.kwargs.cost=0.002" if new_run else "arena.c=2.0"
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config field (repeatable), "
                        f"e.g. --set {example}")
    if new_run:  # evaluate scores the run's own env
        parser.add_argument("--env", help="env id (env.id), e.g. hedgearena/ShortCall-v0")
    parser.add_argument("--paths", type=int, help="scoring paths per hedger (arena.paths)")
    if new_run:  # evaluate scores a saved run: its own seed and folder
        parser.add_argument("--seed", type=int, help="seed of training (seed)" if trains else
                            "seed of the scoring paths (arena.seed; as --arena-seed)")
    parser.add_argument("--arena-seed", type=int, help="seed of the scoring paths (arena.seed)")
    parser.add_argument("--hedgers", nargs="+", help="baseline hedger specs (arena.hedgers), "
                        "e.g. no_hedge delta delta:5 band:0.05 ww:best adaptive leland")
    if new_run:
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
    evaluate.add_argument("run_dir", type=Path, help="a run folder written by train; the "
                          "scores go to RUN_DIR/evaluation/ (only arena.* may change)")
    _common(evaluate, new_run=False)
    bench = commands.add_parser("benchmark", help="score the classical hedgers (and saved "
                                "agents) on the same paths")
    _common(bench, trains=False)
    _agents_option(bench, "scored beside the baselines on the same paths")
    _stress_options(commands.add_parser(
        "stress", help="every hedger across the stress scenarios (crashes, droughts, crowding)"))
    sweep = commands.add_parser("sweep", help="a Ray Tune sweep of training runs (seeds, "
                                "costs, hyperparameters); needs the ray extra")
    _common(sweep)
    sweep.add_argument("--agent", help="agent algorithm of every trial (agent.algo)")
    sweep.add_argument("--resume", action="store_true", help="continue the sweep in the folder "
                       "(finished trials are not run again; failed ones are retried)")
    _ray_options(sweep)
    rllib = commands.add_parser("rllib", help="train an RLlib agent (the config's rllib "
                                "section) and score it; needs the ray extra")
    _common(rllib)
    _ray_options(rllib)
    return parser


def _ray_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance "
                        "(ray.num_cpus; default: all cores)")
    parser.add_argument("--address", help="join an existing Ray cluster instead "
                        "(ray.address), e.g. auto or ray://head:10001")


def _agents_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--agent", dest="agents", action="extend", nargs="+", type=Path,
                        default=[], metavar="RUN_DIR", help=f"saved agent run folder(s) {what} "
                        "(the env is the first agent's unless --env, --config or --set env... "
                        "gives one)")


def _stress_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="a run config (YAML); its stress section")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config field (repeatable), "
                        "e.g. --set stress.cost=0.001 --set stress.risk_limits={delta: 0.5}")
    parser.add_argument("--env", help="env id (env.id); default: the first agent's, else "
                        "hedgearena/ShortCall-v0")
    _agents_option(parser, "stressed beside the baselines")
    parser.add_argument("--scenarios", nargs="+", help="scenario names (stress.scenarios), "
                        "e.g. base gap flash_crash crowding crisis_2008")
    parser.add_argument("--hedgers", nargs="+", help="baseline hedger specs (stress.hedgers)")
    parser.add_argument("--paths", type=int, help="paths per hedger and scenario (stress.paths)")
    parser.add_argument("--seed", type=int, help="seed of the paths (stress.seed)")
    parser.add_argument("--out", help="parent folder of report folders (out)")
    parser.add_argument("--name", help="the report folder's name (name)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """The run config of parsed arguments: file, then ``--set``, then the shortcuts."""
    if args.command == "stress":
        return resolve_stress_config(args)
    seed, arena_seed = getattr(args, "seed", None), args.arena_seed
    if args.command == "benchmark":  # no training: --seed is the scoring paths' seed
        if seed is not None and arena_seed is not None and seed != arena_seed:
            raise ValueError(f"benchmark: --seed ({seed}) and --arena-seed ({arena_seed}) both "
                             "set the scoring paths' seed (arena.seed): give one of them")
        seed, arena_seed = None, arena_seed if arena_seed is not None else seed
    shortcuts = {
        "env__id": getattr(args, "env", None), "arena__paths": args.paths, "seed": seed,
        "arena__seed": arena_seed, "arena__hedgers": args.hedgers,
        "out": getattr(args, "out", None), "name": getattr(args, "name", None),
        "agent__algo": getattr(args, "agent", None),
        "ray__num_cpus": getattr(args, "num_cpus", None),
        "ray__address": getattr(args, "address", None),
    }
    path = args.config
    if args.command == "evaluate":
        check_run_folder(args.run_dir, "RUN_DIR")
        path = path or args.run_dir / "config.yaml"  # the run's own config by default
    return _agents_env(load_config(path, args.overrides, **shortcuts), args)


def _agents_env(config: RunConfig, args: argparse.Namespace) -> RunConfig:
    """``config`` with the first ``--agent``'s env, unless the command line gives an env.

    An env is given by ``--env``, ``--config`` or an override of ``env`` or ``env.*``.
    """
    agents = getattr(args, "agents", None)
    env_given = getattr(args, "env", None) or args.config or any(
        parse_override(o)[0].split(".")[0] == "env" for o in args.overrides)
    if agents and not env_given:
        return config.model_copy(update={"env": _agent_config(agents[0]).env})
    return config


def run_benchmark(config: RunConfig, progress: bool, console: Console | None = None,
                  agents: Sequence[Path] = ()) -> Path:
    """Score the hedgers of ``config.arena`` and the saved ``agents`` on the same paths.

    Each agent must have been trained on ``config.env``, on other paths than the scoring ones
    (``arena.seed``) and, on the replay, before ``arena.split`` (:func:`load_agents`); all of it
    is checked before the report folder is written. Returns the report folder.
    """
    from hedgearena.baselines.benchmark import benchmark, report_note
    from hedgearena.baselines.report import print_table, wide_console
    from hedgearena.training import check_arena

    console = console or wide_console()
    env_config = config.env.config()
    loaded = load_agents(agents, config, "benchmark")
    check_arena(config, env_config, n_agents=len(loaded))
    out_dir = benchmark_dir(config)
    config.dump(out_dir / "run_config.yaml")
    title = f"{config.env.id}: {config.arena.paths:,} paths, seed {config.arena.seed}"
    start = time.perf_counter()
    settings = config.arena.settings(progress)
    result = benchmark(env_config, [*config.arena.hedgers, *loaded], settings, out_dir, title)
    recorded = write_agents_record(out_dir / AGENTS_FILE, agents, loaded)
    print_table(result.table, title, console, c=config.arena.c,
                risk_aversion=config.arena.risk_aversion,
                note=report_note(result, settings))
    files = sorted([*(p.name for p in result.files.values()), "run_config.yaml",
                    *([AGENTS_FILE] if recorded else [])])
    console.print(f"{time.perf_counter() - start:.1f} s; report in {out_dir}/ ({', '.join(files)}; "
                  f"run_config.yaml is the run config to repeat it with "
                  f"--config{_agents_hint(bool(recorded))})")
    return out_dir


def benchmark_dir(config: RunConfig) -> Path:
    """The report folder of ``benchmark``: ``<out>/<name>`` or ``<out>/benchmark-<env>-seed<s>``."""
    return config.run_dir if config.name else Path(config.out) / (
        "benchmark-" + config.env.id.split("/")[-1] + f"-seed{config.arena.seed}")


def stress_dir(config: RunConfig) -> Path:
    """The report folder of ``stress``: ``<out>/<name>`` or ``<out>/stress-<env>-seed<s>``."""
    env = config.env.id.split("/")[-1].removesuffix("-v0")
    return config.run_dir if config.name else Path(config.out) / (
        f"stress-{env}-seed{config.stress.seed}")


def resolve_stress_config(args: argparse.Namespace) -> RunConfig:
    """The run config of ``stress``: file, ``--set``, the shortcuts; the first agent's env.

    With ``--agent`` and no env given (``--env``, ``--config`` or ``--set env...``), the env is
    the first agent's (its run's ``config.yaml``).
    """
    shortcuts = {
        "env__id": args.env, "stress__paths": args.paths, "stress__seed": args.seed,
        "stress__scenarios": args.scenarios, "stress__hedgers": args.hedgers, "out": args.out,
        "name": args.name,
    }
    return _agents_env(load_config(args.config, args.overrides, **shortcuts), args)


def _agent_config(run_dir: Path) -> RunConfig:
    check_run_folder(run_dir, "--agent")
    return load_config(run_dir / "config.yaml")


def check_run_folder(run_dir: Path, what: str) -> None:
    """Refuse a folder that is not the run folder of a trained agent (``train``, ``rllib``).

    ``what`` names the argument in the error (``--agent``, ``RUN_DIR``); see
    :func:`hedgearena.agents.saved.check_run_folder`.

    Raises:
        ValueError: a missing folder, a report folder, or one without ``config.yaml``.
    """
    saved.check_run_folder(run_dir, what)


def load_agents(run_dirs: Sequence[Path], config: RunConfig,
                command: str = "stress") -> list[Any]:
    """The saved agents of run folders as hedgers (their names made unique by the folder).

    ``command`` (``stress`` or ``benchmark``) says whose seed the scoring paths have
    (``stress.seed`` or ``arena.seed``), and names the command in the errors.

    Raises:
        ValueError: a folder that is no run, an agent trained on another env (id or kwargs),
            on the scoring paths' seed, or (``benchmark``) on the replay's history after
            ``arena.split`` (:func:`hedgearena.training.check_scoring_split`).
    """
    from hedgearena.agents.rllib import check_rllib_scoring_seed, is_rllib_run, load_rllib_run
    from hedgearena.training import check_scoring_seed, check_scoring_split, load_agent

    seed, setting = ((config.stress.seed, "stress.seed") if command == "stress"
                     else (config.arena.seed, "arena.seed"))
    agents = []
    for run_dir in run_dirs:
        run = _agent_config(run_dir)
        if run.env != config.env:
            raise ValueError(
                f"--agent {run_dir} was trained on {run.env.id} with env.kwargs "
                f"{run.env.kwargs}, the {command} env is {config.env.id} with "
                f"{config.env.kwargs}: {command} it on its own env (leave out --env and env.* "
                "settings)")
        if command == "benchmark":
            check_scoring_split(run, config)
        if is_rllib_run(run_dir):
            check_rllib_scoring_seed(run, seed, setting)
            agents.append(load_rllib_run(run_dir, run))  # which checks the model
            continue
        check_scoring_seed(run, seed, setting)
        agents.append(load_agent(run_dir, run))  # which checks the model is the run's agent
    names = [a.name for a in agents]
    for agent, run_dir in zip(agents, run_dirs, strict=True):
        if names.count(agent.name) > 1:
            agent.name = f"{agent.name} ({run_dir.name})"
    return agents


def run_stress(
    config: RunConfig, agents: Sequence[Path] = (), progress: bool = True,
    console: Console | None = None,
) -> Path:
    """Stress the baselines of ``config.stress`` and the saved ``agents``; returns the folder."""
    from hedgearena.baselines.report import wide_console
    from hedgearena.baselines.stress import check_memory, print_stress_table, stress_test
    from hedgearena.training import check_fit, check_hedgers

    console = console or wide_console()
    spec = config.stress
    env_config = spec.env_config(config.env)
    check_hedgers(env_config, spec.hedgers, "stress.hedgers")  # checked before writing
    check_fit(env_config, spec.hedgers, spec.settings(False).benchmark(), "stress")
    hedgers = [*spec.hedgers, *load_agents(agents, config)]
    if not hedgers:
        raise ValueError("nothing to stress: stress.hedgers is empty and no --agent is given; "
                         "name at least one hedger (e.g. --hedgers delta) or pass --agent RUN_DIR")
    scenarios = spec.scenario_objects()
    explicit = [s.name for s, item in zip(scenarios, spec.scenarios, strict=True)
                if isinstance(item, dict) and any(item.values())]
    limited, chosen = check_applicable(scenarios, env_config, spec.risk_limits,
                                       spec.skip_inapplicable, explicit)
    check_scenario_hedgers(chosen, limited, spec.hedgers)
    check_memory(limited, chosen, hedgers, spec.settings(False),
                 ("stress.paths", "stress.tune_paths"))  # nothing simulated
    out_dir = stress_dir(config)
    config.dump(out_dir / "run_config.yaml")
    title = f"{config.env.id} under stress: {spec.paths:,} paths per scenario, seed {spec.seed}"
    notes = agents_cost_note(config, [h.name for h in hedgers[len(spec.hedgers):]])
    for note in notes:
        console.print(f"[yellow]{note}[/yellow]")
    start = time.perf_counter()
    result = stress_test(env_config, hedgers, scenarios, spec.settings(progress),
                         out_dir, title, skip_inapplicable=spec.skip_inapplicable, notes=notes)
    write_agents_record(out_dir / AGENTS_FILE, agents, hedgers[len(spec.hedgers):])
    print_stress_table(result, title, console)
    for name, why in result.skipped.items():
        console.print(f"[yellow]not applicable to this env, left out:[/yellow] {name}: {why}")
    listed = f", {AGENTS_FILE}" if agents else ""
    console.print(f"{time.perf_counter() - start:.1f} s; report in {out_dir}/ (stress.md, "
                  "stress.csv, stress.json, heatmap_objective.png, heatmap_es95.png, "
                  f"worst_paths/{listed}; run_config.yaml is the run config to repeat it with "
                  f"--config{_agents_hint(bool(agents))})")
    return out_dir


AGENTS_FILE = "agents.yaml"
"""The saved agents of a report: hedger name -> run folder, algorithm, model files."""


def agents_cost_note(config: RunConfig, agents: Sequence[str]) -> tuple[str, ...]:
    """The report's note when saved ``agents`` are stressed under ``stress.cost``.

    Every hedger of a stress pays ``stress.cost`` (the liquidity scenarios scale its spread
    and impact), not the env's own cost the agents trained on and observe (``cost_rate``); the
    note says so. None: no agents, or ``stress.cost`` null (the env's own cost).
    """
    if not agents or config.stress.cost is None:
        return ()
    own, stressed = config.env.config().cost, config.stress.env_config(config.env).cost
    return (f"The agents ({', '.join(agents)}) trained on the env's cost {own}; like every "
            f"hedger here they pay stress.cost, {stressed}, a cost they never saw (nor its "
            "cost_rate in their observations): --set stress.cost=null stresses them under "
            "their own.",)


def _agents_hint(recorded: bool) -> str:
    """What else repeats a report that scored saved agents (their record's folders)."""
    return f" and the --agent folders of {AGENTS_FILE}" if recorded else ""


def write_agents_record(path: Path, run_dirs: Sequence[Path],
                        hedgers: Sequence[Any]) -> Path | None:
    """Record which saved agents a report scored (``--agent`` is no config field).

    ``path`` gets, per agent (its name in the tables): the run folder (absolute), the
    algorithm, the run's seed (``seed``) and the SHA-256 of every file of its ``model/``, so
    that a report can be traced to the weights and normaliser that made it (a run trained
    again in the same folder has other digests). Without agents a stale ``path`` of an earlier
    report in the folder is removed. Returns ``path``, or None without agents.
    """
    import hashlib

    from hedgearena.agents.rllib import is_rllib_run
    from hedgearena.yaml_io import dump_yaml

    if not run_dirs:
        path.unlink(missing_ok=True)
        return None
    record = {}
    for run_dir, hedger in zip(run_dirs, hedgers, strict=True):
        run = load_config(run_dir / "config.yaml")
        model = run_dir / "model"
        files = sorted(f for f in model.rglob("*") if f.is_file())
        record[hedger.name] = {
            "run_dir": str(run_dir.absolute()),
            "algo": f"rllib {run.rllib.algo}" if is_rllib_run(run_dir) else run.agent.algo,
            "seed": run.seed,
            "model_sha256": {str(f.relative_to(model)): hashlib.sha256(f.read_bytes()).hexdigest()
                             for f in files},
        }
    path.write_text(dump_yaml(record))
    return path


def check_applicable(scenarios: Sequence[Any], env_config: Any, risk_limits: Any,
                     skip: bool, explicit: Collection[str] = ()) -> tuple[Any, dict[str, Any]]:
    """Refuse a stress that would fail on its scenarios, before its folder is written.

    ``risk_limits`` are ``stress.risk_limits`` (checked too); ``skip`` is
    ``stress.skip_inapplicable``, which never skips the scenarios named in ``explicit`` (those
    the config gives parameters: a parameter that does not fit the env is the config's error).
    Returns ``env_config`` with the limits and the scenarios that apply to it, by name (what
    the further checks read).

    Raises:
        ValueError: bad risk limits; a scenario of ``explicit`` that cannot stress the env;
            with ``skip`` false, every scenario that cannot and why; with ``skip``, no
            scenario that can.
    """
    from hedgearena.baselines.stress import inapplicable, with_risk_limits

    env_config = with_risk_limits(env_config, risk_limits)
    reasons = {s.name: why for s in scenarios if (why := inapplicable(s, env_config))}
    given = {name: why for name, why in reasons.items() if name in explicit}
    if given:
        lines = "; ".join(f"{name}: {why}" for name, why in given.items())
        raise ValueError(f"stress.scenarios gives parameters that do not fit this env: {lines}. "
                         "Change them, or name the scenario without parameters to let "
                         "stress.skip_inapplicable leave it out")
    if skip and len(reasons) == len(scenarios):
        raise ValueError(f"no scenario of stress.scenarios applies to this env: {reasons}")
    if reasons and not skip:
        lines = "; ".join(f"{name}: {why}" for name, why in reasons.items())
        raise ValueError(f"stress.skip_inapplicable is false, but these scenarios cannot stress "
                         f"the env: {lines}. Leave them out of stress.scenarios, or set "
                         "stress.skip_inapplicable=true to list them instead")
    return env_config, {s.name: s for s in scenarios if s.name not in reasons}


def check_scenario_hedgers(scenarios: Mapping[str, Any], env_config: Any,
                           specs: list[str]) -> None:
    """Refuse a hedger of ``stress.hedgers`` that cannot hedge a scenario, before writing.

    :func:`hedgearena.training.check_hedgers` checks them on the unstressed env, but a scenario
    wraps or replaces its market (``model_delta`` knows the base models only): each scenario
    that applies (``scenarios``, by name, and ``env_config`` with the risk limits, as
    :func:`check_applicable` returns them) is checked too, so the refusal comes before the
    report's folder, not after the scenarios before it have run.

    Raises:
        ValueError: naming each refused spec, the scenarios it cannot hedge, why (in the first
            of them) and what to leave out.
    """
    from hedgearena.training import check_hedgers

    refused: dict[str, dict[str, str]] = {}  # spec -> scenario -> why
    for name, scenario in scenarios.items():
        stressed, where = scenario.apply(env_config), f"in the scenario {name!r}"
        try:  # all at once (their envs shared)
            check_hedgers(stressed, specs, where)
        except ValueError:  # one by one, to name each spec refused
            for spec in specs:
                try:
                    check_hedgers(stressed, [spec], where)
                except ValueError as error:
                    refused.setdefault(spec, {})[name] = str(error)
    if refused:
        lines = "; ".join(
            f"{spec!r} cannot hedge the scenario(s) {', '.join(map(repr, why))} "
            f"({next(iter(why.values()))})" for spec, why in refused.items())
        raise ValueError(f"stress.hedgers: {lines}. Leave the hedger out of stress.hedgers, "
                         "or those scenarios out of stress.scenarios")


def run_sweep_command(config: RunConfig, resume: bool, progress: bool,
                      console: Console | None = None) -> Path:
    """Run (or resume) the sweep of ``config.sweep``; print its table; returns the folder."""
    from hedgearena.baselines.report import wide_console
    from hedgearena.sweep import run_sweep

    console = console or wide_console()
    start = time.perf_counter()
    result = run_sweep(config, resume=resume, progress=progress)
    console.print(result.files["md"].read_text())
    if "summary_md" in result.files:
        console.print(result.files["summary_md"].read_text())
    if result.interrupted:
        console.print(interrupted_sweep_message(result.table, result.folder))
        raise SystemExit(130)
    unfinished = int((result.table["status"] == "unfinished").sum())
    failed = int((result.table["status"] == "failed").sum())
    if unfinished:
        console.print(f"{unfinished} trial(s) unfinished: continue with the same command and "
                      "--resume")
    if failed:
        console.print(f"{failed} trial(s) failed: their errors are in results.md; --resume "
                      "runs them again")
    console.print(f"{time.perf_counter() - start:.1f} s; results in {result.folder}/ "
                  f"({', '.join(sorted(p.name for p in result.files.values()))})")
    if failed or unfinished:  # a script running sweeps sees that not every trial finished
        raise SystemExit(1)
    return result.folder


def interrupted_sweep_message(table: Any, folder: Path) -> str:
    """What an interrupted sweep did: which trials finished, where they are, how to go on."""
    done = table.loc[table["status"] == "ok", "trial"].tolist()
    finished = (f"{len(done)} of {len(table)} trial(s) finished ({', '.join(map(str, done))}), "
                f"their run folders in {folder / 'trials'}/ and their scores in "
                f"{folder / 'results.md'}" if done else
                f"no trial finished ({len(table)} started or waiting)")
    return (f"train.py sweep: interrupted: {finished}; continue with the same command and "
            "--resume (finished trials are not run again)")


def _needs_ray(run: Callable[[argparse.Namespace, RunConfig], Any]
               ) -> Callable[[argparse.Namespace, RunConfig], Any]:
    """``run`` with a missing ``ray`` extra reported as a usage error naming the extra."""
    from hedgearena.sweep import MissingRayError

    def wrapped(args: argparse.Namespace, config: RunConfig) -> Any:
        try:
            return run(args, config)
        except MissingRayError as error:
            raise ValueError(str(error)) from None

    return wrapped


def _dispatch(command: str) -> Callable[[argparse.Namespace, RunConfig], Any]:
    if command == "sweep":
        return _needs_ray(lambda args, config: run_sweep_command(config, args.resume,
                                                                 not args.no_progress))
    if command == "rllib":
        from hedgearena.agents.rllib import train_and_score_rllib

        return _needs_ray(lambda args, config: train_and_score_rllib(config, not args.no_progress))
    if command == "stress":
        return lambda args, config: run_stress(config, args.agents, not args.no_progress)
    if command == "benchmark":
        return lambda args, config: run_benchmark(config, not args.no_progress,
                                                  agents=args.agents)
    from hedgearena import training

    if command == "evaluate":
        return lambda args, config: _evaluate(args, config)
    return lambda args, config: training.train_and_score(config, progress=not args.no_progress)


def _evaluate(args: argparse.Namespace, config: RunConfig) -> Path:
    """``evaluate``: the run's own kind of agent (RLlib runs need the ray extra)."""
    from hedgearena import training
    from hedgearena.agents.rllib import evaluate_rllib_run, is_rllib_run

    # both check the model is the run's agent (and that only arena.* changed) before writing
    if is_rllib_run(args.run_dir):
        return _needs_ray(lambda a, c: evaluate_rllib_run(a.run_dir, c, not a.no_progress))(
            args, config)
    return training.evaluate_run(args.run_dir, config, progress=not args.no_progress)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: ``python train.py [train|evaluate|benchmark|stress|sweep|rllib] [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0].startswith("-")
                    and argv[0] not in ("-h", "--help")):
        argv = ["train", *argv]  # options alone: train (a misspelt command is named as one)
    parser = build_parser()
    args = parser.parse_args(argv)
    config: RunConfig | None = None
    try:
        config = resolve_config(args)
        check_out(config, output_dir(args, config), uses_out=args.command != "evaluate")
        _dispatch(args.command)(args, config)
    except (ValueError, FileNotFoundError) as error:  # bad input: named, without a traceback
        parser.exit(2, f"train.py {args.command}: error: {error}\n")
    except KeyboardInterrupt:  # training saved a checkpoint on the way out
        parser.exit(130, f"\ntrain.py {args.command}: interrupted; "
                         f"{interrupted_message(args, config)}\n")


def check_out(config: RunConfig, folder: Path | None = None, uses_out: bool = True) -> None:
    """Refuse an ``out`` (or the command's ``folder`` in it) that cannot be a writable folder.

    ``out`` and ``folder`` must be folders if they exist, and the nearest folder that exists
    above them must be writable: found now, not as a traceback once the run has begun. A
    command that writes elsewhere (``evaluate``, into its run folder) passes ``uses_out=False``:
    its ``folder`` alone is checked.

    Raises:
        ValueError: naming ``out`` or the folder, and what is wrong.
    """
    out = Path(config.out)
    if uses_out and out.exists() and not out.is_dir():
        raise ValueError(f"out {config.out!r} is a file, not a folder: run folders go inside "
                         "it (--out or --set out=...)")
    if folder is not None and folder.exists() and not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is a file, not a folder: the command writes its "
                         "outputs into that folder"
                         + (" (choose another --name or --out)" if uses_out else ""))
    target = folder or out
    hint = f" (out is {config.out!r}: --out or --set out=...)" if uses_out else ""
    existing = target.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{str(target)!r} cannot be made: {str(existing)!r} is a file, not a "
                         f"folder{hint}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{str(target)!r} cannot be written: the folder {str(existing)!r} is "
                         f"not writable{hint}")


def output_dir(args: argparse.Namespace, config: RunConfig) -> Path:
    """The folder the command writes its outputs into."""
    if args.command == "evaluate":
        return Path(args.run_dir) / "evaluation"
    if args.command == "benchmark":
        return benchmark_dir(config)
    if args.command == "stress":
        return stress_dir(config)
    if args.command == "sweep":
        from hedgearena.sweep import sweep_dir

        return sweep_dir(config)
    if args.command == "rllib":
        from hedgearena.agents.rllib import rllib_run_dir

        return rllib_run_dir(config)
    return config.run_dir


def interrupted_message(args: argparse.Namespace, config: RunConfig | None) -> str:
    """What Ctrl-C left behind (the command's folder) and how to go on, by command."""
    if config is None:  # nothing was written yet
        return "nothing was written"
    again = "run the same command again"
    if args.command == "train":
        return (f"the run folder {config.run_dir}/ keeps its last checkpoint: {again} to "
                "resume training from it")
    if args.command == "rllib":
        from hedgearena.agents.rllib import rllib_run_dir

        return (f"the run folder {rllib_run_dir(config)}/ keeps its last checkpoint: {again} "
                "to resume training from it")
    if args.command == "sweep":
        from hedgearena.sweep import TUNE_DIR, sweep_dir

        folder = sweep_dir(config)
        if (folder / TUNE_DIR).is_dir():
            return (f"the sweep folder {folder}/ keeps its finished trials: continue with the "
                    "same command and --resume")
        return f"no trial was started; {again}"
    folder = {"evaluate": lambda: args.run_dir / "evaluation", "benchmark":
              lambda: benchmark_dir(config), "stress": lambda: stress_dir(config)}[args.command]()
    return f"the report in {folder}/ may be incomplete: {again} to write it whole"
