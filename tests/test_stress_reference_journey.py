"""A user's journey through ``train.py stress`` and the reference hedger of a run config.

- ``train.py stress`` with more ``stress.paths`` than memory holds is refused with what the
  user can change (fewer ``stress.paths`` or hedgers), not with ``run_arena``'s Python
  arguments ``record_paths`` / ``totals_only``, which the command cannot set; ``run_arena``
  keeps that hint, and ``benchmark`` names its own setting (``keep_records``).
- ``stress_test`` frees a scenario's arena result before the next scenario's run: the memory
  check bounds one result, so two must never be alive at once.
- The stress report's notes (the ``(tuned)`` / ``(fitted)`` lines) are in ``stress.json`` and
  under the console table, not in ``stress.md`` alone.
- ``arena.reference`` / ``stress.reference`` given as a spec is the hedger that spec makes:
  ``ww:0.10`` is ``ww:0.1``'s hedger and ``mv_delta:fit:0.080:0.16`` is
  ``mv_delta:fit:0.08:0.16``'s (they were refused, or silently left the stress report
  unpaired); a reference that is not among the hedgers is still refused, listing them.
"""

from __future__ import annotations

import json
import warnings
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_refusal import refused as _refused

import hedgearena.training  # noqa: F401  (imported before the CLI, as the CLI's tests do)
from hedgearena.baselines import arena, stress
from hedgearena.baselines.benchmark import BenchmarkSettings, benchmark, reference_name
from hedgearena.baselines.registry import parse_hedger
from hedgearena.baselines.stress import StressSettings, UnpairedStressWarning, stress_test
from hedgearena.cli import main
from hedgearena.envs.config import make_config
from hedgearena.run_config import load_config

