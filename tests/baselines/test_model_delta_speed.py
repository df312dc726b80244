"""The model's MV delta's one-pass slopes of the tabulated Heston surface, against torch autograd.

:class:`~hedgearena.baselines.model_delta.ModelDelta` reads the tabulated
:class:`~hedgearena.envs.heston_surface.HestonSurface`'s vol and its slopes in the spot and the
variance in one numpy pass (:meth:`HestonSurface.implied_vol_slopes`, by the chain rule through
:func:`~hedgearena.envs.vol_table.multilinear_slopes` and
:func:`~hedgearena.envs.vol_table.cell_slope`) where it read the vol by numpy and the slopes by
torch autograd. The reference here is autograd, the hedger's former path, still
:func:`~hedgearena.baselines.model_delta.surface_slopes`: on random options, on the cells' edges
(where a piecewise-linear slope jumps and autograd takes the cell on the right, or the last one
at the table's end), at the variance floor and at variances near 0; and the hedger's
whole-episode positions against the former computation written out here
(:func:`former_book_adjustment`) on OptionBook-v0 and ShortCall-v0 under heston, sabr, merton
and gbm. No timing here: the speed is measured side by side outside the tests.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from array_api_compat import array_namespace
from mv_reference import delta_hedged

import hedgearena.baselines.model_delta as md
from hedgearena.baselines.hedger import run_hedger
from hedgearena.baselines.minimum_variance import held_greeks
from hedgearena.baselines.model_delta import (
    VARIANCE_FLOOR,
    ModelDelta,
    jump_covariance,
    merton_minimum_variance_delta,
    model_slopes,
    one_pass_slopes,
    smile_adjustment,
    surface_slopes,
)
from hedgearena.envs.black_scholes import black_scholes_price
from hedgearena.envs.config import make_config
from hedgearena.envs.heston_surface import HestonSurface
from hedgearena.envs.vector_env import VecHedgingEnv
from hedgearena.envs.vol_surface import SABRSurface, SmileSurface, level_is_variance
from hedgearena.envs.vol_table import (
    TAU_POWER,
    cell,
    cell_slope,
    multilinear,
    multilinear_slopes,
    safe_power,
)

SURFACE = HestonSurface(kappa=2.0, theta=0.04, xi=0.5, rho=-0.7)  # OptionBook-v0's market
TINY = float(np.finfo(np.float64).tiny)


def assert_close(got: Any, want: Any, rtol: float = 1e-12, scale: Any = None) -> None:
    """``|got - want| <= rtol (|want| + scale)``: rounding of sums whose terms reach ``scale``
    (by default the largest ``|want|``: a slope near 0 is a difference of larger ones)."""
    got, want = np.asarray(got), np.asarray(want)
    scale = np.abs(want).max(initial=0.0) if scale is None else scale
    bound = rtol * (np.abs(want) + scale)
    worst = np.argmax(np.abs(got - want) - bound) if got.size else 0
    assert np.all(np.abs(got - want) <= bound), (
        f"{got.reshape(-1)[worst]!r} against {want.reshape(-1)[worst]!r} at {worst}")


# ---- the interpolation's slopes: multilinear_slopes and cell_slope against autograd ----------

def autograd_interpolation(table: np.ndarray, xs: list[np.ndarray], spans: list[float]
                           ) -> tuple[np.ndarray, list[np.ndarray]]:
    """:func:`multilinear` of ``table`` at cell coordinates ``xs`` (one per axis, on ``[0,
    span]``) and its gradient in each coordinate, by torch autograd."""
    tensors = [torch.tensor(x, requires_grad=True) for x in xs]
    xp = array_namespace(tensors[0])
    cells = [cell(xp, t, span, n) for t, span, n in zip(tensors, spans, table.shape, strict=True)]
    value = multilinear(xp, torch.from_numpy(table.reshape(-1).copy()), cells, table.shape)
    grads = torch.autograd.grad(value.sum(), tensors)
    return value.detach().numpy(), [g.numpy() for g in grads]


def coordinates(rng: np.random.Generator, span: float, nodes: int) -> np.ndarray:
    """100 coordinates: 60 random on ``[0, span]``, 36 on nodes, both ends, 2 beyond them."""
    on_nodes = np.arange(nodes) * (span / (nodes - 1))
    return rng.permutation(np.concatenate([
        rng.uniform(0.0, span, 60), rng.choice(on_nodes, 36), [0.0, span],
        [-0.5 * span, 1.5 * span]]))


@pytest.mark.parametrize("shape", [(7,), (5, 9), (4, 6, 8)])
def test_multilinear_slopes_are_autograds_on_random_points_nodes_and_ends(shape):
    # The interpolation is linear in each coordinate inside a cell: its slope is the faces'
    # difference over the cell's width, what autograd gives (the cell on the right on a node,
    # the last cell at the table's end, 0 where the clip holds a coordinate beyond it).
    rng = np.random.default_rng(len(shape))
    table = rng.normal(size=shape)
    spans = [1.0 + a for a in range(len(shape))]
    xs = [coordinates(rng, span, m) for span, m in zip(spans, shape, strict=True)]
    want_value, want = autograd_interpolation(table, xs, spans)
    cells = [cell(np, x, span, m) for x, span, m in zip(xs, spans, shape, strict=True)]
    value, slopes = multilinear_slopes(np, table.reshape(-1), cells, shape)
    np.testing.assert_array_equal(value, multilinear(np, table.reshape(-1), cells, shape))
    assert_close(value, want_value)
    assert any((offset == 0.0).any() for _, offset in cells)  # nodes were hit exactly
    for slope, x, span, m, grad in zip(slopes, xs, spans, shape, want, strict=True):
        assert_close(slope * cell_slope(np, x, span, m), grad)
    last_first = multilinear_slopes(np, table.reshape(-1), cells, shape,
                                    axes=(-1, *range(len(shape) - 1)))[1]
    for got, full in zip(last_first, [slopes[-1], *slopes[:-1]], strict=True):
        np.testing.assert_array_equal(got, full)


def test_cell_slope_is_autograds_of_the_cells_offset_ends_included():
    x = np.array([-1.0, 0.0, 0.3, 0.5, 1.0, 1.0 + 1e-15, 2.0])
    tensor = torch.tensor(x, requires_grad=True)
    _, offset = cell(array_namespace(tensor), tensor, 1.0, 5)
    (grad,) = torch.autograd.grad(offset.sum(), (tensor,))
    np.testing.assert_array_equal(cell_slope(np, x, 1.0, 5), grad.numpy())
    np.testing.assert_array_equal(cell_slope(np, x, 1.0, 5), [0, 4, 4, 4, 4, 0, 0])


# ---- Heston's one pass against autograd ------------------------------------------------------

def random_options(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """Spots, strikes (to 7 standard deviations: the table's flat wings), expiries (to 2.5
    years: beyond its 2), variances log-uniform from 1e-9 to 1.5 (beyond its 1)."""
    spot = rng.uniform(60.0, 160.0, n)
    strike = spot * np.exp(rng.normal(0.0, 0.35, n))
    tau = rng.uniform(0.0, 1.0, n) ** 2 * 2.5
    level = np.exp(rng.uniform(math.log(1e-9), math.log(1.5), n))
    return spot, strike, tau, level


def edge_options() -> tuple[np.ndarray, ...]:
    """Options on the cells' edges and the table's ends: expiries on ``tau**(1/4)`` nodes, 0
    and ``max_tau``; variances on ``v**(1/4)`` nodes, 0, tiny, negative, ``max_vol**2``; ``z =
    0`` (at the money, no carry) on the ``z`` axis' middle node."""
    grid, n = SURFACE.grid, 161
    j = np.arange(1, n - 1, 7)
    tau_nodes = (grid.max_tau**TAU_POWER * j / (n - 1)) ** (1.0 / TAU_POWER)
    v_nodes = (math.sqrt(grid.max_vol) * j / (n - 1)) ** 4
    taus = np.concatenate([tau_nodes, np.full(v_nodes.size, 0.3), [0.0, 0.0, grid.max_tau,
                                                                    0.3, 0.3, 0.3, 0.3]])
    levels = np.concatenate([np.full(tau_nodes.size, 0.04), v_nodes, [0.04, 0.0, 0.04, 0.0,
                                                                       TINY, -0.01, 1.0]])
    spot = np.full(taus.size, 100.0)
    return spot, spot.copy(), taus, levels


