"""The hedger protocol: one small interface for every hedger, classical or learned.

A hedger sees a batch of paths at once. At the start of a batch of episodes the runner calls
``reset(env)`` (the hedger may read ``env.config``, ``env.batch`` and ``env.core``); at each
decision it calls ``positions(state, obs)`` with the env's unnormalised state (a dict of
``(n_paths,)`` arrays, see :attr:`hedgearena.envs.vector_env.VecHedgingEnv.state`) and the
observations ``(n_paths, n_features)``, and the hedger returns the positions to hold after the
decision, ``(n_paths, action_dim)`` in units of the underlying (and of the hedging option).
The env trades to them (:meth:`~hedgearena.envs.vector_env.VecHedgingEnv.step_targets`) and
books every P&L number, so all hedgers are scored by one set of accounting rules.

The runner calls ``reset`` again for every batch: the arena
(:func:`hedgearena.baselines.arena.run_arena`) steps its paths in blocks of up to
:data:`~hedgearena.baselines.arena.PATH_BLOCK`, the last one smaller, so a hedger that keeps
per-path memory sizes it from ``env.num_envs`` in ``reset``, not once. A path whose episode a
risk limit ended early is still in the arrays (restarted) until the batch ends; what the hedger
asks for it then is not recorded. The positions may be any real numbers numpy reads as such
(float64 or float32 arrays, ints, nested lists); None, booleans, complex numbers, strings and
non-finite values are refused with a ``ValueError`` naming the hedger and the decision.

The state's keys and units are those of
:attr:`hedgearena.envs.hedging_env.HedgingEnv.state`.

A hedger may set ``env_overrides`` (a dict of the fields of
:data:`hedgearena.baselines.arena.ENV_OVERRIDES`) to read the observations and actions of
another view of the same paths, as a learned agent does.

A learned agent that outputs actions in [-1, 1] converts them with
:meth:`~hedgearena.envs.vector_env.VecHedgingEnv.positions_from_actions`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from hedgearena.envs.checks import holds_real_numbers
from hedgearena.envs.core import CoreConfig, Episode, is_stressed
from hedgearena.envs.vector_env import VecHedgingEnv

State = Mapping[str, Any]
"""The env's state dict: read-only ``(n_paths,)`` arrays (and a few scalars: ``rate``,
``dividend``, ``dt``); compute new arrays from them, do not write into them."""


class Hedger(ABC):
    """A hedging strategy over a batch of paths.

    Attributes:
        name: the hedger's label in tables and plots.
        uses_observations: whether :meth:`positions` reads ``obs``. A hedger that reads only
            the state sets it to False (in the class that defines its ``positions``): the
            arena then skips building the float32 observations and passes an empty
            ``(n_paths, 0)`` array. Default True; see :func:`uses_observations`.
        scoring_check: None, or a callable ``(seed, config)`` the arena calls before it scores
            the hedger on the paths of ``seed`` of the env ``config``, raising ``ValueError``
            if those are paths it trained on (a saved agent's,
            :func:`hedgearena.agents.saved.load_saved_agent`).
    """

    name: str = "hedger"
    uses_observations: bool = True
    scoring_check: Callable[[int, Any], None] | None = None

    def reset(self, env: VecHedgingEnv) -> None:  # noqa: B027  (optional hook)
        """Start of a batch of episodes on ``env`` (read its config, batch or core here)."""

    @abstractmethod
    def positions(self, state: State, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        """The positions to hold after this decision.

        Args:
            state: the env's unnormalised state, ``(n_paths,)`` arrays.
            obs: the observations, ``(n_paths, n_features)`` float32.

        Returns:
            ``(n_paths, action_dim)`` positions, units of each instrument (finite real
            numbers: the underlying, then the hedging option when the env has one).
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class EpisodeRecord(NamedTuple):
    """What one hedger did on a batch of episodes.

    ``totals`` holds the env's episode totals, ``(n_paths,)`` each: the P&L components
    (``option_mtm``, ``hedge_pnl``, ``carry``, ``spread_income``, ``impact_pnl``, ``cost``),
    ``pnl``, ``turnover``, ``trades``, ``option_turnover``, ``option_trades``, ``unfilled``,
    ``option_unfilled``, ``slippage``, ``breaches``, ``terminal_pnl`` and ``initial_premium``, and
    ``end_step``: the market step each path's episode ended at (``n_steps``, or earlier where a risk
    limit ended it). ``steps`` holds the decisions' market steps ``(n_decisions,)``; ``hedge``,
    ``option``, ``trade`` and ``cost`` are ``(n_decisions, n_paths)``: positions held after each
    decision (before any unwind), executed trades (units) and the transaction cost of each decision
    (currency, the unwind's included in the last). ``unfilled`` (units of the underlying not
    executed), ``slippage`` (currency) and ``breach`` (the risk limits crossed, a bit mask of
    :data:`hedgearena.envs.limits.BREACH_FLAGS`) are per decision too. A path whose episode a risk
    limit ended early has zeros for the decisions after (and its positions stay).

    The per-decision arrays of a mechanic that is off on the batch (:func:`live_records`:
    ``option`` without a hedging option, ``unfilled`` and ``slippage`` without stress
    execution or fills, ``breach`` without risk limits) are read-only zeros of the same shape
    that take no memory (``np.broadcast_to``).
    """

    totals: dict[str, NDArray[np.float64]]
    steps: NDArray[np.int64]
    hedge: NDArray[np.float64]
    option: NDArray[np.float64]
    trade: NDArray[np.float64]
    cost: NDArray[np.float64]
    unfilled: NDArray[np.float64] | None = None
    slippage: NDArray[np.float64] | None = None
    breach: NDArray[np.int64] | None = None


