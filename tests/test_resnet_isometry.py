"""Properties of the residual-network wing: sigprop.resnet_theory (mean field, effective cumulant,
universal law) and sigprop.ensemble.resnet (simulation, exact Jacobians) (Tarnowski et al. 2019).

* The universal density solves G = (zG - 1) exp(a(1 - 2zG)), agrees with an independent
  Newton solver continued from far off the real axis, integrates to 1, has mean e^a and
  variance 2a e^{2a}, vanishes outside the closed-form edges and is symmetric under x -> 1/x.
* Products of random residual-layer matrices, drawn with numpy only, follow it.
* The exact Jacobian of the ensemble equals torch.func.jacrev of the same networks.
* The effective cumulant has its closed forms for linear / relu / leaky relu, is inverted by
  sigma_w_for_cumulant, and the mean-field recursion matches simulated networks.
* Bad input raises ValueError.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sigprop import activations
from sigprop import resnet_theory as rm
from sigprop.ensemble import (ResNetConfig, make_resnet, propagate_resnet, resnet_input_output_jacobian,
                              resnet_jacobian_singular_values, resnet_parameters)

CPU = torch.device("cpu")
F64 = torch.float64
CUMULANTS = [1e-3, 0.05, 0.5, 2.0, 6.0]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- #
# The universal law.
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("a", CUMULANTS)
def test_density_solves_the_universal_green_function_equation(a):
    lm, lp = rm.resnet_spectral_edges(a)
    x = torch.exp(torch.linspace(math.log(lm), math.log(lp), 403, dtype=F64)[1:-1])
    w, inside = rm._resnet_w(x, torch.tensor(a, dtype=F64))
    assert bool(inside.all())
    z = x.to(torch.complex128)
    g = w / z
    residual = g - (z * g - 1) * torch.exp(a * (1 - 2 * z * g))
    assert float((residual.abs() / g.abs()).max()) < 1e-9
    assert bool((w.imag > 0).all())


def _newton_density(x: float, a: float, eta_min: float = 1e-11) -> float:
    """Independent solver: Newton on F(w) = w - z (w - 1) e^{a(1-2w)} at z = x + i eta, continued
    from eta = 50 (where G ~ 1/z, w ~ 1) down to eta_min; rho = -Im G / pi."""
    w = complex(1.0, 0.0)
    for eta in np.geomspace(50.0, eta_min, 400):
        z = complex(x, eta)
        for _ in range(50):
            e = np.exp(a * (1 - 2 * w))
            f = w - z * (w - 1) * e
            df = 1 - z * e + 2 * a * z * (w - 1) * e
            step = f / df
            w -= step
            if abs(step) < 1e-15 * max(1.0, abs(w)):
                break
    return -(w / complex(x, eta_min)).imag / math.pi


@pytest.mark.parametrize("a", [0.05, 0.5, 2.0])
def test_density_agrees_with_newton_continued_from_off_the_axis(a):
    lm, lp = rm.resnet_spectral_edges(a)
    # points across the support, edges included, log-spaced (the law spans decades for large a)
    for frac in [0.002, 0.1, 0.3, 0.5, 0.7, 0.9, 0.998]:
        x = math.exp(math.log(lm) + frac * (math.log(lp) - math.log(lm)))
        ref = _newton_density(x, a)
        got = rm.resnet_spectral_density(x, a)
        assert got == pytest.approx(ref, rel=1e-6, abs=1e-9), (a, frac, got, ref)


@pytest.mark.parametrize("a", CUMULANTS)
def test_density_has_unit_mass_and_the_closed_form_moments(a):
    at = torch.tensor(a, dtype=F64)
    top = torch.tensor(1e300, dtype=F64)
    mass = float(rm._resnet_integral(lambda lam: torch.ones_like(lam), at, top))
    m1 = float(rm._resnet_integral(lambda lam: lam, at, top))
    m2 = float(rm._resnet_integral(lambda lam: lam * lam, at, top))
    assert mass == pytest.approx(1.0, abs=1e-10)
    assert m1 == pytest.approx(rm.resnet_spectrum_mean(a), rel=1e-10)
    assert m1 == pytest.approx(math.exp(a), rel=1e-10)
    var = rm.resnet_spectrum_variance(a)
    assert var == pytest.approx(2 * a * math.exp(2 * a), rel=1e-14)
    assert m2 - m1**2 == pytest.approx(var, rel=1e-8)
    assert rm.resnet_spectrum_cdf(lp := rm.resnet_spectral_edges(a)[1], a) == pytest.approx(1.0, abs=1e-10)
    assert rm.resnet_spectrum_cdf(1.0, a) == pytest.approx(0.5, abs=1e-10)  # median 1, by symmetry
    assert lp > 1


@pytest.mark.parametrize("a", CUMULANTS)
def test_density_vanishes_outside_the_edges_and_is_symmetric_under_inversion(a):
    lm, lp = rm.resnet_spectral_edges(a)
    assert lm == pytest.approx(1 / lp, rel=1e-14)
    s = math.sqrt(a * (a + 2))
    assert lp == pytest.approx((1 + a + s) * math.exp(s), rel=1e-14)
    # Biane's edges of the free multiplicative Brownian motion b_t^* b_t at t = 2a
    t = 2 * a
    biane = (2 + t + math.sqrt(t * (t + 4))) / 2 * math.exp(math.sqrt(t * (t + 4)) / 2)
    assert lp == pytest.approx(biane, rel=1e-13)
    out = torch.tensor([-1.0, 0.0, lm * 0.999, lp * 1.001, 10 * lp], dtype=F64)
    assert bool((rm.resnet_spectral_density(out, a) == 0).all())
    inside = torch.tensor([lm * 1.001, 0.7, 1.0, 1.3, lp * 0.999], dtype=F64).clamp(lm * 1.001, lp * 0.999)
    assert bool((rm.resnet_spectral_density(inside, a) > 0).all())
    # the law is invariant under lambda -> 1/lambda: rho(x) = rho(1/x) / x^2
    x = torch.exp(torch.linspace(0.01, math.log(lp) * 0.99, 50, dtype=F64))
    torch.testing.assert_close(rm.resnet_spectral_density(x, a),
                               rm.resnet_spectral_density(1 / x, a) / x**2, rtol=1e-9, atol=1e-12)
    # the density goes to 0 like a square root at the edge
    r1 = rm.resnet_spectral_density(lp * (1 - 1e-6), a) / rm.resnet_spectral_density(lp * (1 - 4e-6), a)
    assert r1 == pytest.approx(0.5, rel=1e-2)


def test_condition_number_closed_form_and_limits():
    for a in CUMULANTS:
        s = math.sqrt(a * (a + 2))
        k = rm.resnet_condition_number(a)
        assert k == pytest.approx(math.exp(s + math.asinh(s)), rel=1e-14)
        lm, lp = rm.resnet_spectral_edges(a)
        assert k == pytest.approx(math.sqrt(lp / lm), rel=1e-12)
    # small a: isometry, kappa ~ 1 + 2 sqrt(2a); large a: kappa ~ 2 (a + 1) e^{a+1}
    assert rm.resnet_condition_number(1e-8) - 1 == pytest.approx(2 * math.sqrt(2e-8), rel=1e-3)
    assert rm.resnet_condition_number(40.0) == pytest.approx(2 * 41 * math.exp(41), rel=2e-2)


def test_small_cumulant_limit_is_a_semicircle_of_variance_2a():
    a = 1e-4
    r = 2 * math.sqrt(2 * a)  # radius of the semicircle of variance 2a
    x = torch.linspace(1 - 0.9 * r, 1 + 0.9 * r, 41, dtype=F64)
    semi = 2 / (math.pi * r**2) * torch.sqrt(r**2 - (x - 1) ** 2)
    torch.testing.assert_close(rm.resnet_spectral_density(x, a), semi, rtol=0.05, atol=0)


def test_density_broadcasts_over_points_and_cumulants():
    x = torch.linspace(0.05, 5, 7, dtype=F64)
    a = torch.tensor([0.1, 0.5, 1.0], dtype=F64)
    grid = rm.resnet_spectral_density(x[:, None], a[None, :])
    assert grid.shape == (7, 3)
    for j, aj in enumerate(a.tolist()):
        torch.testing.assert_close(grid[:, j], rm.resnet_spectral_density(x, aj), rtol=1e-12, atol=1e-15)
    assert isinstance(rm.resnet_spectral_density(1.0, 0.5), float)
    lm, lp = rm.resnet_spectral_edges(a)
    assert lm.shape == lp.shape == (3,)
    sv = rm.resnet_singular_value_density(torch.sqrt(x), 0.5)
    torch.testing.assert_close(sv, 2 * torch.sqrt(x) * rm.resnet_spectral_density(x, 0.5))


# --------------------------------------------------------------------------- #
# Random-matrix products, numpy only (independent of the library's simulation).
# --------------------------------------------------------------------------- #
def _numpy_product_eigenvalues(a, n, depth, seed, bernoulli=False):
    rng = np.random.default_rng(seed)
    jac = np.eye(n)
    for _ in range(depth):
        if bernoulli:  # D W with D = diag(0/1, p = 1/2): relu-like, c_l = (var * n) / 2
            w = rng.normal(0, math.sqrt(2 * a / (n * depth)), (n, n)) * (rng.random(n) < 0.5)[:, None]
        else:
            w = rng.normal(0, math.sqrt(a / (n * depth)), (n, n))
        jac = (np.eye(n) + w) @ jac
    return np.linalg.eigvalsh(jac @ jac.T)


@pytest.mark.parametrize("bernoulli", [False, True])
def test_products_of_random_residual_layers_follow_the_universal_law(bernoulli):
    a, n, depth = 0.5, 300, 40
    ev = np.concatenate([_numpy_product_eigenvalues(a, n, depth, s, bernoulli) for s in range(2)])
    ks = rm.resnet_ks_distance(torch.as_tensor(ev), a)
    # the finite-depth and finite-width corrections are O(a^2 / L) and O(1/N): a few 1e-3
    assert ks < 0.03, ks
    assert ev.mean() == pytest.approx(math.exp(a), rel=0.03)
    assert ev.var() == pytest.approx(rm.resnet_spectrum_variance(a), rel=0.15)
    lm, lp = rm.resnet_spectral_edges(a)
    assert ev.max() < lp * 1.1 and ev.min() > lm / 1.1
    # and a clearly different a is rejected
    assert rm.resnet_ks_distance(torch.as_tensor(ev), 0.35) > 3 * ks


# --------------------------------------------------------------------------- #
# Exact Jacobians of the ensemble.
# --------------------------------------------------------------------------- #
def _forward(params, act, x):
    for w, b in params:
        x = x + act.fn(w @ x + b)
    return x


@pytest.mark.parametrize("init", ["gaussian", "orthogonal"])
@pytest.mark.parametrize("act", ["tanh", "relu", "selu", "sigmoid"])
def test_resnet_jacobian_equals_autograd_jacobian_of_the_ensemble_networks(init, act):
    cfg = ResNetConfig(depth=5, width=9, act=act, sigma_w=1.7, sigma_b=0.3, n_nets=3, init=init)
    x = torch.randn(3, 9, generator=gen(4), dtype=F64)
    jac = resnet_input_output_jacobian(cfg, x, generator=gen(1), device=CPU, dtype=F64)
    params = resnet_parameters(cfg, generator=gen(1), device=CPU, dtype=F64)
    assert jac.shape == (3, 9, 9)
    for k in range(3):
        net = [(w[k], b[k]) for w, b in params]
        ref = torch.func.jacrev(lambda v: _forward(net, cfg.activation, v))(x[k])
        torch.testing.assert_close(jac[k], ref, rtol=0, atol=1e-12)
    # the trace sees the same networks
    tr = propagate_resnet(cfg, x, generator=gen(1), device=CPU, dtype=F64)
    torch.testing.assert_close(tr.x[0], _forward([(w[0], b[0]) for w, b in params], cfg.activation, x[0]))


def test_weights_have_the_depth_scaled_variance():
    cfg = ResNetConfig(depth=16, width=300, act="tanh", sigma_w=1.5, n_nets=2)
    w = torch.stack([w for w, _ in resnet_parameters(cfg, generator=gen(0), device=CPU, dtype=F64)])
    assert float(w.var()) * 300 * 16 / 1.5**2 == pytest.approx(1.0, rel=0.01)
    o = ResNetConfig(depth=4, width=50, act="tanh", sigma_w=1.5, init="orthogonal")
    wo = resnet_parameters(o, generator=gen(0), device=CPU, dtype=F64)[0][0][0]
    torch.testing.assert_close(wo @ wo.T, torch.eye(50, dtype=F64) * 1.5**2 / 4)


def test_bias_free_relu_jacobian_maps_the_input_to_the_output():
    # positive homogeneity, phi(h) = phi'(h) h, gives J x^0 = x^L exactly: the outlier of chapter 6
    cfg = ResNetConfig(depth=12, width=40, act="relu", sigma_w=1.0, n_nets=2)
    jac = resnet_input_output_jacobian(cfg, generator=gen(2), device=CPU, dtype=F64)
    tr = propagate_resnet(cfg, generator=gen(2), device=CPU, dtype=F64)
    torch.testing.assert_close(torch.bmm(jac, tr.x0.unsqueeze(-1)).squeeze(-1), tr.x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid", "hard_tanh", "selu", "leaky_relu", "linear"])
def test_simulated_resnets_at_a_given_cumulant_follow_the_universal_law(act):
    a, depth, width = 0.5, 24, 160
    sw = rm.sigma_w_for_cumulant(act, a, depth)
    cfg = ResNetConfig(depth=depth, width=width, act=act, sigma_w=sw, n_nets=3)
    sv = resnet_jacobian_singular_values(cfg, generator=gen(7), device=CPU, dtype=F64)
    outlier = 1 if act in ("relu", "leaky_relu") else 0
    ks = rm.resnet_ks_distance(sv**2, a, exclude_top=outlier)
    assert ks < 0.04, (act, ks)
    tr = propagate_resnet(cfg, generator=gen(7), device=CPU, dtype=F64)
    assert float(tr.cumulant.mean()) == pytest.approx(a, rel=0.05)


def test_singular_values_are_deterministic_and_descending():
    cfg = ResNetConfig(depth=6, width=30, act="tanh", sigma_w=1.0, n_nets=2)
    s1 = resnet_jacobian_singular_values(cfg, generator=gen(3), device=CPU)
    s2 = resnet_jacobian_singular_values(cfg, generator=gen(3), device=CPU)
    assert torch.equal(s1, s2) and s1.dtype == F64 and s1.shape == (2, 30)
    assert bool((s1[:, :-1] >= s1[:, 1:]).all())


# --------------------------------------------------------------------------- #
# Effective cumulant and mean field.
# --------------------------------------------------------------------------- #
def test_effective_cumulant_closed_forms_for_piecewise_linear_activations():
    beta = activations.LEAKY_SLOPE
    for depth in (1, 10, 100):
        for sw in (0.3, 1.0, 2.5):
            assert rm.effective_cumulant("linear", sw, depth) == pytest.approx(sw**2, rel=1e-10)
            assert rm.effective_cumulant("relu", sw, depth) == pytest.approx(sw**2 / 2, rel=1e-10)
            assert rm.effective_cumulant("leaky_relu", sw, depth) == pytest.approx((1 + beta**2) * sw**2 / 2, rel=1e-10)


def test_hard_tanh_cumulant_uses_erf_and_odd_activations_have_no_mean():
    mfd = rm.resnet_mean_field("hard_tanh", 1.3, 20, sigma_b=0.2)
    c = mfd["c"]
    expected = 1.3**2 / 20 * torch.erf(1 / torch.sqrt(2 * mfd["q"]))
    torch.testing.assert_close(c, expected, rtol=1e-9, atol=0)
    assert float(mfd["m"].abs().max()) < 1e-12
    # sigmoid: the mean grows by about 1/2 per layer
    m = rm.resnet_mean_field("sigmoid", 1.0, 50)["m"]
    assert float(m[-1]) == pytest.approx(25, rel=0.02)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "selu", "relu", "hard_tanh"])
def test_mean_field_recursion_matches_wide_simulated_networks(act):
    depth, width, n = 20, 1000, 4
    sw = 1.5
    cfg = ResNetConfig(depth=depth, width=width, act=act, sigma_w=sw, sigma_b=0.1, n_nets=n)
    tr = propagate_resnet(cfg, generator=gen(5), device=CPU, dtype=F64)
    # each network's own input: p0 and m0 fluctuate at O(1/sqrt(N)) and the mean term amplifies m0
    mfd = rm.resnet_mean_field(act, sw, depth, 0.1, tr.x0.square().mean(-1), tr.x0.mean(-1))
    # one layer's q is a mean of N squares: relative sampling error sqrt(2/N) per network and layer
    tol = 5 * math.sqrt(2 / (width * n))
    for key in "qpc":
        rel = ((tr.__dict__[key] - mfd[key]).mean(1).abs() / mfd[key].mean(1).abs()).max()
        assert float(rel) < tol, (act, key, float(rel), tol)
    torch.testing.assert_close(tr.cumulant, mfd["c"].sum(0), rtol=0.03, atol=0)


@pytest.mark.parametrize("act", ["linear", "relu", "leaky_relu", "hard_tanh", "tanh", "sigmoid", "selu"])
def test_sigma_w_for_cumulant_inverts_effective_cumulant(act):
    for depth in (5, 50):
        targets = torch.tensor([0.01, 0.25, 1.0, 3.0], dtype=F64)
        sw = rm.sigma_w_for_cumulant(act, targets, depth)
        assert sw.shape == (4,)
        torch.testing.assert_close(rm.effective_cumulant(act, sw, depth), targets, rtol=1e-9, atol=0)
        assert bool((sw[1:] > sw[:-1]).all())
    assert rm.sigma_w_for_cumulant("relu", 0.5, 10) == pytest.approx(1.0, rel=1e-10)


def test_make_resnet_has_the_ensemble_initialization():
    cfg = ResNetConfig(depth=3, width=16, act="tanh", sigma_w=1.2, sigma_b=0.1)
    model = make_resnet(20, 10, cfg, generator=gen(0), device=CPU)
    out = model(torch.randn(5, 20))
    assert out.shape == (5, 10)
    g = gen(0)
    torch.randn(16, 20, generator=g)  # the embedding is drawn first
    ref = resnet_parameters(cfg, generator=g, device=CPU)
    torch.testing.assert_close(model[2].linear.weight, ref[0][0][0])


# --------------------------------------------------------------------------- #
# Errors.
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), True, "x", torch.tensor([0.5, -0.1])])
def test_bad_cumulant_raises(bad):
    for f in (rm.resnet_spectral_edges, rm.resnet_condition_number, rm.resnet_spectrum_mean,
              rm.resnet_spectrum_variance):
        with pytest.raises(ValueError, match="a"):
            f(bad)
    with pytest.raises(ValueError, match="effective cumulant"):
        rm.resnet_spectral_density(1.0, bad)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="x must be real"):
        rm.resnet_spectral_density(float("nan"), 0.5)
    with pytest.raises(ValueError, match="exclude_top"):
        rm.resnet_ks_distance(torch.ones(3, 4), 0.5, exclude_top=4)
    with pytest.raises(ValueError, match="depth"):
        rm.effective_cumulant("tanh", 1.0, 0)
    with pytest.raises(ValueError, match="sigma_w"):
        rm.effective_cumulant("tanh", -1.0, 5)
    with pytest.raises(ValueError, match="p0"):
        rm.effective_cumulant("tanh", 1.0, 5, p0=0.0)
    with pytest.raises(ValueError, match="m0"):
        rm.effective_cumulant("tanh", 1.0, 5, p0=1.0, m0=2.0)
    with pytest.raises(ValueError, match="act"):
        rm.effective_cumulant("nope", 1.0, 5)
    with pytest.raises(ValueError, match="target cumulant"):
        rm.sigma_w_for_cumulant("tanh", 0.0, 5)
    with pytest.raises(ValueError, match="depth"):
        ResNetConfig(depth=0, width=4, act="tanh", sigma_w=1.0)
    with pytest.raises(ValueError, match="sigma_w"):
        ResNetConfig(depth=2, width=4, act="tanh", sigma_w=-1.0)
    with pytest.raises(ValueError, match="init"):
        ResNetConfig(depth=2, width=4, act="tanh", sigma_w=1.0, init="he")
    cfg = ResNetConfig(depth=2, width=4, act="tanh", sigma_w=1.0, n_nets=2)
    with pytest.raises(ValueError, match="x must have shape"):
        resnet_input_output_jacobian(cfg, torch.ones(3))
    with pytest.raises(ValueError, match="config"):
        resnet_input_output_jacobian("cfg")


def test_old_residual_names_still_work_with_a_deprecation_warning():
    from sigprop import spectra

    with pytest.warns(DeprecationWarning, match="sigprop.resnet_theory.resnet_spectral_density"):
        assert spectra.resnet_spectral_density is rm.resnet_spectral_density
    with pytest.warns(DeprecationWarning, match="sigprop.ensemble.resnet.resnet_input_output_jacobian"):
        assert spectra.resnet_input_output_jacobian is resnet_input_output_jacobian
    with pytest.raises(AttributeError):
        spectra.no_such_name  # noqa: B018
    import importlib
    import sys

    sys.modules.pop("sigprop.resnet_meanfield", None)
    with pytest.warns(DeprecationWarning, match="sigprop.resnet_theory"):
        old = importlib.import_module("sigprop.resnet_meanfield")
    assert old.effective_cumulant is rm.effective_cumulant
