"""Fixtures of the agents' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def torch_one_thread() -> Iterator[None]:
    """One torch thread: the machine's cores are shared, and oversubscription is 20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