def uses_observations(hedger: Hedger) -> bool:
    """Whether ``hedger`` reads observations: True unless it says ``uses_observations = False``.

    The flag counts when the instance, or the class that defines the hedger's ``positions``
    (or a subclass of it), sets it: a subclass of a state-only baseline that overrides
    ``positions`` reads observations unless it says otherwise.

    Examples:
        >>> from hedgearena.baselines.delta import BlackScholesDelta
        >>> class Reader(BlackScholesDelta):
        ...     def positions(self, state, obs):
        ...         return super().positions(state, obs)
        >>> uses_observations(BlackScholesDelta()), uses_observations(Reader())
        (False, True)
    """
    own = getattr(hedger, "__dict__", {})
    if "uses_observations" in own:
        return bool(own["uses_observations"])
    for cls in type(hedger).__mro__:
        if "uses_observations" in vars(cls):
            return bool(vars(cls)["uses_observations"])
        if "positions" in vars(cls):
            return True  # positions is defined below any class that set the flag
    return True


def run_hedger(
    env: VecHedgingEnv,
    hedger: Hedger,
    seed: int | None = None,
    episodes: Any = None,
    on_step: Callable[[int], None] | None = None,
    out: Sequence[NDArray[Any]] | None = None,
) -> EpisodeRecord:
    """Run ``hedger`` on one episode of every row of ``env`` and record what it did.

    Args:
        env: the native vector env (``num_envs`` paths).
        hedger: the hedger.
        seed: seed of the env's reset (ignored when ``episodes`` is given).
        episodes: an :class:`~hedgearena.envs.episode.EpisodeBatch` to run on (common random
            numbers: the arena builds one batch and runs every hedger on it).
        on_step: called with the number of decisions done (progress bars).
        out: the record's per-decision arrays to write into, zeros of ``(n_decisions,
            num_envs)``: ``hedge``, ``option``, ``trade``, ``cost``, ``unfilled``, ``slippage``
            (float64) and ``breach`` (int64), e.g. column blocks of a bigger run's arrays (the
            arena writes every block into its run's arrays); the arrays of the fields that
            :func:`live_records` says are off are not written (they may be read-only zeros,
            :func:`zeros_view`). None: new arrays (:func:`record_arrays`).

    Returns:
        The episode totals and the per-decision record.

    Raises:
        ValueError: if the hedger returns positions of the wrong shape or non-finite ones.
    """
    options = None if episodes is None else {"episodes": episodes}
    obs, _ = env.reset(seed=seed, options=options)
    hedger.reset(env)
    n, n_decisions = env.num_envs, env.config.n_decisions
    shape = (n_decisions, n)
    live = live_records(env.core, env.config.action_dim, env.batch.episode)
    hedge, option, trade, cost, unfilled, slippage, breach = (
        record_arrays(shape, live) if out is None else _checked_out(out, shape)
    )
    written = [(values, key) for values, key, on in (
        (trade, "trade", True), (cost, "cost", True), (unfilled, "unfilled", live["unfilled"]),
        (slippage, "slippage", live["slippage"]), (breach, "breach", live["breach"]),
    ) if on]
    steps = np.arange(n_decisions, dtype=np.int64) * env.config.rebalance_every
    running = np.ones(n, dtype=bool)  # rows still in their first episode
    totals: dict[str, NDArray[np.float64]] = {}
    for k in range(n_decisions):
        targets = _checked_positions(hedger, env, obs, k)
        obs, terminated, infos = _step(env, hedger, targets, k)
        every = bool(running.all())  # the common case: no row has ended early
        for values, key in written:
            values[k] = infos[key] if every else np.where(running, infos[key], 0)
        hedge[k] = (hedge[k - 1] if k else 0.0) + trade[k]
        if live["option"]:
            option_trade = infos["option_trade"]
            option[k] = (option[k - 1] if k else 0.0) + (
                option_trade if every else np.where(running, option_trade, 0.0))
        ended = terminated & running
        _collect_totals(totals, infos, ended)
        if ended.any():
            end = totals.setdefault("end_step", np.zeros(n))
            end[ended] = steps[k] + env.config.rebalance_every
        running &= ~terminated
        if on_step is not None:
            on_step(k + 1)
        if not running.any():
            break
    if running.any():
        raise RuntimeError("episodes did not end after n_decisions decisions")
    check_finite_totals(hedger.name, totals, hedge)
    return EpisodeRecord(totals, steps, hedge, option, trade, cost, unfilled, slippage, breach)


