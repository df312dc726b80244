"""Bad input at the public entry points fails with an error naming the field and what is allowed.

The project's rule: a bad config value, CSV, action or file gets a clear error (the field, the
value given, what is allowed); nothing is silently coerced or ignored; no NaN leaves an env.
Each case here used to fail deep inside numpy, pandas, torch or Python (a bare TypeError,
ZeroDivisionError, AttributeError...), or was accepted silently.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import hedgearena.envs  # noqa: F401  (registers the ids)
from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.benchmark import BenchmarkSettings
from hedgearena.baselines.delta import NoHedge
from hedgearena.baselines.hedger import Hedger
from hedgearena.baselines.registry import parse_hedger
from hedgearena.baselines.stress import StressSettings
from hedgearena.envs.book import ClientFlow, HedgeOption, Option, OptionBook
from hedgearena.envs.config import make_config
from hedgearena.envs.historical import HistoricalReplay
from hedgearena.envs.vector_env import VecHedgingEnv

SHORT_CALL = "hedgearena/ShortCall-v0"


# ------------------------------------------------------------------------ env keyword values
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rebalance_every": 0}, r"rebalance_every must be an integer >= 1, got 0"),  # was / 0
        ({"rebalance_every": 2.0}, r"rebalance_every must be an integer >= 1, got 2.0"),
        ({"rebalance_every": "2"}, r"rebalance_every must be an integer >= 1, got '2'"),
        ({"n_steps": math.nan}, r"n_steps must be an integer >= 1, got nan"),
        ({"n_steps": True}, r"n_steps must be an integer >= 1, got True"),
        ({"n_steps": 20.0}, r"n_steps must be an integer >= 1, got 20.0"),  # failed at reset
        ({"days_per_year": "252"}, r"days_per_year must be > 0 \(e.g. 250 or 252\), got '252'"),
        ({"risk_aversion": "1"}, r"risk_aversion must be a finite number >= 0, got '1'"),
        ({"position_limit": "1"}, r"position_limit must be a finite number > 0, got '1'"),
        ({"option_position_limit": 0.0},
         r"option_position_limit must be a finite number > 0, got 0.0"),
        ({"lot_size": "1"}, r"lot_size must be a finite number >= 0, got '1'"),
        ({"reward_scale": "1"}, r"reward_scale must be > 0 or None, got '1'"),
        ({"realised_vol_halflife": math.inf}, r"realised_vol_halflife must be a finite number"),
        ({"realised_vol_halflife": "1"}, r"realised_vol_halflife must be a finite number"),
        ({"execution_rate": True}, r"execution_rate must be a finite number > 0 .* got True"),
        ({"unwind": "no"}, r"unwind must be True or False, got 'no'"),  # was read as True
        ({"unwind": None}, r"unwind must be True or False, got None"),
        ({"cost": True}, r"cost must be a CostModel, a number .*; got True"),  # was a rate of 1
    ],
)
def test_env_fields_of_the_wrong_type_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_config("ShortCall", **kwargs)


def test_unknown_keywords_without_a_preset_are_named_too() -> None:
    """make_config(None, ...) named nothing: the dataclass raised a bare TypeError."""
    with pytest.raises(ValueError, match=r"unknown env keyword\(s\) \['foo'\]; allowed: "):
        make_config(None, foo=1)


def test_gym_make_reports_a_zero_rebalance_as_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"rebalance_every must be an integer >= 1, got 0"):
        gym.make(SHORT_CALL, rebalance_every=0)
    with pytest.raises(ValueError, match=r"rebalance_every must be an integer >= 1, got 0"):
        gym.make_vec(SHORT_CALL, num_envs=2, vectorization_mode="vector_entry_point",
                     rebalance_every=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"market_kwargs": {"bogus": 1}},
         r"unknown market_kwargs \(market='gbm'\) key\(s\) \['bogus'\]; allowed: \['dividend', "
         r"'mu', 'rate', 'sigma', 'spot0', 'surface'\]"),
        ({"market": "merton", "market_kwargs": {"lam": 1.0}},
         r"unknown market_kwargs \(market='merton'\) key\(s\) \['lam'\]; allowed: "
         r".*jump_intensity"),
        ({"market": "historical", "market_kwargs": {"path": "my.csv"}},
         r"key\(s\) \['path'\]; allowed: \['csv', 'date_column', 'date_format', 'dividend', "
         r"'end', "),
        ({"market_kwargs": None}, r"market_kwargs must be a dict of the market model's keywords"),
        ({"market_kwargs": [1]}, r"market_kwargs must be a dict .* got \[1\]"),
        ({"market_kwargs": {"surface": "flat"}},
         r"GBM.surface must be a VolSurface object \(e.g. FlatVol\(\)\), got 'flat'"),
    ],
)
def test_market_keywords_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_config("ShortCall", **kwargs)


@pytest.mark.parametrize(
    ("book", "message"),
    [
        ({"option": []}, r"unknown book key\(s\) \['option'\]; allowed: \['client_flow', "
                         r"'options', 'stock'\]"),
        ({"options": [{"strike": 100}]}, r"unknown book option key\(s\) \['strike'\]; allowed: "
                                         r"\['contracts', 'expiry_steps', 'is_call', "),
        ({"options": 5}, r"book options must be a list of option dicts, got 5"),
        ({"options": ["call"]}, r"book option must be a dict of keywords, got 'call'"),
        ({"options": [{"is_call": "yes"}]}, r"Option.is_call must be True or False, got 'yes'"),
        ({"options": [{"moneyness": math.inf}]}, r"Option.moneyness must be a finite number > 0"),
        ({"options": [{"moneyness": "1"}]}, r"Option.moneyness must be a finite number > 0"),
        ({"options": [{"contracts": "1"}]}, r"Option.contracts must be a finite number, got '1'"),
        ({"options": [{"expiry_steps": True}]}, r"Option.expiry_steps must be an integer >= 1"),
        ({"options": [{"multiplier": math.inf}]}, r"Option.multiplier must be a finite number"),
        ({"options": [{"contracts": 0}]}, r"the book's notional .* must be a finite number > 0, "
                                          r"got 0.0: give an option non-zero contracts"),
        ({"options": [{}], "stock": math.nan},
         r"OptionBook.stock must be a finite number, got nan"),  # was NaN rewards
        ({"options": [], "client_flow": 5}, r"book client_flow must be a dict of keywords, got 5"),
        ({"options": [], "client_flow": {"intensity": 1}},
         r"unknown book client_flow key\(s\) \['intensity'\]; allowed: .*'rate'"),
        ({"options": [], "client_flow": {"rate": math.inf}}, r"ClientFlow.rate must be a finite"),
        ({"options": [], "client_flow": {"max_trades": 2.5}},
         r"ClientFlow.max_trades must be an integer >= 1, got 2.5"),
        ({"options": [], "client_flow": {"moneyness_range": [0.9]}},
         r"ClientFlow.moneyness_range must be a pair \(low, high\) of finite numbers"),
        ({"options": [], "client_flow": {"expiry_steps": 20}},
         r"ClientFlow.expiry_steps must be a non-empty list of integers >= 1, got 20"),
    ],
)
def test_book_specs_are_checked(book: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_config("ShortCall", book=book, n_steps=20)


@pytest.mark.parametrize(
    ("hedge_option", "message"),
    [
        ({"strike": 1.0}, r"unknown hedge_option key\(s\) \['strike'\]; allowed: "
                          r"\['expiry_steps', 'half_spread_vol', 'is_call', 'moneyness'\]"),
        ({"half_spread_vol": math.inf}, r"HedgeOption.half_spread_vol must be a finite number"),
        ({"expiry_steps": 30.5}, r"HedgeOption.expiry_steps must be an integer >= 1, got 30.5"),
        ({"is_call": "no"}, r"HedgeOption.is_call must be True or False, got 'no'"),
        ({"moneyness": math.inf}, r"HedgeOption.moneyness must be a finite number > 0"),
    ],
)
def test_hedge_option_specs_are_checked(hedge_option: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_config("ShortCall", hedge_option=hedge_option)


def test_hedge_option_false_is_none_and_other_values_are_named() -> None:
    """``hedge_option: false`` in YAML means no hedging option (as True means the default one);
    a number or a string is refused with the accepted forms."""
    assert make_config("ShortCall", hedge_option=False).hedge_option is None
    assert make_config("ShortCall", hedge_option=True).hedge_option == HedgeOption()
    for spec in (0, 1, "yes"):
        with pytest.raises(ValueError, match=r"hedge_option must be a HedgeOption, a dict of its "
                           r"fields, True \(the default one\), or None or False \(none\); got "):
            make_config("ShortCall", hedge_option=spec)


def test_book_objects_check_their_fields_too() -> None:
    with pytest.raises(ValueError, match=r"OptionBook.options must be a sequence of Option"):
        OptionBook(options=({"moneyness": 1.0},))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"OptionBook.client_flow must be a ClientFlow or None"):
        OptionBook(client_flow={"rate": 1.0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ClientFlow.rate must be a finite number >= 0.0"):
        ClientFlow(rate="250")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Option.expiry_steps must be an integer >= 1, got nan"):
        Option(expiry_steps=math.nan)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"HedgeOption.expiry_steps .* got inf"):
        HedgeOption(expiry_steps=math.inf)  # type: ignore[arg-type]
    assert Option(expiry_steps=20.0).expiry_steps == 20.0  # type: ignore[arg-type]  # still ok


def test_env_constructors_check_config_and_num_envs() -> None:
    with pytest.raises(ValueError, match=r"config must be an EnvConfig .* got int"):
        gym.make(SHORT_CALL, config=5)
    with pytest.raises(ValueError, match=r"config must be an EnvConfig .* got dict"):
        VecHedgingEnv(num_envs=2, config={"cost": 0.01})  # type: ignore[arg-type]
    for bad in (None, True, "4"):
        with pytest.raises(ValueError, match=rf"num_envs must be an integer >= 1, got {bad!r}"):
            VecHedgingEnv(num_envs=bad, preset="ShortCall")  # type: ignore[arg-type]
    assert VecHedgingEnv(num_envs=4.0, preset="ShortCall").num_envs == 4  # type: ignore[arg-type]


# ----------------------------------------------------------------------- resets and actions
def test_reset_options_are_checked() -> None:
    env = gym.make(SHORT_CALL)
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['hegde'\]; allowed: "
                                         r"\['hedge'\]"):
        env.reset(seed=0, options={"hegde": 10.0})
    with pytest.raises(ValueError, match=r"options\['hedge'\] must be a finite number of units "
                                         r"within \+-1e\+15 .*, got 'x'"):
        env.reset(seed=0, options={"hedge": "x"})
    with pytest.raises(ValueError, match=r"options\['hedge'\] .* got True"):
        env.reset(seed=0, options={"hedge": True})
    venv = VecHedgingEnv(num_envs=2, preset="ShortCall")
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['bogus'\]; allowed: "
                                         r"\['hedge', 'episodes'\]"):
        venv.reset(seed=0, options={"bogus": 1})
    with pytest.raises(ValueError, match=r"reset options must be a dict or None, got 5"):
        venv.reset(seed=0, options=5)  # type: ignore[arg-type]
    obs, info = env.reset(seed=0, options={"hedge": 10})
    assert info["hedge"] == 10.0
    assert np.isfinite(obs).all()


def test_non_numeric_actions_are_named() -> None:
    env = gym.make(SHORT_CALL)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an array of numbers of shape \(1,\)"):
        env.step(np.array(["a"]))
    with pytest.raises(ValueError, match=r"action must be an array of numbers of shape \(1,\)"):
        env.step({"a": 1})
    venv = VecHedgingEnv(num_envs=2, preset="ShortCall")
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an array of numbers of shape \(2, 1\)"):
        venv.step("x")  # type: ignore[arg-type]


# ------------------------------------------------------------------------- historical data
def _replay_frame(rows: int = 25) -> pd.DataFrame:
    return pd.DataFrame(
        {"close": 100.0 + np.arange(rows), "iv": 0.2},
        index=pd.date_range("2021-01-01", periods=rows, name="date"),
    )


def test_historical_arguments_of_the_wrong_type_are_named() -> None:
    frame = _replay_frame()
    with pytest.raises(ValueError, match=r"frame must be a pandas DataFrame .* got dict"):
        HistoricalReplay.from_frame({"close": [1.0, 2.0]})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"data must be a pandas DataFrame .* got list"):
        HistoricalReplay([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"rate must be a finite number per year, got '0.01'"):
        HistoricalReplay.from_frame(frame, vol_column="iv", rate="0.01")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"dividend must be a finite number per year, got None"):
        HistoricalReplay.from_frame(frame, vol_column="iv", dividend=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"vol_scale must be finite and > 0, got 'x'"):
        HistoricalReplay.from_frame(frame, vol_column="iv", vol_scale="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"HistoricalReplay.surface must be a VolSurface"):
        HistoricalReplay.from_frame(frame, vol_column="iv", surface="flat")  # type: ignore[arg-type]
    replay = HistoricalReplay.from_frame(frame, vol_column="iv")
    with pytest.raises(ValueError, match=r"dt must be a finite number of years per row > 0 .* "
                                         r"got 'x'"):
        replay.window([0], 3, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"start must be a date readable by pandas.Timestamp .* "
                                         r"got 'garbage'"):
        replay.between("garbage")
    with pytest.raises(ValueError, match=r"end must be a date readable by pandas.Timestamp"):
        replay.walk_forward_starts(3, end="2021-13-45")
    with pytest.raises(ValueError, match=r"path must be a CSV file's path \(str or Path\), "
                                         r"got None"):
        HistoricalReplay.from_csv(None)  # type: ignore[arg-type]


def test_a_csv_of_numeric_dates_is_refused_not_read_as_1970(tmp_path: Path) -> None:
    path = tmp_path / "days.csv"
    rows = "\n".join(f"202101{day:02d},{100 + day},0.2" for day in range(1, 26))
    path.write_text("date,close,iv\n" + rows + "\n")
    with pytest.raises(ValueError, match=r"date_column 'date' holds numbers \(first 20210101\), "
                                         r"which pandas would read as nanoseconds since 1970"):
        HistoricalReplay.from_csv(path, vol_column="iv")
    path.write_text(path.read_text().replace("202101", "2021-01-"))
    assert len(HistoricalReplay.from_csv(path, vol_column="iv")) == 25  # dates as text: fine


# ------------------------------------------------------------------------------------ arena
class _Returns(Hedger):
    def __init__(self, name: Any, value: Any) -> None:
        self.name, self.value = name, value

    def positions(self, state: Any, obs: Any) -> Any:
        return self.value


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_paths": None}, r"n_paths must be an integer >= 1, got None"),
        ({"n_paths": True}, r"n_paths must be an integer >= 1, got True"),
        ({"n_paths": math.nan}, r"n_paths must be an integer >= 1, got nan"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
        ({"seed": 1.5}, r"seed must be an integer >= 0, got 1.5"),  # was truncated to 1
        ({"seed": None}, r"seed must be an integer >= 0, got None"),
        ({"hedgers": []}, r"hedgers must be a non-empty list of Hedger objects, got \[\]"),
        ({"hedgers": NoHedge()}, r"hedgers must be a non-empty list of Hedger objects"),
        ({"hedgers": ["delta"]}, r"hedgers must be Hedger objects .* parse_hedger .* got 'delta'"),
        ({"config": {"cost": 0.01}}, r"config must be an EnvConfig .* got dict"),
        ({"hedgers": [_Returns("", None)]}, r"a hedger's name must be a non-empty string, got ''"),
        ({"hedgers": [_Returns(5, None)]}, r"a hedger's name must be a non-empty string, got 5"),
    ],
)
def test_arena_arguments_are_checked(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "config": make_config("ShortCall"), "hedgers": [NoHedge()], "n_paths": 8, "seed": 0,
        "progress": False, **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        run_arena(**arguments)


def test_arena_names_a_hedger_returning_non_numbers_or_bad_overrides() -> None:
    config = make_config("ShortCall")
    strings = _Returns("strings", np.array([["a"]] * 8))
    with pytest.raises(ValueError, match=r"strings: positions must be numbers \(units\), an array "
                                         r"of shape \(8, 1\); got ndarray"):
        run_arena(config, [strings], n_paths=8, progress=False)
    overriding = NoHedge()
    overriding.env_overrides = 5  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"no hedge: env_overrides must be a dict of config "
                                         r"fields, got 5"):
        run_arena(config, [overriding], n_paths=8, progress=False)


def test_negative_seeds_of_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0, got -1"):
        BenchmarkSettings(seed=-1)
    with pytest.raises(ValueError, match=r"tune_seed must be an integer >= 0, got -2"):
        BenchmarkSettings(tune_seed=-2)
    with pytest.raises(ValueError, match=r"tune_seed must differ from seed \(both 3\): the"):
        BenchmarkSettings(seed=3, tune_seed=3)
    with pytest.raises(ValueError, match=r"StressSettings.seed must be an integer >= 0, got -1"):
        StressSettings(seed=-1)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("leland:1", r"hedger spec 'leland:1' has 1 argument\(s\); leland takes no argument"),
        ("delta:1:2", r"'delta:1:2' has 2 argument\(s\); delta takes 0 to 1: delta\[:every\]"),
        ("ww", r"hedger spec 'ww' has 0 argument\(s\); ww takes 1: ww:risk_aversion"),
        ("band:0.1:centre:x", r"band takes 1 to 2: band:tolerance\[:edge\|centre\]"),
        ("band:0.1:middle", r"hedger spec 'band:0.1:middle': to must be one of edge, centre"),
        ("cppi:0", r"hedger spec 'cppi:0': multiplier must be > 0"),
        (5, r"a hedger spec is a string such as 'delta:5', got 5"),
    ],
)
def test_hedger_specs_with_wrong_arguments_are_refused(spec: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_hedger(spec)


# --------------------------------------------------------------------------- agents and runs
def test_agent_hyperparameters_of_the_wrong_type_are_named() -> None:
    from hedgearena.agents.deep_hedging import TrainerConfig
    from hedgearena.agents.policies import PolicySpec
    from hedgearena.agents.sb3 import check_hyperparams

    with pytest.raises(ValueError, match=r"learning_rate must be a finite number > 0, got 'abc'"):
        TrainerConfig(learning_rate="abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"steps must be an integer >= 1, got 'ten'"):
        TrainerConfig(steps="ten")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_grad_norm must be a finite number > 0 or None"):
        TrainerConfig(max_grad_norm="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"fresh_batches must be true or false, got 'yes'"):
        TrainerConfig(fresh_batches="yes")  # type: ignore[arg-type]
    for hidden in ("abc", 8, [8, 0], [1e9]):  # 1e9: a typo that would allocate gigabytes
        with pytest.raises(ValueError, match=r"hidden must be a non-empty list of integer widths"
                                             r" from 1 to 65,536"):
            PolicySpec(observation=("spot",), hidden=hidden)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown ppo hyperparameter\(s\) \['lerning_rate'\]; "
                                         r"allowed: \[.*'learning_rate'"):
        check_hyperparams("ppo", {"lerning_rate": 3e-4, "n_timesteps": 64})
    check_hyperparams("sac", {"n_timesteps": 64, "noise_type": "normal", "learning_rate": 1e-3,
                              "ent_coef": "auto_0.1"})  # SB3's auto with an initial value


@pytest.mark.parametrize(("key", "value", "message"), [
    ("batch_size", "abc", "batch_size must be an integer >= 1, got 'abc'"),
    ("n_steps", 0, "n_steps must be an integer >= 1, got 0"),
    ("n_epochs", -1, "n_epochs must be an integer >= 1, got -1"),
    ("ent_coef", "abc", "ent_coef must be a number >= 0"),
    ("clip_range", "abc", "clip_range must be a number > 0 or a linear schedule"),
    ("learning_rate", "lin_abc", "learning_rate must be a number > 0 or a linear schedule"),
    ("gamma", 1.5, r"gamma must be a number in \(0, 1\]"),
])
def test_sb3_hyperparameter_values_are_named_before_sb3_asserts(
    key: str, value: Any, message: str
) -> None:
    """SB3 checks these with bare asserts (or fails inside learn: n_epochs=-1); ours name them."""
    from hedgearena.agents.sb3 import check_hyperparams

    with pytest.raises(ValueError, match=f"ppo hyperparameter {message}"):
        check_hyperparams("ppo", {key: value})


def test_numbers_in_exponent_form_are_numbers_in_configs_and_overrides(tmp_path: Path) -> None:
    """YAML 1.1 reads 3e-4 as a string; configs and --set read it as YAML 1.2 does."""
    from hedgearena.agents.sb3 import load_hyperparams
    from hedgearena.run_config import load_config

    path = tmp_path / "run.yml"
    path.write_text("env: {kwargs: {cost: 1e-3}}\nagent: {hyperparams: {learning_rate: 3e-4}}\n")
    config = load_config(path, ["agent.hyperparams.n_timesteps=1e4"])
    assert config.env.kwargs["cost"] == 0.001
    assert config.agent.hyperparams["learning_rate"] == 3e-4
    params = load_hyperparams("ppo", "hedgearena/ShortCall-v0", None,
                              config.agent.hyperparams)
    assert params["n_timesteps"] == 10_000
    assert isinstance(params["n_timesteps"], int)


def test_run_configs_refuse_booleans_for_numbers_and_negative_seeds() -> None:
    from hedgearena.run_config import load_config

    for override, key in (("seed=true", "seed"), ("arena.paths=false", "arena.paths"),
                          ("ray.num_cpus=true", "ray.num_cpus")):
        with pytest.raises(ValueError, match=rf"{re.escape(key)}: .*must be a number, not a "
                                             r"boolean"):
            load_config(None, [override])
    # YAML 1.2: "yes" is a string (YAML 1.1 read it as a boolean), "010" ten (not octal 8)
    with pytest.raises(ValueError, match=r"arena.paths: .*integer.*got 'yes'"):
        load_config(None, ["arena.paths=yes"])
    assert load_config(None, ["seed=010"]).seed == 10
    for override, key in (("seed=-1", "seed"), ("arena.seed=-1", "arena.seed"),
                          ("stress.seed=-3", "stress.seed")):
        with pytest.raises(ValueError, match=rf"{re.escape(key)}: Input should be greater than or "
                                             r"equal to 0"):
            load_config(None, [override])
    assert load_config(None, ["arena.frontier=false", "seed=3"]).seed == 3  # booleans for booleans
    with pytest.raises(ValueError, match=r"arena.frontier: .*must be true or false, got 'no'"):
        load_config(None, ["arena.frontier=no"])  # a string in YAML 1.2, not a boolean


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("env.kwargs.rebalance_every=0", "rebalance_every must be an integer >= 1, got 0"),
        ("env.kwargs.market_kwargs.bogus=1", "unknown market_kwargs (market='gbm') key(s)"),
        ("env.kwargs.book.options=5", "book options must be a list of option dicts, got 5"),
        ("env.kwargs.days_per_year=abc", "days_per_year must be > 0 (e.g. 250 or 252), got"),
    ],
)
def test_bad_env_kwargs_exit_with_a_usage_error_not_a_traceback(
    override: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hedgearena.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["benchmark", "--out", str(tmp_path), "--paths", "8", "--no-progress",
              "--set", override])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def _saved_deep_hedging_run(folder: Path) -> Path:
    """A run folder as ``train`` leaves it (config and an untrained model), without training."""
    from hedgearena.agents.deep_hedging import save_policy
    from hedgearena.agents.policies import HedgingPolicy, PolicySpec
    from hedgearena.run_config import RunConfig

    config = RunConfig()
    config.dump(folder / "config.yaml")
    spec = PolicySpec.for_env(config.env.config(), hidden=(4,))
    save_policy(HedgingPolicy(spec), folder / "model")
    return folder


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        ("remove policy.pt", FileNotFoundError,
         r"deep-hedging weights '.*policy.pt' is missing: train the run again"),
        ("remove settings.json", FileNotFoundError, r"deep-hedging settings '.*' is missing"),
        ("corrupt policy.pt", ValueError,
         r"deep-hedging weights '.*policy.pt' cannot be loaded \(UnpicklingError: .*\); it is "
         r"corrupt"),
        ("empty policy.pt", ValueError, r"weights '.*' cannot be loaded \(EOFError\)"),
        ("corrupt settings.json", ValueError, r"settings '.*settings.json' is not valid JSON"),
        ("list settings.json", ValueError, r"must hold a JSON object, got list"),
        ("drop settings.json", ValueError, r"settings '.*' lacks the key\(s\) \['policy'\]"),
    ],
)
def test_a_missing_or_corrupt_deep_hedging_model_is_named(
    damage: str, error: type[Exception], message: str, tmp_path: Path
) -> None:
    from hedgearena.agents.deep_hedging import load_policy

    model = _saved_deep_hedging_run(tmp_path) / "model"
    load_policy(model)  # intact: loads
    action, name = damage.split(" ")
    target = model / name
    if action == "remove":
        target.unlink()
    elif action == "corrupt":
        target.write_text("{garbage")
    elif action == "empty":
        target.write_bytes(b"")
    elif action == "list":
        target.write_text("[1, 2]")
    else:
        settings = json.loads(target.read_text())
        del settings["policy"]
        target.write_text(json.dumps(settings))
    with pytest.raises(error, match=message):
        load_policy(model)


def test_evaluate_reports_a_corrupt_model_as_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hedgearena.cli import main

    run = _saved_deep_hedging_run(tmp_path / "run")
    (run / "model" / "policy.pt").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(run), "--no-progress"])
    assert exit_info.value.code == 2
    assert "policy.pt' is missing: train the run again or restore the file" in (
        capsys.readouterr().err
    )


def test_a_missing_or_corrupt_sb3_model_is_named(tmp_path: Path) -> None:
    from hedgearena.agents.training import AGENT_FILE, load_sb3_hedger
    from hedgearena.run_config import RunConfig

    config = RunConfig.model_validate({"agent": {"algo": "ppo"}})
    with pytest.raises(FileNotFoundError, match=r"SB3 agent description '.*agent.json' is missing"):
        load_sb3_hedger(tmp_path, config, "ppo agent")
    (tmp_path / AGENT_FILE).write_text(json.dumps({"algo": "ppo", "env_kwargs": {}}))
    with pytest.raises(FileNotFoundError, match=r"SB3 model '.*model.zip' is missing"):
        load_sb3_hedger(tmp_path, config, "ppo agent")
    (tmp_path / "model.zip").write_text("not a zip")
    with pytest.raises(ValueError, match=r"SB3 model '.*model.zip' cannot be loaded .* corrupt"):
        load_sb3_hedger(tmp_path, config, "ppo agent")
    (tmp_path / AGENT_FILE).write_text(json.dumps({"algo": "ppo"}))
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['env_kwargs'\]"):
        load_sb3_hedger(tmp_path, config, "ppo agent")


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize(("kwargs", "spot"), [({"mu": 1e6}, "inf"), ({"sigma": 1e6}, "0.0")])
def test_a_market_that_overflows_float64_is_named_not_turned_into_nan(kwargs, spot) -> None:
    """A drift of 10^6 a year overflowed the spot and sent NaN rewards out of the env."""
    env = VecHedgingEnv(num_envs=4, preset="ShortCall", market_kwargs=kwargs)
    with pytest.raises(ValueError, match=rf"simulated a spot of {spot} \(path 0, step 1\)"):
        env.reset(seed=0)


def test_arena_hedgers_reference_and_unknown_keys_are_checked_when_the_config_loads() -> None:
    """Before any training: a typo in a hedger spec or the reference, or an unknown key of a
    section, is named with the section's allowed keys."""
    from hedgearena.run_config import load_config

    with pytest.raises(ValueError, match=r"arena.hedgers: Value error, unknown hedger 'foo'"):
        load_config(None, ["arena.hedgers=[delta, foo]"])
    with pytest.raises(ValueError, match=r"':best' exists for"):
        load_config(None, ["arena.hedgers=[delta, leland:best]"])
    with pytest.raises(ValueError, match=r"arena.reference 'foo' must be one of the hedgers"):
        load_config(None, ["arena.reference=foo"])
    # the default reference (delta), not among the hedgers
    with pytest.raises(ValueError, match=r"arena\.reference 'delta'") as error:
        load_config(None, ["arena.hedgers=[synthetic_put, cppi]"])
    assert "--set arena.reference=" in str(error.value)
    assert "(got {" not in str(error.value)  # the section's dict is not dumped after it
    for reference in ("leland", "Leland", "ww:best", "agent"):
        load_config(None, [f"arena.reference={reference}"])
    with pytest.raises(ValueError, match=r"allowed keys of arena: \['c', 'frontier', 'hedgers'"):
        load_config(None, ["arena.pathz=1"])


