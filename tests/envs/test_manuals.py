"""The envs' manuals (the class docstrings of :mod:`hedgearena.envs.registered`) against the code.

Each test reads a fact the way an RL researcher would, from the rendered manual, and checks it by
running the env (``gym.make`` and ``gym.make_vec(..., vectorization_mode="vector_entry_point")``)
and computing the quantity directly: the observation's entries, their order and definitions; the
action in every ``action_mode``; the rewards; the starting state; the info keys and totals; when
episodes end; the arguments and their defaults; the numbers each description quotes.

References for the closed forms: Black and Scholes (1973) / Merton (1973) for the call and put
prices and deltas; Brenner and Subrahmanyam (1988) for the at-the-money premium
``0.4 sigma sqrt(T) S``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import math
import pydoc
import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs import registered
from hedgearena.envs.book import ClientFlow, HedgeOption
from hedgearena.envs.config import PRESETS, EnvConfig, make_config
from hedgearena.envs.core import ACTION_MODES, REWARD_MODES
from hedgearena.envs.episode import (
    EXOGENOUS_FEATURES,
    OPTION_FEATURES,
    build_episodes,
    feature_names,
    observation_names,
)
from hedgearena.envs.hedging_env import INFO_KEYS, TOTAL_KEYS
from hedgearena.envs.historical import HistoricalReplay, _sp500_frame

SINGLE = {env_id: classes[0] for env_id, classes in registered.ENV_IDS.items()}
PRESET_OF = {env_id: cls.preset for env_id, cls in SINGLE.items()}
SECTIONS = (
    "Description", "Action Space", "Observation Space", "Rewards", "Starting State", "Info",
    "Episode End", "Arguments", "Version History",
)
"""Gymnasium classic_control's order (plus Info), the one README.md lists."""


# ----------------------------------------------------------------------------------- helpers
def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _bsm(spot: float, strike: float, tau: float, sigma: float, rate: float, call: bool) -> tuple[
    float, float
]:
    """Black-Scholes-Merton price and delta of one European option (no dividend)."""
    d1 = (math.log(spot / strike) + (rate + 0.5 * sigma**2) * tau) / (sigma * math.sqrt(tau))
    d2 = d1 - sigma * math.sqrt(tau)
    disc = math.exp(-rate * tau)
    if call:
        return spot * _norm_cdf(d1) - strike * disc * _norm_cdf(d2), _norm_cdf(d1)
    return strike * disc * _norm_cdf(-d2) - spot * _norm_cdf(-d1), _norm_cdf(d1) - 1.0


def _section(doc: str, title: str) -> str:
    """The text of the manual's section ``## title`` (to the next section)."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", doc, re.M | re.S)
    assert match, f"the manual has no section {title!r}"
    return match.group(1)


def _table(doc: str) -> list[tuple[int | None, int | None, str]]:
    """The observation table's rows: (index without a hedging option, index with one, name)."""
    rows = re.findall(r"^\| (\d+|-) / (\d+) \| `(\w+)` \|", doc, re.M)
    assert rows, "no observation table found"
    return [(None if a == "-" else int(a), None if b == "-" else int(b), n) for a, b, n in rows]


def _backticked_list(text: str) -> list[str]:
    return re.findall(r"`(\w+)`", text)


