"""Tests written against the mutants that survived a mutation round over the plumbing of
``vector_env.py`` (the native vector env: autoreset, per-row steps, episode totals, the reset's
starting position) and ``sb3_adapter.py`` (the stable-baselines3 ``VecEnv``: its checks of the
env it wraps, ``env_is_wrapped``).

Every expectation comes from a contract written out here, not from re-running the code under
test: Gymnasium's and stable-baselines3's vector-env conventions (SB3's own ``DummyVecEnv`` of a
``Monitor``-wrapped env answers ``env_is_wrapped``), the single env's documented accounting
(wealth ``W = B + h S + g O + cash``, a reset's hedge bought at the initial spot) and hand
counts of steps. Each test's docstring names the code it pins and the mutant it kills.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs.sb3_adapter import SB3VecEnv
from hedgearena.envs.vector_env import VecHedgingEnv

# ------------------------------------------------------------------------ reset's position


def test_a_reset_hedge_is_paid_for_at_the_initial_spot_on_every_row():
    """VecHedgingEnv._begin's ``cash = initial_cash - hedge * spot[0]`` (all rows).

    ``reset(options={"hedge": h})`` starts every row holding ``h`` units bought at the initial
    spot ``S0`` (as :class:`HedgingEnv`: "bought at no cost at the initial spot"), so by hand
    ``cash = premium - h S0`` and the wealth ``B + h S0 + cash`` is the unhedged reset's:
    with h = 50 and S0 = 100, cash is 5,000 below the unhedged reset's and the wealth unchanged.
    Kills: the hedge's price added to the cash (cash 5,000 above, wealth up by 2 h S0 = 10,000).
    """
    env = VecHedgingEnv(num_envs=3, preset="ShortCall")
    _, plain = env.reset(seed=0)
    _, hedged = env.reset(seed=0, options={"hedge": 50.0})
    np.testing.assert_array_equal(hedged["spot"], 100.0)  # ShortCall's S0
    np.testing.assert_array_equal(hedged["hedge"], 50.0)
    np.testing.assert_allclose(hedged["cash"], plain["cash"] - 50.0 * 100.0, rtol=0, atol=1e-9)
    np.testing.assert_allclose(hedged["wealth"], plain["wealth"], rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------ SB3 adapter


class _SubMonitor(Monitor):
    """A Monitor subclass: a row in a plain ``Monitor`` is no instance of it."""


@pytest.mark.parametrize(
    "wrapper", [Monitor, gym.Wrapper, _SubMonitor, gym.ObservationWrapper],
    ids=["Monitor", "gym.Wrapper", "Monitor-subclass", "ObservationWrapper"],
)
def test_env_is_wrapped_answers_as_sb3s_dummy_vec_env_of_a_monitored_env(wrapper):
    """SB3VecEnv.env_is_wrapped's ``issubclass(Monitor, wrapper_class)``.

    The adapter answers as a row inside SB3's ``Monitor`` would. The oracle is SB3 itself:
    ``DummyVecEnv`` of one ``Monitor``-wrapped env (``env_util.is_wrapped``: ``isinstance``
    of each wrapper), which says True for ``Monitor`` and its base class ``gym.Wrapper`` and
    False for a subclass of ``Monitor`` and for an unrelated wrapper class. Kills: the
    ``issubclass`` arguments swapped (True for the subclass, False for ``gym.Wrapper``).
    """
    single = gym.make("hedgearena/ShortCall-v0").unwrapped
    oracle = DummyVecEnv([lambda: Monitor(single)]).env_is_wrapped(wrapper)
    adapter = SB3VecEnv(VecHedgingEnv(num_envs=2, preset="ShortCall", autoreset_mode="same_step"))
    assert adapter.env_is_wrapped(wrapper) == oracle * 2
    assert oracle == [wrapper in (Monitor, gym.Wrapper)]  # the oracle's answer, by hand


def test_adapter_refuses_a_next_step_env():
    """SB3VecEnv.__init__'s SAME_STEP check.

    SB3 reads a finished row's last observation from ``infos[i]["terminal_observation"]`` in the
    step that ends it (its ``DummyVecEnv`` resets inside that step); a ``NEXT_STEP`` env returns
    the ending step without ``final_obs`` and resets one step later, so the adapter must refuse
    it with a ValueError naming the mode it needs and the one it got. Kills: the check dropped
    (a NEXT_STEP env accepted; its first ending step then fails on the missing ``final_obs``).
    """
    env = VecHedgingEnv(num_envs=2, preset="ShortCall", autoreset_mode="next_step")
    with pytest.raises(ValueError, match=r"autoreset_mode='same_step'.*got 'NextStep'"):
        SB3VecEnv(env)
