"""hedgearena.baselines: classical hedgers and the scoring arena.

Every hedger is a :class:`~hedgearena.baselines.hedger.Hedger`: ``reset(env)`` at the start of
a batch, ``positions(state, obs)`` the positions to hold, vectorised over paths;
:func:`~hedgearena.baselines.hedger.run_hedger` runs one on a vector env.
"""

from hedgearena.baselines.bands import AdaptiveBand, FixedBand, WhalleyWilmott
from hedgearena.baselines.delta import BlackScholesDelta, NoHedge
from hedgearena.baselines.delta_gamma import DeltaGamma, DeltaVega
from hedgearena.baselines.hedger import EpisodeRecord, Hedger, run_hedger
from hedgearena.baselines.leland import Leland
from hedgearena.baselines.minimum_variance import MinimumVarianceDelta, fit_minimum_variance
from hedgearena.baselines.model_delta import ModelDelta
from hedgearena.baselines.portfolio_insurance import CPPI, SyntheticPut
from hedgearena.baselines.realised_delta import RealisedVolDelta
from hedgearena.baselines.zakamouline import Zakamouline

__all__ = [
    "CPPI",
    "AdaptiveBand",
    "BlackScholesDelta",
    "DeltaGamma",
    "DeltaVega",
    "EpisodeRecord",
    "FixedBand",
    "Hedger",
    "Leland",
    "MinimumVarianceDelta",
    "ModelDelta",
    "NoHedge",
    "RealisedVolDelta",
    "SyntheticPut",
    "WhalleyWilmott",
    "Zakamouline",
    "fit_minimum_variance",
    "run_hedger",
]
