"""Trading frictions: what a trade costs, and the lot rule that shapes it.

A cost model maps a trade (signed units of the underlying), its price (currency per unit) and the
market state (annualised ``vol``, the ``liquidity`` multiplier of :class:`MarketPaths`) to a cost
in currency, element-wise and broadcast: ``>= 0``, and exactly 0 where the trade is 0. Models add
up (``ProportionalCost(1e-3) + SpreadCost(5e-4)``) and work on numpy arrays and torch tensors
alike (``array_api_compat``; no in-place operations), so a deep-hedging trainer can differentiate
through them. ``|q|`` has a kink at 0 (gradient 0 there in torch); :class:`FixedCost` and
:class:`LotSize` are piecewise constant (gradient 0 almost everywhere).

Which models scale with ``liquidity`` (1 = normal, larger = less liquid):

===================== ==================================================== ==================
model                 cost                                                 liquidity
===================== ==================================================== ==================
ProportionalCost      ``rate * |q| * S``                                   no (a fee)
SpreadCost            ``h(vol) * |q| * S`` (relative) or ``h(vol) * |q|``  yes
FixedCost             ``ticket * 1[q != 0]``                               no (a fee)
LinearImpact          ``eta * S * q^2 / ADV``                              yes
SquareRootImpact      ``Y * sigma_d * S * |q|^1.5 / sqrt(ADV)``            yes
OptionSpreadCost      ``|q| * max(vega * vol_points or r * V, min)``       yes
===================== ==================================================== ==================
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from array_api_compat import array_namespace

from hedgearena.envs.checks import require_bool

Array = Any
"""A numpy array or a torch tensor (anything ``array_api_compat.array_namespace`` accepts)."""

TRADING_DAYS_PER_YEAR = 252
"""Trading days per year: ``sigma_daily = vol / sqrt(252)``."""

MAX_CURRENCY_COST = 1e15
"""Largest fee in currency (a ticket, an absolute half-spread per unit): larger ones overflow
the mean-variance reward's squares and the arena's variances into inf."""

MAX_IMPACT_COEFFICIENT = 1e6
"""Largest dimensionless impact or spread coefficient (``eta``, ``Y``, ``vol_sensitivity``):
realistic ones are of order 0.1 to 1, and larger ones overflow like an oversized fee."""

MIN_DAILY_VOLUME = 1e-6
"""Smallest average daily volume, units of the underlying: impact divides by it."""


# -------------------------------------------------------------------------------- base classes


@dataclass(frozen=True)
class CostCoefficients:
    """A cost polynomial in the trade ``q``: the one formula every cost model reduces to.

    ``cost(q) = linear * |q| + quadratic * q^2 + three_halves * |q|^1.5 + fixed * 1[q != 0]``.

    The coefficients depend on the market only (price, vol, liquidity), so an environment can
    compute them once per episode and cost any trade later. All are ``>= 0``.

    Attributes:
        linear: currency per unit traded (fees, half-spreads).
        quadratic: currency per unit squared (linear impact).
        three_halves: currency per unit to the power 1.5 (square-root impact).
        fixed: currency per non-zero trade.

    Examples:
        >>> import numpy as np
        >>> CostCoefficients(linear=0.5, quadratic=0.1, fixed=1.0).cost(np.array([-4.0, 0.0]))
        array([4.6, 0. ])
    """

    linear: Array | float = 0.0
    quadratic: Array | float = 0.0
    three_halves: Array | float = 0.0
    fixed: Array | float = 0.0

    def __add__(self, other: CostCoefficients) -> CostCoefficients:
        return CostCoefficients(
            self.linear + other.linear, self.quadratic + other.quadratic,
            self.three_halves + other.three_halves, self.fixed + other.fixed,
        )

    def cost(self, trade: Array) -> Array:
        """Cost of each trade, currency; see :func:`cost_polynomial`.

        Shape:
            The broadcast of ``trade`` and the coefficients.
        """
        return cost_polynomial(trade, self.linear, self.quadratic, self.three_halves, self.fixed)


def cost_polynomial(trade: Any, linear: Any, quadratic: Any, three_halves: Any, fixed: Any) -> Any:
    """``linear |q| + quadratic q^2 + three_halves |q|^1.5 + fixed 1[q != 0]`` (currency, >= 0).

    Written with operators only, so it takes Python floats (the single env's fast path), numpy
    arrays and torch tensors alike; the ``|q|^1.5`` term has gradient 0 (not NaN) at ``q = 0``.

    Examples:
        >>> cost_polynomial(-4.0, 0.5, 0.1, 0.0, 1.0)  # 0.5*4 + 0.1*16 + 1
        4.6
    """
    size = abs(trade)
    square = trade * trade
    return linear * size + quadratic * square + three_halves * size**1.5 + fixed * (trade != 0)


def round_to_lot(trade: Any, lot: float) -> Any:
    """Round a trade to a whole number of lots (ties to an even number of lots).

    Like numpy and torch; ``lot == 0`` leaves the trade as it is. Takes floats, numpy arrays and
    torch tensors. On tensors that need a gradient the rounding is a straight-through estimator
    (Bengio, Leonard and Courville 2013): the value is rounded, the gradient is the unrounded
    trade's (rounding's own derivative is 0 almost everywhere, which would stop deep hedging
    from learning anything with lots).

    Examples:
        >>> round_to_lot(150.0, 100.0), abs(round_to_lot(-49.0, 100.0))
        (200.0, 0.0)
    """
    if lot == 0:
        return trade
    lots = trade / lot
    if isinstance(lots, float):
        return round(lots) * lot + 0.0 * lots
    rounded = array_namespace(lots).round(lots) * lot
    if getattr(trade, "requires_grad", False):
        return trade + (rounded - trade).detach()
    return rounded


class CostModel(ABC):
    """A transaction-cost model: currency cost of trading ``trade`` units at ``price``.

    Subclasses implement :meth:`coefficients`; :meth:`cost` evaluates them on a trade. ``+``
    (and ``sum``) combine models into a :class:`CompositeCost`. The market inputs (price > 0,
    vol >= 0, liquidity >= 1) are the caller's to get right: the envs pass their own, checked
    ones; the models do not check arrays on every call (a negative vol would give a negative
    square-root impact).
    """

    @abstractmethod
    def coefficients(
        self, price: Array, *, vol: Array | None = None, liquidity: Array | None = None
    ) -> CostCoefficients:
        """The cost polynomial at this market state (see :class:`CostCoefficients`).

        Args:
            price: price of the underlying per unit, currency.
            vol: annualised volatility of the underlying (only models that use it need it).
            liquidity: multiplier of spreads and impact (default 1); proportional and fixed
                fees ignore it.

        Shape:
            Each coefficient broadcasts like ``price``, ``vol`` and ``liquidity``.
        """

    def cost(
        self, trade: Array, price: Array, *, vol: Array | None = None,
        liquidity: Array | None = None,
    ) -> Array:
        """Cost of each trade, currency, ``>= 0`` and exactly 0 where ``trade == 0``.

        Args:
            trade: signed trade, units of the underlying (> 0 buys); an array or tensor.
            price: price per unit, currency.
            vol: annualised volatility of the underlying (only models that use it need it).
            liquidity: multiplier of spreads and impact (default 1); proportional and fixed
                fees ignore it.

        Shape:
            All inputs broadcast; the output has the broadcast shape.
        """
        coefficients = self.coefficients(price, vol=vol, liquidity=liquidity)
        return coefficients.cost(trade) + _zeros(trade, price)

    def __add__(self, other: CostModel) -> CompositeCost:
        if not isinstance(other, CostModel):
            return NotImplemented
        return CompositeCost((*_parts(self), *_parts(other)))

    def __radd__(self, other: Any) -> CostModel:
        if isinstance(other, int) and other == 0:  # sum([...]) starts from 0
            return self
        return NotImplemented


def _parts(model: CostModel) -> tuple[CostModel, ...]:
    """The components of ``model`` (itself unless it is a composite)."""
    return model.components if isinstance(model, CompositeCost) else (model,)


@dataclass(frozen=True)
class CompositeCost(CostModel):
    """The sum of several cost models (built by ``+``); no components costs nothing.

    Examples:
        >>> import numpy as np
        >>> total = ProportionalCost(1e-3) + FixedCost(2.0)
        >>> total.cost(np.array([10.0, 0.0]), np.array([100.0, 100.0]))
        array([3., 0.])
    """

    components: tuple[CostModel, ...] = ()

    def __post_init__(self) -> None:
        for part in self.components:
            if not isinstance(part, CostModel):
                raise ValueError(f"components must be CostModel instances, got {part!r}")

    def coefficients(
        self, price: Array, *, vol: Array | None = None, liquidity: Array | None = None
    ) -> CostCoefficients:
        """Sum of the components' coefficients."""
        total = CostCoefficients()
        for part in self.components:
            total = total + part.coefficients(price, vol=vol, liquidity=liquidity)
        return total


