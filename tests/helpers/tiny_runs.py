"""Tiny training runs through ``train.py`` for tests that score saved agents (seconds each).

``TINY_ARENA`` scores on 512 paths of seed 2024 with delta alone; ``tiny_runs`` trains a PPO
and a deep-hedging agent on ShortCall-v0 into ``out`` and returns their run folders.
"""

from __future__ import annotations

import json
from pathlib import Path

from hedgearena.cli import main

TINY_ARENA = ["--set", "arena.paths=512", "--set", "arena.tune_paths=256",
              "--set", "arena.hedgers=[delta]", "--set", "arena.frontier=false",
              "--set", "arena.n_boot=20", "--no-progress"]
PPO_TINY = {"n_timesteps": 256, "n_envs": 16, "n_steps": 8, "batch_size": 64, "n_epochs": 1}
DH_TINY = {"steps": 4, "batch_size": 64, "n_train": 128, "n_valid": 64, "eval_every": 2,
           "checkpoint_every": 2, "hidden": [8]}


def train_tiny(algo: str, params: dict, out: Path) -> Path:
    """Train ``algo`` with ``params`` (its hyperparameters) into ``out``; its run folder."""
    extra = [] if algo == "deep_hedging" else ["--set", "agent.eval_paths=128"]
    main(["train", "--agent", algo, "--out", str(out),
          "--set", f"agent.hyperparams={json.dumps(params)}", *TINY_ARENA, *extra])
    return out / f"{algo}-ShortCall-seed0"


def tiny_runs(out: Path) -> dict[str, Path]:
    """A tiny PPO run and a tiny deep-hedging run in ``out``: algo -> run folder."""
    return {"ppo": train_tiny("ppo", PPO_TINY, out),
            "deep_hedging": train_tiny("deep_hedging", DH_TINY, out)}
