"""A researcher's journey from ShortCall-v0 to the market maker's book, OptionBook-v0.

Learned hedgers on the Heston book with Poisson client flow, with and without the listed hedging
option: the trainer books the arena's P&L, resumes, and refuses (by name) an agent scored on an
env it was not trained on. The tests marked "Before:" failed on the code before their fix.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hedgearena.agents.deep_hedging import (
    DeepHedger,
    DeepHedgingTrainer,
    TrainerConfig,
    rollout,
    simulate_paths,
)
from hedgearena.agents.policies import HedgingPolicy, PolicySpec
from hedgearena.agents.sb3 import ObsNormalizer, SB3Hedger, load_hyperparams
from hedgearena.baselines import arena
from hedgearena.baselines.hedger import run_hedger
from hedgearena.envs.config import EnvConfig, make_config
from hedgearena.envs.episode import build_episodes
from hedgearena.envs.vector_env import VecHedgingEnv

pytestmark = pytest.mark.usefixtures("torch_one_thread")

STEPS = 10
"""Market steps of the tests' books (the preset's 60, shortened: client options outlive it)."""


def option_book(hedge_option: bool = False, **overrides: Any) -> EnvConfig:
    return make_config("OptionBook", n_steps=STEPS, hedge_option=True if hedge_option else None,
                       **overrides)


def tiny(**fields: Any) -> TrainerConfig:
    defaults: dict[str, Any] = {"steps": 6, "batch_size": 32, "n_train": 64, "n_valid": 64,
                                "eval_every": 2, "checkpoint_every": 2, "seed": 5}
    return TrainerConfig(**{**defaults, **fields})


# ----------------------------------------------------------------- one source of truth
@pytest.mark.parametrize(
    ("hedge_option", "output"),
    [(False, "shifted_band"), (False, "trade"), (True, "position"), (True, "fraction")],
)
def test_arena_books_the_trainers_pnl_on_the_book_block_by_block(
    monkeypatch: pytest.MonkeyPatch, hedge_option: bool, output: str, scrambled
) -> None:
    """The arena's P&L of a policy (P&L-so-far input, client flow, settlements inside the
    episode) equals the trainer's on the same paths, over several seeded blocks."""
    config = option_book(hedge_option)
    policy = HedgingPolicy(PolicySpec.for_env(config, output=output)).double()
    monkeypatch.setattr(arena, "PATH_BLOCK", 48)  # 3 blocks: 48, 48, 24 paths
    paths = simulate_paths(config, 120, [11], torch.float64, chunk=48)  # the arena's blocks
    policy.fit_normalizer(paths.observations)
    scrambled(policy)
    with torch.no_grad():
        ours = rollout(policy, paths, config)
    result = arena.run_arena(config, [DeepHedger(policy, name="dh")], n_paths=120, seed=11,
                             progress=False)
    pnl = result.totals("dh")["pnl"]
    assert pnl.std() > 10.0  # the positions matter
    np.testing.assert_allclose(ours.pnl.numpy(), pnl, rtol=1e-9, atol=1e-9 * np.abs(pnl).max())
    np.testing.assert_allclose(ours.hedging_cost.numpy(), result.cost("dh"), rtol=1e-9,
                               atol=1e-9 * np.abs(pnl).max())


# ---------------------------------------------------------------------------- resume
def test_a_resumed_book_trainer_ends_where_a_straight_one_does(tmp_path: Path) -> None:
    """Stopped at step 2 and resumed from its checkpoint in a new trainer (a new process), the
    weights after 6 steps are those of 6 steps in one go (paths rebuilt from the seed)."""
    config = option_book(hedge_option=True)
    straight = DeepHedgingTrainer(config, config=tiny(), progress=False)
    straight.train()
    first = DeepHedgingTrainer(config, config=tiny(), checkpoint_dir=tmp_path, progress=False)
    first.train(until=2)
    resumed = DeepHedgingTrainer(config, config=tiny(), checkpoint_dir=tmp_path, progress=False)
    result = resumed.train()
    assert result.step == 6
    assert resumed._working_state is not None
    assert straight._working_state is not None
    for key, value in straight._working_state.items():
        torch.testing.assert_close(resumed._working_state[key], value, rtol=0, atol=0)


# ---------------------------------------------------------------- the wrong env, named
def test_a_deep_hedger_without_a_hedging_option_says_so() -> None:
    """Before: the error listed the two tuples of 12 and 17 names, not what differs."""
    policy = HedgingPolicy(PolicySpec.for_env(option_book()))
    env = VecHedgingEnv(num_envs=4, config=option_book(hedge_option=True))
    with pytest.raises(ValueError, match=r"the env has a hedging option, the policy was trained "
                       r"on an env without one") as error:
        run_hedger(env, DeepHedger(policy), seed=0)
    assert "'model_option', 'option_delta'" in str(error.value)
    policy = HedgingPolicy(PolicySpec.for_env(option_book(hedge_option=True)))
    env = VecHedgingEnv(num_envs=4, config=option_book())
    with pytest.raises(ValueError, match="trained with a hedging option, the env has none"):
        run_hedger(env, DeepHedger(policy), seed=0)


