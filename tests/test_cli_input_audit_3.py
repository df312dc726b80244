"""A third audit of bad inputs: defects found, each pinned by a test.

- Bad SB3 ``policy_kwargs`` (``net_arch: abc``, ``activation_fn: nope``, ``net_arch: [-64]``)
  were refused by torch after the run folder was written, without naming policy_kwargs.
- A run name longer than a file name may be, or with a NUL byte, failed with a raw OSError or
  "embedded null byte"; ``name: 1e3`` made the folder ``1000.0/``.
- Deep hedging took ``n_valid: 1`` (a validation std of 0), which SB3's ``eval_paths`` refuses.
- Quoted numbers in a run config (``paths: "100"``) were silently read as numbers.
- ``BenchmarkSettings(reference=5)`` raised an AttributeError, ``tune_paths=True`` was blamed
  on ``n_paths``, ``frontier="no"`` and ``progress="no"`` were read as true.
- A ``python:`` hedger module with a syntax error, or raising at import, gave a traceback; a
  hedger writing into the read-only state got "assignment destination is read-only" alone.
- Huge positions or an overflowing P&L were scored as inf and NaN without naming the hedger.
- Two ``mv_delta`` coefficient sets were "the same hedger"; ``evaluate`` on a file said the
  folder "does not exist"; a recursive YAML anchor did not name the file.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_refusal import refused as _refused

import hedgearena.training  # noqa: F401  (imported before any test patches what it imports)
from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.benchmark import BenchmarkSettings
from hedgearena.baselines.delta import BlackScholesDelta
from hedgearena.baselines.hedger import Hedger
from hedgearena.baselines.registry import parse_hedger
from hedgearena.envs.config import make_config
from hedgearena.run_config import load_config
from hedgearena.training import check_hedgers

TINY = ["--paths", "64", "--hedgers", "delta", "--set", "arena.tune_paths=64",
        "--set", "arena.n_boot=5", "--set", "arena.frontier=false", "--no-progress"]


# ----------------------------------------------------------------------- SB3 policy_kwargs
@pytest.mark.parametrize(("value", "reason"), [
    ("{net_arch: abc}", "net_arch must be a list of layer widths"),
    ("{activation_fn: nope}", "activation_fn must be a torch.nn activation class"),
    ("{net_arch: [-64]}", "net_arch must be a list of layer widths"),
    ('"dict(net_arch=[-64])"', "net_arch must be a list of layer widths"),
    ("{log_std_init: abc}", "is refused by ppo's ActorCriticPolicy"),
])
def test_bad_policy_kwargs_are_refused_by_name_before_the_run_folder_is_written(
    value: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    err = _refused(["train", "--agent", "ppo", "--out", str(out), "--name", "sb", *TINY,
                    "--set", f"agent.hyperparams.policy_kwargs={value}",
                    "--set", "agent.hyperparams.n_timesteps=64"], capsys)
    assert "agent.hyperparams.policy_kwargs" in err
    assert reason in err
    assert not out.exists()


# --------------------------------------------------------------------------- name and out
@pytest.mark.parametrize(("argv", "message"), [
    (["--name", "a" * 300], "name must be a folder name inside out: it is 300 bytes long"),
    (["--set", 'name="a\\0b"'], "name must be a folder name inside out: it holds the control "
     "character '\\x00'"),
    (["--set", "name=1e3"], "name must be text, a folder name (quote it"),
    (["--set", f"out=runs/{'b' * 300}/x"], "out must be a folder path: its folder"),
])
def test_run_names_and_out_that_cannot_be_folders_are_refused_by_name(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 300-character name raised OSError "File name too long" (a traceback), a NUL byte
    "embedded null byte" alone, and ``name: 1e3`` wrote the folder ``1000.0/``."""
    monkeypatch.chdir(tmp_path)
    err = _refused(["benchmark", *TINY, *argv], capsys)
    assert message in err
    assert not (tmp_path / "runs").exists()


def test_a_long_name_in_a_config_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "long.yml"
    config.write_text(f"name: {'a' * 256}\n")
    with pytest.raises(ValueError, match=r"(?s)long.yml.*name: .*256 bytes long"):
        load_config(config)
    assert load_config(None, [f"name={'a' * 255}"]).run_name == "a" * 255


# ------------------------------------------------------------------------------ n_valid
def test_deep_hedging_refuses_a_single_validation_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """n_valid=1 trained and picked its best model on one path (a std of 0)."""
    out = tmp_path / "runs"
    err = _refused(["train", "--out", str(out), *TINY, "--set", "agent.hyperparams.steps=2",
                    "--set", "agent.hyperparams.batch_size=32",
                    "--set", "agent.hyperparams.n_train=64",
                    "--set", "agent.hyperparams.n_valid=1"], capsys)
    assert "n_valid must be an integer >= 2" in err
    assert not out.exists()


# ---------------------------------------------------------------------- quoted numbers
def test_quoted_numbers_in_a_run_config_are_refused(tmp_path: Path) -> None:
    """``paths: "100"`` was read as 100, whereas ``paths: true`` and text in env kwargs are
    refused; numbers given on the command line (read as YAML) still are numbers."""
    config = tmp_path / "quoted.yml"
    config.write_text('arena: {paths: "100", c: "1.5", hedgers: [delta]}\nseed: "3"\n')
    with pytest.raises(ValueError, match="not text") as refused:
        load_config(config)
    message = str(refused.value)
    for key, kind, value in (("arena.paths", "an integer", "'100'"),
                             ("arena.c", "a number", "'1.5'"), ("seed", "an integer", "'3'")):
        assert f"{key}: Value error, must be {kind}, not text: got {value}" in message
    resolved = load_config(None, ["arena.paths=100", "arena.c=1.5", "arena.tune_paths=1e2"])
    assert (resolved.arena.paths, resolved.arena.c, resolved.arena.tune_paths) == (100, 1.5, 100)


