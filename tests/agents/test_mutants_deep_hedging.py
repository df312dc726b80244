"""Tests written against the mutants that survived a mutation round over ``deep_hedging.py``,
``policies.py`` and ``saved.py``.

Each test names the code it pins and the mutant(s) it kills. Every expected number comes from an
independent source: a closed form written out here (the cosine schedule of Loshchilov and Hutter
2017, softplus ``log(1 + e^x)``, ``tanh``), numpy on the same inputs (means, population stds,
clamps), a hand computation, or the seeding contract the docstrings state
(``SeedSequence([seed, stream, chunk])``, checked against :func:`build_episodes` called directly).
Where a property is metamorphic (a resumed run against a straight one, an argmin over given
validation objectives) the expected value is still not read off the code under test.

- ``TrainerConfig.learning_rate_at``: the cosine decay ``f + (l - f)(1 + cos(pi k / K)) / 2``,
  held at ``f`` past ``K`` (kills a half-period cosine, a missing clamp, a reversed schedule).
  On a resume with a larger ``steps`` the step sizes follow the new, longer schedule from the
  step reached (the README's "re-stretches the cosine decay: the rate jumps up").
- ``TrainerConfig`` bounds: ``n_train == batch_size``, a constant step size, ``seed = 0`` and
  ``valid_history = 0`` are allowed; ``max_grad_norm = 0`` and a negative seed are refused
  (kills each comparison's off-by-one).
- ``cost_summary``: population std, ``objective = mean + c std``, means of turnover and cost
  (kills ``correction=1``, ``sum`` for ``mean``, swapped fields).
- ``_gradient_step``: the gradient Adam steps with has norm at most ``max_grad_norm`` (kills a
  dropped or loosened clip), and is that of the step's own minibatch (kills a dropped
  ``zero_grad``).
- ``_validate`` / ``train``: the kept weights are those of the argmin of the validation
  objectives, also across a resume from ``last.pt`` (kills a flipped comparison, a
  never-updated ``best_value``, dropped restore, ``best_state``/``best_value`` not saved or not
  resumed); ``train()`` again continues from the last weights, not the best (kills a dropped
  ``_working_state``); checkpoints every ``checkpoint_every`` steps; ``until`` past ``steps``.
- ``minibatch``: each epoch's minibatches partition the training set, reshuffled every epoch
  (kills an off-by-one ``per_epoch``, a fixed order, overlapping slices).
- ``take_paths``: every field is the rows' (kills per-path fields or the initial cash left
  unselected).
- ``training_paths`` / ``validation_paths`` / ``simulate_paths``: chunk ``i`` of stream ``s`` is
  ``build_episodes(..., default_rng(SeedSequence([seed, s, i])))`` (kills one seed for all
  chunks, the first chunk only, validation drawn from the training stream).
- ``_fit_normalizer`` / ``HedgingPolicy.fit_normalizer``: mean and population std of the
  decision steps' observations (not the terminal one), positions and ``pnl`` at 0 / 1, constant
  columns at std 1 (kills ``[:, ...]`` for ``[:-1, ...]``, ``correction=1``, dropped ``fixed``).
- ``HedgingPolicy.features``: ``(obs, hedge / N, pnl / N) - mean) / std`` in numpy (kills the
  std left out, positions or pnl not in notionals, the option's position read for the hedge).
- ``pnl_input``: ``(W_t - W_0) * 100 / S_0`` by hand (kills a dropped rescaling, another
  ``PNL_SPOT``).
- ``HedgingPolicy._init_head``: the initial band is ``model -+ initial_width * notional``
  exactly, and the head's weights are a tenth of torch's default bound (kills bias ``w`` for
  ``softplus^-1(w)``, one side initialised, unshrunk weights).
- ``HedgingPolicy.targets``: every output parametrisation against its formula by hand, with
  asymmetric widths, a shift, custom limits and a hedging option (kills swapped widths, the
  shift's sign or unit, ``clamp`` for ``tanh``, the spec's ``trade_limit`` dropped, the option's
  limit or action swapped).
- ``HedgingPolicy.forward``: a GRU carries its state to the next decision.
- ``PolicySpec`` and ``_check_compatible`` bounds: ``action_dim`` 3, ``initial_width`` 100,
  ``MAX_WIDTH``, empty inputs, ``shifted_band`` with an option, a policy of another notional or
  action dimension.
- ``saved``: ``required_file`` on a directory, ``loading`` lets ``FileNotFoundError`` through,
  ``_reason`` keeps the text after torch's marker, ``replace_folder`` clears stale partial and old
  folders; ``_check_policy`` compares only the fields the saved policy holds (kills a missing
  field read as ``None``, a mismatch).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hedgearena.agents import saved
from hedgearena.agents.deep_hedging import (
    DeepHedgingTrainer,
    Rollout,
    TrainerConfig,
    cost_summary,
    path_tensors,
    simulate_paths,
    take_paths,
)
from hedgearena.agents.policies import MAX_WIDTH, HedgingPolicy, PolicySpec, pnl_input
from hedgearena.envs.config import EnvConfig, make_config
from hedgearena.envs.episode import build_episodes, feature_names

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def short_call(n_steps: int = 5, **overrides: Any) -> EnvConfig:
    book = {"options": [{"moneyness": 1.0, "expiry_steps": n_steps, "contracts": -1.0}]}
    return make_config("ShortCall", n_steps=n_steps, book=book, **overrides)


def tiny(**fields: Any) -> TrainerConfig:
    defaults: dict[str, Any] = {"steps": 4, "batch_size": 32, "n_train": 64, "n_valid": 64,
                                "eval_every": 1, "checkpoint_every": 100, "seed": 3}
    return TrainerConfig(**{**defaults, **fields})


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------ schedule
def test_learning_rate_at_is_the_cosine_decay_and_holds_its_end() -> None:
    """``learning_rate_at``: SGDR's cosine annealing (Loshchilov and Hutter 2017, eq. 5) from
    l = 1e-2 to f = 1e-4 over K = 40 steps, written out; past K it stays at f.
    Kills: a half-period cosine, a reversed schedule, a missing ``min(., 1)``."""
    config = TrainerConfig(steps=40, learning_rate=1e-2, final_learning_rate=1e-4)
    for step, expected in [(0, 1e-2), (10, 1e-4 + 0.5 * (1e-2 - 1e-4) * (1 + math.sqrt(0.5))),
                           (20, 1e-4 + 0.5 * (1e-2 - 1e-4)),
                           (30, 1e-4 + 0.5 * (1e-2 - 1e-4) * (1 - math.sqrt(0.5))),
                           (40, 1e-4), (60, 1e-4), (80, 1e-4)]:
        assert config.learning_rate_at(step) == pytest.approx(expected, rel=1e-12), step


def test_a_resume_with_more_steps_follows_the_longer_schedule(tmp_path: Path,
                                                               learning_rates) -> None:
    """Stopped at step 2 of 4 and resumed with ``steps=8``, gradient steps 2..7 use the cosine
    of K = 8 from step 2 on (the rate jumps up from 5.05e-3 to 8.55e-3, as the README says),
    written out here."""
    lr, final = 1e-2, 1e-4
    DeepHedgingTrainer(short_call(), config=tiny(learning_rate=lr, final_learning_rate=final),
                       progress=False, hidden=(8,), checkpoint_dir=tmp_path).train(until=2)
    longer = DeepHedgingTrainer(
        short_call(), config=tiny(steps=8, learning_rate=lr, final_learning_rate=final),
        progress=False, hidden=(8,), checkpoint_dir=tmp_path)
    used = learning_rates(longer.optimizer)
    assert longer.train().step == 8
    expected = [final + 0.5 * (lr - final) * (1 + math.cos(math.pi * k / 8)) for k in range(2, 8)]
    np.testing.assert_allclose(used, expected, rtol=1e-12)


@pytest.mark.parametrize(
    "fields",
    [{"n_train": 32, "batch_size": 32}, {"learning_rate": 1e-3, "final_learning_rate": 1e-3},
     {"seed": 0}, {"valid_history": 0.0}, {"max_grad_norm": 1e-9}],
)
def test_trainer_config_boundaries_that_are_allowed(fields: dict) -> None:
    """``TrainerConfig.__post_init__``: a training set of one minibatch, a constant step size,
    seed 0 and no validation history are legal. Kills ``<=`` for ``<`` (n_train), ``>=`` for
    ``>`` (final_learning_rate), ``> 0`` for ``>= 0`` (seed, valid_history)."""
    config = TrainerConfig(**fields)
    for key, value in fields.items():
        assert getattr(config, key) == value


@pytest.mark.parametrize(
    ("fields", "match"),
    [({"max_grad_norm": 0.0}, "max_grad_norm must be a finite number > 0"),
     ({"seed": -1}, "seed must be an integer >= 0"),
     ({"steps": 0}, "steps must be an integer >= 1"),
     ({"final_learning_rate": 0.0}, "final_learning_rate must be a finite number > 0")],
)
def test_trainer_config_boundaries_that_are_refused(fields: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainerConfig(**fields)


# --------------------------------------------------------------------------- cost summary
def test_cost_summary_by_hand() -> None:
    """``cost_summary`` on ten hand-made costs: mean 8.8, the population std (ddof 0, as the
    objective's), ``objective = mean + 1.5 std``, and the *means* of turnover and cost.
    Kills ``std()`` (ddof 1), ``sum`` for ``mean``, turnover for cost, the mean as objective."""
    costs = np.array([12.0, 3.0, 7.5, 20.0, -1.0, 7.5, 9.0, 15.0, 4.0, 11.0])
    turnover = np.arange(1.0, 11.0)  # mean 5.5
    paid = np.linspace(0.0, 0.9, 10)  # mean 0.45
    empty = torch.zeros(0, 10, dtype=torch.float64)
    run = Rollout(torch.zeros(10), torch.tensor(costs), torch.tensor(paid),
                  torch.tensor(turnover), empty, empty)
    summary = cost_summary(run, "mean_std:1.5")
    std = math.sqrt(sum((c - 8.8) ** 2 for c in costs) / 10)
    assert summary["cost_mean"] == pytest.approx(8.8, rel=1e-14)
    assert summary["cost_std"] == pytest.approx(std, rel=1e-14)
    assert summary["objective"] == pytest.approx(8.8 + 1.5 * std, rel=1e-14)
    assert summary["turnover"] == pytest.approx(5.5, rel=1e-14)
    assert summary["transaction_cost"] == pytest.approx(0.45, rel=1e-14)


# ----------------------------------------------------------------------- gradient clipping
def test_adam_steps_with_the_clipped_gradient(monkeypatch) -> None:
    """``_gradient_step`` clips the gradient's global norm to ``max_grad_norm`` before Adam's
    step: the norm seen by the optimiser (computed here from ``p.grad``) is <= the bound, while
    unclipped it is far above it. Kills a dropped clip and a clip at 10x the bound."""
    norms: dict[Any, list[float]] = {}
    for bound in (None, 1e-3):
        trainer = DeepHedgingTrainer(short_call(), config=tiny(steps=3, max_grad_norm=bound),
                                     progress=False, hidden=(8,))
        step = trainer.optimizer.step
        seen: list[float] = []

        def spy(*args: Any, _seen: list = seen, _step: Any = step, _t: Any = trainer,
                **kwargs: Any) -> Any:
            grads = [p.grad.reshape(-1) for p in _t.policy.parameters() if p.grad is not None]
            _seen.append(float(torch.cat(grads).double().norm()))
            return _step(*args, **kwargs)

        monkeypatch.setattr(trainer.optimizer, "step", spy)
        trainer.train()
        norms[bound] = seen
    assert len(norms[1e-3]) == 3
    assert min(norms[None]) > 0.1  # the clip binds at every step
    assert max(norms[1e-3]) <= 1e-3 * (1 + 1e-5)
    assert min(norms[1e-3]) >= 1e-3 * (1 - 1e-3)  # scaled to the bound, not zeroed


# ----------------------------------------------------------------- best weights, resume
def _scripted(trainer: DeepHedgingTrainer, objectives: list[float],
              snapshots: dict[int, dict[str, torch.Tensor]]) -> None:
    """Make the trainer's validations return ``objectives`` in turn, keeping the weights each
    one saw (by step)."""
    values = iter(objectives)

    def evaluate(paths: Any = None) -> dict[str, float]:
        snapshots[trainer.step] = _snapshot(trainer.policy)
        value = next(values)
        return {"objective": value, "cost_mean": value, "cost_std": 0.0, "turnover": 0.0,
                "transaction_cost": 0.0}

    trainer.evaluate = evaluate  # type: ignore[method-assign]


def test_the_kept_weights_are_those_of_the_lowest_validation_objective() -> None:
    """``_validate`` keeps the argmin of the objectives [5, 3, 4, 6] (step 2) and ``train``
    hands back its weights. Kills a flipped ``<``, a ``best_value`` never updated (the last
    validation wins), and a dropped restore of the best state."""
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    trainer = DeepHedgingTrainer(short_call(), config=tiny(), progress=False, hidden=(8,))
    _scripted(trainer, [5.0, 3.0, 4.0, 6.0], snapshots)
    result = trainer.train()
    assert sorted(snapshots) == [1, 2, 3, 4]
    assert (result.step, result.best_step, result.best["objective"]) == (4, 2, 3.0)
    assert _same(_snapshot(trainer.policy), snapshots[2])
    assert not _same(snapshots[2], snapshots[4])  # the weights did move


def test_train_again_continues_from_the_last_weights_not_the_best() -> None:
    """After ``train(until=3)`` the policy holds the best weights (step 2), but training on
    continues from step 3's: the weights validated at step 4 equal a straight run's.
    Kills a dropped ``_working_state``."""
    straight: dict[int, dict[str, torch.Tensor]] = {}
    trainer = DeepHedgingTrainer(short_call(), config=tiny(), progress=False, hidden=(8,))
    _scripted(trainer, [5.0, 3.0, 4.0, 6.0], straight)
    trainer.train()
    stopped: dict[int, dict[str, torch.Tensor]] = {}
    again = DeepHedgingTrainer(short_call(), config=tiny(), progress=False, hidden=(8,))
    _scripted(again, [5.0, 3.0, 4.0, 6.0], stopped)
    again.train(until=3)
    assert _same(_snapshot(again.policy), straight[2])
    assert again.train().step == 4
    assert _same(stopped[4], straight[4])


def test_the_best_weights_survive_a_resume_from_the_checkpoint(tmp_path: Path) -> None:
    """A run stopped at step 2 (objectives 5, 3) and resumed from ``last.pt`` by a new trainer
    (objectives 4, 6 at steps 3, 4) keeps step 2's weights and objective. Kills a checkpoint
    without ``best_state``, and a resume that forgets ``best_value`` (step 3's 4 < inf)."""
    first: dict[int, dict[str, torch.Tensor]] = {}
    trainer = DeepHedgingTrainer(short_call(), config=tiny(), progress=False, hidden=(8,),
                                 checkpoint_dir=tmp_path)
    _scripted(trainer, [5.0, 3.0], first)
    trainer.train(until=2)
    second: dict[int, dict[str, torch.Tensor]] = {}
    resumed = DeepHedgingTrainer(short_call(), config=tiny(), progress=False, hidden=(8,),
                                 checkpoint_dir=tmp_path)
    _scripted(resumed, [4.0, 6.0], second)
    result = resumed.train()
    assert sorted(second) == [3, 4]
    assert (result.best_step, result.best["objective"]) == (2, 3.0)
    assert [h["objective"] for h in result.history] == [5.0, 3.0, 4.0, 6.0]
    assert _same(_snapshot(resumed.policy), first[2])


def test_checkpoints_every_checkpoint_every_steps_and_at_the_end(monkeypatch) -> None:
    """``train`` writes ``last.pt`` after steps 2 and 4 of 4 (``checkpoint_every=2``) and once
    more on the way out. Kills another cadence."""
    trainer = DeepHedgingTrainer(short_call(), config=tiny(checkpoint_every=2, eval_every=4),
                                 progress=False, hidden=(8,))
    steps: list[int] = []
    monkeypatch.setattr(trainer, "checkpoint", lambda: steps.append(trainer.step))
    trainer.train()
    assert steps == [2, 4, 4]


def test_train_until_past_steps_stops_at_steps() -> None:
    """``train(until=k)`` with ``k > steps`` stops at ``steps`` (the schedule's end)."""
    trainer = DeepHedgingTrainer(short_call(), config=tiny(steps=2), progress=False,
                                 hidden=(8,))
    assert trainer.train(until=5).step == 2


# -------------------------------------------------------------------------------- data
def _column_index(paths: Any) -> dict[tuple[float, ...], int]:
    spot = paths.episode.spot.numpy()
    return {tuple(spot[:, j].tolist()): j for j in range(spot.shape[1])}


def test_each_epochs_minibatches_partition_the_training_set_anew() -> None:
    """``minibatch``: ``n_train // batch_size`` = 3 minibatches of 32 per epoch draw every one of
    the 96 paths once (without replacement), and the next epoch reshuffles. Kills an off-by-one
    ``per_epoch``, one order for all epochs, overlapping slices."""
    trainer = DeepHedgingTrainer(short_call(), config=tiny(n_train=96, dtype="float64"),
                                 progress=False, hidden=(8,))
    index = _column_index(trainer.training_paths)
    assert len(index) == 96
    epochs = []
    for epoch in range(2):
        drawn = []
        for step in range(3 * epoch, 3 * epoch + 3):
            batch = trainer.minibatch(step)
            assert batch.n_paths == 32
            drawn.append([index[key] for key in _column_index(batch)])
        epochs.append(drawn)
        assert sorted(i for part in drawn for i in part) == list(range(96))
    assert epochs[0] != epochs[1]


def test_the_sets_are_the_documented_seed_streams_chunk_by_chunk() -> None:
    """Training chunk ``i`` is ``default_rng(SeedSequence([seed, 0, i]))``, validation chunk
    ``i`` ``SeedSequence([seed, 1, i])`` (TrainerConfig.seed's docs; the arena's first block of
    a seed is the training set's first chunk). With chunks of 40 paths, 100 paths are three
    chunks. Kills one seed for every chunk, the first chunk only, the validation set drawn from
    the training stream."""
    config = short_call()
    trainer = DeepHedgingTrainer(
        config, config=tiny(n_train=100, n_valid=70, build_chunk=40, dtype="float64"),
        progress=False, hidden=(8,))
    for paths, stream, n in ((trainer.training_paths, 0, 100),
                             (trainer.validation_paths, 1, 70)):
        expected = np.concatenate([
            build_episodes(config, min(40, n - lo),
                           np.random.default_rng(np.random.SeedSequence([3, stream, i])))
            .episode.spot
            for i, lo in enumerate(range(0, n, 40))], axis=1)
        assert paths.n_paths == n
        np.testing.assert_array_equal(paths.episode.spot.numpy(), expected)
        np.testing.assert_array_equal(paths.observations.shape[1], n)
    direct = simulate_paths(config, 10, [3, 0], torch.float64, chunk=4)
    first = build_episodes(config, 4, np.random.default_rng(np.random.SeedSequence([3, 0, 0])))
    np.testing.assert_array_equal(direct.observations[:, :4].numpy(), first.observations)


def test_take_paths_selects_every_field_of_the_rows() -> None:
    """``take_paths`` (the minibatch's selection): every time-major field is ``array[:, rows]``,
    every per-path field ``array[rows]``, the initial cash too, checked against numpy's
    indexing of the batch. A replay's windows start at different index levels, so their
    premiums (initial cash) differ; the book's stock is a per-path array. Kills the initial
    cash or a per-path field left unselected (a minibatch then carried the first paths' cash,
    or a stock of the wrong length, which broke training at a positive rate)."""
    config = make_config("HistoricalReplay", n_steps=5, book={"stock": 7.0, "options": [
        {"moneyness": 1.0, "expiry_steps": 5, "contracts": -1.0}]})
    batch = build_episodes(config, 9, np.random.default_rng(0))
    assert np.ptp(batch.initial_cash) > 1.0
    rows = [6, 0, 3, 3]
    sub = take_paths(path_tensors(batch, config, torch.float64), torch.tensor(rows))
    for name, value in batch.episode._asdict().items():
        got = getattr(sub.episode, name)
        if isinstance(value, np.ndarray) and value.ndim == 2:
            np.testing.assert_array_equal(got.numpy(), value[:, rows], err_msg=name)
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got.numpy(), value[rows], err_msg=name)
    np.testing.assert_array_equal(sub.initial_cash.numpy(), batch.initial_cash[rows])
    np.testing.assert_array_equal(sub.observations.numpy(), batch.observations[:, rows])
    assert sub.n_paths == 4


# -------------------------------------------------------------------------- normaliser
def test_the_normaliser_is_fitted_on_the_decision_steps_observations() -> None:
    """``_fit_normalizer``: the inputs' mean and population std over steps ``0..n-1`` (the
    terminal observation is never decided on) of the training set, computed here in numpy from
    :func:`build_episodes`; ``hedge`` and ``pnl`` keep 0 / 1, constant columns std 1.
    Kills ``observations[:, ...]`` for ``[:-1, ...]`` and ``correction=1``."""
    config = short_call()
    trainer = DeepHedgingTrainer(config, config=tiny(dtype="float64"), progress=False,
                                 hidden=(8,))
    trainer.train(until=0)
    batch = build_episodes(config, 64, np.random.default_rng(np.random.SeedSequence([3, 0, 0])))
    obs = np.asarray(batch.observations[:-1], dtype=np.float64).reshape(-1, 12)[:, :11]
    mean, std = obs.mean(axis=0), obs.std(axis=0)
    std = np.where(std < 1e-8, 1.0, std)
    assert (std == 1.0).any()  # constant columns
    assert (std != 1.0).any()
    policy = trainer.policy
    np.testing.assert_allclose(policy.input_mean[:11].numpy(), mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(policy.input_std[:11].numpy(), std, rtol=1e-6)
    assert policy.input_mean[11:].tolist() == [0.0, 0.0]  # hedge, pnl
    assert policy.input_std[11:].tolist() == [1.0, 1.0]


def test_fit_normalizer_keeps_positions_at_zero_mean_unit_std() -> None:
    """``HedgingPolicy.fit_normalizer`` on observations whose position column holds positions
    (as the env's do): that column still gets mean 0 and std 1 (it is in notionals already).
    Kills dropping ``fixed`` from the mean or from the std."""
    policy = HedgingPolicy(PolicySpec.for_env(short_call())).double()
    obs = torch.randn(50, 4, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    obs[..., 11] = 3.0 + 2.0 * obs[..., 11]  # positions of mean 3, std 2
    policy.fit_normalizer(obs)
    flat = obs.reshape(-1, 12).numpy()
    np.testing.assert_allclose(policy.input_mean[:11].numpy(), flat[:, :11].mean(0), rtol=1e-12)
    np.testing.assert_allclose(policy.input_std[:11].numpy(), flat[:, :11].std(0), rtol=1e-12)
    assert policy.input_mean[11:].tolist() == [0.0, 0.0]
    assert policy.input_std[11:].tolist() == [1.0, 1.0]


def test_features_are_standardised_with_positions_and_pnl_in_notionals() -> None:
    """``HedgingPolicy.features``: the observation's exogenous entries, then hedge / N and
    pnl / N (N = 100; the observation's own position entry ignored), minus the normaliser's
    mean, over its std, in numpy. Kills the std left out, positions or pnl not in notionals,
    the option's position read for the hedge."""
    policy = HedgingPolicy(PolicySpec.for_env(short_call())).double()
    generator = torch.Generator().manual_seed(2)
    mean = torch.randn(13, dtype=torch.float64, generator=generator)
    std = torch.rand(13, dtype=torch.float64, generator=generator) + 0.5
    with torch.no_grad():
        policy.input_mean.copy_(mean)
        policy.input_std.copy_(std)
    obs = torch.randn(5, 12, dtype=torch.float64, generator=generator)
    hedge, option = _t(-50.0, 10.0, 0.0, 80.0, -5.0), _t(7.0, 7.0, 7.0, 7.0, 7.0)
    pnl = _t(-300.0, 20.0, 0.0, 5.0, 1.0)
    got = policy.features(obs, hedge, option, pnl).numpy()
    full = np.concatenate([obs.numpy()[:, :11], hedge.numpy()[:, None] / 100.0,
                           pnl.numpy()[:, None] / 100.0], axis=1)
    np.testing.assert_allclose(got, (full - mean.numpy()) / std.numpy(), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------ P&L input
def test_pnl_input_by_hand() -> None:
    """``pnl_input`` = ``(W_t - W_0) * 100 / S_0``: 7 at S_0 = 100, -14 * 2 at S_0 = 50,
    0.5 at S_0 = 1000. Kills a dropped rescaling and another ``PNL_SPOT``."""
    out = pnl_input(torch.tensor([107.0, 86.0, 15.0]), torch.tensor([100.0, 100.0, 10.0]),
                    torch.tensor([100.0, 50.0, 1000.0]))
    assert out.tolist() == [7.0, -28.0, 0.5]


# ------------------------------------------------------------------------ initialisation
@pytest.mark.parametrize("output", ["band", "shifted_band"])
def test_the_initial_band_is_initial_width_notionals_on_each_side(output: str) -> None:
    """``_init_head``: with the head's weights at 0 the band is ``model -+ w * notional``
    (softplus(softplus^-1(w)) = w, to float32's rounding of the bias; w = 0.1 of 100 units:
    10), the shifted band's centre the model hedge. Kills a bias of ``w`` (softplus(0.1) =
    0.744 notionals) and an upper width left at softplus(0) = 0.693."""
    spec = PolicySpec.for_env(short_call(), output=output)
    policy = HedgingPolicy(spec).double()
    with torch.no_grad():
        policy.head.weight.zero_()
    zero = torch.zeros(4, dtype=torch.float64)
    model = torch.tensor([-50.0, -50.0, -20.0, -20.0], dtype=torch.float64)
    held = torch.tensor([100.0, -100.0, -20.0, -25.0], dtype=torch.float64)
    obs = torch.zeros(4, 12, dtype=torch.float64)
    hedge, _, _ = policy.step(obs, held, zero, model, zero, pnl=zero)
    torch.testing.assert_close(hedge, torch.tensor([-40.0, -60.0, -20.0, -25.0],
                                                   dtype=torch.float64), rtol=1e-6, atol=0.0)


def test_the_heads_weights_start_at_a_tenth_of_torchs_bound() -> None:
    """``_init_head`` scales the head's weights by 0.1: torch's ``nn.Linear`` draws them in
    ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` (Kaiming uniform with a = sqrt 5), so they lie within
    0.1 / sqrt(64). Kills the unscaled head (which starts the band far from its width)."""
    torch.manual_seed(0)
    policy = HedgingPolicy(PolicySpec.for_env(short_call()))
    weight = policy.head.weight.detach().abs()
    assert float(weight.max()) <= 0.1 / math.sqrt(64) + 1e-7
    assert float(weight.max()) > 0.05 / math.sqrt(64)  # drawn, not zero


# ------------------------------------------------------------------------ output mappings
def _policy(config: EnvConfig, **fields: Any) -> HedgingPolicy:
    return HedgingPolicy(PolicySpec.for_env(config, **fields)).double()


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_band_targets_by_hand_with_asymmetric_widths_and_a_shift() -> None:
    """``targets`` of ``band``/``shifted_band``: ``clip(h, c - sp(a) N, c + sp(b) N)``, held
    within ``position_limit * N`` of the model, ``c = model + z N``; softplus written out.
    Kills swapped widths, the shift's sign, the shift not in notionals."""
    a, b, z, n = -1.0, 0.5, 0.3, 100.0
    lower, upper = _softplus(a) * n, _softplus(b) * n  # 31.33, 97.41
    model = _t(-50.0, -50.0, -50.0)
    held = _t(-200.0, 200.0, -60.0)
    raw = _t(a, b, z).expand(3, 3)
    zero = _t(0.0, 0.0, 0.0)
    band = _policy(short_call(), output="band").targets(raw[:, :2], held, zero, model, zero)[0]
    expected = [-50.0 - lower, -50.0 + upper, -60.0]
    np.testing.assert_allclose(band.numpy(), expected, rtol=1e-12)
    shifted = _policy(short_call(), output="shifted_band").targets(raw, held, zero, model, zero)
    centre = -50.0 + z * n
    expected = [centre - lower, min(centre + upper, -50.0 + 150.0), centre - lower]
    np.testing.assert_allclose(shifted[0].numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(shifted[1].numpy(), 0.0)


def test_position_fraction_and_trade_targets_by_hand() -> None:
    """``position``: ``tanh(z) * limit * N``; ``fraction``: ``h + (tanh z + 1)/2 (model - h)``;
    ``trade``: ``h + tanh(z) * trade_limit * N``, with the spec's own limits (1.2, 0.2).
    Kills ``clamp`` for ``tanh`` and the spec's ``trade_limit`` (or ``position_limit``) left at
    the core's default."""
    config = short_call()
    z = _t(0.4, -2.0, 3.0)
    held, model, zero = _t(10.0, -30.0, 0.0), _t(-50.0, -20.0, -70.0), _t(0.0, 0.0, 0.0)
    tz = np.tanh(z.numpy())
    h, m = held.numpy(), model.numpy()
    out = _policy(config, output="position", position_limit=1.2).targets(
        z[:, None], held, zero, model, zero)[0]
    np.testing.assert_allclose(out.numpy(), tz * 120.0, rtol=1e-12)
    out = _policy(config, output="fraction").targets(z[:, None], held, zero, model, zero)[0]
    np.testing.assert_allclose(out.numpy(), h + (tz + 1) / 2 * (m - h), rtol=1e-12)
    out = _policy(config, output="trade", trade_limit=0.2).targets(
        z[:, None], held, zero, model, zero)[0]
    np.testing.assert_allclose(out.numpy(), h + tz * 20.0, rtol=1e-12)


def test_the_hedging_options_position_uses_its_own_action_and_limit() -> None:
    """With a hedging option, ``position`` holds ``tanh(z0) * (1.5 + 10) * N`` of the underlying
    (``for_env``'s sum of limits) and ``tanh(z1) * 10 * N`` of the option. Kills the option's
    target read from the hedge's action, capped at the underlying's limit, and ``for_env``
    keeping the env's 1.5 alone."""
    config = short_call(hedge_option=True)
    policy = _policy(config)
    assert policy.spec.output == "position"
    assert policy.spec.position_limit == 11.5
    raw = _t(0.2, -0.7, 1.1, 0.05).reshape(2, 2)
    zero = _t(0.0, 0.0)
    hedge, option = policy.targets(raw, zero, zero, zero, zero)
    tz = np.tanh(raw.numpy())
    np.testing.assert_allclose(hedge.numpy(), tz[:, 0] * 1150.0, rtol=1e-12)
    np.testing.assert_allclose(option.numpy(), tz[:, 1] * 1000.0, rtol=1e-12)


def test_a_gru_carries_its_state_to_the_next_decision() -> None:
    """``forward`` returns the GRU's new state and feeds it on: the same second observation
    after two different first ones gives two different positions. Kills a GRU whose state is
    dropped (each decision then sees zeros)."""
    torch.manual_seed(1)
    policy = _policy(short_call(), kind="gru", output="position", hidden=(6, 6))
    zero = torch.zeros(1, dtype=torch.float64)
    second = []
    for first in (-2.0, 2.0):
        obs = torch.full((1, 12), first, dtype=torch.float64)
        _, _, hidden = policy.step(obs, zero, zero, zero, zero, pnl=zero)
        assert hidden is not None
        assert float(hidden.detach().abs().sum()) > 0
        hedge, _, _ = policy.step(torch.zeros(1, 12, dtype=torch.float64), zero, zero, zero,
                                  zero, hidden, pnl=zero)
        second.append(float(hedge.detach()))
    assert abs(second[0] - second[1]) > 1e-6


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("fields", "match"),
    [({"action_dim": 3, "output": "position"}, "action_dim must be 1 or 2"),
     ({"hidden": (MAX_WIDTH + 1,)}, "hidden must be a non-empty list of integer widths"),
     ({"inputs": ()}, "inputs must be a non-empty subset"),
     ({"trade_limit": 0.0}, "trade_limit must be a finite number > 0")],
)
def test_policy_spec_refuses(fields: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PolicySpec.for_env(short_call(), **fields)


def test_policy_spec_boundaries_that_are_allowed() -> None:
    """``initial_width`` 100 notionals and a hidden layer of ``MAX_WIDTH`` are the largest
    legal values (the spec alone: nothing is allocated)."""
    assert PolicySpec.for_env(short_call(), initial_width=100.0).initial_width == 100.0
    assert PolicySpec.for_env(short_call(), hidden=(MAX_WIDTH,)).hidden == (MAX_WIDTH,)


def test_shifted_band_with_a_hedging_option_is_refused() -> None:
    with pytest.raises(ValueError, match="output='shifted_band' hedges the underlying only"):
        PolicySpec.for_env(short_call(hedge_option=True), output="shifted_band")


def test_a_policy_of_another_notional_or_action_dimension_is_refused() -> None:
    """``_check_compatible``: the same observation but another notional, or two actions on an
    env of one, are named (each check on its own)."""
    config = short_call()
    with pytest.raises(ValueError, match=r"the policy's notional is 200\.0, the env's 100"):
        DeepHedgingTrainer(config, PolicySpec.for_env(config, notional=200.0), tiny(),
                           progress=False)
    spec = PolicySpec(observation=feature_names(False), action_dim=2, output="position")
    with pytest.raises(ValueError, match=r"the policy trades 2 instrument\(s\), the env 1"):
        DeepHedgingTrainer(config, spec, tiny(), progress=False)


# -------------------------------------------------------------------------------- saved
def test_required_file_refuses_a_directory(tmp_path: Path) -> None:
    """``required_file`` wants a file: a folder named ``policy.pt`` is missing weights."""
    (tmp_path / "policy.pt").mkdir()
    with pytest.raises(FileNotFoundError, match=r"deep-hedging weights .*policy\.pt' is missing"):
        saved.required_file(tmp_path / "policy.pt", "deep-hedging weights")


def test_read_json_names_a_missing_key_and_a_non_object(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"dtype": "float32"}')
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['policy'\]"):
        saved.read_json(path, "deep-hedging settings", ("policy",))
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object, got list"):
        saved.read_json(path, "deep-hedging settings")


def test_loading_lets_a_missing_file_through_and_names_the_reason(tmp_path: Path) -> None:
    """``loading`` turns foreign content into a ValueError naming the reason after torch's
    ``WeightsUnpickler error:`` marker, and lets ``FileNotFoundError`` through as it is."""
    with pytest.raises(FileNotFoundError, match="gone"), saved.loading(tmp_path, "weights"):
        raise FileNotFoundError("gone")
    message = ("Weights only load failed. Re-running with weights_only set to False will likely"
               " succeed. WeightsUnpickler error: Unsupported global: os.system\n\nCheck it")
    with pytest.raises(ValueError, match=r"\(UnpicklingError: Unsupported global: os.system\)"
                       ), saved.loading(tmp_path, "weights"):
        raise pickle.UnpicklingError(message)


def test_replace_folder_clears_stale_partial_and_old_folders(tmp_path: Path) -> None:
    """``replace_folder``: a stale ``.model.partial`` (an earlier write cut short) is cleared
    first, and the replaced folder's ``.model.old`` removed after: only the new content is
    left."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "old.txt").write_text("old")
    stale = tmp_path / ".model.partial"
    stale.mkdir()
    (stale / "half.txt").write_text("half")
    saved.replace_folder(folder, lambda partial: (partial / "new.txt").write_text("new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert sorted(p.name for p in folder.iterdir()) == ["new.txt"]


def test_check_saved_agent_compares_a_missing_field_at_its_default(tmp_path: Path) -> None:
    """``saved._check_policy``: a field of ``agent.hyperparams`` that the saved policy does not
    hold (a ``settings.json`` written before the field existed) is compared at the default
    ``PolicySpec.from_dict`` loads it with; a field it holds with another value is named. Here
    the config gives ``output: shifted_band``, ``PolicySpec``'s default, and ``hidden: [8]``,
    the saved width; then ``hidden: [16]``; then ``output: band``, which the model would not
    run (it was accepted: missing fields were skipped). Kills ``policy.get(key) != value`` for
    ``key in policy and policy[key] != value`` (which reported "output: None in the model")."""
    from hedgearena.run_config import RunConfig

    model = tmp_path / "model"
    model.mkdir()
    (model / "settings.json").write_text('{"policy": {"observation": ["spot"], "hidden": [8]}}')

    def config(hidden: list[int], output: str = "shifted_band") -> RunConfig:
        return RunConfig.model_validate({"agent": {"algo": "deep_hedging", "hyperparams": {
            "hidden": hidden, "output": output}}})

    saved.check_saved_agent(tmp_path, config([8]))
    with pytest.raises(ValueError, match=r"policy differs from agent.hyperparams \(hidden: \[8\] "
                                         r"in the model, \[16\] in the config\)"):
        saved.check_saved_agent(tmp_path, config([16]))
    with pytest.raises(ValueError, match=r"\(output: 'shifted_band' in the model, 'band' in the "
                                         r"config\)"):
        saved.check_saved_agent(tmp_path, config([8], "band"))


def test_each_adam_step_uses_the_gradient_of_its_own_minibatch_only(monkeypatch) -> None:
    """``_gradient_step`` zeroes the gradients before ``backward``: the ``p.grad`` Adam steps
    with at step k (no clip) is ``d loss(minibatch(k)) / d theta`` at the current weights alone,
    recomputed here with ``torch.autograd.grad`` (which does not accumulate into ``p.grad``),
    not the sum over steps 0..k. Kills a dropped ``zero_grad`` (before, only the slow learning
    test caught it)."""
    trainer = DeepHedgingTrainer(short_call(), config=tiny(steps=3, max_grad_norm=None),
                                 progress=False, hidden=(8,))
    params = list(trainer.policy.parameters())
    step = trainer.optimizer.step
    gaps: list[float] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        own = torch.autograd.grad(trainer.loss(trainer.minibatch(trainer.step)), params)
        seen = torch.cat([p.grad.reshape(-1) for p in params]).double()
        fresh = torch.cat([g.reshape(-1) for g in own]).double()
        assert float(fresh.norm()) > 1e-6  # a gradient to compare, not zeros
        gaps.append(float((seen - fresh).norm() / fresh.norm()))
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer.optimizer, "step", spy)
    trainer.train()
    assert len(gaps) == 3
    assert max(gaps) < 1e-6, gaps
