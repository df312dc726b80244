"""Environment configuration: one frozen, validated object per env, buildable from keywords.

Every keyword of ``gym.make("hedgearena/...", **kwargs)`` is a field of :class:`EnvConfig`.
Objects (a market model, a cost model, an option book) may be given directly, or as plain data:
``market="heston", market_kwargs={"kappa": 2.0}``, ``cost={"proportional": 0.01}``,
``book={"options": [{"moneyness": 1.0, "expiry_steps": 60}]}``, which is what YAML configs hold.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hedgearena.envs.book import ClientFlow, HedgeOption, Option, OptionBook
from hedgearena.envs.checks import is_integer, is_number
from hedgearena.envs.core import INITIAL_HEDGES, MAX_LIMIT, CoreConfig
from hedgearena.envs.limits import RiskLimits
from hedgearena.envs.market import MarketModel

MARKET_MODELS = ("gbm", "heston", "sabr", "merton", "historical")
MIN_REWARD_SCALE = 1e-9
"""Smallest ``reward_scale`` (currency per unit of reward): far below any book's premium, and
bounded so that the rewards and the observed P&L (float32) cannot overflow (1e-320 made the
rewards inf)."""


def keywords(factory: Callable[..., Any]) -> list[str]:
    """The keyword arguments ``factory`` takes (a class's ``__init__`` or a function's)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [n for n, p in inspect.signature(factory).parameters.items() if p.kind in kinds]


def checked_keywords(what: str, given: Any, allowed: Iterable[str]) -> dict[str, Any]:
    """``given`` as a dict of keywords, or ``ValueError`` naming the unknown keys and the allowed.

    Examples:
        >>> checked_keywords("book", {"option": []}, ["options", "stock", "client_flow"])
        Traceback (most recent call last):
        ...
        ValueError: unknown book key(s) ['option']; allowed: ['client_flow', 'options', 'stock']
    """
    if not isinstance(given, Mapping):
        raise ValueError(f"{what} must be a dict of keywords, got {given!r}")
    unknown = sorted(str(key) for key in set(given) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} key(s) {unknown}; allowed: {sorted(allowed)}")
    return dict(given)


def _market_factory(name: str) -> Callable[..., MarketModel]:
    """The constructor of the market model called ``name``."""
    if name == "gbm":
        from hedgearena.envs.gbm import GBM

        return GBM
    if name == "heston":
        from hedgearena.envs.heston import Heston

        return Heston
    if name == "sabr":
        from hedgearena.envs.sabr import SABR

        return SABR
    if name == "merton":
        from hedgearena.envs.merton import MertonJumpDiffusion

        return MertonJumpDiffusion
    if name == "historical":
        from hedgearena.envs.historical import HistoricalReplay

        return HistoricalReplay.load
    raise ValueError(
        f"market must be one of {', '.join(MARKET_MODELS)} or a MarketModel; got {name!r}"
    )


def make_market(name: str, **kwargs: Any) -> MarketModel:
    """Build a market model from its name and keyword arguments.

    Args:
        name: one of :data:`MARKET_MODELS`.
        **kwargs: the model's fields (``historical`` takes the keywords of
            :meth:`hedgearena.envs.historical.HistoricalReplay.load`: an embedded ``series``
            or the user's ``csv``, ``start`` and ``end`` dates, ``rate``, ``dividend``).

    Raises:
        ValueError: an unknown name, or a keyword the model does not take (the allowed listed).
    """
    factory = _market_factory(name)
    return factory(**checked_keywords(f"market_kwargs (market={name!r})", kwargs,
                                      keywords(factory)))


def _make_option(spec: Any) -> Option:
    """An :class:`Option` from itself or a dict of its fields."""
    if isinstance(spec, Option):
        return spec
    return Option(**checked_keywords("book option", spec, keywords(Option)))