# ------------------------------------------------------------------------------- the models


@dataclass(frozen=True)
class ProportionalCost(CostModel):
    """Fees or commission proportional to the traded value: ``rate * |q| * S``.

    The cost of Leland (1985) and Whalley & Wilmott (1997). Ignores ``liquidity``.

    Attributes:
        rate: fraction of the traded value, in ``[0, 1)`` (1e-3 = 10 bp).

    Examples:
        >>> import numpy as np
        >>> ProportionalCost(0.01).cost(np.array([-3.0, 0.0]), 50.0)
        array([1.5, 0. ])
    """

    rate: float

    def __post_init__(self) -> None:
        _check_range(self, "rate", 0.0, 1.0, high_open=True)

    def coefficients(
        self, price: Array, *, vol: Array | None = None, liquidity: Array | None = None
    ) -> CostCoefficients:
        """``linear = rate * price``."""
        return CostCoefficients(linear=self.rate * price)


@dataclass(frozen=True)
class SpreadCost(CostModel):
    """Half the bid-ask spread on every unit traded; widens with vol if ``vol_sensitivity > 0``.

    The half-spread per unit is ``h = half_spread * m(vol) * liquidity`` with the multiplier

    ``m(vol) = max(1 + vol_sensitivity * (vol / reference_vol - 1), floor)``,

    linear in vol (spreads widen with volatility, the inventory-risk argument of Stoll 1978 and
    Ho & Stoll 1981), 1 at ``reference_vol`` and never below ``floor``. With ``relative=True``
    ``h`` is a fraction of the price (cost ``h * |q| * S``), otherwise currency per unit (cost
    ``h * |q|``).

    Attributes:
        half_spread: half the bid-ask spread at ``reference_vol``: fraction of the price if
            ``relative`` (in ``[0, 1)``), else currency per unit (in ``[0, 1e15]``).
        relative: whether ``half_spread`` is a fraction of the price.
        vol_sensitivity: slope of the multiplier in ``vol / reference_vol`` (in ``[0, 1e6]``; 0 =
            constant spread, no ``vol`` needed; 1 = proportional to vol).
        reference_vol: the annualised vol at which the spread is ``half_spread`` (>= 1e-4: the
            multiplier divides by it).
        floor: smallest multiplier of ``half_spread``, in ``[0, 1]``, so that calm markets never
            make the spread vanish or turn negative.

    Examples:
        >>> import numpy as np
        >>> SpreadCost(5e-4).cost(np.array([10.0]), 100.0, liquidity=np.array([2.0]))
        array([1.])
        >>> wide = SpreadCost(5e-4, vol_sensitivity=1.0)  # 40% vol doubles the 20% spread
        >>> wide.cost(np.array([10.0]), 100.0, vol=np.array([0.4]))
        array([1.])
    """

    half_spread: float
    relative: bool = True
    vol_sensitivity: float = 0.0
    reference_vol: float = 0.2
    floor: float = 0.5

    def __post_init__(self) -> None:
        require_bool(type(self).__name__, "relative", self.relative)
        top = 1.0 if self.relative else MAX_CURRENCY_COST
        _check_range(self, "half_spread", 0.0, top, high_open=self.relative)
        _check_range(self, "vol_sensitivity", 0.0, MAX_IMPACT_COEFFICIENT)
        _check_range(self, "reference_vol", 1e-4, math.inf, high_open=True)
        _check_range(self, "floor", 0.0, 1.0)

    def coefficients(
        self, price: Array, *, vol: Array | None = None, liquidity: Array | None = None
    ) -> CostCoefficients:
        """``linear = h * price`` (relative) or ``h`` (absolute)."""
        half = self.half_spread * self.multiplier(vol) * _liquidity(liquidity)
        return CostCoefficients(linear=half * price if self.relative else half)

    def multiplier(self, vol: Array | None) -> Array | float:
        """``m(vol)``: 1 without vol sensitivity, else the floored linear widening."""
        if self.vol_sensitivity == 0.0:
            return 1.0
        vol = _require(vol, "vol", "SpreadCost with vol_sensitivity > 0")
        linear = 1.0 + self.vol_sensitivity * (vol / self.reference_vol - 1.0)
        if isinstance(linear, numbers.Real):
            return max(float(linear), self.floor)
        return array_namespace(linear).clip(linear, min=self.floor)


