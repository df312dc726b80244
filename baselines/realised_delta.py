"""Delta hedging at the realised vol: each option's delta at the realised vol, not the implied.

Which vol to delta-hedge at when the implied vol and the vol the spot realises differ is the
question of Ahmad and Wilmott (2005), "Which free lunch would you like today, Sir? Delta hedging,
volatility arbitrage and optimal portfolios", Wilmott Magazine (November), 64-79. Hedged at the
implied vol, an option's mark-to-market P&L accrues as ``1/2 (sigma_a^2 - sigma_i^2) S^2
Gamma_i dt``: smooth, but its total depends on the path. Hedged at the actual vol, the total is
known from the start, ``V(sigma_a) - V(sigma_i)``, but the P&L swings on the way. A hedger never
knows the actual vol: here it is the env's estimate, ``state["realised_vol"]`` (an EWMA of
squared returns with half-life ``realised_vol_halflife`` steps, started at the initial implied
vol), so hedging at it also carries the estimate's noise. On the S&P 500 replay the implied vol
(the VIX) is mostly above the vol the index realises: the variance risk premium.
"""

from __future__ import annotations

import numpy as np

from hedgearena.baselines.delta import FloatArray
from hedgearena.baselines.hedger import State
from hedgearena.baselines.leland import BookSlots, RepricedDelta


class RealisedVolDelta(RepricedDelta):
    """Minus the book's delta with every option valued at the path's realised vol.

    Per instrument ``i`` held on the path the hedge vol is ``state["realised_vol"]`` (one number
    a path, whatever the strike: the realised vol is the underlying's); the hedge is ``-(sum_i
    q_i delta_i(sigma_realised) + stock)``, the underlying only (with a hedging option it holds
    none). The first decision's realised vol is the initial at-the-money implied vol, so on a
    flat surface it opens at the Black-Scholes delta.
    """

    name = "delta at realised vol"

    def hedging_vols(self, state: State, slots: BookSlots, implied: FloatArray) -> FloatArray:
        """The realised vol of the paths of the book's ``slots``, ``(k,)``."""
        return np.asarray(state["realised_vol"], dtype=np.float64).take(slots.path)
