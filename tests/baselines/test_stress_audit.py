"""Audit of the stress report's settings: a bad value fails naming the field and what is allowed
(each case escaped as OverflowError or TypeError, or was taken for 1, before the fix)."""

from __future__ import annotations

import re

import pytest

from hedgearena.baselines.stress import StressSettings


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_paths": float("inf")}, "StressSettings.n_paths must be an integer >= 1, got inf"),
        ({"n_paths": float("nan")}, "StressSettings.n_paths must be an integer >= 1, got nan"),
        ({"n_boot": None}, "StressSettings.n_boot must be an integer >= 1, got None"),
        ({"tune_paths": True}, "StressSettings.tune_paths must be an integer >= 1, got True"),
        ({"c": "x"}, "StressSettings.c must be a finite number >= 0.0, got 'x'"),
        ({"c": True}, "StressSettings.c must be a finite number >= 0.0, got True"),
        ({"risk_aversion": None},
         "StressSettings.risk_aversion must be a finite number > 0.0, got None"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        StressSettings(**kwargs)


def test_integral_floats_still_count_as_path_counts() -> None:
    """YAML may give 2000.0: it stays accepted, as before."""
    assert StressSettings(n_paths=2000.0, n_boot=10.0).n_paths == 2000
