"""The single-path Gymnasium environment: a thin view of the batched core on one path."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from hedgearena.envs.checks import is_number
from hedgearena.envs.config import EnvConfig, make_config
from hedgearena.envs.core import (
    PNL_COMPONENTS,
    SCALAR_OPS,
    Episode,
    HedgeState,
    StepResult,
    default_transition,
    is_stressed,
    liquidate,
    reward,
    target_position,
    transition,
    unfilled_units,
    wealth,
)
from hedgearena.envs.episode import (
    EXOGENOUS_FEATURES,
    OPTION_FEATURES,
    EpisodeBatch,
    Remarker,
    observation_names,
)
from hedgearena.envs.limits import (
    LIMIT_GREEKS,
    count_breaches,
    exposures,
    first_breach,
    new_breaches,
    over_limits,
)
from hedgearena.envs.memory import check_episode_memory
from hedgearena.envs.rendering import RENDER_MODES, StoryFigures, check_render_mode
from hedgearena.envs.source import EpisodeSource, check_block, copy_batch, slice_batch

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
    "unfilled",
    "option_unfilled",
    "slippage",
    "breach",
    "termination_reason",
)
"""Keys of ``info`` on every step (the last step adds ``totals``, the episode's totals)."""
TOTAL_KEYS = (
    *PNL_COMPONENTS, "pnl", "turnover", "trades", "option_turnover", "option_trades", "unfilled",
    "option_unfilled", "slippage", "breaches",
)
"""The sums over an episode in ``info["totals"]`` (with ``terminal_pnl``, ``initial_premium``);
``turnover`` and ``option_turnover`` sum the decisions' absolute trades in the underlying and the
hedging option (units), ``trades`` and ``option_trades`` count the decisions that traded them;
``unfilled`` and ``option_unfilled`` sum absolute units per order (a decision's, and the sale's
of the positions at the end or at a ``terminate`` limit:
:func:`~hedgearena.envs.core.unfilled_units`), ``breaches`` counts limit breaches."""
EXPIRY = "expiry"
"""``info["termination_reason"]`` at the book's horizon ("" before; a limit's name when a
``terminate`` risk limit ends the episode)."""


REWARD_SCALE_PROBES = 256
"""Starting states the default reward scale is the median over (seeded; one step each)."""


def default_reward_scale(config: EnvConfig) -> float:
    """Premium of an at-the-money option on the notional: ``0.4 sigma sqrt(T) S0 notional``.

    ``sigma`` (at least 1%) and ``S0`` are the market's starting vol and spot; where they vary
    from episode to episode (the historical replay's windows) the scale is the median premium
    over :data:`REWARD_SCALE_PROBES` starting states drawn with seed 0, so it is a constant of
    the config and typical of its episodes.
    """
    assert config.n_steps is not None
    probe = config.market.simulate(REWARD_SCALE_PROBES, 1, config.dt, np.random.default_rng(0))
    sigma = np.maximum(np.sqrt(probe.variance[:, 0]), 0.01)
    premium = 0.4 * sigma * math.sqrt(config.n_steps * config.dt) * probe.spot[:, 0]
    return float(np.median(premium)) * config.book.notional


def reward_scale(config: EnvConfig) -> float:
    """Currency per unit of reward: ``config.reward_scale``, or :func:`default_reward_scale`."""
    return config.reward_scale or default_reward_scale(config)


def observation_space(config: EnvConfig) -> gym.spaces.Box:
    """The float32 observation Box (unbounded; entries are documented in the env's manual)."""
    dim = len(observation_names(config))
    return gym.spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)


def action_space(config: EnvConfig) -> gym.spaces.Box:
    """The float32 action Box ``[-1, 1]^d``, d = 1 or 2 (with a hedging option)."""
    return gym.spaces.Box(-1.0, 1.0, shape=(config.action_dim,), dtype=np.float32)


def check_config(config: Any) -> None:
    """Raise ``ValueError`` unless ``config`` is an :class:`EnvConfig` or None."""
    if config is not None and not isinstance(config, EnvConfig):
        raise ValueError(
            "config must be an EnvConfig (hedgearena.envs.config.make_config) or None, "
            f"got {type(config).__name__}; pass the fields as keywords instead"
        )


