"""The stress tables with a scenario whose values are all missing: drawn unmarked, no crash."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hedgearena.baselines.stress import _pivot_markdown, best_index, print_stress_table


class _Report:
    """What ``StressReport.pivot`` gives: hedger rows, scenario columns (and no notes)."""

    notes: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.values = pd.DataFrame({"calm": [5.0, 3.0], "blackout": [np.nan, np.nan]},
                                   index=["delta", "band"])

    def pivot(self, key: str) -> pd.DataFrame:
        return -self.values if key == "worst_pnl" else self.values


def test_a_scenario_without_values_has_no_best_and_breaks_no_table() -> None:
    report = _Report()
    markdown = _pivot_markdown(report, "objective", None)  # np.nanargmin raised here
    calm, blackout = markdown.splitlines()[2:]
    assert calm == "| calm | 5 | **3** |"
    assert "**" not in blackout
    worst = _pivot_markdown(report, "worst_pnl", None).splitlines()[2]
    assert worst == "| calm | -5 | **-3** |"  # the highest worst P&L is the best
    table = print_stress_table(report)
    assert table.row_count == 2
    assert best_index(np.array([[np.inf, 2.0, np.nan]]), axis=1).tolist() == [1]
