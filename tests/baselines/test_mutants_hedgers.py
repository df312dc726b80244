"""Band hedgers' formulas against hand computations (tests found by mutation testing)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hedgearena.baselines.bands import WhalleyWilmott, band_position, whalley_wilmott_half_width


def test_whalley_wilmott_width_discounts_by_the_time_left() -> None:
    """``H = (3/2 e^{-r tau} lambda S Gamma^2 / gamma)^{1/3}`` (Whalley and Wilmott 1997).

    By hand: ``3/2 * 1 * 2^2 / 0.75 = 8``, so ``H = 2 e^{-r tau / 3}`` with r = 5%, tau = 2.
    """
    width = whalley_wilmott_half_width(1.0, 2.0, 0.75, rate=0.05, tau=2.0)
    assert float(width) == pytest.approx(2.0 * math.exp(-0.1 / 3.0), rel=1e-14)


def test_whalley_wilmott_hedger_bands_the_net_gamma_of_book_and_option() -> None:
    """The gamma in ``H`` is the book's plus the hedging option's held at the model position.

    Book gamma -0.5, 10 options of gamma 0.03: net -0.2, so ``H = (1.5 * 0.6 * 0.04 / 0.3)^(1/3)
    = 0.12^(1/3)``.
    """
    state = {
        "book_gamma": np.array([-0.5]), "model_option": np.array([10.0]),
        "option_gamma": np.array([0.03]), "cost_linear": np.array([0.6]),
        "rate": 0.0, "tau": np.array([0.1]),
    }
    width = WhalleyWilmott(risk_aversion=0.3).half_width(state)
    np.testing.assert_allclose(width, [0.12 ** (1.0 / 3.0)], rtol=1e-14)


def test_a_position_on_the_band_edge_is_inside_the_band() -> None:
    """The band is the closed interval ``[centre - w, centre + w]``: on its edge nothing trades,
    whichever rule (edge or centre) brings positions back from outside."""
    previous, centre = np.array([45.0, 55.0, 44.0]), np.full(3, 50.0)
    np.testing.assert_array_equal(band_position(previous, centre, 5.0, to="centre"),
                                  [45.0, 55.0, 50.0])
    np.testing.assert_array_equal(band_position(previous, centre, 5.0), [45.0, 55.0, 45.0])
