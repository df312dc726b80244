"""hedgearena.envs: the market, the option book, the frictions and the hedging environments.

Importing the package registers the Gymnasium ids ``hedgearena/ShortCall-v0``,
``hedgearena/OptionBook-v0``, ``hedgearena/HistoricalReplay-v0`` and
``hedgearena/PortfolioInsurance-v0`` (:data:`ENV_IDS`), and keeps freed memory mapped for the
next episode build (:mod:`hedgearena.envs.memory`; ``HEDGEARENA_MALLOC=system`` opts out).
"""

from hedgearena.envs.memory import keep_freed_memory, malloc_setting
from hedgearena.envs.registered import ENV_IDS, register_envs

if malloc_setting() == "hedgearena":
    keep_freed_memory()
register_envs()

__all__ = ["ENV_IDS", "register_envs"]
