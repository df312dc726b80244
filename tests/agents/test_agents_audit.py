"""Audit of the learned-agent layer against independent references.

Objectives against their published definitions computed directly in numpy and against the
arena's metrics; the no-transaction-band policy against Imaki et al. (2021); the SB3 callbacks'
tags and intervals; the saved-agent loaders' errors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import KVWriter, Logger

from hedgearena.agents import callbacks
from hedgearena.agents.callbacks import CheckpointCallback, HedgingEvalCallback
from hedgearena.agents.deep_hedging import load_policy, save_policy
from hedgearena.agents.objectives import (
    entropic,
    expected_shortfall,
    mean_std,
    mean_variance,
    parse_objective,
)
from hedgearena.agents.policies import HedgingPolicy, PolicySpec
from hedgearena.agents.saved import loading, read_json, required_file
from hedgearena.baselines import metrics
from hedgearena.baselines.bands import FixedBand
from hedgearena.baselines.delta import BlackScholesDelta
from hedgearena.envs.config import make_config

COSTS = np.array([12.0, 3.0, 7.5, 20.0, -1.0, 7.5, 9.0, 15.0, 4.0, 11.0])


# ------------------------------------------------------------------------------ objectives
def test_objectives_on_known_samples() -> None:
    """Hand-computed values of the published definitions (ddof = 0) on ten costs."""
    n, mean = 10, 88.0 / 10  # sum of COSTS is 88
    var = sum((c - mean) ** 2 for c in COSTS) / n
    assert float(mean_std(COSTS, 1.5)) == pytest.approx(mean + 1.5 * math.sqrt(var), rel=1e-14)
    assert float(mean_variance(COSTS, 0.3)) == pytest.approx(mean + 0.15 * var, rel=1e-14)
    a = 0.2  # (1/a) log((1/n) sum exp(a C)), Foellmer and Schied
    assert float(entropic(COSTS, a)) == pytest.approx(
        math.log(sum(math.exp(a * c) for c in COSTS) / n) / a, rel=1e-14)
    # worst 25% of 10 paths = 2.5 paths: 20, 15 and half of 12
    assert float(expected_shortfall(COSTS, 0.75)) == pytest.approx((20 + 15 + 6) / 2.5)
    assert float(expected_shortfall(COSTS, 0.8)) == pytest.approx(17.5)  # 20 and 15


@pytest.mark.parametrize("alpha", [0.5, 0.75, 0.8, 0.9, 0.97])
def test_cvar_is_the_rockafellar_uryasev_minimum_over_a_fine_grid(alpha: float) -> None:
    """``min_w w + E[(C - w)^+] / (1 - alpha)`` by brute force over w (a convex function).

    The grid is uniform, plus the samples (the minimum sits on one: the VaR).
    """
    grid = np.concatenate([np.linspace(COSTS.min() - 1, COSTS.max() + 1, 20_001), COSTS])
    values = grid + np.maximum(COSTS[None, :] - grid[:, None], 0.0).mean(axis=1) / (1 - alpha)
    assert float(expected_shortfall(COSTS, alpha)) == pytest.approx(values.min(), rel=1e-12)


def test_cvar_at_alpha_next_to_one_is_the_worst_cost_not_nan() -> None:
    """Before: ``n (1 - alpha)`` below 1e-9 was snapped to 0 paths and ES was 0 / 0 = NaN."""
    for alpha in (1 - 1e-10, 1 - 1e-12, 1 - 1e-15):
        assert float(expected_shortfall(COSTS, alpha)) == 20.0
        worst = torch.as_tensor(COSTS).requires_grad_()
        expected_shortfall(worst, alpha).backward()
        assert worst.grad is not None
        assert float(worst.grad[3]) == pytest.approx(1.0)


@pytest.mark.parametrize("spec", ["mean_std:1.5", "mean_std:0", "entropic:0.05", "entropic:2",
                                  "cvar:0.5", "cvar:0.83", "mean_variance:0.01"])
def test_gradcheck_float64(spec: str) -> None:
    objective = parse_objective(spec)
    rng = np.random.default_rng(3)
    costs = torch.tensor(rng.normal(10.0, 4.0, 23), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: objective(c), (costs,), eps=1e-6, atol=1e-7)


def test_consistency_with_the_arena_metrics_as_documented() -> None:
    """ddof 1 vs 0 for mean + c std; ES equal on whole tails, never above otherwise."""
    rng = np.random.default_rng(0)
    for n in (10, 101, 1000):
        cost = rng.lognormal(5.0, 0.4, n)
        ours, arena = float(mean_std(cost, 1.5)), metrics.cost_objective(cost, 1.5).value
        assert arena - ours == pytest.approx(1.5 * cost.std() * (math.sqrt(n / (n - 1)) - 1),
                                             rel=1e-9)
        assert float(entropic(cost, 0.01)) == pytest.approx(metrics.entropic_risk(-cost, 0.01),
                                                            rel=1e-12)
        for alpha in (0.9, 0.95, 0.99, 0.995):
            ours_es = float(expected_shortfall(cost, alpha))
            arena_es = metrics.expected_shortfall(cost, alpha)
            whole = abs(n * (1 - alpha) - round(n * (1 - alpha))) < 1e-9 or n * (1 - alpha) < 1
            if whole:
                assert ours_es == pytest.approx(arena_es, rel=1e-12)
            else:
                assert ours_es <= arena_es + 1e-9
    # the validation objectives of the SB3 callback are the arena's (ddof = 1)
    assert callbacks.metrics is metrics


# -------------------------------------------------------------------------------- policies
def band_policy(seed: int = 0, **fields: Any) -> HedgingPolicy:
    torch.manual_seed(seed)
    fields.setdefault("output", "band")
    return HedgingPolicy(PolicySpec.for_env(make_config("ShortCall"), **fields))


def test_band_is_the_previous_hedge_clamped_around_the_model_delta() -> None:
    """Imaki et al. (2021): h_t = clamp(h_{t-1}, delta - l, delta + u), l, u >= 0."""
    policy = band_policy().double()
    n = 7
    obs = torch.randn(n, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    prev = torch.linspace(-90.0, 10.0, n, dtype=torch.float64)
    model = torch.full((n,), -50.0, dtype=torch.float64)
    zero = torch.zeros(n, dtype=torch.float64)
    hedge, option, hidden = policy.step(obs, prev, zero, model, zero, pnl=zero)
    raw, _ = policy(policy.features(obs, prev, zero, zero))
    centre, widths = model.numpy(), raw.detach().numpy()
    lower = centre - 100.0 * np.logaddexp(0.0, widths[:, 0])  # softplus, in numpy
    upper = centre + 100.0 * np.logaddexp(0.0, widths[:, 1])
    np.testing.assert_allclose(hedge.detach().numpy(),
                               np.minimum(np.maximum(prev.numpy(), lower), upper), rtol=1e-12)
    assert hedge.dtype == torch.float64
    assert hedge.shape == (n,)
    assert hidden is None
    assert torch.equal(option, zero)
    # at initialisation: a constant band of initial_width (0.1 notional = 10 units) each side
    np.testing.assert_allclose(centre - lower, 10.0, rtol=0.05)
    np.testing.assert_allclose(upper - centre, 10.0, rtol=0.05)
    # widths never negative: with huge negative raw outputs the band shrinks to the model hedge
    shut = policy.targets(torch.full((n, 2), -1e4, dtype=torch.float64), prev, zero, model, zero)
    assert torch.equal(shut[0], model)
    wide = policy.targets(torch.full((n, 2), 1e4, dtype=torch.float64), prev, zero, model, zero)
    assert torch.equal(wide[0], prev)  # an infinitely wide band never trades


def test_band_gradients_and_seeded_determinism() -> None:
    policy = band_policy(seed=4).double()
    prev = torch.tensor([-70.0, -52.0, -45.0, -20.0], dtype=torch.float64)
    model, zero = torch.full((4,), -50.0, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    raw = torch.tensor([[0.1, -2.0], [0.3, 0.2], [-3.0, 0.5], [0.0, -0.4]], dtype=torch.float64,
                       requires_grad=True)
    assert torch.autograd.gradcheck(lambda r: policy.targets(r, prev, zero, model, zero)[0],
                                    (raw,))
    again = band_policy(seed=4).double()
    assert all(torch.equal(a, b) for a, b in zip(policy.state_dict().values(),
                                                 again.state_dict().values(), strict=True))
    assert not torch.equal(band_policy(seed=5).head.weight, band_policy(seed=4).head.weight)


def test_policy_reads_the_env_observation_layout() -> None:
    """Positions are the observation's last entries; the env's ``pnl`` column is ignored."""
    config = make_config("ShortCall", observe_pnl=True)
    policy = HedgingPolicy(PolicySpec.for_env(config))
    assert policy.spec.observation[-1] == "hedge"
    assert policy.n_positions == 1
    obs = torch.randn(3, 13)  # the env's view: 11 exogenous, hedge, pnl
    hedge, pnl = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 6.0])
    x = policy.features(obs, hedge, torch.zeros(3), pnl)
    torch.testing.assert_close(x[:, :11], obs[:, :11])
    torch.testing.assert_close(x[:, 11:], torch.stack([hedge, pnl], 1) / 100.0)


def test_save_and_load_give_identical_positions(tmp_path: Path) -> None:
    policy = band_policy(seed=2, output="shifted_band", kind="gru")
    obs = torch.randn(5, 12, generator=torch.Generator().manual_seed(0))
    prev, model, zero = torch.linspace(-80, 0, 5), torch.full((5,), -40.0), torch.zeros(5)
    loaded = load_policy(save_policy(policy, tmp_path / "p"))
    for p in (policy, loaded):
        p.eval()
    with torch.no_grad():
        a = policy.step(obs, prev, zero, model, zero, pnl=zero)
        b = loaded.step(obs, prev, zero, model, zero, pnl=zero)
    assert torch.equal(a[0], b[0])
    assert a[2] is not None
    assert torch.equal(a[2], b[2])


def test_mismatched_or_corrupt_saved_policy_errors_name_the_file(tmp_path: Path) -> None:
    save_policy(band_policy(), tmp_path / "a")
    save_policy(band_policy(hidden=(8,)), tmp_path / "b")
    (tmp_path / "a" / "policy.pt").write_bytes((tmp_path / "b" / "policy.pt").read_bytes())
    with pytest.raises(ValueError, match=r"deep-hedging weights '.*policy\.pt' cannot be loaded"):
        load_policy(tmp_path / "a")
    (tmp_path / "b" / "policy.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"cannot be loaded .* corrupt"):
        load_policy(tmp_path / "b")
    (tmp_path / "b" / "settings.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_policy(tmp_path / "b")
    (tmp_path / "b" / "settings.json").write_text(json.dumps({"dtype": "float32"}))
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['policy'\]"):
        load_policy(tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="is missing"):
        load_policy(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"model 'x\.zip' is missing"):
        required_file(Path("x.zip"), "model")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match="must hold a JSON object, got list"):
        read_json(tmp_path / "list.json", "thing")
    with pytest.raises(KeyboardInterrupt), loading(tmp_path, "x"):
        raise KeyboardInterrupt  # not turned into "corrupt"


# ------------------------------------------------------------------------------- callbacks
class Capture(KVWriter):
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, Any]]] = []

    def write(self, key_values: dict[str, Any], key_excluded: Any, step: int = 0) -> None:
        self.rows.append((step, dict(key_values)))


def fake_model(logger: Logger, steps: int = 0) -> Any:
    return SimpleNamespace(num_timesteps=steps, logger=logger, get_env=lambda: SimpleNamespace(),
                           save=lambda path: Path(path).write_bytes(b"zip"))


def eval_callback(tmp_path: Path, baselines: list[Any], eval_freq: int = 10) -> Any:
    return HedgingEvalCallback(make_config("ShortCall"), baselines,
                               lambda model, normalizer: BlackScholesDelta(every=2),
                               eval_freq=eval_freq, n_paths=8, seed=3, c=1.5,
                               best_dir=tmp_path / "best")


def test_baselines_sharing_a_first_word_get_distinct_tags(tmp_path: Path) -> None:
    """Before: 'delta' and 'delta every 5' both wrote hedge/objective_delta (one was lost)."""
    assert callbacks.reference_tags(["delta", "band 0.1 (edge)"]) == {"delta": "delta",
                                                           "band 0.1 (edge)": "band"}
    writer = Capture()
    callback = eval_callback(tmp_path, [BlackScholesDelta(), BlackScholesDelta(every=5),
                                        FixedBand(0.1)])
    callback.init_callback(fake_model(Logger(None, [writer])))  # type: ignore[arg-type]
    callback.on_training_start({}, {})
    callback.evaluate()
    _step, logged = writer.rows[-1]
    tags = sorted(k for k in logged if k.startswith("hedge/objective_"))
    assert tags == ["hedge/objective_band", "hedge/objective_delta",
                    "hedge/objective_delta_every_5"]
    reference = callback._reference
    assert logged["hedge/objective_delta_every_5"] == reference["delta every 5"]["objective"]
    assert logged["hedge/objective_delta"] == reference["delta"]["objective"]
    assert {"hedge/objective", "hedge/mean_cost", "hedge/std_cost", "hedge/turnover"} <= set(
        logged)
    # the arena's objective on the validation paths, and the best model is the lowest
    cost = np.array(logged["hedge/objective"])
    assert callback.best == float(cost)
    assert (tmp_path / "best" / "model.zip").is_file()


@pytest.mark.parametrize(("freq", "n_envs"), [(10, 4), (100, 64), (6, 4), (8, 4)])
def test_intervals_count_env_steps_without_drift(tmp_path: Path, freq: int, n_envs: int) -> None:
    """Before: with ``freq`` not a multiple of ``n_envs`` the interval grew to
    ``ceil(freq / n_envs) * n_envs`` (10 with 4 envs: every 12 steps, 8 evaluations in 120)."""
    model = fake_model(Logger(None, []))
    evaluation = eval_callback(tmp_path, [], eval_freq=freq)
    checkpoints = CheckpointCallback(tmp_path / "ck", save_freq=freq, algo="ppo")
    seen: dict[str, list[int]] = {"eval": [], "save": []}
    evaluation.evaluate = lambda: seen["eval"].append(evaluation.num_timesteps)  # type: ignore
    checkpoints.save = lambda: seen["save"].append(checkpoints.num_timesteps)  # type: ignore
    for callback in (evaluation, checkpoints):
        callback.init_callback(model)
        callback._on_training_start()
    total = 12 * freq
    while model.num_timesteps < total:
        model.num_timesteps += n_envs  # SB3 adds n_envs per call
        evaluation.on_step()
        checkpoints.on_step()
    for steps in seen.values():
        assert len(steps) == total // freq
        assert all(s >= freq * (k + 1) and s - freq * (k + 1) < n_envs
                   for k, s in enumerate(steps))


def test_evaluation_without_baselines(tmp_path: Path) -> None:
    """Before: no reference baselines made ``run_arena`` refuse an empty list at the start."""
    writer = Capture()
    callback = eval_callback(tmp_path, [])
    callback.init_callback(fake_model(Logger(None, [writer])))
    callback.on_training_start({}, {})
    scores = callback.evaluate()
    assert scores["objective"] == writer.rows[-1][1]["hedge/objective"]
    assert not any(k.startswith("hedge/objective_") for k in writer.rows[-1][1])
