"""Deep hedging: one source of truth with the env, gradients, learning, save/load, resume."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hedgearena.agents.deep_hedging import (
    DeepHedger,
    DeepHedgingTrainer,
    TrainerConfig,
    load_policy,
    path_tensors,
    rollout,
    save_policy,
)
from hedgearena.agents.policies import HedgingPolicy, PolicySpec
from hedgearena.baselines.hedger import Hedger, run_hedger
from hedgearena.envs.config import EnvConfig, make_config
from hedgearena.envs.episode import build_episodes, feature_names
from hedgearena.envs.vector_env import VecHedgingEnv

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def short_call(n_steps: int = 10, **overrides: Any) -> EnvConfig:
    book = {"options": [{"moneyness": 1.0, "expiry_steps": n_steps, "contracts": -1.0}]}
    return make_config("ShortCall", book=book, **overrides)


def tiny(**fields: Any) -> TrainerConfig:
    defaults: dict[str, Any] = {"steps": 4, "batch_size": 32, "n_train": 64, "n_valid": 64,
                                "eval_every": 2, "checkpoint_every": 2, "seed": 3}
    return TrainerConfig(**{**defaults, **fields})


class Delta(Hedger):
    name = "delta"

    def positions(self, state: Any, obs: np.ndarray) -> np.ndarray:
        return state["model_hedge"][:, None]


# ------------------------------------------------------------------ one source of truth
CASES = {
    "band": ({}, {}),
    "band, every 2 steps, delta start": ({"rebalance_every": 2, "initial_hedge": "delta"}, {}),
    "band, impact, fixed fee, lots": (
        {"cost": {"proportional": 0.01, "fixed": 0.5,
                  "sqrt_impact": {"coefficient": 1.0, "daily_volume": 1e4}},
         "lot_size": 1.0},
        {"inputs": ("time_left", "log_moneyness", "model_hedge")},
    ),
    "gru band": ({}, {"kind": "gru", "hidden": (8, 8)}),
    "shifted band, P&L input, r > 0": (
        {"market_kwargs": {"mu": 0.05, "sigma": 0.2, "rate": 0.03, "dividend": 0.01}},
        {"output": "shifted_band", "inputs": (*feature_names(False), "pnl")},
    ),
    "gru band, P&L input, every 2 steps": (
        {"rebalance_every": 2}, {"kind": "gru", "inputs": ("time_left", "hedge", "pnl")},
    ),
    "position": ({}, {"output": "position"}),
    "fraction, gru": ({"rebalance_every": 5}, {"output": "fraction", "kind": "gru"}),
    "trade": ({}, {"output": "trade"}),
    "band, twap child orders": ({"execution": "twap", "rebalance_every": 2}, {}),
    "band, participation": ({"execution": "participation", "rebalance_every": 5}, {}),
    "position, hedging option": ({"hedge_option": True}, {"output": "position"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_env_pnl_equals_trainer_pnl(case: str, scrambled) -> None:
    """The arena's P&L of the DeepHedger == the trainer's P&L on the same batch (float64)."""
    env_fields, policy_fields = CASES[case]
    config = short_call(10, **env_fields)
    policy = scrambled(HedgingPolicy(PolicySpec.for_env(config, **policy_fields)).double())
    batch = build_episodes(config, 257, np.random.default_rng(7))
    policy.fit_normalizer(torch.as_tensor(batch.observations))
    paths = path_tensors(batch, config, torch.float64)
    with torch.no_grad():
        ours = rollout(policy, paths, config, record=True)

    env = VecHedgingEnv(num_envs=257, config=config)
    record = run_hedger(env, DeepHedger(policy), episodes=batch)
    pnl = record.totals["pnl"]
    scale = np.maximum(np.abs(pnl), 1.0)
    assert np.abs(ours.pnl.numpy() - pnl).max() / scale.max() < 1e-8
    np.testing.assert_array_less(np.abs(ours.pnl.numpy() - pnl) / scale, 1e-8)
    np.testing.assert_allclose(ours.cost.numpy(), record.totals["cost"], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(ours.turnover.numpy(), record.totals["turnover"], rtol=1e-8)
    rate = config.market.rate
    discount = math.exp(-rate * config.n_steps * config.dt)
    hedging_cost = record.totals["initial_premium"] - discount * pnl
    np.testing.assert_allclose(ours.hedging_cost.numpy(), hedging_cost, rtol=1e-8, atol=1e-6)
    held = ours.hedge.numpy()
    np.testing.assert_allclose(record.hedge, held, rtol=1e-10, atol=1e-10)
    assert held.std() > 1.0  # the positions do vary
    if config.hedge_option is not None:
        np.testing.assert_allclose(record.option, ours.option.numpy(), rtol=1e-10, atol=1e-10)


def test_float32_policy_on_the_env_is_close() -> None:
    """A float32 policy: the env's float64 books stay close to the trainer's float32 P&L."""
    config = short_call(10)
    trainer = DeepHedgingTrainer(config, config=tiny(n_valid=256), progress=False)
    trainer.train()
    paths = trainer.validation_paths
    with torch.no_grad():
        ours = rollout(trainer.policy, paths, config).pnl.numpy()
    batch = build_episodes(config, 256, np.random.default_rng([3, 1, 0]))
    env = VecHedgingEnv(num_envs=256, config=config)
    record = run_hedger(env, trainer.hedger(), episodes=batch)
    np.testing.assert_allclose(record.totals["pnl"], ours, rtol=1e-3, atol=0.05)


# ------------------------------------------------------------------------------- gradient
@pytest.mark.parametrize(
    ("objective", "policy_fields"),
    [
        ("mean_std:1.5", {"output": "position", "activation": "tanh"}),
        ("entropic:0.01", {"output": "band", "activation": "silu"}),
        ("mean_variance:0.001", {"output": "fraction", "kind": "gru", "activation": "tanh"}),
        ("cvar:0.8", {"output": "trade", "activation": "silu"}),
    ],
)
def test_gradient_matches_finite_difference(objective: str, policy_fields: dict, scrambled) -> None:
    config = short_call(6)
    trainer = DeepHedgingTrainer(
        config, config=tiny(objective=objective, dtype="float64", n_train=16, batch_size=16),
        progress=False, hidden=(5, 4), **policy_fields,
    )
    policy = scrambled(trainer.policy, seed=1)
    paths = trainer.minibatch(0)
    policy.fit_normalizer(paths.observations)
    params = list(policy.parameters())
    loss = trainer.loss(paths)
    grads = torch.autograd.grad(loss, params)
    gradient = torch.cat([g.reshape(-1) for g in grads])
    theta = torch.nn.utils.parameters_to_vector(params).detach().clone()
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        direction = torch.randn(theta.shape, generator=generator, dtype=torch.float64)
        direction /= direction.norm()
        eps = 1e-6
        values = []
        for sign in (1.0, -1.0):
            torch.nn.utils.vector_to_parameters(theta + sign * eps * direction, params)
            with torch.no_grad():
                values.append(float(trainer.loss(paths)))
        torch.nn.utils.vector_to_parameters(theta, params)
        finite_difference = (values[0] - values[1]) / (2 * eps)
        analytic = float(gradient @ direction)
        assert abs(analytic) > 1e-3  # a meaningful direction
        assert abs(finite_difference - analytic) / abs(analytic) < 1e-5


def test_lots_pass_the_gradient_straight_through(scrambled) -> None:
    """Trades rounded to lots have a zero derivative almost everywhere, so training with
    ``lot_size`` did nothing: the straight-through gradient is the unrounded trade's (Bengio,
    Leonard and Courville 2013), while the value booked stays the rounded one."""
    grads = {}
    for lot in (0.0, 1.0):
        trainer = DeepHedgingTrainer(short_call(6, lot_size=lot),
                                     config=tiny(dtype="float64", n_train=64, batch_size=64),
                                     progress=False, hidden=(5, 4))
        policy = scrambled(trainer.policy, seed=1)
        paths = trainer.minibatch(0)
        policy.fit_normalizer(paths.observations)
        loss = trainer.loss(paths)
        grads[lot] = torch.cat([g.reshape(-1) for g in torch.autograd.grad(
            loss, list(policy.parameters()))])
    assert grads[1.0].norm() > 0.1 * grads[0.0].norm()
    cosine = float(grads[1.0] @ grads[0.0] / (grads[1.0].norm() * grads[0.0].norm()))
    assert cosine > 0.5  # lots of one unit on a 100-unit book barely change the direction


# ------------------------------------------------------------------------------- learning
def test_learns_the_delta_hedge_without_costs() -> None:
    """Zero costs: the learned hedge's P&L std is within 10% of the delta hedge's."""
    config = short_call(10, cost=0.0)
    start = time.perf_counter()
    trainer = DeepHedgingTrainer(
        config,
        config=TrainerConfig(steps=150, batch_size=2048, n_train=2**14, n_valid=4096,
                             eval_every=50, learning_rate=1e-2, final_learning_rate=1e-3,
                             seed=0),
        progress=False,
    )
    result = trainer.train()
    assert time.perf_counter() - start < 60
    env = VecHedgingEnv(num_envs=10_000, config=config)
    delta = run_hedger(env, Delta(), seed=11).totals["pnl"].std()
    learned = run_hedger(env, trainer.hedger(), seed=11).totals["pnl"].std()
    no_hedge = run_hedger(env, _NoHedge(), seed=11).totals["pnl"].std()
    assert learned < 1.1 * delta < no_hedge / 3
    assert result.best["cost_std"] < 1.1 * delta


class _NoHedge(Hedger):
    name = "no hedge"

    def positions(self, state: Any, obs: np.ndarray) -> np.ndarray:
        return np.zeros((len(state["spot"]), 1))


def test_training_lowers_the_objective_with_costs() -> None:
    config = short_call(10)
    trainer = DeepHedgingTrainer(
        config, config=tiny(steps=30, batch_size=512, n_train=2048, n_valid=2048,
                            eval_every=10, learning_rate=1e-2),
        progress=False, initial_width=0.01,  # starts close to delta: trades too much
    )
    before = trainer.evaluate()["objective"]
    result = trainer.train()
    assert result.best["objective"] < before - 5.0
    assert [h["step"] for h in result.history] == [10.0, 20.0, 30.0]


# ------------------------------------------------------------------------ reproducibility
def test_same_seed_same_weights() -> None:
    config = short_call(5)
    states = []
    for _ in range(2):
        trainer = DeepHedgingTrainer(config, config=tiny(), progress=False)
        trainer.train()
        states.append(trainer.policy.state_dict())
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key


def test_fresh_batches_are_reproducible() -> None:
    config = short_call(5)
    first = DeepHedgingTrainer(config, config=tiny(fresh_batches=True, n_train=0),
                               progress=False)
    second = DeepHedgingTrainer(config, config=tiny(fresh_batches=True, n_train=0),
                                progress=False)
    assert torch.equal(first.minibatch(3).episode.spot, second.minibatch(3).episode.spot)
    assert not torch.equal(first.minibatch(3).episode.spot, first.minibatch(4).episode.spot)
    first.train()
    assert first.step == 4


# ------------------------------------------------------------------------------ save/load
@pytest.mark.parametrize("policy_fields", [{}, {"kind": "gru", "output": "position"}])
def test_save_load_gives_identical_positions(tmp_path: Path, policy_fields: dict) -> None:
    config = short_call(8)
    trainer = DeepHedgingTrainer(config, config=tiny(), progress=False, **policy_fields)
    trainer.train()
    folder = trainer.save(tmp_path / "model")
    loaded = load_policy(folder)
    assert loaded.spec == trainer.policy.spec
    assert loaded.input_mean.dtype == torch.float32
    for key, value in trainer.policy.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    env = VecHedgingEnv(num_envs=100, config=config)
    original = run_hedger(env, trainer.hedger(), seed=5)
    again = run_hedger(env, DeepHedger.load(folder), seed=5)
    np.testing.assert_array_equal(original.hedge, again.hedge)
    np.testing.assert_array_equal(original.totals["pnl"], again.totals["pnl"])
    settings = (folder / "settings.json").read_text()
    assert '"objective": "mean_std:1.5"' in settings


def test_save_policy_float64_round_trip(tmp_path: Path, scrambled) -> None:
    config = short_call(5)
    policy = scrambled(HedgingPolicy(PolicySpec.for_env(config)).double())
    loaded = load_policy(save_policy(policy, tmp_path / "p"))
    assert loaded.input_mean.dtype == torch.float64
    obs, zero = torch.randn(7, 12, dtype=torch.float64), torch.zeros(7, dtype=torch.float64)
    model = torch.full((7,), 50.0, dtype=torch.float64)
    pnl = torch.linspace(-300.0, 100.0, 7, dtype=torch.float64)
    assert torch.equal(policy.step(obs, zero, zero, model, zero, pnl=pnl)[0],
                       loaded.step(obs, zero, zero, model, zero, pnl=pnl)[0])


# --------------------------------------------------------------------------------- resume
def test_resume_continues_the_step_count(tmp_path: Path) -> None:
    config = short_call(5)
    straight = DeepHedgingTrainer(config, config=tiny(steps=6), progress=False)
    straight.train()

    interrupted = DeepHedgingTrainer(config, config=tiny(steps=6), progress=False,
                                     checkpoint_dir=tmp_path)
    assert interrupted.train(until=3).step == 3
    assert (tmp_path / "last.pt").exists()

    resumed = DeepHedgingTrainer(config, config=tiny(steps=6), progress=False,
                                 checkpoint_dir=tmp_path)
    result = resumed.train()
    assert result.step == 6
    assert [h["step"] for h in result.history] == [2.0, 3.0, 4.0, 6.0]
    for key, value in straight.policy.state_dict().items():
        assert torch.equal(value, resumed.policy.state_dict()[key]), key
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 6


def test_resume_rejects_another_policy(tmp_path: Path) -> None:
    config = short_call(5)
    DeepHedgingTrainer(config, config=tiny(), progress=False, checkpoint_dir=tmp_path).train(2)
    other = DeepHedgingTrainer(config, config=tiny(), progress=False, checkpoint_dir=tmp_path,
                               hidden=(8,))
    with pytest.raises(ValueError, match="another policy"):
        other.train()


def test_train_again_continues_from_the_last_weights() -> None:
    config = short_call(5)
    trainer = DeepHedgingTrainer(config, config=tiny(steps=6), progress=False)
    trainer.train(until=3)
    assert trainer.train().step == 6


def test_tensorboard_logs(tmp_path: Path) -> None:
    config = short_call(5)
    DeepHedgingTrainer(config, config=tiny(), progress=False, log_dir=tmp_path).train()
    assert list(tmp_path.glob("events.out.tfevents.*"))


# --------------------------------------------------------------------------------- errors
def test_band_needs_a_single_instrument() -> None:
    config = short_call(5, hedge_option=True)
    for output in ("band", "shifted_band"):
        with pytest.raises(ValueError, match=f"output='{output}' hedges the underlying only"):
            PolicySpec.for_env(config, output=output)
    assert PolicySpec.for_env(config).output == "position"


def test_hedger_rejects_another_env() -> None:
    policy = HedgingPolicy(PolicySpec.for_env(short_call(5)))
    env = VecHedgingEnv(num_envs=4, config=short_call(5, hedge_option=True))
    with pytest.raises(ValueError, match="the policy reads observations"):
        run_hedger(env, DeepHedger(policy), seed=0)


@pytest.mark.parametrize(
    ("env_fields", "match"),
    [
        ({"permanent_impact": 0.001}, "permanent_impact=0.001 is not supported"),
        ({"risk_limits": {"delta": 0.5}}, "risk_limits are enforced by the envs"),
    ],
)
def test_trainer_refuses_what_the_torch_core_cannot_step(env_fields: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DeepHedgingTrainer(short_call(5, **env_fields), config=tiny(), progress=False)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"objective": "var:1"}, "unknown name"),
        ({"dtype": "float16"}, "dtype must be one of"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"n_train": 10, "batch_size": 20}, "n_train"),
        ({"learning_rate": -1.0}, "learning_rate must be"),
    ],
)
def test_trainer_config_errors(fields: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainerConfig(**fields)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"kind": "lstm"}, "kind must be one of"),
        ({"output": "delta"}, "output must be one of"),
        ({"inputs": ("spot",)}, "inputs must be a non-empty subset"),
        ({"hidden": ()}, "hidden must be"),
        ({"initial_width": 0.0}, "initial_width must be"),
        ({"initial_width": 1000.0}, "initial_width must be <= 100 notionals"),  # overflowed
    ],
)
def test_policy_spec_errors(fields: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PolicySpec.for_env(short_call(5), **fields)


def test_hedging_cost_discounts_with_the_rate() -> None:
    config = short_call(5, market_kwargs={"mu": 0.05, "sigma": 0.2, "rate": 0.04})
    batch = build_episodes(config, 16, np.random.default_rng(0))
    paths = path_tensors(batch, config, torch.float64)
    assert paths.discount == pytest.approx(math.exp(-0.04 * 5 / 250))
    policy = HedgingPolicy(PolicySpec.for_env(config)).double()
    with torch.no_grad():
        run = rollout(policy, paths, config)
    expected = paths.initial_cash - paths.discount * run.pnl
    assert torch.allclose(run.hedging_cost, expected)


def test_scored_by_the_arena_like_the_baselines(monkeypatch, scrambled) -> None:
    """run_arena over two blocks: the recurrent state is reset per block, the P&L is ours."""
    from hedgearena.baselines import arena
    from hedgearena.baselines.arena import run_arena

    monkeypatch.setattr(arena, "PATH_BLOCK", 200)
    config = short_call(6)
    spec = PolicySpec.for_env(config, kind="gru", inputs=(*feature_names(False), "pnl"))
    policy = scrambled(HedgingPolicy(spec).double())
    result = run_arena(config, [Delta(), DeepHedger(policy)], n_paths=300, seed=0,
                       progress=False, keep_batches=True)
    assert len(result.batches) == 2
    with torch.no_grad():
        ours = rollout(policy, path_tensors(result.batch, config, torch.float64), config)
    np.testing.assert_allclose(result.records["deep hedging"].totals["pnl"], ours.pnl.numpy(),
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("output", ["band", "shifted_band"])
@pytest.mark.parametrize("push", [1e6, -1e6])
def test_band_positions_stay_within_position_limit_of_the_model_hedge(output: str,
                                                                      push: float) -> None:
    """The bands' widths (softplus) and shift are unbounded: a net fed states far from its
    training ones (the 2008 window's P&L) held -2.2e7, then -3.1e17 units of a 100-share book.
    Positions are held within position_limit * notional (1.5 * 100) of the model hedge.

    The head's weights are zeroed, so every raw output is exactly ``push`` whatever the
    (unseeded) initial weights: with them, the hidden layer saturated by the +-1e9 positions
    moved the raw outputs by about as much as the push, and the side of the shifted band's
    lower edge depended on the draw (half of the seeds)."""
    spec = PolicySpec.for_env(make_config("ShortCall"), output=output)
    policy = HedgingPolicy(spec).double()
    with torch.no_grad():
        policy.head.weight.zero_()
        policy.head.bias.fill_(push)  # every raw output pushed far out
    n = 4
    obs = torch.zeros(n, len(spec.observation), dtype=torch.float64)
    model = torch.tensor([-80.0, -50.0, -5.0, 0.0], dtype=torch.float64)
    held = torch.tensor([1e9, -1e9, 30.0, -30.0], dtype=torch.float64)
    hedge, _, _ = policy.step(obs, held, torch.zeros(n, dtype=torch.float64), model,
                              torch.zeros(n, dtype=torch.float64),
                              pnl=torch.zeros(n, dtype=torch.float64))
    reach = spec.position_limit * spec.notional
    assert reach == 150.0
    assert bool(((hedge - model).abs() <= reach).all()), hedge
    if push > 0:  # widths softplus(1e6) * 100 = 1e8 units; the shifted band's centre model + 1e8
        if output == "band":  # [model - 1e8, model + 1e8]: +-1e9 clipped to the reach, 30 kept
            expected = torch.stack([model[0] + reach, model[1] - reach, held[2], held[3]])
        else:  # [model, model + 2e8]: 1e9 to the reach, -1e9 to the model, 30 kept, -30 to 0
            expected = torch.stack([model[0] + reach, model[1], held[2], model[3]])
    else:  # no width (softplus(-1e6) = 0): the centre, model - 1e8 for the shifted band
        expected = model - reach if output == "shifted_band" else model
    torch.testing.assert_close(hedge, expected)


def test_the_pnl_input_reads_alike_at_any_index_level(scrambled) -> None:
    """A market ten times higher (spot 1,000: every price, P&L and cost x10, positions in units
    the same) gives the same positions: the policy reads the P&L so far at a spot of 100
    (pnl_input). Read in currency it was ten times its training range on the S&P's 2008 window
    and the positions differed (and, fed back, exploded)."""
    positions = []
    for spot0 in (100.0, 1000.0):
        config = make_config("ShortCall", market_kwargs={"spot0": spot0})
        spec = PolicySpec.for_env(config, output="shifted_band")
        assert "pnl" in (spec.inputs or ())
        torch.manual_seed(3)
        policy = scrambled(HedgingPolicy(spec).double(), seed=4)
        record = run_hedger(VecHedgingEnv(num_envs=64, config=config), DeepHedger(policy),
                            seed=9)
        positions.append(record.hedge)
    assert np.ptp(positions[0]) > 10.0  # the scrambled policy trades
    np.testing.assert_allclose(positions[1], positions[0], rtol=1e-6, atol=1e-6)
