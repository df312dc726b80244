"""The native vector environment: many paths stepped as arrays by the same core."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from hedgearena.envs.checks import holds_real_numbers, is_integer, require_bool
from hedgearena.envs.config import EnvConfig, make_config
from hedgearena.envs.core import (
    ARRAY_OPS,
    PNL_COMPONENTS,
    HedgeState,
    StepResult,
    episode_rows,
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
    Features,
    Remarker,
    has_observations,
    with_observations,
)
from hedgearena.envs.hedging_env import (
    EXPIRY,
    INFO_KEYS,
    MAX_POSITION,
    TOTAL_KEYS,
    action_space,
    check_actions,
    check_config,
    observation_space,
    reset_hedge,
    reward_scale,
)
from hedgearena.envs.limits import (
    LIMIT_GREEKS,
    LIMITS,
    count_breaches,
    exposures,
    first_breach,
    new_breaches,
    over_limits,
)
from hedgearena.envs.memory import check_episode_memory
from hedgearena.envs.rendering import RENDER_MODES, StoryFigures, check_render_mode
from hedgearena.envs.source import EpisodeSource, check_block, copy_batch

STRESS_KEYS = ("impact_pnl", "unfilled", "option_unfilled", "slippage")
"""The step results that are 0 without a stress mechanic (not summed nor copied then)."""
STEP_INFO_KEYS = ("pnl", *PNL_COMPONENTS, "trade", "option_trade", *STRESS_KEYS[1:])
"""The info entries that come from the step's result (0 on a reset)."""
_PLAIN_COMPONENTS = tuple(name for name in PNL_COMPONENTS if name not in STRESS_KEYS)
_REASON = f"<U{max(len(x) for x in (*LIMITS, EXPIRY))}"
"""dtype of ``info["termination_reason"]``."""
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
    dicts of arrays, Gymnasium's vector convention; on a step where rows terminate, the episode
    totals are a dict of ``(num_envs,)`` arrays, ``totals``, masked by ``_totals`` to the rows
    that terminated: a row only truncated by ``max_episode_steps`` has none).
    ``autoreset_mode`` is ``NEXT_STEP`` or ``SAME_STEP``:

    - ``NEXT_STEP`` (Gymnasium's default, RLlib's convention): the step that ends a row returns
      its last observation (to bootstrap a truncation from) and ``infos["totals"]``; the next
      step resets the row: it ignores the row's action and returns the new episode's first
      observation, reward 0, ``terminated`` and ``truncated`` False. That step is no
      transition: a learner drops the rows whose previous step was ``terminated | truncated``.
    - ``SAME_STEP`` (stable-baselines3's convention): rows reset inside the ending step, which
      returns the new episode's first observation; the last observation and info are in
      ``infos["final_obs"]`` / ``infos["final_info"]`` (the totals in
      ``infos["final_info"]["totals"]``, masked by ``infos["final_info"]["_totals"]``).
      As in Gymnasium's vector envs, ``infos["final_obs"]`` is a ``(num_envs,)`` object array:
      row ``i``'s last observation where ``infos["_final_obs"][i]``, None elsewhere.
      Gymnasium's vector observation wrappers refuse ``SAME_STEP``.

    ``reset(seed=s)`` takes one int for the whole batch (not a list of per-row seeds).

    With ``num_envs=1`` and the same seed it reproduces :class:`HedgingEnv` step by step.

    ``render_mode`` (``"ansi"`` or ``"rgb_array"``, as :class:`HedgingEnv`'s) renders the first
    ``render_envs`` paths: :meth:`render` returns a tuple with a line or a picture per path.

    ``observations=False`` makes a state-only env for hedgers that read :attr:`state` only (the
    arena's classical baselines): no observations are built nor written, and ``reset`` and the
    steps return an empty ``(num_envs, 0)`` float32 array in their place. Everything else (the
    state, rewards, infos, the P&L) is the same.

    ``max_episode_steps`` (None: no cap) truncates each row after that many of its decisions,
    as Gymnasium's ``TimeLimit`` does for the single env (``truncated`` is set then, also on a
    step that terminates); ``gym.make_vec(..., max_episode_steps=k)`` passes it here.
    """

    # an instance variable in gymnasium (and replaced in __init__), so not a ClassVar
    metadata: dict[str, Any] = {  # noqa: RUF012
        "render_modes": list(RENDER_MODES),
        "render_fps": 4,
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
        observations: bool = True,
        render_mode: str | None = None,
        render_envs: int = 1,
        max_episode_steps: int | None = None,
        **kwargs: Any,
    ) -> None:
        if not (is_integer(num_envs, integral_floats=True) and num_envs >= 1):
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if max_episode_steps is not None and not (
            is_integer(max_episode_steps) and max_episode_steps >= 1
        ):
            raise ValueError(
                f"max_episode_steps must be None or an integer >= 1, got {max_episode_steps!r}"
            )
        self._max_steps = None if max_episode_steps is None else int(max_episode_steps)
        check_render_mode(render_mode)
        if not (is_integer(render_envs) and 1 <= render_envs <= num_envs):
            raise ValueError(f"render_envs must be an integer in [1, num_envs={num_envs}], "
                             f"got {render_envs!r}")
        self.render_mode = render_mode
        self._figures = StoryFigures()  # rgb_array frames are drawn on kept figures
        self._render_rows = range(int(render_envs))
        self._stories: list[list[tuple[int, float, float]]] = []
        if config is not None and kwargs:
            raise ValueError("give either config=EnvConfig(...) or keyword fields, not both")
        check_config(config)
        mode = parse_autoreset_mode(autoreset_mode)
        self.config = config if config is not None else make_config(preset or self.preset, **kwargs)
        self.num_envs = int(num_envs)
        self._block = _checked_block(block, self.num_envs, self.config)  # before any allocation
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.autoreset_mode = mode
        self.single_observation_space = observation_space(self.config)
        self.single_action_space = action_space(self.config)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.reward_scale = reward_scale(self.config)
        self.core = self.config.core(self.reward_scale)
        self._with_option = self.config.hedge_option is not None
        self._hedge_col = len(EXOGENOUS_FEATURES) + (
            len(OPTION_FEATURES) if self._with_option else 0
        )
        require_bool("VecHedgingEnv", "observations", observations)  # "no" is not False
        self._observe = bool(observations)
        self._no_obs = np.zeros((self.num_envs, 0), dtype=np.float32)
        self._no_obs.flags.writeable = False
        self._source: EpisodeSource | None = None
        self._rows = np.arange(self.num_envs)
        self._n_steps = int(self.config.n_steps or 0)
        self._done = np.zeros(self.num_envs, dtype=bool)
        self._decisions = np.zeros(self.num_envs, dtype=np.int64)  # of the episode (time limit)
        self._set_steps(np.zeros(self.num_envs, dtype=np.int64), 0)
        self._limits = self.config.risk_limits
        self._remark: Remarker | None = None
        self._constants = _Constants(self.num_envs)
        self._stressed = self.core.stressed  # or the batch has fills (see _set_batch)

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

        ``seed`` is an int (or None): the rows' paths come from one generator, so one seed makes
        the whole batch reproducible. A list of per-row seeds (``SyncVectorEnv``'s and
        ``AsyncVectorEnv``'s, ``vectorization_mode="sync"`` / ``"async"``) is refused with a
        ValueError: it could not give row ``i`` the paths of a single env seeded ``seed[i]``.
        """
        if isinstance(seed, list | tuple | np.ndarray):
            raise ValueError(
                f"seed must be an int or None, got the {type(seed).__name__} {seed!r}: the "
                f"native vector env draws its {self.num_envs} rows' paths from one generator, "
                "which one int seeds for the whole batch (a seed per row is SyncVectorEnv's: "
                "vectorization_mode='sync' or 'async')"
            )
        super().reset(seed=seed)
        self.closed = False  # a closed env starts again (close() releases it again)
        if seed is not None or self._source is None:
            self._source = EpisodeSource(
                self.config, self.np_random, self._block, self._observe
            )
        hedge = reset_hedge(options, ("hedge", "episodes"))
        episodes = (options or {}).get("episodes")
        if episodes is None:
            self._set_batch(self._source.take(self.num_envs))
        elif isinstance(episodes, EpisodeBatch) and len(episodes.initial_cash) == self.num_envs:
            if self._observe and has_observations(episodes) and not self.core.permanent_impact:
                # the env writes its positions into the observations: into a copy of its own,
                # not into the caller's batch (shared with other envs, kept by the arena)
                episodes = episodes._replace(observations=episodes.observations.copy())
            self._set_batch(episodes)
        else:
            raise ValueError(
                f"options['episodes'] must be an EpisodeBatch of num_envs={self.num_envs} paths"
            )
        self._begin(ALL_ROWS, hedge)
        self._done = np.zeros(self.num_envs, dtype=bool)
        if self.render_mode == "rgb_array":
            self._stories = [[(0, float(self._hedge[r]), 0.0)] for r in self._render_rows]
        return self._obs(), self._infos(None, ALL_ROWS)

    def _begin(self, rows: Rows, hedge: float = 0.0) -> None:
        """(Re)initialise the hedger's state of ``rows`` at the start of their episodes.

        The position, cash and step arrays are replaced, never written in place, so the arrays
        already handed out (read-only views in :attr:`state`) keep their values uncopied.
        """
        n, ep = self.num_envs, self._batch.episode
        if isinstance(rows, slice):
            self._set_steps(np.zeros(n, dtype=np.int64), 0)
            self._hedge, self._option, self._impact = np.full(n, hedge), np.zeros(n), np.zeros(n)
            self._cash = self._batch.initial_cash - hedge * ep.spot[0]
            self._wealth0 = wealth(ep, 0, self._state_of(rows))
            self._totals = {key: np.zeros(n) for key in TOTAL_KEYS}
            self._stopped = np.zeros(n, dtype=bool)  # ended by a risk limit
            self._stop_breach = np.zeros(n, dtype=np.int64)  # the breach that ended it
            self._peak, self._over = self._wealth0.copy(), np.zeros(n, dtype=np.int64)
            self._flatten = np.zeros(n, dtype=bool)
            self._decisions = np.zeros(n, dtype=np.int64)
            return
        self._set_steps(_with_rows(self._t, rows, 0))
        self._hedge = _with_rows(self._hedge, rows, hedge)
        self._option = _with_rows(self._option, rows, 0.0)
        cash = self._batch.initial_cash[rows] - hedge * ep.spot[0, rows]
        self._cash = _with_rows(self._cash, rows, cash)
        self._impact = _with_rows(self._impact, rows, 0.0)
        self._wealth0[rows] = wealth(episode_rows(ep, rows), 0, self._state_of(rows))
        for total in self._totals.values():
            total[rows] = 0.0
        self._stopped[rows], self._flatten[rows], self._over[rows] = False, False, 0
        self._stop_breach[rows] = 0
        self._peak[rows] = self._wealth0[rows]
        self._decisions[rows] = 0

    def _set_steps(self, steps: np.ndarray, common: int | None = None) -> None:
        """Set every row's market step; ``common`` is the step of all rows when known."""
        self._t = steps
        if common is None and len(steps) and (steps == steps[0]).all():
            common = int(steps[0])
        self._common_step = common

    def _state_of(self, rows: Rows) -> HedgeState:
        return HedgeState(
            self._hedge[rows], self._option[rows], self._cash[rows], self._impact[rows]
        )

    def _set_batch(self, batch: EpisodeBatch, own: bool = False) -> None:
        """Make ``batch`` the current episodes.

        With permanent impact the env re-marks its paths in place, so it works on a copy of its
        own (``own``: the batch is one already) with a :class:`Remarker` of it.
        """
        if self._observe and not has_observations(batch):  # built for a state-only env
            batch = with_observations(self.config, batch)  # (its other arrays are shared)
        if self.core.permanent_impact:
            batch = batch if own else copy_batch(batch)
            self._remark = Remarker(self.config, batch)
        self._batch = batch
        self._stressed = is_stressed(batch.episode, self.core)

    def _replace_rows(self, rows: np.ndarray) -> None:
        """Give ``rows`` fresh episodes from the source."""
        assert self._source is not None
        if len(rows) == self.num_envs:
            self._set_batch(self._source.take(self.num_envs))
            return
        new = self._source.take(len(rows))
        batch = copy_batch(self._batch)  # earlier observations stay as they were returned
        _write_rows(batch, new, rows)
        self._set_batch(batch, own=True)

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
        self, targets: np.ndarray, full_infos: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Like :meth:`step`, but with the positions to hold, in units, instead of actions.

        ``targets`` is ``(num_envs, action_dim)``: units of the underlying (and of the hedging
        option). No scaling and no clipping: this is how classical hedgers, which compute
        positions from :attr:`state`, trade. ``initial_hedge="delta"`` still fixes the first
        position. Non-finite targets, and targets beyond +-:data:`MAX_POSITION` units (1e15,
        the cap of a reset's ``options["hedge"]``), raise ValueError.

        ``full_infos=False`` (``NEXT_STEP`` autoreset only; ignored otherwise) leaves out of the
        infos what :func:`hedgearena.baselines.hedger.run_hedger` does not read: they hold the
        step's result (:data:`STEP_INFO_KEYS`), ``breach`` and, when episodes end, ``totals``
        and ``_totals``, the same arrays as with the full infos.
        """
        values = np.asarray(targets)
        if not holds_real_numbers(values):
            raise ValueError(
                f"targets must be real numbers (units: ints or floats), got an array of dtype "
                f"{values.dtype}"
            )
        values = values.astype(np.float64, copy=False)
        if values.shape != (self.num_envs, self.config.action_dim):
            raise ValueError(
                f"targets must have shape {(self.num_envs, self.config.action_dim)}, "
                f"got {values.shape}"
            )
        _check_targets(values)
        return self._step(values, from_actions=False, full_infos=full_infos)

    def _step(
        self, values: np.ndarray, from_actions: bool, full_infos: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._source is None:
            raise RuntimeError("call reset() before step()")
        rows = self._rows_to_step()
        before = self._hedge  # replaced by the step, never written in place
        stepping = isinstance(rows, slice) or len(rows) > 0
        result, breach = self._advance(rows, values, from_actions) if stepping else (None, None)
        terminated = self._t >= self._n_steps  # rows reset by this step are at step 0
        if self._limits is not None:
            terminated |= self._stopped
        rewards = self._rewards(rows, result, terminated)
        truncated = np.zeros(self.num_envs, dtype=bool)
        if self._max_steps is not None:  # Gymnasium's TimeLimit, row by row
            if stepping:
                self._decisions[rows] += 1
            truncated = self._decisions >= self._max_steps
        full = full_infos or self.autoreset_mode != AutoresetMode.NEXT_STEP
        infos = self._infos(result, rows, terminated, breach, full)
        self._done = terminated | truncated
        if self.autoreset_mode == AutoresetMode.SAME_STEP and self._done.any():
            infos = self._same_step_reset(self._done, infos)
        if self.render_mode == "rgb_array":
            self._record_stories(before, rows, result)
        return self._obs(), rewards, terminated, truncated, infos

    def _record_stories(self, before: np.ndarray, rows: Rows, result: Any) -> None:
        """Add the step's decision to the rendered rows' stories (a new story at a new episode).

        The decision's point is the hedge right after its trade, ``before + trade`` (as
        :class:`HedgingEnv` draws it; at the last step the hedge held is already unwound).
        """
        trades = np.zeros(self.num_envs)
        if result is not None:
            trades[rows] = result.trade
        cost = self._totals["cost"]
        for r, story in zip(self._render_rows, self._stories, strict=True):
            t = int(self._t[r])
            if t == 0:  # the row began a new episode on this step
                story[:] = [(0, float(self._hedge[r]), 0.0)]
            else:  # the decision rebalance_every steps ago
                story.append((t - self.core.rebalance_every, float(before[r] + trades[r]),
                              float(cost[r])))

    def render(self) -> tuple[Any, ...] | None:
        """The first ``render_envs`` paths: a line of text each (``ansi``) or their stories.

        ``rgb_array`` gives one ``(H, W, 3)`` uint8 picture per path, as
        :meth:`HedgingEnv.render` draws it: the spot, the model hedge, the hedge held after each
        decision and the cumulative cost, from the episode's start to the current step.
        """
        from hedgearena.envs.rendering import state_line, story_frame, story_labels

        if self.render_mode is None or self._source is None:
            return None
        if self.render_mode == "ansi":
            view, t = self._episode_view(ALL_ROWS)
            now = wealth(view, t, self._state_of(ALL_ROWS))
            spot, model = view.spot[t], view.model_hedge[t]
            return tuple(
                state_line(int(self._t[r]), float(spot[r]), float(self._hedge[r]),
                           float(model[r]), float(now[r]))
                for r in self._render_rows
            )
        ep, labels = self._batch.episode, story_labels(self.config)
        return tuple(
            story_frame([*story, (int(self._t[r]), float(self._hedge[r]),
                                  float(self._totals["cost"][r]))],
                        ep.spot[:, r], ep.model_hedge[:, r],
                        f"{type(self).__name__} path {r}: step {self._t[r]} of {self._n_steps}",
                        self._figures, labels)
            for r, story in zip(self._render_rows, self._stories, strict=True)
        )

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
                option=True,
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
        model = self.config.initial_hedge == "delta"
        model = (t == 0) if model else None
        if self._limits is not None and self._flatten[rows].any():  # forced by a breach
            flatten = self._flatten[rows].copy()
            model = flatten if model is None else model | flatten
            self._flatten[rows] = False
        if model is not None:
            h_target = np.where(model, view.model_hedge[t], h_target)
            g_target = np.where(model, view.model_option[t], g_target)
        remark = self._remark
        if remark is not None and not isinstance(rows, slice):
            remark = remark.restrict(rows)
        result = transition(
            view, t, self._n_steps, self._state_of(rows), h_target, g_target, core, remark
        )
        t = t + core.rebalance_every
        breach = None
        if self._limits is not None:
            result, breach = self._watch_limits(rows, view, t, result, remark)
        self._store(rows, t, result)
        return result, breach

    def _store(self, rows: Rows, t: Any, result: StepResult) -> None:
        """Keep the rows' new state and step (arrays replaced, see :meth:`_begin`), add totals."""
        if isinstance(rows, slice):
            self._hedge, self._option, self._cash, self._impact = result.state
            common = None if self._common_step is None else int(t)
            self._set_steps(self._t + self.core.rebalance_every, common)
        else:
            self._hedge = _with_rows(self._hedge, rows, result.state.hedge)
            self._option = _with_rows(self._option, rows, result.state.option)
            self._cash = _with_rows(self._cash, rows, result.state.cash)
            self._impact = _with_rows(self._impact, rows, result.state.impact)
            self._set_steps(_with_rows(self._t, rows, t))
        totals = self._totals
        for name in _PLAIN_COMPONENTS:
            _add_rows(totals[name], rows, getattr(result, name))
        _add_rows(totals["pnl"], rows, result.pnl)
        _add_rows(totals["turnover"], rows, np.abs(result.trade))
        _add_rows(totals["trades"], rows, result.trade != 0)
        if self.config.hedge_option is not None:  # else 0
            _add_rows(totals["option_turnover"], rows, np.abs(result.option_trade))
            _add_rows(totals["option_trades"], rows, result.option_trade != 0)
        if self._stressed:  # else these are 0
            _add_rows(totals["impact_pnl"], rows, result.impact_pnl)
            sold = self.core.unwind & ((np.asarray(t) >= self._n_steps) | self._stopped[rows])
            left = np.where(sold, result.state.hedge, 0.0), np.where(sold, result.state.option, 0.0)
            _add_rows(totals["unfilled"], rows, unfilled_units(result.unfilled, left[0]))
            _add_rows(totals["option_unfilled"], rows,
                      unfilled_units(result.option_unfilled, left[1]))
            _add_rows(totals["slippage"], rows, result.slippage)

    def _watch_limits(
        self, rows: Rows, view: Any, t: Any, result: StepResult, remark: Any
    ) -> tuple[StepResult, np.ndarray]:
        """Check the stepped rows' risk limits at their new step ``t``; act on new breaches.

        Returns:
            The result (the rows a ``terminate`` limit stops sell their positions when
            ``unwind`` is set) and the mask of the limits each row crossed now.
        """
        limits, core, state = self._limits, self.core, result.state
        assert limits is not None
        now = wealth(view, t, state)
        peak = np.maximum(self._peak[rows], now)
        self._peak[rows] = peak
        features = self._batch.features
        index = (self._rows[rows], t)
        greeks = {name: getattr(features, name)[index] for name in LIMIT_GREEKS}
        exposure = exposures(
            greeks, view.spot[t], state.hedge, state.option, peak - now, core.notional
        )
        over = over_limits(limits, exposure) + np.zeros(len(now), dtype=np.int64)
        breach = new_breaches(over, self._over[rows])
        self._over[rows] = over
        _add_rows(self._totals["breaches"], rows, count_breaches(breach))
        if limits.action == "flatten":
            self._flatten[rows] |= breach != 0
        elif limits.action == "terminate":
            stop = (breach != 0) & (t < self._n_steps)
            self._stopped[rows] |= stop
            self._stop_breach[rows] = np.where(stop, breach, 0)
            if core.unwind and stop.any():
                result = liquidate(view, t, result, core, stop, remark)
        return result, breach

    def _rewards(self, rows: Rows, result: Any, terminated: np.ndarray) -> np.ndarray:
        """The rewards of the rows stepped (0 for the rows this step reset)."""
        rewards = np.zeros(self.num_envs)
        if result is not None:
            rewards[rows] = reward(
                self.core, result.pnl, self._totals["pnl"][rows], terminated[rows]
            )
        return rewards

    def _same_step_reset(self, done: np.ndarray, infos: dict[str, Any]) -> dict[str, Any]:
        """Reset the rows ``done`` (terminated or truncated) inside the step (``SAME_STEP``)."""
        rows = np.flatnonzero(done)
        everyone = len(rows) == self.num_envs
        final_obs = self._obs()
        final_info = {  # the rows' final infos, masked to the rows that ended (as Gymnasium's;
            # ``totals`` to those that terminated only: a truncated row has no totals)
            key: done.copy() if key.startswith("_") and key != "_totals" else value
            for key, value in infos.items()
        }
        self._replace_rows(rows)
        self._begin(ALL_ROWS if everyone else rows)
        fresh = self._infos(None, ALL_ROWS)
        merged = {
            key: fresh[key] if everyone else np.where(done, fresh[key], infos[key])
            for key in INFO_KEYS
        }
        merged.update({"_" + key: fresh["_" + key] for key in INFO_KEYS})  # every row has them
        merged["final_obs"] = final_observations(final_obs, rows, self.num_envs)
        merged["_final_obs"] = done.copy()
        merged["final_info"] = final_info
        merged["_final_info"] = done.copy()
        self._done = np.zeros(self.num_envs, dtype=bool)
        return merged

    # ------------------------------------------------------------------ observations, infos
    def _obs(self) -> np.ndarray:
        """The observations of every row, with the position entries written in.

        With all rows at one step (the common case) this is a view of the batch's time-major
        array, written once and never changed afterwards; with ``observe_pnl`` a new array with
        the P&L so far appended. A state-only env (``observations=False``) returns an empty
        ``(num_envs, 0)`` array.
        """
        if not self._observe:
            return self._no_obs
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
        if self.config.observe_pnl:  # the P&L so far (the sum of the decisions' P&L)
            pnl = np.divide(self._totals["pnl"], self.reward_scale)
            return np.concatenate([obs, pnl[:, None].astype(np.float32)], axis=1)
        return obs

    def _infos(
        self,
        result: Any,
        rows: Rows,
        terminated: np.ndarray | None = None,
        breach: np.ndarray | None = None,
        full: bool = True,
    ) -> dict[str, Any]:
        """The info dict of a step (``result`` of the ``rows`` stepped; None: no step).

        ``breach`` holds the stepped rows' new limit breaches (None: no limits). Without
        ``full`` only the step's result, ``breach`` and the episode totals (see
        :meth:`step_targets`).
        """
        n = self.num_envs
        stressed = result is not None and self._stressed
        infos: dict[str, Any] = {
            name: self._step_entry(result, rows, name)
            if stressed or name not in STRESS_KEYS else self._constants.zeros
            for name in STEP_INFO_KEYS
        }
        view, t = self._episode_view(ALL_ROWS)
        if full:
            infos.update(self._position_infos(view, t))
        ending = terminated is not None and bool(terminated.any())
        infos["breach"] = self._breach_info(rows, breach)
        if full:
            infos["termination_reason"] = self._termination_reasons(terminated, ending)
            mask = np.ones(n, dtype=bool)
            for key in INFO_KEYS:
                infos["_" + key] = mask
        if ending:
            assert terminated is not None  # ending: some row is terminated
            now = infos["wealth"] if full else wealth(view, t, self._state_of(ALL_ROWS))
            totals = {key: value.copy() for key, value in self._totals.items()}
            totals["terminal_pnl"] = now - self._wealth0
            totals["initial_premium"] = self._batch.initial_cash.copy()
            infos["totals"] = totals
            infos["_totals"] = terminated.copy()
        return infos

    def _position_infos(self, view: Any, t: Any) -> dict[str, Any]:
        """The info entries of the positions, market and wealth now, ``(num_envs,)`` each."""
        n = self.num_envs
        return {
            # copies: the env's own arrays, which a caller writing into its infos would change
            "hedge": self._hedge.copy(),
            "option_position": self._option.copy(),
            "cash": self._cash.copy(),
            "spot": np.array(view.spot[t], dtype=np.float64),  # a copy of the batch's row
            "model_hedge": np.array(view.model_hedge[t], dtype=np.float64),
            "wealth": wealth(view, t, self._state_of(ALL_ROWS)),
            "reward_scale": np.full(n, self.reward_scale),
            "step": self._t.copy(),  # an int64 market step, as the single env's int
        }

    def _breach_info(self, rows: Rows, breach: np.ndarray | None) -> np.ndarray:
        """``info["breach"]``: every row's new limit breaches (the stepped ``rows``' ``breach``)."""
        if breach is None:
            return self._constants.no_breach
        out = np.zeros(self.num_envs, dtype=np.int64)
        out[rows] = breach
        return out

    def _termination_reasons(self, terminated: np.ndarray | None, ending: bool) -> np.ndarray:
        """``info["termination_reason"]``: "", "expiry" or the limit that ended the row.

        ``ending``: whether any row is ``terminated``.
        """
        constants = self._constants
        if terminated is None or not ending:
            return constants.no_reason
        stopped = self._stopped.any()
        if terminated.all() and not stopped:
            return constants.expiry  # the common case (all rows at the horizon): no new array
        reason: Any = EXPIRY
        if stopped:
            reason = np.where(self._stopped, first_breach(self._stop_breach), EXPIRY)
        return np.where(terminated, reason, "").astype(_REASON)

    def _step_entry(self, result: Any, rows: Rows, name: str) -> np.ndarray:
        """The ``name`` entry of a step's result for every row (0 for the rows not stepped)."""
        n = self.num_envs
        if result is None:
            return np.zeros(n)
        value = getattr(result, name)
        if isinstance(rows, slice) and isinstance(value, np.ndarray) and value.shape == (n,):
            return value  # a fresh array of the transition's
        if isinstance(value, float) and value == 0.0 and isinstance(rows, slice):
            return self._constants.zeros  # a component the default path does not have
        out = np.zeros(n)
        out[rows] = value
        return out

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The unnormalised state of every row: the keys of :attr:`HedgingEnv.state`.

        ``(num_envs,)`` arrays, but for the scalars ``rate``, ``dividend`` and ``dt``.

        The arrays are read-only snapshots. The positions and steps are the env's own arrays,
        which a step replaces and never writes; the batch's values are views of its rows when
        every row is at one step (gathered into new arrays otherwise), copied only when
        permanent impact re-marks the batch in place.
        """
        batch, step = self.batch, self._common_step
        view, t = self._episode_view(ALL_ROWS)
        copy = step is not None and self._remark is not None  # views of a batch written later

        def now(path_major: np.ndarray) -> np.ndarray:
            """Every row's value at its step (features are ``(n_paths, n_steps + 1)``)."""
            return path_major[:, step] if step is not None else path_major[self._rows, self._t]

        out: dict[str, Any] = {"step": self._t, "spot": view.spot[t]}
        out.update({name: now(value) for name, value in batch.features._asdict().items()})
        out.update(
            hedge=self._hedge,
            option_position=self._option,
            cash=self._cash,
            model_hedge=view.model_hedge[t],
            model_option=view.model_option[t],
            cost_linear=view.linear[t],
        )
        for name, value in out.items():
            out[name] = _read_only(value, copy=copy and name not in _POSITION_STATE)
        out.update(rate=batch.market.rate, dividend=batch.market.dividend, dt=self.config.dt)
        return out

    @property
    def batch(self) -> EpisodeBatch:
        """The current episodes' exogenous arrays (market paths, book marks, features)."""
        if self._source is None:
            raise RuntimeError("the env has no episodes: call reset() first (also after close())")
        return self._batch

    def close_extras(self, **kwargs: Any) -> None:
        """Release the episodes' arrays (called by :meth:`close`).

        The batch, its re-marking copy and the source's block of built paths go (47 MB for
        16,384 ShortCall paths): a hedger that keeps the env it was reset with (the arena's)
        keeps no paths alive. ``reset`` starts a closed env again, on new paths of its generator
        (not the ones a reset without the close would have given: the released block is gone).
        """
        self._source = None
        self.__dict__.pop("_batch", None)
        self._remark = None
        self._stories = []


def _checked_block(block: Any, num_envs: int, config: EnvConfig) -> int:
    """Paths built at a time, ``max(block, num_envs)``: ``block`` checked, the memory too.

    Raises:
        ValueError: ``block`` is not an integer >= 1, or the blocks of episodes would not fit
            in the machine's memory (naming ``num_envs`` or ``block``, whichever sets them).
    """
    paths = max(check_block(block), num_envs)
    setting = f"num_envs={num_envs:,}" if paths == num_envs else f"block={paths:,}"
    check_episode_memory(paths, int(config.n_steps or 0), setting)
    return paths


def _check_targets(values: np.ndarray) -> None:
    """Raise ``ValueError`` unless every target is finite and within +-:data:`MAX_POSITION`.

    Examples:
        >>> _check_targets(np.array([[1e300], [1.0]]))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: targets must be positions within +-1e+15 units (...), got [1e+300]
    """
    if values.size == 0 or -MAX_POSITION <= values.min() <= values.max() <= MAX_POSITION:
        return  # two reductions, no temporary (a NaN fails the comparisons)
    if not np.isfinite(values).all():
        raise ValueError("targets must be finite positions (units of the instrument)")
    within = np.abs(values) <= MAX_POSITION
    raise ValueError(
        f"targets must be positions within +-{MAX_POSITION:g} units (far past any book; larger "
        f"positions overflow the float32 observations and the wealth), got "
        f"{values[~within][:5].tolist()}"
    )


class _Constants:
    """Read-only info arrays of the entries that do not change on a step (shared, not copied)."""

    def __init__(self, n: int) -> None:
        self.zeros = np.zeros(n)
        self.no_breach = np.zeros(n, dtype=np.int64)
        self.no_reason = np.full(n, "", dtype=_REASON)
        self.expiry = np.full(n, EXPIRY, dtype=_REASON)
        for value in (self.zeros, self.no_breach, self.no_reason, self.expiry):
            value.flags.writeable = False

    def __reduce__(self) -> tuple[type, tuple[int]]:
        """Rebuilt read-only by copies and pickles (which would make the arrays writable)."""
        return _Constants, (len(self.zeros),)


Rows = slice | np.ndarray
"""The rows a step works on: :data:`ALL_ROWS` (the common case: views, no gathers) or indices."""
ALL_ROWS = slice(None)


_POSITION_STATE = ("step", "hedge", "option_position", "cash")
"""The entries of :attr:`VecHedgingEnv.state` that are the env's own arrays, not the batch's."""


def _read_only(values: np.ndarray, copy: bool) -> np.ndarray:
    """A read-only view of ``values`` (of a copy of them if ``copy``)."""
    out = (values.copy() if copy else values).view()
    out.flags.writeable = False
    return out


def final_observations(obs: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """``infos["final_obs"]``: a ``(n,)`` object array of ``obs``' rows ``rows``, None elsewhere.

    Gymnasium's vector envs give the final observations so (``VectorEnv._add_info``), which
    lets wrappers transform each one whatever its shape. The rows are copies.

    Examples:
        >>> final_observations(np.ones((3, 2), np.float32), np.array([1]), 3)
        array([None, array([1., 1.], dtype=float32), None], dtype=object)
    """
    out = np.full(n, None, dtype=object)
    kept = obs[rows]  # a copy (fancy indexing): the batch's rows are written later
    for i, row in zip(rows.tolist(), kept, strict=True):
        out[i] = row
    return out


def _with_rows(values: np.ndarray, rows: np.ndarray, new: Any) -> np.ndarray:
    """A copy of ``values`` with ``rows`` set to ``new`` (``values`` is left as it was)."""
    out = values.copy()
    out[rows] = new
    return out


def _add_rows(total: np.ndarray, rows: Rows, values: Any) -> None:
    """``total[rows] += values`` in place (without the write-back of a view for all rows)."""
    if isinstance(values, float) and values == 0.0:
        return  # a component the default path does not have
    if isinstance(rows, slice):
        total += values
    else:
        total[rows] += values


def _write_rows(batch: EpisodeBatch, new: EpisodeBatch, rows: np.ndarray) -> None:
    """Overwrite ``rows`` of ``batch``'s arrays with ``new``'s paths, in place."""
    for name, value in batch.episode._asdict().items():
        if np.ndim(value) == 2:
            value[:, rows] = getattr(new.episode, name)
        elif np.ndim(value) == 1:
            value[rows] = getattr(new.episode, name)
    for name in Features._fields:
        getattr(batch.features, name)[rows] = getattr(new.features, name)
    if has_observations(batch) and has_observations(new):  # a state-only env's may lack them
        batch.observations[:, rows] = new.observations
    batch.initial_cash[rows] = new.initial_cash
    for name in ("spot", "variance", "vol_state", "liquidity", "fill_fraction", "fill_cap"):
        if getattr(batch.market, name) is not None:
            getattr(batch.market, name)[rows] = getattr(new.market, name)
    for name in batch.instruments._fields:
        getattr(batch.instruments, name)[rows] = getattr(new.instruments, name)
