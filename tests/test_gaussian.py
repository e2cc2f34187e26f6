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


def test_graded_panels_match_closed_forms_at_any_q():
    """With tail_from, panels widen geometrically beyond |u| > U: exact at q up to 1e10, where
    the uniform rule (capped at 8192 panels) has lost accuracy."""
    q = torch.logspace(-3, 10, 27, dtype=torch.float64)
    relu = activations.get("relu")
    got = gaussian.expect(lambda u: relu.fn(u) ** 2, q, breakpoints=relu.breakpoints, tail_from=relu.tail_from)
    assert torch.allclose(got, q / 2, rtol=1e-13, atol=0)
    erf = activations.get("erf")
    got = gaussian.expect(lambda u: erf.fn(u) ** 2, q, tail_from=erf.tail_from)
    exact = (2 / math.pi) * torch.asin(2 * q / (1 + 2 * q))
    assert torch.allclose(got, exact, rtol=1e-12, atol=0)
    uniform = gaussian.expect(lambda u: erf.fn(u) ** 2, q)
    assert float(((uniform - exact) / exact).abs().max()) > 1e-8  # what the graded rule fixes


@pytest.mark.parametrize("name", SMOOTH + KINKED)
def test_graded_panels_agree_with_uniform_panels_and_need_few_of_them(name):
    act = activations.get(name)
    q = torch.logspace(-3, 5, 60, dtype=torch.float64)

    def f(u, z):
        p, d = act.fn(u), act.deriv(u)
        return p * p, p * d * z, d * d

    uni = gaussian.expect(f, q, breakpoints=act.breakpoints, with_z=True)
    gra = gaussian.expect(f, q, breakpoints=act.breakpoints, with_z=True, tail_from=act.tail_from)
    for a, b in zip(uni, gra):
        # the uniform rule's own error reaches ~3e-9 (tanh'^2 at q ~ 1e4-1e6); the graded one is closer to exact
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-300)
    n_core, n_grad = gaussian._graded_plan(torch.tensor([100.0]), gaussian.DEFAULT_1D, act.tail_from)
    assert n_core + 2 * int(n_grad) <= 120  # instead of 8192 panels at q = 1e8


def test_graded_tanh_derivative_moment_against_mpmath():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 30
    for qv in (8.0, 5551.0, 1e6):
        s = mpmath.sqrt(qv)
        h = lambda z: mpmath.sech(s * z) ** 4 * mpmath.exp(-z * z / 2) / mpmath.sqrt(2 * mpmath.pi)
        ref = float(mpmath.quad(h, [-mpmath.inf] + [k / float(s) for k in range(-40, 41, 2)] + [mpmath.inf]))
        got = float(gaussian.expect(lambda u: (1 - torch.tanh(u) ** 2) ** 2, qv, tail_from=20.0))
        assert got == pytest.approx(ref, rel=1e-10)


def test_tail_from_must_be_a_positive_number():
    with pytest.raises(ValueError, match="tail_from"):
        gaussian.expect(torch.tanh, 1.0, tail_from=-1.0)