def test_a_setting_given_a_level_too_high_is_pointed_to_where_it_belongs() -> None:
    """``agent.n_timesteps`` and ``env.cost`` are refused (unknown keys of those sections) with
    the key they most likely meant: the algorithm's settings sit under ``agent.hyperparams``
    and the env's fields under ``env.kwargs``; an unknown key elsewhere gets no such line."""
    from hedgearena.run_config import load_config

    with pytest.raises(ValueError, match="invalid run config") as error:
        load_config(None, ["agent.n_timesteps=3000", "env.cost=0.1"])
    message = str(error.value)
    assert "set it as agent.hyperparams.n_timesteps" in message
    assert "set it as env.kwargs.cost" in message
    assert "allowed keys of agent: ['algo'," in message
    with pytest.raises(ValueError, match="allowed keys of arena") as error:
        load_config(None, ["arena.pathz=1"])
    assert "set it as" not in str(error.value)
    config = load_config(None, ["agent.hyperparams.n_timesteps=3000", "env.kwargs.cost=0.1"])
    assert config.agent.hyperparams["n_timesteps"] == 3000
    assert config.env.kwargs["cost"] == 0.1


def test_a_spread_costs_relative_flag_must_be_a_boolean() -> None:
    """'no' is truthy: it was read as relative=True."""
    from hedgearena.envs.frictions import SpreadCost

    with pytest.raises(ValueError, match=r"SpreadCost.relative must be True or False, got 'no'"):
        SpreadCost(1e-3, relative="no")  # type: ignore[arg-type]