def autograd_slopes(options: tuple[np.ndarray, ...], rate: float, dividend: float) -> Any:
    spot, strike, tau, level = options
    return surface_slopes(SURFACE, spot, strike, tau, level, spot, rate, dividend)


@pytest.mark.parametrize(("rate", "dividend"), [(0.0, 0.0), (0.03, 0.01)])
def test_heston_one_pass_is_autograds_on_random_and_edge_options(rate, dividend):
    rng = np.random.default_rng(7)
    randoms, edges = random_options(rng, 3000), edge_options()
    options = tuple(np.concatenate(pair) for pair in zip(randoms, edges, strict=True))
    spot, strike, tau, level = options
    vol, d_spot, d_level = SURFACE.implied_vol_slopes(spot, strike, tau, level, spot, rate,
                                                      dividend)
    np.testing.assert_array_equal(vol, SURFACE.implied_vol(spot, strike, tau, level, spot,
                                                           rate, dividend))
    want = autograd_slopes(options, rate, dividend)
    assert_close(d_spot, want.spot)
    # in v, near v = 0 two terms of the size of v**(-3/4) (the table's slope in v**(1/4) and
    # the spread's) cancel: their rounding, not the slope, sets the scale there
    assert_close(d_level, want.level, scale=np.abs(want.level).max() + np.maximum(level, TINY)
                 ** -0.75)
    moderate = level >= VARIANCE_FLOOR  # where the hedger reads the slope in v
    assert_close(d_level[moderate], want.level[moderate])
    # the edges were hit: expiries and variances exactly on nodes (and z = 0 without carry)
    _, _, e_tau, e_level = edges
    grid, n = SURFACE.grid, SURFACE.table().shape[0]
    tau_offset = cell(np, safe_power(np, np.clip(e_tau, 0.0, grid.max_tau), TAU_POWER),
                      grid.max_tau**TAU_POWER, n)[1]
    v_offset = cell(np, safe_power(np, np.maximum(e_level, 0.0), 0.25),
                    math.sqrt(grid.max_vol), n)[1]
    assert (tau_offset == 0.0).sum() >= 10
    assert (v_offset == 0.0).sum() >= 10
    at_expiry = e_tau == 0.0
    np.testing.assert_array_equal(d_spot[-e_tau.size:][at_expiry], 0.0)
    np.testing.assert_array_equal(d_level[-e_tau.size:][e_level < 0.0], 0.0)


