"""A user's journey with the two minimum-variance hedgers (``mv_delta:fit[:edge...]``,
``model_delta``) through the command line, the run configs and the Python API.

- ``train.py stress`` refuses a hedger that cannot hedge one of its scenarios (``model_delta``
  of a scenario's wrapped market) before it writes its folder, naming the hedger, the
  scenarios and what to leave out; ``stress_test`` itself names the scenario.
- The report's ``(fitted)`` line says where the benchmark fitted its ``mv_delta:fit`` specs
  (its tuning paths): a ``MinimumVarianceDelta`` fitted by the caller and given as an object
  is not said to be fitted there.
- ``train.py`` refuses more tuning paths than ``mv_delta:fit``'s regression can keep in memory
  before it trains, not after.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_refusal import refused as _refused

import hedgearena.training  # noqa: F401  (imported before the CLI, as the CLI's tests do)
from hedgearena.baselines.benchmark import BenchmarkSettings, benchmark
from hedgearena.baselines.minimum_variance import MinimumVarianceDelta, fit_minimum_variance
from hedgearena.baselines.model_delta import ModelDelta
from hedgearena.baselines.stress import StressSettings, stress_test
from hedgearena.envs.config import make_config


def test_stress_refuses_model_delta_on_a_wrapped_scenario_before_its_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 'gap' and 'calm' wrap ShortCall's GBM (Gap, RealisedVsImplied), whose dynamics
    # model_delta does not know; 'base' is GBM itself. The refusal used to come from the arena
    # after 'base' had run, with run_config.yaml already written and neither the hedger nor
    # the scenario named.
    err = _refused(["stress", "--env", "hedgearena/ShortCall-v0", "--hedgers", "delta",
                    "model_delta", "mv_delta:fit", "--scenarios", "base", "gap", "calm",
                    "--paths", "8", "--set", "stress.tune_paths=64", "--set", "stress.n_boot=10",
                    "--out", str(tmp_path), "--name", "stressed", "--no-progress"], capsys)
    assert "stress.hedgers: 'model_delta' cannot hedge the scenario(s) 'gap', 'calm'" in err
    assert "Gap is not one of the markets it knows" in err  # why, in the first of them
    assert "allows the markets gbm, heston, sabr, merton" in err  # what is allowed
    assert "or those scenarios out of stress.scenarios" in err
    assert "'mv_delta:fit' cannot" not in err
    assert "'delta' cannot" not in err
    assert not (tmp_path / "stressed").exists()


def test_stress_test_names_the_scenario_a_hedger_refuses() -> None:
    settings = StressSettings(n_paths=8, n_boot=10, worst_paths=False, progress=False)
    with pytest.raises(ValueError, match=r"^scenario 'gap': Gap is not one of the markets"):
        stress_test(make_config("ShortCall"), ["delta", ModelDelta()], ["base", "gap"], settings)


def test_a_fit_given_as_an_object_is_not_reported_as_fitted_on_the_tuning_paths(
    tmp_path: Path,
) -> None:
    # The caller's own fit (200 paths, seed 11) beside the spec mv_delta:fit, which the
    # benchmark fits on its tuning paths (300 paths, seed + 1 = 6): the (fitted) line and
    # report.fitted hold the spec's fit only; the caller's coefficients are in config.yaml.
    config = make_config("ShortCall", cost=0.0)
    own = MinimumVarianceDelta.fitted(fit_minimum_variance(config, 200, seed=11),
                                      name="MV delta (mine)")
    settings = BenchmarkSettings(n_paths=100, tune_paths=300, seed=5, n_boot=10,
                                 frontier=False, progress=False)
    report = benchmark(config, ["delta", own, "mv_delta:fit"], settings, out_dir=tmp_path)
    assert list(report.fitted) == ["MV delta (fitted)"]
    np.testing.assert_array_equal(report.fitted["MV delta (fitted)"].coefficients,
                                  fit_minimum_variance(config, 300, seed=6).coefficients)
    line = next(line for line in (tmp_path / "scores.md").read_text().splitlines()
                if line.startswith("(fitted):"))
    assert "regressed on 300 tuning paths (seed 6)" in line
    assert "MV delta (mine)" not in line
    assert "MV delta (mine)" in report.table.index
    saved = (tmp_path / "config.yaml").read_text()
    assert f"a: {float(own.a)!r}" in saved  # type: ignore[arg-type]


def test_train_refuses_tuning_paths_beyond_the_fits_memory_before_it_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 10**12 paths of the pooled fit keep 240 bytes each (fit_bytes_per_path(1)), 223,517 GiB:
    # more than any machine has. The trial fit (256 paths) passed, so the refusal used to come after
    # the agent had trained, its run folder written.
    tiny = {"steps": 2, "batch_size": 32, "n_train": 64, "n_valid": 32, "eval_every": 1,
            "hidden": [4]}
    err = _refused(["train", "--out", str(tmp_path), "--name", "fit", "--no-progress",
                    "--set", f"agent.hyperparams={json.dumps(tiny)}",
                    "--set", "arena.paths=16", "--set", "arena.tune_paths=1000000000000",
                    "--set", "arena.hedgers=[delta, 'mv_delta:fit']"], capsys)
    assert "arena.tune_paths: 'mv_delta:fit' is fitted on all of them" in err
    assert "would keep about 223,517.4 GiB for the fit" in err  # 1e12 x 240 / 2**30
    assert "use fewer paths" in err
    assert not (tmp_path / "fit").exists()