def _run(env: gym.Env, rng: np.random.Generator, seed: int, low: float = -1.2,
         high: float = 1.2) -> list[dict[str, Any]]:
    """One episode of uniform random actions; per decision the state, obs, action and outcome."""
    obs, info = env.reset(seed=seed)
    u = env.unwrapped
    steps = [{"obs": obs, "info": info, "state": u.state}]
    done = False
    while not done:
        action = rng.uniform(low, high, env.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        steps[-1].update(action=action, reward=reward, terminated=terminated, truncated=truncated)
        steps.append({"obs": obs, "info": info, "state": u.state})
        done = terminated or truncated
    return steps


# -------------------------------------------------------------------------- structure, help
@pytest.mark.parametrize("env_id", sorted(SINGLE))
def test_manual_has_the_classic_control_sections_and_renders_in_help(env_id: str) -> None:
    env = gym.make(env_id)
    doc = type(env.unwrapped).__doc__
    assert doc is not None
    assert doc.startswith(f"`{env_id}`")
    assert [line[3:] for line in doc.splitlines() if line.startswith("## ")] == list(SECTIONS)
    text = pydoc.render_doc(env.unwrapped, renderer=pydoc.plaintext)
    assert f"`{env_id}`" in text
    assert "## Observation Space" in text
    assert "{" not in _section(doc, "Observation Space")  # no unformatted template field
    vector = registered.ENV_IDS[env_id][1]
    assert vector.__doc__ is not None
    assert SINGLE[env_id].__name__ in vector.__doc__
    venv = gym.make_vec(env_id, num_envs=1, vectorization_mode="vector_entry_point")
    assert type(venv.unwrapped) is vector


def _resolve(name: str) -> bool:
    """Whether a dotted name is an importable module or an attribute of one."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize(
    "cls", [*SINGLE.values(), *(v for _, v in registered.ENV_IDS.values())],
    ids=lambda c: c.__name__,
)
def test_manual_references_resolve(cls: type) -> None:
    """Every dotted ``hedgearena.`` name and every class named in the manual exists."""
    doc = cls.__doc__ or ""
    dotted = set(re.findall(r"hedgearena(?:\.\w+)+", doc))
    assert all(_resolve(name) for name in dotted), [n for n in dotted if not _resolve(n)]
    classes = {"HestonSurface", "HedgeOption", "OptionBook", "Option", "MarketModel",
               "CostModel", "EnvConfig", "HistoricalReplay", "RiskLimits", "MarketPaths",
               "VecHedgingEnv", "HedgingEnv"}
    modules = [importlib.import_module(f"hedgearena.envs.{m}") for m in (
        "heston_surface", "book", "market", "frictions", "config", "historical", "limits",
        "vector_env", "hedging_env")]
    for name in re.findall(r"`([A-Z]\w+)(?:[.(`])", doc):
        if name in classes:
            assert any(hasattr(m, name) for m in modules), name
    for target in re.findall(r":class:`~?([\w.]+)`", doc):
        assert hasattr(registered, target) or _resolve(target), target


# ---------------------------------------------------------------------------- observations
def _variants() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("hedgearena/ShortCall-v0", {}),
        ("hedgearena/ShortCall-v0", {"observe_pnl": True}),
        ("hedgearena/ShortCall-v0", {"hedge_option": True}),
        ("hedgearena/ShortCall-v0", {"hedge_option": True, "observe_pnl": True}),
        ("hedgearena/OptionBook-v0", {}),
        ("hedgearena/PortfolioInsurance-v0", {"observe_pnl": True}),
        ("hedgearena/HistoricalReplay-v0", {}),
    ]


@pytest.mark.parametrize(("env_id", "kwargs"), _variants())
def test_observation_table_gives_each_entry_its_index(env_id: str, kwargs: dict) -> None:
    """The table's index columns are the positions in ``observation_names`` of the layout used.

    The manual once gave one index column, the hedging-option layout's: in the default envs
    (no hedging option) it put ``hedge`` at 15 and ``pnl`` at 17 instead of 11 and 12.
    """
    doc = SINGLE[env_id].__doc__ or ""
    config = make_config(PRESET_OF[env_id], **kwargs)
    names = observation_names(config)
    with_option = config.hedge_option is not None
    rows = _table(doc)
    assert [n for _, _, n in rows][:-1] == list(feature_names(True))
    assert rows[-1][2] == "pnl"
    documented = {name: (b if with_option else a) for a, b, name in rows}
    listed = [n for n, i in sorted(documented.items(), key=lambda kv: kv[1] or -1)
              if i is not None and (n != "pnl" or config.observe_pnl)]
    assert listed == list(names)
    assert all(documented[name] == i for i, name in enumerate(names))
    env = gym.make(env_id, **kwargs)
    assert env.observation_space.shape == (len(names),)
    assert env.observation_space.dtype == np.float32
    found = re.search(r"n = (\d+) \(or (\d+) with a hedging option",
                      _section(doc, "Observation Space"))
    assert found
    n_plain, n_option = found.groups()
    assert (int(n_plain), int(n_option)) == (len(feature_names(False)), len(feature_names(True)))
    assert len(names) == int(n_option if with_option else n_plain) + config.observe_pnl


@pytest.mark.parametrize(("env_id", "kwargs"), [
    ("hedgearena/ShortCall-v0", {"observe_pnl": True}),
    ("hedgearena/ShortCall-v0", {"hedge_option": True, "rebalance_every": 4}),
    ("hedgearena/OptionBook-v0", {"hedge_option": True, "observe_pnl": True}),
    ("hedgearena/PortfolioInsurance-v0", {"observe_pnl": True}),
    ("hedgearena/HistoricalReplay-v0", {"observe_pnl": True}),
])
def test_observation_entries_follow_the_table(env_id: str, kwargs: dict,
                                              manual_entries: Any) -> None:
    """Every entry equals its definition, on random paths and actions; ranges as documented."""
    env = gym.make(env_id, **kwargs)
    u = env.unwrapped
    config = u.config
    names = observation_names(config)
    rng = np.random.default_rng(7)
    for seed in range(6):
        steps = _run(env, rng, seed)
        strike = (config.book.options[0].moneyness * steps[0]["state"]["spot"]
                  if config.book.options else steps[0]["state"]["spot"])
        wealth0 = steps[0]["info"]["wealth"]
        for step in steps:
            obs, state, info = step["obs"], step["state"], step["info"]
            expected = manual_entries(config, state, strike,
                                      (info["wealth"] - wealth0) / u.reward_scale)
            got = dict(zip(names, obs.tolist(), strict=True))
            for name in names:
                assert got[name] == pytest.approx(expected[name], rel=2e-6, abs=2e-6), (
                    name, state["step"])
            assert 0.0 <= got["time_left"] <= 1.0
            assert got["implied_vol"] > 0
            assert got["realised_vol"] > 0
            assert got["liquidity"] == 1.0  # no liquidity model in the presets
        assert steps[0]["obs"][names.index("time_left")] == 1.0
        assert steps[-1]["obs"][names.index("time_left")] == 0.0


@pytest.mark.parametrize(("env_id", "kwargs"), [
    ("hedgearena/ShortCall-v0", {"observe_pnl": True, "action_mode": "band"}),
    ("hedgearena/OptionBook-v0", {"hedge_option": True, "action_mode": "trade"}),
    ("hedgearena/PortfolioInsurance-v0", {"observe_pnl": True}),
    ("hedgearena/HistoricalReplay-v0", {"action_mode": "fraction"}),
])
def test_vector_observations_follow_the_table_on_many_paths(env_id: str, kwargs: dict,
                                                            manual_entries: Any) -> None:
    """The native vector env's observations on 256 random paths and actions, entry by entry."""
    venv = gym.make_vec(env_id, num_envs=256, vectorization_mode="vector_entry_point", **kwargs)
    u: Any = venv.unwrapped
    config = u.config
    names = observation_names(config)
    rng = np.random.default_rng(11)
    obs, info = venv.reset(seed=5)
    strike = u.state["spot"] * (config.book.options[0].moneyness if config.book.options else 1)
    wealth0 = info["wealth"]
    for step in range(config.n_decisions + 1):
        expected = manual_entries(config, u.state, strike,
                                  (info["wealth"] - wealth0) / u.reward_scale)
        for i, name in enumerate(names):
            np.testing.assert_allclose(obs[:, i], expected[name], rtol=2e-6, atol=2e-6,
                                       err_msg=name)
        assert ((obs[:, 0] >= 0) & (obs[:, 0] <= 1)).all()
        assert np.isfinite(obs).all()
        if step < config.n_decisions:
            action = rng.uniform(-1.2, 1.2, venv.action_space.shape).astype(np.float32)
            obs, _, terminated, _, info = venv.step(action)  # the last: the final observation
    assert terminated.all()


def test_realised_vol_is_the_documented_ewma() -> None:
    """sqrt of an EWMA of r_s^2 / dt, half-life ``realised_vol_halflife`` steps, from sigma_0."""
    env = gym.make("hedgearena/ShortCall-v0", realised_vol_halflife=3.0)
    steps = _run(env, np.random.default_rng(1), 4)
    dt, alpha = 1 / 250, 1.0 - 0.5 ** (1 / 3.0)
    variance = steps[0]["state"]["implied_vol"] ** 2
    for prev, step in itertools.pairwise(steps):
        r = math.log(step["state"]["spot"] / prev["state"]["spot"])
        variance = (1 - alpha) * variance + alpha * r * r / dt
        assert step["state"]["realised_vol"] == pytest.approx(math.sqrt(variance), rel=1e-12)


# ------------------------------------------------------------------------------------ actions
def _expected_position(mode: str, a: float, previous: float, model: float, limit: float,
                       n: float) -> float:
    """The action table: the position after the trade."""
    if mode == "target":
        return a * limit * n
    if mode == "trade":
        return previous + a * limit * n
    if mode == "fraction":
        return previous + (a + 1) / 2 * (model - previous)
    width = (a + 1) / 2 * limit * n
    return min(max(previous, model - width), model + width)


@pytest.mark.parametrize("mode", ACTION_MODES)
@pytest.mark.parametrize(("env_id", "kwargs"), [
    ("hedgearena/ShortCall-v0", {}),
    ("hedgearena/OptionBook-v0", {"hedge_option": True}),
    ("hedgearena/PortfolioInsurance-v0", {}),
    ("hedgearena/HistoricalReplay-v0", {}),
])
def test_action_modes_follow_the_action_table(env_id: str, kwargs: dict, mode: str) -> None:
    """Single env: the position after each decision is the table's, actions clipped to [-1, 1]."""
    env = gym.make(env_id, action_mode=mode, **kwargs)
    config = env.unwrapped.config
    n = config.book.notional
    limit = {"target": config.position_limit, "trade": config.trade_limit,
             "band": config.band_limit, "fraction": 1.0}[mode]
    option_limit = config.option_position_limit if mode == "target" else limit
    rng = np.random.default_rng(3)
    for seed in range(3):
        steps = _run(env, rng, seed, -1.4, 1.4)
        for step, after in itertools.pairwise(steps):
            a = np.clip(step["action"].astype(np.float64), -1, 1)
            s, info = step["state"], after["info"]
            h = _expected_position(mode, a[0], s["hedge"], s["model_hedge"], limit, n)
            assert s["hedge"] + info["trade"] == pytest.approx(h, rel=1e-12, abs=1e-9)
            if config.hedge_option is not None:
                g = _expected_position(mode, a[1], s["option_position"], s["model_option"],
                                       option_limit, n)
                assert s["option_position"] + info["option_trade"] == pytest.approx(
                    g, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("mode", ACTION_MODES)
def test_action_modes_follow_the_table_on_the_vector_env(mode: str) -> None:
    venv = gym.make_vec("hedgearena/ShortCall-v0", num_envs=64, action_mode=mode,
                        vectorization_mode="vector_entry_point")
    u = venv.unwrapped
    c = u.config
    n = c.book.notional
    limit = {"target": c.position_limit, "trade": c.trade_limit, "band": c.band_limit,
             "fraction": 1.0}[mode]
    rng = np.random.default_rng(5)
    venv.reset(seed=1)
    for _ in range(c.n_decisions):
        s = u.state
        a = rng.uniform(-1.3, 1.3, (64, 1)).astype(np.float32)
        _, _, _, _, info = venv.step(a)
        x = np.clip(a[:, 0].astype(np.float64), -1, 1)
        expected = [_expected_position(mode, x[i], s["hedge"][i], s["model_hedge"][i], limit, n)
                    for i in range(64)]
        np.testing.assert_allclose(s["hedge"] + info["trade"], expected, rtol=1e-12, atol=1e-9)


def test_action_table_default_ranges_are_the_configs() -> None:
    """The table's default ranges are ``EnvConfig``'s; OptionBook's limits its description's."""
    doc = registered.ShortCallEnv.__doc__ or ""
    rows = {m: line for line in _section(doc, "Action Space").splitlines()
            for m in ACTION_MODES if line.startswith(f"| `{m}`")}
    numbers = {m: [float(x) for x in re.findall(r"(\d+(?:\.\d+)?) N", line)]
               for m, line in rows.items()}
    defaults = EnvConfig(market="gbm", n_steps=20)
    assert numbers["target"] == [defaults.position_limit, defaults.option_position_limit]
    assert numbers["trade"] == [defaults.trade_limit]
    assert numbers["band"] == [0.0, defaults.band_limit] or numbers["band"] == [
        defaults.band_limit]
    book = make_config("OptionBook")
    text = " ".join(doc.split())
    assert f"`OptionBook-v0` sets `position_limit` to {book.position_limit:g} N" in text
    assert f"`trade_limit` and `band_limit` to {book.trade_limit:g} N" in text
    assert book.trade_limit == book.band_limit
    ob = " ".join((registered.OptionBookEnv.__doc__ or "").split())
    assert f"within {book.option_position_limit:g} notionals" in ob
    assert f"`trade_limit` and `band_limit` are {book.trade_limit:g} notionals" in ob
    assert f"`position_limit` is {book.position_limit:g} notionals" in ob


def test_actions_are_clipped_and_non_finite_actions_refused() -> None:
    env = gym.make("hedgearena/ShortCall-v0")
    assert env.action_space == gym.spaces.Box(-1, 1, (1,), np.float32)
    n = env.unwrapped.config.book.notional
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([7.0], np.float32))
    assert info["hedge"] == 1.5 * n
    _, _, _, _, info = env.step(np.array([-3.0], np.float32))
    assert info["hedge"] == -1.5 * n
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="finite"):
            env.step(np.array([bad], np.float32))
    assert gym.make("hedgearena/OptionBook-v0", hedge_option=True).action_space.shape == (2,)


