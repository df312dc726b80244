"""The single-path Gymnasium environment: a thin view of the batched core on one path."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from hedgearena.envs.config import EnvConfig, make_config
from hedgearena.envs.core import (
    PNL_COMPONENTS,
    SCALAR_OPS,
    Episode,
    HedgeState,
    StepResult,
    reward,
    target_position,
    transition,
)
from hedgearena.envs.episode import EXOGENOUS_FEATURES, OPTION_FEATURES, EpisodeBatch, feature_names
from hedgearena.envs.source import EpisodeSource

INFO_KEYS = (
    "pnl",
    *PNL_COMPONENTS,
    "trade",
    "option_trade",
    "hedge",
    "option_position",
    "cash",
    "spot",
    "model_hedge",
    "wealth",
    "reward_scale",
    "step",
)
"""Keys of ``info`` on every step (the last step adds ``episode``, the episode's totals)."""
TOTAL_KEYS = (*PNL_COMPONENTS, "pnl", "turnover", "trades")
"""The sums over an episode in ``info["episode"]`` (with ``terminal_pnl``, ``initial_premium``)."""


def default_reward_scale(config: EnvConfig) -> float:
    """Premium of an at-the-money option on the notional: ``0.4 sigma sqrt(T) S0 notional``."""
    assert config.n_steps is not None
    probe = config.market.simulate(1, 1, config.dt, np.random.default_rng(0))
    sigma = float(np.sqrt(probe.variance[0, 0]))
    spot0 = float(probe.spot[0, 0])
    return (
        0.4
        * max(sigma, 0.01)
        * math.sqrt(config.n_steps * config.dt)
        * spot0
        * config.book.notional
    )


def observation_space(config: EnvConfig) -> gym.spaces.Box:
    """The float32 observation Box (unbounded; entries are documented in the env's manual)."""
    dim = len(feature_names(config.hedge_option is not None))
    return gym.spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)


def action_space(config: EnvConfig) -> gym.spaces.Box:
    """The float32 action Box ``[-1, 1]^d``, d = 1 or 2 (with a hedging option)."""
    return gym.spaces.Box(-1.0, 1.0, shape=(config.action_dim,), dtype=np.float32)


