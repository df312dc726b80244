"""Deep-hedging policies: torch modules that map the env's observation to the positions to hold.

A policy reads the env's observation vector (see :func:`hedgearena.envs.episode.feature_names`)
with the current positions filled in as the env fills them (position / notional in the
``hedge`` and ``option_position`` columns), runs a feed-forward network (``mlp``) or a GRU
carried over the decisions (``gru``), and turns the network's raw outputs into positions in
units through one of five parametrisations:

============ ======================================================================= ========
output       position to hold after the decision                                      actions
============ ======================================================================= ========
``band``     the previous hedge clamped into ``[model - l, model + u]``, ``l, u``      1
             softplus widths in units of the notional (Imaki et al. 2021)
``shifted_`` the same around a learned centre ``model + z * notional`` (the band      1
``band``     need not contain the model hedge)
``position`` ``tanh(z) * position_limit * notional`` (the env's ``target`` mode)      1 or 2
``fraction`` ``h + (tanh(z) + 1) / 2 * (model - h)`` (the env's ``fraction`` mode)    1 or 2
``trade``    ``h + tanh(z) * trade_limit * notional`` (the env's ``trade`` mode)      1 or 2
============ ======================================================================= ========

``model`` is the env's model hedge (``episode.model_hedge``: minus the book's delta), so the
band network of Imaki, Imajo, Ito, Minami and Nakagawa (2021, "No-transaction band network: a
neural network architecture for efficient deep hedging", arXiv:2103.01775) learns a no-trade
band around it, the Whalley-Wilmott shape with state-dependent, asymmetric widths. The last
three map through :func:`hedgearena.envs.core.target_position`, the env's own rescaling. The
bands' widths and shift are unbounded, so their position is then held within
``position_limit * notional`` of ``model`` (a net fed states unlike its training ones, such as
P&L far outside them, went to 1e17 units on the 2008 window; within the limit it never binds
in training).

Beyond the env's observation a policy may read ``pnl``, its P&L so far per share of the
notional, read at a spot of 100 (:func:`pnl_input`: ``(W_t - W_0) * 100 / S_0 / notional``, the
same number at any index level; the simulated presets start at 100). A risk measure such as
``mean + c std`` is not time-consistent: its best (pre-commitment) strategy depends on the P&L
made so far, as in mean-variance portfolio selection (Li and Ng 2000), so a Markov policy on the
market state alone cannot reach it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from hedgearena.envs.checks import is_integer, is_number
from hedgearena.envs.config import EnvConfig
from hedgearena.envs.core import TORCH_OPS, CoreConfig, target_position
from hedgearena.envs.episode import feature_names

KINDS = ("mlp", "gru")
OUTPUTS = ("band", "shifted_band", "position", "fraction", "trade")
ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}
_MODES = {"position": "target", "fraction": "fraction", "trade": "trade"}
POSITION_NAMES = ("hedge", "option_position")
EXTRA_INPUTS = ("pnl",)
"""Inputs beyond the env's observation: ``pnl`` = :func:`pnl_input` / notional."""

PNL_SPOT = 100.0
"""The spot the ``pnl`` input is read at (:func:`pnl_input`): the simulated presets' ``S_0``."""


def pnl_input(wealth: Tensor, wealth0: Tensor, spot0: Tensor) -> Tensor:
    """The ``pnl`` a policy reads: the P&L so far ``W_t - W_0`` at a spot of :data:`PNL_SPOT`.

    A book of ``notional`` shares makes P&L in proportion to the index level: read in currency,
    a net trained at a spot of 100 saw P&L ten times its training range on the S&P's 2008
    window (about 1,000), fed it back into its positions and held -3.1e17 units.
    ``(W_t - W_0) * PNL_SPOT / S_0`` is the same number at any level, and exactly ``W_t - W_0``
    where ``S_0 = 100``.

    Args:
        wealth: ``W_t``, currency, ``(n,)``.
        wealth0: ``W_0``, currency, ``(n,)``.
        spot0: the episode's first spot ``S_0``, currency, ``(n,)``.

    Examples:
        >>> pnl_input(torch.tensor([7.0, 7.0]), torch.tensor([2.0, 2.0]),
        ...           torch.tensor([100.0, 1000.0])).tolist()
        [5.0, 0.5]
    """
    return (wealth - wealth0) * (PNL_SPOT / spot0)