def test_heston_one_pass_keeps_the_inputs_shape_and_scalars():
    vol, d_spot, d_level = SURFACE.implied_vol_slopes(100.0, np.array([[90.0], [110.0]]),
                                                      np.array([0.1, 0.5]), 0.04, 100.0, 0.0,
                                                      0.0)
    assert vol.shape == d_spot.shape == d_level.shape == (2, 2)
    want = surface_slopes(SURFACE, *np.broadcast_arrays(100.0, np.array([[90.0], [110.0]]),
                                                        np.array([0.1, 0.5]), 0.04, 100.0),
                          0.0, 0.0)
    assert_close(d_spot, want.spot)
    assert_close(d_level, want.level)
    empty = SURFACE.implied_vol_slopes(*(np.zeros(0),) * 5, 0.0, 0.0)
    assert all(x.shape == (0,) for x in empty)


def former_model_slopes(surface: Any, spot: Any, strike: Any, tau: Any, level: Any,
                        anchor: Any, rate: float, dividend: float) -> Any:
    """The former model slopes: autograd, the level's at ``max(v, VARIANCE_FLOOR)``."""
    slopes = surface_slopes(surface, spot, strike, tau, level, anchor, rate, dividend)
    if level_is_variance(surface):
        low = np.flatnonzero(np.asarray(level) < VARIANCE_FLOOR)
        if low.size:
            slopes.level[low] = surface_slopes(
                surface, spot[low], strike[low], tau[low], np.full(low.size, VARIANCE_FLOOR),
                anchor[low], rate, dividend).level
    return slopes


