"""Fixtures of the agents' tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch


@pytest.fixture
def torch_one_thread() -> Iterator[None]:
    """One torch thread: the machine's cores are shared, and oversubscription is 20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _scrambled(policy: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights of a visible size, so that positions vary across paths and steps."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return policy


@pytest.fixture
def scrambled() -> Callable[..., torch.nn.Module]:
    """``scrambled(policy, seed=0)``: the policy with random weights added (in place)."""
    return _scrambled


def _spy_learning_rates(optimizer: torch.optim.Optimizer,
                        monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The step size of each of ``optimizer``'s steps from now on, in order (a list it fills)."""
    used: list[float] = []
    step = optimizer.step

    def spy(*args: Any, **kwargs: Any) -> Any:
        used.append(optimizer.param_groups[0]["lr"])
        return step(*args, **kwargs)

    monkeypatch.setattr(optimizer, "step", spy)
    return used


@pytest.fixture
def learning_rates(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[float]]:
    """``learning_rates(optimizer)``: the list the step size of each later step is added to."""
    return lambda optimizer: _spy_learning_rates(optimizer, monkeypatch)


def _train_until_killed(config: Any, at_call: int, monkeypatch: pytest.MonkeyPatch,
                        error: BaseException | None = None) -> None:
    """Train the run ``config`` until the SB3 adapter's ``at_call``-th step raises ``error``
    (a crash, ``RuntimeError("killed")``, by default; ``KeyboardInterrupt()`` for a Ctrl-C)."""
    from hedgearena.envs.sb3_adapter import SB3VecEnv
    from hedgearena.training import train_run

    error = RuntimeError("killed") if error is None else error
    step_wait, calls = SB3VecEnv.step_wait, [0]

    def crash(self: SB3VecEnv) -> Any:
        calls[0] += 1
        if calls[0] == at_call:
            raise error
        return step_wait(self)

    monkeypatch.setattr(SB3VecEnv, "step_wait", crash)
    with pytest.raises(type(error)) as raised:
        train_run(config, False)
    assert raised.value is error  # not another error of the same type
    monkeypatch.setattr(SB3VecEnv, "step_wait", step_wait)


@pytest.fixture
def train_until_killed(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``train_until_killed(config, at_call, error=None)``: train the SB3 run ``config`` until
    the adapter's ``at_call``-th step (``num_envs`` env steps each) raises ``error``."""
    return lambda config, at_call, error=None: _train_until_killed(config, at_call, monkeypatch,
                                                                   error)
