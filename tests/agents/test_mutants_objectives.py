"""Risk measures of the hedging cost: tests found by mutation testing ``agents/objectives.py``.

Expected numbers are written out by hand from the definitions (cited per test), never taken
from the code under test.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from hedgearena.agents.objectives import (
    Objective,
    entropic,
    expected_shortfall,
    mean_std,
    mean_variance,
    parse_objective,
)


def test_expected_shortfall_of_the_integers_one_to_a_hundred() -> None:
    """ES of the empirical law of ``1, ..., 100`` (Acerbi and Tasche 2002, eq. (3.3)).

    alpha 0.95: the worst 5, ``(96 + ... + 100) / 5 = 98``; alpha 0.955: ``m = 4.5``, the worst 4
    plus half of the fifth worst, ``(100 + 99 + 98 + 97 + 0.5 * 96) / 4.5 = 442 / 4.5``; alpha
    0.999: ``m = 0.1 < 1``, the worst path alone, 100.
    """
    costs = np.random.default_rng(3).permutation(np.arange(1.0, 101.0))  # order is irrelevant
    assert float(expected_shortfall(costs, 0.95)) == pytest.approx(98.0, rel=1e-12)
    assert float(expected_shortfall(costs, 0.955)) == pytest.approx(442.0 / 4.5, rel=1e-12)
    assert float(expected_shortfall(costs, 0.999)) == pytest.approx(100.0, rel=1e-12)
    assert float(expected_shortfall(costs, 0.01)) == pytest.approx(  # m = 99: all but the best
        (5050.0 - 1.0) / 99.0, rel=1e-12)


def test_cvar_is_the_expected_shortfall_and_not_another_measure() -> None:
    """``cvar:alpha`` is the same measure as ``expected_shortfall:alpha`` (module table)."""
    costs = np.array([1.0, 5.0, 2.0, 8.0, 3.0])
    # m = 5 * 0.4 = 2: the worst two, (8 + 5) / 2
    assert float(parse_objective("cvar:0.6")(costs)) == pytest.approx(6.5, rel=1e-12)
    assert float(parse_objective("expected_shortfall:0.6")(costs)) == pytest.approx(6.5)


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.0, 1.5, math.nan])
def test_expected_shortfall_refuses_a_level_outside_zero_one(alpha: float) -> None:
    """``alpha`` must be in the open interval (0, 1): ``alpha = 0`` would be the mean, not a tail
    measure (Rockafellar and Uryasev 2002 define CVaR for ``alpha`` in (0, 1))."""
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 1\), got"):
        expected_shortfall(np.array([1.0, 2.0]), alpha)
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 1\)"):
        Objective("cvar", alpha)


@pytest.mark.parametrize(
    ("function", "label", "bad"),
    [
        (mean_std, "c", math.inf),
        (mean_std, "c", -0.5),
        (mean_variance, "kappa", math.inf),
        (mean_variance, "kappa", -1.0),
        (mean_variance, "kappa", math.nan),
        (entropic, "a", math.inf),
        (entropic, "a", 0.0),
        (entropic, "a", -0.1),
        (entropic, "a", math.nan),
    ],
)
def test_every_bad_parameter_is_refused_with_its_name(function, label, bad) -> None:
    """An infinite risk aversion gives inf or NaN costs; it is refused, naming the parameter."""
    with pytest.raises(ValueError, match=rf"^{label} must be a finite number"):
        function(np.array([1.0, 2.0]), bad)


def test_mean_std_accepts_zero_weight_and_is_then_the_mean() -> None:
    """``c = 0`` is allowed (">= 0"): the risk-neutral mean (Cao et al. 2021, eq. (5))."""
    assert float(mean_std(np.array([1.0, 2.0, 6.0]), 0.0)) == pytest.approx(3.0)
    assert parse_objective("mean_std:0") == Objective("mean_std", 0.0)


def test_population_moments_on_a_two_point_sample() -> None:
    """ddof = 0 (module docstring): costs ``0, 4`` have mean 2, variance 4, std 2.

    ``mean_std:1.5 = 2 + 1.5 * 2 = 5`` (the sample std would give ``2 + 1.5 * 2.83 = 6.24``);
    ``mean_variance:0.5 = 2 + 0.25 * 4 = 3`` (Markowitz 1952; ``E + kappa/2 Var``).
    """
    costs = np.array([0.0, 4.0])
    assert float(mean_std(costs, 1.5)) == pytest.approx(5.0, rel=1e-12)
    assert float(mean_variance(costs, 0.5)) == pytest.approx(3.0, rel=1e-12)
    t = torch.tensor([0.0, 4.0], dtype=torch.float64)
    assert float(mean_std(t, 1.5)) == pytest.approx(5.0, rel=1e-12)
    assert float(mean_variance(t, 0.5)) == pytest.approx(3.0, rel=1e-12)


def test_entropic_of_a_two_point_law_and_its_scaling() -> None:
    """``(1/a) log E[e^{aC}]`` (Föllmer and Schied 2002) of costs ``0, 2`` at ``a = 0.5``:
    ``2 log((1 + e) / 2) = 1.24022...``; the risk aversion scales the costs (at ``a = 2``,
    ``0.5 log((1 + e^4) / 2) = 1.66082...``), so dropping ``a`` changes the value."""
    costs = np.array([0.0, 2.0])
    assert float(entropic(costs, 0.5)) == pytest.approx(2.0 * math.log((1.0 + math.e) / 2.0),
                                                        rel=1e-12)
    assert float(entropic(costs, 2.0)) == pytest.approx(0.5 * math.log((1.0 + math.e**4) / 2.0),
                                                        rel=1e-12)
    # the shift by max(aC) keeps it finite where e^{aC} overflows: cash invariance, rho(C + m)
    # = rho(C) + m (Föllmer and Schied 2002, Definition 4.1)
    assert float(entropic(costs + 1000.0, 2.0)) == pytest.approx(
        1000.0 + 0.5 * math.log((1.0 + math.e**4) / 2.0), rel=1e-12)


def test_objective_names_print_without_a_trailing_zero() -> None:
    """``str`` round-trips through the parser and reads like the spec one typed."""
    assert str(Objective("mean_std", 2.0)) == "mean_std:2"
    assert str(parse_objective("mean_variance:1")) == "mean_variance:1"
    assert parse_objective(str(Objective("entropic", 0.0123456789))) == Objective(
        "entropic", 0.0123456789)


def test_a_boolean_parameter_is_refused() -> None:
    """``True`` is an int in Python; as a risk aversion it is a mistake, not 1."""
    with pytest.raises(ValueError, match="mean_std: c must be a number, got True"):
        Objective("mean_std", True)


def test_costs_that_are_not_one_path_per_entry_are_refused() -> None:
    """Every measure takes ``(n_paths,)`` costs (module ``Array``); a column or an empty batch
    must be refused with the shape, not scored (ES of ``4, 1, 3, 2`` at 0.5 is ``(4 + 3) / 2``)."""
    column = np.array([[4.0], [1.0], [3.0], [2.0]])
    assert float(expected_shortfall(column.ravel(), 0.5)) == pytest.approx(3.5)
    with pytest.raises(ValueError, match="shape"):
        expected_shortfall(column, 0.5)
    with pytest.raises(ValueError, match=r"shape|empty"):
        expected_shortfall(np.array([]), 0.5)


@pytest.mark.parametrize("measure", [mean_std, mean_variance, entropic, expected_shortfall])
@pytest.mark.parametrize("shape", [(4, 1), (1, 4), (0,), ()])
def test_every_measure_refuses_costs_not_shaped_one_per_path(measure, shape) -> None:
    """A column, a row, an empty batch or a scalar is refused naming the shape (numpy and
    torch alike: the deep hedger's training step passes tensors)."""
    for cost in (np.ones(shape), torch.ones(shape, dtype=torch.float64)):
        expected = rf"shape \(n_paths,\).*got shape {re.escape(str(shape))}"
        with pytest.raises(ValueError, match=expected):
            measure(cost, 0.5)
