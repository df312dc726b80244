"""A second audit of the command line and run configs: defects found, each pinned by a test.

- A misspelt command is named as one, with the commands there are.
- Infinite numbers in numeric fields, seeds that numpy or torch cannot take, fewer than two
  validation paths: refused by name before anything is written (they failed after the run's
  folder was written, or with an unnamed error).
- An ``out`` below a file, a run folder that is a file, an unwritable ``out``: named, no
  traceback.
- ``-.05`` is a number (YAML 1.2), ``1:30.5`` text; a config equals the file it writes
  (dates, infinities in free mappings).
- A report folder given as a run folder is named as one; a config file that is a folder or
  not text is named.
- A sweep resumes in its folder however ``--out`` spells it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_refusal import refused as _refused

import hedgearena.training  # noqa: F401  (imported before any test patches what it imports)
from hedgearena.run_config import RunConfig, load_config, parse_override
from hedgearena.yaml_io import dump_yaml, load_yaml

TINY = ["--paths", "64", "--hedgers", "delta", "--set", "arena.tune_paths=64",
        "--set", "arena.n_boot=5", "--set", "arena.frontier=false", "--no-progress"]


def test_a_misspelt_command_is_named_with_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    """It was read as an argument of ``train``: "unrecognized arguments: benchmrk"."""
    err = _refused(["benchmrk", "--paths", "10"], capsys)
    assert "invalid choice: 'benchmrk'" in err
    assert "'benchmark'" in err
    assert "'evaluate'" in err


@pytest.mark.parametrize(("command", "key"), [
    (["benchmark"], "arena.c"),
    (["benchmark"], "arena.risk_aversion"),
    (["stress", "--scenarios", "base"], "stress.c"),
    (["stress", "--scenarios", "base"], "stress.risk_aversion"),
])
def test_an_infinite_number_is_refused_before_the_report_folder_is_written(
    command: list[str], key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``arena.c=.inf`` passed the config and failed in the arena, its folder written."""
    out = tmp_path / "runs"
    err = _refused([*command, "--out", str(out), *TINY, "--set", f"{key}=.inf"], capsys)
    assert key in err
    assert "finite" in err
    assert not out.exists()


@pytest.mark.parametrize("override", ["sweep.cpus_per_trial=.inf", "stress.c=.inf",
                                      "stress.risk_aversion=.inf"])
def test_a_config_refuses_infinite_and_nan_numbers(override: str) -> None:
    with pytest.raises(ValueError, match=override.split("=")[0]):
        load_config(None, [override])


