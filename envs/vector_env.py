"""The native vector environment: many paths stepped as arrays by the same core."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from hedgearena.envs.config import EnvConfig, make_config
from hedgearena.envs.core import (
    ARRAY_OPS,
    PNL_COMPONENTS,
    HedgeState,
    episode_rows,
    reward,
    target_position,
    transition,
    wealth,
)
from hedgearena.envs.episode import (
    EXOGENOUS_FEATURES,
    OPTION_FEATURES,
    EpisodeBatch,
    Features,
    market_rows,
)
from hedgearena.envs.hedging_env import (
    INFO_KEYS,
    TOTAL_KEYS,
    action_space,
    check_actions,
    default_reward_scale,
    observation_space,
)
from hedgearena.envs.source import EpisodeSource

STEP_INFO_KEYS = ("pnl", *PNL_COMPONENTS, "trade", "option_trade")
"""The info entries that come from the step's result (0 on a reset)."""
_AUTORESET_NAMES = {
    "next_step": AutoresetMode.NEXT_STEP,
    "nextstep": AutoresetMode.NEXT_STEP,
    "same_step": AutoresetMode.SAME_STEP,
    "samestep": AutoresetMode.SAME_STEP,
}


def parse_autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    """``AutoresetMode.NEXT_STEP`` / ``SAME_STEP`` from the enum or a name such as ``"same_step"``.

    Raises:
        ValueError: for any other mode (``DISABLED`` is not supported).
    """
    if isinstance(mode, AutoresetMode) and mode in _AUTORESET_NAMES.values():
        return mode
    if isinstance(mode, str) and mode.lower() in _AUTORESET_NAMES:
        return _AUTORESET_NAMES[mode.lower()]
    raise ValueError(
        f"autoreset_mode must be 'next_step' or 'same_step' (or the enum), got {mode!r}"
    )


