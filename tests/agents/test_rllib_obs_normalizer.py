"""RLlib agents read standardised observations (``rllib.normalize_obs``), as SB3's do.

Before: the RLlib PPO agent read the raw observations while stable-baselines3's PPO reads them
through ``VecNormalize(norm_obs=True)``. On the default case (ShortCall-v0, seed 0, 2e6 steps)
the RLlib agent scored Y 513.6, the tuned bands' level, 21 behind SB3 PPO. The normaliser is
fitted once, before training, on the observations of the calibration band's decisions, frozen,
applied alike by the env runners (:func:`make_vector_env`) and by the arena's hedger, saved with
the module and checked on resume. (RLlib's ``MeanStdFilter`` connector merges its runners'
statistics wrongly in Ray 2.60, see ``ObservationNormalizer``'s docstring.)

No Ray instance is needed: the module is built in the process and the training loop's algorithm
is a stand-in.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hedgearena.envs.config import make_config
from hedgearena.run_config import load_config

pytest.importorskip("ray.rllib")
from rllib_stand_in import StandInAlgo, untrained_module

from hedgearena.agents import rllib

BUILT: list[dict[str, Any]] = []
"""The env kwargs of each algorithm the stand-in training built."""
VIEW = {"action_mode": "band", "observe_pnl": True, "reward_mode": "terminal_mean_variance",
        "risk_aversion": 3.7855, "pnl_reference": -0.6928}


def _module(view: dict[str, Any]) -> Any:
    """An untrained (random, seed 0) PPO module on ShortCall-v0 with ``view``, without Ray."""
    return untrained_module(load_config(None).model_copy(update={
        "rllib": load_config(None).rllib.model_copy(update={"env_kwargs": view})}))


# ------------------------------------------------------------------------ the normaliser
def test_the_normaliser_standardises_each_entry_and_shifts_constant_ones():
    rows = np.array([[1.0, 5.0, 0.2], [3.0, 5.0, 0.4], [5.0, 5.0, 0.9]])
    normalizer = rllib.ObservationNormalizer.fit(rows)
    mean = [3.0, 5.0, 0.5]
    std = [np.sqrt(8 / 3), 1.0, np.sqrt((0.09 + 0.01 + 0.16) / 3)]  # population std; 0 -> 1
    np.testing.assert_allclose(normalizer.mean, mean, rtol=1e-15)
    np.testing.assert_allclose(normalizer.std, std, rtol=1e-15)
    out = normalizer(rows.astype(np.float32))
    assert out.dtype == np.float32
    assert out.shape == (3, 3)
    expected = (rows - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_array_equal(out[:, 1], 0.0)  # a constant entry: shifted, not scaled
    far = normalizer(np.array([[1e6, -1e6, 0.5]]))
    np.testing.assert_array_equal(far, [[10.0, -10.0, 0.0]])  # clipped to +-clip (SB3's 10)


def test_the_normaliser_round_trips_through_json_and_refuses_bad_dicts():
    normalizer = rllib.ObservationNormalizer(mean=(0.1, -2.0), std=(0.3, 1.0), clip=5.0)
    data = json.loads(json.dumps(normalizer.to_json()))
    assert rllib.ObservationNormalizer.from_json(data, "here") == normalizer
    for bad in (None, [1, 2], {"mean": [0.0], "std": [1.0]},
                {"mean": [0.0, 1.0], "std": [1.0], "clip": 10},
                {"mean": [float("nan")], "std": [1.0], "clip": 10},
                {"mean": [0.0], "std": [0.0], "clip": 10},
                {"mean": [0.0], "std": [1.0], "clip": -1},
                {"mean": ["a"], "std": [1.0], "clip": 10},
                {"mean": [], "std": [], "clip": 10}):
        with pytest.raises(ValueError, match=r"here: observation_normalizer must be a mapping "
                                             r"\{mean: .*stds and c > 0, got"):
            rllib.ObservationNormalizer.from_json(bad, "here")


def test_the_normaliser_is_fitted_on_the_calibration_bands_decisions():
    """ShortCall-v0's 20 daily decisions: time_left is (20 - t) / 20 at decision t = 0..19,
    whose mean is 210 / 400 = 0.525 and population std sqrt((20^2 - 1) / 12) / 20; the implied
    vol (GBM's 0.2), the cost rate and the liquidity are constant (std 1, shifted only); the
    model hedge is minus the book's delta (a short call hedged long)."""
    config = make_config("ShortCall", **VIEW)
    normalizer = rllib.fit_observation_normalizer(config, 512, seed=3)
    from hedgearena.envs.episode import observation_names

    names = observation_names(config)
    mean, std = dict(zip(names, normalizer.mean, strict=True)), dict(
        zip(names, normalizer.std, strict=True))
    assert mean["time_left"] == pytest.approx(0.525, rel=1e-6)
    assert std["time_left"] == pytest.approx(np.sqrt(399 / 12) / 20, rel=1e-6)
    assert (mean["implied_vol"], std["implied_vol"]) == (pytest.approx(0.2, rel=1e-6), 1.0)
    assert (std["cost_rate"], std["liquidity"]) == (1.0, 1.0)
    assert mean["model_hedge"] == pytest.approx(-mean["book_delta"], rel=1e-6)
    assert 0.2 < std["book_delta"] < 0.4
    assert std["pnl"] > 0
    again = rllib.fit_observation_normalizer(config, 512, seed=3)
    assert again == normalizer  # seeded: a resumed run fits the same numbers
    assert rllib.fit_observation_normalizer(config, 512, seed=4) != normalizer


# ------------------------------------------------- the env runners and the hedger agree
def test_the_env_runners_env_and_the_hedger_apply_the_same_map():
    """What the module learns on (the env runner's observations) is what it is scored on."""
    normalizer = rllib.fit_observation_normalizer(make_config("ShortCall", **VIEW), 256, 3)
    raw = rllib.make_vector_env("hedgearena/ShortCall-v0", {"num_envs": 16, **VIEW})
    seen = rllib.make_vector_env("hedgearena/ShortCall-v0", {
        "num_envs": 16, **VIEW, rllib.OBS_NORMALIZER: normalizer.to_json()})
    assert seen.single_observation_space == raw.single_observation_space
    (obs_raw, _), (obs_seen, _) = raw.reset(seed=5), seen.reset(seed=5)
    actions = np.linspace(-1, 1, 16, dtype=np.float32)[:, None]
    for _ in range(25):  # through an autoreset (20-day episodes)
        np.testing.assert_array_equal(obs_seen, normalizer(obs_raw))
        obs_raw, *_ = raw.step(actions)
        obs_seen, *_ = seen.step(actions)

    module = _module(VIEW)
    plain = rllib.RLlibHedger(module, VIEW)
    hedger = rllib.RLlibHedger(module, VIEW, normalizer=normalizer)
    np.testing.assert_array_equal(hedger.actions(obs_raw), plain.actions(normalizer(obs_raw)))
    assert not np.array_equal(hedger.actions(obs_raw), plain.actions(obs_raw))


def test_a_saved_agent_keeps_its_normaliser_and_an_older_one_reads_raw(tmp_path: Path):
    spec = load_config(None).rllib.model_copy(update={"env_kwargs": VIEW})
    normalizer = rllib.ObservationNormalizer(mean=tuple(np.linspace(-1, 1, 13)),
                                             std=tuple(np.linspace(0.5, 2, 13)))
    rllib.save_module(_module(VIEW), tmp_path / "model", spec, normalizer)
    saved = json.loads((tmp_path / "model" / rllib.AGENT_FILE).read_text())
    assert saved[rllib.OBS_NORMALIZER] == normalizer.to_json()
    loaded = rllib.load_rllib_hedger(tmp_path / "model")
    assert loaded.normalizer == normalizer
    obs = np.random.default_rng(0).normal(size=(4, 13)).astype(np.float32)
    original = rllib.RLlibHedger(_module(VIEW), VIEW, normalizer=normalizer)
    np.testing.assert_array_equal(loaded.actions(obs), original.actions(obs))

    del saved[rllib.OBS_NORMALIZER]  # an agent saved before rllib.normalize_obs existed
    (tmp_path / "model" / rllib.AGENT_FILE).write_text(json.dumps(saved))
    assert rllib.load_rllib_hedger(tmp_path / "model").normalizer is None
    saved[rllib.OBS_NORMALIZER] = {"mean": [0.0], "std": [1.0]}
    (tmp_path / "model" / rllib.AGENT_FILE).write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"model/rllib.json: observation_normalizer must be"):
        rllib.load_rllib_hedger(tmp_path / "model")