def test_deep_hedging_settings_are_read_exactly_and_checked() -> None:
    """Whole-number floats are counts; the objective keeps every digit (it was rounded to 6:
    cvar:0.9999999 became the invalid cvar:1); the learning rate decays; the seed is >= 0 and
    is not the arena's (the trainer's first chunk would be the arena's first block)."""
    from hedgearena.agents.deep_hedging import TrainerConfig
    from hedgearena.run_config import load_config
    from hedgearena.training import check_agent

    config = TrainerConfig(batch_size=32.0, n_train=64.0, n_valid=64.0)  # type: ignore[arg-type]
    assert isinstance(config.batch_size, int)
    assert isinstance(config.n_train, int)
    assert TrainerConfig(objective="entropic:0.0123456789").objective == "entropic:0.0123456789"
    assert TrainerConfig(objective="cvar:0.9999999").objective == "cvar:0.9999999"
    with pytest.raises(ValueError, match=r"final_learning_rate \(0.1\) must be <= learning_rate"):
        TrainerConfig(learning_rate=0.01, final_learning_rate=0.1)
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        TrainerConfig(seed=-1)
    with pytest.raises(ValueError, match=r"the deep hedger's seed equals arena.seed \(2024\)"):
        check_agent(load_config(None, ["seed=2024"]))
    check_agent(load_config(None, ["seed=2024", "arena.seed=7"]))