def _step(env: VecHedgingEnv, hedger: Hedger, targets: NDArray[np.float64],
          decision: int) -> tuple[Any, NDArray[np.bool_], dict[str, Any]]:
    """Step ``env`` to the hedger's checked positions; the env's refusal names the hedger."""
    try:
        obs, _, terminated, _, infos = env.step_targets(targets, full_infos=False)
    except ValueError as error:  # positions the env cannot trade (beyond its largest)
        raise ValueError(f"{hedger.name}: the env refused its positions at decision "
                         f"{decision}: {error}") from None
    return obs, terminated, infos


SUMMED_TOTALS = ("pnl", "terminal_pnl", "cost", "turnover")
"""The totals :func:`check_finite_totals` reads first: the P&L sums its components."""


def check_finite_totals(name: str, totals: Mapping[str, NDArray[np.float64]],
                        hedge: NDArray[np.float64]) -> None:
    """Raise ``ValueError`` if a hedger's episode totals overflowed (inf or NaN P&L or cost).

    Finite positions can still be too big for the accounting (``1e200`` units times a price
    overflows float64): its scores would be inf and NaN, and its tests meaningless.

    Raises:
        ValueError: naming the hedger ``name``, the totals that are not finite, on how many
            paths, and the largest position it held (``hedge``, units).
    """
    if all(np.isfinite(totals[key]).all() for key in SUMMED_TOTALS if key in totals):
        return  # every P&L component is summed into pnl: a non-finite one makes it so
    bad = {key: ~np.isfinite(values) for key, values in totals.items()}
    bad = {key: rows for key, rows in bad.items() if rows.any()}
    key, rows = next(iter(bad.items()))
    path = int(np.flatnonzero(rows)[0])
    largest = float(np.max(np.abs(hedge))) if hedge.size else 0.0
    raise ValueError(
        f"{name}: its P&L overflowed: the totals {sorted(bad)} are not finite (on "
        f"{int(rows.sum())} path(s) of the block; path {path}: {key} = {totals[key][path]}); "
        f"its positions reach {largest:.3g} units: a hedger's positions must be sized so that "
        "the P&L (positions x prices) is a finite float64"
    )


