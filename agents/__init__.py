"""hedgearena.agents: learned hedgers (stable-baselines3 agents, deep hedging).

- :mod:`hedgearena.agents.objectives`: risk measures of the hedging cost (numpy and torch).
- :mod:`hedgearena.agents.policies`: the deep-hedging networks (band, position, GRU).
- :mod:`hedgearena.agents.deep_hedging`: the trainer and :class:`DeepHedger`, the arena hedger.

Names are imported lazily, so ``import hedgearena.agents`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "OBJECTIVES": "objectives",
    "Objective": "objectives",
    "parse_objective": "objectives",
    "HedgingPolicy": "policies",
    "PolicySpec": "policies",
    "DeepHedger": "deep_hedging",
    "DeepHedgingTrainer": "deep_hedging",
    "TrainerConfig": "deep_hedging",
    "load_policy": "deep_hedging",
    "save_policy": "deep_hedging",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hedgearena.agents' has no attribute {name!r}")
    module = importlib.import_module(f"hedgearena.agents.{_EXPORTS[name]}")
    return getattr(module, name)