# ---------------------------------------------------------------------- training, resume
@pytest.fixture
def stand_in(monkeypatch):
    """train_rllib with a stand-in algorithm; the normalisers validation was given."""
    given: list[Any] = []

    def validate(algo, config, env_config, run_dir, state, writer, normalizer):
        given.append(normalizer)
        state.last_eval = state.steps
        (run_dir / "best").mkdir(parents=True, exist_ok=True)

    BUILT.clear()

    def config_with(spec, env_id, env_kwargs, seed):
        BUILT.append(env_kwargs)  # what the env runners would be given
        return types.SimpleNamespace(build_algo=StandInAlgo)

    monkeypatch.setattr(rllib, "register_rllib_envs", lambda: [])
    monkeypatch.setattr(rllib, "algorithm_config", config_with)
    monkeypatch.setattr(rllib, "_validate", validate)
    monkeypatch.setattr(rllib, "_publish", lambda run_dir: None)
    return given


def _train(tmp_path: Path, *overrides: str) -> None:
    config = load_config(None, [f"out={tmp_path}", "rllib.eval_paths=256",
                                *(f"rllib.env_kwargs.{k}={v}" for k, v in VIEW.items()),
                                *overrides])
    rllib.train_rllib(config, config.env.config(), tmp_path / "run", progress=False)


