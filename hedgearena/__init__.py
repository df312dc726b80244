"""hedgearena: an arena for hedging option books under transaction costs.

The import namespace maps the repository's top-level folders:
``hedgearena.envs`` (market models, pricing, frictions, environments),
``hedgearena.baselines`` (classical hedgers and the arena) and
``hedgearena.agents`` (learned hedgers). Importing ``hedgearena`` registers the environments
with Gymnasium (so ``gym.make("hedgearena/ShortCall-v0")`` works after ``import hedgearena``,
and rl-zoo's ``--gym-packages hedgearena``).
"""

import hedgearena.envs  # noqa: F401  (registers the Gymnasium ids)

__version__ = "0.1.0"
