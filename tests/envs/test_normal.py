"""The normal cdf/pdf against scipy (an independent implementation, Cephes' ndtr)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import ndtr
from scipy.stats import norm

from hedgearena.envs.normal import normal_cdf, normal_pdf


def test_cdf_matches_scipy_in_both_tails() -> None:
    x = np.concatenate([np.linspace(-37.5, 37.5, 300_001), [0.0, -1e-300, 8.3, -8.3]])
    ours, ref = normal_cdf(x), ndtr(x)
    assert ours.dtype == np.float64
    assert ours.shape == x.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=0)
    assert normal_cdf(-37.5) > 0
    assert normal_cdf(40.0) == 1.0


def test_cdf_keeps_shapes_and_scalars() -> None:
    x = np.random.default_rng(0).normal(size=(3, 4, 5))
    assert normal_cdf(x).shape == (3, 4, 5)
    assert isinstance(normal_cdf(0.3), float)
    assert normal_cdf(x[:, ::2]).shape == (3, 2, 5)  # non-contiguous input
    np.testing.assert_allclose(normal_cdf(x[:, ::2]), ndtr(x[:, ::2]), rtol=1e-14)


def test_torch_cdf_pdf_values_and_gradient() -> None:
    x = torch.linspace(-6, 6, 101, dtype=torch.float64, requires_grad=True)
    cdf = normal_cdf(x)
    np.testing.assert_allclose(cdf.detach().numpy(), ndtr(x.detach().numpy()), rtol=1e-13)
    cdf.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), norm.pdf(x.detach().numpy()), rtol=1e-12)
    np.testing.assert_allclose(normal_pdf(x).detach().numpy(), norm.pdf(x.detach().numpy()),
                               rtol=1e-14)
