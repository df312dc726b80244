"""Environment throughput, measured side by side with references in one run.

- ``single_vs_cartpole``: steps/s of ``gym.make("hedgearena/ShortCall-v0")`` over steps/s of
  ``gym.make("CartPole-v1")`` (target >= 0.75), both with constant actions and resets, measured
  in turns (the best of ``--repeats`` rounds each).
- ``vector_vs_kernel_16384``: path-steps/s of the native vector env at 16,384 paths (resets and
  episode building included) over the inputs/s of the bare pricing kernel of bench/pricing.py
  (``d1`` and one ``scipy.special.ndtr``) (target >= 0.35); also at 1, 64 and 1024 paths.
- ``sb3_adapter_vs_dummy``: env-steps/s of stable-baselines3 PPO collecting rollouts through
  :class:`SB3VecEnv` over the same with SB3's ``DummyVecEnv`` of single envs, 16 envs (and
  ``sb3_adapter_vs_dummy_256`` with 256 envs, where one array step replaces 256 Python steps).

Everything runs on one core: torch's intra-op threads are set to 1 for the run (as in
bench/pricing.py; the pricing's erfc and the PPO policy use torch). With torch's default threads
on a machine whose other core is busy, each erfc call can stall on the idle-spinning thread pool.

Usage: ``python bench/env_throughput.py [--out bench/results/env_throughput.json] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from scipy.special import ndtr

import hedgearena  # noqa: F401
from hedgearena.envs.sb3_adapter import make_sb3_vec_env
from hedgearena.envs.vector_env import VecHedgingEnv


def best_of(repeats: int, fn: Callable[[], float]) -> float:
    """The best rate over ``repeats`` runs of ``fn`` (which returns a rate)."""
    return max(fn() for _ in range(repeats))


def interleaved(repeats: int, fns: list[Callable[[], float]]) -> list[float]:
    """The best rate of each of ``fns`` over ``repeats`` rounds that run them in turn.

    Taking turns puts the machine's slow spells on both sides of a ratio alike.
    """
    rates = [[fn() for fn in fns] for _ in range(repeats)]
    return [max(column) for column in zip(*rates, strict=True)]


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


def vector_rate(num_envs: int, path_steps: int) -> float:
    """Path-steps per second of the native vector env (episode building included)."""
    env = VecHedgingEnv(num_envs=num_envs, preset="ShortCall", block=max(256, num_envs))
    env.reset(seed=0)
    actions = np.zeros((num_envs, 1))
    n = max(1, path_steps // num_envs)
    start = time.perf_counter()
    for _ in range(n):
        env.step(actions)
    return n * num_envs / (time.perf_counter() - start)


def kernel_rate(n: int) -> float:
    """Inputs per second of the bare kernel: d1 and one ndtr (as bench/pricing.py)."""
    rng = np.random.default_rng(0)
    s, k = rng.uniform(50, 150, n), rng.uniform(50, 150, n)
    tau, v, r, q = rng.uniform(0.01, 2, n), rng.uniform(0.05, 0.8, n), 0.03, 0.01
    start = time.perf_counter()
    d1 = (np.log(s / k) + (r - q + 0.5 * v * v) * tau) / (v * np.sqrt(tau))
    ndtr(d1)
    return n / (time.perf_counter() - start)


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
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core (see the module docstring)
    scale = 10 if args.quick else 1
    steps = 100_000 // scale
    action = np.zeros(1, dtype=np.float32)

    def measure(name: str, fn: Callable[[], float], repeats: int = args.repeats) -> float:
        value = best_of(repeats, fn)
        print(f"  {name}: {value:,.0f}", flush=True)
        return value

    hedge, cartpole = interleaved(args.repeats, [
        lambda: single_rate("hedgearena/ShortCall-v0", steps, action),
        lambda: single_rate("CartPole-v1", steps, 0),
    ])
    print(f"  ShortCall-v0 steps/s: {hedge:,.0f}\n  CartPole-v1 steps/s: {cartpole:,.0f}",
          flush=True)
    kernel = measure("kernel inputs/s", lambda: kernel_rate(1_000_000))
    vector = {
        n: measure(f"vector env path-steps/s at {n} paths",
                   lambda n=n: vector_rate(n, max(1_000_000 // scale // (1 if n > 1 else 10),
                                                  20 * n)))
        for n in (1, 64, 1024, 16384)
    }
    from stable_baselines3.common.env_util import make_vec_env

    def sb3_pair(n_envs: int) -> tuple[float, float]:
        steps = max(20_000 // scale, 8 * n_envs)
        adapter = measure(f"SB3 PPO rollout steps/s, adapter, {n_envs} envs", lambda: sb3_rate(
            make_sb3_vec_env("hedgearena/ShortCall-v0", n_envs, seed=0), steps), 1)
        dummy = measure(f"SB3 PPO rollout steps/s, DummyVecEnv, {n_envs} envs", lambda: sb3_rate(
            make_vec_env("hedgearena/ShortCall-v0", n_envs=n_envs, seed=0), steps), 1)
        return adapter, dummy

    n_envs = 16
    adapter, dummy = sb3_pair(n_envs)
    adapter_256, dummy_256 = sb3_pair(256)
    result = {
        "single_steps_per_s": hedge,
        "cartpole_steps_per_s": cartpole,
        "single_vs_cartpole": hedge / cartpole,
        "kernel_inputs_per_s": kernel,
        **{f"vector_path_steps_per_s_{n}": rate for n, rate in vector.items()},
        "vector_vs_kernel_16384": vector[16384] / kernel,
        "sb3_adapter_steps_per_s": adapter,
        "sb3_dummy_steps_per_s": dummy,
        "sb3_adapter_vs_dummy": adapter / dummy,
        "sb3_n_envs": n_envs,
        "sb3_adapter_steps_per_s_256": adapter_256,
        "sb3_dummy_steps_per_s_256": dummy_256,
        "sb3_adapter_vs_dummy_256": adapter_256 / dummy_256,
        "torch_threads": torch.get_num_threads(),
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
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
