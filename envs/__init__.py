"""hedgearena.envs: the market, the option book, the frictions and the hedging environments.

Importing the package registers the Gymnasium ids ``hedgearena/ShortCall-v0``,
``hedgearena/OptionBook-v0``, ``hedgearena/HistoricalReplay-v0`` and
``hedgearena/PortfolioInsurance-v0`` (:data:`ENV_IDS`).
"""

from hedgearena.envs.registered import ENV_IDS, register_envs

register_envs()

__all__ = ["ENV_IDS", "register_envs"]
