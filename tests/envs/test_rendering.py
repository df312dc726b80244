"""Rendering: the single env's and the vector env's ``ansi`` lines and ``rgb_array`` stories."""

import gymnasium as gym
import numpy as np
import pytest

import hedgearena  # noqa: F401  (registers the ids)
from hedgearena.envs.hedging_env import HedgingEnv
from hedgearena.envs.vector_env import VecHedgingEnv


def _vector(num_envs, **kwargs):
    return gym.make_vec("hedgearena/ShortCall-v0", num_envs=num_envs,
                        vectorization_mode="vector_entry_point", **kwargs)


def test_vector_ansi_lines_are_the_single_envs():
    # one path, same seed and actions: the vector env's line is the single env's, step by step
    single = gym.make("hedgearena/ShortCall-v0", render_mode="ansi")
    vector = _vector(1, render_mode="ansi")
    single.reset(seed=3)
    vector.reset(seed=3)
    actions = np.linspace(-1.0, 1.0, 19, dtype=np.float32)
    assert vector.render() == (single.render(),)
    for a in actions:
        single.step(np.array([a]))
        vector.step(np.array([[a]]))
        assert vector.render() == (single.render(),)
        assert single.render().startswith("step ")


@pytest.mark.parametrize("kwargs", [{}, {"rebalance_every": 2}, {"preset": "OptionBook"}])
def test_vector_stories_are_the_single_envs(kwargs):
    # one path, same seed and actions: the same points, the last decision's hedge included
    # (drawn before the unwind at expiry)
    preset = kwargs.pop("preset", "ShortCall")
    single = gym.make(f"hedgearena/{preset}-v0", render_mode="rgb_array", **kwargs).unwrapped
    vector = gym.make_vec(f"hedgearena/{preset}-v0", num_envs=1,
                          vectorization_mode="vector_entry_point", render_mode="rgb_array",
                          **kwargs).unwrapped
    single.reset(seed=5)
    vector.reset(seed=5)
    rng = np.random.default_rng(0)
    terminated = False
    while not terminated:
        action = rng.uniform(-1.0, 1.0, single.action_space.shape).astype(np.float32)
        _, _, terminated, _, _ = single.step(action)
        vector.step(action[None, :])
        np.testing.assert_allclose(np.array(vector._stories[0]), np.array(single._story),
                                   rtol=1e-12, atol=1e-9)
    assert single._story[-1][1] != 0.0  # the last decision's hedge, not the unwound 0


def test_rgb_array_stories_follow_the_episode_and_restart_with_the_next():
    single = gym.make("hedgearena/ShortCall-v0", render_mode="rgb_array")
    single.reset(seed=0)
    first = single.render()
    assert first.dtype == np.uint8
    assert first.ndim == 3
    assert first.shape[2] == 3
    vector = _vector(3, render_mode="rgb_array", render_envs=2)
    vector.reset(seed=0)
    env = vector.unwrapped
    assert isinstance(env, VecHedgingEnv)
    zeros = np.zeros(vector.action_space.shape, dtype=np.float32)
    for step in range(1, 21):  # one 20-day episode: a decision a day
        vector.step(zeros + 0.5)
        assert [len(story) for story in env._stories] == [step + 1, step + 1]
    frames = vector.render()
    assert len(frames) == 2
    assert all(f.dtype == np.uint8 and f.shape == first.shape for f in frames)
    assert not np.array_equal(frames[0], frames[1])  # two paths, two stories
    vector.step(zeros)  # NEXT_STEP: the rows start their next episodes
    assert [len(story) for story in env._stories] == [1, 1]


def test_render_settings_are_checked():
    assert _vector(2).render() is None
    with pytest.raises(ValueError, match=r"render_mode must be one of \['ansi', 'rgb_array'\]"):
        _vector(2, render_mode="human")
    with pytest.raises(ValueError, match=r"render_envs must be an integer in \[1, num_envs=2\]"):
        _vector(2, render_mode="ansi", render_envs=3)
    with pytest.raises(ValueError, match=r"render_mode must be one of"):
        HedgingEnv(render_mode="bogus")


