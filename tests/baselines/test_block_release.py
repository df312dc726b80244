"""A block's paths are released before the next block is built (the arena's peak memory).

The arena builds block after block (``PATH_BLOCK`` paths each). Its hedgers keep the env they
were reset with (``BlackScholesDelta`` reads the env's config through it), so before
:meth:`VecHedgingEnv.close_extras` the last block's env, and with it the block's whole batch
(about 250 MB an OptionBook block of 16,384 paths), stayed alive while the next block was
built: OptionBook, 40,000 paths, three hedgers, 1,068 MB max RSS then, 861 MB now.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from hedgearena.baselines import arena
from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.bands import WhalleyWilmott
from hedgearena.baselines.delta import BlackScholesDelta, NoHedge
from hedgearena.envs.config import make_config
from hedgearena.envs.vector_env import VecHedgingEnv


def _episode_refs(env: VecHedgingEnv) -> list[weakref.ref]:
    """Weak references to the arrays the env's current episodes live in (their bases)."""
    arrays = [env.batch.market.spot, env.batch.episode.model_hedge, env.batch.initial_cash]
    return [weakref.ref(a.base if a.base is not None else a) for a in arrays]


def test_a_closed_vector_env_releases_its_paths_and_starts_again_on_reset() -> None:
    env = VecHedgingEnv(num_envs=8, preset="ShortCall", block=32)
    env.reset(seed=3)
    env.step(np.zeros((8, 1), dtype=np.float32))
    refs = _episode_refs(env)
    env.close()
    gc.collect()
    assert [r() for r in refs] == [None, None, None]  # the batch and the source's block
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        env.step(np.zeros((8, 1), dtype=np.float32))
    with pytest.raises(RuntimeError, match=r"no episodes: call reset\(\) first"):
        env.state  # noqa: B018
    obs, _ = env.reset()  # a closed env starts again, on new paths of its generator
    assert obs.shape == (8, env.single_observation_space.shape[0])
    assert np.isfinite(obs).all()
    assert env.state["step"].tolist() == [0] * 8
    env.step(np.zeros((8, 1), dtype=np.float32))
    refs = _episode_refs(env)
    env.close()  # released again: the reset opened it
    gc.collect()
    assert [r() for r in refs] == [None, None, None]


def test_state_before_the_first_reset_says_to_reset() -> None:
    """It raised ``AttributeError: ... no attribute '_batch'``."""
    env = VecHedgingEnv(num_envs=2, preset="ShortCall")
    with pytest.raises(RuntimeError, match=r"call reset\(\) first"):
        env.state  # noqa: B018
    with pytest.raises(RuntimeError, match=r"call reset\(\) first"):
        env.batch  # noqa: B018


def test_no_block_is_alive_while_the_next_is_built(monkeypatch) -> None:
    """Every earlier block's arrays are gone when a block is built, with hedgers that keep
    their env (the delta hedger) and a state-only env shared by three hedgers."""
    monkeypatch.setattr(arena, "PATH_BLOCK", 64)
    built: list[weakref.ref] = []
    alive_at_build: list[int] = []
    original = arena.build_episodes

    def tracking(*args, **kwargs):
        gc.collect()
        alive_at_build.append(sum(ref() is not None for ref in built))
        batch = original(*args, **kwargs)
        built.append(weakref.ref(batch.market.spot))
        return batch

    monkeypatch.setattr(arena, "build_episodes", tracking)
    config = make_config("ShortCall", cost=1e-3)
    hedgers = [BlackScholesDelta(), WhalleyWilmott(0.1), NoHedge()]
    result = run_arena(config, hedgers, n_paths=200, seed=4, progress=False)
    assert alive_at_build == [0, 0, 0, 0]  # four blocks: 64, 64, 64, 8
    monkeypatch.setattr(arena, "PATH_BLOCK", 10**6)
    monkeypatch.setattr(arena, "build_episodes", original)
    # the same scores as before the release: each block's paths do not depend on the others'
    for index, size in [(0, 64), (3, 8)]:
        batch = original(config, size, arena.block_generator(4, index), False)
        np.testing.assert_array_equal(result.spot[index * 64: index * 64 + size],
                                      batch.market.spot)


def test_keep_batches_still_keeps_every_block() -> None:
    """``keep_batches=True`` keeps the blocks on purpose: closing the envs does not touch them."""
    config = make_config("ShortCall")
    result = run_arena(config, [BlackScholesDelta()], n_paths=20, seed=1, progress=False,
                       keep_batches=True)
    assert result.batch.market.spot.shape == (20, config.n_steps + 1)
    np.testing.assert_array_equal(result.batch.market.spot, result.spot)


def test_a_hedger_still_reads_the_last_blocks_paths_after_the_run(monkeypatch) -> None:
    """Only the blocks before the last are released: a hedger that keeps its env can read the
    last block's episodes after ``run_arena`` (as before the release)."""
    monkeypatch.setattr(arena, "PATH_BLOCK", 64)
    hedger = BlackScholesDelta()
    run_arena(make_config("ShortCall"), [hedger], n_paths=100, seed=2, progress=False)
    env = hedger._env
    assert env is not None
    assert env.batch.market.spot.shape[0] == 36  # the last block: paths 64 to 99