def test_model_slopes_take_the_floor_on_the_one_pass_as_autograd_did():
    levels = np.array([0.0, 1e-300, 1e-7, 3.999e-4, VARIANCE_FLOOR, 4.001e-4, 0.04, -0.01])
    spot = np.full(levels.size, 100.0)
    strike = np.array([100.0, 95.0, 105.0, 100.0, 90.0, 110.0, 100.0, 100.0])
    tau = np.full(levels.size, 20 / 252)
    got = model_slopes(SURFACE, spot, strike, tau, levels, spot, 0.01, 0.0)
    want = former_model_slopes(SURFACE, spot, strike, tau, levels, spot, 0.01, 0.0)
    assert_close(got.spot, want.spot)
    assert_close(got.level, want.level)
    at_floor = model_slopes(SURFACE, spot, strike, tau, np.full(levels.size, VARIANCE_FLOOR),
                            spot, 0.01, 0.0).level
    below = levels < VARIANCE_FLOOR
    np.testing.assert_array_equal(got.level[below], at_floor[below])


class ScaledHeston(HestonSurface):
    """Heston's vols times 1.1: a subclass that overrides ``implied_vol`` alone."""

    def implied_vol(self, *args: Any) -> Any:
        return 1.1 * super().implied_vol(*args)


def test_a_subclass_that_overrides_implied_vol_alone_is_differentiated_by_autograd():
    surface = ScaledHeston(kappa=2.0, theta=0.04, xi=0.5, rho=-0.7)
    assert one_pass_slopes(surface) is None
    assert one_pass_slopes(SURFACE) is not None
    assert one_pass_slopes(SABRSurface()) is None
    options = random_options(np.random.default_rng(3), 50)
    spot, strike, tau, level = options
    got = model_slopes(surface, spot, strike, tau, level, spot, 0.0, 0.0)
    base = model_slopes(SURFACE, spot, strike, tau, level, spot, 0.0, 0.0)
    assert_close(got.spot, 1.1 * base.spot)
    assert_close(got.level, 1.1 * base.level)


# ---- the hedger: whole episodes against the former computation --------------------------------

def former_book_adjustment(hedger: ModelDelta, state: Any) -> tuple[np.ndarray, np.ndarray]:
    """The book adjustment as the hedger computed it before the one pass, and its scale.

    The held options' Black-Scholes greeks at the reader's vols (:func:`held_greeks`), the
    slopes by autograd (:func:`former_model_slopes`), Merton's jump hedge of the marks. The
    scale is ``|book delta| + sum_i |q_i adjustment_i|`` per path: the size of the terms whose
    sum is the position.
    """
    reader, law, market = hedger._reader, hedger._jumps, hedger.env.batch.market
    held = held_greeks(reader, state, with_price=law is not None)
    slots = held.slots
    level = market.vol_state[slots.path, np.asarray(state["step"]).take(slots.path)]
    anchor = market.spot[slots.path, 0]
    slopes = former_model_slopes(market.surface, held.spot, slots.strike, slots.tau, level,
                                 anchor, market.rate, market.dividend)
    adjustment = smile_adjustment(held.vega, slopes, hedger._covariance.ratio(held.spot))
    if law is not None:

        def mark(spot: np.ndarray) -> np.ndarray:
            vol = market.surface.implied_vol(spot, slots.strike, slots.tau, level, anchor,
                                             market.rate, market.dividend)
            return np.asarray(black_scholes_price(spot, slots.strike, slots.tau, vol,
                                                  market.rate, market.dividend, slots.is_call))
        covariance = jump_covariance(mark, np.asarray(held.price), held.spot, law)
        adjustment = merton_minimum_variance_delta(held.delta + adjustment, covariance,
                                                   held.spot, law) - held.delta
    n = len(state["spot"])
    terms = slots.held * adjustment
    scale = np.abs(state["book_delta"]) + np.bincount(slots.path, np.abs(terms), minlength=n)
    return np.bincount(slots.path, weights=terms, minlength=n), scale