def test_seeds_numpy_cannot_take_are_refused_before_the_run_folder_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SB3 failed on a seed of 2**32 after writing the folder ("ppo rejected its
    hyperparameters"); a negative sweep.seed failed in Tune ("expected non-negative integer")
    after the sweep's folder was written and Ray started."""
    out = tmp_path / "runs"
    err = _refused(["train", "--agent", "ppo", "--seed", str(2**32), "--out", str(out), *TINY],
                   capsys)
    assert "seed: Input should be less than 4294967296" in err
    assert not out.exists()
    assert load_config(None, [f"seed={2**32 - 1}"]).seed == 2**32 - 1
    with pytest.raises(ValueError, match=r"sweep\.seed"):
        load_config(None, ["sweep.seed=-1"])


def test_a_deep_hedging_seed_torch_cannot_take_is_named() -> None:
    """torch's "Overflow when unpacking long long" came after the run's folder was written."""
    from hedgearena.training import check_agent

    config = load_config(None, [f"agent.hyperparams.seed={2**64}"])
    with pytest.raises(ValueError, match=r"agent.hyperparams.seed must be below 2\*\*64"):
        check_agent(config)


def test_fewer_than_two_validation_paths_are_refused() -> None:
    """One path has no std: an SB3 view's auto risk aversion came out NaN after the folder was
    written ("risk_aversion must be a finite number >= 0, got nan")."""
    for learner in ("agent.algo=ppo", "rllib.algo=PPO"):
        section = learner.split(".")[0]
        with pytest.raises(ValueError, match=f"{section}.eval_paths"):
            load_config(None, [learner, f"{section}.eval_paths=1"])
    assert load_config(None, ["agent.algo=ppo", "agent.eval_paths=2"]).agent.eval_paths == 2


@pytest.mark.parametrize("where", ["below_a_file", "a_file"])
def test_an_out_that_cannot_be_a_folder_is_named_without_a_traceback(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both raised an uncaught NotADirectoryError / FileExistsError (a traceback)."""
    blocker = tmp_path / "f"
    blocker.write_text("")
    if where == "below_a_file":
        argv = ["benchmark", "--out", str(blocker / "runs")]
    else:
        argv = ["benchmark", "--out", str(tmp_path), "--name", "f"]
    err = _refused([*argv, *TINY], capsys)
    assert "is a file, not a folder" in err
    assert blocker.is_file()


def test_an_unwritable_out_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """(root writes anywhere, so the permission is patched.)"""
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real(path, mode))
    err = _refused(["stress", "--scenarios", "base", "--out", str(locked / "runs"), *TINY],
                   capsys)
    assert "is not writable" in err
    assert str(locked) in err
    assert list(locked.iterdir()) == []


def test_signed_leading_dot_floats_are_numbers_and_sexagesimal_is_text() -> None:
    """YAML 1.2: ``-.05`` is a float (it was the string '-.05', refused by the env as "GBM.mu
    must be a finite number, got '-.05'"); YAML 1.1's ``1:30.5`` (90.5) is text, as ``1:30``
    is; ``._`` raised a ValueError from PyYAML's float constructor."""
    assert load_yaml("[-.05, +.5, -.5e3, .5]") == [-0.05, 0.5, -500.0, 0.5]
    assert load_yaml("[1:30.5, 1:30, ._]") == ["1:30.5", "1:30", "._"]
    for text in ("-.05", "1:30.5", "._", "+.5"):
        assert load_yaml(dump_yaml({"k": text})) == {"k": text}
    config = load_config(None, ["env.kwargs.market_kwargs.mu=-.05"])
    assert config.env.config().market.mu == -0.05  # type: ignore[attr-defined]


def test_a_config_equals_the_file_it_writes(tmp_path: Path) -> None:
    """A date in env.kwargs stayed a date (written back as text: a sweep with one could not
    resume, "differs in ['env']"); an infinity in a free mapping was written as null."""
    source = tmp_path / "run.yml"
    source.write_text("env:\n  id: hedgearena/HistoricalReplay-v0\n"
                      "  kwargs: {market_kwargs: {start: 2005-01-03}}\n"
                      "agent: {algo: ppo, hyperparams: {max_grad_norm: .inf}}\n")
    config = load_config(source)
    again = load_config(config.dump(tmp_path / "config.yaml"))
    assert again == config
    assert again.agent.hyperparams["max_grad_norm"] == float("inf")


def test_a_config_file_that_is_a_folder_not_text_or_unreadable_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They said "does not exist", or raised an error that named no file (or a traceback)."""
    with pytest.raises(ValueError, match="is a folder, not a file"):
        load_config(tmp_path)
    binary = tmp_path / "run.yml"
    binary.write_bytes(b"\xff\xfe seed: 1")
    with pytest.raises(ValueError, match=r"config file .*run\.yml.* is not UTF-8 text"):
        load_config(binary)

    def denied(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)  # (root reads any file)
    with pytest.raises(ValueError, match=r"run\.yml.* cannot be read: Permission denied"):
        load_config(binary)


def test_an_override_with_an_empty_key_part_is_named() -> None:
    """``--set .seed=1`` was reported as ": Extra inputs are not permitted"."""
    for text in (".seed=1", "env..cost=1", "seed.=1"):
        with pytest.raises(ValueError, match="dotted key"):
            parse_override(text)


@pytest.mark.parametrize("report", ["scores.json", "stress.json", "results.json"])
def test_a_report_folder_given_as_a_run_folder_is_named(
    report: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A benchmark's folder (or a run's report/) holds a config.yaml of the arena's settings:
    evaluate and stress --agent listed some thirty "Extra inputs are not permitted" lines."""
    folder = tmp_path / "benchmark-ShortCall-v0-seed2024"
    folder.mkdir()
    (folder / "config.yaml").write_text("env: {market: GBM, n_steps: 20}\nbenchmark: {}\n")
    (folder / report).write_text("{}")
    err = _refused(["evaluate", str(folder)], capsys)
    assert f"is a report folder (it holds {report})" in err
    err = _refused(["stress", "--agent", str(folder), "--out", str(tmp_path / "runs")], capsys)
    assert "is a report folder" in err
    assert not (tmp_path / "runs").exists()


def test_a_sweep_resumes_however_its_out_is_spelt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--out ./runs`` (or the absolute path) after ``--out runs`` was refused: "the config
    differs in ['out']", though it names the same folder."""
    tune = pytest.importorskip("ray.tune")
    from hedgearena.sweep import _check_folder, sweep_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tune.Tuner, "can_restore", staticmethod(lambda path: True))
    first = load_config(None, ["sweep.space={seed: [0, 1]}", "out=runs"])
    folder = sweep_dir(first).resolve()
    first.dump(folder / "config.yaml")
    for out in ("./runs", str(tmp_path / "runs")):
        again = first.model_copy(update={"out": out})
        assert sweep_dir(again).resolve() == folder
        _check_folder(folder, again, resume=True)
    changed = RunConfig.model_validate({**first.model_dump(), "seed": 5})
    with pytest.raises(ValueError, match=r"differs in \['seed'\]"):
        _check_folder(folder, changed, resume=True)


def test_rllib_runner_seeds_past_numpys_range_are_refused() -> None:
    """RLlib's env runner k seeds numpy with ``seed + k``: ``seed = 2**32 - 1`` passed the
    run's check and failed inside Ray after the folder was written. The largest seed now
    leaves room for every runner (2 runners: 2**32 - 3)."""
    from hedgearena.agents.rllib import check_rllib_seeds
    from hedgearena.run_config import RunConfig

    check_rllib_seeds(RunConfig(seed=2**32 - 3))
    with pytest.raises(ValueError, match=r"give seed <= 4294967293"):
        check_rllib_seeds(RunConfig(seed=2**32 - 1))


def test_evaluate_is_not_refused_for_an_out_it_does_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``evaluate`` writes into ``RUN_DIR/evaluation/``; a file named like the run's ``out``
    (``runs``) in the working folder refused it ("out 'runs' is a file"). It now goes on to
    the run folder's own checks (here: no trained model)."""
    monkeypatch.chdir(tmp_path)
    Path("runs").write_text("")
    run = tmp_path / "elsewhere" / "myrun"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("out: runs\n")
    err = _refused(["evaluate", str(run)], capsys)
    assert "is a file" not in err
    assert "model" in err