def test_initial_hedge_delta_trades_to_the_model_whatever_the_action() -> None:
    env = gym.make("hedgearena/ShortCall-v0", initial_hedge="delta")
    obs, info = env.reset(seed=2)
    assert obs[observation_names(env.unwrapped.config).index("hedge")] == 0.0  # flat before
    model = env.unwrapped.state["model_hedge"]
    _, _, _, _, info = env.step(np.array([-1.0], np.float32))
    assert info["trade"] == pytest.approx(model, rel=1e-12)
    assert info["cost"] == pytest.approx(0.01 * model * 100.0, rel=1e-9)  # 1% of S0 = 100


# ------------------------------------------------------------------------------------ rewards
@pytest.mark.parametrize("mode", REWARD_MODES)
def test_reward_modes_follow_the_formulas(mode: str) -> None:
    kappa, m = 2.5, -0.4
    env = gym.make("hedgearena/ShortCall-v0", reward_mode=mode, risk_aversion=kappa,
                   pnl_reference=m)
    scale = env.unwrapped.reward_scale
    rewards, total = [], 0.0
    for seed in range(3):
        steps = _run(env, np.random.default_rng(seed), seed)
        episode = sum(s["info"]["pnl"] for s in steps[1:]) / scale
        for step, after in itertools.pairwise(steps):
            x = after["info"]["pnl"] / scale
            last = step["terminated"]
            expected = {
                "pnl": x,
                "mean_variance": x - kappa / 2 * x * x,
                "terminal": episode if last else 0.0,
                "terminal_mean_variance": x - (kappa / 2 * (episode - m) ** 2 if last else 0.0),
            }[mode]
            assert step["reward"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
            rewards.append(step["reward"])
        total = sum(s["reward"] for s in steps[:-1])
        if mode == "terminal_mean_variance":  # the rewards sum to X - kappa/2 (X - m)^2
            assert total == pytest.approx(episode - kappa / 2 * (episode - m) ** 2, rel=1e-9)
        if mode in ("pnl", "terminal"):  # both sum to the episode's scaled P&L
            assert total == pytest.approx(episode, rel=1e-9, abs=1e-12)
    assert any(r != 0 for r in rewards)


@pytest.mark.parametrize("env_id", sorted(SINGLE))
def test_default_reward_scale_is_the_documented_premium(env_id: str) -> None:
    """``0.4 sigma_0 sqrt(T) S_0 N`` (Brenner and Subrahmanyam 1988), in ``info["reward_scale"]``.

    The replay's starts vary: the scale is the median premium of its windows (over 256 seeded
    starts; checked against the premiums of every window start of the series).
    """
    env = gym.make(env_id)
    u: Any = env.unwrapped
    config = u.config
    assert config.n_steps is not None
    n, t = config.book.notional, config.n_steps * config.dt
    scale = u.reward_scale
    _, info = env.reset(seed=0)
    assert info["reward_scale"] == scale
    if env_id.endswith("HistoricalReplay-v0"):
        data = _sp500_frame()
        windows = len(data) - config.n_steps
        premiums = 0.4 * data["implied_vol"].to_numpy()[:windows] * math.sqrt(t) * (
            data["close"].to_numpy()[:windows]) * n
        assert np.quantile(premiums, 0.45) < scale < np.quantile(premiums, 0.55)
        return
    market = config.market
    sigma = market.sigma if hasattr(market, "sigma") else math.sqrt(market.v0)
    assert scale == pytest.approx(0.4 * sigma * math.sqrt(t) * market.spot0 * n, rel=1e-12)
    # "about the ATM premium": the Black-Scholes at-the-money-forward call, within 0.5%
    forward_atm = _bsm(market.spot0, market.spot0, t, sigma, 0.0, True)[0] * n
    assert scale == pytest.approx(forward_atm, rel=5e-3)


# --------------------------------------------------------------------------------------- info
def test_info_keys_are_the_documented_ones_on_every_step() -> None:
    """Exactly the manual's keys on reset and every step (the vector env: plus Gymnasium masks);
    ``totals`` only on the last step, with exactly the manual's totals."""
    doc = registered.ShortCallEnv.__doc__ or ""
    info_text = _section(doc, "Info")
    documented = _backticked_list(info_text.split("The same keys every step:")[1].split(".")[0])
    assert tuple(documented) == INFO_KEYS
    totals_text = info_text.split("`totals` adds the episode's totals")[1].split("\n\n")[0]
    totals_named = set(_backticked_list(totals_text))
    expected_totals = {*TOTAL_KEYS, "terminal_pnl", "initial_premium"}
    # "every component": the P&L components of the step info
    components = {"option_mtm", "hedge_pnl", "carry", "spread_income", "impact_pnl", "cost"}
    assert expected_totals - components <= totals_named
    for env_id, kwargs in (("hedgearena/ShortCall-v0", {}),
                           ("hedgearena/OptionBook-v0", {"hedge_option": True})):
        env = gym.make(env_id, **kwargs)
        steps = _run(env, np.random.default_rng(0), 0)
        assert list(steps[0]["info"]) == list(INFO_KEYS)
        for step in steps[1:-1]:
            assert list(step["info"]) == list(INFO_KEYS)
        assert list(steps[-1]["info"]) == [*INFO_KEYS, "totals"]
        assert set(steps[-1]["info"]["totals"]) == expected_totals
        venv = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", **kwargs)
        _, info = venv.reset(seed=0)
        assert {k for k in info if not k.startswith("_")} == set(INFO_KEYS)
        for _ in range(venv.unwrapped.config.n_decisions):
            _, _, terminated, _, info = venv.step(venv.action_space.sample())
        assert terminated.all()
        assert info["_totals"].all()
        assert {k for k in info if not k.startswith("_")} == {*INFO_KEYS, "totals"}
        assert set(info["totals"]) == expected_totals


@pytest.mark.parametrize("env_id", sorted(SINGLE))
def test_info_values_their_units_and_the_totals(env_id: str) -> None:
    """The step P&L is its components' sum; totals are the documented sums; units as stated."""
    env = gym.make(env_id, **({"hedge_option": True} if "OptionBook" in env_id else {}))
    u = env.unwrapped
    n_steps, every, scale = u.config.n_steps, u.config.rebalance_every, u.reward_scale
    for seed in range(3):
        steps = _run(env, np.random.default_rng(seed), seed)
        start = steps[0]["info"]
        assert start["step"] == 0
        assert start["wealth"] == pytest.approx(0.0, abs=1e-9 * scale)
        assert start["pnl"] == start["cost"] == start["trade"] == 0.0
        infos = [s["info"] for s in steps[1:]]
        for k, (before, info) in enumerate(zip(steps, infos, strict=False)):
            parts = (info["option_mtm"] + info["hedge_pnl"] + info["carry"]
                     + info["spread_income"] + info["impact_pnl"] - info["cost"])
            assert info["pnl"] == pytest.approx(parts, rel=1e-9, abs=1e-9)
            assert info["step"] == (k + 1) * every  # the market step after the decision
            assert info["spot"] == steps[k + 1]["state"]["spot"]  # currency
            assert info["model_hedge"] == steps[k + 1]["state"]["model_hedge"]  # units
            assert info["wealth"] - before["info"]["wealth"] == pytest.approx(
                info["pnl"], rel=1e-9, abs=1e-7)  # currency: the step's P&L
            assert info["reward_scale"] == u.reward_scale
            assert info["termination_reason"] == ("expiry" if k == len(infos) - 1 else "")
            assert info["breach"] == 0
            assert info["unfilled"] == 0
            assert info["slippage"] == 0
        last = infos[-1]
        assert last["step"] == n_steps
        assert last["hedge"] == 0.0
        assert last["option_position"] == 0.0
        totals = last["totals"]
        assert totals["pnl"] == pytest.approx(sum(i["pnl"] for i in infos), rel=1e-12)
        assert totals["terminal_pnl"] == pytest.approx(last["wealth"] - start["wealth"],
                                                       rel=1e-12, abs=1e-9)
        assert totals["terminal_pnl"] == pytest.approx(totals["pnl"], rel=1e-9, abs=1e-9)
        assert totals["initial_premium"] == start["cash"]
        assert totals["turnover"] == pytest.approx(sum(abs(i["trade"]) for i in infos))
        assert totals["trades"] == sum(i["trade"] != 0 for i in infos)
        assert totals["option_turnover"] == pytest.approx(
            sum(abs(i["option_trade"]) for i in infos))
        assert totals["option_trades"] == sum(i["option_trade"] != 0 for i in infos)
        for name in ("option_mtm", "hedge_pnl", "carry", "spread_income", "cost"):
            assert totals[name] == pytest.approx(sum(i[name] for i in infos), rel=1e-12,
                                                 abs=1e-12)
        # the unwind's sale is a cost but not a trade: the decisions' trades leave a position
        held = steps[-2]["state"]["hedge"] + infos[-1]["trade"]
        assert held != 0.0
        assert sum(i["trade"] for i in infos) == pytest.approx(held)


# -------------------------------------------------------------------------------- episode end
@pytest.mark.parametrize(("env_id", "every"), [
    ("hedgearena/ShortCall-v0", 1), ("hedgearena/ShortCall-v0", 5),
    ("hedgearena/OptionBook-v0", 3), ("hedgearena/PortfolioInsurance-v0", 1),
    ("hedgearena/HistoricalReplay-v0", 7),
])
def test_episodes_end_at_the_horizon_and_never_truncate(env_id: str, every: int) -> None:
    env = gym.make(env_id, rebalance_every=every)
    assert env.spec is not None
    assert env.spec.max_episode_steps is None
    n_steps = env.unwrapped.config.n_steps
    steps = _run(env, np.random.default_rng(0), 0)
    assert len(steps) - 1 == n_steps // every
    assert [s["terminated"] for s in steps[:-1]] == [False] * (len(steps) - 2) + [True]
    assert not any(s["truncated"] for s in steps[:-1])
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())