RECORD_FIELDS = ("hedge", "option", "trade", "cost", "unfilled", "slippage", "breach")
"""The per-decision fields of :class:`EpisodeRecord` (after ``steps``), in its order."""
RECORD_DTYPES = {**dict.fromkeys(RECORD_FIELDS, np.float64), "breach": np.int64}
"""Each record field's dtype (``breach`` is a bit mask)."""


def live_records(core: CoreConfig, action_dim: int, episode: Episode) -> dict[str, bool]:
    """Which per-decision record fields can be non-zero on a batch (:data:`RECORD_FIELDS`).

    ``option`` needs a hedging option (``action_dim`` 2); ``unfilled`` and ``slippage`` the
    core's stressed path (:func:`hedgearena.envs.core.is_stressed`: stress execution, permanent
    impact, risk limits or fills in the ``episode``), which is the only one that books them;
    ``breach`` risk limits. ``hedge``, ``trade`` and ``cost`` always.

    Examples:
        >>> env = VecHedgingEnv(num_envs=2, preset="ShortCall")
        >>> _ = env.reset(seed=0)
        >>> live = live_records(env.core, env.config.action_dim, env.batch.episode)
        >>> [name for name in RECORD_FIELDS if live[name]]
        ['hedge', 'trade', 'cost']
    """
    stressed = is_stressed(episode, core)
    return {"hedge": True, "option": action_dim > 1, "trade": True, "cost": True,
            "unfilled": stressed, "slippage": stressed, "breach": core.risk_limits is not None}


def record_arrays(
    shape: tuple[int, int], live: Mapping[str, bool] | None = None
) -> list[NDArray[Any]]:
    """Zeros for a record's per-decision arrays, ``shape`` each, in its order.

    ``hedge``, ``option``, ``trade``, ``cost``, ``unfilled``, ``slippage`` (float64), ``breach``
    (int64): the fields of :class:`EpisodeRecord` after ``steps`` (:data:`RECORD_FIELDS`).
    A field that ``live`` says is off gets read-only zeros taking no memory (None: all live).
    """
    return [
        np.zeros(shape, RECORD_DTYPES[name]) if live is None or live[name]
        else zeros_view(shape, RECORD_DTYPES[name]) for name in RECORD_FIELDS
    ]


def zeros_view(shape: tuple[int, ...], dtype: Any = np.float64) -> NDArray[Any]:
    """Read-only zeros of ``shape`` that take no memory (a broadcast of one zero)."""
    return np.broadcast_to(np.zeros((), dtype), shape)


def _checked_out(out: Sequence[NDArray[Any]], shape: tuple[int, int]) -> list[NDArray[Any]]:
    """``run_hedger``'s ``out`` arrays, checked: seven of ``shape`` (``breach`` int64 last)."""
    arrays = list(out)
    if len(arrays) != 7 or any(a.shape != shape for a in arrays):
        raise ValueError(f"out must hold 7 arrays of shape {shape}")
    if arrays[-1].dtype != np.int64:
        raise ValueError("out's last array (breach) must be int64")
    return arrays


def _positions(hedger: Hedger, env: VecHedgingEnv, obs: NDArray[np.float32],
               decision: int) -> Any:
    """``hedger.positions`` of the env's state; a write into the read-only state named.

    Raises:
        ValueError: the hedger wrote into the state's arrays (numpy's "assignment
            destination is read-only"), naming the hedger, the decision and the fix.
    """
    try:
        return hedger.positions(env.state, obs)
    except ValueError as error:
        if "read-only" not in str(error):
            raise
        raise ValueError(
            f"{hedger.name}: positions() wrote into a read-only array at decision {decision} "
            f"({error}): the state's arrays (and the env's paths) are read-only snapshots; copy "
            "what you need (e.g. np.array(state['book_delta'])) and compute new arrays from it"
        ) from None