class FormerModelDelta(ModelDelta):
    """:class:`ModelDelta` with the former book adjustment; keeps each decision's scale."""

    def __init__(self) -> None:
        super().__init__()
        self.scales: list[np.ndarray] = []

    def book_adjustment(self, state: Any) -> np.ndarray:
        adjustment, scale = former_book_adjustment(self, state)
        self.scales.append(scale)
        return adjustment


STICKY_STRIKE = {"market_kwargs": {"surface": SmileSurface(skew=-0.2, sticky="strike")}}
"""GBM on a sticky-strike smile: its vol reads the episode's anchor spot."""


@pytest.mark.parametrize(("preset", "keywords", "n_paths", "bitwise"), [
    ("OptionBook", {}, 300, False),
    ("ShortCall", {"market": "heston"}, 200, False),
    ("ShortCall", {"market": "sabr"}, 200, True),
    ("ShortCall", {"market": "merton"}, 100, True),
    ("OptionBook", {"market": "merton"}, 40, True),  # calls and puts: the jumps reprice both
    ("ShortCall", {"market": "gbm"}, 200, True),
    ("ShortCall", STICKY_STRIKE, 100, True),
])
def test_whole_episodes_positions_are_the_former_computations(preset, keywords, n_paths,
                                                               bitwise):
    # Where the arithmetic is unchanged (the surfaces differentiated by autograd) the
    # positions are the former ones bit for bit; on Heston's tabulated surface they are within
    # 1e-12 of the size of the terms they sum (rounding: the one pass and autograd add the
    # table's differences in another order).
    config = make_config(preset, **keywords)
    env = VecHedgingEnv(num_envs=n_paths, config=config)
    former = FormerModelDelta()
    want = run_hedger(env, former, seed=4).hedge
    got = run_hedger(env, ModelDelta(), seed=4).hedge
    if bitwise:
        np.testing.assert_array_equal(got, want)
    else:
        assert_close(got, want, scale=np.stack(former.scales))


def test_on_heston_the_hedger_neither_runs_autograd_nor_reads_the_vols_twice(monkeypatch):
    env = VecHedgingEnv(num_envs=40, preset="OptionBook")
    env.reset(seed=1)
    delta_hedged(env, 10)  # options held, some arrived since the start
    hedger = ModelDelta()
    hedger.reset(env)
    want = FormerModelDelta()
    want.reset(env)
    calls = {"implied_vol": 0}
    implied_vol = HestonSurface.implied_vol

    def counted(self: HestonSurface, *args: Any) -> Any:
        calls["implied_vol"] += 1
        return implied_vol(self, *args)

    def refused(*args: Any) -> Any:
        raise AssertionError("autograd ran on the tabulated Heston surface")

    monkeypatch.setattr(HestonSurface, "implied_vol", counted)
    monkeypatch.setattr(md, "surface_slopes", refused)
    got = hedger.positions(env.state, np.zeros((40, 0), np.float32))
    assert calls["implied_vol"] == 0  # the vols came with their slopes
    monkeypatch.undo()
    expected = want.positions(env.state, np.zeros((40, 0), np.float32))
    assert_close(got, expected, scale=want.scales[-1][:, None])