def test_time_limits_truncate_and_carry_no_totals() -> None:
    """``max_episode_steps`` truncates after k decisions (single: TimeLimit; vector: per row);
    the truncated step has no ``totals`` (they come with ``terminated`` only, as documented)."""
    env = gym.make("hedgearena/ShortCall-v0", max_episode_steps=5)
    env.reset(seed=0)
    for _k in range(5):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
    assert (terminated, truncated) == (False, True)
    assert "totals" not in info
    venv = gym.make_vec("hedgearena/ShortCall-v0", num_envs=2, max_episode_steps=5,
                        vectorization_mode="vector_entry_point")
    venv.reset(seed=0)
    for _k in range(5):
        _, _, terminated, truncated, info = venv.step(venv.action_space.sample())
    assert not terminated.any()
    assert truncated.all()
    assert "totals" not in info
    doc = " ".join((registered.ShortCallEnv.__doc__ or "").split())
    assert "not on a truncation" in doc


# --------------------------------------------------------------------------------- arguments
def test_arguments_name_every_config_field_with_its_default() -> None:
    doc = registered.ShortCallEnv.__doc__ or ""
    arguments = " ".join(_section(doc, "Arguments").split())
    fields = [f.name for f in EnvConfig.__dataclass_fields__.values()]
    missing = [name for name in fields if f"`{name}`" not in arguments]
    assert not missing
    for m in (*ACTION_MODES, *REWARD_MODES):
        assert f"`{m}`" in arguments
    stated = {}
    for name in fields:  # "`name` (..., default X)": the parenthesis after the name
        start = arguments.find(f"`{name}` (")
        if start < 0:
            continue
        depth, end = 0, start + len(name) + 4
        for end in range(start + len(name) + 4, len(arguments)):
            depth += {"(": 1, ")": -1}.get(arguments[end], 0)
            if depth < 0:
                break
        found = re.search(r"default (\d+(?:\.\d+)?)", arguments[start:end])
        if found:
            stated[name] = float(found.group(1))
    assert stated == {"option_position_limit": 10.0, "permanent_impact": 0.0,
                      "execution_rate": 0.1}
    assert all(getattr(EnvConfig, name) == value for name, value in stated.items())
    for word in ("num_envs", "autoreset_mode", "max_episode_steps", "render_envs"):
        assert f"`{word}`" in arguments
    venv_kw = inspect.signature(registered.ShortCallVecEnv.__init__).parameters
    assert {"num_envs", "autoreset_mode", "max_episode_steps", "render_envs"} <= set(venv_kw)