def test_training_fits_the_normaliser_gives_it_to_the_runners_and_checkpoints_it(
        tmp_path, stand_in):
    _train(tmp_path, "rllib.n_timesteps=300")
    normalizer = rllib.fit_observation_normalizer(make_config("ShortCall", **VIEW), 256,
                                                  2024 + 2)  # the arena's seed + 2
    assert BUILT[0][rllib.OBS_NORMALIZER] == normalizer.to_json()
    assert stand_in
    assert all(given == normalizer for given in stand_in)
    latest = json.loads((tmp_path / "run" / "checkpoints" / rllib.LATEST).read_text())
    assert latest[rllib.OBS_NORMALIZER] == normalizer.to_json()
    _train(tmp_path, "rllib.n_timesteps=500")  # resumes: the same numbers fitted again
    assert json.loads((tmp_path / "run" / "checkpoints" / rllib.LATEST).read_text())[
        "timesteps"] == 500


def test_a_saved_module_records_its_env_and_one_of_another_env_is_refused(tmp_path):
    """rllib.json held the algorithm, view and normaliser: a module trained on another env (the
    same observation shape), copied into a run, was scored as its agent. (test_ray.py checks
    that training records the env.)"""
    from hedgearena.agents.saved import check_saved_agent, env_record
    from hedgearena.training import write_env_yaml

    run = tmp_path / "run"
    config = load_config(None, [*(f"rllib.env_kwargs.{k}={v}" for k, v in VIEW.items())])
    rllib.save_module(_module(VIEW), run / "model", config.rllib, None, env_record(config))
    saved = json.loads((run / "model" / rllib.AGENT_FILE).read_text())
    assert saved["env"]["cost"] == "ProportionalCost(rate=0.01)"  # ShortCall-v0's
    config.dump(run / "config.yaml")
    write_env_yaml(run, config.env.config())
    check_saved_agent(run, config)
    saved["env"]["cost"] = "ProportionalCost(rate=0.001)"
    (run / "model" / rllib.AGENT_FILE).write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"model/rllib.json's RLlib agent was trained on another "
                                         r"env \(cost: ProportionalCost\(rate=0.001\) then"):
        check_saved_agent(run, config)


def test_raw_observations_when_normalize_obs_is_off(tmp_path, stand_in):
    _train(tmp_path, "rllib.n_timesteps=200", "rllib.normalize_obs=false")
    assert rllib.OBS_NORMALIZER not in BUILT[0]
    assert stand_in
    assert all(given is None for given in stand_in)
    latest = json.loads((tmp_path / "run" / "checkpoints" / rllib.LATEST).read_text())
    assert latest[rllib.OBS_NORMALIZER] is None


@pytest.mark.parametrize(("first", "then", "said"), [
    (None, "true", "its module read observations raw, this config normalises them"),
    ("false", "true", "its module read observations raw, this config normalises them"),
    ("true", "false", "its module read observations normalised, this config gives them raw"),
    ("other", "true", "its module read observations normalised by other statistics, this "
                      "config normalises them"),
])
def test_resuming_with_other_observations_is_refused_naming_the_way_out(
        tmp_path, stand_in, first, then, said):
    """A checkpoint without a normaliser (``first`` None: written before normalize_obs
    existed), with one when the config has none, or with other statistics than the config
    fits cannot go on training: its module would read other inputs."""
    _train(tmp_path, "rllib.n_timesteps=200",
           f"rllib.normalize_obs={'false' if first is None else first != 'false'}")
    pointer = tmp_path / "run" / "checkpoints" / rllib.LATEST
    latest = json.loads(pointer.read_text())
    if first is None:
        del latest[rllib.OBS_NORMALIZER]
    if first == "other":  # e.g. fitted by another version of the fit
        latest[rllib.OBS_NORMALIZER]["mean"][0] += 1e-9
    pointer.write_text(json.dumps(latest))
    with pytest.raises(ValueError, match=rf"cannot resume from .*step_200: {said} "
                                         r"\(rllib.normalize_obs.*--name\)"):
        _train(tmp_path, "rllib.n_timesteps=400", f"rllib.normalize_obs={then}")