ONE_GIB = 2**30


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------ 1. the memory refusal's hint
def test_stress_command_refuses_too_many_paths_naming_stress_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1 GiB of memory: 1,000,000 paths of two fully recorded hedgers on ShortCall (20
    # decisions) take 2 x (144 + 80) + 2 x 7 x 8 x 20 + 2 x 8 x 21 = 3,024 bytes a path,
    # 2.8 GiB (arena.result_bytes; pinned in tests/baselines/test_scale_journey.py)
    monkeypatch.setattr(arena, "physical_memory", lambda: ONE_GIB)
    config = make_config("ShortCall")
    assert arena.result_bytes(config, 1_000_000, 2, 2, 1_000_000) == 3_024 * 1_000_000
    err = _refused(["stress", "--scenarios", "base", "--hedgers", "delta", "no_hedge",
                    "--paths", "1000000", "--out", str(tmp_path), "--name", "big",
                    "--no-progress"], capsys)
    assert "scenario 'base': stress.paths=1,000,000 would keep about 2.8 GiB" in err
    assert err.endswith("the per-decision records take 2240 bytes a path (1120 for each of "
                        "the 2 recorded hedger(s)): a stress test keeps every path's (each "
                        "hedger's worst path is drawn from them), so give fewer stress.paths or "
                        "fewer hedgers")
    assert "record_paths" not in err  # not the command's to set
    assert "totals_only" not in err
    assert not (tmp_path / "big").exists()


def test_the_python_callers_keep_hints_of_their_own_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(arena, "physical_memory", lambda: ONE_GIB)
    config = make_config("ShortCall")
    hedgers = [parse_hedger("delta"), parse_hedger("no_hedge")]
    with pytest.raises(ValueError, match=r"n_paths=1,000,000 .*: keep a few paths' "
                                         r"\(record_paths=\[\.\.\.\]\) or none "
                                         r"\(totals_only=\[\.\.\.\]\)$"):
        arena.run_arena(config, hedgers, 1_000_000, progress=False)
    settings = StressSettings(n_paths=1_000_000, worst_paths=False, progress=False)
    with pytest.raises(ValueError, match=r"scenario 'base': n_paths=1,000,000 .*, so give "
                                         r"fewer n_paths or fewer hedgers$"):
        stress_test(config, ["delta", "no_hedge"], ["base"], settings)
    kept = BenchmarkSettings(n_paths=1_000_000, frontier=False, keep_records=True,
                             progress=False)
    with pytest.raises(ValueError, match=r"n_paths=1,000,000 .*: keep the drawn path's only "
                                         r"\(keep_records=False\)$"):
        benchmark(config, ["delta", "no_hedge"], kept)


# ------------------------------------------------------- 2. one scenario's result at a time
def test_stress_test_frees_each_scenarios_result_before_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run_arena starts with every earlier result (and its records' arrays, which a
    worst path's figure could hold a view of) freed; the P&L copies are the report's own."""
    real = stress.run_arena
    earlier: list[tuple[weakref.ref[Any], ...]] = []
    alive_at_start: list[int] = []

    def run_arena(*args: Any, **kwargs: Any) -> Any:
        alive_at_start.append(sum(ref() is not None for refs in earlier for ref in refs))
        result = real(*args, **kwargs)
        earlier.append((weakref.ref(result),
                        *(weakref.ref(record.hedge) for record in result.records.values()),
                        *(weakref.ref(record.totals["terminal_pnl"])
                          for record in result.records.values())))
        return result

    monkeypatch.setattr(stress, "run_arena", run_arena)
    settings = StressSettings(n_paths=64, n_boot=10, progress=False)  # worst paths drawn
    out = stress_test(make_config("ShortCall"), ["delta", "no_hedge"], ["base", "gap", "calm"],
                      settings, tmp_path)
    assert alive_at_start == [0, 0, 0]
    assert sorted(out.pnl) == ["base", "calm", "gap"]  # the copies kept on purpose
    assert all(ref() is None for refs in earlier for ref in refs)


# ------------------------------------------------------------------------------- 3. notes
def test_stress_notes_are_in_the_json_and_under_the_console_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["stress", "--scenarios", "base", "gap", "--hedgers", "delta", "ww:best",
          "--paths", "200", "--set", "stress.tune_paths=200", "--set", "stress.n_boot=10",
          "--set", "stress.worst_paths=false", "--out", str(tmp_path), "--name", "noted",
          "--no-progress"])
    printed = _one_line(capsys.readouterr().out)
    folder = tmp_path / "noted"
    notes = json.loads((folder / "stress.json").read_text())["notes"]
    assert len(notes) == 1
    assert notes[0].startswith("(tuned): ")
    assert notes[0].endswith("Each parameter was chosen on the unstressed env and is used "
                             "unchanged in every scenario.")
    markdown = (folder / "stress.md").read_text()
    assert f"\n{notes[0]}\n" in markdown  # the lines stress.md already had
    table_end = printed.index("(green: the scenario's best Y)")
    assert printed.index(notes[0]) > table_end  # under the table, before the files' line
    assert printed.index(notes[0]) < printed.index(" s; report in ")


def test_a_report_without_tuned_or_fitted_hedgers_has_an_empty_notes_list(
    tmp_path: Path,
) -> None:
    settings = StressSettings(n_paths=32, n_boot=10, worst_paths=False, progress=False)
    out = stress_test(make_config("ShortCall"), ["delta"], ["base"], settings, tmp_path)
    assert out.notes == ()
    assert json.loads((tmp_path / "stress.json").read_text())["notes"] == []


# ------------------------------------------------------------------- 4. the reference spec
@pytest.mark.parametrize(("env", "hedgers", "reference"), [
    ("hedgearena/ShortCall-v0", ["delta", "ww:0.1"], "ww:0.10"),
    ("hedgearena/ShortCall-v0", ["delta", "ww:0.10"], "ww:0.1"),
    ("hedgearena/OptionBook-v0", ["delta", "mv_delta:fit:0.08:0.16"], "mv_delta:fit:0.080:0.16"),
])
def test_arena_reference_is_any_spelling_of_a_hedgers_spec(
    env: str, hedgers: list[str], reference: str
) -> None:
    config = load_config(None, [f"env.id={env}", f"arena.hedgers={json.dumps(hedgers)}",
                                f"arena.reference={reference}"])
    assert config.arena.reference == reference


def test_a_reference_among_no_hedgers_is_still_refused_listing_them() -> None:
    with pytest.raises(ValueError, match=(
            r"arena.reference 'ww:0.2' must be one of the hedgers, by spec \['delta', "
            r"'ww:0.1'\] or name \['delta', 'Whalley-Wilmott 0.1'\], or the agent")):
        load_config(None, ['arena.hedgers=["delta", "ww:0.1"]', "arena.reference=ww:0.2"])
    fitted = [parse_hedger("delta"), SimpleNamespace(name="MV delta by maturity 0.08/0.16 "
                                                          "(fitted)")]
    specs = ["delta", "mv_delta:fit:0.08:0.16"]
    assert reference_name("mv_delta:fit:0.080:0.16", specs, fitted) == fitted[1].name  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"the reference hedger 'mv_delta:fit:0.08:0.2' is "
                                         r"neither a name among .* nor a spec among"):
        reference_name("mv_delta:fit:0.08:0.2", specs, fitted)  # type: ignore[arg-type]


def test_benchmark_and_stress_pair_with_the_reference_given_in_another_spelling() -> None:
    """Scored against ``ww:0.10``, every number is the one scored against ``ww:0.1`` (the
    same hedger on the same paths), and delta is paired with it (a finite cost difference):
    the stress report used to leave every hedger unpaired, the benchmark to refuse."""
    config = make_config("ShortCall")
    specs = ["delta", "ww:0.1"]

    def bench(reference: str) -> pd.DataFrame:
        settings = BenchmarkSettings(n_paths=200, n_boot=10, frontier=False, reference=reference,
                                     progress=False)
        return benchmark(config, specs, settings).table

    spelled, plain = bench("ww:0.10"), bench("ww:0.1")
    pd.testing.assert_frame_equal(spelled, plain)
    assert np.isfinite(plain.loc["delta", "cost_diff"])

    def stressed(reference: str) -> pd.DataFrame:
        settings = StressSettings(n_paths=200, n_boot=10, reference=reference,
                                  worst_paths=False, progress=False)
        return stress_test(config, specs, ["base", "gap"], settings).table

    spelled, plain = stressed("ww:0.10"), stressed("ww:0.1")
    pd.testing.assert_frame_equal(spelled, plain)
    assert np.isfinite(plain.loc[("gap", "delta"), "cost_diff"])


def test_a_stress_reference_not_among_the_hedgers_is_warned_about() -> None:
    # The default reference, delta, left out of the hedgers: the report compares nothing path
    # by path. It used to say nothing; now an UnpairedStressWarning names the reference and the
    # hedgers (a reference among them, by name or spec, warns nothing).
    config = make_config("ShortCall")
    settings = StressSettings(n_paths=64, n_boot=10, worst_paths=False, progress=False)
    with pytest.warns(UnpairedStressWarning, match=r"'delta' is not among the hedgers "
                                                   r"\['no hedge'\]"):
        out = stress_test(config, ["no_hedge"], scenarios=["base"], settings=settings)
    assert "cost_diff" not in out.table.columns  # nothing paired
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnpairedStressWarning)
        stress_test(config, ["no_hedge", "delta"], scenarios=["base"], settings=settings)