@pytest.mark.parametrize("env_id", sorted(SINGLE))
def test_arguments_list_this_ids_values_of_the_plain_fields(env_id: str) -> None:
    """The line of this id's values equals the built config's (so presets cannot drift)."""
    doc = " ".join(_section(SINGLE[env_id].__doc__ or "", "Arguments").split())
    line = doc.split("This id's values of the plain arguments")[1].split(" (`reward_scale` None")[0]
    stated = dict(re.findall(r"`(\w+)` (`[^`]*`|[\w.+-]+)", line))
    config = make_config(PRESET_OF[env_id])
    plain = [f for f in EnvConfig.__dataclass_fields__ if f not in (
        "market", "market_kwargs", "book")]
    assert sorted(stated) == sorted(plain)
    for name, text in stated.items():
        value = getattr(config, name)
        if name == "cost":
            assert ast.literal_eval(text.strip("`")) == PRESETS[PRESET_OF[env_id]]["cost"]
            continue
        if text.startswith("`"):
            assert value == text.strip("`"), name
        elif text in ("None", "True", "False"):
            assert value is {"None": None, "True": True, "False": False}[text], name
        else:
            assert value == pytest.approx(float(text), rel=1e-12), name


# ------------------------------------------------------------------------------ descriptions
def test_short_call_description() -> None:
    config = make_config("ShortCall")
    (option,) = config.book.options
    assert (option.contracts, option.multiplier, option.moneyness, option.is_call) == (
        -1.0, 100.0, 1.0, True)
    assert (config.n_steps, config.days_per_year, config.rebalance_every) == (20, 250.0, 1)
    assert config.cost.rate == 0.01
    assert config.unwind
    market = config.market
    assert (market.mu, market.sigma, market.spot0, market.rate, market.dividend) == (
        0.05, 0.2, 100.0, 0.0, 0.0)
    assert type(market.surface).__name__ == "FlatVol"
    env = gym.make("hedgearena/ShortCall-v0")
    _, info = env.reset(seed=0)
    price, delta = _bsm(100.0, 100.0, 20 / 250, 0.2, 0.0, True)
    assert info["cash"] == pytest.approx(100 * price, rel=1e-9)  # the premium received
    assert info["hedge"] == 0.0
    assert info["wealth"] == pytest.approx(0.0, abs=1e-9)
    assert info["model_hedge"] == pytest.approx(100 * delta, rel=1e-9)
    # every trade pays 1% of traded value, the unwind's sale at expiry included
    steps = _run(env, np.random.default_rng(0), 0)
    for step, after in itertools.pairwise(steps[:-1]):
        assert after["info"]["cost"] == pytest.approx(
            0.01 * abs(after["info"]["trade"]) * step["state"]["spot"], rel=1e-9)
    before, last = steps[-2], steps[-1]["info"]
    held = before["state"]["hedge"] + last["trade"]
    assert last["cost"] == pytest.approx(
        0.01 * (abs(last["trade"]) * before["state"]["spot"] + abs(held) * last["spot"]),
        rel=1e-9)


