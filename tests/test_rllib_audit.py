"""RLlib training loop without Ray: Ctrl-C writes a checkpoint, and resuming starts from it.

The algorithm is a stand-in (``train`` returns RLlib's result layout, ``save_to_path`` writes a
folder), so these tests run the real loop of :func:`hedgearena.agents.rllib.train_rllib` in a
fraction of a second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hedgearena.agents import rllib
from hedgearena.run_config import load_config

STEPS_PER_ITERATION = 100


class FakeAlgo:
    """What ``train_rllib`` calls on an RLlib algorithm; Ctrl-C during iteration ``interrupt``."""

    def __init__(self, interrupt: int | None = None) -> None:
        self.steps = 0
        self.calls = 0
        self.interrupt = interrupt
        self.restored: str | None = None
        self.stopped = False

    def train(self) -> dict[str, Any]:
        self.calls += 1
        if self.calls == self.interrupt:
            raise KeyboardInterrupt
        self.steps += STEPS_PER_ITERATION
        return {"env_runners": {"num_env_steps_sampled_lifetime": self.steps}}

    def save_to_path(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "state.json").write_text(json.dumps({"steps": self.steps}))

    def restore_from_path(self, path: str) -> None:
        self.restored = path
        self.steps = json.loads((Path(path) / "state.json").read_text())["steps"]

    def get_module(self) -> Any:
        return object()

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def fake_rllib(monkeypatch):
    """Patch out Ray: the algorithm, the env registration, validation and module saving."""
    algos: list[FakeAlgo] = []
    validations: list[int] = []

    class _Config:
        def __init__(self, interrupt: int | None) -> None:
            self.interrupt = interrupt

        def build_algo(self) -> FakeAlgo:
            algos.append(FakeAlgo(self.interrupt))
            return algos[-1]

    interrupt: dict[str, int | None] = {"at": None}
    monkeypatch.setattr(rllib, "register_rllib_envs", lambda: [])
    monkeypatch.setattr(rllib, "algorithm_config",
                        lambda *args, **kwargs: _Config(interrupt["at"]))

    def validate(algo, config, env_config, run_dir, state, writer, normalizer):
        validations.append(state.steps)
        state.history.append({"timesteps": float(state.steps), "objective": 1.0})
        state.last_eval = state.steps
        if state.best > 1.0 or not (run_dir / "best").is_dir():
            (run_dir / "best").mkdir(parents=True, exist_ok=True)
            state.best = 1.0
        return {"objective": 1.0}

    monkeypatch.setattr(rllib, "_validate", validate)
    return algos, validations, interrupt


def _config(tmp_path: Path) -> Any:
    return load_config(overrides=[f"out={tmp_path}", "rllib.n_timesteps=1000",
                                  "rllib.eval_freq=1000", "rllib.checkpoint_freq=1000"])


def test_ctrl_c_writes_a_checkpoint_and_the_run_resumes_from_it(fake_rllib, tmp_path) -> None:
    """Ctrl-C during the 4th iteration (300 steps done, the first periodic checkpoint due at
    1000): a checkpoint of the 300 steps is written on the way out (none was before: a resume
    started again from 0), and running again resumes from it."""
    algos, validations, interrupt = fake_rllib
    config = _config(tmp_path)
    env_config = config.env.config()
    run_dir = tmp_path / "run"
    interrupt["at"] = 4
    with pytest.raises(KeyboardInterrupt):
        rllib.train_rllib(config, env_config, run_dir, progress=False)
    assert algos[0].stopped
    pointer = json.loads((run_dir / "checkpoints" / rllib.LATEST).read_text())
    assert pointer["timesteps"] == 300
    assert pointer["iterations"] == 3
    assert json.loads((run_dir / "checkpoints" / "step_300" / "state.json").read_text()) == {
        "steps": 300}
    assert not list((run_dir / "checkpoints").glob("*.tmp"))

    interrupt["at"] = None
    summary = rllib.train_rllib(config, env_config, run_dir, progress=False)
    assert algos[1].restored is not None
    assert algos[1].restored.endswith("step_300")
    assert summary["resumed_from"] == 300
    assert summary["timesteps"] == 1000
    assert summary["iterations"] == 10  # 3 before Ctrl-C and 7 after: none done twice
    assert validations == [1000]
    assert (run_dir / "model").is_dir()


def test_ctrl_c_before_any_step_writes_nothing(fake_rllib, tmp_path) -> None:
    algos, _, interrupt = fake_rllib
    config = _config(tmp_path)
    interrupt["at"] = 1
    with pytest.raises(KeyboardInterrupt):
        rllib.train_rllib(config, config.env.config(), tmp_path / "run", progress=False)
    assert algos[0].stopped
    assert not (tmp_path / "run" / "checkpoints").exists()


class _Module:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def save_to_path(self, path: str) -> None:
        Path(path).mkdir(parents=True)
        (Path(path) / "weights").write_text("new")
        if self.fail:
            raise KeyboardInterrupt  # Ctrl-C half-way through writing the module


def test_an_interrupted_module_save_leaves_the_previous_best_whole(tmp_path) -> None:
    config = _config(tmp_path)
    best = tmp_path / "best"
    rllib.save_module(_Module(), best, config.rllib)
    (best / "module" / "weights").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        rllib.save_module(_Module(fail=True), best, config.rllib)
    assert (best / "module" / "weights").read_text() == "old"
    assert (best / rllib.AGENT_FILE).is_file()
    rllib.save_module(_Module(), best, config.rllib)  # a leftover partial folder is no obstacle
    assert (best / "module" / "weights").read_text() == "new"
    assert not best.with_name("best.partial").exists()


def test_validation_restores_a_missing_best_module(tmp_path, monkeypatch) -> None:
    """best/ gone (Ctrl-C after the old one was removed, before the new one was written) while
    the checkpoint's best objective is lower than any later validation: the old code never
    wrote best/ again, and publishing the model failed (FileNotFoundError on best/)."""
    from hedgearena.agents import callbacks

    monkeypatch.setattr(callbacks, "validation_scores",
                        lambda *args, **kwargs: {"agent": {"objective": 1.0}})

    class _Algo:
        def get_module(self) -> _Module:
            return _Module()

    class _Writer:
        def add_scalar(self, *args: Any) -> None:
            pass

    config = _config(tmp_path)
    state = rllib._Progress(steps=500, best=0.5)  # the lost module's objective
    rllib._validate(_Algo(), config, config.env.config(), tmp_path, state, _Writer(), None)
    assert (tmp_path / "best" / "module" / "weights").is_file()
    assert state.best == 1.0  # the objective of the module in best/
    rllib._publish(tmp_path)
    assert (tmp_path / "model" / rllib.AGENT_FILE).is_file()
