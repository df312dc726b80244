"""Test-session settings shared by every test module."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One torch thread per test process.

    ``make test`` runs two pytest workers on two cores; torch's default of one thread per core
    would make the workers wait on each other's cores (20x slower training steps measured).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def delta_hedge_pnl():
    """``run(config, n_paths, seed=1)``: the model delta hedge of ``config`` on the paths of
    ``default_rng(seed)``, through the vector env (``step_targets`` at the model hedge).

    Returns ``(pnl, spot)``: the step P&L ``(n_decisions, n_paths)`` and the spots
    ``(n_paths, n_steps + 1)``.
    """
    import numpy as np

    from hedgearena.envs.episode import build_episodes
    from hedgearena.envs.vector_env import VecHedgingEnv

    def run(config, n_paths: int, seed: int = 1):
        batch = build_episodes(config, n_paths, np.random.default_rng(seed))
        env = VecHedgingEnv(num_envs=n_paths, config=config, block=n_paths)
        env.reset(options={"episodes": batch})
        pnl = []
        for _ in range(config.n_decisions):
            _, _, _, _, info = env.step_targets(env.state["model_hedge"][:, None])
            pnl.append(info["pnl"])
        return np.asarray(pnl), batch.market.spot

    return run


@pytest.fixture
def no_ray(monkeypatch):
    """Fail at once where the old code went on to start Ray (and run trials for minutes)."""
    from hedgearena import sweep

    def started(*args, **kwargs):
        raise AssertionError("Ray was started: the config should have been refused before")

    monkeypatch.setattr(sweep, "ray_session", started)
    monkeypatch.setattr("hedgearena.agents.rllib.ray_session", started, raising=False)
