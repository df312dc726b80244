"""A stand-in for an RLlib algorithm, for tests of ``train_rllib``'s loop without Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class StandInAlgo:
    """100 env steps an iteration; checkpoints are empty folders named ``step_<n>``."""

    def __init__(self) -> None:
        self.steps = 0

    def train(self) -> dict[str, Any]:
        """One iteration: 100 more env steps."""
        self.steps += 100
        return {"env_runners": {"num_env_steps_sampled_lifetime": self.steps}}

    def save_to_path(self, path: str) -> None:
        """A checkpoint: the folder."""
        Path(path).mkdir(parents=True, exist_ok=True)

    def restore_from_path(self, path: str) -> None:
        """Resume at the checkpoint's step count."""
        self.steps = int(Path(path).name.removeprefix("step_"))

    def stop(self) -> None:
        """Nothing to let go."""


def untrained_module(config: Any, seed: int = 0) -> Any:
    """An untrained (random, seeded) module of ``config``'s ``rllib`` section on its agent's
    view of its env, built without Ray."""
    import torch

    from hedgearena.agents.rllib import algorithm_config
    from hedgearena.envs.vector_env import VecHedgingEnv

    spec = config.rllib
    algo_config = algorithm_config(spec, config.env.id, spec.env_kwargs, config.seed)
    view = VecHedgingEnv(1, config=config.env.config().replace(**spec.env_kwargs))
    module_spec = algo_config.get_default_rl_module_spec()
    module_spec.observation_space = view.single_observation_space
    module_spec.action_space = view.single_action_space
    module_spec.model_config = algo_config.model_config
    torch.manual_seed(seed)
    return module_spec.build()