@dataclass(frozen=True)
class FixedCost(CostModel):
    """A fixed ticket fee per non-zero trade: ``ticket * 1[q != 0]`` (exact indicator).

    Ignores ``liquidity``. The indicator has zero gradient: a gradient-based learner does not
    see this cost (penalise trading frequency separately if needed).

    Attributes:
        ticket: fee per trade, currency, in ``[0, 1e15]``.

    Examples:
        >>> import numpy as np
        >>> FixedCost(1.5).cost(np.array([0.0, 1e-9, -4.0]), 100.0)
        array([0. , 1.5, 1.5])
    """

    ticket: float

    def __post_init__(self) -> None:
        _check_range(self, "ticket", 0.0, MAX_CURRENCY_COST)

    def coefficients(
        self, price: Array, *, vol: Array | None = None, liquidity: Array | None = None
    ) -> CostCoefficients:
        """``fixed = ticket``."""
        return CostCoefficients(fixed=self.ticket)


@dataclass(frozen=True)
class LinearImpact(CostModel):
    """Temporary linear market impact: ``eta * S * q^2 / ADV * liquidity``.

    The fill price moves against the trader by ``eta * S * |q| / ADV`` (the linear temporary
    impact of Almgren & Chriss 2000, "Optimal execution of portfolio transactions", J. Risk 3(2),
    with the trade measured as a fraction of the average daily volume), so the ``|q|`` units cost
    that much each.

    Attributes:
        eta: price move, as a fraction of the price, for trading one full ADV, in ``[0, 1e6]``.
        daily_volume: average daily volume ADV, units of the underlying (>= 1e-6).

    Examples:
        >>> import numpy as np
        >>> LinearImpact(eta=0.1, daily_volume=1e4).cost(np.array([-100.0]), 50.0)
        array([5.])
    """

    eta: float
    daily_volume: float

    def __post_init__(self) -> None:
        _check_range(self, "eta", 0.0, MAX_IMPACT_COEFFICIENT)
        _check_range(self, "daily_volume", MIN_DAILY_VOLUME, math.inf, high_open=True)

    def coefficients(
        self, price: Array, *, vol: Array | None = None, liquidity: Array | None = None
    ) -> CostCoefficients:
        """``quadratic = eta * price / daily_volume * liquidity``."""
        return CostCoefficients(
            quadratic=self.eta * price / self.daily_volume * _liquidity(liquidity)
        )


