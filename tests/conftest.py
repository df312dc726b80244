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