def test_option_book_description() -> None:
    config = make_config("OptionBook")
    flow = config.book.client_flow
    assert flow == ClientFlow()
    assert (flow.rate, flow.max_trades, flow.buy_probability, flow.moneyness_range,
            flow.strike_step, flow.expiry_steps, flow.half_spread_vol) == (
        250.0, 96, 0.6, (0.9, 1.1), 1.0, (20, 40, 60), 0.005)
    assert config.book.options == ()
    assert config.n_steps == 60
    market = config.market
    assert (market.kappa, market.theta, market.xi, market.rho) == (2.0, 0.04, 0.5, -0.7)
    assert type(market.vol_surface).__name__ == "HestonSurface"
    term = make_config("OptionBook", market_kwargs={"surface": "term"}).market.vol_surface
    assert type(term).__name__ == "HestonTermVol"
    assert (market.v0, market.spot0, market.rate, market.dividend) == (0.04, 100.0, 0.0, 0.0)
    assert config.days_per_year == 252.0
    assert config.book.notional == 100.0
    doc = " ".join((registered.OptionBookEnv.__doc__ or "").split())
    found = re.search(r"costs a (\d+) bp fee plus a (\d+) bp half-spread", doc)
    assert found, "the manual no longer states OptionBook's costs"
    fee, half = found.groups()
    fee_model, spread_model = config.cost.components
    assert (fee_model.rate, spread_model.half_spread) == (int(fee) * 1e-4, int(half) * 1e-4)
    with_option = make_config("OptionBook", hedge_option=True)
    assert with_option.hedge_option == HedgeOption(moneyness=1.0, expiry_steps=90, is_call=True,
                                                   half_spread_vol=0.005)
    assert with_option.action_dim == 2
    # trading the hedging option costs half a vol point of its vega per unit
    env = gym.make("hedgearena/OptionBook-v0", hedge_option=True)
    env.reset(seed=0)
    vega = env.unwrapped.state["option_vega"]
    _, _, _, _, info = env.step(np.array([0.0, 0.5], np.float32))
    assert info["trade"] == 0.0
    assert info["option_trade"] == 500.0
    assert info["cost"] == pytest.approx(0.005 * vega * 500.0, rel=1e-9)
    # 5 bp fee + 5 bp half-spread: the cost_rate entry is 0.1 (%)
    batch = build_episodes(config, 400, np.random.default_rng(0))
    np.testing.assert_allclose(batch.episode.linear / batch.episode.spot, 0.001, rtol=1e-12)
    # starting state: an empty book; clients from the second step (market step 1) on
    ins = batch.instruments
    live = ins.quantity != 0
    assert live.sum(axis=1).max() <= 96
    assert ins.start[live].min() == 1
    assert ins.start[live].max() <= 59
    assert np.abs(batch.features.book_delta[:, 0]).max() == 0.0
    assert (batch.initial_cash == 0).all()
    assert set(np.unique(ins.expiry[live] - ins.start[live])) == {20, 40, 60}
    assert 0.57 < (ins.quantity[live] < 0).mean() < 0.63  # 60% buys: the dealer sells
    assert 0.47 < ins.is_call[live].mean() < 0.53
    assert (ins.strike[live] == np.round(ins.strike[live])).all()
    spot_at = batch.market.spot[np.nonzero(live)[0], ins.start[live]]
    assert (ins.strike[live] >= 0.9 * spot_at - 0.5).all()
    assert (ins.strike[live] <= 1.1 * spot_at + 0.5).all()
    # "mostly short gamma and vega": over the path-steps after the first arrivals
    assert (batch.features.book_gamma[:, 5:] < 0).mean() > 0.6
    assert (batch.features.book_vega[:, 5:] < 0).mean() > 0.6