def test_sb3_training_paths_are_not_the_scoring_or_validation_paths() -> None:
    """An SB3 env seeded s draws numpy's stream [s], the arena's block 0 of seed s ([s, 0]);
    validation uses arena.seed + 1 and the view's calibration arena.seed + 2."""
    from hedgearena.run_config import load_config
    from hedgearena.training import check_agent

    for seed, message in ((2024, r"the SB3 training env's seed equals arena.seed \(2024\)"),
                          (2025, r"seed \(2025\) equals arena.seed \+ 1: .* validation paths"),
                          (2026, r"seed \(2026\) equals arena.seed \+ 2: .* calibration")):
        with pytest.raises(ValueError, match=message):
            check_agent(load_config(None, ["agent.algo=ppo", f"seed={seed}"]))
    check_agent(load_config(None, ["agent.algo=ppo", "seed=2027"]))


def test_evaluate_and_stress_refuse_the_agents_training_seed(tmp_path: Path) -> None:
    """Scoring a saved agent on a seed it trained with (evaluate --arena-seed, stress.seed)."""
    from hedgearena.cli import load_agents
    from hedgearena.run_config import load_config
    from hedgearena.training import evaluate_run

    saved = load_config(None, ["seed=5"])
    run_dir = tmp_path / "run"
    saved.dump(run_dir / "config.yaml")
    with pytest.raises(ValueError, match=r"the deep hedger's seed equals arena.seed \(5\)"):
        evaluate_run(run_dir, load_config(None, ["seed=5", "arena.seed=5"]), progress=False)
    with pytest.raises(ValueError, match=r"the deep hedger's seed equals stress.seed \(5\)"):
        load_agents([run_dir], load_config(None, ["stress.seed=5"]))


