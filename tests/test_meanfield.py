"""Mean-field maps against an independent scipy implementation and known closed forms."""
import math
import time
import warnings

import numpy as np
import pytest
import torch
from scipy import integrate, optimize

from sigprop import activations
from sigprop import _meanfield_solvers as solvers
from sigprop import meanfield as mf

NP_ACTS = {
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "erf": (lambda x: __import__("scipy.special").special.erf(x), lambda x: 2 / math.sqrt(math.pi) * np.exp(-x * x)),
}


def ref_gauss(f, q):
    g = lambda z: f(math.sqrt(q) * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return sum(integrate.quad(g, a, b, epsabs=0, epsrel=1e-13, limit=400)[0] for a, b in [(-14, 0), (0, 14)])


def ref_q_star(name, sw, sb):
    phi, _ = NP_ACTS[name]
    q = 1.0
    for _ in range(5000):
        qn = sw**2 * ref_gauss(lambda x: phi(x) ** 2, q) + sb**2
        if abs(qn - q) < 1e-14:
            break
        q = qn
    return qn


def ref_chi(name, sw, sb):
    _, dphi = NP_ACTS[name]
    return sw**2 * ref_gauss(lambda x: dphi(x) ** 2, ref_q_star(name, sw, sb))


@pytest.mark.parametrize("name", ["tanh", "erf"])
@pytest.mark.parametrize("sw,sb", [(1.5, 0.3), (2.5, 0.3), (1.2, 0.05), (3.0, 1.0), (0.8, 0.5)])
def test_q_star_and_chi_1_match_independent_quad_iteration(name, sw, sb):
    assert mf.q_star(name, sw, sb) == pytest.approx(ref_q_star(name, sw, sb), rel=1e-9)
    assert mf.chi_1(name, sw, sb) == pytest.approx(ref_chi(name, sw, sb), rel=1e-9)


def test_q_star_is_a_fixed_point_of_q_map():
    builtin = ["linear", "relu", "leaky_relu", "hard_tanh", "tanh", "erf", "sigmoid", "selu", "abs", "gelu", "swish"]
    for name in builtin:  # not activations.available(): other tests register their own
        sw, sb = 1.3, 0.4
        if name in ("relu", "leaky_relu", "linear", "abs", "selu"):
            sw = 0.9  # below their divergence threshold
        qs = mf.q_star(name, sw, sb)
        assert math.isfinite(qs), name
        assert mf.q_map(name, qs, sw, sb) == pytest.approx(qs, rel=1e-10), name


def test_relu_closed_forms():
    # V(q) = sigma_w^2 q / 2 + sigma_b^2, chi_1 = sigma_w^2 / 2 (Cho & Saul kernel)
    assert mf.q_map("relu", 3.0, 1.2, 0.5) == pytest.approx(1.44 * 1.5 + 0.25, rel=1e-13)
    assert mf.q_star("relu", 1.0, 0.5) == pytest.approx(0.25 / 0.5, rel=1e-10)
    assert mf.chi_1("relu", 1.0, 0.5) == pytest.approx(0.5, rel=1e-12)
    assert mf.q_star("relu", math.sqrt(2), 0.0) == pytest.approx(1.0)
    assert math.isinf(mf.q_star("relu", 1.5, 0.0))
    assert math.isnan(mf.chi_1("relu", 1.5, 0.1))
    # c-map of relu at sigma_b = 0: (sqrt(1-c^2) + (pi - arccos c) c) / pi
    c = torch.tensor([-0.5, 0.0, 0.4, 0.9], dtype=torch.float64)
    ref = (torch.sqrt(1 - c**2) + (math.pi - torch.arccos(c)) * c) / math.pi
    assert torch.allclose(mf.c_map("relu", c, 1.0, math.sqrt(2), 0.0), ref, atol=1e-12)


def test_c_map_fixes_one_at_q_star_and_slope_is_chi_1():
    for name, sw, sb in [("tanh", 1.5, 0.3), ("erf", 2.0, 0.1), ("sigmoid", 4.0, 0.5), ("gelu", 1.3, 0.2)]:
        assert mf.c_map(name, 1.0, None, sw, sb) == pytest.approx(1.0, abs=1e-9), name
        assert mf.c_map_slope(name, 1.0, None, sw, sb) == pytest.approx(mf.chi_1(name, sw, sb), rel=1e-7), name


def test_c_map_against_dblquad_tanh():
    sw, sb, q, c = 1.7, 0.3, 0.8, 0.35
    s = math.sqrt(1 - c * c)
    f = lambda z2, z1: math.tanh(math.sqrt(q) * z1) * math.tanh(math.sqrt(q) * (c * z1 + s * z2)) * math.exp(
        -(z1 * z1 + z2 * z2) / 2
    ) / (2 * math.pi)
    k = integrate.dblquad(f, -10, 10, -10, 10, epsabs=1e-13, epsrel=1e-12)[0]
    v = sw**2 * ref_gauss(lambda x: math.tanh(x) ** 2, q) + sb**2
    assert mf.c_map("tanh", c, q, sw, sb) == pytest.approx((sw**2 * k + sb**2) / v, abs=1e-9)


def test_q_star_is_inf_where_the_length_diverges():
    # linear and abs: V(q) = sigma_w^2 q + sigma_b^2 has no fixed point for sigma_w >= 1, sigma_b > 0
    assert math.isinf(mf.q_star("linear", 1.0, 0.4))
    assert math.isinf(mf.q_star("abs", 1.2, 0.0))
    assert mf.q_star("linear", 0.9, 0.4) == pytest.approx(0.16 / 0.19, rel=1e-10)


def test_c_map_is_nan_where_q_star_diverges():
    assert math.isnan(mf.c_map("gelu", 0.5, None, 1.6, 0.2))


def test_c_star_ordered_and_chaotic():
    assert mf.c_star("tanh", 1.0, 0.3) == 1.0  # ordered phase
    cs = mf.c_star("tanh", 2.5, 0.3)  # chaotic phase: a fixed point below 1
    assert 0 < cs < 1
    assert mf.c_map("tanh", cs, None, 2.5, 0.3) == pytest.approx(cs, abs=1e-10)
    assert mf.c_star("tanh", 2.5, 0.0) == pytest.approx(0.0, abs=1e-12)  # odd phi, no bias


def test_eoc_sigma_w_gives_chi_1_equal_one():
    sb = torch.tensor([0.05, 0.3, 1.0], dtype=torch.float64)
    sw = mf.eoc_sigma_w("tanh", sb)
    chi = mf.chi_1("tanh", sw, sb)
    assert torch.allclose(chi, torch.ones_like(chi), atol=1e-8)
    # independent bracketed root of chi_1(sigma_w) = 1 at sigma_b = 0.3
    root = optimize.brentq(lambda w: ref_chi("tanh", w, 0.3) - 1, 1.0, 2.0, xtol=1e-12)
    assert float(sw[1]) == pytest.approx(root, rel=1e-8)
    # sigma_b = 0: sigma_w = 1 / phi'(0)
    assert mf.eoc_sigma_w("tanh", 0.0) == pytest.approx(1.0, rel=1e-6)
    assert mf.eoc_sigma_w("erf", 0.0) == pytest.approx(math.sqrt(math.pi) / 2, rel=1e-6)


def test_relu_has_only_the_eoc_point_at_zero_bias():
    assert mf.eoc_sigma_w("relu", 0.0) == pytest.approx(math.sqrt(2), rel=1e-10)
    assert math.isnan(mf.eoc_sigma_w("relu", 0.1))


def test_depth_scales():
    # xi_c = -1/log(chi_1) in the ordered phase; diverges at the EOC
    sw, sb = 1.1, 0.3
    assert mf.xi_c("tanh", sw, sb) == pytest.approx(-1 / math.log(mf.chi_1("tanh", sw, sb)), rel=1e-10)
    sw_eoc = mf.eoc_sigma_w("tanh", 0.3)
    assert mf.xi_c("tanh", sw_eoc, 0.3) > 1e5
    # xi_q = -1/log V'(q*), with V' checked by a finite difference of the q-map
    qs = mf.q_star("tanh", 1.5, 0.3)
    h = 1e-5
    slope_fd = (mf.q_map("tanh", qs + h, 1.5, 0.3) - mf.q_map("tanh", qs - h, 1.5, 0.3)) / (2 * h)
    assert mf.xi_q("tanh", 1.5, 0.3) == pytest.approx(-1 / math.log(slope_fd), rel=1e-6)


def test_iterate_q_and_c_converge_to_fixed_points():
    q = mf.iterate_q("tanh", torch.tensor([0.1, 5.0]), 1.5, 0.3, 60)
    assert q.shape == (61, 2)
    assert torch.allclose(q[-1], torch.full((2,), mf.q_star("tanh", 1.5, 0.3), dtype=torch.float64), rtol=1e-8)
    c, qc = mf.iterate_c("tanh", 0.2, 1.0, 2.5, 0.3, 100)
    assert float(c[-1]) == pytest.approx(mf.c_star("tanh", 2.5, 0.3), abs=1e-6)


def test_phase_diagram_200x200_tanh_is_consistent_with_single_points():
    sw = torch.linspace(0.5, 4.0, 200, dtype=torch.float64)
    sb = torch.linspace(0.0, 4.0, 200, dtype=torch.float64)
    pd = mf.phase_diagram("tanh", sw, sb)
    assert pd.q_star.shape == (200, 200) and torch.isfinite(pd.chi_1).all()
    # spot check against the small-grid (exact, no table) path
    i, j = 123, 37
    assert float(pd.q_star[i, j]) == pytest.approx(mf.q_star("tanh", float(sw[i]), float(sb[j])), rel=1e-10)
    assert float(pd.chi_1[i, j]) == pytest.approx(mf.chi_1("tanh", float(sw[i]), float(sb[j])), rel=1e-10)


@pytest.mark.timing
def test_phase_diagram_200x200_tanh_within_its_time_budget():
    sw = torch.linspace(0.5, 4.0, 200, dtype=torch.float64)
    sb = torch.linspace(0.0, 4.0, 200, dtype=torch.float64)
    mf.phase_diagram("tanh", sw[:30], sb[:30])  # warm-up (imports, caches)
    t0 = time.perf_counter()
    mf.phase_diagram("tanh", sw, sb)
    elapsed = time.perf_counter() - t0
    assert elapsed < 4.0, f"200x200 grid took {elapsed:.2f} s (budget 2 s on an idle 2-core CPU)"


@pytest.mark.timing
def test_divergent_lengths_are_found_within_their_time_budget():
    sw = torch.linspace(0.1, 4.0, 60, dtype=torch.float64)
    sb = torch.linspace(0.05, 2.0, 60, dtype=torch.float64)
    t0 = time.perf_counter()
    mf.phase_diagram("relu", sw, sb)
    assert time.perf_counter() - t0 < 15.0
    t0 = time.perf_counter()
    mf.q_star("gelu", 2.5, 0.1)
    assert time.perf_counter() - t0 < 2.0


def test_broadcasting_returns_tensors_for_tensors_and_floats_for_scalars():
    assert isinstance(mf.q_star("tanh", 1.5, 0.3), float)
    out = mf.chi_1("tanh", torch.tensor([[1.0], [2.0]]), torch.tensor([0.1, 0.2, 0.3]))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: mf.q_map("tanh", -1.0, 1.0, 0.0), "q must be"),
        (lambda: mf.q_map("tanh", 1.0, -1.0, 0.0), "sigma_w"),
        (lambda: mf.q_star("tanh", 1.0, -0.1), "sigma_b"),
        (lambda: mf.q_star("tanh", 1.0, 0.1, q0=0.0), "q0"),
        (lambda: mf.c_map("tanh", 1.5, 1.0, 1.0, 0.0), "c must lie"),
        (lambda: mf.c_map_slope("tanh", -1.2, 1.0, 1.0, 0.0), "c must lie"),
        (lambda: mf.chi_1("nope", 1.0, 0.0), "act must be one of"),
        (lambda: mf.chi_1("tanh", 1.0, 0.0, q=-2.0), "q must be"),
        (lambda: mf.c_star("tanh", float("nan"), 0.0), "sigma_w"),
        (lambda: mf.chi_c("tanh", 1.0, -1.0), "sigma_b"),
        (lambda: mf.xi_q("tanh", -1.0, 0.0), "sigma_w"),
        (lambda: mf.xi_c("tanh", 1.0, -1.0), "sigma_b"),
        (lambda: mf.eoc_sigma_w("tanh", -0.1), "sigma_b"),
        (lambda: mf.iterate_q("tanh", 1.0, 1.0, 0.0, -1), "depth"),
        (lambda: mf.iterate_c("tanh", 2.0, 1.0, 1.0, 0.0, 3), "c0 must lie"),
        (lambda: mf.covariance_map("tanh", 1.0, 1.0, 2.0, 1.0, 0.0), "q12"),
        (lambda: mf.phase_diagram("tanh", [[1.0]], [0.0]), "1-D"),
        (lambda: mf.q_map_slope("tanh", -1.0, 1.0), "q must be"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_chi_c_and_xi_c_take_scalars_in_the_chaotic_phase():
    # scalars in, floats out, also where c* < 1 (a 0-d tensor once failed to index there)
    sw, sb = 2.5, 0.3
    grid = mf.chi_c("tanh", torch.tensor([sw, 1.0]), sb)
    assert mf.c_star("tanh", sw, sb) < 1
    assert mf.chi_c("tanh", sw, sb) == pytest.approx(float(grid[0]), rel=1e-12)
    assert mf.xi_c("tanh", sw, sb) == pytest.approx(-1 / math.log(float(grid[0])), rel=1e-12)
    assert isinstance(mf.xi_c("tanh", sw, sb), float)


def test_divergent_lengths_agree_with_the_relu_closed_form():
    """Unbounded activations with sigma_w^2 c_inf > 1 diverge; the tail test stops the climb
    early (it took ~26 s for this grid when lengths were followed up to 1e8; the budget is
    in test_divergent_lengths_are_found_within_their_time_budget), and the classification
    matches relu's closed form q* = sigma_b^2 / (1 - sigma_w^2/2)."""
    sw = torch.linspace(0.1, 4.0, 60, dtype=torch.float64)
    sb = torch.linspace(0.05, 2.0, 60, dtype=torch.float64)
    pd = mf.phase_diagram("relu", sw, sb)
    SW, SB = torch.meshgrid(sw, sb, indexing="ij")
    diverges = SW**2 > 2
    assert bool(torch.isinf(pd.q_star[diverges]).all())
    exact = SB[~diverges] ** 2 / (1 - SW[~diverges] ** 2 / 2)
    assert torch.allclose(pd.q_star[~diverges], exact, rtol=1e-8)
    # one point, exact path: also infinite
    assert math.isinf(mf.q_star("gelu", 2.5, 0.1))


@pytest.mark.parametrize("name", ["tanh", "relu", "gelu", "selu", "hard_tanh"])
def test_moment_table_matches_exact_quadrature(name):
    """The shared spline table behind large grids reproduces the exact Gaussian moments
    between its knots (E phi^2 to 1e-10, its slope and E phi'^2 to the quadrature's ~1e-9)."""
    a = activations.get(name)
    table = solvers._MomentTable(a, 1e-3, 200.0, None)
    q = torch.exp(torch.linspace(math.log(1.01e-3), math.log(199.0), 997, dtype=torch.float64))
    exact = solvers._moments_q(a, q)
    tol = (1e-10, 3e-9, 3e-9)
    for got, want, t in zip(table(q), exact, tol):
        assert torch.allclose(got, want, rtol=t, atol=0)
    e2, slope = table.length_moments(q)
    assert torch.equal(e2, table(q)[0]) and torch.equal(slope, table(q)[1])
    # outside the table: exact quadrature, not extrapolation
    far = torch.tensor([1e-5, 1e3], dtype=torch.float64)
    for got, want in zip(table(far), solvers._moments_q(a, far)):
        assert torch.allclose(got, want, rtol=1e-13)


def test_grid_newton_stays_inside_the_table_and_matches_the_exact_path(monkeypatch):
    """Near chi ~ 1 a climbing Newton step leaps far past the root (to q ~ 1e3 on this grid);
    steps are capped, so no point leaves the table (each would cost a quadrature), and the
    grid solution equals the pointwise exact solution."""
    sw = torch.linspace(0.5, 4.0, 40, dtype=torch.float64)
    sb = torch.linspace(0.05, 4.0, 40, dtype=torch.float64)
    SW, SB = torch.meshgrid(sw, sb, indexing="ij")
    table = solvers._MomentTable(activations.get("tanh"), 1e-3, 200.0, None)
    calls = []
    real = solvers._moments_q
    monkeypatch.setattr(solvers, "_moments_q", lambda a, q: calls.append(q.numel()) or real(a, q))
    q_grid = solvers._newton_q_star(activations.get("tanh"), SW, SB, torch.ones_like(SW), 1e-13, table.length_moments)
    assert calls == []
    monkeypatch.setattr(solvers, "_moments_q", real)
    q_exact = solvers._newton_q_star(
        activations.get("tanh"), SW, SB, torch.ones_like(SW), 1e-13, lambda q: real(activations.get("tanh"), q)[:2]
    )
    assert torch.allclose(q_grid, q_exact, rtol=1e-10)


def test_empty_grids_give_empty_results():
    empty = torch.tensor([], dtype=torch.float64)
    assert mf.q_star("tanh", empty, 0.1).shape == (0,)
    assert mf.chi_1("tanh", empty, 0.1).shape == (0,)
    assert mf.c_star("tanh", empty, 0.1).shape == (0,)
    pd = mf.phase_diagram("tanh", empty, [0.1, 0.2], correlations=True)
    assert pd.q_star.shape == pd.xi_c.shape == (0, 2)
    from sigprop.gaussian import expect

    e1, e2 = expect(lambda u: (u, u * u), torch.zeros(0, 3))
    assert e1.shape == e2.shape == (0, 3)


# ------------------------------------------------- one definition at q* = 0; stability of the EOC
@pytest.mark.parametrize("act, limit", [("relu", 0.5), ("abs", 1.0), ("tanh", 1.0), ("gelu", 0.25)])
def test_chi_1_at_q_star_zero_is_the_q_to_zero_limit_everywhere(act, limit):
    sw = 0.5 if act in ("relu", "abs", "gelu") else 0.9
    assert mf.q_star(act, sw, 0.0) == 0.0
    pd = mf.phase_diagram(act, [sw], [0.0], correlations=True)
    chi = mf.chi_1(act, sw, 0.0)
    assert chi == pytest.approx(sw**2 * limit, rel=1e-12)
    assert float(pd.chi_1) == pytest.approx(chi, rel=1e-12)
    assert mf.chi_1(act, sw, 0.0, q=0.0) == pytest.approx(chi, rel=1e-12)
    assert mf.chi_c(act, sw, 0.0) == pytest.approx(chi, rel=1e-12)
    xi = -1 / math.log(chi)
    assert mf.xi_c(act, sw, 0.0) == pytest.approx(xi, rel=1e-12)
    assert float(pd.xi_c) == pytest.approx(xi, rel=1e-12)
    assert mf.xi_q(act, sw, 0.0) == pytest.approx(xi, rel=1e-9)


@pytest.mark.parametrize("q0", [1e-12, 1e-3, 1.0, 1e6, 1e12])
def test_q_star_does_not_depend_on_the_scale_of_q0(q0):
    assert mf.q_star("tanh", 1.5, 0.1, q0=q0) == pytest.approx(0.8133223268568669, rel=1e-10)


def test_eoc_curve_says_whether_its_fixed_point_is_stable():
    curve = mf.eoc_curve("gelu", 0.1)
    sw, q = curve
    assert not curve.stable and curve.length_slope > 1
    assert curve.length_slope == pytest.approx(mf.q_map_slope("gelu", q, sw, 0.1), rel=1e-9)
    assert mf.eoc_curve("tanh", 0.3).stable and mf.eoc_curve("relu", 0.0).stable
    grid = mf.eoc_curve("gelu", torch.tensor([0.1, 1.0], dtype=torch.float64))
    assert grid.stable.tolist() == [False, True]


def test_eoc_sigma_w_never_returns_an_unstable_point_silently():
    with pytest.warns(RuntimeWarning, match=r"sigma_b = 0.1 .*unstable"):
        sw = mf.eoc_sigma_w("gelu", 0.1)
    assert sw == pytest.approx(mf.eoc_curve("gelu", 0.1)[0])
    assert math.isnan(mf.eoc_sigma_w("gelu", 0.1, unstable="nan"))
    out = mf.eoc_sigma_w("gelu", torch.tensor([0.1, 1.0], dtype=torch.float64), unstable="nan")
    assert math.isnan(out[0]) and math.isfinite(out[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mf.eoc_sigma_w("gelu", 0.1, unstable="keep")
        mf.eoc_sigma_w("tanh", 0.3)
    with pytest.raises(ValueError, match="unstable must be one of"):
        mf.eoc_sigma_w("tanh", 0.3, unstable="ignore")
