"""Hedgers of the user's own by spec: ``python:module.Class[:arg...]`` (the registry)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from hedgearena.baselines.registry import parse_hedger
from hedgearena.cli import main

MODULE = textwrap.dedent('''
    from hedgearena.baselines import Hedger


    class PartialDelta(Hedger):
        uses_observations = False

        def __init__(self, fraction=1.0, label="partial"):
            self.fraction, self.name = fraction, f"{label} {fraction:g}"

        def reset(self, env):
            pass

        def positions(self, state, obs):
            return -self.fraction * state["book_delta"][:, None]


    class NotAHedger:
        pass
''')


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of the user's on the path, under a name no other test imports."""
    name = f"user_hedgers_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_a_user_class_is_built_with_its_arguments(user_module: str) -> None:
    hedger = parse_hedger(f"python:{user_module}.PartialDelta:0.8:under")
    assert (hedger.fraction, hedger.name) == (0.8, "under 0.8")  # type: ignore[attr-defined]
    assert parse_hedger(f"python:{user_module}.PartialDelta").name == "partial 1"


@pytest.mark.parametrize(("spec", "message"), [
    ("python", r"python takes 1 or more"),
    ("python:PartialDelta", r"name the class as module.Class"),
    ("python:no_such_module_xyz.Hedger", r"cannot import 'no_such_module_xyz'.*PYTHONPATH"),
    ("python:{m}.NotAHedger", r"is not a Hedger subclass"),
    ("python:{m}.Missing", r"has no .Missing.*defines: PartialDelta$"),
    ("python:{m}.PartialDelta:1:2:3", r"refused its arguments"),
])
def test_bad_python_specs_are_named(user_module: str, spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_hedger(spec.format(m=user_module))


def test_the_benchmark_command_scores_a_user_class_beside_the_built_in_ones(
    user_module: str, tmp_path: Path,
) -> None:
    """From the command line, as the README shows (the module on PYTHONPATH)."""
    main(["benchmark", "--paths", "256", "--hedgers", "delta",
          f"python:{user_module}.PartialDelta:0.8", "--set", "arena.tune_paths=64",
          "--out", str(tmp_path / "runs"), "--no-progress"])
    scores = json.loads(next((tmp_path / "runs").glob("*/scores.json")).read_text())
    rows = {row["hedger"]: row for row in scores["records"]}
    assert {"delta", "partial 0.8"} <= set(rows)
    assert rows["partial 0.8"]["mean_turnover"] < rows["delta"]["mean_turnover"]
