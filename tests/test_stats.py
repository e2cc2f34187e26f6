"""Properties of sigprop.stats: moments, KS distance and critical values agree with
scipy, correlation and effective-rank matrices have their defining properties, the
streaming reducer equals the one-shot computation, and bad input raises."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from sigprop import stats


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_moments_match_numpy_over_batched_axes():
    x = torch.randn(3, 4, 500, generator=gen(), dtype=torch.float64) * 2 + 1
    m = stats.moments(x, dim=-1)
    a = x.numpy()
    np.testing.assert_allclose(m.mean.numpy(), a.mean(-1), rtol=1e-12)
    np.testing.assert_allclose(m.var.numpy(), a.var(-1), rtol=1e-12)
    np.testing.assert_allclose(m.mu4.numpy(), ((a - a.mean(-1, keepdims=True)) ** 4).mean(-1), rtol=1e-12)
    np.testing.assert_allclose(stats.kurtosis(x).numpy(), sps.kurtosis(a, axis=-1), rtol=1e-10)
    np.testing.assert_allclose(stats.kurtosis(x, excess=False).numpy(),
                               sps.kurtosis(a, axis=-1, fisher=False), rtol=1e-10)
    two = stats.moments(x, dim=(0, 2))  # several axes at once
    np.testing.assert_allclose(two.var.numpy(), a.transpose(1, 0, 2).reshape(4, -1).var(-1), rtol=1e-12)


def test_moment_helpers_match_definitions():
    x = torch.randn(2, 1000, generator=gen(1), dtype=torch.float64)
    a = x.numpy()
    np.testing.assert_allclose(stats.raw_moment(x, 3).numpy(), (a ** 3).mean(-1), rtol=1e-12)
    np.testing.assert_allclose(stats.abs_moment(x, 1.5).numpy(), (np.abs(a) ** 1.5).mean(-1), rtol=1e-12)
    np.testing.assert_allclose(stats.central_moment(x, 3).numpy(), sps.moment(a, 3, axis=-1), rtol=1e-10)
    assert stats.raw_moment(torch.tensor([1, 2, 3]), 2).dtype == torch.float64


def test_gaussian_excess_kurtosis_is_zero_within_sampling_error():
    n = 20_000
    k = stats.kurtosis(torch.randn(16, n, generator=gen(2)))
    sd = math.sqrt(24 / n)  # standard deviation of the excess kurtosis of n Gaussians
    assert float(k.abs().max()) < 5 * sd
    assert abs(float(k.mean())) < 5 * sd / 4  # mean of 16 independent estimates
    assert abs(float(stats.abs_moment(torch.randn(n, generator=gen(3)), 1)) - math.sqrt(2 / math.pi)) < 0.02


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_ks_distance_equals_scipy_kstest(n):
    x = torch.randn(5, n, generator=gen(n), dtype=torch.float64) * 1.3 + 0.2
    d = stats.ks_distance_normal(x)
    ref = [sps.kstest(r, "norm").statistic for r in x.numpy()]
    np.testing.assert_allclose(d.numpy(), ref, atol=1e-10, rtol=0)
    d = stats.ks_distance_normal(x, mean=0.2, std=1.3)
    ref = [sps.kstest(r, "norm", args=(0.2, 1.3)).statistic for r in x.numpy()]
    np.testing.assert_allclose(d.numpy(), ref, atol=1e-10, rtol=0)


def test_ks_distance_standardized_and_other_axes_match_scipy():
    x = torch.rand(300, 4, generator=gen(5), dtype=torch.float64) * 3 - 5
    d = stats.ks_distance_normal(x, dim=0, standardize=True)
    a = x.numpy()
    z = (a - a.mean(0)) / a.std(0)
    np.testing.assert_allclose(d.numpy(), [sps.kstest(z[:, j], "norm").statistic for j in range(4)],
                               atol=1e-10, rtol=0)
    per_row = stats.ks_distance_normal(x.T, mean=torch.tensor([0.0, 1, 2, 3]), std=2.0)
    ref = [sps.kstest(a[:, j], "norm", args=(j, 2.0)).statistic for j in range(4)]
    np.testing.assert_allclose(per_row.numpy(), ref, atol=1e-10, rtol=0)


def test_ks_critical_value_is_scipy_kstwo_and_tends_to_asymptote():
    assert stats.ks_critical_value(50, 0.05) == pytest.approx(sps.kstwo.ppf(0.95, 50), abs=1e-12)
    assert stats.ks_critical_value(10_000, 0.01) == pytest.approx(sps.kstwo.ppf(0.99, 10_000), abs=1e-12)
    assert stats.ks_critical_value(10_000) == pytest.approx(1.358 / 100, rel=2e-3)
    assert stats.ks_critical_value(200_000) == pytest.approx(1.3581 / math.sqrt(200_000), rel=1e-3)
    vec = stats.ks_critical_value(torch.tensor([10, 100, 1000]))
    assert isinstance(vec, torch.Tensor) and vec.shape == (3,) and bool((vec[1:] < vec[:-1]).all())


def test_ks_rejection_rate_of_gaussian_samples_is_alpha():
    n, reps = 200, 2000
    d = stats.ks_distance_normal(torch.randn(reps, n, generator=gen(6), dtype=torch.float64))
    rate = float((d > stats.ks_critical_value(n, 0.05)).double().mean())
    assert abs(rate - 0.05) < 5 * math.sqrt(0.05 * 0.95 / reps)


def test_correlation_matrix_is_symmetric_unit_diagonal_and_bounded():
    x = torch.randn(2, 3, 20, 50, generator=gen(7))
    c = stats.correlation_matrix(x)
    assert c.shape == (2, 3, 20, 20) and c.dtype == torch.float64
    torch.testing.assert_close(c, c.transpose(-1, -2), atol=1e-15, rtol=0)
    torch.testing.assert_close(torch.diagonal(c, dim1=-2, dim2=-1), torch.ones(2, 3, 20, dtype=torch.float64))
    assert float(c.abs().max()) <= 1.0
    v = torch.randn(1, 10, generator=gen(8))  # uncentred: a vector and its rescaling correlate 1
    assert float(stats.correlation_matrix(torch.cat([v, 3 * v, -v]))[0, 1]) == pytest.approx(1.0)
    assert float(stats.correlation_matrix(torch.cat([v, 3 * v, -v]))[0, 2]) == pytest.approx(-1.0)


def test_class_correlation_excludes_self_pairs_on_diagonal_only():
    # Two classes of 3 samples: within class 0 every pair has c = 0.5, within class 1 c = 0.2,
    # across classes c = -0.1; diagonal entries are 1.
    labels = torch.tensor([0, 1, 0, 1, 0, 1])  # unsorted on purpose
    same = labels[:, None] == labels[None, :]
    corr = torch.where(same, torch.where(labels[:, None] == 0, 0.5, 0.2), torch.tensor(-0.1)).double()
    corr.fill_diagonal_(1.0)
    cc = stats.class_correlation_matrix(corr, labels, 2)
    torch.testing.assert_close(cc, torch.tensor([[0.5, -0.1], [-0.1, 0.2]], dtype=torch.float64))
    incl = stats.class_correlation_matrix(corr, labels, 2, exclude_diagonal=False)
    torch.testing.assert_close(incl, torch.tensor([[(3 + 6 * 0.5) / 9, -0.1], [-0.1, (3 + 6 * 0.2) / 9]],
                                                  dtype=torch.float64))
    batched = stats.class_correlation_matrix(torch.stack([corr, corr]), labels, 3)
    assert batched.shape == (2, 3, 3) and bool(torch.isnan(batched[:, 2]).all())


def test_effective_rank_of_isotropic_data_is_dimension_and_of_rank_one_data_is_one():
    n, d = 20_000, 20
    r = float(stats.effective_rank(torch.randn(n, d, generator=gen(9), dtype=torch.float64)))
    mp_edge = (1 + math.sqrt(d / n)) ** 2  # top eigenvalue of a sample covariance (Marchenko-Pastur)
    assert d / mp_edge * 0.97 < r <= d
    scale = torch.randn(500, 1, generator=gen(10), dtype=torch.float64)
    line = scale * torch.randn(1, 30, generator=gen(11), dtype=torch.float64) + 4.0
    assert float(stats.effective_rank(line)) == pytest.approx(1.0, abs=1e-9)
    batched = stats.effective_rank(torch.randn(30, 3, 8, generator=gen(12)), dim_samples=0)
    assert batched.shape == (3,) and bool(((batched >= 1) & (batched <= 8)).all())


def test_running_moments_merge_equals_one_shot():
    x = torch.randn(4, 3000, generator=gen(13), dtype=torch.float64) * 0.01 + 1e3  # large mean
    rm = stats.RunningMoments(dim=-1)
    for chunk in torch.split(x, [1, 999, 1000, 1000], dim=-1):
        rm.update(chunk)
    m = stats.moments(x)
    assert rm.n == 3000
    torch.testing.assert_close(rm.mean, m.mean, rtol=1e-13, atol=0)
    torch.testing.assert_close(rm.var, m.var, rtol=1e-9, atol=0)
    torch.testing.assert_close(rm.mu4, m.mu4, rtol=1e-8, atol=0)
    torch.testing.assert_close(rm.mu3, stats.central_moment(x, 3), rtol=1e-6, atol=1e-18)
    torch.testing.assert_close(rm.kurtosis(), stats.kurtosis(x), rtol=1e-8, atol=1e-10)
    a = stats.RunningMoments().update(x[:, :1700])
    b = stats.RunningMoments().update(x[:, 1700:])
    torch.testing.assert_close(a.merge(b).mu4, m.mu4, rtol=1e-8, atol=0)
    torch.testing.assert_close(rm.nu2, stats.raw_moment(x, 2), rtol=1e-12, atol=0)


def test_bad_input_raises_value_error():
    x = torch.randn(4, 10)
    with pytest.raises(ValueError, match="dim"):
        stats.moments(x, dim=2)
    with pytest.raises(ValueError, match="dim"):
        stats.kurtosis(torch.empty(3, 0))
    with pytest.raises(ValueError, match="p must"):
        stats.raw_moment(x, 1.5)
    with pytest.raises(ValueError, match="p must"):
        stats.abs_moment(x, -1)
    with pytest.raises(ValueError, match="p must"):
        stats.central_moment(x, -2)
    with pytest.raises(ValueError, match="std"):
        stats.ks_distance_normal(x, std=0.0)
    with pytest.raises(ValueError, match="dim"):
        stats.ks_distance_normal(x, dim=(0, 1))
    for alpha in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="alpha"):
            stats.ks_critical_value(100, alpha)
    for n in (0, -3, 2.5):
        with pytest.raises(ValueError, match="n must"):
            stats.ks_critical_value(n)
    with pytest.raises(ValueError, match="shape"):
        stats.correlation_matrix(torch.randn(5))
    with pytest.raises(ValueError, match="corr"):
        stats.class_correlation_matrix(torch.randn(3, 4), torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="labels"):
        stats.class_correlation_matrix(torch.eye(4), torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="labels"):
        stats.class_correlation_matrix(torch.eye(3), torch.tensor([0, 1, 2]), 2)
    with pytest.raises(ValueError, match="n_classes"):
        stats.class_correlation_matrix(torch.eye(3), torch.tensor([0, 0, 0]), 0)
    with pytest.raises(ValueError, match="dim_samples"):
        stats.effective_rank(x, dim_samples=-1)
    with pytest.raises(ValueError, match="shape"):
        stats.effective_rank(torch.randn(5))
    with pytest.raises(ValueError, match="empty"):
        _ = stats.RunningMoments().mean
    rm = stats.RunningMoments().update(x)
    with pytest.raises(ValueError, match="merge"):
        rm.merge(stats.RunningMoments().update(torch.randn(3, 10)))
    with pytest.raises(ValueError, match="merge"):
        rm.update(torch.randn(3, 10))