@dataclass(frozen=True)
class SquareRootImpact(CostModel):
    """The square-root law of market impact: ``Y * sigma_d * S * |q| * sqrt(|q| / ADV)``.

    The average fill price moves by ``Y * sigma_d * sqrt(|q| / ADV)`` (as a fraction of the
    price), ``sigma_d`` the daily vol: Torre (1997), BARRA Market Impact Model Handbook;
    Almgren, Thum, Hauptmann & Li (2005), "Direct estimation of equity market impact", Risk
    18(7), who estimate an exponent of 0.6, close to 1/2, and a coefficient of order 1. Scales
    with ``liquidity``. Evaluated as ``|q|^1.5``, whose gradient at ``q = 0`` is 0 (not NaN).

    Attributes:
        coefficient: ``Y``, dimensionless, in ``[0, 1e6]``.
        daily_volume: average daily volume ADV, units of the underlying (>= 1e-6).
        daily_vol: fixed daily volatility ``sigma_d``, in ``(0, 1]``, or None to take
            ``vol / sqrt(252)`` from the ``vol`` argument.

    Examples:
        >>> import numpy as np
        >>> impact = SquareRootImpact(coefficient=1.0, daily_volume=1e4, daily_vol=0.01)
        >>> impact.cost(np.array([100.0]), 50.0)  # 1 * 0.01 * 50 * 100 * sqrt(100 / 1e4)
        array([5.])
    """

    coefficient: float
    daily_volume: float
    daily_vol: float | None = None

    def __post_init__(self) -> None:
        _check_range(self, "coefficient", 0.0, MAX_IMPACT_COEFFICIENT)
        _check_range(self, "daily_volume", MIN_DAILY_VOLUME, math.inf, high_open=True)
        if self.daily_vol is not None:
            _check_range(self, "daily_vol", 0.0, 1.0, low_open=True)

    def coefficients(
        self, price: Array, *, vol: Array | None = None, liquidity: Array | None = None
    ) -> CostCoefficients:
        """``three_halves = Y * sigma_d * price / sqrt(daily_volume) * liquidity``."""
        sigma_d = self.daily_vol
        if sigma_d is None:
            vol = _require(vol, "vol", "SquareRootImpact without daily_vol")
            sigma_d = vol / math.sqrt(TRADING_DAYS_PER_YEAR)
        scale = self.coefficient / math.sqrt(self.daily_volume)
        return CostCoefficients(three_halves=scale * sigma_d * price * _liquidity(liquidity))


