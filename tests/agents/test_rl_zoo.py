"""The zoo configs under configs/ train with rl-baselines3-zoo, and the arena scores the result.

``python -m rl_zoo3.train --gym-packages hedgearena -conf configs/<algo>.yml`` is run end to end
on a tiny budget (the hyperparameters that set the budget overridden with ``--hyperparams``);
the saved model and its VecNormalize statistics are then loaded as an :class:`SB3Hedger` and
scored by :func:`run_arena` next to daily delta on the same paths.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rl_zoo3", reason="the zoo extra: pip install -e '.[zoo]'")

from hedgearena.agents.sb3 import ObsNormalizer, SB3Hedger, algorithm
from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.delta import BlackScholesDelta
from hedgearena.envs.config import make_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ENV_ID = "hedgearena/ShortCall-v0"

# zoo algo name, our config file, our algo name, hyperparameters that shrink the budget
CASES = [
    ("ppo", "ppo.yml", "ppo", ["n_envs:4", "n_steps:20", "batch_size:40"]),
    ("sac", "sac.yml", "sac", ["n_envs:4", "learning_starts:64", "batch_size:32"]),
    ("td3", "td3.yml", "td3", ["n_envs:4", "learning_starts:64", "batch_size:32"]),
    ("ddpg", "ddpg.yml", "ddpg", ["n_envs:4", "learning_starts:64", "batch_size:32"]),
    ("tqc", "tqc.yml", "tqc", ["n_envs:4", "learning_starts:64", "batch_size:32"]),
    ("ppo_lstm", "recurrent_ppo.yml", "recurrent_ppo",
     ["n_envs:4", "n_steps:20", "batch_size:40"]),
]


def zoo_train(algo: str, config: str, hyperparams: list[str], logs: Path) -> Path:
    """Run rl_zoo3's trainer on 160 env steps; return the folder holding the saved model."""
    command = [
        sys.executable, "-m", "rl_zoo3.train", "--algo", algo, "--env", ENV_ID,
        "--gym-packages", "hedgearena", "-conf", str(CONFIGS / config), "-n", "160",
        "-f", str(logs), "--seed", "0", "--eval-freq", "-1", "--num-threads", "1",
        "--env-kwargs", "action_mode:'band'", "--hyperparams", *hyperparams,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (logs / algo).iterdir()
    return run


@pytest.mark.parametrize(("zoo_algo", "config", "algo", "hyperparams"), CASES,
                         ids=[c[0] for c in CASES])
def test_zoo_config_trains_and_the_arena_scores_it(
    zoo_algo: str, config: str, algo: str, hyperparams: list[str], tmp_path: Path
) -> None:
    run = zoo_train(zoo_algo, config, hyperparams, tmp_path)
    model = algorithm(algo).load(run / f"{ENV_ID.replace('/', '-')}.zip", device="cpu")
    with (run / ENV_ID.replace("/", "-") / "vecnormalize.pkl").open("rb") as handle:
        normalizer = ObsNormalizer.of(pickle.load(handle))  # written by the zoo run above
    agent = SB3Hedger(model, normalizer, {"action_mode": "band"}, name=zoo_algo)
    result = run_arena(make_config("ShortCall"), [BlackScholesDelta(), agent], n_paths=64,
                       seed=0, progress=False)
    for name in ("delta", zoo_algo):
        pnl = result.records[name].totals["terminal_pnl"]
        assert pnl.shape == (64,)
        assert np.isfinite(pnl).all()
    # the agent trades (a band around delta, so not the delta hedge's trades exactly)
    assert np.abs(result.records[zoo_algo].trade).sum() > 0