def reset_hedge(options: Any, allowed: tuple[str, ...]) -> float:
    """``options["hedge"]`` of a reset (0 by default), checked with the option keys.

    Raises:
        ValueError: ``options`` is not a dict, has a key not in ``allowed``, or a ``hedge``
            that is not a finite number.
    """
    if options is None:
        return 0.0
    if not isinstance(options, Mapping):
        raise ValueError(f"reset options must be a dict or None, got {options!r}")
    unknown = sorted(str(key) for key in set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown reset option(s) {unknown}; allowed: {list(allowed)}")
    hedge = options.get("hedge", 0.0)
    if not is_number(hedge, ge=-MAX_POSITION, le=MAX_POSITION):
        raise ValueError(
            f"options['hedge'] must be a finite number of units within +-{MAX_POSITION:g} "
            f"(its observation entry is float32), got {hedge!r}"
        )
    return float(hedge)


MAX_POSITION = 1e15
"""Largest position a caller may set directly, units: a reset's ``|options["hedge"]|`` and the
vector env's :meth:`~hedgearena.envs.vector_env.VecHedgingEnv.step_targets` (far past any book;
beyond it the float32 observations and the wealth in currency overflow)."""


NUMERIC_KINDS = "fiu"
"""numpy dtype kinds an action may have: floats and integers (not booleans, strings, bytes)."""
_NOT_NUMBERS = (bool, np.bool_, str, bytes)


def check_actions(actions: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Validate actions: the right shape and finite; then clip into [-1, 1] (documented).

    Raises:
        ValueError: naming the shape, a non-numeric action or the non-finite entries.
    """
    raw = np.asarray(actions)
    if raw.dtype.kind not in NUMERIC_KINDS:  # booleans, strings, bytes, objects
        raise ValueError(
            f"action must be an array of numbers of shape {shape}, got {actions!r} "
            f"({raw.dtype})"
        )
    values = raw.astype(np.float64)
    if values.shape != shape:
        raise ValueError(f"action must have shape {shape}, got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"action must be finite numbers in [-1, 1], got {values.tolist()}")
    return np.clip(values, -1.0, 1.0)


_INFO_TEMPLATE: dict[str, Any] = {
    **dict.fromkeys(INFO_KEYS, 0.0), "breach": 0, "termination_reason": ""
}
"""Every info key, in order, with the value of a step without stress (see ``_info``)."""
_NO_STEP = StepResult(HedgeState(0.0, 0.0, 0.0), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
"""The P&L entries of the info returned by ``reset`` (no decision yet)."""


def _column(value: Any) -> Any:
    """A field of a one-path time-major episode as the single env holds it with impact.

    ``(n_steps + 1, 1)`` arrays become ``(n_steps + 1,)`` views (indexing gives numpy floats;
    the core's re-marks write through them), ``(1,)`` arrays a float; numbers stay.
    """
    ndim = np.ndim(value)
    return value[:, 0] if ndim == 2 else float(value[0]) if ndim == 1 else value


def _per_path(value: Any) -> Any:
    """A field of a time-major episode as Python floats, indexed by path first.

    ``(n_steps + 1, n_paths)`` arrays become a list (over paths) of lists (over steps),
    ``(n_paths,)`` arrays a list of floats; numbers stay as they are. An array of +0.0 only
    (absent costs, no hedging option) becomes one shared list of zeros: the core only reads
    the lists.
    """
    ndim = np.ndim(value)
    if ndim == 2:
        if not value.any() and not np.signbit(value).any():
            return [[0.0] * value.shape[0]] * value.shape[1]
        return value.T.tolist()
    return value.tolist() if ndim == 1 else value


def _episodes(episode: Episode) -> list[tuple[Any, ...]]:
    """The fields of every path of a time-major episode block, a tuple of Python values each.

    ``Episode._make(_episodes(block)[row])`` is path ``row``'s episode (see :func:`_per_path`).
    """
    columns = [_per_path(value) for value in episode]
    n_paths = np.shape(episode.spot)[1]  # time-major: (n_steps + 1, n_paths)
    return list(zip(*(c if isinstance(c, list) else [c] * n_paths for c in columns),
                    strict=True))


class HedgingEnv(gym.Env[np.ndarray, np.ndarray]):
    """Hedge an option book on one simulated (or replayed) path.

    The base class of the registered envs; ``HedgingEnv(**kwargs)`` accepts every field of
    :class:`hedgearena.envs.config.EnvConfig` (or ``config=EnvConfig(...)``). See
    :class:`ShortCallEnv` for the full manual; the conventions are shared by all ids.
    """

    # declared an instance variable by gymnasium.Env (mypy rejects a ClassVar override)
    metadata: dict[str, Any] = {  # noqa: RUF012
        "render_modes": list(RENDER_MODES),
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
        check_config(config)
        self.config = config if config is not None else make_config(self.preset, **kwargs)
        check_render_mode(render_mode)
        self.render_mode = render_mode
        self._block = check_block(block)
        check_episode_memory(self._block, int(self.config.n_steps or 0), f"block={self._block:,}")
        self._figures = StoryFigures()  # rgb_array frames are drawn on kept figures
        self.observation_space = observation_space(self.config)
        self.action_space = action_space(self.config)
        self.reward_scale = reward_scale(self.config)
        self.core = self.config.core(self.reward_scale)
        self._with_option = self.config.hedge_option is not None
        self._hedge_col = len(EXOGENOUS_FEATURES) + (
            len(OPTION_FEATURES) if self._with_option else 0
        )
        self._action_dim = self.config.action_dim
        self._source: EpisodeSource | None = None
        self._batch: EpisodeBatch | None = None  # the current block; the episode is one row
        self._row = 0
        self._observations = np.empty((0, 0), np.float32)  # the episode's (see _load)
        self._lists: tuple[EpisodeBatch | None, list[tuple[Any, ...]]] = (None, [])
        self._t = 0
        self._n_steps = int(self.config.n_steps or 0)
        self._limits = self.config.risk_limits
        self._remark: Remarker | None = None
        self._end = 0  # the episode's last step (earlier when a limit ends it; 0 before reset)
        self._model_step = -1  # the step whose target is the model's position, whatever the action
        self._stressed = self.core.stressed  # or the episode has fills (see _load)
        self._observe_pnl = self.config.observe_pnl
        self._rows = np.empty((0, 0), np.float32)  # the episode's observations, its own copy
        self._info_template = {**_INFO_TEMPLATE, "reward_scale": self.reward_scale}

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
        hedge = reset_hedge(options, ("hedge",))
        batch, rows = self._source.next_rows(1)
        self._load(batch, rows.start)
        self._t, self._end = 0, self._n_steps
        self._model_step = 0 if self.config.initial_hedge == "delta" else -1
        self._state = HedgeState(hedge, 0.0, self._cash0 - hedge * self._ep.spot[0])
        self._wealth0 = self._wealth()
        self._totals = dict.fromkeys(TOTAL_KEYS, 0.0)
        self._peak, self._over, self._breach = self._wealth0, 0, 0  # risk limits
        self._reason = EXPIRY  # the termination reason, unless a limit ends the episode
        self._story: list[tuple[int, float, float]] = [(0, hedge, 0.0)]  # step, hedge, cost
        return self._obs(), self._info(None)

    def _load(self, batch: EpisodeBatch, row: int) -> None:
        """Make path ``row`` of the block ``batch`` the episode (Python floats: the scalar path).

        A block's arrays are turned into per-path Python lists once, on its first episode. With
        permanent impact the path is copied into a batch of its own, which the core re-marks in
        place (:class:`Remarker`), and the episode's fields are views of it.
        """
        if self.core.permanent_impact:
            own = copy_batch(slice_batch(batch, slice(row, row + 1)))
            self._remark = Remarker(self.config, own)
            self._ep = Episode(*(_column(value) for value in own.episode))
            self._batch, self._row = own, 0
            self._observations = own.observations[:, 0]
            self._rows = self._own_rows(self._observations)
            self._cash0 = float(own.initial_cash[0])
            self._stressed = True
            return
        if self._lists[0] is not batch:
            self._lists = (batch, _episodes(batch.episode))
        self._ep = Episode._make(self._lists[1][row])
        self._batch, self._row = batch, row
        self._observations = batch.observations[:, row]  # the path's, (n_steps + 1, n_features)
        self._rows = self._own_rows(self._observations)
        self._cash0 = float(batch.initial_cash[row])
        self._stressed = is_stressed(self._ep, self.core)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Rebalance to the action's target, then let ``rebalance_every`` market steps pass.

        Actions outside [-1, 1] are clipped to it; NaN or infinite actions raise ValueError.
        """
        t = self._t
        if t >= self._end:  # also before the first reset (_end is 0)
            if self._batch is None:
                raise RuntimeError("call reset() before step()")
            raise RuntimeError("the episode has ended: call reset()")
        a, b = self._read_action(action)
        ep, core, state = self._ep, self.core, self._state
        if t == self._model_step:  # initial_hedge="delta", or a breach's "flatten"
            h_target, g_target = ep.model_hedge[t], ep.model_option[t]
        else:
            mode = core.action_mode
            h_target = target_position(mode, a, state.hedge, ep.model_hedge[t], core, SCALAR_OPS)
            g_target = (
                target_position(mode, b, state.option, ep.model_option[t], core, SCALAR_OPS,
                                option=True)
                if self._with_option
                else 0.0
            )
        if self._stressed:
            result = transition(ep, t, self._n_steps, state, h_target, g_target, core, self._remark)
        else:  # what transition would do, without its check (known at the episode's start)
            result = default_transition(ep, t, self._n_steps, state, h_target, g_target, core)
        self._state = result.state
        self._t = t + core.rebalance_every
        terminated = self._t >= self._n_steps
        if self._stressed:  # a stress mechanic is on (else the step is the default one)
            result, terminated = self._stress_step(result, terminated)
        totals = self._add_to_totals(result)
        if self.render_mode == "rgb_array":
            self._story.append((t, state.hedge + result.trade, totals["cost"]))
        r = float(reward(core, result.pnl, totals["pnl"], terminated))
        info = self._info(result)
        if terminated:
            info["termination_reason"] = self._reason
            info["totals"] = self._episode_totals()
        return self._obs(), r, terminated, False, info

    def _stress_step(self, result: StepResult, terminated: bool) -> tuple[StepResult, bool]:
        """The stress mechanics' part of a step: risk limits, and the totals of the new entries.

        Returns:
            The result (with a sale if a limit ends the episode) and whether the episode ends.
        """
        self._breach = 0
        if self._limits is not None:
            result, self._breach, stop = self._watch_limits(result, terminated)
            if stop:
                terminated, self._end = True, self._t
        totals = self._totals
        totals["impact_pnl"] += result.impact_pnl
        sold = terminated and self.core.unwind  # the positions were sold at this step
        hedge, option = (result.state.hedge, result.state.option) if sold else (0.0, 0.0)
        totals["unfilled"] += unfilled_units(result.unfilled, hedge)
        totals["option_unfilled"] += unfilled_units(result.option_unfilled, option)
        totals["slippage"] += result.slippage
        return result, terminated

    def _watch_limits(self, result: StepResult, ending: bool) -> tuple[StepResult, int, bool]:
        """Check the risk limits after a decision; act on the limits crossed now.

        Returns:
            The decision's result (with the sale of the positions when a ``terminate`` limit
            ends the episode and ``unwind`` is set), the mask of the limits crossed now, and
            whether a limit ends the episode.
        """
        assert self._limits is not None
        assert self._batch is not None
        now, t, row, core = self._wealth(), self._t, self._row, self.core
        self._peak = max(self._peak, now)
        greeks = {name: float(getattr(self._batch.features, name)[row, t]) for name in LIMIT_GREEKS}
        state = self._state
        exposure = exposures(
            greeks, self._ep.spot[t], state.hedge, state.option, self._peak - now, core.notional
        )
        over = over_limits(self._limits, exposure)
        breach, self._over = new_breaches(over, self._over), over
        self._totals["breaches"] += count_breaches(breach)
        action = self._limits.action if breach else "report"
        if action == "flatten":
            self._model_step = t  # the next decision trades to the model's position
        stop = action == "terminate" and not ending
        if stop:
            self._reason = first_breach(breach)
        if stop and core.unwind:
            result = liquidate(self._ep, t, result, core, True, self._remark)
            self._state = result.state
        return result, breach, stop

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
        if self._with_option:  # else 0
            totals["option_turnover"] += abs(result.option_trade)
            totals["option_trades"] += result.option_trade != 0
        return totals

    def _read_action(self, action: Any) -> tuple[float, float]:
        """The action as clipped Python floats (the second 0 without a hedging option)."""
        try:
            if isinstance(action, np.ndarray):
                values = action.tolist() if action.dtype.kind in NUMERIC_KINDS else []
            elif isinstance(action, (str, bytes)):
                values = []
            else:
                values = [v if type(v) not in _NOT_NUMBERS else None for v in action]
            a = float(values[0])
            b = float(values[1]) if self._with_option else 0.0
            if len(values) != self._action_dim:
                ok = False
            elif -1.0 <= a <= 1.0 and -1.0 <= b <= 1.0:  # finite, and nothing to clip
                return a, b
            else:
                ok = math.isfinite(a) and math.isfinite(b)
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

    def _own_rows(self, observations: np.ndarray) -> np.ndarray:
        """The episode's own copy of its observation rows, ``(n_steps + 1, n_obs)`` float32.

        ``observations`` is the path's ``(n_steps + 1, n_features)`` view of its block; with
        ``observe_pnl`` the copy has one more column, for the P&L. :meth:`_obs` returns row
        ``t`` itself (a view: no copy a step), after writing the positions (and the P&L) into
        it; each row is returned once an episode, and never written after, so every observation
        handed out keeps its values and none shares an entry with another.
        """
        n_features = observations.shape[1]
        if not self._observe_pnl:
            return np.array(observations)
        rows = np.empty((observations.shape[0], n_features + 1), np.float32)
        rows[:, :n_features] = observations
        return rows

    def _obs(self) -> np.ndarray:
        """The observation at the current step: row ``self._t`` of the episode's own copy."""
        t = self._t
        obs = self._rows[t]
        if self._remark is not None:  # the core re-marks the path's block in place
            obs[: self._observations.shape[1]] = self._observations[t]
        notional = self.core.notional
        obs[self._hedge_col] = self._state.hedge / notional
        if self._with_option:
            obs[self._hedge_col + 1] = self._state.option / notional
        if self._observe_pnl:  # the P&L so far (the sum of the decisions' P&L)
            obs[-1] = self._totals["pnl"] / self.reward_scale
        return obs

    def _wealth(self) -> float:
        return wealth(self._ep, self._t, self._state)

    def _info(self, result: StepResult | None) -> dict[str, Any]:
        """The step's info (:data:`INFO_KEYS`).

        Filled into a copy of a template (the env's, which holds its ``reward_scale``): a dict
        of more than 16 keys is much faster to copy than to build from a literal. The result is
        unpacked once (its fields' attribute loads cost more than one unpacking).
        """
        t, ep, (hedge, option, cash, _) = self._t, self._ep, self._state
        (_, trade, option_trade, option_mtm, hedge_pnl, carry, spread, cost, pnl, impact_pnl,
         unfilled, option_unfilled, slippage) = _NO_STEP if result is None else result
        info = self._info_template.copy()  # with this env's reward_scale
        info["pnl"] = pnl
        info["option_mtm"] = option_mtm
        info["hedge_pnl"] = hedge_pnl
        info["carry"] = carry
        info["spread_income"] = spread
        info["cost"] = cost
        info["trade"] = trade
        info["option_trade"] = option_trade
        info["hedge"] = hedge
        info["option_position"] = option
        info["cash"] = cash
        info["spot"] = ep.spot[t]
        info["model_hedge"] = ep.model_hedge[t]
        info["wealth"] = wealth(ep, t, self._state)
        info["step"] = t
        if self._stressed:  # else the template's zeros
            info["impact_pnl"] = impact_pnl
            info["unfilled"] = unfilled
            info["option_unfilled"] = option_unfilled
            info["slippage"] = slippage
            info["breach"] = self._breach if result is not None else 0
        return info

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

        Units: ``spot``, ``cash`` in currency; ``tau`` (time left in the episode) and ``dt``
        in years; ``step`` the market step; ``hedge``, ``model_hedge`` and ``book_delta`` in
        units of the underlying (the book's delta includes its stock; the delta hedge holds
        minus it), ``option_position`` and ``model_option`` in units of the hedging option
        (options on one unit of the underlying each); ``book_gamma`` the change of
        ``book_delta`` per currency of spot, ``book_vega`` currency per 1.00 of vol,
        ``book_theta`` currency per year, the ``option_*`` greeks those of one unit of the
        hedging option (zeros without one); ``implied_vol`` (at the money) and
        ``realised_vol`` annualised; ``liquidity`` a multiplier of spreads and impact (1
        normal); ``cost_linear`` currency per unit traded; ``rate`` and ``dividend``
        continuous, per year.
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
        from hedgearena.envs.rendering import state_line, story_frame, story_labels

        if self.render_mode == "ansi":
            s = self.state
            return state_line(s["step"], s["spot"], s["hedge"], s["model_hedge"], self._wealth())
        story = [*self._story, (self._t, self._state.hedge, self._totals["cost"])]
        return story_frame(story, self._ep.spot, self._ep.model_hedge,
                           f"{type(self).__name__}: step {self._t} of {self._n_steps}",
                           self._figures, story_labels(self.config))