def _checked_positions(
    hedger: Hedger, env: VecHedgingEnv, obs: NDArray[np.float32], decision: int = 0
) -> NDArray[np.float64]:
    """The hedger's positions, checked: ``(num_envs, action_dim)`` finite real units.

    Real numbers are ints or floats of any precision (arrays, lists or objects numpy reads as
    such); None, booleans, complex numbers, strings and other objects are refused, naming the
    hedger, the decision and what is allowed.
    """
    shape = (env.num_envs, env.config.action_dim)
    positions = _positions(hedger, env, obs, decision)
    refused = f"{hedger.name}: positions must be numbers (units), an array of shape {shape}; got"
    allowed = "real numbers (ints or floats, e.g. a float64 array) are allowed"
    if positions is None:
        raise ValueError(f"{refused} None at decision {decision} (does positions() return them?)")
    if np.ma.is_masked(positions):
        raise ValueError(f"{refused} a masked array with masked entries at decision {decision}")
    try:
        values = np.asarray(positions)
    except (TypeError, ValueError, RuntimeError) as error:  # ragged lists, tensors with grad
        raise ValueError(
            f"{refused} {type(positions).__name__} at decision {decision}, which numpy cannot "
            f"read as an array ({error})"
        ) from None
    if not holds_real_numbers(values):
        raise ValueError(
            f"{refused} {type(positions).__name__} of dtype {values.dtype} at decision "
            f"{decision}; {allowed}"
        )
    try:
        targets = values.astype(np.float64, copy=False)
    except OverflowError:  # Python ints beyond any float
        raise ValueError(
            f"{hedger.name}: positions must be finite (units); got numbers beyond float64 at "
            f"decision {decision}"
        ) from None
    if targets.shape != shape:
        columns = "the underlying, the hedging option" if shape[1] > 1 else "the underlying"
        raise ValueError(
            f"{hedger.name}: positions must have shape {shape} (a row per path; columns: "
            f"{columns}), got {targets.shape}"
        )
    finite = np.isfinite(targets)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=1))
        raise ValueError(
            f"{hedger.name}: positions must be finite (units); got {int((~finite).sum())} "
            f"non-finite value(s) at decision {decision} on {bad.size} path(s), the first "
            f"path {int(bad[0])}: {targets[bad[0]].tolist()}"
        )
    return targets


def _collect_totals(
    totals: dict[str, NDArray[np.float64]], infos: dict[str, Any], ended: NDArray[np.bool_]
) -> None:
    """Keep the episode totals of the rows ``ended`` (the env's ``totals`` info).

    With ``same_step`` autoreset the totals are in ``infos["final_info"]``.
    """
    if not ended.any():
        return
    source = infos.get("final_info", infos)["totals"]
    for key, value in source.items():
        total = totals.setdefault(key, np.zeros(len(ended)))
        total[ended] = np.asarray(value, dtype=np.float64)[ended]


def check_agent_spaces(name: str, observation_space: Any, action_space: Any,
                       env: VecHedgingEnv) -> None:
    """Raise a ValueError unless a trained agent's spaces are ``env``'s (its view applied).

    A saved agent reads a flat observation vector and writes one action per instrument; scored
    on an env with other entries (a hedging option adds five entries and an action, the P&L so
    far one entry) its network would fail deep inside numpy or torch, or read the wrong entries.

    Args:
        name: the agent's label (named in the error).
        observation_space: the Box the agent was trained on.
        action_space: the Box of its actions.
        env: the env it is about to hedge (the hedger's view of the scored env).
    """
    from hedgearena.envs.episode import feature_names, observation_names

    trained = (_shape(observation_space), _shape(action_space))
    given = (_shape(env.single_observation_space), _shape(env.single_action_space))
    if trained == given:
        return
    names = observation_names(env.config)
    option = "with" if env.config.hedge_option is not None else "without"
    option_entries = len(feature_names(True)) - len(feature_names(False))
    raise ValueError(
        f"{name} was trained on observations of shape {trained[0]} and actions of shape "
        f"{trained[1]}; this env ({option} a hedging option, observe_pnl="
        f"{env.config.observe_pnl}) gives observations of shape {given[0]} ({', '.join(names)}) "
        f"and takes actions of shape {given[1]}: score an agent on the env it was trained on "
        f"(a hedging option adds {option_entries} observation entries and an action; "
        "observe_pnl adds pnl)"
    )


def _shape(space: Any) -> tuple[int, ...]:
    return tuple(getattr(space, "shape", None) or ())
