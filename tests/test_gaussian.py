"""Gaussian expectations against scipy.integrate.quad and closed-form kernels."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from sigprop import activations, gaussian

SMOOTH = ["tanh", "erf", "sigmoid", "gelu", "swish", "linear"]
KINKED = ["relu", "leaky_relu", "hard_tanh", "abs", "selu"]


def quad_expect(fn, q, breaks=()):
    """E fn(sqrt(q) z) by adaptive quadrature, split at the breakpoints (reference)."""
    g = lambda z: float(fn(torch.tensor(math.sqrt(q) * z, dtype=torch.float64))) * math.exp(-z * z / 2) / math.sqrt(
        2 * math.pi
    )
    edges = sorted({-14.0, 14.0, 0.0, *[b / math.sqrt(q) for b in breaks if abs(b / math.sqrt(q)) < 14]})
    return sum(integrate.quad(g, a, b, epsabs=0, epsrel=1e-13, limit=500)[0] for a, b in zip(edges[:-1], edges[1:]))


@pytest.mark.parametrize("name", SMOOTH + KINKED)
@pytest.mark.parametrize("q", [1e-3, 0.3, 1.0, 10.0, 100.0])
def test_expect_matches_quad_to_1e8(name, q):
    act = activations.get(name)
    for fn in (lambda u: act.fn(u) ** 2, lambda u: act.deriv(u) ** 2, act.fn):
        ref = quad_expect(fn, q, act.breakpoints)
        val = float(gaussian.expect(fn, q, breakpoints=act.breakpoints))
        assert abs(val - ref) <= 1e-8 * max(abs(ref), 1e-3), (name, q, val, ref)


def test_plain_hermite_fails_at_large_q_where_panels_do_not():
    f = lambda u: torch.tanh(u) ** 2
    ref = quad_expect(f, 100.0)
    herm = float(gaussian.hermite_expect(f, 100.0, n=200))
    panel = float(gaussian.expect(f, 100.0))
    assert abs(herm / ref - 1) > 1e-3
    assert abs(panel / ref - 1) < 1e-9


@pytest.mark.parametrize("name", ["relu", "erf", "abs", "leaky_relu", "linear"])
@pytest.mark.parametrize("q1,q2", [(1.0, 1.0), (0.3, 2.0), (50.0, 100.0)])
def test_expect2_matches_closed_form_kernels(name, q1, q2):
    act = activations.get(name)
    c = torch.tensor([-0.999, -0.5, 0.0, 0.3, 0.9, 0.999], dtype=torch.float64)
    q12 = c * math.sqrt(q1 * q2)
    val = gaussian.expect2(
        lambda a, b: act.fn(a) * act.fn(b), q1, q2, q12, breakpoints1=act.breakpoints, breakpoints2=act.breakpoints
    )
    ref = act.kernel(torch.tensor(q1, dtype=torch.float64), torch.tensor(q2, dtype=torch.float64), q12)
    assert torch.allclose(val, ref, rtol=1e-7, atol=1e-9 * math.sqrt(q1 * q2))


def test_expect2_tanh_matches_dblquad():
    q, c = 2.0, 0.6
    f = lambda z2, z1: math.tanh(math.sqrt(q) * z1) * math.tanh(math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2)) * (
        math.exp(-(z1 * z1 + z2 * z2) / 2) / (2 * math.pi)
    )
    ref = integrate.dblquad(f, -10, 10, -10, 10, epsabs=1e-13, epsrel=1e-12)[0]
    val = float(gaussian.expect2(lambda a, b: torch.tanh(a) * torch.tanh(b), q, q, c * q))
    assert abs(val - ref) < 1e-9


def test_expect_broadcasts_and_returns_tuples():
    q = torch.linspace(0.1, 5.0, 12, dtype=torch.float64).reshape(3, 4)
    a, b = gaussian.expect(lambda u: (u**2, u**4), q)
    assert a.shape == (3, 4)
    assert torch.allclose(a, q, rtol=1e-12)
    assert torch.allclose(b, 3 * q**2, rtol=1e-12)


def test_expect_q_zero_gives_function_at_zero():
    assert float(gaussian.expect(lambda u: torch.cos(u), 0.0)) == pytest.approx(1.0, abs=1e-14)


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="q must be"):
        gaussian.expect(torch.tanh, -1.0)
    with pytest.raises(ValueError, match="q must be"):
        gaussian.expect(torch.tanh, float("nan"))
    with pytest.raises(ValueError, match="q12"):
        gaussian.expect2(lambda a, b: a * b, 1.0, 1.0, 1.5)
    with pytest.raises(ValueError, match="q1"):
        gaussian.expect2(lambda a, b: a * b, -1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="n must be"):
        gaussian.hermite_expect(torch.tanh, 1.0, n=1000)
    with pytest.raises(ValueError, match="nodes"):
        gaussian.QuadratureRule(nodes=0)