@dataclass(frozen=True)
class PolicySpec:
    """Everything that defines a policy's architecture and how it reads and writes positions.

    Attributes:
        observation: names of the env's observation entries, in order (the env's layout).
        inputs: the entries fed to the network (None = all of ``observation``); may add
            :data:`EXTRA_INPUTS`.
        action_dim: 1 (the underlying) or 2 (and the hedging option).
        notional: the book's notional; positions enter and widths leave in units of it.
        kind: ``mlp`` (feed-forward) or ``gru`` (recurrent, hidden state over decisions).
        output: ``band``, ``shifted_band`` (the default), ``position``, ``fraction`` or
            ``trade`` (see the module docs).
        hidden: widths of the hidden layers (for ``gru`` the first is the GRU's state size).
        activation: ``relu``, ``silu`` or ``tanh``.
        position_limit: ``position`` spans ``[-limit, limit] * notional`` and the bands hold
            positions within ``limit * notional`` of the model hedge (by default the env's,
            plus ``option_position_limit`` with a hedging option: :meth:`for_env`).
        option_position_limit: the same for the hedging option (the env's).
        trade_limit: ``trade`` spans trades in ``[-limit, limit] * notional``.
        initial_width: the band's half-widths at initialisation, units of the notional.
    """

    observation: tuple[str, ...]
    inputs: tuple[str, ...] | None = None
    action_dim: int = 1
    notional: float = 100.0
    kind: str = "mlp"
    output: str = "shifted_band"
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "silu"
    position_limit: float = 1.5
    option_position_limit: float = 10.0
    trade_limit: float = 0.5
    initial_width: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "observation", tuple(self.observation))
        _check_hidden(self.hidden)
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.inputs is not None:
            object.__setattr__(self, "inputs", tuple(self.inputs))
        _choice("kind", self.kind, KINDS)
        _choice("output", self.output, OUTPUTS)
        _choice("activation", self.activation, tuple(ACTIVATIONS))
        if self.action_dim not in (1, 2):
            raise ValueError(f"action_dim must be 1 or 2, got {self.action_dim!r}")
        if self.output in ("band", "shifted_band") and self.action_dim != 1:
            raise ValueError(
                f"output={self.output!r} hedges the underlying only (action_dim=1); with a "
                "hedging option use output='position', 'fraction' or 'trade'"
            )
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must be a non-empty tuple of widths >= 1, got {self.hidden}")
        unknown = sorted(set(self.inputs or ()) - set(self.observation) - set(EXTRA_INPUTS))
        if unknown or (self.inputs is not None and not self.inputs):
            raise ValueError(
                f"inputs must be a non-empty subset of the observation {self.observation} "
                f"and {EXTRA_INPUTS}; unknown: {unknown}"
            )
        for name in ("notional", "position_limit", "option_position_limit", "trade_limit",
                     "initial_width"):
            value = getattr(self, name)
            if not is_number(value, gt=0.0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if self.initial_width > 100.0:  # softplus^-1 of it overflows past about 700
            raise ValueError(f"initial_width must be <= 100 notionals, got {self.initial_width!r}")

    @classmethod
    def for_env(cls, config: EnvConfig, **fields: Any) -> PolicySpec:
        """The spec of a policy for ``config``'s observations, actions and limits.

        Unless ``fields`` say otherwise the policy reads the whole observation and its P&L so
        far (``pnl``: the objectives of the whole episode's cost are not time-consistent, see
        the module docs) and outputs a ``shifted_band`` (``position`` with a hedging option).

        With a hedging option its ``position_limit`` is the env's plus ``option_position_limit``:
        the underlying that hedges the book's delta and that of up to ``option_position_limit``
        notionals of the option (delta up to 1) can reach the sum. Within the env's range alone
        (10 notionals on ``OptionBook-v0``) the hedge saturated on the paths of the largest
        books, where ``tanh`` also stops the gradient: trained alike, Y 697.7 (se 26) against
        635.5 (17) with the sum, delta's 881.7 (see tests/agents/test_book_journey.py).

        Examples:
            >>> from hedgearena.envs.config import make_config
            >>> PolicySpec.for_env(make_config("OptionBook", hedge_option=True)).position_limit
            20.0
        """
        with_option = config.hedge_option is not None
        observation = feature_names(with_option)
        defaults: dict[str, Any] = {
            "observation": observation,
            "inputs": (*observation, *EXTRA_INPUTS),
            "action_dim": config.action_dim,
            "notional": config.book.notional,
            "position_limit": config.position_limit,
            "option_position_limit": config.option_position_limit,
            "trade_limit": config.trade_limit,
        }
        if with_option:
            defaults["position_limit"] = config.position_limit + config.option_position_limit
            if "output" not in fields:
                defaults["output"] = "position"
        return cls(**{**defaults, **fields})

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicySpec:
        """The spec from :meth:`to_dict`'s output."""
        return cls(**data)


MAX_WIDTH = 65_536
"""The widest hidden layer a policy may have: ``hidden: [1e9]`` (a typo) would try to allocate
gigabytes of weights before saying anything."""


def _check_hidden(hidden: Any) -> None:
    """Raise unless ``hidden`` is a non-empty list (or tuple) of widths in ``[1, MAX_WIDTH]``."""
    ok = isinstance(hidden, list | tuple) and len(hidden) > 0 and all(
        is_integer(h, integral_floats=True) and 1 <= h <= MAX_WIDTH for h in hidden
    )
    if not ok:
        raise ValueError(
            f"hidden must be a non-empty list of integer widths from 1 to {MAX_WIDTH:,} "
            f"(e.g. [64, 64]), got {hidden!r}"
        )


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


class HedgingPolicy(nn.Module):
    """A deep-hedging policy (see the module docs); build it with a :class:`PolicySpec`.

    The network's inputs are standardised with fixed buffers (:meth:`fit_normalizer`), saved
    with the weights. One decision is :meth:`step`; the trainer and :class:`DeepHedger` both
    call it, so the positions on the env are those of training.

    Shape:
        ``obs``: ``(n, n_features)``; positions and model hedges: ``(n,)``; hidden state of
        ``gru``: ``(n, hidden[0])``.

    Examples:
        >>> from hedgearena.envs.config import make_config
        >>> policy = HedgingPolicy(PolicySpec.for_env(make_config("ShortCall")))
        >>> obs, zero = torch.zeros(3, 12), torch.zeros(3)
        >>> model = torch.full((3,), 50.0)
        >>> hedge, _, _ = policy.step(obs, zero, zero, model, zero, pnl=zero)
        >>> hedge.shape, bool((hedge < 50.0).all() and (hedge > 35.0).all())  # 50 - ~10
        (torch.Size([3]), True)
    """

    input_index: Tensor
    input_mean: Tensor
    input_std: Tensor

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__()
        self.spec = spec
        names = spec.inputs or spec.observation
        self.n_features = len(spec.observation)
        self.n_positions = len([n for n in spec.observation if n in POSITION_NAMES])
        columns = (*spec.observation, *EXTRA_INPUTS)
        self.register_buffer("input_index", torch.tensor([columns.index(n) for n in names]))
        self.register_buffer("input_mean", torch.zeros(len(names)))
        self.register_buffer("input_std", torch.ones(len(names)))
        self.uses_positions = any(n in POSITION_NAMES for n in names)
        self.uses_pnl = "pnl" in names
        self._select = tuple(names) != tuple(spec.observation)
        self.core = CoreConfig(
            notional=spec.notional, position_limit=spec.position_limit,
            option_position_limit=spec.option_position_limit, trade_limit=spec.trade_limit,
        )
        activation = ACTIVATIONS[spec.activation]
        self.cell = nn.GRUCell(len(names), spec.hidden[0]) if spec.kind == "gru" else None
        widths = [*spec.hidden] if self.cell is not None else [len(names), *spec.hidden]
        layers: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise(widths):
            layers += [nn.Linear(n_in, n_out), activation()]
        self.body = nn.Sequential(*layers)
        n_out = {"band": 2, "shifted_band": 3}.get(spec.output, spec.action_dim)
        self.head = nn.Linear(spec.hidden[-1], n_out)
        self._init_head()

    def _init_head(self) -> None:
        """Small output weights: the band starts as a constant band of ``initial_width``."""
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            if self.spec.output in ("band", "shifted_band"):
                self.head.bias[:2].fill_(math.log(math.expm1(self.spec.initial_width)))

    @property
    def recurrent(self) -> bool:
        """Whether the policy carries a hidden state over decisions."""
        return self.cell is not None

    def fit_normalizer(self, observations: Tensor) -> None:
        """Standardise the inputs with the mean and std of ``observations`` (``(..., F)``).

        Positions and ``pnl`` keep mean 0 and std 1 (they are already in units of the
        notional); constant entries get std 1.
        """
        flat = observations.reshape(-1, observations.shape[-1]).to(torch.float64)
        flat = torch.cat([flat, flat.new_zeros(flat.shape[0], len(EXTRA_INPUTS))], dim=1)
        flat = flat[:, self.input_index]
        mean, std = flat.mean(dim=0), flat.std(dim=0, correction=0)
        columns = (*self.spec.observation, *EXTRA_INPUTS)
        fixed = torch.tensor([columns[i] in (*POSITION_NAMES, *EXTRA_INPUTS)
                              for i in self.input_index.tolist()])
        self.input_mean.copy_(torch.where(fixed, 0.0, mean))
        self.input_std.copy_(torch.where(fixed | (std < 1e-8), 1.0, std))

    def features(
        self, obs: Tensor, hedge: Tensor, option: Tensor, pnl: Tensor | None = None
    ) -> Tensor:
        """The network's standardised input: ``obs`` with the positions written in, selected.

        ``obs`` is ``(..., n_features)``; ``hedge``, ``option`` and ``pnl`` (the P&L so far,
        :func:`pnl_input`; needed when the inputs hold ``pnl``) broadcast to ``obs[..., 0]``.
        """
        dtype = self.input_mean.dtype
        exogenous = obs[..., : self.n_features - self.n_positions].to(dtype)
        extra = [hedge, option][: self.n_positions]
        if self.uses_pnl:
            if pnl is None:
                raise ValueError("this policy reads the P&L so far: pass pnl=")
            extra.append(pnl)
        full = exogenous
        if extra:
            parts = [(p / self.spec.notional).to(dtype).expand(exogenous.shape[:-1])
                     for p in extra]
            full = torch.cat([exogenous, torch.stack(parts, dim=-1)], dim=-1)
        if self._select:
            full = full[..., self.input_index]
        return (full - self.input_mean) / self.input_std

    def initial_hidden(self, n: int) -> Tensor | None:
        """The hidden state at the start of an episode (None for ``mlp``)."""
        if self.cell is None:
            return None
        return torch.zeros(n, self.cell.hidden_size, dtype=self.input_mean.dtype,
                           device=self.input_mean.device)

    def forward(self, x: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Raw outputs ``(..., n_out)`` from standardised inputs, and the next hidden state."""
        if self.cell is not None:
            if hidden is None:
                hidden = self.initial_hidden(x.shape[0])
            hidden = self.cell(x, hidden)
            x = hidden
        return self.head(self.body(x)), hidden

    def targets(
        self, raw: Tensor, hedge: Tensor, option: Tensor, model_hedge: Tensor,
        model_option: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Positions to hold (units) from the raw outputs, in the dtype of ``hedge``."""
        raw = raw.to(hedge.dtype)
        if self.spec.output in ("band", "shifted_band"):
            centre = model_hedge
            if self.spec.output == "shifted_band":
                centre = model_hedge + raw[..., 2] * self.spec.notional
            lower = nn.functional.softplus(raw[..., 0]) * self.spec.notional
            upper = nn.functional.softplus(raw[..., 1]) * self.spec.notional
            band = TORCH_OPS.clip(hedge, centre - lower, centre + upper)
            reach = self.spec.position_limit * self.spec.notional
            held = TORCH_OPS.clip(band, model_hedge - reach, model_hedge + reach)
            return held, model_option * 0.0
        mode, action = _MODES[self.spec.output], torch.tanh(raw)
        new_hedge = target_position(mode, action[..., 0], hedge, model_hedge, self.core,
                                    TORCH_OPS)
        if self.spec.action_dim == 1:
            return new_hedge, option * 0.0
        new_option = target_position(mode, action[..., 1], option, model_option, self.core,
                                     TORCH_OPS, option=True)
        return new_hedge, new_option

    def step(
        self, obs: Tensor, hedge: Tensor, option: Tensor, model_hedge: Tensor,
        model_option: Tensor, hidden: Tensor | None = None, pnl: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One decision: the positions to hold ``(hedge, option)`` and the next hidden state.

        Args:
            obs: observations ``(n, n_features)`` (their position entries are ignored).
            hedge: units of the underlying held, ``(n,)``.
            option: units of the hedging option held, ``(n,)``.
            model_hedge: the env's model hedge, ``(n,)`` (the band's centre).
            model_option: the env's model position in the hedging option, ``(n,)``.
            hidden: the recurrent state (None at the start of an episode).
            pnl: the P&L so far (:func:`pnl_input`), currency, ``(n,)`` (when an input).
        """
        raw, hidden = self(self.features(obs, hedge, option, pnl), hidden)
        new_hedge, new_option = self.targets(raw, hedge, option, model_hedge, model_option)
        return new_hedge, new_option, hidden