def test_portfolio_insurance_description() -> None:
    config = make_config("PortfolioInsurance")
    put, promise = config.book.options
    n, k, t = config.book.notional, put.moneyness, 63 / 252
    assert (n, k, put.is_call, promise.moneyness, promise.is_call) == (100.0, 0.9, False, 1e-6,
                                                                        True)
    assert put.expiry_steps == promise.expiry_steps == config.n_steps == 63
    assert config.days_per_year == 252.0
    assert config.cost.rate == 0.001
    assert config.initial_hedge == "zero"
    market = config.market
    assert (market.mu, market.sigma, market.spot0, market.rate, market.dividend) == (
        0.05, 0.2, 100.0, 0.02, 0.0)
    assert n * promise.moneyness * market.spot0 == pytest.approx(0.01)  # the 0.01 of the text
    env = gym.make("hedgearena/PortfolioInsurance-v0", action_mode="target")
    _, info = env.reset(seed=3)
    put_price, put_delta = _bsm(100.0, 90.0, t, 0.2, 0.02, False)
    # the investors' money: N (S_0 + put) less the low strike's discounted 0.01
    assert info["cash"] == pytest.approx(n * (100.0 + put_price) - 0.01 * math.exp(-0.02 * t),
                                         rel=1e-9)
    assert info["wealth"] == pytest.approx(0.0, abs=1e-8)
    assert info["hedge"] == 0.0
    # the model hedge N e^{-q tau} N(d1) = N (1 + put delta): the synthetic put
    assert info["model_hedge"] == pytest.approx(n * (1.0 + put_delta), rel=1e-9)
    # holding no index, the P&L is the cash grown at r minus N max(S_T, K) (plus the 0.01)
    _obs, info = env.reset(seed=4)
    cash0, done = info["cash"], False
    while not done:
        _, _, done, _, info = env.step(np.zeros(1, np.float32))
    s_t = info["spot"]
    expected = cash0 * math.exp(0.02 * t) - n * max(s_t, 90.0) + 0.01
    assert info["totals"]["terminal_pnl"] == pytest.approx(expected, rel=1e-9, abs=1e-7)


