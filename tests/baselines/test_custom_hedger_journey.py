"""A quant's own hedger and own book through the documented protocol, the arena and the CLI.

The first tests pin the errors a hedger's bad positions or bad arguments get (each failed
before: accepted silently, or an error that named neither the hedger nor what is allowed);
the others pin what a user of the protocol relies on: common random numbers whatever the
order of the hedgers and the blocks, reproducibility, the state's keys and units on a book of
one's own, and the Python API agreeing with ``train.py benchmark``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hedgearena.baselines import arena
from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.benchmark import BenchmarkSettings, benchmark
from hedgearena.baselines.delta import BlackScholesDelta, NoHedge
from hedgearena.baselines.hedger import Hedger
from hedgearena.envs.black_scholes import black_scholes_greeks
from hedgearena.envs.config import make_config
from hedgearena.envs.vector_env import VecHedgingEnv


class Returns(Hedger):
    """Returns ``make(n)`` at every decision (``n`` paths)."""

    uses_observations = False

    def __init__(self, name: str, make: Any) -> None:
        self.name = name
        self.make = make

    def positions(self, state, obs):
        return self.make(len(state["spot"]))


class TorchLike:
    """An array-like that numpy cannot read, like a torch tensor that requires grad."""

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise RuntimeError("Can't call numpy() on Tensor that requires grad.")


# ------------------------------------------------------------------ bad positions are named
def test_positions_of_none_are_named_as_none() -> None:
    hedger = Returns("forgot return", lambda n: None)
    with pytest.raises(ValueError, match=r"forgot return: positions must be numbers \(units\), "
                                         r"an array of shape \(8, 1\); got None at decision 0"):
        run_arena(make_config("ShortCall"), [hedger], n_paths=8, progress=False)


@pytest.mark.parametrize(
    ("make", "got"),
    [
        (lambda n: np.ones((n, 1), dtype=bool), "ndarray of dtype bool"),
        (lambda n: np.ones((n, 1), dtype=complex), "ndarray of dtype complex128"),
        (lambda n: [["1.5"]] * n, "list of dtype <U3"),
        (lambda n: np.array([[None]] * n, dtype=object), "ndarray of dtype object"),
        (lambda n: TorchLike(), "TorchLike at decision 0, which numpy cannot read"),
    ],
    ids=["bool", "complex", "numeric strings", "objects", "unreadable"],
)
def test_positions_that_are_not_real_numbers_are_refused(make: Any, got: str) -> None:
    hedger = Returns("mine", make)
    with pytest.raises(ValueError, match=rf"mine: positions must be numbers \(units\), an array "
                                         rf"of shape \(8, 1\); got {got}"):
        run_arena(make_config("ShortCall"), [hedger], n_paths=8, progress=False)


def test_non_finite_positions_name_the_decision_and_the_path() -> None:
    class NanLater(Hedger):
        name = "nan later"
        uses_observations = False

        def positions(self, state, obs):
            out = -np.asarray(state["book_delta"])[:, None]
            return np.where((np.arange(len(out)) == 3)[:, None] & (state["step"][0] == 2),
                            np.nan, out)

    with pytest.raises(ValueError, match=r"nan later: positions must be finite \(units\); got 1 "
                                         r"non-finite value\(s\) at decision 2 on 1 path\(s\), "
                                         r"the first path 3: \[nan\]"):
        run_arena(make_config("ShortCall"), [NanLater()], n_paths=8, progress=False)


def test_real_numbers_of_any_kind_are_taken_alike() -> None:
    """float32 arrays, lists of floats and int arrays are positions like float64 arrays."""

    class AsFloat64(Hedger):
        uses_observations = False

        def __init__(self, name: str, convert: Any) -> None:
            self.name, self.convert = name, convert

        def positions(self, state, obs):
            return self.convert(np.round(-np.asarray(state["book_delta"]))[:, None])

    hedgers = [AsFloat64("float64", lambda x: x), AsFloat64("float32", np.float32),
               AsFloat64("list", lambda x: x.tolist()), AsFloat64("int", lambda x: x.astype(int))]
    result = run_arena(make_config("ShortCall"), hedgers, n_paths=64, seed=1, progress=False)
    for hedger in hedgers[1:]:
        np.testing.assert_array_equal(result.cost(hedger.name), result.cost("float64"))


# --------------------------------------------------------------- bad arguments are named
def test_a_hedger_class_instead_of_an_instance_is_named() -> None:
    with pytest.raises(ValueError, match=r"got the class BlackScholesDelta: pass an instance, "
                                         r"BlackScholesDelta\(...\)"):
        run_arena(make_config("ShortCall"), [BlackScholesDelta], n_paths=8,  # type: ignore[list-item]
                  progress=False)


def test_a_duck_typed_hedger_without_a_name_is_named() -> None:
    class Duck:
        def reset(self, env: Any) -> None:
            pass

        def positions(self, state, obs):
            return -state["book_delta"][:, None]

    with pytest.raises(ValueError, match=r"a hedger's name must be a non-empty string, got None "
                                         r"\(Duck: set its name attribute\)"):
        run_arena(make_config("ShortCall"), [Duck()], n_paths=8, progress=False)  # type: ignore[list-item]


def test_repeated_names_are_named() -> None:
    class Mine(Hedger):  # two parameters, the default name "hedger" left on both
        uses_observations = False

        def __init__(self, scale: float) -> None:
            self.scale = scale

        def positions(self, state, obs):
            return -self.scale * state["book_delta"][:, None]

    with pytest.raises(ValueError, match=r"\['hedger'\] more than once \(give each hedger its "
                                         r"own name attribute\)"):
        run_arena(make_config("ShortCall"), [Mine(0.5), NoHedge(), Mine(1.0)], n_paths=8,
                  progress=False)


# ------------------------------------------------------- the journeys that hold (pinned)
class FixedVolDelta(Hedger):
    """The delta of the book's one call at a fixed vol, from the state and the batch's strike."""

    uses_observations = False

    def __init__(self, sigma: float, name: str = "fixed vol delta") -> None:
        self.sigma, self.name = sigma, name

    def reset(self, env: VecHedgingEnv) -> None:
        self.strike = env.batch.instruments.strike[:, 0]
        self.quantity = env.batch.instruments.quantity[:, 0]
        self.action_dim = env.config.action_dim

    def positions(self, state, obs):
        greeks = black_scholes_greeks(state["spot"], self.strike, state["tau"], self.sigma,
                                      state["rate"], state["dividend"], select=("delta",))
        out = np.zeros((len(state["spot"]), self.action_dim))
        out[:, 0] = -self.quantity * greeks.delta
        return out


class ObsDelta(Hedger):
    """Reads the observations (checks their shape) and returns a list of minus the book delta."""

    name = "obs delta"

    def reset(self, env: VecHedgingEnv) -> None:
        self.action_dim = env.config.action_dim

    def positions(self, state, obs):
        assert obs.dtype == np.float32
        assert obs.shape[0] == len(state["spot"])
        assert obs.shape[1] > 0
        return [[-d] + [0.0] * (self.action_dim - 1) for d in state["book_delta"].tolist()]


class Sticky(Hedger):
    """Per-path memory: moves to minus the book delta only when it is 5 units away (float32)."""

    name = "sticky"
    uses_observations = False

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def reset(self, env: VecHedgingEnv) -> None:
        self.held = np.zeros((env.num_envs, env.config.action_dim))
        self.sizes.append(env.num_envs)

    def positions(self, state, obs):
        target = -state["book_delta"]
        self.held[:, 0] = np.where(np.abs(target - self.held[:, 0]) > 5, target, self.held[:, 0])
        return self.held.astype(np.float32)


@pytest.mark.parametrize(
    ("preset", "overrides"),
    [("ShortCall", {}), ("OptionBook", {}), ("OptionBook", {"hedge_option": True}),
     ("PortfolioInsurance", {}), ("HistoricalReplay", {})],
    ids=["short-call", "option-book", "option-book-hedge-option", "insurance", "replay"],
)
def test_common_random_numbers_whatever_the_order_and_the_company(
    preset: str, overrides: dict[str, Any]
) -> None:
    config = make_config(preset, **overrides)
    alone = run_arena(config, [BlackScholesDelta()], n_paths=48, seed=4, progress=False)
    one = run_arena(config, [ObsDelta(), Sticky(), NoHedge(), BlackScholesDelta()], n_paths=48,
                    seed=4, progress=False)
    other = run_arena(config, [BlackScholesDelta(), NoHedge(), Sticky(), ObsDelta()], n_paths=48,
                      seed=4, progress=False)
    np.testing.assert_array_equal(alone.cost("delta"), one.cost("delta"))
    np.testing.assert_array_equal(one.spot, other.spot)
    for name in one.records:
        np.testing.assert_array_equal(one.cost(name), other.cost(name))
        np.testing.assert_array_equal(one.records[name].hedge, other.records[name].hedge)
    np.testing.assert_allclose(one.cost("obs delta"), one.cost("delta"), rtol=0, atol=1e-9)


def test_a_fixed_vol_delta_of_my_own_is_the_built_in_delta_at_the_market_vol() -> None:
    result = run_arena(make_config("ShortCall"), [FixedVolDelta(0.2), BlackScholesDelta(),
                                                  FixedVolDelta(0.3, "at 30%")],
                       n_paths=64, seed=2, progress=False)
    np.testing.assert_allclose(result.cost("fixed vol delta"), result.cost("delta"), atol=1e-9)
    assert not np.allclose(result.cost("at 30%"), result.cost("delta"))


def test_blocks_keep_each_path_and_reset_a_stateful_hedger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(arena, "PATH_BLOCK", 32)
    sticky = Sticky()
    big = run_arena(make_config("ShortCall"), [sticky, BlackScholesDelta()], n_paths=80, seed=9,
                    progress=False)
    assert sticky.sizes == [32, 32, 16]  # reset per block, memory sized from env.num_envs
    small = run_arena(make_config("ShortCall"), [BlackScholesDelta(), Sticky()], n_paths=32,
                      seed=9, progress=False)
    again = run_arena(make_config("ShortCall"), [BlackScholesDelta(), Sticky()], n_paths=80,
                      seed=9, progress=False)
    for name in ("sticky", "delta"):
        np.testing.assert_array_equal(big.cost(name)[:32], small.cost(name))  # block 0 alike
        np.testing.assert_array_equal(big.cost(name), again.cost(name))  # the seed repeats
        np.testing.assert_array_equal(big.records[name].trade, again.records[name].trade)


BOOK = {
    "options": [
        {"moneyness": 1.0, "expiry_steps": 20, "contracts": -2, "is_call": True},
        {"moneyness": 0.95, "expiry_steps": 40, "contracts": 1, "is_call": False},
        {"moneyness": 1.05, "expiry_steps": 30, "contracts": -1, "multiplier": 50},
        {"moneyness": 0.9, "expiry_steps": 10, "contracts": 3, "is_call": False},
    ],
    "stock": 50.0,
    "client_flow": {"rate": 100.0, "buy_probability": 0.7, "expiry_steps": [10, 20],
                    "max_trades": 40},
}


def test_my_book_state_has_the_documented_keys_and_units() -> None:
    config = make_config("ShortCall", book=BOOK, n_steps=20, cost={"proportional": 0.002},
                         market_kwargs={"sigma": 0.25, "rate": 0.03, "dividend": 0.01})
    env = VecHedgingEnv(num_envs=4, config=config)
    env.reset(seed=0)
    for _ in range(5):
        env.step_targets(np.zeros((4, 1)))
    state, books = env.state, env.batch.instruments
    assert set(state) == {
        "step", "spot", "tau", "book_delta", "book_gamma", "book_vega", "book_theta",
        "implied_vol", "realised_vol", "option_delta", "option_gamma", "option_vega",
        "liquidity", "hedge", "option_position", "cash", "model_hedge", "model_option",
        "cost_linear", "rate", "dividend", "dt"}
    t = 5
    np.testing.assert_allclose(state["tau"], (20 - t) * state["dt"])  # years left in the episode
    np.testing.assert_allclose(state["cost_linear"], 0.002 * state["spot"])  # currency per unit
    for i in range(4):
        live = (books.quantity[i] != 0) & (books.start[i] <= t) & (books.expiry[i] > t)
        greeks = black_scholes_greeks(state["spot"][i], books.strike[i][live],
                                      (books.expiry[i][live] - t) * state["dt"], 0.25, 0.03, 0.01,
                                      books.is_call[i][live])
        quantity = books.quantity[i][live]
        assert state["book_delta"][i] == pytest.approx((quantity * greeks.delta).sum() + 50.0)
        assert state["book_gamma"][i] == pytest.approx((quantity * greeks.gamma).sum())
        assert state["book_vega"][i] == pytest.approx((quantity * greeks.vega).sum())
        assert state["book_theta"][i] == pytest.approx((quantity * greeks.theta).sum())


def test_my_book_attribution_adds_up_to_each_hedgers_pnl() -> None:
    config = make_config("ShortCall", book=BOOK, n_steps=20, cost={"proportional": 0.002},
                         market_kwargs={"sigma": 0.25, "rate": 0.03, "dividend": 0.01})
    class HalfDelta(Hedger):
        name = "half delta"

        def positions(self, state, obs):
            return -0.5 * state["book_delta"][:, None]

    result = run_arena(config, [NoHedge(), BlackScholesDelta(), HalfDelta()], n_paths=64, seed=3,
                       progress=False)
    for name, terms in result.attribution.items():
        np.testing.assert_allclose(sum(terms.values()), result.totals(name)["terminal_pnl"],
                                   rtol=0, atol=1e-8)
    book_terms = ("gamma", "theta", "vega", "spread_income")  # the book's, whoever hedges
    for term in book_terms:
        np.testing.assert_array_equal(result.attribution["delta"][term],
                                      result.attribution["half delta"][term])


def test_a_hedger_failing_mid_run_leaves_the_previous_report_whole(tmp_path: Path) -> None:
    class FailsAtFive(Hedger):
        name = "mine"
        uses_observations = False

        def reset(self, env: VecHedgingEnv) -> None:
            self.decisions = 0

        def positions(self, state, obs):
            self.decisions += 1
            if self.decisions == 5:
                raise RuntimeError("my model crashed")
            return -state["book_delta"][:, None]

    settings = BenchmarkSettings(n_paths=64, frontier=False, progress=False, n_boot=10)
    out = tmp_path / "report"
    with pytest.raises(RuntimeError, match="my model crashed"):
        benchmark(make_config("ShortCall"), ["delta", FailsAtFive()], settings, out_dir=out)
    assert not out.exists()
    benchmark(make_config("ShortCall"), ["delta", Returns("mine", lambda n: np.zeros((n, 1)))],
              settings, out_dir=out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    with pytest.raises(RuntimeError, match="my model crashed"):
        benchmark(make_config("ShortCall"), ["delta", FailsAtFive()], settings, out_dir=out)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_the_python_api_scores_the_built_ins_as_the_cli_does(tmp_path: Path) -> None:
    from hedgearena.cli import main

    main(["benchmark", "--env", "hedgearena/ShortCall-v0", "--paths", "200", "--seed", "11",
          "--hedgers", "no_hedge", "delta", "delta:5", "leland", "--set", "arena.frontier=false",
          "--set", "arena.n_boot=20", "--out", str(tmp_path), "--name", "cli", "--no-progress"])
    cli = pd.read_csv(tmp_path / "cli" / "scores.csv", index_col=0)
    mine = Returns("mine", lambda n: np.zeros((n, 1)))
    api = benchmark(make_config("ShortCall"), ["no_hedge", "delta", "delta:5", "leland", mine],
                    BenchmarkSettings(n_paths=200, seed=11, frontier=False, progress=False,
                                      n_boot=20)).table
    assert list(cli.index) == ["no hedge", "delta", "delta every 5", "Leland"]
    columns = [c for c in cli.columns if c in api.columns]
    pd.testing.assert_frame_equal(cli[columns].astype(float),
                                  api.loc[cli.index, columns].astype(float), check_exact=False,
                                  rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(api.loc["mine", "mean_cost"], api.loc["no hedge", "mean_cost"])


def test_the_benchmark_names_a_hedger_class_or_a_duck_typed_hedger_like_the_arena() -> None:
    """``benchmark`` sent anything that is not a ``Hedger`` instance to the spec parser:
    ``AttributeError: 'Duck' object has no attribute 'partition'``. Objects now go to the
    arena's checks, which name what is wrong; a duck-typed hedger with a name runs."""
    from hedgearena.baselines.benchmark import BenchmarkSettings, benchmark
    from hedgearena.baselines.delta import BlackScholesDelta
    from hedgearena.envs.config import make_config

    config = make_config("ShortCall")
    settings = BenchmarkSettings(n_paths=64, frontier=False, progress=False)
    with pytest.raises(ValueError, match=r"instance, BlackScholesDelta\(\.\.\.\)"):
        benchmark(config, ["delta", BlackScholesDelta], settings)  # type: ignore[list-item]

    class Duck:
        name = "duck"
        uses_observations = False

        def reset(self, env: Any) -> None:
            self.n = env.num_envs

        def positions(self, state: Any, obs: Any) -> np.ndarray:
            return np.zeros((self.n, 1))

    report = benchmark(config, ["delta", Duck()], settings)  # type: ignore[list-item]
    assert "duck" in report.scores


def test_step_targets_refuses_what_is_not_a_real_number() -> None:
    """The vector env's ``step_targets`` (documented for direct use) took booleans and numeric
    strings as positions, as ``run_hedger`` did before its check."""
    env = VecHedgingEnv(num_envs=2, preset="ShortCall")
    env.reset(seed=0)
    for bad in (np.array([[True], [False]]), np.array([["1.5"], ["2"]]),
                np.array([[1 + 2j], [0j]])):
        with pytest.raises(ValueError, match="targets must be real numbers"):
            env.step_targets(bad)
    env.step_targets([[1], [2]])  # ints and lists are numbers