def test_frames_drawn_on_the_envs_kept_figures_are_new_figures_pixel_for_pixel():
    # the envs draw frame after frame on kept figures (rendering.StoryFigures); each frame must
    # be what a new figure draws: the first frame (one point, markers), the middle, the end
    # (held into expiry); also after a copy and a pickle of the env (which start empty)
    import copy
    import pickle

    from hedgearena.envs import rendering

    env = gym.make("hedgearena/ShortCall-v0", render_mode="rgb_array").unwrapped
    env.reset(seed=5)
    frames = {}
    for t in range(env.config.n_steps + 1):
        if t in (0, 1, 2, env.config.n_steps):
            frames[t] = env.render()
        if t < env.config.n_steps:
            env.step(np.array([0.5 - 0.05 * t], dtype=np.float32))
    for twin in (copy.deepcopy(env), pickle.loads(pickle.dumps(env))):
        assert twin.render().shape == frames[env.config.n_steps].shape
    env.reset(seed=5)
    for t in range(env.config.n_steps + 1):
        if t in frames:
            fresh = rendering.StoryFigures()  # a new figure for this frame alone
            kept, env._figures = env._figures, fresh
            np.testing.assert_array_equal(env.render(), frames[t])
            env._figures = kept
        if t < env.config.n_steps:
            env.step(np.array([0.5 - 0.05 * t], dtype=np.float32))
    assert len(env._figures._kept) == 2  # one figure per layout: the first frame's and the rest's


def test_figure_to_rgb_keeps_the_red_green_blue_channels_in_order():
    # a figure painted pure red, then pure blue: its pixels are (255, 0, 0), then (0, 0, 255)
    # (Agg's buffer is RGBA; dropping the wrong channel would give (0, 0, 255) for red)
    from hedgearena.envs.rendering import agg_figure, figure_to_rgb

    for color, expected in (((1.0, 0.0, 0.0), [255, 0, 0]), ((0.0, 0.0, 1.0), [0, 0, 255])):
        pixels = figure_to_rgb(agg_figure(figsize=(1, 1), dpi=20, facecolor=color))
        assert pixels.shape == (20, 20, 3)
        assert pixels.dtype == np.uint8
        assert (pixels.reshape(-1, 3) == expected).all()


@pytest.mark.parametrize(("n_hedgers", "columns"), [(21, 1), (22, 2)])
def test_the_positions_legend_takes_two_columns_from_22_hedgers(n_hedgers, columns):
    # the legend beside the positions panel lists the model hedge and every hedger: from 22
    # hedgers (23 entries) one column would run off the figure, so it takes two
    from hedgearena.envs.rendering import path_story_figure

    t = np.arange(3.0)
    hedges = {f"h{i}": np.full(3, float(i)) for i in range(n_hedgers)}
    fig = path_story_figure(t, np.full(3, 100.0), np.full(3, -50.0), hedges)
    legend = fig.axes[1].get_legend()
    assert len(legend.get_texts()) == n_hedgers + 1
    assert legend._ncols == columns


@pytest.mark.parametrize("vector", [False, True])
def test_the_envs_stories_name_a_delta_gamma_model_hedge(monkeypatch, vector):
    """With a hedging option the env's model hedge is delta-gamma's (the book's delta net of
    the model's option position): its frames' legend says so, as the arena's stories do."""
    from hedgearena.envs import rendering

    drawn = []
    draw = rendering.path_story_figure

    def spy(*args, **kwargs):
        drawn.append(kwargs["labels"])
        return draw(*args, **kwargs)

    monkeypatch.setattr(rendering, "path_story_figure", spy)
    for hedge_option, model in [(True, "model hedge (delta-gamma)"), (False, "model hedge")]:
        kwargs = {"render_mode": "rgb_array", "hedge_option": hedge_option}
        env = _vector(1, **kwargs) if vector else gym.make("hedgearena/ShortCall-v0", **kwargs)
        env.reset(seed=0)
        env.render()
        assert drawn[-1].model == model