def _realised_next(close: np.ndarray, days: int = 21) -> np.ndarray:
    """Annualised realised vol over the next ``days`` returns (rms of the log returns)."""
    r2 = np.diff(np.log(close)) ** 2
    sums = np.convolve(r2, np.ones(days), "valid")  # sums[t] = r_{t+1}^2 + ... + r_{t+days}^2
    return np.sqrt(252 * sums / days)


def test_historical_replay_description_and_its_numbers() -> None:
    config = make_config("HistoricalReplay")
    (option,) = config.book.options
    assert (option.moneyness, option.contracts, option.is_call, option.expiry_steps) == (
        1.0, -1.0, True, 21)
    assert config.n_steps == 21
    assert config.cost.rate == 0.001
    data = _sp500_frame()
    assert str(data.index[0].date())[:4] == "1999"
    assert str(data.index[-1].date())[:4] == "2018"
    vix = ~data["vol_estimated"].to_numpy()
    assert str(data.index[vix][0].date()) == "2014-01-03"
    assert vix[data.index.year < 2014].sum() == 0
    iv = data["implied_vol"].to_numpy()
    realised = _realised_next(data["close"].to_numpy())
    rows = np.arange(len(realised))
    doc = " ".join((registered.HistoricalReplayEnv.__doc__ or "").split())
    pattern = (r"VIX averaged (\d+\.\d)% against (\d+\.\d)% realised over the next 21 days\); "
               r"the GARCH years have almost no such gap \((\d+\.\d)% against (\d+\.\d)%\), and "
               r"the marks step where VIX takes over \((\d+\.\d)% to (\d+\.\d)% on 2014-01-03\)")
    found = re.search(pattern, doc)
    assert found, "the manual's quoted vols moved"
    vix_iv, vix_rv, garch_iv, garch_rv, before, after = (float(x) / 100 for x in found.groups())
    assert iv[rows][vix[rows]].mean() == pytest.approx(vix_iv, abs=5e-4)
    assert realised[vix[rows]].mean() == pytest.approx(vix_rv, abs=5e-4)
    assert iv[rows][~vix[rows]].mean() == pytest.approx(garch_iv, abs=5e-4)
    assert realised[~vix[rows]].mean() == pytest.approx(garch_rv, abs=5e-4)
    switch = int(np.argmax(vix))
    assert (iv[switch - 1], iv[switch]) == (pytest.approx(before, abs=5e-4),
                                            pytest.approx(after, abs=5e-4))
    # the market_kwargs the manual lists are HistoricalReplay.load's keywords
    load = set(inspect.signature(HistoricalReplay.load).parameters) - {"cls"}
    kwargs_text = doc.split("`market_kwargs` choose the history")[1].split("## ")[0]
    assert load <= set(_backticked_list(kwargs_text)) | set(
        re.findall(r"(\w+)=", kwargs_text))
    env = gym.make("hedgearena/HistoricalReplay-v0")
    _, info = env.reset(seed=11)
    state = env.unwrapped.state
    price, _ = _bsm(state["spot"], state["spot"], 21 / 252, state["implied_vol"], 0.0, True)
    assert info["cash"] == pytest.approx(100 * price, rel=1e-9)
    assert info["hedge"] == 0.0


def test_option_book_and_replay_presets_are_what_the_readme_table_says() -> None:
    """The README's table of ids: books, markets and default costs (README is not ours to edit;
    this pins the numbers it quotes to the presets)."""
    assert PRESETS["ShortCall"]["cost"] == 0.01
    assert PRESETS["OptionBook"]["cost"] == {"proportional": 0.0005,
                                             "spread": {"half_spread": 0.0005}}
    assert PRESETS["PortfolioInsurance"]["cost"] == PRESETS["HistoricalReplay"]["cost"] == 0.001
    assert PRESETS["PortfolioInsurance"]["market_kwargs"]["rate"] == 0.02
    assert len(EXOGENOUS_FEATURES) + len(OPTION_FEATURES) == 15
