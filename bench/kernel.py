"""The bare pricing kernel the speed targets divide by: d1 and one normal cdf (numpy, scipy).

``bench/pricing.py``'s ``ratio`` (greeks over kernel), ``bench/env_throughput.py``'s
``vector_vs_kernel_16384`` and ``bench/fused_floor.py``'s fused vector env all divide by
:func:`kernel_rate`. It never imports hedgearena (``fused_floor.py`` runs in pfhedge's venv).
"""

from __future__ import annotations

import time

import numpy as np
from scipy.special import ndtr

RATE, DIVIDEND = 0.03, 0.01


def inputs(n: int) -> tuple[np.ndarray, ...]:
    """Random spot, strike, tau (years), vol: the benchmark's inputs, ``(n,)`` each (seed 0)."""
    rng = np.random.default_rng(0)
    return (
        rng.uniform(50, 150, n), rng.uniform(50, 150, n), rng.uniform(0.01, 2, n),
        rng.uniform(0.05, 0.8, n),
    )


def kernel(s: np.ndarray, k: np.ndarray, tau: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The reference: d1 and one normal cdf (``scipy.special.ndtr``), ``(n,)``."""
    d1 = (np.log(s / k) + (RATE - DIVIDEND + 0.5 * v * v) * tau) / (v * np.sqrt(tau))
    return ndtr(d1)


def kernel_rate(n: int) -> float:
    """Inputs per second of one :func:`kernel` call on ``n`` :func:`inputs`."""
    args = inputs(n)
    start = time.perf_counter()
    kernel(*args)
    return n / (time.perf_counter() - start)
