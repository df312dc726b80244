"""The stress report: hedger x scenario tables, heat maps, worst paths, the stress command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hedgearena.baselines.arena import run_arena
from hedgearena.baselines.delta import BlackScholesDelta
from hedgearena.baselines.registry import parse_hedger
from hedgearena.baselines.stress import (
    DEFAULT_STRESS_COST,
    StressSettings,
    breach_counts,
    stress_test,
)
from hedgearena.cli import main
from hedgearena.envs.config import make_config
from hedgearena.envs.scenarios import apply_scenario

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCENARIOS = ["base", "gap", "liquidity_drought"]
SETTINGS = StressSettings(n_paths=600, n_boot=10, seed=3, progress=False)


def _valid_png(path: Path) -> tuple[int, ...]:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return imread(path).shape


@pytest.fixture(scope="module")
def stressed(tmp_path_factory: pytest.TempPathFactory):
    out_dir = tmp_path_factory.mktemp("stress")
    agent = BlackScholesDelta(5)
    agent.name = "saved agent"  # any Hedger object, as a loaded agent is
    config = make_config("ShortCall", cost=DEFAULT_STRESS_COST)
    report = stress_test(config, ["no_hedge", "delta", agent], SCENARIOS, SETTINGS, out_dir,
                         title="test")
    return config, report, out_dir


def test_table_has_a_row_per_hedger_and_scenario(stressed) -> None:
    _, report, _ = stressed
    hedgers = ["no hedge", "delta", "saved agent"]
    assert list(report.table.index) == [(s, h) for s in SCENARIOS for h in hedgers]
    assert report.pivot("objective").shape == (3, 3)
    assert np.isfinite(report.table[["objective", "expected_shortfall_95", "worst_pnl"]]).all(
        axis=None)
    paired = report.table.xs("delta", level="hedger")["cost_diff"]
    assert paired.isna().all()  # the reference is not compared with itself
    assert report.table.xs("no hedge", level="hedger")["cost_diff"].notna().all()


def test_worst_path_is_the_argmin_of_the_pnl_on_the_arenas_paths(stressed) -> None:
    config, report, out_dir = stressed
    for scenario in SCENARIOS:
        result = run_arena(apply_scenario(config, scenario), [parse_hedger("delta")],
                           SETTINGS.n_paths, seed=SETTINGS.seed, progress=False)
        pnl = result.records["delta"].totals["terminal_pnl"]
        assert np.array_equal(report.pnl[scenario]["delta"], pnl)  # the same paths
        for hedger, values in report.pnl[scenario].items():
            row = report.table.loc[(scenario, hedger)]
            assert row["worst_path"] == np.argmin(values)
            assert row["worst_pnl"] == values.min()
            story = out_dir / "worst_paths" / f"{scenario}__{hedger.replace(' ', '_')}.png"
            assert _valid_png(story)[2] in (3, 4)


def test_heat_maps_and_tables_are_written(stressed) -> None:
    out_dir = stressed[2]
    for name in ("heatmap_objective.png", "heatmap_es95.png"):
        height, width, _ = _valid_png(out_dir / name)
        assert width > 600
        assert height > 300
    document = json.loads((out_dir / "stress.json").read_text())
    assert len(document["records"]) == 9
    assert document["units"]["objective"] == "currency"
    markdown = (out_dir / "stress.md").read_text()
    for scenario in SCENARIOS:
        assert f"| {scenario} |" in markdown
    assert "**" in markdown  # the best hedger of each scenario
    assert (out_dir / "stress.csv").read_text().startswith("scenario,hedger,")
    assert (out_dir / "stress_config.yaml").exists()


def test_breach_counts_read_the_envs_totals() -> None:
    assert breach_counts({"breaches": np.array([1.0, 0.0])}).tolist() == [1.0, 0.0]
    assert breach_counts({"delta_breaches": np.ones(2), "gamma_breaches": np.ones(2)}).tolist() \
        == [2.0, 2.0]
    assert breach_counts({"pnl": np.ones(2)}) is None


def test_limit_breaches_are_counted() -> None:
    settings = StressSettings(n_paths=300, n_boot=10, progress=False, worst_paths=False,
                              risk_limits={"delta": 0.3, "action": "report"})
    report = stress_test(make_config("ShortCall"), ["no_hedge", "delta"], ["base"], settings)
    table = report.table.xs("base")
    # an unhedged ATM call's delta is about 0.5 notional: nearly every path breaches; a daily
    # delta hedge drifts about 0.1 notional a day and breaches a 0.3 limit on a few paths
    assert table.loc["no hedge", "breach_probability"] > 0.9
    assert table.loc["delta", "breach_probability"] < 0.5
    assert table.loc["delta", "mean_breaches"] < table.loc["no hedge", "mean_breaches"]


def test_stress_command_writes_the_report(tmp_path: Path) -> None:
    main(["stress", "--paths", "256", "--scenarios", "base", "crowding", "--hedgers", "no_hedge",
          "delta", "--out", str(tmp_path), "--set", "stress.n_boot=10",
          "--set", "stress.worst_paths=false", "--no-progress"])
    folder = tmp_path / "stress-ShortCall-seed2024"
    for name in ("run_config.yaml", "stress.csv", "stress.md", "heatmap_objective.png"):
        assert (folder / name).exists(), name
    records = json.loads((folder / "stress.json").read_text())["records"]
    assert {(r["scenario"], r["hedger"]) for r in records} == {
        (s, h) for s in ("base", "crowding") for h in ("no hedge", "delta")}


def test_stress_command_rejects_an_unknown_scenario(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["stress", "--scenarios", "meltdown", "--out", str(tmp_path), "--no-progress"])
    assert "unknown scenario 'meltdown'" in capsys.readouterr().err


def test_stress_command_stresses_a_saved_agent_beside_the_baselines(tmp_path: Path) -> None:
    tiny = {"steps": 6, "batch_size": 64, "n_train": 128, "n_valid": 64, "eval_every": 3,
            "checkpoint_every": 3, "hidden": [8]}
    main(["train", "--agent", "deep_hedging", "--out", str(tmp_path),
          "--set", f"agent.hyperparams={json.dumps(tiny)}", "--set", "arena.paths=128",
          "--set", "arena.hedgers=[delta]", "--set", "arena.frontier=false",
          "--set", "arena.n_boot=10", "--no-progress"])
    run = tmp_path / "deep_hedging-ShortCall-seed0"
    main(["stress", "--agent", str(run), "--paths", "256", "--scenarios", "base", "gap",
          "--hedgers", "delta", "--out", str(tmp_path), "--name", "stressed",
          "--set", "stress.n_boot=10", "--no-progress"])
    folder = tmp_path / "stressed"
    records = json.loads((folder / "stress.json").read_text())["records"]
    assert {r["hedger"] for r in records} == {"delta", "deep hedging agent"}
    assert (folder / "worst_paths" / "gap__deep_hedging_agent.png").exists()


def test_scenarios_that_cannot_stress_the_env_are_left_out_and_listed(tmp_path: Path) -> None:
    """OptionBook (Heston, 60 steps): the vol spike needs one vol level and two historical
    windows are shorter than its episode; run with all scenarios, they are skipped and listed;
    named explicitly, they fail with the reason."""
    from hedgearena.baselines.stress import inapplicable
    from hedgearena.envs.scenarios import SCENARIOS, make_scenario

    config = make_config("OptionBook")
    settings = StressSettings(n_paths=64, n_boot=5, seed=3, progress=False, worst_paths=False)
    report = stress_test(config, ["delta"], None, settings, tmp_path)
    assert sorted(report.skipped) == ["august_2011", "flash_crash_2010", "vol_spike"]
    assert "Heston" in report.skipped["vol_spike"]
    assert "61 rows" in report.skipped["august_2011"]
    ran = set(report.table.index.get_level_values("scenario"))
    assert ran == set(SCENARIOS) - set(report.skipped)
    assert "- vol_spike: VolSpike.base" in (tmp_path / "stress.md").read_text()
    assert json.loads((tmp_path / "stress.json").read_text())["metadata"]["skipped"] == \
        report.skipped
    assert all(inapplicable(make_scenario(name), config) is None for name in ran)
    with pytest.raises(ValueError, match=r"VolSpike\.base must have one constant vol level"):
        stress_test(config, ["delta"], ["base", "vol_spike"], settings)
