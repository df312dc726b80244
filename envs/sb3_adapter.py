"""stable-baselines3 adapter: the native vector env as an SB3 ``VecEnv``.

stable-baselines3 does not take a Gymnasium ``VectorEnv``; its ``DummyVecEnv`` would hold one
Python env object per path. :class:`SB3VecEnv` gives SB3 the native :class:`VecHedgingEnv`
instead: one array step for all paths, SAME_STEP autoreset, ``terminal_observation`` in the
infos of finished rows, and a Monitor-style ``episode`` entry (``r``, ``l``, ``t``) plus the
episode's hedging totals, so SB3's ``ep_rew_mean``, callbacks and ``evaluate_policy`` (which
reads the raw returns there, also through a ``VecNormalize``: ``env_is_wrapped(Monitor)`` is
True) work unchanged.

Wrappers go on SB3's side (``VecNormalize``, ``VecMonitor``...): the adapter steps the native
env itself, so it refuses a Gymnasium vector wrapper, which it would otherwise bypass.
With ``render_mode="rgb_array"`` :meth:`SB3VecEnv.render` tiles the native env's pictures of its
first ``render_envs`` paths.

Examples:
    >>> import gymnasium as gym, hedgearena  # doctest: +SKIP
    >>> from stable_baselines3 import PPO  # doctest: +SKIP
    >>> venv = SB3VecEnv(gym.make_vec("hedgearena/ShortCall-v0", num_envs=64,
    ...     vectorization_mode="vector_entry_point", autoreset_mode="same_step"))  # doctest: +SKIP
    >>> PPO("MlpPolicy", venv).learn(10_000)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
    tile_images,
)

from hedgearena.envs.vector_env import VecHedgingEnv

HEDGE_TOTALS = ("pnl", "cost", "turnover", "trades", "terminal_pnl")


class SB3VecEnv(VecEnv):
    """Wrap a :class:`VecHedgingEnv` (SAME_STEP autoreset) as a stable-baselines3 ``VecEnv``.

    Args:
        env: the native vector env (``gym.make_vec``'s result with
            ``vectorization_mode="vector_entry_point"``), not wrapped; it must use
            ``autoreset_mode="same_step"``.

    Raises:
        TypeError: ``env`` is not a native vector env, or is one inside a Gymnasium wrapper.
        ValueError: ``env`` does not use SAME_STEP autoreset.
    """

    def __init__(self, env: Any) -> None:
        venv = getattr(env, "unwrapped", env)
        if not isinstance(venv, VecHedgingEnv):
            raise TypeError(f"SB3VecEnv wraps a VecHedgingEnv, got {type(venv).__name__}")
        if venv is not env:
            raise TypeError(
                f"SB3VecEnv steps the native env itself and would bypass the wrapper "
                f"{type(env).__name__}: pass the unwrapped VecHedgingEnv and wrap the adapter "
                "with SB3's VecEnv wrappers (VecNormalize, VecMonitor, ...) instead"
            )
        if venv.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                "SB3VecEnv needs autoreset_mode='same_step' (stable-baselines3's convention), "
                f"got {venv.autoreset_mode.value!r}"
            )
        self.venv = venv
        self._settings = frozenset(dir(venv))  # the env's own names (set_attr refuses them)
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._t0 = time.perf_counter()

    def reset(self) -> VecEnvObs:
        """Reset every row (SB3 passes seeds through :meth:`seed`; the first seeds the batch).

        Options given with ``set_options`` go to the native env's reset (the first row's: the
        batch takes one set of options, e.g. ``{"hedge": 50.0}``).
        """
        seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else None
        options = self._options[0] if self._options and self._options[0] else None
        obs, _ = self.venv.reset(seed=seed, options=options)
        self._reset_seeds()
        self._reset_options()
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Store the actions, ``(num_envs, action_dim)`` (a flat vector is reshaped)."""
        self._actions = np.asarray(actions).reshape(self.num_envs, -1)

    def step_wait(self) -> VecEnvStepReturn:
        """Step all rows; finished rows are reset and report their terminal observation."""
        assert self._actions is not None, "step_async must be called before step_wait"
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        self._returns += rewards
        self._lengths += 1
        dones = terminated | truncated
        out: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():  # a row both terminated and truncated ends: SB3 must not bootstrap it
            self._finish_rows(np.flatnonzero(dones), truncated & ~terminated, infos, out)
        return obs, rewards.astype(np.float32), dones, out

    def _finish_rows(
        self,
        rows: np.ndarray,
        truncated: np.ndarray,
        infos: dict[str, Any],
        out: list[dict[str, Any]],
    ) -> None:
        final_obs = infos["final_obs"]
        totals = infos["final_info"].get("totals", {})
        has_totals = infos["final_info"].get("_totals", np.zeros(self.num_envs, dtype=bool))
        elapsed = round(time.perf_counter() - self._t0, 6)
        for i in rows.tolist():
            out[i] = {
                "terminal_observation": final_obs[i],
                "TimeLimit.truncated": bool(truncated[i]),
                "episode": {"r": float(self._returns[i]), "l": int(self._lengths[i]), "t": elapsed},
                # the episode's totals (a row cut by a time limit only, no totals: {})
                "hedge": {key: float(totals[key][i]) for key in HEDGE_TOTALS if key in totals}
                if has_totals[i] else {},
            }
        self._returns[rows] = 0.0
        self._lengths[rows] = 0

    def close(self) -> None:
        """Close the native env."""
        self.venv.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The native env's attribute, once per requested row."""
        return [getattr(self.venv, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set a new attribute on the native env (shared by all rows: ``indices`` must be all).

        Raises:
            ValueError: ``attr_name`` is one the env already has (``reward_scale``, ``config``,
                ``core``...): the env reads its settings when it is built, so overwriting one
                would change the attribute and not the env. Build a new env with the keyword.
        """
        self._whole_batch("set_attr", indices)
        if attr_name in self._settings:
            raise ValueError(
                f"set_attr({attr_name!r}) would overwrite an attribute of "
                f"{type(self.venv).__name__}, which reads its settings when it is built (the new "
                "value would not change the env); make a new env with the keyword instead "
                f"(make_sb3_vec_env(env_id, num_envs, {attr_name}=...)), or set an attribute of "
                "your own")
        setattr(self.venv, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call a method of the native env once and report its result for each row.

        The native env is one object for the batch: ``indices`` must be all the rows.
        """
        self._whole_batch("env_method", indices)
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """Whether each row is wrapped by ``wrapper_class``: True for SB3's ``Monitor``.

        No Gymnasium wrapper is on the rows, but the adapter reports each finished row's
        ``info["episode"]`` as a ``Monitor`` does, from the raw rewards, so it answers as a row
        in a ``Monitor`` would (``isinstance`` semantics: True for ``Monitor`` and its base
        classes, False for any other class).
        SB3's ``evaluate_policy`` asks this to read the raw episode returns from the infos
        rather than sum the rewards it sees, which a ``VecNormalize`` on top has scaled.
        """
        monitored = isinstance(wrapper_class, type) and issubclass(Monitor, wrapper_class)
        return [monitored for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """The native env's pictures of its first ``render_envs`` rows (``rgb_array``), else None.

        Rows beyond ``render_envs`` (and every row in other render modes) give None.
        """
        frames = list(self.venv.render() or ()) if self.render_mode == "rgb_array" else []
        return [*frames, *[None] * (self.num_envs - len(frames))]

    def render(self, mode: str | None = None) -> np.ndarray | None:
        """SB3's ``render``; in ``rgb_array`` mode the rendered rows' pictures, tiled."""
        if self.render_mode == "rgb_array" and mode in (None, "rgb_array"):
            frames = [frame for frame in self.get_images() if frame is not None]
            return tile_images(frames) if frames else None
        return super().render(mode)

    def _whole_batch(self, what: str, indices: VecEnvIndices) -> None:
        """Refuse ``indices`` that are not every row (the native env acts on the batch)."""
        if indices is not None and sorted(self._get_indices(indices)) != list(
                range(self.num_envs)):
            raise ValueError(f"{what} acts on the native env's whole batch of {self.num_envs} "
                             f"rows; indices must be None (all), got {indices!r}")

    def _get_indices(self, indices: VecEnvIndices) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices


def make_sb3_vec_env(
    env_id: str, num_envs: int, seed: int | None = None, **kwargs: Any
) -> SB3VecEnv:
    """The native vector env of ``env_id`` with ``num_envs`` paths, as an SB3 ``VecEnv``.

    That is ``SB3VecEnv(gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point",
    autoreset_mode="same_step", **kwargs))``, seeded when ``seed`` is given.
    """
    import gymnasium as gym

    venv = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        autoreset_mode=AutoresetMode.SAME_STEP,
        **kwargs,
    )
    adapter = SB3VecEnv(venv)
    if seed is not None:
        adapter.seed(seed)
    return adapter