# ------------------------------------------------------------------------------ option trades


@dataclass(frozen=True)
class OptionSpreadCost:
    """Half the bid-ask spread of an option, quoted in implied vol or relative to its price.

    Per unit the half-spread is ``vega * vol_points`` (a quote ``vol_points`` wide on each side
    in implied vol, annualised: 0.01 = 1 vol point, as ``ClientFlow.half_spread_vol``;
    ``vega = dV/dsigma`` per unit of sigma, the Black-Scholes ``S e^{-q tau} phi(d1) sqrt(tau)``)
    or ``relative * V`` (``V`` the option price), at least ``minimum`` (a tick), times
    ``liquidity``; the cost is ``|q|`` times that. Exactly one of ``vol_points`` and
    ``relative`` is given.

    Not a :class:`CostModel` (it needs the option's vega, not the underlying's vol): the
    environments cost option trades with it and underlying trades with a :class:`CostModel`.

    Attributes:
        vol_points: half-spread in annualised implied vol (0.005 = half a vol point), in
            ``[0, 1]``, or None.
        relative: half-spread as a fraction of the option price, in ``[0, 1)``, or None.
        minimum: smallest half-spread per unit, currency (>= 0).

    Examples:
        >>> import numpy as np
        >>> spread = OptionSpreadCost(vol_points=0.005)  # half a vol point
        >>> spread.cost(np.array([-10.0]), 4.0, vega=np.array([20.0]))  # 10 * 20 * 0.005
        array([1.])
        >>> OptionSpreadCost(relative=0.02, minimum=0.05).cost(np.array([10.0, 10.0]),
        ...                                                    np.array([1.0, 10.0]))
        array([0.5, 2. ])
    """

    vol_points: float | None = None
    relative: float | None = None
    minimum: float = 0.0

    def __post_init__(self) -> None:
        if (self.vol_points is None) == (self.relative is None):
            raise ValueError(
                "OptionSpreadCost needs exactly one of vol_points and relative, got "
                f"vol_points={self.vol_points}, relative={self.relative}"
            )
        if self.vol_points is not None:
            _check_range(self, "vol_points", 0.0, 1.0)
        else:
            _check_range(self, "relative", 0.0, 1.0, high_open=True)
        _check_range(self, "minimum", 0.0, math.inf, high_open=True)

    def half_spread(
        self, price: Array, *, vega: Array | None = None, liquidity: Array | None = None
    ) -> Array:
        """Half-spread per option, currency (the linear cost coefficient).

        Args:
            price: option price per unit, currency (an array or tensor).
            vega: ``dV/dsigma`` per unit, currency per unit of annualised vol (needed with
                ``vol_points``).
            liquidity: multiplier of the spread (default 1).
        """
        xp = array_namespace(price)
        if self.vol_points is not None:
            vega = _require(vega, "vega", "OptionSpreadCost with vol_points")
            half = xp.abs(vega * self.vol_points + price * 0.0)
        else:
            half = self.relative * xp.abs(price)
        if self.minimum > 0:
            half = xp.clip(half, min=self.minimum)
        return half * _liquidity(liquidity)

    def cost(
        self, trade: Array, price: Array, *, vega: Array | None = None,
        liquidity: Array | None = None,
    ) -> Array:
        """Cost of each option trade, currency, ``>= 0`` and 0 where ``trade == 0``.

        Args:
            trade: signed trade, number of options (> 0 buys).
            price: option price per unit, currency.
            vega: ``dV/dsigma`` per unit (needed with ``vol_points``).
            liquidity: multiplier of the spread (default 1).

        Shape:
            All inputs broadcast; the output has the broadcast shape.
        """
        price = price + _zeros(trade, price)  # an array of the broadcast shape
        half = self.half_spread(price, vega=vega, liquidity=liquidity)
        return CostCoefficients(linear=half).cost(trade)