def _tiny_ppo(config_fields: dict[str, Any]) -> Any:
    from stable_baselines3 import PPO

    from hedgearena.envs.sb3_adapter import make_sb3_vec_env

    venv = make_sb3_vec_env("hedgearena/ShortCall-v0", 4, seed=0, **config_fields)
    return PPO("MlpPolicy", venv, n_steps=8, batch_size=32, device="cpu", seed=0)


@pytest.mark.parametrize(
    ("trained", "scored"),
    [({"observe_pnl": True}, {"hedge_option": True, "observe_pnl": True}),
     ({"observe_pnl": True}, {})],
)
def test_an_sb3_agent_on_an_env_with_other_observations_names_it(
    trained: dict[str, Any], scored: dict[str, Any]
) -> None:
    """Before: a ShortCall agent scored on OptionBook with a hedging option failed inside numpy
    with "operands could not be broadcast together with shapes (4,18) (13,)", and without
    ``observe_pnl`` with "... (4,12) (13,)": neither said which env or entries differ."""
    size = 12 + trained.get("observe_pnl", False)  # normalised, as train.py's agents are
    normalizer = ObsNormalizer(np.zeros(size), np.ones(size), clip=10.0, epsilon=1e-8)
    hedger = SB3Hedger(_tiny_ppo(trained), normalizer, {}, name="ppo agent")
    env = VecHedgingEnv(num_envs=4, config=option_book(**scored))
    with pytest.raises(ValueError, match=r"ppo agent was trained on observations of shape "
                       r"\(13,\).* gives observations of shape \((18|12),\)"):
        run_hedger(env, hedger, seed=0)


def test_an_sb3_agent_on_its_own_kind_of_env_is_scored() -> None:
    hedger = SB3Hedger(_tiny_ppo({"observe_pnl": True}), None, {}, name="ppo agent")
    record = run_hedger(VecHedgingEnv(num_envs=4, config=option_book(observe_pnl=True)), hedger,
                        seed=0)
    assert np.isfinite(record.totals["pnl"]).all()


# ------------------------------------------------------------------- zoo hyperparameters
def test_ppo_has_hyperparameters_for_the_book() -> None:
    """Before: configs/ppo.yml held ShortCall-v0 only, and ``train.py --agent ppo --env
    hedgearena/OptionBook-v0`` trained silently with SB3's defaults (no observation
    normalisation, gamma 0.99, 2048-step rollouts): Y 1,183 against delta's 881.7."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        params = load_hyperparams("ppo", "hedgearena/OptionBook-v0")
    assert params["n_steps"] == 60  # one 60-day episode per env and rollout
    assert params["gamma"] == 1.0
    assert "norm_obs': True" in params["normalize"]
    assert params["n_timesteps"] % (params["n_steps"] * params["n_envs"]) == 0  # whole rollouts


def test_a_zoo_file_without_the_envs_block_is_warned_about(tmp_path: Path) -> None:
    """Before: a missing block gave SB3's defaults without a word (the zoo refuses it)."""
    path = tmp_path / "ppo.yml"
    path.write_text("hedgearena/ShortCall-v0:\n  n_envs: 8\n")
    with pytest.warns(UserWarning, match=r"no hyperparameters for hedgearena/OptionBook-v0 \(its "
                      r"blocks: hedgearena/ShortCall-v0\).*defaults"):
        assert load_hyperparams("ppo", "hedgearena/OptionBook-v0", path) == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_hyperparams("ppo", "hedgearena/ShortCall-v0", path) == {"n_envs": 8}


# --------------------------------------------------------------------- action bounds
def test_the_policy_can_hold_the_hedge_of_its_own_option_position() -> None:
    """Before: with the hedging option the policy's underlying spanned the env's 10 notionals,
    which the delta-gamma hedge of the book leaves on 5% of path-steps; the hedge saturated on
    the largest books (tanh: no gradient either). Trained alike (150 steps of 4,096 paths),
    Y 697.7 (se 26.4) before, 635.5 (17.3) after, on 10,000 arena paths (delta 881.7)."""
    config = make_config("OptionBook", hedge_option=True)
    spec = PolicySpec.for_env(config)
    assert spec.position_limit == config.position_limit + config.option_position_limit
    assert PolicySpec.for_env(config, position_limit=12.0).position_limit == 12.0  # a field
    assert PolicySpec.for_env(make_config("OptionBook")).position_limit == config.position_limit
    batch = build_episodes(config, 128, np.random.default_rng(0))
    model = np.abs(batch.episode.model_hedge[:-1]) / config.book.notional
    assert (model > config.position_limit).mean() > 0.01
    assert (model > spec.position_limit).mean() < 0.001
