"""Environment throughput, measured side by side with references in one run.

- ``single_vs_cartpole``: steps/s of ``gym.make("hedgearena/ShortCall-v0")`` over steps/s of
  ``gym.make("CartPole-v1")`` (target >= 0.75), both with constant actions and resets, measured
  in turns (the best of ``--single-repeats`` rounds of 20,000 steps each: many short turns, so
  that the host's slow spells, which last seconds, fall on both sides alike).
- ``vector_vs_kernel_16384``: path-steps/s of the native vector env at 16,384 paths (resets and
  episode building included) over the inputs/s of the bare pricing kernel of bench/pricing.py
  (``d1`` and one ``scipy.special.ndtr``) (target >= 0.35); also at 1, 64 and 1024 paths. A
  path-step is one transition of one path: the env runs whole blocks of episodes after one
  untimed block, so each episode's build is paid once, and the ``NEXT_STEP`` reset calls (which
  build and advance no path) are timed but not counted (see :func:`vector_rate`). The kernel
  and the four vector sizes are measured in turns, the best of ``--repeats`` rounds each.
- ``optionbook_path_steps_per_s_256``: the same for ``OptionBook-v0`` (Heston, client flow and a
  hedging option; its episode build dominates) at 256 paths, the best of 3 runs (no target).
- ``sb3_adapter_vs_dummy``: env-steps/s of stable-baselines3 PPO collecting rollouts through
  :class:`SB3VecEnv` over the same with SB3's ``DummyVecEnv`` of single envs, 16 envs (and
  ``sb3_adapter_vs_dummy_256`` with 256 envs, where one array step replaces 256 Python steps);
  the two in turns, the best of ``--sb3-repeats`` rounds each.

``ratio_rounds`` records each ratio as measured within every round (its spread is the noise) and
``ratio_medians`` the median of each (a second estimate, robust to a slow spell on one side);
the targets and the load average before and after the run are recorded too.

Everything runs on one core: torch's intra-op threads are set to 1 for the run (as in
bench/pricing.py; the pricing's erfc and the PPO policy use torch). With torch's default threads
on a machine whose other core is busy, each erfc call can stall on the idle-spinning thread pool.

Usage: ``python bench/env_throughput.py [--out bench/results/env_throughput.json] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import hedgearena  # noqa: F401
from hedgearena.envs.sb3_adapter import make_sb3_vec_env
from hedgearena.envs.vector_env import VecHedgingEnv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel import kernel_rate


def rounds(repeats: int, fns: list[Callable[[], float]]) -> list[list[float]]:
    """``repeats`` rounds that run each of ``fns`` (each returns a rate) in turn: one row each.

    Taking turns puts the machine's slow spells on both sides of a ratio alike.
    """
    return [[fn() for fn in fns] for _ in range(repeats)]


def best(table: list[list[float]]) -> list[float]:
    """The best rate of each column of :func:`rounds`."""
    return [max(column) for column in zip(*table, strict=True)]


def median_ratio(table: list[list[float]], top: int, bottom: int) -> float:
    """The median over the rounds of :func:`rounds` of column ``top`` over column ``bottom``."""
    return float(np.median([row[top] / row[bottom] for row in table]))


def single_rate(env_id: str, steps: int, action: object) -> float:
    """Steps per second of one env made by ``gym.make`` (resets included)."""
    env = gym.make(env_id)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def vector_rate(num_envs: int, path_steps: int, preset: str = "ShortCall") -> float:
    """Path-steps per second of the native vector env, episode building included.

    Steady state: after one untimed block of episodes (the env's first build and first touch of
    its memory), the timed part is a whole number of blocks of paths, so every episode it runs
    pays its share of building exactly once. With the default ``NEXT_STEP`` autoreset the step
    after an episode's last one only resets (builds) and advances no path: it is timed but not
    counted, so a path-step is one transition of one path.
    """
    block = max(256, num_envs)
    env = VecHedgingEnv(num_envs=num_envs, preset=preset, block=block)
    n_steps = int(env.config.n_steps)
    per_block = block // num_envs  # episodes that one block of paths serves
    blocks = max(1, -(-path_steps // (per_block * num_envs * n_steps)))
    actions = np.zeros((num_envs, env.config.action_dim))
    env.reset(seed=0)
    for _ in range(per_block * (n_steps + 1) - 1):  # the rest of the first block, untimed
        env.step(actions)
    done = np.ones(num_envs, dtype=bool)  # the first timed call resets every row
    transitions = 0
    start = time.perf_counter()
    for _ in range(blocks * per_block * (n_steps + 1)):
        transitions += num_envs - int(np.count_nonzero(done))
        _, _, done, _, _ = env.step(actions)
    return transitions / (time.perf_counter() - start)


def sb3_rate(venv: object, steps: int) -> float:
    """Env-steps per second of PPO's rollout collection (n_steps per env, no training epochs)."""
    from stable_baselines3 import PPO

    n_envs = venv.num_envs  # type: ignore[attr-defined]
    model = PPO(
        "MlpPolicy", venv, n_steps=max(8, steps // n_envs), batch_size=64, n_epochs=1, device="cpu"
    )
    model._setup_learn(total_timesteps=steps)
    start = time.perf_counter()
    model.collect_rollouts(
        model.env, model._init_callback(None), model.rollout_buffer, model.n_steps
    )
    return model.n_steps * n_envs / (time.perf_counter() - start)


def main() -> None:
    """Run the benchmark, print a table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/env_throughput.json"))
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--single-repeats", type=int, default=20,
                        help="rounds of the single env and CartPole (20,000 steps each)")
    parser.add_argument("--sb3-repeats", type=int, default=3,
                        help="rounds of the SB3 pairs (each a PPO rollout of 20,000 env-steps)")
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    torch.set_num_threads(1)  # one core (see the module docstring)
    scale = 10 if args.quick else 1
    steps = 20_000 // scale
    action = np.zeros(1, dtype=np.float32)

    def show(names: list[str], rates: list[float]) -> None:
        for name, rate in zip(names, rates, strict=True):
            print(f"  {name}: {rate:,.0f}", flush=True)

    single_names = ["ShortCall-v0 steps/s", "CartPole-v1 steps/s"]
    single_rounds = rounds(args.single_repeats, [
        lambda: single_rate("hedgearena/ShortCall-v0", steps, action),
        lambda: single_rate("CartPole-v1", steps, 0),
    ])
    hedge, cartpole = best(single_rounds)
    show(single_names, [hedge, cartpole])
    # The kernel takes turns with the vector env, so slow spells fall on both sides of the ratio.
    sizes = (1, 64, 1024, 16384)
    vector_rounds = rounds(args.repeats, [
        lambda: kernel_rate(1_000_000),
        *(lambda n=n: vector_rate(n, max(1_000_000 // scale // (1 if n > 1 else 10), 20 * n))
          for n in sizes),
    ])
    kernel, *vector_best = best(vector_rounds)
    vector = dict(zip(sizes, vector_best, strict=True))
    show(["kernel inputs/s", *(f"vector env path-steps/s at {n} paths" for n in sizes)],
         [kernel, *vector_best])
    # the market maker's env (Heston, client flow, a hedging option): its build dominates
    book_rate = max(vector_rate(256, 256 * 60 * (1 if args.quick else 4), "OptionBook")
                    for _ in range(1 if args.quick else 3))
    show(["OptionBook-v0 vector env path-steps/s at 256 paths"], [book_rate])
    from stable_baselines3.common.env_util import make_vec_env

    def sb3_pair(n_envs: int) -> list[list[float]]:
        steps = max(20_000 // scale, 8 * n_envs)
        pair = rounds(args.sb3_repeats, [
            lambda: sb3_rate(make_sb3_vec_env("hedgearena/ShortCall-v0", n_envs, seed=0), steps),
            lambda: sb3_rate(make_vec_env("hedgearena/ShortCall-v0", n_envs=n_envs, seed=0),
                             steps),
        ])
        show([f"SB3 PPO rollout steps/s, adapter, {n_envs} envs",
              f"SB3 PPO rollout steps/s, DummyVecEnv, {n_envs} envs"], best(pair))
        return pair

    n_envs = 16
    sb3_rounds = sb3_pair(n_envs)
    sb3_rounds_256 = sb3_pair(256)
    adapter, dummy = best(sb3_rounds)
    adapter_256, dummy_256 = best(sb3_rounds_256)
    result = {
        "single_steps_per_s": hedge,
        "cartpole_steps_per_s": cartpole,
        "single_vs_cartpole": hedge / cartpole,
        "kernel_inputs_per_s": kernel,
        **{f"vector_path_steps_per_s_{n}": rate for n, rate in vector.items()},
        "vector_vs_kernel_16384": vector[16384] / kernel,
        "optionbook_path_steps_per_s_256": book_rate,
        "sb3_adapter_steps_per_s": adapter,
        "sb3_dummy_steps_per_s": dummy,
        "sb3_adapter_vs_dummy": adapter / dummy,
        "sb3_n_envs": n_envs,
        "sb3_adapter_steps_per_s_256": adapter_256,
        "sb3_dummy_steps_per_s_256": dummy_256,
        "sb3_adapter_vs_dummy_256": adapter_256 / dummy_256,
        "target_single_vs_cartpole": 0.75,
        "target_vector_vs_kernel_16384": 0.35,
        "repeats": args.repeats,
        "single_repeats": args.single_repeats,
        "sb3_repeats": args.sb3_repeats,
        # each ratio in every round (the sides measured next to each other): the noise
        "ratio_rounds": {
            "single_vs_cartpole": [round(h / c, 4) for h, c in single_rounds],
            "vector_vs_kernel_16384": [round(r[-1] / r[0], 4) for r in vector_rounds],
            "sb3_adapter_vs_dummy": [round(a / d, 4) for a, d in sb3_rounds],
            "sb3_adapter_vs_dummy_256": [round(a / d, 4) for a, d in sb3_rounds_256],
        },
        "ratio_medians": {
            "single_vs_cartpole": median_ratio(single_rounds, 0, 1),
            "vector_vs_kernel_16384": median_ratio(vector_rounds, -1, 0),
            "sb3_adapter_vs_dummy": median_ratio(sb3_rounds, 0, 1),
            "sb3_adapter_vs_dummy_256": median_ratio(sb3_rounds_256, 0, 1),
        },
        "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "quick": args.quick,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    width = max(map(len, result))
    for key, value in result.items():
        print(
            f"{key:<{width}}  {value:,.3f}"
            if isinstance(value, float)
            else f"{key:<{width}}  {value}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