def test_evaluate_and_stress_keep_the_agents_own_settings(tmp_path: Path) -> None:
    """evaluate may change arena.* only (it recorded seed 7 for an agent trained with 0);
    stress runs an agent on its own env (--env with other kwargs dropped the agent's book)."""
    from hedgearena.agents.rllib import check_rllib_scoring_seed
    from hedgearena.cli import load_agents
    from hedgearena.run_config import load_config
    from hedgearena.training import evaluate_run

    saved = load_config(None, ["seed=5"])
    run_dir = tmp_path / "run"
    saved.dump(run_dir / "config.yaml")
    with pytest.raises(ValueError, match=r"change only arena.\* .* not seed \(seed: 5 -> 7\)"):
        evaluate_run(run_dir, load_config(None, ["seed=7"]), progress=False)
    with pytest.raises(ValueError, match=r"not env \(env.kwargs.cost: unset -> 0.002\)"):
        evaluate_run(run_dir, load_config(None, ["seed=5", "env.kwargs={cost: 0.002}"]),
                     progress=False)
    with pytest.raises(ValueError, match=r"the stress env is hedgearena/ShortCall-v0 with "
                                         r"\{'cost': 0.002\}: stress it on its own env"):
        load_agents([run_dir], load_config(None, ["seed=5", "env.kwargs={cost: 0.002}"]))
    rllib = load_config(None, ["seed=10", "rllib.num_env_runners=2"])
    with pytest.raises(ValueError, match=r"stress.seed \(12\) is one of the RLlib agent's env "
                                         r"runner seeds \(10..12\)"):
        check_rllib_scoring_seed(rllib, 12, "stress.seed")
    check_rllib_scoring_seed(rllib, 13, "stress.seed")