def check_actions(actions: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Validate actions: the right shape and finite; then clip into [-1, 1] (documented).

    Raises:
        ValueError: naming the shape or the non-finite entries.
    """
    values = np.asarray(actions, dtype=np.float64)
    if values.shape != shape:
        raise ValueError(f"action must have shape {shape}, got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"action must be finite numbers in [-1, 1], got {values.tolist()}")
    return np.clip(values, -1.0, 1.0)


_NO_STEP = StepResult(HedgeState(0.0, 0.0, 0.0), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
"""The P&L entries of the info returned by ``reset`` (no decision yet)."""


def _per_path(value: Any) -> Any:
    """A field of a time-major episode as Python floats, indexed by path first.

    ``(n_steps + 1, n_paths)`` arrays become a list (over paths) of lists (over steps),
    ``(n_paths,)`` arrays a list of floats; numbers stay as they are.
    """
    ndim = np.ndim(value)
    return value.T.tolist() if ndim == 2 else value.tolist() if ndim == 1 else value


class HedgingEnv(gym.Env[np.ndarray, np.ndarray]):
    """Hedge an option book on one simulated (or replayed) path.

    The base class of the registered envs; ``HedgingEnv(**kwargs)`` accepts every field of
    :class:`hedgearena.envs.config.EnvConfig` (or ``config=EnvConfig(...)``). See
    :class:`ShortCallEnv` for the full manual; the conventions are shared by all ids.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["ansi", "rgb_array"],
        "render_fps": 4,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }
    preset: ClassVar[str | None] = None

    def __init__(
        self,
        config: EnvConfig | None = None,
        render_mode: str | None = None,
        block: int = 256,
        **kwargs: Any,
    ) -> None:
        if config is not None and kwargs:
            raise ValueError("give either config=EnvConfig(...) or keyword fields, not both")
        self.config = config if config is not None else make_config(self.preset, **kwargs)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.observation_space = observation_space(self.config)
        self.action_space = action_space(self.config)
        self.reward_scale = self.config.reward_scale or default_reward_scale(self.config)
        self.core = self.config.core(self.reward_scale)
        self._with_option = self.config.hedge_option is not None
        self._hedge_col = len(EXOGENOUS_FEATURES) + (
            len(OPTION_FEATURES) if self._with_option else 0
        )
        self._delta_start = self.config.initial_hedge == "delta"
        self._action_dim = self.config.action_dim
        self._block = block
        self._source: EpisodeSource | None = None
        self._batch: EpisodeBatch | None = None  # the current block; the episode is one row
        self._row = 0
        self._lists: tuple[EpisodeBatch | None, list[Any]] = (None, [])
        self._t = 0
        self._n_steps = int(self.config.n_steps or 0)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: the next path of the current block (a new block after ``seed``).

        ``options`` may hold ``{"hedge": units}`` to start with a given position in the
        underlying (bought at no cost at the initial spot).
        """
        super().reset(seed=seed)
        if seed is not None or self._source is None:
            self._source = EpisodeSource(self.config, self.np_random, self._block)
        batch, rows = self._source.next_rows(1)
        self._load(batch, rows.start)
        hedge = float((options or {}).get("hedge", 0.0))
        if not math.isfinite(hedge):
            raise ValueError(f"options['hedge'] must be a finite number of units, got {hedge!r}")
        self._t = 0
        self._state = HedgeState(hedge, 0.0, self._cash0 - hedge * self._ep.spot[0])
        self._wealth0 = self._wealth()
        self._totals = dict.fromkeys(TOTAL_KEYS, 0.0)
        self._story: list[tuple[int, float, float]] = [(0, hedge, 0.0)]  # step, hedge, cost
        return self._obs(), self._info(None)

    def _load(self, batch: EpisodeBatch, row: int) -> None:
        """Make path ``row`` of the block ``batch`` the episode (Python floats: the scalar path).

        A block's arrays are turned into per-path Python lists once, on its first episode.
        """
        if self._lists[0] is not batch:
            self._lists = (batch, [_per_path(value) for value in batch.episode])
        self._ep = Episode(*(v[row] if isinstance(v, list) else v for v in self._lists[1]))
        self._batch, self._row = batch, row
        self._cash0 = float(batch.initial_cash[row])

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Rebalance to the action's target, then let ``rebalance_every`` market steps pass.

        Actions outside [-1, 1] are clipped to it; NaN or infinite actions raise ValueError.
        """
        if self._batch is None:
            raise RuntimeError("call reset() before step()")
        t = self._t
        if t >= self._n_steps:
            raise RuntimeError("the episode has ended: call reset()")
        a, b = self._read_action(action)
        ep, core, state = self._ep, self.core, self._state
        if self._delta_start and t == 0:
            h_target, g_target = ep.model_hedge[0], ep.model_option[0]
        else:
            mode = core.action_mode
            h_target = target_position(mode, a, state.hedge, ep.model_hedge[t], core, SCALAR_OPS)
            g_target = (
                target_position(mode, b, state.option, ep.model_option[t], core, SCALAR_OPS)
                if self._with_option
                else 0.0
            )
        result = transition(ep, t, self._n_steps, state, h_target, g_target, core)
        self._state = result.state
        self._t = t + core.rebalance_every
        terminated = self._t >= self._n_steps
        totals = self._add_to_totals(result)
        if self.render_mode == "rgb_array":
            self._story.append((t, state.hedge + result.trade, totals["cost"]))
        r = reward(core, result.pnl, totals["pnl"], terminated)
        info = self._info(result)
        if terminated:
            info["episode"] = self._episode_totals()
        return self._obs(), float(r), terminated, False, info

    def _add_to_totals(self, result: StepResult) -> dict[str, float]:
        """Add a decision's P&L components, turnover and trade count to the episode's totals."""
        totals = self._totals
        totals["option_mtm"] += result.option_mtm
        totals["hedge_pnl"] += result.hedge_pnl
        totals["carry"] += result.carry
        totals["spread_income"] += result.spread_income
        totals["cost"] += result.cost
        totals["pnl"] += result.pnl
        totals["turnover"] += abs(result.trade)
        totals["trades"] += result.trade != 0
        return totals

    def _read_action(self, action: Any) -> tuple[float, float]:
        """The action as clipped Python floats (the second 0 without a hedging option)."""
        try:
            values = action.tolist() if isinstance(action, np.ndarray) else list(action)
            a = float(values[0])
            b = float(values[1]) if self._with_option else 0.0
            ok = len(values) == self._action_dim and math.isfinite(a) and math.isfinite(b)
        except (TypeError, IndexError, ValueError):
            ok = False
        if not ok:
            check_actions(action, (self._action_dim,))  # raises with the reason
            raise ValueError(
                f"action must be an array of shape ({self.config.action_dim},), got {action!r}"
            )
        return (-1.0 if a < -1.0 else 1.0 if a > 1.0 else a), (
            -1.0 if b < -1.0 else 1.0 if b > 1.0 else b
        )

    def _obs(self) -> np.ndarray:
        obs = self._batch.observations[self._t, self._row].copy()  # type: ignore[union-attr]
        notional = self.core.notional
        obs[self._hedge_col] = self._state.hedge / notional
        if self._with_option:
            obs[self._hedge_col + 1] = self._state.option / notional
        return obs

    def _wealth(self) -> float:
        t, ep, (hedge, option, cash) = self._t, self._ep, self._state
        return ep.book_value[t] + hedge * ep.spot[t] + option * ep.option_price[t] + cash

    def _info(self, result: StepResult | None) -> dict[str, Any]:
        t, ep, (hedge, option, cash) = self._t, self._ep, self._state
        r = _NO_STEP if result is None else result
        return {
            "pnl": r.pnl,
            "option_mtm": r.option_mtm,
            "hedge_pnl": r.hedge_pnl,
            "carry": r.carry,
            "spread_income": r.spread_income,
            "cost": r.cost,
            "trade": r.trade,
            "option_trade": r.option_trade,
            "hedge": hedge,
            "option_position": option,
            "cash": cash,
            "spot": ep.spot[t],
            "model_hedge": ep.model_hedge[t],
            "wealth": ep.book_value[t] + hedge * ep.spot[t] + option * ep.option_price[t] + cash,
            "reward_scale": self.reward_scale,
            "step": t,
        }

    def _episode_totals(self) -> dict[str, float]:
        totals = dict(self._totals)
        totals["terminal_pnl"] = self._wealth() - self._wealth0
        totals["initial_premium"] = self._cash0
        return totals

    @property
    def state(self) -> dict[str, Any]:
        """The unnormalised state for classical hedgers: named floats at the current step.

        Keys: ``step``, ``spot``, ``tau`` (years left), ``book_delta``, ``book_gamma``,
        ``book_vega``, ``book_theta``, ``implied_vol``, ``realised_vol``, ``option_delta``,
        ``option_gamma``, ``option_vega``, ``liquidity``, ``hedge``, ``option_position``,
        ``cash``, ``model_hedge``, ``model_option``, ``cost_linear`` (currency per unit),
        ``rate``, ``dividend``, ``dt``.
        """
        if self._batch is None:
            raise RuntimeError("call reset() first")
        t, row = self._t, self._row
        out: dict[str, Any] = {"step": t, "spot": self._ep.spot[t]}
        out.update({name: float(v[row, t]) for name, v in self._batch.features._asdict().items()})
        out.update(
            hedge=self._state.hedge,
            option_position=self._state.option,
            cash=self._state.cash,
            model_hedge=self._ep.model_hedge[t],
            model_option=self._ep.model_option[t],
            cost_linear=self._ep.linear[t],
            rate=self._batch.market.rate,
            dividend=self._batch.market.dividend,
            dt=self.config.dt,
        )
        return out

    def render(self) -> str | np.ndarray | None:  # type: ignore[override]
        """``ansi``: one line of the current step's state; ``rgb_array``: the path's story so far.

        The picture (an ``(H, W, 3)`` uint8 array) shows the spot, the model hedge and the hedge
        held after each decision (dots at trades), and the cumulative transaction cost.
        """
        if self.render_mode is None or self._batch is None:
            return None
        if self.render_mode == "ansi":
            s = self.state
            return (
                f"step {s['step']:4d}  spot {s['spot']:10.4f}  hedge {s['hedge']:10.4f}  "
                f"model {s['model_hedge']:10.4f}  wealth {self._wealth():12.4f}"
            )
        from hedgearena.envs.rendering import figure_to_rgb, path_story_figure

        story = [*self._story, (self._t, self._state.hedge, self._totals["cost"])]
        steps, hedge, cost = (list(x) for x in zip(*story, strict=True))
        fig = path_story_figure(
            times=steps,
            spot=[self._ep.spot[s] for s in steps],
            model_hedge=[self._ep.model_hedge[s] for s in steps],
            hedges={"hedge": hedge},
            costs={"hedge": cost},
            title=f"{type(self).__name__}: step {self._t} of {self._n_steps}",
        )
        return figure_to_rgb(fig)
