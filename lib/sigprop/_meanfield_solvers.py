r"""Solvers behind :mod:`sigprop.meanfield`: the Gaussian moments of an activation, the
fixed-point searches for :math:`q^*` and :math:`c^*`, and the edge-of-chaos bisection.

Private to :mod:`sigprop.meanfield`, which states the equations; here is how they are solved.

**Newton on** :math:`g(q) = \mathcal V(q) - q` **from** :math:`q_0`, safeguarded so that it stays on the
side from which the (monotone) length-map iteration approaches: the root found is the one a network
converges to. :math:`c^*` is found the same way from :math:`c = 0`, and the edge of chaos by bisection
in :math:`\log q^*`.

**Grids of fixed-point problems share one table of moments.** :math:`\mathbb E\,\phi^2`, its slope and
:math:`\mathbb E\,\phi'^2` depend on :math:`q` only, not on :math:`(\sigma_w, \sigma_b)`. For grids of 512
points or more they are interpolated from a cubic spline in :math:`\log q` (160 knots per unit of
:math:`\log q`; error below 1e-10 for :math:`\mathbb E\,\phi^2` and about 1e-9, the quadrature's own noise,
for the other two; ``tests/test_meanfield.py`` checks it against the exact path), so the cost of a
200x200 phase diagram no longer grows with the grid. Each Newton step on the table is cheap: one
gather fetches a point's eight spline coefficients (twelve gathers cost 3x more); the unfinished
points live in one ``(9, k)`` block, compacted in one gather when some finish; a climbing Newton step
goes at most 2x beyond :math:`\max(\mathcal V(q), 2q)`, since near :math:`\chi \approx 1` plain Newton
leapt from :math:`q = 1` to :math:`q \sim 10^3`, out of the table, and 386 points of the tanh grid fell
back to quadrature (a test counts those calls: none now). 200x200 tanh: 0.7 s -> 0.05 s (table) ->
0.03 s, 1220-1820x faster than per-point ``quad`` inside ``brentq`` (``make bench``), results unchanged
to 1e-12 on eleven activations.

**Divergent lengths are recognised from the activation's tails.** A diverging length (relu with
:math:`\sigma_w^2 > 2`) used to be followed, doubling, up to :math:`10^8 q_0`, where the panel rule needs
~90,000 panels a point: a 200x200 relu phase diagram took 284 s. For an activation with linear
tails (:math:`\phi(u)/u` read at :math:`u = \pm 10^6, \pm 10^7`), a climbing length beyond
:math:`10^4 \max(1, q_0)` is declared divergent once :math:`\sigma_w^2 c_\infty > 1` and
:math:`\mathcal V(q) > q` there: 2.9 s for that grid, the same classification and values (compared point
by point with the previous code on seven activations; a test checks relu's closed form).
Activations with other tails (the chapter 3 counterexample) are still followed to :math:`10^8 q_0`.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch

from .activations import Activation
from .gaussian import expect, expect2

Tensor = torch.Tensor

_MAX_ITER = 200
_Q_INF = 1e8  # lengths beyond this (times q0) count as divergent


def _d2_at_zero(a: Activation, like: Tensor) -> Tensor:
    r""":math:`\lim_{q\to 0^+} \mathbb E\,\phi'(\sqrt q z)^2 = \tfrac12(\phi'(0^+)^2 + \phi'(0^-)^2)`: the
    one definition of :math:`\mathbb E\,\phi'^2` at :math:`q^* = 0` (see the module's docstring)."""
    u = torch.tensor([1e-150, -1e-150], dtype=torch.float64, device=like.device)
    with torch.no_grad():
        d = a.deriv(u).to(torch.float64)
    return 0.5 * (d[0] ** 2 + d[1] ** 2)


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
