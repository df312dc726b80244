"""Fixtures of the baselines' tests."""

from __future__ import annotations

import pytest

from hedgearena.baselines import arena

SMALL_BLOCK = 50
"""The block size :func:`small_blocks` sets (runs of 130 paths: blocks of 50, 50 and 30)."""


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    """The arena's ``PATH_BLOCK`` set to :data:`SMALL_BLOCK` for the test; returns it."""
    monkeypatch.setattr(arena, "PATH_BLOCK", SMALL_BLOCK)
    return SMALL_BLOCK