def test_rllib_runner_seeds_must_not_be_the_arenas_or_the_validations() -> None:
    """Runner k resets with seed + k: seed 2023 with two runners samples 2024 (the arena's
    first block) and 2025 (the validation's paths)."""
    from hedgearena.agents.rllib import check_rllib_seeds
    from hedgearena.run_config import load_config

    with pytest.raises(ValueError, match=r"include \[2024, 2025\], the arena's \(2024\)"):
        check_rllib_seeds(load_config(None, ["seed=2023"]))
    check_rllib_seeds(load_config(None, ["seed=0"]))


def test_rllib_views_calibrate_auto_as_sb3_views_do() -> None:
    """'auto' passed the config and failed inside the env runners (a traceback, rc 1); then it
    was refused, and the shipped RLlib config carried ShortCall-v0's numbers to any env or
    cost. It is calibrated now as an SB3 agent's view is (the same numbers on the same paths),
    and refused on keys other than risk_aversion and pnl_reference."""
    from hedgearena.agents.rllib import check_rllib
    from hedgearena.agents.training import resolve_rllib_view, resolve_view
    from hedgearena.run_config import load_config

    with pytest.raises(ValueError, match=r"rllib.env_kwargs \['action_mode'\]: 'auto' calibrates "
                                         r"risk_aversion and pnl_reference only"):
        load_config(None, ["rllib.env_kwargs={action_mode: auto}"])
    view = ("{action_mode: band, reward_mode: terminal_mean_variance, observe_pnl: true, "
            "risk_aversion: auto, pnl_reference: auto}")
    config = load_config(None, [f"rllib.env_kwargs={view}", f"agent.env_kwargs={view}",
                                "rllib.eval_paths=2000", "agent.eval_paths=2000",
                                "agent.algo=ppo", "env.kwargs.cost=0.002"])
    check_rllib(config)  # the checks before training take auto
    rllib = resolve_rllib_view(config).rllib.env_kwargs
    assert rllib == resolve_view(config).agent.env_kwargs
    assert isinstance(rllib["risk_aversion"], float)
    assert rllib["risk_aversion"] > 0
    assert isinstance(rllib["pnl_reference"], float)
    shortcall_default = resolve_rllib_view(load_config(None, [f"rllib.env_kwargs={view}",
                                                              "rllib.eval_paths=2000"]))
    assert shortcall_default.rllib.env_kwargs["risk_aversion"] != rllib["risk_aversion"]


