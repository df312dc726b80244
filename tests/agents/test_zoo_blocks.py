"""Every block of the shipped stable-baselines3 hyperparameter files builds its agent on its env.

``configs/<algo>.yml`` (rl-baselines3-zoo's format) holds one block per env id; ``train.py
--agent ALGO --env ID`` and the leaderboards train with them. A block that names an unknown
key, a value SB3 refuses or an env that is not registered fails only when someone trains it
(minutes in); the on-policy blocks promise whole episodes per rollout and whole rollouts per
budget in their comments, which a changed episode length would silently break.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import hedgearena.envs  # noqa: F401  (registers the ids)
from hedgearena.agents.sb3 import (
    SB3_ALGOS,
    build_model,
    check_hyperparams,
    make_training_env,
    parse_normalize,
)
from hedgearena.agents.training import OFF_POLICY
from hedgearena.envs.registered import ENV_IDS
from hedgearena.yaml_io import load_yaml

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
REGISTERED_ENVS = tuple(ENV_IDS)
"""Every registered env id: every SB3 algorithm has a block for each (none trains with SB3's
defaults, which discount, do not normalise and step one env)."""


def _blocks() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for algo in SB3_ALGOS:
        document = load_yaml((CONFIGS / f"{algo}.yml").read_text())
        found += [(algo, env_id, dict(block)) for env_id, block in document.items()]
    return found


BLOCKS = _blocks()


def _decisions(env_id: str) -> int:
    """Decisions per episode of the registered env (its market steps / rebalance_every)."""
    env = gym.make_vec(env_id, num_envs=1, vectorization_mode="vector_entry_point")
    try:
        config = env.unwrapped.config if hasattr(env, "unwrapped") else env.config
        return config.n_steps // config.rebalance_every
    finally:
        env.close()


@pytest.mark.parametrize("algo", SB3_ALGOS)
def test_every_algorithm_has_a_block_for_each_registered_env(algo: str) -> None:
    envs = {env_id for name, env_id, _ in BLOCKS if name == algo}
    assert set(REGISTERED_ENVS) <= envs, f"configs/{algo}.yml lacks {set(REGISTERED_ENVS) - envs}"
    assert len(REGISTERED_ENVS) == 4  # ShortCall, OptionBook, PortfolioInsurance, the replay


@pytest.mark.parametrize(("algo", "env_id", "block"), BLOCKS,
                         ids=[f"{a}-{e.split('/')[-1]}" for a, e, _ in BLOCKS])
def test_a_zoo_block_builds_its_agent_on_its_env(algo: str, env_id: str, block: dict) -> None:
    check_hyperparams(algo, block)
    params = {key: value for key, value in block.items() if key != "n_envs"}
    venv = make_training_env(env_id, {}, n_envs=2, seed=0,
                             normalize=parse_normalize(block.get("normalize")),
                             gamma=float(block.get("gamma", 0.99)))
    try:
        small = {**params, "batch_size": 2} if algo not in OFF_POLICY else {
            **params, "buffer_size": 64, "learning_starts": 0, "batch_size": 4}
        model = build_model(algo, venv, small, seed=0)
        model.learn(8)  # one short rollout and update: the settings train, not only build
    finally:
        venv.close()
    assert model.num_timesteps >= 8


ON_POLICY_BLOCKS = [(a, e, b) for a, e, b in BLOCKS if a not in OFF_POLICY]


@pytest.mark.parametrize(("algo", "env_id", "block"), ON_POLICY_BLOCKS,
                         ids=[f"{a}-{e.split('/')[-1]}" for a, e, _ in ON_POLICY_BLOCKS])
def test_an_on_policy_block_rolls_out_whole_episodes_and_whole_rollouts(
    algo: str, env_id: str, block: dict
) -> None:
    rollout = block["n_steps"] * block["n_envs"]
    assert block["n_steps"] % _decisions(env_id) == 0, (block["n_steps"], _decisions(env_id))
    assert int(float(block["n_timesteps"])) % rollout == 0
    assert rollout % block["batch_size"] == 0  # whole minibatches
