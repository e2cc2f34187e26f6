"""Properties of sigprop.spectra.

* The Jacobian is exactly the autograd Jacobian of the very networks that
  sigprop.ensemble samples (same generator state), for Gaussian and orthogonal weights.
* Linear networks with orthogonal weights are exact isometries.
* The mean squared singular value is chi_1^L and the variance of the squared singular
  values is chi_1^(2L) L (mu_2/mu_1^2 - 1 - s_1) (free probability), within a tolerance
  derived from the spread over independent networks.
* The theory functions reduce to their closed forms for linear and relu networks.
* Runs are deterministic; bad input raises ValueError.
"""
from __future__ import annotations

import math

import pytest
import torch

from sigprop import meanfield as mf
from sigprop import spectra
from sigprop.ensemble import MLPConfig, mlp_parameters

CPU = torch.device("cpu")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def forward(params, act, x):
    """A plain reference forward pass of one network (x: (n_in,)), for autograd."""
    for w, b in params:
        x = act.fn(w @ x + b)
    return x


@pytest.mark.parametrize("init", ["gaussian", "orthogonal"])
@pytest.mark.parametrize("act", ["tanh", "relu", "erf"])
def test_jacobian_equals_autograd_jacobian_of_the_ensemble_networks(init, act):
    cfg = MLPConfig(depth=4, width=7, act=act, sigma_w=1.4, sigma_b=0.3, init=init, n_nets=3)
    x = torch.randn(3, 5, generator=gen(9), dtype=torch.float64)
    jac = spectra.input_output_jacobian(cfg, x, generator=gen(1), device=CPU, dtype=torch.float64)
    # the same generator state gives the networks sigprop.ensemble simulates
    params = mlp_parameters(cfg, 5, generator=gen(1), device=CPU, dtype=torch.float64)
    a = cfg.activation
    assert jac.shape == (3, 7, 5)
    for k in range(3):
        net = [(w[k], b[k]) for w, b in params]
        ref = torch.func.jacrev(lambda v: forward(net, a, v))(x[k])
        torch.testing.assert_close(jac[k], ref, rtol=0, atol=1e-10)


def test_jacobian_accepts_explicit_parameters():
    cfg = MLPConfig(depth=3, width=6, act="tanh", sigma_w=1.2, sigma_b=0.1, n_nets=2)
    params = mlp_parameters(cfg, 6, generator=gen(3), device=CPU, dtype=torch.float64)
    x = torch.randn(6, generator=gen(4), dtype=torch.float64)
    a = spectra.input_output_jacobian(cfg, x, parameters=params, device=CPU, dtype=torch.float64)
    b = spectra.input_output_jacobian(cfg, x, generator=gen(3), device=CPU, dtype=torch.float64)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("depth", [1, 10])
def test_linear_orthogonal_network_is_an_exact_isometry(dtype, tol, depth):
    for sb, x in [(0.0, None), (0.5, torch.randn(64, generator=gen(1)))]:  # with a bias, q* is infinite: give x
        cfg = MLPConfig(depth=depth, width=64, act="linear", sigma_w=1.0, sigma_b=sb, init="orthogonal", n_nets=3)
        sv = spectra.jacobian_singular_values(cfg, x, generator=gen(0), device=CPU, dtype=dtype)
        assert sv.shape == (3, 64) and sv.dtype == torch.float64
        assert float((sv - 1).abs().max()) < tol


def test_singular_values_are_deterministic_given_the_generator():
    cfg = MLPConfig(depth=5, width=32, act="tanh", sigma_w=1.3, sigma_b=0.2, n_nets=2)
    a = spectra.jacobian_singular_values(cfg, generator=gen(5), device=CPU)
    b = spectra.jacobian_singular_values(cfg, generator=gen(5), device=CPU)
    c = spectra.jacobian_singular_values(cfg, generator=gen(6), device=CPU)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert bool((a[:, :-1] >= a[:, 1:]).all()), "singular values come in descending order"