def test_a_string_that_reads_as_a_number_survives_a_saved_config(tmp_path: Path) -> None:
    """Tune names trials with hex ids such as 312e5148: dumped plain (YAML 1.1 sees no
    number), YAML 1.2 reads them back as 312 x 10^5148 = inf, and the trial's saved config
    no longer loaded ('name: Input should be a valid string (got inf)')."""
    from hedgearena.run_config import load_config

    config = load_config(None, ["name='312e5148'", "env.kwargs.cost=1e-3"])
    config.dump(tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again.name == "312e5148"
    assert again.env.kwargs["cost"] == 0.001


def test_the_deep_hedger_refuses_the_sb3_fields_it_would_ignore() -> None:
    """agent.eval_paths, eval_freq, checkpoint_freq and env_kwargs were silently ignored."""
    from hedgearena.run_config import load_config

    with pytest.raises(ValueError, match=r"agent.eval_paths is for SB3 agents; the deep hedger "
                                         r"does not read it \(use agent.hyperparams.n_valid\)"):
        load_config(None, ["agent.eval_paths=7"])
    with pytest.raises(ValueError, match=r"agent.checkpoint_freq is for SB3 agents"):
        load_config(None, ["agent.checkpoint_freq=5"])
    load_config(None, ["agent.algo=ppo", "agent.eval_paths=7"])  # SB3 reads it


def test_a_run_name_is_one_folder_inside_out() -> None:
    """--name ../../etc wrote a report outside --out; --set name=2024 was refused (a number)."""
    from hedgearena.run_config import load_config

    for name in ("../../etc", "a/b", ".."):
        with pytest.raises(ValueError, match=r"name must be a folder name inside out"):
            load_config(None, [f"name={name}"])
    assert load_config(None, ["name=2024"]).run_name == "2024"


def test_a_run_folder_is_named_by_the_seed_it_trains_with() -> None:
    """``--seed 7 --set agent.hyperparams.seed=5`` trains the deep hedger with seed 5 (its own
    seed wins) but named the folder ``...-seed7``."""
    from hedgearena.run_config import load_config

    assert load_config(None, ["seed=7", "agent.hyperparams.seed=5"]).run_name.endswith("-seed5")
    assert load_config(None, ["seed=7"]).run_name.endswith("-seed7")
    assert load_config(None, ["seed=7", "agent.algo=ppo"]).run_name == "ppo-ShortCall-seed7"


def test_a_bad_value_from_the_command_line_is_not_blamed_on_the_file(tmp_path: Path) -> None:
    """``evaluate RUN --paths 0`` said "invalid run config in 'RUN/config.yaml'": the value
    came from the command line (--paths sets arena.paths), not from the file."""
    from hedgearena.run_config import load_config

    good, bad = tmp_path / "good.yml", tmp_path / "bad.yml"
    good.write_text("arena: {paths: 1000}\n")
    bad.write_text("arena: {paths: 0}\n")
    for overrides, fields in ((["arena.paths=0"], {}), ([], {"arena__paths": 0})):
        with pytest.raises(ValueError, match=r"arena.paths: .* \(got 0\) \[given on the command "
                                             r"line as arena.paths=0 .*not in the file\]"):
            load_config(good, overrides, **fields)
    with pytest.raises(ValueError, match=r"arena.paths: .* \(got 0\)$"):
        load_config(bad)