# ----------------------------------------------------------------- BenchmarkSettings
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"reference": 5}, "BenchmarkSettings.reference must be a hedger's name or spec"),
    ({"tune_paths": True}, "BenchmarkSettings.tune_paths must be an integer >= 1, got True"),
    ({"frontier": "no"}, "BenchmarkSettings.frontier must be True or False, got 'no'"),
    ({"progress": "no"}, "BenchmarkSettings.progress must be True or False, got 'no'"),
])
def test_benchmark_settings_name_the_field_that_is_wrong(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match="BenchmarkSettings") as refused:
        BenchmarkSettings(n_paths=64, **kwargs)
    assert message in str(refused.value)


# ------------------------------------------------------------------- python: hedgers
@pytest.mark.parametrize(("source", "error"), [
    ("def f(:\n", "SyntaxError"),
    ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
    ("import no_such_module_of_a_hedger_xyz\n", "No module named 'no_such_module_of_a_hedger"),
])
def test_a_python_hedger_module_failing_at_import_is_named_with_its_file(
    source: str, error: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"audit3_module_{abs(hash(source))}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="failed") as refused:
        parse_hedger(f"python:{name}.X")
    message = str(refused.value)
    assert f"hedger spec 'python:{name}.X': importing '{name}'" in message
    assert str(tmp_path / f"{name}.py") in message
    assert error in message


class _Writes(Hedger):
    name = "writer"
    uses_observations = False

    def positions(self, state: Any, obs: Any) -> Any:
        state["book_delta"][:] = 0
        return -np.asarray(state["book_delta"])[:, None]


class _Huge(Hedger):
    name = "huge"
    uses_observations = False

    def positions(self, state: Any, obs: Any) -> Any:
        return np.full((len(state["book_delta"]), 1), 1e200)


def test_a_hedger_writing_into_the_state_is_named_and_told_it_is_read_only() -> None:
    with pytest.raises(ValueError, match="read-only") as refused:
        run_arena(make_config("ShortCall"), [BlackScholesDelta(), _Writes()], 64, progress=False)
    message = str(refused.value)
    assert message.startswith("writer: positions() wrote into a read-only array at decision 0")
    assert "read-only snapshots; copy what you need" in message


def test_huge_positions_are_refused_naming_the_hedger(tmp_path: Path) -> None:
    """1e200 units scored inf objectives, NaN standard errors and a p-value of 1.0."""
    with pytest.raises(ValueError, match=r"^huge: "):
        run_arena(make_config("ShortCall"), [BlackScholesDelta(), _Huge()], 64, progress=False)
    with pytest.raises(ValueError, match=r"^MV delta 1e\+300:0:0: "):
        run_arena(make_config("ShortCall"), [parse_hedger("mv_delta:1e300:0:0")], 64,
                  progress=False)


def test_overflowing_totals_are_refused_naming_the_hedger() -> None:
    from hedgearena.baselines.hedger import check_finite_totals

    totals = {"pnl": np.array([1.0, np.inf]), "cost": np.array([0.0, np.nan])}
    with pytest.raises(ValueError, match="overflowed") as refused:
        check_finite_totals("big", totals, np.array([[1.0, 1e200]]))
    message = str(refused.value)
    assert message.startswith("big: its P&L overflowed: the totals ['cost', 'pnl'] are not "
                              "finite (on 1 path(s)")
    assert "its positions reach 1e+200 units" in message
    check_finite_totals("fine", {"pnl": np.zeros(2)}, np.zeros((1, 2)))


# ------------------------------------------------------------------------------ nitpicks
def test_two_mv_delta_coefficient_sets_are_two_hedgers() -> None:
    """They shared the name "MV delta" and were refused as "the same hedger"."""
    specs = ["delta", "mv_delta:0.3:0:0", "mv_delta:-0.1:0.2:0"]
    check_hedgers(make_config("ShortCall"), specs)
    assert load_config(None, [f"arena.hedgers=[{', '.join(specs)}]"]).arena.hedgers == specs
    names = [parse_hedger(spec).name for spec in specs[1:]]
    assert names == ["MV delta 0.3:0:0", "MV delta -0.1:0.2:0"]
    with pytest.raises(ValueError, match="is the same hedger"):
        check_hedgers(make_config("ShortCall"), ["mv_delta:0.1:0:0", "mv_delta:0.10:0:0"])


def test_evaluate_names_a_file_and_a_config_folder_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    err = _refused(["evaluate", str(afile)], capsys)
    assert "not a run folder (it is a file, not a folder)" in err
    (tmp_path / "run" / "config.yaml").mkdir(parents=True)
    err = _refused(["evaluate", str(tmp_path / "run")], capsys)
    assert "not a run folder (its config.yaml is a folder, not the run config file)" in err


def test_a_recursive_yaml_anchor_names_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "recursive.yml"
    config.write_text(textwrap.dedent("""\
        env:
          kwargs: {}
        a: &x [*x]
    """))
    with pytest.raises(ValueError, match="holds itself") as refused:
        load_config(config)
    assert str(refused.value).startswith(f"config file {str(config)!r}: a holds itself (a "
                                         "YAML anchor used inside its own value")