def _moments(sv):
    lam = sv**2
    return lam.mean(-1), lam.var(-1, unbiased=False)


@pytest.mark.parametrize(
    "act,sw,sb,init",
    [
        ("tanh", 1.0, 0.3, "gaussian"),  # ordered
        ("tanh", None, 0.3, "gaussian"),  # edge of chaos
        ("tanh", 2.0, 0.3, "orthogonal"),  # chaotic
        ("relu", math.sqrt(2), 0.0, "gaussian"),
        ("erf", None, 0.05, "orthogonal"),
    ],
)
def test_mean_squared_singular_value_is_chi_1_to_the_depth(act, sw, sb, init):
    sw = mf.eoc_sigma_w(act, sb) if sw is None else sw
    depth, n = 6, 48
    cfg = MLPConfig(depth=depth, width=200, act=act, sigma_w=sw, sigma_b=sb, init=init, n_nets=n)
    m1, _ = _moments(spectra.jacobian_singular_values(cfg, generator=gen(11), device=CPU, dtype=torch.float64))
    theory = spectra.mean_squared_singular_value(act, sw, sb, depth)
    assert theory == pytest.approx(mf.chi_1(act, sw, sb) ** depth, rel=1e-12)
    stderr = float(m1.std()) / math.sqrt(n)
    assert abs(float(m1.mean()) - theory) < 4 * stderr, (float(m1.mean()), theory, stderr)


def test_mean_squared_singular_value_tells_ordered_from_chaotic():
    # the sampling tolerance above is not so loose that it accepts the wrong phase
    for sw, sign in [(1.0, -1), (2.0, 1)]:
        m = spectra.mean_squared_singular_value("tanh", sw, 0.3, 6)
        assert (m - 1) * sign > 0.5 * abs(m - 1) > 0


@pytest.mark.parametrize("init", ["gaussian", "orthogonal"])
@pytest.mark.parametrize("act,sb", [("tanh", 0.3), ("relu", 0.0), ("linear", 0.0), ("hard_tanh", 0.5)])
@pytest.mark.parametrize("depth", [2, 4, 8, 16])
def test_spectrum_variance_at_criticality_matches_free_probability(init, act, sb, depth):
    sw = mf.eoc_sigma_w(act, sb)
    n, width = 16, 256
    cfg = MLPConfig(depth=depth, width=width, act=act, sigma_w=sw, sigma_b=sb, init=init, n_nets=n)
    m1, var = _moments(spectra.jacobian_singular_values(cfg, generator=gen(depth), device=CPU))
    # at chi_1 = 1, Var = Var / mean^2; dividing each network by its own mean removes the
    # fluctuation of its overall gain, which compounds over layers at finite width
    spread = var / m1**2
    theory = spectra.jacobian_spectrum_variance(act, sw, sb, depth, init)
    stderr = float(spread.std()) / math.sqrt(n)
    if theory == 0:  # linear + orthogonal: an exact isometry
        assert float(var.max()) < 1e-8
        return
    # sampling error, plus a finite-width correction of relative order depth / width
    tol = 4 * stderr + theory * depth / width
    assert abs(float(spread.mean()) - theory) < tol, (float(spread.mean()), theory, stderr)


def test_spectrum_variance_off_criticality_scales_with_chi_1_to_twice_the_depth():
    act, sw, sb, depth, n = "tanh", 1.6, 0.3, 6, 48
    cfg = MLPConfig(depth=depth, width=200, act=act, sigma_w=sw, sigma_b=sb, init="orthogonal", n_nets=n)
    _, var = _moments(spectra.jacobian_singular_values(cfg, generator=gen(2), device=CPU, dtype=torch.float64))
    theory = spectra.jacobian_spectrum_variance(act, sw, sb, depth, "orthogonal")
    stderr = float(var.std()) / math.sqrt(n)
    assert abs(float(var.mean()) - theory) < 4 * stderr + 2.0 * theory * depth / 200
    # and the chi_1^(2L) factor matters here
    chi = mf.chi_1(act, sw, sb)
    assert abs(chi ** (2 * depth) - 1) > 1.0