# ---------------------------------------------------------------------------- execution rule


@dataclass(frozen=True)
class LotSize:
    """Trades execute in whole lots: the wanted trade rounded to the nearest multiple of ``lot``.

    Not a cost: the environments apply :meth:`round_trade` before costing. Ties (exactly half a
    lot) round to the even number of lots (numpy and torch ``round``), so 0.5 lot executes
    nothing and 1.5 lots execute 2. The rounding has zero gradient.

    Attributes:
        lot: lot size, units of the underlying (> 0).

    Examples:
        >>> import numpy as np
        >>> LotSize(100.0).round_trade(np.array([149.0, 151.0, -260.0, 250.0]))
        array([ 100.,  200., -300.,  200.])
    """

    lot: float

    def __post_init__(self) -> None:
        _check_range(self, "lot", 0.0, math.inf, low_open=True, high_open=True)

    def round_trade(self, trade: Array) -> Array:
        """The executed trade: ``lot * round(trade / lot)``, units of the underlying.

        Shape:
            Same as ``trade``.
        """
        return round_to_lot(trade, self.lot)


# ----------------------------------------------------------------------------------- factory

COST_MODELS: dict[str, type[CostModel]] = {
    "proportional": ProportionalCost,
    "spread": SpreadCost,
    "fixed": FixedCost,
    "linear_impact": LinearImpact,
    "sqrt_impact": SquareRootImpact,
}
"""Names understood by :func:`cost_model_from_config`."""


def cost_model_from_config(config: Mapping[str, Any]) -> CostModel:
    """A cost model from a config mapping (e.g. a YAML section): one entry per component.

    Each key names a model of :data:`COST_MODELS`; its value is a mapping of the model's fields,
    or a bare number for its first field (``{"proportional": 0.01}``). Several entries sum.

    Raises:
        ValueError: an unknown name (the known ones are listed) or invalid fields.

    Examples:
        >>> model = cost_model_from_config({"proportional": 0.01, "spread": {"half_spread": 5e-4}})
        >>> model.components[0]
        ProportionalCost(rate=0.01)
        >>> model == ProportionalCost(0.01) + SpreadCost(half_spread=5e-4)
        True
    """
    models = [_one_model(name, params) for name, params in config.items()]
    return models[0] if len(models) == 1 else CompositeCost(tuple(models))


def _one_model(name: str, params: Any) -> CostModel:
    """The model ``name`` built from ``params`` (a mapping of fields or its first field)."""
    if name not in COST_MODELS:
        raise ValueError(f"unknown cost model {name!r}; known: {sorted(COST_MODELS)}")
    cls = COST_MODELS[name]
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    kwargs = dict(params) if isinstance(params, Mapping) else {names[0]: params}
    unknown = sorted(set(kwargs) - set(names))
    if unknown:
        raise ValueError(f"{name}: unknown field(s) {unknown}; {cls.__name__} takes {names}")
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise ValueError(f"{name}: {err}; {cls.__name__} takes {names}") from err


# ----------------------------------------------------------------------------------- helpers


def _zeros(trade: Array, price: Array) -> Array:
    """Zeros of the broadcast shape and floating dtype of ``trade * price``."""
    return array_namespace(trade).abs(trade) * price * 0.0


def _liquidity(liquidity: Array | None) -> Array | float:
    """The liquidity multiplier, 1 when not given."""
    return 1.0 if liquidity is None else liquidity


def _require(value: Array | None, name: str, who: str) -> Array:
    """``value``, or a ValueError saying that ``who`` needs ``name``."""
    if value is None:
        raise ValueError(f"{who} needs the {name} argument")
    return value


def _check_range(
    obj: object, name: str, low: float, high: float, *,
    low_open: bool = False, high_open: bool = False,
) -> None:
    """Raise a ValueError naming the field, its value and the allowed interval."""
    value = getattr(obj, name)
    number = float(value) if isinstance(value, numbers.Real) else math.nan
    ok = not isinstance(value, bool) and (
        (low < number if low_open else low <= number)
        and (number < high if high_open else number <= high)
    )
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(
            f"{type(obj).__name__}.{name} must be a number in {interval}, got {value!r}"
        )
