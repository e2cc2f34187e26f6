"""Properties of sigprop.critique: the log-periodic counterexample has infinitely many,
alternately stable fixed points and a scale-invariant correlation map; the Weibull(2) pair
gives exactly Gaussian products; the finite-width sampler and kurtosis predictions agree
with independent computations (scipy/numpy in the test, or exact formulas); bad input raises."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize
from scipy import stats as sps

from sigprop import critique as cr
from sigprop import ensemble, meanfield as mf, stats


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _phi_np(x, d, w):
    x = np.asarray(x, dtype=float)
    out = np.zeros_like(x)
    nz = x != 0
    out[nz] = x[nz] * np.exp(d / w * np.sin(w * np.log(np.abs(x[nz]))))
    return out


def _ratio_scipy(q, d, w):
    # E[phi(sqrt(q) Z)^2] / q by adaptive quadrature in z (split at 0, both halves equal by symmetry)
    f = lambda z: _phi_np(np.sqrt(q) * z, d, w) ** 2 * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    pts = np.exp(np.linspace(-12, 2, 60))
    val = integrate.quad(f, 0, 12, points=pts, limit=5000, epsabs=1e-13, epsrel=1e-11)[0]
    return 2 * val / q


def test_log_periodic_activation_is_odd_increasing_and_scale_invariant():
    d, w = 0.99, 3.0
    act = cr.log_periodic_activation(d, w)
    x = torch.linspace(-5, 5, 2001, dtype=torch.float64)
    y = act.fn(x)
    np.testing.assert_allclose(y.numpy(), _phi_np(x.numpy(), d, w), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(act.fn(-x).numpy(), -y.numpy(), atol=1e-15)
    assert bool((torch.diff(y) > 0).all())
    lam = math.exp(2 * math.pi / w)
    np.testing.assert_allclose(act.fn(lam * x).numpy(), lam * y.numpy(), rtol=1e-10, atol=1e-12)
    xs = torch.tensor([-2.3, -0.7, 0.31, 1.3, 2.9], dtype=torch.float64)
    h = 1e-6
    np.testing.assert_allclose(act.deriv(xs).numpy(), ((act.fn(xs + h) - act.fn(xs - h)) / (2 * h)).numpy(), rtol=1e-6)


@pytest.mark.parametrize("omega", [2.0, 3.0, 6.0])
def test_log_periodic_ratio_matches_scipy_quadrature(omega):
    qs = [0.05, 0.3, 1.0, 7.0, 40.0]
    got = cr.log_periodic_ratio(0.99, omega, torch.tensor(qs, dtype=torch.float64)).numpy()
    ref = np.array([_ratio_scipy(q, 0.99, omega) for q in qs])
    np.testing.assert_allclose(got, ref, rtol=1e-7)
    # it is periodic in ln q with period 4 pi / omega
    lam2 = math.exp(4 * math.pi / omega)
    np.testing.assert_allclose(cr.log_periodic_ratio(0.99, omega, torch.tensor(qs, dtype=torch.float64) * lam2).numpy(), got, rtol=1e-10)


def test_log_periodic_ratio_agrees_with_meanfield_q_map():
    act = cr.log_periodic_activation(0.99, 2.0)
    q = torch.tensor([0.5, 2.0, 9.0], dtype=torch.float64)
    np.testing.assert_allclose(mf.q_map(act, q, 1.0, 0.0).numpy(), (q * cr.log_periodic_ratio(0.99, 2.0, q)).numpy(),
                               rtol=2e-3)


@pytest.mark.parametrize("omega", [2.0, 3.0, 6.0])
def test_variance_map_has_alternating_fixed_points_every_period(omega):
    sw = cr.log_periodic_sigma_w(0.99, omega)
    fp = cr.log_periodic_fixed_points(0.99, omega, sw, 1e-3, 1e5)
    period = 4 * math.pi / omega
    n_periods = math.log(1e8) / period
    assert len(fp.q) >= 2 * math.floor(n_periods)  # two fixed points per period of ln q
    # each is a fixed point of V(q) = sigma_w^2 q r(q), checked with scipy quadrature
    for q in fp.q[:3].tolist():
        assert abs(sw**2 * q * _ratio_scipy(q, 0.99, omega) - q) < 1e-8 * q
    # stable and unstable alternate, and the pattern repeats with ratio exp(4 pi / omega)
    st = fp.stable.tolist()
    assert all(a != b for a, b in zip(st, st[1:]))
    same = fp.q[fp.stable]
    np.testing.assert_allclose(torch.diff(torch.log(same)).numpy(), period, rtol=1e-8)
    # slope by finite differences of the (scipy) map
    q = float(fp.q[0])
    eps = 1e-5 * q
    fd = sw**2 * ((q + eps) * _ratio_scipy(q + eps, 0.99, omega) - (q - eps) * _ratio_scipy(q - eps, 0.99, omega)) / (2 * eps)
    assert abs(float(fp.slope[0]) - fd) < 1e-5


def test_generic_fixed_points_find_tanh_q_star_and_the_log_periodic_ones():
    fp = cr.variance_map_fixed_points("tanh", 1.5, 0.3, 1e-3, 1e2, 400)
    ref = optimize.brentq(lambda q: float(mf.q_map("tanh", q, 1.5, 0.3)) - q, 1e-3, 1e2)
    assert len(fp.q) == 1 and abs(float(fp.q[0]) - ref) < 1e-10 and bool(fp.stable[0])
    act = cr.log_periodic_activation(0.99, 2.0)
    sw = cr.log_periodic_sigma_w(0.99, 2.0)
    g = cr.variance_map_fixed_points(act, sw, 0.0, 1e-1, 1e3, 400)
    exact = cr.log_periodic_fixed_points(0.99, 2.0, sw, 1e-1, 1e3)
    np.testing.assert_allclose(g.q.numpy(), exact.q.numpy(), rtol=5e-3)
    assert g.stable.tolist() == exact.stable.tolist()


def test_correlation_map_is_the_same_at_every_fixed_point_and_nears_identity():
    d = 0.99
    c = torch.tensor([0.0, 0.3, 0.6, 0.9], dtype=torch.float64)
    gaps = []
    for w in (2.0, 6.0):
        act = cr.log_periodic_activation(d, w)
        sw = cr.log_periodic_sigma_w(d, w)
        fp = cr.log_periodic_fixed_points(d, w, sw, 1e-2, 1e4)
        q1, q2 = fp.q[fp.stable][:2].tolist()
        c1 = mf.c_map(act, c, q1, sw, 0.0)
        c2 = mf.c_map(act, c, q2, sw, 0.0)
        np.testing.assert_allclose(c1.numpy(), c2.numpy(), atol=2e-3)
        gaps.append(float((c1 - c).abs().max()))
    assert gaps[1] < gaps[0]


def test_bad_log_periodic_input_raises():
    with pytest.raises(ValueError, match="delta"):
        cr.log_periodic_activation(1.0, 2.0)
    with pytest.raises(ValueError, match="omega"):
        cr.log_periodic_activation(0.5, 0.0)
    with pytest.raises(ValueError, match="q"):
        cr.log_periodic_ratio(0.5, 2.0, [1.0, -1.0])
    with pytest.raises(ValueError, match="q_lo"):
        cr.log_periodic_fixed_points(0.5, 2.0, 1.0, 10.0, 1.0)
    with pytest.raises(ValueError, match="delta"):
        cr.log_periodic_sigma_w(0.0, 2.0)


@pytest.mark.parametrize("kind", ["odd", "positive"])
def test_weibull2_pair_gives_exact_standard_gaussian(kind):
    act = cr.box_muller_activation(kind)
    n = 200_000
    w = cr.sample_weibull2((n,), generator=gen(1), dtype=torch.float64)
    x = torch.randn(n, generator=gen(2), dtype=torch.float64)
    g = (w * act.fn(x)).numpy()
    p = sps.kstest(g, "norm").pvalue
    assert p > 1e-3
    # the weight law: P(|W| > t) = exp(-t^2)
    assert sps.kstest(np.abs(w.numpy()), lambda t: 1 - np.exp(-t**2)).pvalue > 1e-3
    xs = torch.tensor([-2.3, -0.7, 0.31, 1.3, 2.9], dtype=torch.float64)
    h = 1e-6
    np.testing.assert_allclose(act.deriv(xs).numpy(), ((act.fn(xs + h) - act.fn(xs - h)) / (2 * h)).numpy(), rtol=1e-6)


def test_exact_eoc_values_against_scipy():
    def e(f):
        return integrate.quad(lambda z: f(z) * np.exp(-z * z / 2) / np.sqrt(2 * np.pi), -12, 12, epsabs=1e-13)[0]
    pdf = lambda z: np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    odd_d = lambda z: np.sqrt(2) * np.pi * pdf(z) * np.cos(np.pi * (sps.norm.cdf(z) - 0.5))
    pos_d = lambda z: np.sqrt(2) * np.pi / 2 * pdf(z) * np.cos(np.pi / 2 * sps.norm.cdf(z))
    o = cr.exact_eoc("odd")
    p = cr.exact_eoc("positive")
    assert abs(o.q_star - 1) < 1e-10 and abs(p.q_star - 1) < 1e-10
    assert abs(o.chi_1 - e(lambda z: odd_d(z) ** 2)) < 1e-9
    assert abs(p.chi_1 - e(lambda z: pos_d(z) ** 2)) < 1e-9
    assert abs(o.poincare_bound - 1) < 1e-10 and o.chi_1 > 1
    assert abs(p.poincare_bound - (1 - 8 / np.pi**2)) < 1e-10 and p.chi_1 >= p.poincare_bound
    with pytest.raises(ValueError, match="kind"):
        cr.exact_eoc("even")


def test_relu_kurtosis_prediction_matches_exact_formula_to_first_order():
    n, L = 400, 20
    pred = cr.kurtosis_prediction("relu", math.sqrt(2), 0.0, n, L)
    np.testing.assert_allclose(pred.numpy(), 15 * np.arange(L) / n, rtol=1e-9, atol=1e-12)
    exact = cr.relu_kurtosis_exact(n, L).numpy()
    np.testing.assert_allclose(exact, 3 * ((1 + 5 / n) ** np.arange(L) - 1), rtol=1e-12)
    np.testing.assert_allclose(exact[:5], pred.numpy()[:5], rtol=0.02, atol=1e-12)
    assert cr.relu_kurtosis_exact(torch.tensor([10, 100]), 3).shape == (3, 2)


def test_sampler_matches_exact_relu_kurtosis_and_layer_one_is_gaussian():
    n, L, m = 20, 6, 20000
    s = cr.sample_preactivations("relu", math.sqrt(2), 0.0, n, L, m, generator=gen(3), dtype=torch.float64)
    exact = cr.relu_kurtosis_exact(n, L).numpy()
    # pooled kurtosis over n*m values, correlated within a network: use a generous 6 sigma of
    # the per-network estimate, sqrt(24/m) * (1 + kappa)^2 roughly
    tol = 6 * math.sqrt(24 / m) * (1 + exact) ** 2
    assert np.all(np.abs(s.kurtosis.numpy() - exact) < tol)
    np.testing.assert_allclose(s.var.numpy(), 2.0, rtol=0.05)
    assert sps.kstest(s.first_unit[0].numpy(), "norm", args=(0, math.sqrt(2))).pvalue > 1e-3
    assert s.first_unit.shape == (L, m)
    # the batch-means standard error is finite, and the deviations are a few of them
    assert bool(torch.isfinite(s.kurtosis_se).all())
    assert np.all(np.abs(s.kurtosis.numpy() - exact)[1:] < 6 * s.kurtosis_se.numpy()[1:] + 0.05 * exact[1:])


def test_sampler_agrees_with_weight_based_ensemble():
    # tanh at its EOC point: per-layer variance from sample_preactivations and from
    # sigprop.ensemble.propagate_mlp with sampled weights agree within sampling error
    sb = math.sqrt(0.013)
    sw = float(mf.eoc_sigma_w("tanh", sb))
    n, L, m = 32, 8, 400
    s = cr.sample_preactivations("tanh", sw, sb, n, L, m, generator=gen(4))
    x = torch.ones(1, n, dtype=torch.float32)  # length q0 = 1
    tr = ensemble.propagate_mlp(x, ensemble.MLPConfig(depth=L, width=n, act="tanh", sigma_w=sw, sigma_b=sb, n_nets=m),
                                generator=gen(5), device="cpu")
    np.testing.assert_allclose(s.var.numpy(), tr.h_var.numpy(), rtol=0.05)
    qs = mf.iterate_q("tanh", sw**2 + sb**2, sw, sb, L - 1).numpy()  # h^1 has variance sw^2 q0 + sb^2
    np.testing.assert_allclose(s.var.numpy(), qs, rtol=0.05)


def test_weibull_sampler_keeps_unit_variance_and_layer_two_is_gaussian():
    act = cr.box_muller_activation("odd")
    s = cr.sample_preactivations(act, 1.0, 0.0, 3, 4, 20000, weights="weibull2", generator=gen(6))
    assert sps.kstest(s.first_unit[1].numpy(), "norm").pvalue > 1e-3  # layer 2: independent inputs
    np.testing.assert_allclose(s.var.numpy()[:2], 1.0, rtol=0.03)


def test_sampler_bad_input_raises():
    with pytest.raises(ValueError, match="width"):
        cr.sample_preactivations("relu", 1.0, 0.0, 0, 3, 10)
    with pytest.raises(ValueError, match="weights"):
        cr.sample_preactivations("relu", 1.0, 0.0, 3, 3, 10, weights="uniform")
    with pytest.raises(ValueError, match="sigma_w"):
        cr.kurtosis_prediction("relu", -1.0, 0.0, 3, 3)
    with pytest.raises(ValueError, match="width"):
        cr.relu_kurtosis_exact(0, 3)


def test_mean_field_class_correlation_equals_direct_iteration():
    g = gen(7)
    x = torch.randn(12, 50, generator=g, dtype=torch.float64)
    x = x / x.pow(2).mean(-1, keepdim=True).sqrt()
    corr = stats.correlation_matrix(x)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    sb = math.sqrt(0.013)
    sw = float(mf.eoc_sigma_w("tanh", sb))
    got = cr.mean_field_class_correlation("tanh", sw, sb, corr, labels, 3, [0, 5], n_grid=257)
    iu = torch.triu_indices(12, 12, 1)
    c0 = corr[iu[0], iu[1]]
    q1 = sw**2 + sb**2  # layer 1 is affine in the inputs
    c5, _ = mf.iterate_c("tanh", (sw**2 * c0 + sb**2) / q1, q1, sw, sb, 4)
    full = torch.eye(12, dtype=torch.float64)
    full[iu[0], iu[1]] = c5[-1]
    full[iu[1], iu[0]] = c5[-1]
    ref = stats.class_correlation_matrix(full, labels, 3)
    np.testing.assert_allclose(got[1].numpy(), ref.numpy(), atol=1e-4)
    np.testing.assert_allclose(got[0].numpy(), stats.class_correlation_matrix(corr, labels, 3).numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="corr_in"):
        cr.mean_field_class_correlation("tanh", sw, sb, corr[:3], labels, 3, [1])