def test_theory_reduces_to_closed_forms_for_linear_and_relu():
    for depth in (1, 5, 50):
        # linear: Fuss-Catalan variance L (Gaussian), exact isometry (orthogonal)
        assert spectra.jacobian_spectrum_variance("linear", 1.0, 0.0, depth, "gaussian") == pytest.approx(depth, rel=1e-10)
        assert spectra.jacobian_spectrum_variance("linear", 1.0, 0.0, depth, "orthogonal") == pytest.approx(0, abs=1e-10)
        # relu at criticality: D^2 ~ Bernoulli(1/2), variance 2L (Gaussian) and L (orthogonal)
        s2 = math.sqrt(2)
        assert spectra.jacobian_spectrum_variance("relu", s2, 0.0, depth, "gaussian") == pytest.approx(2 * depth, rel=1e-8)
        assert spectra.jacobian_spectrum_variance("relu", s2, 0.0, depth, "orthogonal") == pytest.approx(depth, rel=1e-8)
        # relu: chi_1 = sigma_w^2 / 2 at any finite q*
        assert spectra.mean_squared_singular_value("relu", 1.2, 0.5, depth) == pytest.approx(0.72**depth, rel=1e-10)


def test_theory_broadcasts_over_tensors():
    sw = torch.tensor([1.0, 1.5, 2.0], dtype=torch.float64)
    depth = torch.tensor([[1], [4]])
    m = spectra.mean_squared_singular_value("tanh", sw, 0.3, depth)
    v = spectra.jacobian_spectrum_variance("tanh", sw, 0.3, depth, "orthogonal")
    assert m.shape == v.shape == (2, 3)
    for i, d in enumerate((1, 4)):
        for j, s in enumerate(sw.tolist()):
            assert float(m[i, j]) == pytest.approx(spectra.mean_squared_singular_value("tanh", s, 0.3, d), rel=1e-12)
            assert float(v[i, j]) == pytest.approx(spectra.jacobian_spectrum_variance("tanh", s, 0.3, d, "orthogonal"), rel=1e-10)


def test_bad_input_raises_value_error_naming_the_argument():
    cfg = MLPConfig(depth=2, width=8, act="tanh", sigma_w=1.0, n_nets=2)
    with pytest.raises(ValueError, match="config"):
        spectra.jacobian_singular_values("tanh", device=CPU)
    with pytest.raises(ValueError, match="x must have shape"):
        spectra.jacobian_singular_values(cfg, torch.zeros(3, 8), device=CPU)
    with pytest.raises(ValueError, match="parameters"):
        spectra.jacobian_singular_values(cfg, torch.zeros(8), parameters=[(torch.zeros(2, 8, 8), torch.zeros(2, 8))], device=CPU)
    with pytest.raises(ValueError, match="x must be given"):  # relu above criticality: q* is infinite
        spectra.jacobian_singular_values(MLPConfig(depth=2, width=8, act="relu", sigma_w=2.0), device=CPU)
    with pytest.raises(ValueError, match="dtype"):
        spectra.jacobian_singular_values(cfg, device=CPU, dtype=torch.int64)
    with pytest.raises(ValueError, match="weights"):
        spectra.jacobian_spectrum_variance("tanh", 1.0, 0.1, 3, "uniform")
    with pytest.raises(ValueError, match="depth"):
        spectra.mean_squared_singular_value("tanh", 1.0, 0.1, -1)
    with pytest.raises(ValueError, match="depth"):
        spectra.jacobian_spectrum_variance("tanh", 1.0, 0.1, 2.5)
    with pytest.raises(ValueError, match="sigma_w"):
        spectra.mean_squared_singular_value("tanh", -1.0, 0.1, 3)
