r"""Mean-field maps of deep random networks: length map, correlation map, edge of chaos.

The model (Poole et al. 2016; Schoenholz et al. 2017) is a fully connected net

.. math::

    h^l = W^l \phi(h^{l-1}) + b^l,\qquad W^l_{ij}\sim\mathcal N(0, \sigma_w^2/N),\quad b^l_i\sim\mathcal N(0,\sigma_b^2),

in the limit of infinite width, where the pre-activations of an input are
Gaussian with variance :math:`q^l` and two inputs have correlation :math:`c^l`:

.. math::

    q^{l+1} = \mathcal V(q^l) = \sigma_w^2\,\mathbb E\,\phi(\sqrt{q^l} z)^2 + \sigma_b^2,

    c^{l+1} = \mathcal C(c^l) = \frac{\sigma_w^2\,\mathbb E\,\phi(u_1)\phi(u_2) + \sigma_b^2}{\mathcal V(q)},\quad
    (u_1,u_2)\sim\mathcal N\!\big(0, q\,[\begin{smallmatrix}1 & c\\ c & 1\end{smallmatrix}]\big),

    \chi_1 = \mathcal C'(1) = \sigma_w^2\,\mathbb E\,\phi'(\sqrt{q^*} z)^2 .

Every function takes an activation (registry name or :class:`~sigprop.activations.Activation`)
and broadcastable parameters: scalars in, floats out; tensors in, tensors out
(float64, on the input's device).  A whole :math:`(\sigma_w,\sigma_b)` grid is one call.
Expectations come from :mod:`sigprop.gaussian` (relative error ~1e-11).

**Conventions.** :func:`q_star` is the fixed point reached by iterating the
length map from ``q0 = 1`` (``inf`` when :math:`q^l` diverges past ``1e8 * max(q0, 1)``, e.g. relu with
:math:`\sigma_w^2 > 2`; values below ``1e-12 * min(q0, 1)`` that keep decreasing are
reported as 0).  :func:`c_star` is the stable fixed point of :math:`\mathcal C`
in :math:`[0, 1]`.  Quantities that need :math:`q^*` are ``nan`` where it is infinite.

**At** :math:`q^* = 0` every quantity takes its limit :math:`q \to 0^+`, the value a network
approaches as its length decays: :math:`\mathbb E\,\phi'(\sqrt q z)^2 \to
\tfrac12\big(\phi'(0^+)^2 + \phi'(0^-)^2\big)`, which for a kinked activation is not
:math:`\phi'(0)^2` (relu: :math:`\chi_1 = \sigma_w^2/2`, not 0; abs: :math:`\sigma_w^2`). The same
value enters :func:`chi_1`, :func:`chi_c`, :func:`xi_q`, :func:`xi_c`, :func:`phase_diagram` and the
edge of chaos (one helper computes it).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from . import activations as _acts
from .activations import Activation
from ._checks import check_budget, check_int, real_tensor
from .gaussian import expect, expect2

Tensor = torch.Tensor
ActLike = Union[str, Activation]
Param = Union[float, int, Tensor, np.ndarray]

__all__ = [
    "q_map",
    "q_map_slope",
    "q_star",
    "c_map",
    "c_map_slope",
    "c_star",
    "chi_1",
    "chi_c",
    "xi_q",
    "xi_c",
    "eoc_sigma_w",
    "eoc_curve",
    "EOCCurve",
    "covariance_map",
    "iterate_q",
    "iterate_c",
    "LayerVariances",
    "layer_variances",
    "PhaseDiagram",
    "phase_diagram",
]

_MAX_ITER = 200
_Q_INF = 1e8  # lengths beyond this (times q0) count as divergent


# --------------------------------------------------------------------------- #
# argument handling
# --------------------------------------------------------------------------- #
def _device_of(*xs) -> Optional[torch.device]:
    for x in xs:
        if isinstance(x, Tensor):
            return x.device
    return None


def _params(**named: Param) -> Tuple[dict, bool]:
    """Convert to broadcast float64 tensors; remember whether all were scalars."""
    scalar = all(not isinstance(v, (Tensor, np.ndarray, list, tuple)) for v in named.values())
    dev = _device_of(*named.values())
    ts = {k: real_tensor(v, k, dev) for k, v in named.items()}
    bt = torch.broadcast_tensors(*ts.values())
    return dict(zip(ts.keys(), bt)), scalar


def _check_sigma(sw: Tensor, sb: Tensor) -> None:
    if not torch.isfinite(sw).all() or (sw < 0).any():
        raise ValueError("sigma_w must be finite and >= 0 (a standard deviation)")
    if not torch.isfinite(sb).all() or (sb < 0).any():
        raise ValueError("sigma_b must be finite and >= 0 (a standard deviation)")


def _check_q(q: Tensor, name: str = "q") -> None:
    if torch.isnan(q).any() or (q < 0).any():
        raise ValueError(f"{name} must be >= 0 (a variance); got min {float(q.min())}")


def _check_c(c: Tensor, name: str = "c") -> None:
    if torch.isnan(c).any() or (c.abs() > 1).any():
        raise ValueError(f"{name} must lie in [-1, 1] (a correlation); got range [{float(c.min())}, {float(c.max())}]")


def _out(t: Tensor, scalar: bool):
    return float(t) if scalar else t


def _d2_at_zero(a: Activation, like: Tensor) -> Tensor:
    r""":math:`\lim_{q\to 0^+} \mathbb E\,\phi'(\sqrt q z)^2 = \tfrac12(\phi'(0^+)^2 + \phi'(0^-)^2)`: the
    one definition of :math:`\mathbb E\,\phi'^2` at :math:`q^* = 0` (see the module's docstring)."""
    u = torch.tensor([1e-150, -1e-150], dtype=torch.float64, device=like.device)
    with torch.no_grad():
        d = a.deriv(u).to(torch.float64)
    return 0.5 * (d[0] ** 2 + d[1] ** 2)


# --------------------------------------------------------------------------- #
# Gaussian moments of an activation
# --------------------------------------------------------------------------- #
def _moments_q(act: Activation, q: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """E phi^2, E[phi phi' z]/sqrt(q) (= d/dq E phi^2 * 2... see below) and E phi'^2 at variance q."""
    qs = torch.clamp(q, min=1e-300)

    def f(u, z):
        p = act.fn(u)
        d = act.deriv(u)
        return p * p, p * d * z, d * d

    e2, epz, ed2 = expect(f, q, breakpoints=act.breakpoints, tail_from=act.tail_from, with_z=True)
    # d/dq E[phi(sqrt q z)^2] = E[phi phi' z] / sqrt(q)
    slope = epz / torch.sqrt(qs)
    return e2, slope, ed2


def q_map(act: ActLike, q: Param, sigma_w: Param, sigma_b: Param):
    r"""Length map :math:`\mathcal V(q) = \sigma_w^2\,\mathbb E\,\phi(\sqrt q z)^2 + \sigma_b^2`
    (Poole et al. 2016, eq. 3).

    Raises
    ------
    ValueError
        For ``q < 0``, negative sigmas or an unknown activation.
    """
    a = _acts.get(act)
    p, scalar = _params(q=q, sigma_w=sigma_w, sigma_b=sigma_b)
    _check_q(p["q"])
    _check_sigma(p["sigma_w"], p["sigma_b"])
    e2 = expect(lambda u: a.fn(u) ** 2, p["q"], breakpoints=a.breakpoints, tail_from=a.tail_from)
    return _out(p["sigma_w"] ** 2 * e2 + p["sigma_b"] ** 2, scalar)


def q_map_slope(act: ActLike, q: Param, sigma_w: Param, sigma_b: Param = 0.0):
    r"""Slope of the length map :math:`\mathcal V'(q) = \sigma_w^2\,\mathbb E[\phi\phi'(\sqrt q z)\,z]/\sqrt q
    = \chi_1 + \sigma_w^2\,\mathbb E[\phi\,\phi''(\sqrt q z)]` (Stein's lemma; Schoenholz et al. 2017, eq. 5).

    Raises
    ------
    ValueError
        For ``q < 0`` or negative sigmas.
    """
    a = _acts.get(act)
    p, scalar = _params(q=q, sigma_w=sigma_w, sigma_b=sigma_b)
    _check_q(p["q"])
    _check_sigma(p["sigma_w"], p["sigma_b"])
    _, slope, _ = _moments_q(a, p["q"])
    return _out(p["sigma_w"] ** 2 * slope, scalar)


class _MomentTable:
    """Cubic-spline tables of E phi^2, d/dq E phi^2 and E phi'^2 in log q on [q_lo, q_hi].

    The Gaussian moments depend on q alone, not on (sigma_w, sigma_b), so a large
    grid of fixed-point problems shares one table of 1-D integrals and its cost no
    longer grows with the number of grid points.  Points outside the table fall back
    to exact quadrature.  The interpolation error (measured against the exact path in
    ``tests/test_meanfield.py``) is below 1e-10 relative for E phi^2 and about 1e-9 for
    the slope and E phi'^2 with the default knots, which is the noise level of the
    quadrature itself where its panel count changes with q."""

    def __init__(self, a: Activation, q_lo: float, q_hi: float, device, knots_per_e: int = 160):
        from scipy.interpolate import CubicSpline

        self.a = a
        self.lo, self.hi = math.log(q_lo), math.log(q_hi)
        knots = max(64, int((self.hi - self.lo) * knots_per_e))
        grid = torch.linspace(self.lo, self.hi, knots, dtype=torch.float64)
        vals = _moments_q(a, torch.exp(grid))
        x = grid.numpy()
        self.h = float(x[1] - x[0])
        # Per interval, the cubic coefficients side by side, so one gather fetches all a point
        # needs: (knots - 1, 2, 4) for the length map's pair, (knots - 1, 4) for E phi'^2.
        c = np.stack([CubicSpline(x, y.numpy()).c for y in vals]).transpose(2, 0, 1)  # (knots-1, 3, 4)
        self.pair = torch.as_tensor(c[:, :2].copy(), dtype=torch.float64, device=device)
        self.d2 = torch.as_tensor(c[:, 2].copy(), dtype=torch.float64, device=device)

    def _locate(self, q: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        lq = torch.log(torch.clamp(q, min=1e-300))
        inside = (lq >= self.lo) & (lq <= self.hi)
        t = torch.clamp(lq, self.lo, self.hi) - self.lo
        i = torch.clamp((t / self.h).floor().long(), 0, self.d2.shape[0] - 1)
        return i, t - i.to(t.dtype) * self.h, inside  # (a long tensor times a float would be float32)

    @staticmethod
    def _horner(c: Tensor, dx: Tensor) -> Tensor:
        return ((c[..., 0] * dx + c[..., 1]) * dx + c[..., 2]) * dx + c[..., 3]

    def _exact_outside(self, q: Tensor, inside: Tensor, vals, which) -> None:
        if not bool(inside.all()):
            out = (~inside).nonzero().squeeze(-1)
            exact = _moments_q(self.a, q[out])
            for v, k in zip(vals, which):
                v[out] = exact[k]

    def length_moments(self, q: Tensor) -> Tuple[Tensor, Tensor]:
        """E phi^2 and its q-derivative: all the length map's Newton iteration needs."""
        i, dx, inside = self._locate(q)
        v = self._horner(self.pair[i], dx.unsqueeze(-1))
        vals = (v[:, 0].contiguous(), v[:, 1].contiguous())
        self._exact_outside(q, inside, vals, (0, 1))
        return vals

    def __call__(self, q: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        i, dx, inside = self._locate(q)
        v = self._horner(self.pair[i], dx.unsqueeze(-1))
        vals = (v[:, 0].contiguous(), v[:, 1].contiguous(), self._horner(self.d2[i], dx))
        self._exact_outside(q, inside, vals, (0, 1, 2))
        return vals


# Grids larger than this are solved on a shared table of Gaussian moments.
_TABLE_MIN_POINTS = 512


def _grid_moments(a: Activation, sw: Tensor, sb: Tensor, q0: Tensor):
    """q* and the moment function used to find it (exact, or a table for large grids)."""
    if sw.numel() < _TABLE_MIN_POINTS:
        moments = lambda q: _moments_q(a, q)
        return _newton_q_star(a, sw, sb, q0, 1e-13, lambda q: moments(q)[:2]), moments
    q_hi = max(float(q0.max()), float((sw**2).max()) * 10 + float((sb**2).max()) + 10, 10.0)
    # Every iterate stays above sigma_b^2 (V(q) >= sigma_b^2), so the table need not reach
    # further down; points outside it are integrated exactly anyway.
    q_lo = min(max(1e-6, 0.5 * float((sb**2).min())), 0.5 * float(q0.min()))
    q_top = min(q_hi, 1e4)
    c_inf = _tail_ratio(a)
    if math.isfinite(c_inf) and c_inf > 0 and float((sw**2).max()) * c_inf > 1:
        # some lengths may diverge: cover the climb up to the tail test of _newton_q_star
        q_top = max(q_top, 2.5 * _Q_TAIL * max(1.0, float(q0.max())))
    table = _MomentTable(a, max(q_lo, 1e-6), q_top, sw.device)
    return _newton_q_star(a, sw, sb, q0, 1e-13, table.length_moments), table


def _solve_q_star(a: Activation, sw: Tensor, sb: Tensor, q0: Tensor, tol: float = 1e-13) -> Tensor:
    """Fixed point of the length map reached from q0 (see :func:`q_star`)."""
    return _grid_moments(a, sw, sb, q0)[0]


# Climbing lengths beyond this (times max(1, q0)) are tested for divergence by the tail test.
_Q_TAIL = 1e4
# While climbing with no bracket yet, a Newton step may go at most this factor beyond
# max(V(q), 2q): near a tangency (V'(q) close to 1) Newton leaps far past the root.
_CLIMB_CAP = 2.0


def _tail_ratio(a: Activation) -> float:
    r""":math:`c_\infty = \lim_{q\to\infty} \mathbb E\,\phi(\sqrt q z)^2/q = (\alpha_+^2 + \alpha_-^2)/2` when
    :math:`\phi` has linear tails :math:`\phi(u) \approx \alpha_\pm u` (relu, gelu, swish, selu, linear, abs, ...);
    0 for bounded activations; ``nan`` when the tails are neither (then no tail test is made).
    Read from :math:`\phi(u)/u` at :math:`u = \pm 10^6` and :math:`\pm 10^7`, which must agree."""
    u = torch.tensor([1e6, 1e7, -1e6, -1e7], dtype=torch.float64)
    with torch.no_grad():
        r = (a.fn(u) / u).tolist()
    if not all(math.isfinite(v) for v in r):
        return math.nan
    if abs(r[0] - r[1]) > 1e-4 * (1 + abs(r[0])) or abs(r[2] - r[3]) > 1e-4 * (1 + abs(r[2])):
        return math.nan
    return 0.5 * (r[1] ** 2 + r[3] ** 2)


def _newton_q_star(a: Activation, sw: Tensor, sb: Tensor, q0: Tensor, tol: float, length_moments) -> Tensor:
    """Safeguarded Newton on g(q) = V(q) - q from q0, staying on the side the
    length-map iteration approaches from (V is increasing, so the iteration is
    monotone and converges to the first fixed point in the direction of g(q0)).

    ``length_moments(q)`` returns E phi(sqrt q z)^2 and its q-derivative.  The unfinished
    points are kept as one (9, k) block, compacted in a single gather whenever some finish."""
    shape = sw.shape
    sw2, sb2 = (sw**2).reshape(-1), (sb**2).reshape(-1)
    q = q0.expand(shape).reshape(-1).to(sw2)
    n = q.numel()
    out = torch.full_like(q, float("nan"))
    if n == 0:
        return out.reshape(shape)
    q0f = q0.reshape(-1)
    if bool((q0f == q0f[0]).all()):  # one starting length (the usual q0 = 1): its moments once
        e2, slope = (m.expand(n) for m in length_moments(q0f[:1].to(q)))
    else:
        e2, slope = length_moments(q)
    d = torch.sign(sw2 * e2 + sb2 - q)
    c_inf = _tail_ratio(a)
    tail_test = math.isfinite(c_inf) and c_inf > 0
    tail_div = (sw2 * c_inf > 1 + 1e-6).to(q) if tail_test else torch.zeros_like(q)
    # Rows: q, sigma_w^2, sigma_b^2, direction, q0, bracket end behind (lo), bracket end ahead (hi),
    # tail-divergence flag, index into the grid.  Descending lengths never pass below sigma_b^2
    # (V(q) >= sigma_b^2): that floor closes the bracket ahead, so no Newton step overshoots it.
    hi = torch.where(d > 0, torch.full_like(q, math.inf), sb2)
    state = torch.stack([q, sw2, sb2, d, q, q, hi, tail_div, torch.arange(n, device=q.device).to(q)])
    first = True
    for _ in range(_MAX_ITER):
        if state.shape[1] == 0:
            break
        qa, w2, b2, d, s0, lo, hi, td, idx = state.unbind(0)
        if not first:
            e2, slope = length_moments(qa)
        first = False
        v = w2 * e2 + b2
        g = v - qa
        dg = w2 * slope - 1
        done = (g.abs() <= tol * torch.clamp(qa, min=1e-300)) | (d == 0)
        # relative to q0, but never above 1e-12 nor below 1e8: a large q0 must not call a finite
        # q* zero (tanh from q0 = 1e12), nor a tiny q0 call one infinite
        gone_zero = (d < 0) & (qa <= 1e-12 * torch.clamp(s0, max=1.0))
        gone_inf = (d > 0) & (qa >= _Q_INF * torch.clamp(s0, min=1.0))
        if tail_test:
            # Linear tails and sigma_w^2 c_inf > 1: once the climbing length is large and the map
            # still grows faster than the identity there (sigma_w^2 E phi^2 / q > 1), V(q) - q only
            # grows further: the length diverges. Saves climbing to _Q_INF with ever finer quadrature.
            big = qa >= _Q_TAIL * torch.clamp(s0, min=1.0)
            gone_inf |= (d > 0) & big & (td > 0) & (w2 * e2 > qa * (1 + 1e-9))
        done &= ~gone_inf  # beyond _Q_INF the quadrature is not trusted to certify a root
        before = g * d > 0
        lo = torch.where(before, qa, lo)
        hi = torch.where(~before & ~done, qa, hi)
        newton = qa - g / torch.where(dg != 0, dg, torch.full_like(dg, -1.0))
        finite_hi = torch.isfinite(hi)
        climbing_free = (d > 0) & ~finite_hi
        newton = torch.where(climbing_free, torch.minimum(newton, _CLIMB_CAP * torch.maximum(v, 2 * qa)), newton)
        # Inside the bracket (lo, hi) in the direction of travel?
        inside = ((newton - lo) * d > 0) & ((hi - newton) * d > 0)
        # otherwise bisect, or with no bracket yet take at least the plain iteration, doubled when
        # climbing (a plain iteration from the 'before' side is always safe)
        fallback = torch.where(finite_hi, 0.5 * (lo + hi), torch.where(d > 0, torch.maximum(v, 2 * qa), v))
        new_q = torch.clamp(torch.where(inside, newton, fallback), min=0.0)
        finished = done | gone_zero | gone_inf
        any_finished = bool(finished.any())
        if any_finished:
            val = torch.where(done, qa, torch.where(gone_zero, torch.zeros_like(qa), torch.full_like(qa, math.inf)))
            f = finished.nonzero().squeeze(-1)
            out[idx[f].long()] = val[f]
        state[0].copy_(new_q)  # (qa is a view of this row: read above, overwritten only now)
        state[5].copy_(lo)
        state[6].copy_(hi)
        if any_finished:
            state = state[:, (~finished).nonzero().squeeze(-1)]
    if state.shape[1]:
        out[state[8].long()] = state[0]  # not converged within _MAX_ITER: best iterate
    return out.reshape(shape)


def q_star(act: ActLike, sigma_w: Param, sigma_b: Param, q0: Param = 1.0):
    r"""Fixed point :math:`q^* = \mathcal V(q^*)` reached by iterating the length map from ``q0``
    (Poole et al. 2016).

    Solved by safeguarded Newton iterations that stay on the side from which
    the (monotone) iteration approaches, so the root found is the one the
    network actually converges to.  Returns ``inf`` when :math:`q^l` diverges
    (e.g. relu with :math:`\sigma_w^2 > 2`: for activations with linear tails
    :math:`\phi(u) \approx \alpha_\pm u`, a climbing length beyond :math:`10^4 \max(1, q_0)`
    with :math:`\sigma_w^2 (\alpha_+^2 + \alpha_-^2)/2 > 1` and :math:`\mathcal V(q) > q` is declared
    divergent; otherwise lengths are followed up to :math:`10^8 \max(q_0, 1)`) and 0 when it decays to
    zero (below :math:`10^{-12}\min(q_0, 1)`; e.g. tanh with :math:`\sigma_b = 0,\ \sigma_w \le 1`).

    Raises
    ------
    ValueError
        For negative sigmas, ``q0 <= 0`` or an unknown activation.
    """
    a = _acts.get(act)
    p, scalar = _params(sigma_w=sigma_w, sigma_b=sigma_b, q0=q0)
    _check_sigma(p["sigma_w"], p["sigma_b"])
    if (p["q0"] <= 0).any() or not torch.isfinite(p["q0"]).all():
        raise ValueError("q0 must be finite and > 0")
    return _out(_solve_q_star(a, p["sigma_w"], p["sigma_b"], p["q0"]), scalar)


def chi_1(act: ActLike, sigma_w: Param, sigma_b: Param, q: Optional[Param] = None):
    r""":math:`\chi_1 = \sigma_w^2\,\mathbb E\,\phi'(\sqrt{q^*} z)^2`, the slope of the correlation map at
    :math:`c = 1` (Poole et al. 2016, eq. 7; Schoenholz et al. 2017).  :math:`\chi_1 < 1`: ordered phase,
    :math:`\chi_1 > 1`: chaotic phase, :math:`\chi_1 = 1`: edge of chaos.  It is also the mean squared
    singular value of one layer's Jacobian, so :math:`\chi_1^L` is that of an L-layer net.

    ``q`` defaults to :func:`q_star`; ``nan`` where :math:`q^*` is infinite. At ``q = 0`` the value is
    the limit :math:`q \to 0^+`, :math:`\sigma_w^2 \tfrac12(\phi'(0^+)^2 + \phi'(0^-)^2)` (relu:
    :math:`\sigma_w^2/2`), as in :func:`phase_diagram` and :func:`xi_c`.

    Raises
    ------
    ValueError
        For negative sigmas or ``q < 0``.
    """
    a = _acts.get(act)
    if q is None:
        p, scalar = _params(sigma_w=sigma_w, sigma_b=sigma_b)
        _check_sigma(p["sigma_w"], p["sigma_b"])
        qv = _solve_q_star(a, p["sigma_w"], p["sigma_b"], torch.ones_like(p["sigma_w"]))
    else:
        p, scalar = _params(sigma_w=sigma_w, sigma_b=sigma_b, q=q)
        _check_sigma(p["sigma_w"], p["sigma_b"])
        _check_q(p["q"])
        qv = p["q"]
    finite = torch.isfinite(qv)
    ed2 = expect(lambda u: a.deriv(u) ** 2, torch.where(finite, qv, 1.0), breakpoints=a.breakpoints, tail_from=a.tail_from)
    if bool((qv == 0).any()):
        ed2 = torch.where(qv == 0, _d2_at_zero(a, ed2), ed2)
    res = torch.where(finite, p["sigma_w"] ** 2 * ed2, torch.full_like(ed2, float("nan")))
    return _out(res, scalar)


def covariance_map(act: ActLike, q1: Param, q2: Param, q12: Param, sigma_w: Param, sigma_b: Param):
    r"""One layer of the two-input kernel recursion (Poole et al. 2016, eq. 5):

    .. math::

        q_{ab}^{l+1} = \sigma_w^2\,\mathbb E\,\phi(u_a)\phi(u_b) + \sigma_b^2,\qquad
        (u_a, u_b) \sim \mathcal N(0, [\begin{smallmatrix} q_{1} & q_{12}\\ q_{12} & q_2\end{smallmatrix}]).

    Returns ``(q1', q2', q12')``.  Used for inputs of unequal length (real data).

    Raises
    ------
    ValueError
        For negative variances, a covariance violating Cauchy-Schwarz, or negative sigmas.
    """
    a = _acts.get(act)
    p, scalar = _params(q1=q1, q2=q2, q12=q12, sigma_w=sigma_w, sigma_b=sigma_b)
    _check_q(p["q1"], "q1")
    _check_q(p["q2"], "q2")
    _check_sigma(p["sigma_w"], p["sigma_b"])
    if (p["q12"].abs() > torch.sqrt(p["q1"] * p["q2"]) * (1 + 1e-12)).any():
        raise ValueError("q12 must satisfy |q12| <= sqrt(q1 * q2)")
    w2, b2 = p["sigma_w"] ** 2, p["sigma_b"] ** 2
    k12 = _kernel(a, p["q1"], p["q2"], p["q12"])
    n1 = w2 * expect(lambda u: a.fn(u) ** 2, p["q1"], breakpoints=a.breakpoints, tail_from=a.tail_from) + b2
    n2 = w2 * expect(lambda u: a.fn(u) ** 2, p["q2"], breakpoints=a.breakpoints, tail_from=a.tail_from) + b2
    res = (n1, n2, w2 * k12 + b2)
    return tuple(_out(r, scalar) for r in res)


def _kernel(a: Activation, q1: Tensor, q2: Tensor, q12: Tensor) -> Tensor:
    if a.kernel is not None:
        return a.kernel(q1, q2, q12)
    return expect2(
        lambda u1, u2: a.fn(u1) * a.fn(u2), q1, q2, q12, breakpoints1=a.breakpoints, breakpoints2=a.breakpoints
    )


def _c_map_and_slope(
    a: Activation, c: Tensor, q: Tensor, w2: Tensor, b2: Tensor, vq: Optional[Tensor] = None
) -> Tuple[Tensor, Tensor]:
    """C(c) and C'(c) at length q; ``vq`` = V(q) when known (q itself at q = q*)."""
    cov = c * q
    bp = dict(breakpoints1=a.breakpoints, breakpoints2=a.breakpoints)
    if a.kernel is not None:  # closed-form kernel: only E[phi'(u1) phi'(u2)] needs quadrature
        num = a.kernel(q, q, cov)
        dd = expect2(lambda u1, u2: a.deriv(u1) * a.deriv(u2), q, q, cov, **bp)
    else:
        num, dd = expect2(lambda u1, u2: (a.fn(u1) * a.fn(u2), a.deriv(u1) * a.deriv(u2)), q, q, cov, **bp)
    if vq is None:
        vq = w2 * expect(lambda u: a.fn(u) ** 2, q, breakpoints=a.breakpoints, tail_from=a.tail_from) + b2
    # d/dc of E[phi(u1)phi(u2)] at fixed q is q E[phi'(u1)phi'(u2)] (Price's theorem).
    return (w2 * num + b2) / vq, w2 * q * dd / vq


def _c_map_at(act: ActLike, c: Param, q: Optional[Param], sigma_w: Param, sigma_b: Param):
    """Checked arguments of :func:`c_map` / :func:`c_map_slope`, then the map and its slope at
    ``q`` (``q*`` when ``q`` is None); returns (map, slope, finite-q mask, scalar flag)."""
    a = _acts.get(act)
    if q is None:
        p, scalar = _params(c=c, sigma_w=sigma_w, sigma_b=sigma_b)
        _check_sigma(p["sigma_w"], p["sigma_b"])
        qv = _solve_q_star(a, p["sigma_w"], p["sigma_b"], torch.ones_like(p["c"]))
    else:
        p, scalar = _params(c=c, q=q, sigma_w=sigma_w, sigma_b=sigma_b)
        _check_q(p["q"])
        _check_sigma(p["sigma_w"], p["sigma_b"])
        qv = p["q"]
    _check_c(p["c"])
    fin = torch.isfinite(qv)
    res, slope = _c_map_and_slope(a, p["c"], torch.where(fin, qv, 1.0), p["sigma_w"] ** 2, p["sigma_b"] ** 2)
    return res, slope, fin, scalar


def c_map(act: ActLike, c: Param, q: Optional[Param], sigma_w: Param, sigma_b: Param):
    r"""Correlation map :math:`\mathcal C(c) = (\sigma_w^2\,\mathbb E\,\phi(u_1)\phi(u_2) + \sigma_b^2)/\mathcal V(q)`
    for two inputs of equal length ``q`` and correlation ``c`` (Poole et al. 2016, eq. 6).
    ``q=None`` uses :func:`q_star` (Poole's :math:`\mathcal C` at the fixed point); ``nan`` where
    :math:`q^*` is infinite.

    Raises
    ------
    ValueError
        For ``|c| > 1``, ``q < 0`` or negative sigmas.
    """
    res, _, fin, scalar = _c_map_at(act, c, q, sigma_w, sigma_b)
    return _out(torch.where(fin, res, torch.full_like(res, float("nan"))), scalar)


def c_map_slope(act: ActLike, c: Param, q: Optional[Param], sigma_w: Param, sigma_b: Param):
    r"""Slope :math:`\mathcal C'(c) = \sigma_w^2 q\,\mathbb E[\phi'(u_1)\phi'(u_2)]/\mathcal V(q)`
    (Price's theorem); at :math:`c=1,\ q=q^*` it equals :math:`\chi_1`.

    Raises
    ------
    ValueError
        For ``|c| > 1``, ``q < 0`` or negative sigmas.
    """
    _, slope, fin, scalar = _c_map_at(act, c, q, sigma_w, sigma_b)
    return _out(torch.where(fin, slope, torch.full_like(slope, float("nan"))), scalar)


def _solve_c_star(a: Activation, sw: Tensor, sb: Tensor, qs: Tensor, chi: Tensor) -> Tuple[Tensor, Tensor]:
    """c* (see :func:`c_star`) and chi_c = C'(c*) where c* < 1 was found by Newton (the slope of
    the last evaluation, at c* itself); elsewhere chi_c is ``nan`` (see :func:`_chi_c_at`)."""
    shape = sw.shape
    w2, b2, q, chi = (sw**2).reshape(-1), (sb**2).reshape(-1), qs.reshape(-1), chi.reshape(-1)
    out = torch.ones_like(q)
    out[~torch.isfinite(q)] = float("nan")
    chi_c = torch.full_like(q, float("nan"))
    # Ordered phase or EOC: c = 1 is the stable fixed point.
    active = torch.nonzero(torch.isfinite(q) & (chi > 1 + 1e-12)).squeeze(-1)
    if active.numel() == 0:
        return out.reshape(shape), chi_c.reshape(shape)
    lo = torch.zeros(active.numel(), dtype=q.dtype, device=q.device)
    hi = torch.full_like(lo, 1.0)
    c = lo.clone()
    idx = active
    for _ in range(_MAX_ITER):
        if idx.numel() == 0:
            break
        sel = torch.searchsorted(active, idx)
        # at q = q*, V(q) = q: no quadrature for the denominator
        qi = q[idx]
        cm, slope = _c_map_and_slope(a, c[sel], qi, w2[idx], b2[idx], vq=qi if bool((qi > 0).all()) else None)
        g = cm - c[sel]
        done = g.abs() <= 1e-13
        lo_s = torch.where(g > 0, c[sel], lo[sel])
        hi_s = torch.where(g < 0, c[sel], hi[sel])
        newton = c[sel] - g / torch.where(slope - 1 != 0, slope - 1, torch.full_like(slope, -1.0))
        inside = (newton > lo_s) & (newton < hi_s)
        newc = torch.where(inside, newton, 0.5 * (lo_s + hi_s))
        done |= (hi_s - lo_s) < 1e-14
        out[idx[done]] = c[sel][done]
        chi_c[idx[done]] = slope[done]
        lo[sel], hi[sel] = lo_s, hi_s
        c[sel] = torch.where(done, c[sel], newc)
        idx = idx[~done]
    if idx.numel():
        out[idx] = c[torch.searchsorted(active, idx)]
    return out.reshape(shape), chi_c.reshape(shape)


def c_star(act: ActLike, sigma_w: Param, sigma_b: Param):
    r"""Stable fixed point :math:`c^*` of the correlation map at :math:`q^*` (Poole et al. 2016).

    In the ordered phase (:math:`\chi_1 \le 1`) :math:`c^* = 1`: all inputs become
    aligned.  In the chaotic phase :math:`c^* < 1` is found by safeguarded Newton
    from :math:`c = 0` (where :math:`\mathcal C(0) \ge 0`).  ``nan`` where
    :math:`q^*` is infinite.

    Raises
    ------
    ValueError
        For negative sigmas or an unknown activation.
    """
    a = _acts.get(act)
    p, scalar = _params(sigma_w=sigma_w, sigma_b=sigma_b)
    _check_sigma(p["sigma_w"], p["sigma_b"])
    qs = _solve_q_star(a, p["sigma_w"], p["sigma_b"], torch.ones_like(p["sigma_w"]))
    chi = chi_1(a, p["sigma_w"], p["sigma_b"], q=torch.where(torch.isfinite(qs), qs, 1.0))
    return _out(_solve_c_star(a, p["sigma_w"], p["sigma_b"], qs, chi)[0], scalar)


def chi_c(act: ActLike, sigma_w: Param, sigma_b: Param):
    r""":math:`\chi_c = \mathcal C'(c^*) = \sigma_w^2\,\mathbb E[\phi'(u_1)\phi'(u_2)]` at the fixed point
    :math:`(q^*, c^*)` (Schoenholz et al. 2017, eq. 9); equals :math:`\chi_1` when :math:`c^* = 1`.

    Raises
    ------
    ValueError
        For negative sigmas.
    """
    a = _acts.get(act)
    p, scalar = _params(sigma_w=sigma_w, sigma_b=sigma_b)
    _check_sigma(p["sigma_w"], p["sigma_b"])
    sw, sb = p["sigma_w"], p["sigma_b"]
    qs = _solve_q_star(a, sw, sb, torch.ones_like(sw))
    fin = torch.isfinite(qs)
    chi = chi_1(a, sw, sb, q=torch.where(fin, qs, 1.0))
    cs, known = _solve_c_star(a, sw, sb, qs, chi)
    return _out(_chi_c_at(a, sw, sb, qs, cs, chi, known), scalar)


def _chi_c_at(a: Activation, sw: Tensor, sb: Tensor, qs: Tensor, cs: Tensor, chi: Tensor,
              known: Optional[Tensor] = None) -> Tensor:
    """chi_c = C'(c*): chi_1 where c* = 1, else the slope at c* (taken from ``known`` where it
    is not nan: the c* solver's last evaluation)."""
    fin = torch.isfinite(qs)
    res = chi.clone()
    inner = fin & (cs < 1)  # a boolean mask also indexes 0-d tensors (scalar arguments)
    if known is not None:
        have = inner & ~torch.isnan(known)
        res = torch.where(have, known, res)
        inner = inner & ~have
    if bool(inner.any()):
        _, slope = _c_map_and_slope(a, cs[inner], qs[inner], sw[inner] ** 2, sb[inner] ** 2)
        res[inner] = slope
    return torch.where(fin, res, torch.full_like(res, float("nan")))


def _depth_scale(rate: Tensor) -> Tensor:
    # xi = -1 / log(rate), inf at rate = 1, nan for rate <= 0 or nan
    with torch.no_grad():
        lg = torch.log(rate)
        xi = torch.where(lg != 0, -1.0 / lg, torch.full_like(lg, math.inf))
        return torch.where(rate > 0, xi.abs(), torch.full_like(xi, float("nan")))


def xi_q(act: ActLike, sigma_w: Param, sigma_b: Param):
    r"""Depth scale of the length: :math:`\xi_q^{-1} = -\log\big(\chi_1 + \sigma_w^2\,\mathbb E\,\phi''\phi(\sqrt{q^*}z)\big)
    = -\log \mathcal V'(q^*)`, so that :math:`|q^l - q^*| \sim e^{-l/\xi_q}`
    (Schoenholz et al. 2017, eq. 5; the second form by Stein's lemma, no :math:`\phi''` needed).
    At :math:`q^* = 0`, :math:`\mathcal V'(0^+) = \chi_1` in its :math:`q \to 0^+` limit (module docstring).

    Raises
    ------
    ValueError
        For negative sigmas.
    """
    a = _acts.get(act)
    p, scalar = _params(sigma_w=sigma_w, sigma_b=sigma_b)
    _check_sigma(p["sigma_w"], p["sigma_b"])
    qs = _solve_q_star(a, p["sigma_w"], p["sigma_b"], torch.ones_like(p["sigma_w"]))
    fin = torch.isfinite(qs) & (qs > 0)
    _, slope, ed2 = _moments_q(a, torch.where(fin, qs, 1.0))
    # at q* = 0 the slope is its q -> 0+ limit, chi_1 = sigma_w^2 (phi'(0+)^2 + phi'(0-)^2) / 2
    rate = torch.where(fin, p["sigma_w"] ** 2 * slope, p["sigma_w"] ** 2 * ed2)
    rate = torch.where(torch.isfinite(qs), rate, torch.full_like(rate, float("nan")))
    if not (qs == 0).any():
        pass
    else:
        rate = torch.where(qs == 0, p["sigma_w"] ** 2 * _d2_at_zero(a, qs), rate)
    return _out(_depth_scale(rate), scalar)


def xi_c(act: ActLike, sigma_w: Param, sigma_b: Param):
    r"""Depth scale of correlations :math:`\xi_c = -1/\log\chi_c` (Schoenholz et al. 2017, eq. 9):
    :math:`|c^l - c^*| \sim e^{-l/\xi_c}`.  Diverges at the edge of chaos (:math:`\chi_1 = 1`);
    Schoenholz et al. find networks trainable when their depth is below about :math:`6\xi_c`.
    At :math:`q^* = 0`, :math:`c^* = 1` and :math:`\chi_c = \chi_1` in its :math:`q \to 0^+` limit
    (relu: :math:`\xi_c = -1/\log(\sigma_w^2/2)`), as in :func:`phase_diagram`.

    Raises
    ------
    ValueError
        For negative sigmas.
    """
    rate = chi_c(act, sigma_w, sigma_b)
    if isinstance(rate, float):
        return float(_depth_scale(torch.tensor(rate, dtype=torch.float64)))
    return _depth_scale(rate)


def _eoc_solve(a: Activation, sb: Tensor) -> Tuple[Tensor, Tensor]:
    r"""Solve sigma_b^2 = q - E phi^2(q) / E phi'^2(q) for q (bisection in log q)."""
    target = (sb**2).reshape(-1)

    def h(q):
        e2, _, ed2 = _moments_q(a, q)
        return q - e2 / ed2

    lo = torch.full_like(target, 1e-10)
    hi = torch.full_like(target, 1.0)
    # expand hi until h(hi) >= target, up to q* = 1e4 (beyond, report no EOC)
    for _ in range(4):
        bad = h(hi) < target
        if not bad.any():
            break
        hi = torch.where(bad, hi * 10.0, hi)
    ok = h(hi) >= target
    h_lo = h(lo)
    zero = h_lo >= target  # EOC reached as q -> 0 (e.g. sigma_b = 0 for tanh)
    llo, lhi = torch.log(lo), torch.log(hi)
    for _ in range(60):
        mid = 0.5 * (llo + lhi)
        up = h(torch.exp(mid)) < target
        llo = torch.where(up, mid, llo)
        lhi = torch.where(up, lhi, mid)
    q = torch.exp(0.5 * (llo + lhi))
    # where the EOC sits at q* -> 0, evaluate E phi'^2 at a tiny q (its limit; phi'(0)
    # itself may be a one-sided convention, e.g. relu'(0) = 0) and report q* = 0
    _, _, ed2 = _moments_q(a, torch.where(zero, lo, q))
    q = torch.where(zero, torch.zeros_like(q), q)
    sw = 1.0 / torch.sqrt(ed2)
    nan = torch.full_like(sw, float("nan"))
    return torch.where(ok, sw, nan).reshape(sb.shape), torch.where(ok, q, nan).reshape(sb.shape)


class EOCCurve(tuple):
    r"""``(sigma_w, q_star)`` on the edge of chaos (unpacks as a pair), with the stability of that
    fixed point of the length map: ``length_slope`` is :math:`\mathcal V'(q^*)` and ``stable`` says
    :math:`\mathcal V'(q^*) \le 1` (floats for scalar input, tensors otherwise). Where it is not
    stable a network started at any other length runs away from :math:`q^*` (e.g. gelu and swish at
    small :math:`\sigma_b`), so that point is not an edge of chaos a network reaches."""

    def __new__(cls, sigma_w, q_star, length_slope, stable):
        self = super().__new__(cls, (sigma_w, q_star))
        self.sigma_w, self.q_star, self.length_slope, self.stable = sigma_w, q_star, length_slope, stable
        return self

    def __getnewargs__(self):
        return (self.sigma_w, self.q_star, self.length_slope, self.stable)


_UNSTABLE = ("warn", "nan", "keep")


def eoc_sigma_w(act: ActLike, sigma_b: Param, *, unstable: str = "warn"):
    r""":math:`\sigma_w` on the edge of chaos :math:`\chi_1 = 1` at a given :math:`\sigma_b`.

    On the EOC the fixed point :math:`q^*` and :math:`\sigma_w` satisfy
    :math:`\sigma_w^2 = 1/\mathbb E\,\phi'(\sqrt{q^*}z)^2` and
    :math:`\sigma_b^2 = q^* - \mathbb E\,\phi(\sqrt{q^*}z)^2/\mathbb E\,\phi'(\sqrt{q^*}z)^2`; the curve is
    parametrised by :math:`q^*` (as in Pennington et al. 2018, Fig. 1) and the second equation is solved for
    :math:`q^*` by bisection in :math:`\log q^*`.  ``nan`` where no EOC exists at that :math:`\sigma_b`:
    for relu the right-hand side is identically 0, so the only EOC point is :math:`(\sqrt 2, 0)`.

    That :math:`q^*` may be an *unstable* fixed point of the length map
    (:math:`\mathcal V'(q^*) > 1`; gelu and swish at small :math:`\sigma_b`): ``unstable="warn"``
    (default) returns it with a :class:`RuntimeWarning` naming those :math:`\sigma_b`, ``"nan"``
    returns ``nan`` there, ``"keep"`` returns it silently. :func:`eoc_curve` gives the stability.

    Raises
    ------
    ValueError
        For a negative ``sigma_b``, an unknown activation or ``unstable``.
    """
    if unstable not in _UNSTABLE:
        raise ValueError(f"unstable must be one of {_UNSTABLE}; got {unstable!r}")
    curve = eoc_curve(act, sigma_b)
    sw, stable = curve.sigma_w, curve.stable
    if isinstance(sw, float):
        if not stable and not math.isnan(sw):
            if unstable == "nan":
                return math.nan
            if unstable == "warn":
                warnings.warn(_unstable_message(act, [float(sigma_b)]), RuntimeWarning, stacklevel=2)
        return sw
    bad = ~stable & ~torch.isnan(sw)
    if bool(bad.any()):
        if unstable == "nan":
            return torch.where(bad, torch.full_like(sw, math.nan), sw)
        if unstable == "warn":
            sb = torch.broadcast_to(torch.as_tensor(np.asarray(sigma_b, dtype=np.float64)) if not isinstance(
                sigma_b, Tensor) else sigma_b.double().cpu(), sw.shape)
            warnings.warn(_unstable_message(act, sb[bad.cpu()].tolist()), RuntimeWarning, stacklevel=2)
    return sw


def _unstable_message(act: ActLike, sbs) -> str:
    name = act if isinstance(act, str) else getattr(act, "name", "the activation")
    shown = ", ".join(f"{v:g}" for v in sbs[:5]) + (", ..." if len(sbs) > 5 else "")
    return (f"eoc_sigma_w({name!r}, ...): at sigma_b = {shown} the edge-of-chaos fixed point q* is unstable "
            "(V'(q*) > 1): a network started at another length runs away from it. Pass unstable='nan' to "
            "get nan there, or unstable='keep' to silence this; eoc_curve(...).stable says where")


def eoc_curve(act: ActLike, sigma_b: Param) -> EOCCurve:
    r"""The EOC as the pair ``(sigma_w, q_star)`` at the given :math:`\sigma_b` (see :func:`eoc_sigma_w`),
    an :class:`EOCCurve` that also says whether that :math:`q^*` is a stable fixed point of the
    length map (``stable``, ``length_slope`` :math:`= \mathcal V'(q^*)`; at :math:`q^* = 0` the slope
    is its :math:`q \to 0^+` limit, 1 on the EOC, counted as stable).

    Raises
    ------
    ValueError
        For a negative ``sigma_b``.
    """
    a = _acts.get(act)
    p, scalar = _params(sigma_b=sigma_b)
    sb = p["sigma_b"]
    if not torch.isfinite(sb).all() or (sb < 0).any():
        raise ValueError("sigma_b must be finite and >= 0 (a standard deviation)")
    sw, q = _eoc_solve(a, sb)
    ok = torch.isfinite(q) & (q > 0)
    slope = torch.ones_like(q)  # q* = 0: V'(0+) = chi_1 = 1 on the EOC
    if bool(ok.any()):
        _, dm, _ = _moments_q(a, torch.where(ok, q, 1.0))
        slope = torch.where(ok, sw**2 * dm, slope)
    slope = torch.where(torch.isnan(sw), torch.full_like(slope, math.nan), slope)
    stable = slope <= 1 + 1e-9
    return EOCCurve(_out(sw, scalar), _out(q, scalar), _out(slope, scalar), bool(stable) if scalar else stable)


def iterate_q(act: ActLike, q0: Param, sigma_w: Param, sigma_b: Param, depth: int) -> Tensor:
    r"""Length trajectory :math:`q^0, q^1 = \mathcal V(q^0), \dots, q^L` (shape ``(depth+1, *broadcast)``).

    Raises
    ------
    ValueError
        For ``depth < 0``, ``q0 < 0`` or negative sigmas.
    """
    depth = check_int(int(depth) if isinstance(depth, float) and depth.is_integer() else depth, "depth", 0)
    check_budget(f"iterate_q(depth={depth})", seconds=depth * 2e-3)
    a = _acts.get(act)
    p, _ = _params(q0=q0, sigma_w=sigma_w, sigma_b=sigma_b)
    _check_q(p["q0"], "q0")
    _check_sigma(p["sigma_w"], p["sigma_b"])
    w2, b2 = p["sigma_w"] ** 2, p["sigma_b"] ** 2
    qs = [p["q0"]]
    for _ in range(int(depth)):
        qs.append(w2 * expect(lambda u: a.fn(u) ** 2, qs[-1], breakpoints=a.breakpoints, tail_from=a.tail_from) + b2)
    return torch.stack(qs)


def iterate_c(act: ActLike, c0: Param, q0: Param, sigma_w: Param, sigma_b: Param, depth: int) -> Tuple[Tensor, Tensor]:
    r"""Joint trajectory of length and correlation of two inputs of equal length ``q0`` and
    correlation ``c0``: :math:`c^{l+1} = \mathcal C(c^l; q^l)`, :math:`q^{l+1} = \mathcal V(q^l)`.
    Returns ``(c, q)``, each of shape ``(depth+1, *broadcast)``.

    Raises
    ------
    ValueError
        For ``depth < 0``, ``|c0| > 1``, ``q0 < 0`` or negative sigmas.
    """
    depth = check_int(int(depth) if isinstance(depth, float) and depth.is_integer() else depth, "depth", 0)
    check_budget(f"iterate_c(depth={depth})", seconds=depth * 2e-2)
    a = _acts.get(act)
    p, _ = _params(c0=c0, q0=q0, sigma_w=sigma_w, sigma_b=sigma_b)
    _check_c(p["c0"], "c0")
    _check_q(p["q0"], "q0")
    _check_sigma(p["sigma_w"], p["sigma_b"])
    w2, b2 = p["sigma_w"] ** 2, p["sigma_b"] ** 2
    cs, qs = [p["c0"]], [p["q0"]]
    for _ in range(int(depth)):
        cn, _ = _c_map_and_slope(a, cs[-1], qs[-1], w2, b2)
        cs.append(torch.clamp(cn, -1.0, 1.0))
        qs.append(w2 * expect(lambda u: a.fn(u) ** 2, qs[-1], breakpoints=a.breakpoints, tail_from=a.tail_from) + b2)
    return torch.stack(cs), torch.stack(qs)


class LayerVariances(NamedTuple):
    """Per-layer mean-field variances of an MLP, each of shape ``(L, *broadcast)``:
    ``q`` (pre-activations :math:`q^l`), ``qx`` (second moment of the activations,
    :math:`\\mathbb E\\,\\phi(h^l)^2`) and ``grad_q`` (back-propagated gradients,
    :math:`\\tilde q^l = \\mathbb E\\,(\\partial E/\\partial h^l_i)^2`)."""

    q: Tensor
    qx: Tensor
    grad_q: Tensor


def layer_variances(
    act: ActLike,
    q_in: Param,
    sigma_w: Sequence[Param],
    sigma_b: Param = 0.0,
    widths: Optional[Sequence[int]] = None,
    grad_var: Param = 1.0,
) -> LayerVariances:
    r"""Forward and backward variances of a given MLP, layer by layer, at infinite width.

    The network is :math:`h^1 = W^1 x^0 + b^1`, :math:`h^l = W^l \phi(h^{l-1}) + b^l`
    (:math:`l = 2, \dots, L`), with independent weights of variance
    :math:`\operatorname{Var} W^l_{ij} = \sigma_{w,l}^2 / n_{l-1}` and biases of
    variance :math:`\sigma_b^2`; the input has length :math:`q^0 = \lVert x^0\rVert^2/n_0`.
    Each layer may have its own :math:`\sigma_{w,l}`, so that any named
    initialization is covered (``MLPConfig.effective_sigma_w`` gives
    :math:`\sigma_{w,l} = \sqrt{n_{l-1}\operatorname{Var}W^l_{ij}}`). Forward
    (Poole et al. 2016; Glorot & Bengio 2010, eq. 5 in the linear case):

    .. math::

        q^1 = \sigma_{w,1}^2 q^0 + \sigma_b^2, \qquad
        q^l = \sigma_{w,l}^2\,\mathbb E\,\phi\big(\sqrt{q^{l-1}} z\big)^2 + \sigma_b^2 .

    Backward, for the loss :math:`E = \langle g, \phi(h^L)\rangle` with
    :math:`\mathbb E g_i^2 =` ``grad_var`` (the loss of
    :func:`sigprop.ensemble.propagate_mlp`), assuming the weights of the backward
    pass independent of the forward pass (Schoenholz et al. 2017; Glorot & Bengio
    2010, eq. 6 in the linear case):

    .. math::

        \tilde q^L = \mathrm{grad\_var}\;\mathbb E\,\phi'\big(\sqrt{q^L} z\big)^2, \qquad
        \tilde q^{l} = \mathbb E\,\phi'\big(\sqrt{q^l} z\big)^2 \,
                       \sigma_{w,l+1}^2 \frac{n_{l+1}}{n_l}\, \tilde q^{l+1} .

    Parameters
    ----------
    act : str or Activation
        The activation :math:`\phi`.
    q_in : float or Tensor
        The input length :math:`q^0` (a tensor, e.g. one value per input, broadcasts).
    sigma_w : sequence
        :math:`(\sigma_{w,1}, \dots, \sigma_{w,L})`, numbers or tensors that broadcast
        with ``q_in`` (e.g. one value per network).
    sigma_b : float or Tensor
        Bias standard deviation, the same in every layer.
    widths : sequence of int, optional
        :math:`(n_0, n_1, \dots, n_L)`; only the ratios :math:`n_{l+1}/n_l` of the
        backward pass use them.  Default: all equal.
    grad_var : float or Tensor
        :math:`\mathbb E g_i^2`, the variance of :math:`\partial E/\partial \phi(h^L)`.

    Returns
    -------
    LayerVariances
        ``q``, ``qx``, ``grad_q``, float64 tensors of shape ``(L, *broadcast)``;
        index ``l - 1`` holds layer ``l``.

    Raises
    ------
    ValueError
        If ``sigma_w`` is empty, ``widths`` does not have ``len(sigma_w) + 1``
        positive entries, or a variance or scale is negative or not finite.

    Examples
    --------
    A ReLU network with He's :math:`\sigma_w^2 = 2` keeps its variance:

    >>> lv = layer_variances("relu", 1.0, [2 ** 0.5] * 3)
    >>> [round(float(v), 6) for v in lv.q]
    [2.0, 2.0, 2.0]
    """
    a = _acts.get(act)
    try:
        sws = list(sigma_w)
    except TypeError:
        raise ValueError(f"sigma_w must be a sequence of per-layer scales (sigma_w_1, ..., sigma_w_L); got {sigma_w!r}") from None
    depth = len(sws)
    if depth == 0:
        raise ValueError("sigma_w must hold at least one layer's scale")
    if widths is None:
        ratios = [1.0] * depth
    else:
        ws = list(widths)
        if len(ws) != depth + 1 or any(isinstance(n, bool) or int(n) != n or n < 1 for n in ws):
            raise ValueError(f"widths must be (n_0, ..., n_L): {depth + 1} positive integers; got {widths!r}")
        ratios = [ws[l + 1] / ws[l] for l in range(depth)]  # ratios[l] = n_{l+1} / n_l (0-based layers)
    named = {f"sigma_w{l}": s for l, s in enumerate(sws)}
    p, _ = _params(q_in=q_in, sigma_b=sigma_b, grad_var=grad_var, **named)
    _check_q(p["q_in"], "q_in")
    _check_q(p["grad_var"], "grad_var")
    sw = [p[f"sigma_w{l}"] for l in range(depth)]
    for s in sw:
        _check_sigma(s, p["sigma_b"])
    if not torch.isfinite(p["q_in"]).all() or not torch.isfinite(p["grad_var"]).all():
        raise ValueError("q_in and grad_var must be finite")
    b2 = p["sigma_b"] ** 2

    def second_moments(q: Tensor) -> Tuple[Tensor, Tensor]:
        return expect(lambda u: (a.fn(u) ** 2, a.deriv(u) ** 2), q, breakpoints=a.breakpoints, tail_from=a.tail_from)

    qs, qxs, d2s = [], [], []
    q = sw[0] ** 2 * p["q_in"] + b2
    for l in range(depth):
        if l > 0:
            q = sw[l] ** 2 * qxs[-1] + b2
        if not torch.isfinite(q).all():
            raise ValueError(f"the variance diverges at layer {l + 1}; reduce sigma_w or the depth")
        e2, d2 = second_moments(q)
        qs.append(q)
        qxs.append(e2)
        d2s.append(d2)
    grads = [p["grad_var"] * d2s[-1]]
    for l in range(depth - 2, -1, -1):  # 0-based layer l receives from layer l + 1
        grads.append(d2s[l] * sw[l + 1] ** 2 * ratios[l + 1] * grads[-1])
    grads.reverse()
    return LayerVariances(torch.stack(qs), torch.stack(qxs), torch.stack(grads))


@dataclass(frozen=True)
class PhaseDiagram:
    """Mean-field quantities on a :math:`(\\sigma_w, \\sigma_b)` grid; arrays have shape
    ``(len(sigma_w), len(sigma_b))`` (``indexing="ij"``)."""

    activation: str
    sigma_w: Tensor
    sigma_b: Tensor
    q_star: Tensor
    chi_1: Tensor
    c_star: Optional[Tensor] = None
    xi_c: Optional[Tensor] = None


def phase_diagram(act: ActLike, sigma_w: Param, sigma_b: Param, *, correlations: bool = False) -> PhaseDiagram:
    r"""Order/chaos phase diagram: :math:`q^*` and :math:`\chi_1` on the grid
    ``sigma_w x sigma_b`` (Poole et al. 2016, Figs. 1-2; Schoenholz et al. 2017, Fig. 1), plus
    :math:`c^*` and :math:`\xi_c` when ``correlations`` (bivariate integrals, slower).

    Raises
    ------
    ValueError
        For negative or non-1-D grids.
    """
    a = _acts.get(act)
    sw, sb = real_tensor(sigma_w, "sigma_w"), real_tensor(sigma_b, "sigma_b")
    if sw.dim() != 1 or sb.dim() != 1:
        raise ValueError("sigma_w and sigma_b must be 1-D grids")
    check_budget(f"phase_diagram on a {sw.numel()} x {sb.numel()} grid",
                 seconds=sw.numel() * sb.numel() * (1e-4 if correlations else 2e-5), device=sw.device)
    SW, SB = torch.meshgrid(sw, sb.to(sw.device), indexing="ij")
    _check_sigma(SW, SB)
    qs, moments = _grid_moments(a, SW, SB, torch.ones_like(SW))
    fin = torch.isfinite(qs)
    _, _, ed2 = moments(torch.where(fin, qs, 1.0).reshape(-1))
    chi = torch.where(fin, SW**2 * ed2.reshape(SW.shape), torch.full_like(SW, float("nan")))
    if (qs == 0).any():  # E phi'^2 at q* = 0 is the q -> 0+ limit (one-sided conventions at kinks)
        chi = torch.where(qs == 0, SW**2 * _d2_at_zero(a, SW), chi)
    cs = xc = None
    if correlations:
        cs, known = _solve_c_star(a, SW, SB, qs, chi)
        xc = _depth_scale(_chi_c_at(a, SW, SB, qs, cs, chi, known))
    return PhaseDiagram(a.name, sw, sb, qs, chi, cs, xc)