def _make_flow(spec: Any) -> ClientFlow | None:
    """A :class:`ClientFlow` from itself, None or a dict of its fields (lists as tuples)."""
    if spec is None or isinstance(spec, ClientFlow):
        return spec
    data = checked_keywords("book client_flow", spec, keywords(ClientFlow))
    return ClientFlow(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def make_book(spec: OptionBook | dict[str, Any]) -> OptionBook:
    """An :class:`OptionBook` from itself or from plain data (lists of option dicts)."""
    if isinstance(spec, OptionBook):
        return spec
    if not isinstance(spec, dict):
        raise ValueError(f"book must be an OptionBook or a dict, got {type(spec).__name__}")
    data = checked_keywords("book", spec, keywords(OptionBook))
    options = data.pop("options", ())
    if not isinstance(options, list | tuple):
        raise ValueError(f"book options must be a list of option dicts, got {options!r}")
    flow = _make_flow(data.pop("client_flow", None))
    return OptionBook(options=tuple(map(_make_option, options)), client_flow=flow, **data)


def default_n_steps(book: OptionBook) -> int:
    """The ``n_steps`` of a config that leaves it unset: the latest expiry of the initial options.

    Raises:
        ValueError: the book has no initial options (``n_steps`` must then be given).
    """
    horizon = max((o.expiry_steps for o in book.options), default=0)
    if horizon == 0:
        raise ValueError("n_steps is required for a book with no initial options")
    return int(horizon)


def make_hedge_option(spec: Any) -> HedgeOption | None:
    """The hedging option from itself, a dict of its fields, True (the default one), or None.

    False is None (no hedging option), so ``hedge_option: false`` in a YAML config reads as
    it says.
    """
    if spec is None or spec is False:
        return None
    if isinstance(spec, HedgeOption):
        return spec
    if spec is True:
        return HedgeOption()
    if isinstance(spec, dict):
        return HedgeOption(**checked_keywords("hedge_option", spec, keywords(HedgeOption)))
    raise ValueError(
        f"hedge_option must be a HedgeOption, a dict of its fields, True (the default one), "
        f"or None or False (none); got {spec!r}"
    )


def make_cost(spec: Any) -> Any:
    """A cost model from itself, a number (proportional rate) or a dict of named models."""
    from hedgearena.envs.frictions import CostModel, ProportionalCost, cost_model_from_config

    if isinstance(spec, CostModel):
        return spec
    if isinstance(spec, int | float) and not isinstance(spec, bool):  # True is not a rate
        return ProportionalCost(float(spec))
    if isinstance(spec, dict):
        return cost_model_from_config(spec)
    raise ValueError(f"cost must be a CostModel, a number or a dict of cost models; got {spec!r}")


@dataclass(frozen=True)
class EnvConfig:
    """Everything that defines a hedging environment.

    Attributes:
        market: the market model (an object, or a name of :data:`MARKET_MODELS`; default
            ``"gbm"``).
        market_kwargs: keywords of the named market model.
        book: the option book to hedge (its stock at most ``MAX_LIMIT`` notionals, the bound
            of the action ranges: :data:`hedgearena.envs.core.MAX_LIMIT`).
        cost: the cost of trading the underlying (see :mod:`hedgearena.envs.frictions`; default
            0.01, a proportional cost of 1% of the traded value).
        hedge_option: a listed option the hedger may also trade, or None.
        n_steps: market steps per episode (default: the latest expiry of the initial options).
        days_per_year: market steps per year (250 or 252 trading days; ``dt = 1 / days``).
        rebalance_every: market steps per decision (must divide ``n_steps``).
        initial_hedge: ``zero`` (start unhedged) or ``delta`` (the first trade's target is the
            model delta whatever the action; it pays its cost).
        action_mode, reward_mode, risk_aversion, pnl_reference, position_limit,
        option_position_limit, trade_limit, band_limit, lot_size, unwind: see
        :class:`hedgearena.envs.core.CoreConfig`; ``option_position_limit`` also caps the
        model's position in the hedging option.
        reward_scale: currency per unit of reward (at least :data:`MIN_REWARD_SCALE`); None =
            the premium of an at-the-money option on the book's notional,
            ``0.4 * sigma * sqrt(T) * S0 * notional`` (Brenner and Subrahmanyam 1988) with
            the market's initial vol, floored at 1%; where the start varies (the replay) the
            median of that over 256 seeded starting states
            (:func:`hedgearena.envs.hedging_env.default_reward_scale`).
        realised_vol_halflife: half-life, in market steps, of the EWMA realised-vol feature.
        observe_pnl: append the episode's P&L so far, ``(W_t - W_0) / reward_scale``, to the
            observation (an entry ``pnl`` after the positions; default False). An objective
            of the whole episode's P&L such as ``mean + c std`` of the hedging cost is not
            time-consistent: its best policy depends on the P&L made so far, which a policy of
            the market state alone cannot see (see the ``terminal_mean_variance`` reward).
        permanent_impact: permanent price impact of the hedger's own trades, the log move of
            the spot per notional traded (>= 0, default 0 = none): buying (selling) ``N`` units
            multiplies the spot by ``e^k`` (``e^-k``, about ``1 - k``) for the rest of the
            episode (needs ``unwind=True``); see :mod:`hedgearena.envs.core`.
        execution: how a decision's order is executed over its ``rebalance_every`` market
            steps: ``immediate`` (default), ``twap`` or ``participation`` (see
            :mod:`hedgearena.envs.execution`).
        execution_rate: ``participation``'s largest child order per market step, as a
            fraction of the notional at normal liquidity (divided by the step's ``liquidity``
            multiplier), > 0; default 0.1.
        risk_limits: a :class:`hedgearena.envs.limits.RiskLimits`, a dict of its fields, or
            None (default: no limits).

    Episodes end at the book's horizon (``terminated``); the envs never truncate by themselves. A
    time limit is Gymnasium's: ``gym.make(id, max_episode_steps=k)`` on the single env, or
    ``gym.make_vec(id, n, vectorization_mode="vector_entry_point", max_episode_steps=k)`` (the
    native vector env truncates each row after ``k`` decisions, as ``TimeLimit`` does).
    """

    market: Any = "gbm"
    market_kwargs: dict[str, Any] = field(default_factory=dict)
    book: Any = field(default_factory=OptionBook)
    cost: Any = 0.01
    hedge_option: Any = None
    n_steps: int | None = None
    days_per_year: float = 252.0
    rebalance_every: int = 1
    initial_hedge: str = "zero"
    action_mode: str = "target"
    reward_mode: str = "pnl"
    risk_aversion: float = 0.0
    pnl_reference: float = 0.0
    position_limit: float = 1.5
    option_position_limit: float = 10.0
    trade_limit: float = 0.5
    band_limit: float = 0.5
    lot_size: float = 0.0
    unwind: bool = True
    reward_scale: float | None = None
    realised_vol_halflife: float = 10.0
    observe_pnl: bool = False
    permanent_impact: float = 0.0
    execution: str = "immediate"
    execution_rate: float = 0.1
    risk_limits: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.market_kwargs, Mapping):
            raise ValueError(
                f"market_kwargs must be a dict of the market model's keywords, "
                f"got {self.market_kwargs!r}"
            )
        if isinstance(self.market, str):
            object.__setattr__(self, "market", make_market(self.market, **self.market_kwargs))
        elif self.market_kwargs:
            raise ValueError("market_kwargs is only used with a market name (e.g. market='heston')")
        if not isinstance(self.market, MarketModel):
            raise ValueError(
                f"market must be a MarketModel or a name, got {type(self.market).__name__}"
            )
        object.__setattr__(self, "book", make_book(self.book))
        object.__setattr__(self, "cost", make_cost(self.cost))
        object.__setattr__(self, "hedge_option", make_hedge_option(self.hedge_option))
        object.__setattr__(self, "risk_limits", RiskLimits.from_spec(self.risk_limits))
        if self.n_steps is None:
            object.__setattr__(self, "n_steps", default_n_steps(self.book))
        self._validate()

    def _validate(self) -> None:
        notional = self.book.notional
        if not is_number(notional, gt=0.0):
            raise ValueError(
                "the book's notional (the largest |contracts| * multiplier of an option or a "
                f"client trade) must be a finite number > 0, got {notional!r}: give an option "
                "non-zero contracts"
            )
        if self.initial_hedge not in INITIAL_HEDGES:
            raise ValueError(
                f"initial_hedge must be one of {', '.join(INITIAL_HEDGES)}; "
                f"got {self.initial_hedge!r}"
            )
        self._validate_sizes()
        if not is_number(self.realised_vol_halflife, gt=0.0):
            raise ValueError(
                "realised_vol_halflife must be a finite number > 0 steps, "
                f"got {self.realised_vol_halflife!r}"
            )
        if not isinstance(self.observe_pnl, bool):
            raise ValueError(f"observe_pnl must be True or False, got {self.observe_pnl!r}")
        if not is_number(self.execution_rate, gt=0.0):
            raise ValueError(
                "execution_rate must be a finite number > 0 (fraction of the notional per "
                f"market step), got {self.execution_rate!r}"
            )
        self.core(1.0)  # validates the core's fields (rebalance_every among them)
        self._validate_grid()

    def _validate_sizes(self) -> None:
        """Check ``reward_scale`` (:data:`MIN_REWARD_SCALE`) and the book's stock.

        The stock is at most :data:`~hedgearena.envs.core.MAX_LIMIT` notionals, the bound of the
        hedge's action ranges: the observations hold the book's delta in notionals (float32).
        """
        scale = self.reward_scale
        if scale is not None and not is_number(scale, gt=0.0):
            raise ValueError(f"reward_scale must be > 0 or None, got {scale!r}")
        if scale is not None and scale < MIN_REWARD_SCALE:
            raise ValueError(
                f"reward_scale must be >= {MIN_REWARD_SCALE:g} (currency per unit of reward; "
                f"smaller scales overflow the rewards and the observed P&L) or None, got {scale!r}"
            )
        notional, stock = self.book.notional, self.book.stock
        if abs(stock) > MAX_LIMIT * notional:
            raise ValueError(
                f"the book's stock must be within +-{MAX_LIMIT:g} notionals (|stock| <= "
                f"{MAX_LIMIT * notional:g} units for this book's notional of {notional:g}; "
                f"larger positions overflow the float32 observations), got {stock!r}"
            )

    def _validate_grid(self) -> None:
        """Check the grid: ``n_steps``, ``days_per_year``, the hedging option's expiry.

        ``rebalance_every`` is checked by the core first; here that it divides ``n_steps``.
        """
        n_steps = self.n_steps
        assert n_steps is not None  # set from the book in __post_init__
        if not (is_integer(n_steps) and n_steps >= 1):
            raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
        if not is_number(self.days_per_year, gt=0.0):
            raise ValueError(
                f"days_per_year must be > 0 (e.g. 250 or 252), got {self.days_per_year!r}"
            )
        if n_steps % self.rebalance_every:
            raise ValueError(
                f"rebalance_every ({self.rebalance_every}) must divide n_steps ({n_steps})"
            )
        if self.hedge_option is not None and self.hedge_option.expiry_steps <= n_steps:
            raise ValueError(
                f"hedge_option.expiry_steps ({self.hedge_option.expiry_steps}) must exceed "
                f"n_steps ({n_steps})"
            )
        window_starts = getattr(self.market, "window_starts", None)
        if window_starts is not None:  # a replayed series: it must hold one window
            window_starts(n_steps)

    @property
    def dt(self) -> float:
        """Years per market step."""
        return 1.0 / self.days_per_year

    @property
    def n_decisions(self) -> int:
        """Decisions per episode."""
        assert self.n_steps is not None
        return self.n_steps // self.rebalance_every

    @property
    def action_dim(self) -> int:
        """1 (the underlying) or 2 (the underlying and the hedging option)."""
        return 1 if self.hedge_option is None else 2

    def core(self, reward_scale: float) -> CoreConfig:
        """The transition's conventions."""
        return CoreConfig(
            action_mode=self.action_mode,
            reward_mode=self.reward_mode,
            risk_aversion=self.risk_aversion,
            pnl_reference=self.pnl_reference,
            reward_scale=reward_scale,
            notional=self.book.notional,
            position_limit=self.position_limit,
            option_position_limit=self.option_position_limit,
            trade_limit=self.trade_limit,
            band_limit=self.band_limit,
            lot_size=self.lot_size,
            unwind=self.unwind,
            rebalance_every=self.rebalance_every,
            execution=self.execution,
            permanent_impact=self.permanent_impact,
            risk_limits=self.risk_limits,
        )

    def replace(self, **changes: Any) -> EnvConfig:
        """A copy with some fields changed (validated again).

        The market is already built, so its keywords are not passed again: a new market name
        starts from that model's defaults, updated by the ``market_kwargs`` that come with it
        (``replace(market="heston", market_kwargs={...})``), as in :func:`make_config`.

        Examples:
            >>> config = make_config("ShortCall")
            >>> config.replace(cost=0.002).cost
            ProportionalCost(rate=0.002)
            >>> type(config.replace(market="heston").market).__name__
            'Heston'
        """
        check_env_keywords(changes)
        changes.setdefault("market_kwargs", {})
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A plain description for logs and saved configs: :func:`plain_data` of each field.

        Objects are shown by their repr; mappings such as ``market_kwargs`` stay mappings.
        """
        return {f.name: plain_data(getattr(self, f.name)) for f in dataclasses.fields(self)}


def plain_data(value: Any) -> Any:
    """A YAML- and JSON-safe copy: numpy scalars to floats, tuples to lists, others to repr."""
    if isinstance(value, dict):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_data(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, int | float | str | bool):
        return value
    return repr(value)


PRESETS: dict[str, dict[str, Any]] = {
    "ShortCall": {
        "market": "gbm",
        "market_kwargs": {"mu": 0.05, "sigma": 0.2, "spot0": 100.0},
        "book": OptionBook(options=(Option(moneyness=1.0, expiry_steps=20, contracts=-1.0),)),
        "cost": 0.01,
        "days_per_year": 250.0,
    },
    "OptionBook": {
        "market": "heston",
        "market_kwargs": {
            "kappa": 2.0,
            "theta": 0.04,
            "xi": 0.5,
            "rho": -0.7,
            "v0": 0.04,
            "spot0": 100.0,
        },
        "book": OptionBook(options=(), client_flow=ClientFlow()),
        "n_steps": 60,
        "cost": {"proportional": 0.0005, "spread": {"half_spread": 0.0005}},
        "hedge_option": None,
        "days_per_year": 252.0,
        # The book accumulates dozens of client trades (the notional is one trade): the
        # action ranges cover its delta (99th percentile about 9 notionals over all path-steps;
        # 0.6% exceed the 10 of position_limit, measured on 4,000 paths) and most of the
        # hedging option needed for gamma neutrality.
        "position_limit": 10.0,
        "trade_limit": 2.0,
        "band_limit": 2.0,
    },
    # Portfolio insurance: the fund owes its investors N max(S_T, K) = N (K - S_T)^+ + N S_T,
    # N = 100 units of the index, K = 90% of S_0, in 3 months (63 days). Both legs are written
    # as short options so that their fair value enters the cash account at the start (the
    # investors' money): the floor put, and the promise of N S_T as a zero-strike call (a
    # low-exercise-price option, strike 1e-6 S_0: N (S_T - 1e-6 S_0) misses N S_T by 0.01).
    # See the manual of hedgearena.envs.registered.PortfolioInsuranceEnv.
    "PortfolioInsurance": {
        "market": "gbm",
        "market_kwargs": {"mu": 0.05, "sigma": 0.2, "spot0": 100.0, "rate": 0.02},
        "book": OptionBook(
            options=(
                Option(moneyness=0.9, expiry_steps=63, contracts=-1.0, is_call=False),
                Option(moneyness=1e-6, expiry_steps=63, contracts=-1.0, is_call=True),
            )
        ),
        "cost": 0.001,
        "days_per_year": 252.0,
    },
    "HistoricalReplay": {
        "market": "historical",
        "book": OptionBook(options=(Option(moneyness=1.0, expiry_steps=21, contracts=-1.0),)),
        "cost": 0.001,
        "days_per_year": 252.0,
    },
}


def make_config(preset: str | None = None, **overrides: Any) -> EnvConfig:
    """The config of a registered env with keyword overrides.

    ``preset`` is ``ShortCall``, ``OptionBook``, ``PortfolioInsurance`` or
    ``HistoricalReplay``; None starts from :class:`EnvConfig`'s defaults.
    ``market_kwargs`` update the preset's market keywords (the others keep the preset's
    values) unless another market is named, which starts from that model's defaults.

    Examples:
        >>> make_config("PortfolioInsurance", market_kwargs={"sigma": 0.3}).market
        GBM(mu=0.05, sigma=0.3, spot0=100.0, rate=0.02, dividend=0.0, surface=FlatVol())
    """
    if preset is None:
        return _config(overrides)
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {preset!r}")
    kwargs = dict(PRESETS[preset])
    same_market = overrides.get("market", kwargs["market"]) == kwargs["market"]
    if not same_market:
        kwargs.pop("market_kwargs", None)
    elif isinstance(overrides.get("market_kwargs"), Mapping):
        overrides = {**overrides, "market_kwargs": {**kwargs.get("market_kwargs", {}),
                                                    **overrides["market_kwargs"]}}
    kwargs.update(overrides)
    return _config(kwargs)


def check_env_keywords(kwargs: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the keys of ``kwargs`` that are not :class:`EnvConfig` fields.

    Examples:
        >>> check_env_keywords({"cost": 0.01, "foo": 1})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown env keyword(s) ['foo']; allowed: ['action_mode', 'band_limit', ...]
    """
    names = {f.name for f in dataclasses.fields(EnvConfig)}
    unknown = sorted(str(key) for key in set(kwargs) - names)
    if unknown:
        raise ValueError(f"unknown env keyword(s) {unknown}; allowed: {sorted(names)}")


def _config(kwargs: dict[str, Any]) -> EnvConfig:
    """``EnvConfig(**kwargs)``, unknown keywords named (with the allowed ones) first."""
    check_env_keywords(kwargs)
    return EnvConfig(**kwargs)