class VecHedgingEnv(gym.vector.VectorEnv):
    """``num_envs`` hedging paths stepped together: the vectorised twin of :class:`HedgingEnv`.

    Same keywords, observations, actions, rewards and info keys as the single env (infos are
    dicts of arrays, Gymnasium's vector convention). ``autoreset_mode`` is ``NEXT_STEP`` (the
    step after an episode ends resets those rows and ignores their actions; RLlib's convention)
    or ``SAME_STEP`` (rows reset inside the ending step; the final observation and info are in
    ``infos["final_obs"]`` / ``infos["final_info"]``; stable-baselines3's convention).

    With ``num_envs=1`` and the same seed it reproduces :class:`HedgingEnv` step by step.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": [],
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }
    preset: ClassVar[str | None] = None

    def __init__(
        self,
        num_envs: int = 1,
        config: EnvConfig | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        block: int = 256,
        preset: str | None = None,
        **kwargs: Any,
    ) -> None:
        if int(num_envs) != num_envs or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if config is not None and kwargs:
            raise ValueError("give either config=EnvConfig(...) or keyword fields, not both")
        mode = parse_autoreset_mode(autoreset_mode)
        self.config = config if config is not None else make_config(preset or self.preset, **kwargs)
        self.num_envs = int(num_envs)
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.autoreset_mode = mode
        self.single_observation_space = observation_space(self.config)
        self.single_action_space = action_space(self.config)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.reward_scale = self.config.reward_scale or default_reward_scale(self.config)
        self.core = self.config.core(self.reward_scale)
        self._with_option = self.config.hedge_option is not None
        self._hedge_col = len(EXOGENOUS_FEATURES) + (
            len(OPTION_FEATURES) if self._with_option else 0
        )
        self._block = max(block, self.num_envs)
        self._source: EpisodeSource | None = None
        self._rows = np.arange(self.num_envs)
        self._n_steps = int(self.config.n_steps or 0)
        self._done = np.zeros(self.num_envs, dtype=bool)
        self._set_steps(np.zeros(self.num_envs, dtype=np.int64), 0)

    # ----------------------------------------------------------------------------- reset
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new episodes on every row (a fresh generator when ``seed`` is given).

        ``options`` may hold ``"hedge"`` (units of the underlying held at the start, bought at
        no cost) and ``"episodes"``: an :class:`EpisodeBatch` of ``num_envs`` paths built by
        :func:`hedgearena.envs.episode.build_episodes` for this config, to run on given paths
        (the arena runs every hedger on one batch this way); later autoresets draw from the
        env's own generator again.
        """
        super().reset(seed=seed)
        if seed is not None or self._source is None:
            self._source = EpisodeSource(self.config, self.np_random, self._block)
        options = options or {}
        hedge = float(options.get("hedge", 0.0))
        if not np.isfinite(hedge):
            raise ValueError(f"options['hedge'] must be a finite number of units, got {hedge!r}")
        episodes = options.get("episodes")
        if episodes is None:
            self._batch = self._source.take(self.num_envs)
        elif isinstance(episodes, EpisodeBatch) and len(episodes.initial_cash) == self.num_envs:
            self._batch = episodes
        else:
            raise ValueError(
                f"options['episodes'] must be an EpisodeBatch of num_envs={self.num_envs} paths"
            )
        self._begin(ALL_ROWS, hedge)
        self._done = np.zeros(self.num_envs, dtype=bool)
        return self._obs(), self._infos(None, ALL_ROWS)

    def _begin(self, rows: Rows, hedge: float = 0.0) -> None:
        """(Re)initialise the hedger's state of ``rows`` at the start of their episodes.

        The position, cash and step arrays are replaced, never written in place, so the arrays
        already handed out (in infos) keep their values without being copied.
        """
        n, ep = self.num_envs, self._batch.episode
        if isinstance(rows, slice):
            self._set_steps(np.zeros(n, dtype=np.int64), 0)
            self._hedge, self._option = np.full(n, hedge), np.zeros(n)
            self._cash = self._batch.initial_cash - hedge * ep.spot[0]
            self._wealth0 = wealth(ep, 0, self._state_of(rows))
            self._totals = {key: np.zeros(n) for key in TOTAL_KEYS}
            return
        self._set_steps(_with_rows(self._t, rows, 0))
        self._hedge = _with_rows(self._hedge, rows, hedge)
        self._option = _with_rows(self._option, rows, 0.0)
        cash = self._batch.initial_cash[rows] - hedge * ep.spot[0, rows]
        self._cash = _with_rows(self._cash, rows, cash)
        self._wealth0[rows] = wealth(episode_rows(ep, rows), 0, self._state_of(rows))
        for total in self._totals.values():
            total[rows] = 0.0

    def _set_steps(self, steps: np.ndarray, common: int | None = None) -> None:
        """Set every row's market step; ``common`` is the step of all rows when known."""
        self._t = steps
        if common is None and len(steps) and (steps == steps[0]).all():
            common = int(steps[0])
        self._common_step = common

    def _state_of(self, rows: Rows) -> HedgeState:
        return HedgeState(self._hedge[rows], self._option[rows], self._cash[rows])

    def _replace_rows(self, rows: np.ndarray) -> None:
        """Give ``rows`` fresh episodes from the source."""
        assert self._source is not None
        if len(rows) == self.num_envs:
            self._batch = self._source.take(self.num_envs)
            return
        new = self._source.take(len(rows))
        self._batch = _copy_batch(self._batch)  # earlier observations stay as they were returned
        _write_rows(self._batch, new, rows)

    # ------------------------------------------------------------------------------ step
    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Rebalance every row to its action's target and let ``rebalance_every`` steps pass.

        Actions are ``(num_envs, action_dim)`` in [-1, 1] (clipped; NaN/inf raise ValueError).
        """
        values = check_actions(actions, (self.num_envs, self.config.action_dim))
        return self._step(values, from_actions=True)

    def step_targets(
        self, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Like :meth:`step`, but with the positions to hold, in units, instead of actions.

        ``targets`` is ``(num_envs, action_dim)``: units of the underlying (and of the hedging
        option). No scaling and no clipping: this is how classical hedgers, which compute
        positions from :attr:`state`, trade. ``initial_hedge="delta"`` still fixes the first
        position. Non-finite targets raise ValueError.
        """
        values = np.asarray(targets, dtype=np.float64)
        if values.shape != (self.num_envs, self.config.action_dim):
            raise ValueError(
                f"targets must have shape {(self.num_envs, self.config.action_dim)}, "
                f"got {values.shape}"
            )
        if not np.isfinite(values).all():
            raise ValueError("targets must be finite positions (units of the instrument)")
        return self._step(values, from_actions=False)

    def _step(
        self, values: np.ndarray, from_actions: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._source is None:
            raise RuntimeError("call reset() before step()")
        rows = self._rows_to_step()
        stepping = isinstance(rows, slice) or len(rows) > 0
        result = self._advance(rows, values, from_actions) if stepping else None
        terminated = self._t >= self._n_steps  # rows reset by this step are at step 0
        rewards = self._rewards(rows, result, terminated)
        infos = self._infos(result, rows, terminated)
        self._done = terminated.copy()
        if self.autoreset_mode == AutoresetMode.SAME_STEP and terminated.any():
            infos = self._same_step_reset(terminated, infos)
        return self._obs(), rewards, terminated, np.zeros(self.num_envs, dtype=bool), infos

    def _rows_to_step(self) -> Rows:
        """The rows this step advances: all, or (``NEXT_STEP``) those it does not reset."""
        if self.autoreset_mode != AutoresetMode.NEXT_STEP or not self._done.any():
            return ALL_ROWS
        resetting = np.flatnonzero(self._done)
        self._replace_rows(resetting)
        self._begin(ALL_ROWS if len(resetting) == self.num_envs else resetting)
        return np.flatnonzero(~self._done)

    def positions_from_actions(self, actions: np.ndarray) -> np.ndarray:
        """The positions that :meth:`step` would trade to for ``actions``, ``(num_envs, d)``.

        The action mode's rescaling at the current state (what a learned agent's actions mean
        in units, e.g. for the arena, which trades positions).
        """
        values = check_actions(actions, (self.num_envs, self.config.action_dim))
        hedge, option = self._targets(ALL_ROWS, values, *self._episode_view(ALL_ROWS))
        return np.stack([hedge, option][: self.config.action_dim], axis=1)

    def _episode_view(self, rows: Rows) -> tuple[Any, Any]:
        """The episode arrays of ``rows`` and the rows' step, to index them with.

        With every row at one step (the common case) these are the batch's time-major arrays
        and an int, so each step's values are a contiguous row; otherwise a per-row view.
        """
        ep = self._batch.episode
        if isinstance(rows, slice) and self._common_step is not None:
            return ep, self._common_step
        rows = self._rows if isinstance(rows, slice) else rows
        return episode_rows(ep, rows), self._t[rows]

    def _targets(
        self, rows: Rows, values: np.ndarray, view: Any, t: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Positions to hold from actions (the action mode's rescaling)."""
        core = self.core
        h_target = target_position(
            core.action_mode, values[:, 0], self._hedge[rows], view.model_hedge[t], core, ARRAY_OPS
        )
        g_target = (
            target_position(
                core.action_mode,
                values[:, 1],
                self._option[rows],
                view.model_option[t],
                core,
                ARRAY_OPS,
            )
            if self._with_option
            else np.zeros(len(values))
        )
        return h_target, g_target

    def _advance(self, rows: Rows, values: np.ndarray, from_actions: bool) -> Any:
        core = self.core
        view, t = self._episode_view(rows)
        values = values if isinstance(rows, slice) else values[rows]
        if from_actions:
            h_target, g_target = self._targets(rows, values, view, t)
        else:
            h_target = values[:, 0]
            g_target = values[:, 1] if self._with_option else np.zeros(len(values))
        if self.config.initial_hedge == "delta":
            first = t == 0
            h_target = np.where(first, view.model_hedge[t], h_target)
            g_target = np.where(first, view.model_option[t], g_target)
        result = transition(
            view, t, self._n_steps, self._state_of(rows), h_target, g_target, core
        )
        if isinstance(rows, slice):
            self._hedge, self._option, self._cash = result.state
            common = None if self._common_step is None else self._common_step + core.rebalance_every
            self._set_steps(self._t + core.rebalance_every, common)
        else:
            self._hedge = _with_rows(self._hedge, rows, result.state.hedge)
            self._option = _with_rows(self._option, rows, result.state.option)
            self._cash = _with_rows(self._cash, rows, result.state.cash)
            self._set_steps(_with_rows(self._t, rows, t + core.rebalance_every))
        totals = self._totals
        for name in PNL_COMPONENTS:
            _add_rows(totals[name], rows, getattr(result, name))
        _add_rows(totals["pnl"], rows, result.pnl)
        _add_rows(totals["turnover"], rows, np.abs(result.trade))
        _add_rows(totals["trades"], rows, result.trade != 0)
        return result

    def _rewards(self, rows: Rows, result: Any, terminated: np.ndarray) -> np.ndarray:
        """The rewards of the rows stepped (0 for the rows this step reset)."""
        rewards = np.zeros(self.num_envs)
        if result is not None:
            rewards[rows] = reward(
                self.core, result.pnl, self._totals["pnl"][rows], terminated[rows]
            )
        return rewards

    def _same_step_reset(self, terminated: np.ndarray, infos: dict[str, Any]) -> dict[str, Any]:
        rows = np.flatnonzero(terminated)
        everyone = len(rows) == self.num_envs
        final_obs = self._obs()
        final_info = dict(infos)
        self._replace_rows(rows)
        self._begin(ALL_ROWS if everyone else rows)
        fresh = self._infos(None, ALL_ROWS)
        merged = {
            key: fresh[key] if everyone else np.where(terminated, fresh[key], infos[key])
            for key in INFO_KEYS
        }
        merged["final_obs"] = (
            final_obs.copy()
            if everyone
            else np.where(terminated[:, None], final_obs, 0.0).astype(np.float32)
        )
        merged["_final_obs"] = terminated.copy()
        merged["final_info"] = final_info
        merged["_final_info"] = terminated.copy()
        self._done = np.zeros(self.num_envs, dtype=bool)
        return merged

    # ------------------------------------------------------------------ observations, infos
    def _obs(self) -> np.ndarray:
        """The observations of every row, with the position entries written in.

        With all rows at one step (the common case) this is a view of the batch's time-major
        array, written once and never changed afterwards.
        """
        batch, step, column = self._batch, self._common_step, self._hedge_col
        obs = (
            batch.observations[step]
            if step is not None
            else batch.observations[self._t, self._rows]
        )
        notional = self.core.notional
        np.divide(self._hedge, notional, out=obs[:, column], casting="same_kind")
        if self._with_option:
            np.divide(self._option, notional, out=obs[:, column + 1], casting="same_kind")
        if step is None:
            batch.observations[self._t, self._rows] = obs
        return obs

    def _infos(
        self, result: Any, rows: Rows, terminated: np.ndarray | None = None
    ) -> dict[str, Any]:
        """The info dict of a step (``result`` of the ``rows`` stepped; None: no step)."""
        n = self.num_envs
        infos: dict[str, Any] = {
            name: self._step_entry(result, rows, name) for name in STEP_INFO_KEYS
        }
        infos["hedge"], infos["option_position"], infos["cash"] = (
            self._hedge,  # replaced, never written in place (see _begin): no copies needed
            self._option,
            self._cash,
        )
        view, t = self._episode_view(ALL_ROWS)
        infos["spot"] = np.array(view.spot[t], dtype=np.float64)  # a copy of the batch's row
        infos["model_hedge"] = np.array(view.model_hedge[t], dtype=np.float64)
        infos["wealth"] = wealth(view, t, self._state_of(ALL_ROWS))
        infos["reward_scale"] = np.full(n, self.reward_scale)
        infos["step"] = self._t.astype(np.float64)
        mask = np.ones(n, dtype=bool)
        for key in INFO_KEYS:
            infos["_" + key] = mask
        if terminated is not None and terminated.any():
            totals = {key: value.copy() for key, value in self._totals.items()}
            totals["terminal_pnl"] = infos["wealth"] - self._wealth0
            totals["initial_premium"] = self._batch.initial_cash.copy()
            infos["episode"] = totals
            infos["_episode"] = terminated.copy()
        return infos

    def _step_entry(self, result: Any, rows: Rows, name: str) -> np.ndarray:
        """The ``name`` entry of a step's result for every row (0 for the rows not stepped)."""
        n = self.num_envs
        if result is None:
            return np.zeros(n)
        value = getattr(result, name)
        if isinstance(rows, slice) and isinstance(value, np.ndarray) and value.shape == (n,):
            return value  # a fresh array of the transition's
        out = np.zeros(n)
        out[rows] = value
        return out

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The unnormalised state of every row (the keys of :attr:`HedgingEnv.state`, as arrays)."""
        batch, step = self._batch, self._common_step
        view, t = self._episode_view(ALL_ROWS)

        def now(path_major: np.ndarray) -> np.ndarray:
            """Every row's value at its step, copied (features are ``(n_paths, n_steps + 1)``)."""
            if step is not None:
                return path_major[:, step].copy()
            return path_major[self._rows, self._t]

        out: dict[str, Any] = {"step": self._t.copy(), "spot": np.array(view.spot[t])}
        out.update({name: now(value) for name, value in batch.features._asdict().items()})
        out.update(
            hedge=self._hedge.copy(),
            option_position=self._option.copy(),
            cash=self._cash.copy(),
            model_hedge=np.array(view.model_hedge[t]),
            model_option=np.array(view.model_option[t]),
            cost_linear=np.array(view.linear[t]),
            rate=batch.market.rate,
            dividend=batch.market.dividend,
            dt=self.config.dt,
        )
        return out

    @property
    def batch(self) -> EpisodeBatch:
        """The current episodes' exogenous arrays (market paths, book marks, features)."""
        return self._batch


Rows = slice | np.ndarray
"""The rows a step works on: :data:`ALL_ROWS` (the common case: views, no gathers) or indices."""
ALL_ROWS = slice(None)


def _with_rows(values: np.ndarray, rows: np.ndarray, new: Any) -> np.ndarray:
    """A copy of ``values`` with ``rows`` set to ``new`` (``values`` is left as it was)."""
    out = values.copy()
    out[rows] = new
    return out


def _add_rows(total: np.ndarray, rows: Rows, values: Any) -> None:
    """``total[rows] += values`` in place (without the write-back of a view for all rows)."""
    if isinstance(rows, slice):
        total += values
    else:
        total[rows] += values


def _copy_batch(batch: EpisodeBatch) -> EpisodeBatch:
    """A deep copy of a batch's arrays (the surface and scalars are shared)."""
    copy = lambda value: value.copy() if isinstance(value, np.ndarray) else value  # noqa: E731
    return EpisodeBatch(
        episode=type(batch.episode)(*(copy(v) for v in batch.episode)),
        features=Features(*(copy(v) for v in batch.features)),
        observations=batch.observations.copy(),
        initial_cash=batch.initial_cash.copy(),
        market=market_rows(batch.market, np.arange(batch.initial_cash.shape[0])),
        instruments=type(batch.instruments)(*(copy(v) for v in batch.instruments)),
    )


def _write_rows(batch: EpisodeBatch, new: EpisodeBatch, rows: np.ndarray) -> None:
    """Overwrite ``rows`` of ``batch``'s arrays with ``new``'s paths, in place."""
    for name, value in batch.episode._asdict().items():
        if np.ndim(value) == 2:
            value[:, rows] = getattr(new.episode, name)
        elif np.ndim(value) == 1:
            value[rows] = getattr(new.episode, name)
    for name in Features._fields:
        getattr(batch.features, name)[rows] = getattr(new.features, name)
    batch.observations[:, rows] = new.observations
    batch.initial_cash[rows] = new.initial_cash
    for name in ("spot", "variance", "vol_state", "liquidity"):
        getattr(batch.market, name)[rows] = getattr(new.market, name)
    for name in batch.instruments._fields:
        getattr(batch.instruments, name)[rows] = getattr(new.instruments, name)
