r"""Theory of deep random residual networks: mean field, effective cumulant, universal spectral law.

For the residual network :math:`h^l = W^l x^{l-1} + b^l`, :math:`x^l = x^{l-1} + \phi(h^l)`,
:math:`W^l_{ij} \sim \mathcal N(0, \sigma_w^2/(NL))`, :math:`b^l_i \sim \mathcal N(0, \sigma_b^2)`
(simulated by :mod:`sigprop.ensemble.resnet`), the spectrum of the input-output Jacobian
:math:`J = \prod_l(\mathbb 1 + D^l W^l)` in the limit of large width and depth depends on the
activation only through the **effective cumulant** (Tarnowski et al. 2019, eq. 22)

.. math::

    a = \sum_{l=1}^L c_l, \qquad
    c_l = N\operatorname{Var}(W^l_{ij})\,\big\langle \phi'(h)^2\big\rangle_{q^l}
        = \frac{\sigma_w^2}{L}\,\big\langle \phi'(h)^2\big\rangle_{q^l},

where :math:`\langle f\rangle_q = \mathbb E\,f(\sqrt q\,z)`, :math:`z \sim \mathcal N(0,1)`, and
:math:`q^l` is the variance of the pre-activations of layer :math:`l`.  In a residual net
:math:`q^l` has no fixed point: every layer *adds* to the signal.  Writing
:math:`p^l = \lVert x^l\rVert^2/N` and :math:`m^l = \frac1N\sum_i x^l_i`, and using that
:math:`h^l_i` is independent of :math:`x^{l-1}_i` in the wide limit,

.. math::

    q^l &= \frac{\sigma_w^2}{L}\,p^{l-1} + \sigma_b^2, \\
    p^l &= p^{l-1} + 2\,m^{l-1}\langle\phi\rangle_{q^l} + \langle\phi^2\rangle_{q^l}, \\
    m^l &= m^{l-1} + \langle\phi\rangle_{q^l},

from :math:`p^0 = \lVert x^0\rVert^2/N` and :math:`m^0 = \frac1N\sum_i x^0_i` (Tarnowski et al.
2019, eqs. 31-35).  The cross term :math:`2m^{l-1}\langle\phi\rangle` vanishes for odd
activations (linear, tanh, hard tanh) but dominates for relu, sigmoid and selu, whose outputs
have a non-zero mean that accumulates along the skip connections.  For linear, relu and leaky
relu :math:`\langle\phi'^2\rangle` does not depend on :math:`q`, so :math:`a = \sigma_w^2`,
:math:`\sigma_w^2/2` and :math:`(1+\beta^2)\sigma_w^2/2`; for the others :math:`a` depends on
the depth and on the input, and :func:`sigma_w_for_cumulant` inverts the relation.

The eigenvalues :math:`\lambda` of :math:`JJ^\top` then follow one law indexed by :math:`a`
alone, whose Green's function solves :math:`G = (zG - 1)\,e^{a(1 - 2zG)}` (Tarnowski et al.
2019, eq. 25; :func:`resnet_spectral_density`).

.. rubric:: Public API

Mean field (Tarnowski et al. 2019, Sec. II.2-II.3):

* :func:`resnet_mean_field` -- the recursion: :math:`q^l, p^l, m^l, c_l` per layer.
* :func:`effective_cumulant` -- :math:`a` for an activation, :math:`\sigma_w`, depth.
* :func:`sigma_w_for_cumulant` -- the :math:`\sigma_w` that gives a target :math:`a`.

The universal law (Tarnowski et al. 2019, Sec. II.1):

* :func:`resnet_spectral_density`, :func:`resnet_singular_value_density` -- the densities of
  :math:`\lambda` and of :math:`s = \sqrt\lambda`;
* :func:`resnet_spectrum_cdf`, :func:`resnet_spectrum_integral`, :func:`resnet_ks_distance` --
  its distribution function, its integrals, and the distance of an empirical spectrum to it;
* :func:`resnet_spectral_edges`, :func:`resnet_condition_number`, :func:`resnet_spectrum_mean`,
  :func:`resnet_spectrum_variance` -- its closed forms.

The exact Jacobians of random residual ensembles, to set beside this theory, are
:func:`sigprop.ensemble.resnet_input_output_jacobian` and
:func:`sigprop.ensemble.resnet_jacobian_singular_values`.

References
----------
Tarnowski, Warchoł, Jastrzębski, Tabor & Nowak (2019), *Dynamical isometry is achieved in
residual networks in a universal way for any activation function*, AISTATS, Sec. II.
"""
from __future__ import annotations

import math
import numbers
from typing import Dict, Tuple, Union

import numpy as np
import torch

from . import activations as _acts
from ._checks import check_budget, check_int, check_real, real_array as _as_t, real_tensor
from .gaussian import expect

Tensor = torch.Tensor
Param = Union[float, int, Tensor, np.ndarray]

__all__ = [
    "resnet_mean_field",
    "effective_cumulant",
    "sigma_w_for_cumulant",
    "resnet_spectral_density",
    "resnet_singular_value_density",
    "resnet_spectrum_cdf",
    "resnet_spectrum_integral",
    "resnet_spectral_edges",
    "resnet_condition_number",
    "resnet_spectrum_mean",
    "resnet_spectrum_variance",
    "resnet_ks_distance",
]


def _scalar(*xs) -> bool:
    return all(isinstance(v, numbers.Real) for v in xs)


def resnet_mean_field(act, sigma_w: Param, depth: int, sigma_b: Param = 0.0, p0: Param = 1.0, m0: Param = 0.0) -> Dict[str, Tensor]:
    r"""Layer-by-layer mean field of a random residual network.

    Iterates (Tarnowski et al. 2019, eq. 35, with the post-activation mean kept)

    .. math::

        q^l = \frac{\sigma_w^2}{L} p^{l-1} + \sigma_b^2, \quad
        p^l = p^{l-1} + 2 m^{l-1}\langle\phi\rangle_{q^l} + \langle\phi^2\rangle_{q^l}, \quad
        m^l = m^{l-1} + \langle\phi\rangle_{q^l}, \quad
        c_l = \frac{\sigma_w^2}{L}\langle\phi'^2\rangle_{q^l},

    with Gaussian expectations by :func:`sigprop.gaussian.expect`.

    Parameters
    ----------
    act : str or Activation
        The activation.
    sigma_w : float or Tensor
        Weight scale, :math:`\operatorname{Var} W_{ij} = \sigma_w^2/(NL)`, >= 0.
    depth : int
        Number of residual layers :math:`L \ge 1`.
    sigma_b : float or Tensor
        Bias standard deviation, >= 0.
    p0 : float or Tensor
        :math:`\lVert x^0\rVert^2/N > 0` (1 for a standard Gaussian input).
    m0 : float or Tensor
        :math:`\frac1N\sum_i x^0_i` (0 for a centred input); it must satisfy :math:`m_0^2 \le p_0`.

    Returns
    -------
    dict
        ``"q"``, ``"p"``, ``"m"``, ``"c"``: tensors of shape ``(depth, *broadcast shape)``, float64.

    Raises
    ------
    ValueError
        For an unknown activation, a depth that is not an integer >= 1, negative scales,
        :math:`p_0 \le 0` or :math:`m_0^2 > p_0`.
    """
    a = _acts.get(act)
    L = check_int(depth, "depth", 1)
    sw = _as_t(sigma_w, "sigma_w", low=0.0)
    sb = _as_t(sigma_b, "sigma_b", low=0.0)
    p = _as_t(p0, "p0", low=0.0, strict=True)
    m = _as_t(m0, "m0")
    if bool(torch.any(m * m > p * (1 + 1e-12))):
        raise ValueError(f"m0 must satisfy m0^2 <= p0 (a mean cannot exceed the root mean square); got m0={m0!r}, p0={p0!r}")
    n_points = torch.broadcast_shapes(sw.shape, sb.shape, p.shape, m.shape).numel()
    check_budget(f"resnet_mean_field(depth={L})", seconds=L * (1e-3 + 4e-6 * n_points),  # ~0.5 ms a layer measured
                 nbytes=L * n_points * 8 * 4)
    sw, sb, p, m = torch.broadcast_tensors(sw, sb, p, m)
    s2 = sw * sw / L
    f = lambda u: (a.fn(u), a.fn(u) ** 2, a.deriv(u) ** 2)
    rows = {k: [] for k in "qpmc"}
    for _ in range(L):
        q = s2 * p + sb * sb
        e1, e2, d2 = expect(f, q, breakpoints=a.breakpoints, tail_from=a.tail_from)
        p = p + 2 * m * e1 + e2
        m = m + e1
        for k, v in zip("qpmc", (q, p, m, s2 * d2)):
            rows[k].append(v)
    return {k: torch.stack(v) for k, v in rows.items()}


def effective_cumulant(act, sigma_w: Param, depth: int, sigma_b: Param = 0.0, p0: Param = 1.0, m0: Param = 0.0):
    r"""The effective cumulant :math:`a = \sum_l c_l` of a random residual network.

    .. math::

        a = \frac{\sigma_w^2}{L}\sum_{l=1}^{L} \big\langle\phi'(h)^2\big\rangle_{q^l},

    with :math:`q^l` from :func:`resnet_mean_field` (Tarnowski et al. 2019, eq. 22).  It is the
    single parameter of the universal law :func:`resnet_spectral_density`.
    Closed forms: :math:`\sigma_w^2` (linear), :math:`\sigma_w^2/2` (relu),
    :math:`(1+\beta^2)\sigma_w^2/2` (leaky relu with slope :math:`\beta`), whatever the depth.

    Parameters
    ----------
    act, sigma_w, depth, sigma_b, p0, m0
        As in :func:`resnet_mean_field`; ``sigma_w``, ``sigma_b``, ``p0``, ``m0`` broadcast.

    Returns
    -------
    float or Tensor

    Raises
    ------
    ValueError
        As :func:`resnet_mean_field`.
    """
    c = resnet_mean_field(act, sigma_w, depth, sigma_b, p0, m0)["c"].sum(0)
    return float(c) if _scalar(sigma_w, sigma_b, p0, m0) else c


def sigma_w_for_cumulant(act, a: Param, depth: int, sigma_b: Param = 0.0, p0: Param = 1.0, m0: Param = 0.0,
                         *, rtol: float = 1e-12, max_iter: int = 100):
    r"""The weight scale :math:`\sigma_w` at which a residual network has effective cumulant ``a``.

    Inverts :func:`effective_cumulant`, which increases with :math:`\sigma_w` from 0 to
    :math:`\infty` for every registered activation with :math:`\phi' \not\equiv 0` near 0.  Solved
    on :math:`\log\sigma_w` by the Illinois variant of regula falsi, started from the bracket
    :math:`a(\sigma_w) \propto \sigma_w^{k}`, :math:`1 \le k \le 2` (exact in one step for
    linear, relu and leaky relu), vectorized over ``a`` and the other parameters.

    Parameters
    ----------
    act : str or Activation
        The activation.
    a : float or Tensor
        Target cumulant(s), > 0.
    depth, sigma_b, p0, m0
        As in :func:`resnet_mean_field`.
    rtol : float
        Relative tolerance on ``a``.
    max_iter : int
        Iteration limit; a ``RuntimeError`` says when it is reached.

    Returns
    -------
    float or Tensor

    Raises
    ------
    ValueError
        For ``a <= 0`` or the errors of :func:`resnet_mean_field`.
    RuntimeError
        If the iteration does not converge (e.g. :math:`\phi' = 0` near the origin).
    """
    target = _as_t(a, "a (the target cumulant)", low=0.0, strict=True)
    max_iter = check_int(max_iter, "max_iter", 1)
    rtol = check_real(rtol, "rtol", 0.0, lo_open=True)
    shape = torch.broadcast_shapes(target.shape, *(torch.as_tensor(np.asarray(v, dtype=np.float64)).shape if not isinstance(v, Tensor) else v.shape
                                                  for v in (sigma_b, p0, m0)))
    target = target.expand(shape)
    log_t = torch.log(target)

    def g(log_sw):  # log a(sigma_w) - log target
        return torch.log(effective_cumulant(act, torch.exp(log_sw), depth, sigma_b, p0, m0).expand(shape)) - log_t

    # bracket: start at sigma_w = 1 and step by the slope bounds 1 <= d log a / d log sigma_w <= 2
    x0 = torch.zeros(shape, dtype=torch.float64)
    g0 = g(x0)
    lo = torch.where(g0 > 0, x0 - g0, x0 - g0 / 2)
    hi = torch.where(g0 > 0, x0 - g0 / 2, x0 - g0)
    glo, ghi = g(lo), g(hi)
    for _ in range(60):  # widen where the slope bounds fail (saturating activations at extreme scales)
        bad_lo, bad_hi = glo > 0, ghi < 0
        if not bool(bad_lo.any() or bad_hi.any()):
            break
        lo = torch.where(bad_lo, lo - 2.0, lo)
        hi = torch.where(bad_hi, hi + 2.0, hi)
        glo, ghi = g(lo), g(hi)
    else:
        raise RuntimeError("sigma_w_for_cumulant: could not bracket the target cumulant")
    side = torch.zeros(shape, dtype=torch.int8)
    for _ in range(max_iter):
        x = torch.where(ghi == glo, 0.5 * (lo + hi), (lo * ghi - hi * glo) / (ghi - glo))
        gx = g(x)
        if bool((gx.abs() <= rtol).all()):
            out = torch.exp(x)
            return float(out) if _scalar(a, sigma_b, p0, m0) else out
        neg = gx < 0
        # Illinois: halve the retained end's value when the same end is kept twice
        glo_new = torch.where(neg, gx, torch.where(side == 1, glo / 2, glo))
        ghi_new = torch.where(~neg, gx, torch.where(side == -1, ghi / 2, ghi))
        lo, hi = torch.where(neg, x, lo), torch.where(neg, hi, x)
        glo, ghi = glo_new, ghi_new
        side = torch.where(neg, torch.full_like(side, -1), torch.full_like(side, 1))
    raise RuntimeError(f"sigma_w_for_cumulant did not converge in {max_iter} iterations (rtol={rtol})")


# --------------------------------------------------------------------------- #
# Residual networks: the universal law of Tarnowski et al. (2019).
# --------------------------------------------------------------------------- #
#: Bisection steps of the density solver (each halves the bracket; 2^-80 is below float64's resolution).
_RESNET_BISECTION_STEPS = 80
#: Gauss-Legendre nodes of the CDF and moment quadratures (the integrand is smooth after the
#: change of variables, so the error is at round-off level; tests check 1e-10).
_RESNET_QUAD_NODES = 96


def _check_cumulant(a) -> Tensor:
    """The effective cumulant as a float64 tensor; ValueError unless finite and > 0."""
    return _as_t(a, "a (the effective cumulant)", low=0.0, strict=True)


def _check_points(x, name: str) -> Tensor:
    if isinstance(x, bool):
        raise ValueError(f"{name} must be a real number or tensor; got {x!r}")
    t = real_tensor(x.detach() if isinstance(x, Tensor) else x, name)
    if t.is_complex() or bool(torch.any(torch.isnan(t))):
        raise ValueError(f"{name} must be real and not NaN; got {x!r}")
    return t


def _out(t: Tensor, *inputs):
    return float(t) if _scalar(*inputs) else t


def _edge_s(a: Tensor) -> Tensor:
    return torch.sqrt(a * (a + 2.0))


def resnet_spectral_edges(a) -> Tuple:
    r"""Edges :math:`\lambda_\pm` of the universal spectrum of :math:`JJ^\top` for a deep residual net.

    .. math::

        \lambda_\pm = \big(1 + a \pm s\big)\, e^{\pm s}, \qquad s = \sqrt{a(a+2)},
        \qquad \lambda_- = 1/\lambda_+ .

    They are the points where :math:`z(w) = \frac{w}{w-1}e^{a(2w-1)}` (the universal
    equation, see :func:`resnet_spectral_density`) turns back on the real axis,
    :math:`z'(w) = 0 \iff w(w-1) = 1/(2a)` (Tarnowski et al. 2019, Sec. II.1; the same
    edges as those of Biane's free multiplicative Brownian motion at time :math:`t = 2a`).

    Parameters
    ----------
    a : float or Tensor
        The effective cumulant, :math:`a > 0` (see :func:`effective_cumulant`).

    Returns
    -------
    (lambda_minus, lambda_plus)
        Floats for a float, tensors of the shape of ``a`` for a tensor.

    Raises
    ------
    ValueError
        If ``a`` is not finite and positive.
    """
    at = _check_cumulant(a)
    s = _edge_s(at)
    lp = (1.0 + at + s) * torch.exp(s)
    lm = 1.0 / lp
    return _out(lm, a), _out(lp, a)


def resnet_condition_number(a):
    r"""Condition number :math:`\kappa(J) = s_{\max}/s_{\min}` of a deep residual net's Jacobian.

    .. math::

        \kappa(J) = \sqrt{\lambda_+/\lambda_-} = \lambda_+ = e^{\,s + \operatorname{arcsinh} s},
        \qquad s = \sqrt{a(a+2)},

    in the limit of large width and depth (Tarnowski et al. 2019, eq. 26).  It tends to 1
    (isometry) as :math:`a \to 0`, like :math:`1 + 2\sqrt{2a}`, and grows like
    :math:`2(a+1)e^{a+1}` for large :math:`a`.  The condition number of :math:`JJ^\top` is its square.

    Raises
    ------
    ValueError
        If ``a`` is not finite and positive.
    """
    at = _check_cumulant(a)
    s = _edge_s(at)
    return _out(torch.exp(s + torch.asinh(s)), a)


def resnet_spectrum_mean(a):
    r"""Mean :math:`m_1 = e^{a}` of the universal law of the eigenvalues of :math:`JJ^\top`.

    From the S-transform :math:`S(m) = e^{-a(1+2m)}`: :math:`m_1 = 1/S(0)` (Tarnowski et al. 2019).

    Raises
    ------
    ValueError
        If ``a`` is not finite and positive.
    """
    return _out(torch.exp(_check_cumulant(a)), a)


def resnet_spectrum_variance(a):
    r"""Variance :math:`2a\,e^{2a}` of the universal law of the eigenvalues of :math:`JJ^\top`.

    From :math:`S(m) = 1/m_1 + \frac{m_1^2 - m_2}{m_1^3} m + O(m^2)` and
    :math:`S(m) = e^{-a(1+2m)}` (Tarnowski et al. 2019).  For small :math:`a` the law is a
    semicircle around 1 of this variance, :math:`\approx 2a`.

    Raises
    ------
    ValueError
        If ``a`` is not finite and positive.
    """
    at = _check_cumulant(a)
    return _out(2.0 * at * torch.exp(2.0 * at), a)


def _disc(t: Tensor, a: Tensor) -> Tensor:
    # (u - 1/2)^2 on the curve Im log z(w) = 0, w = u - i t:  u^2 - u + t^2 = t cot(2 a t)
    return 0.25 - t * t + t / torch.tan(2.0 * a * t)


def _t_max(a: Tensor) -> Tensor:
    """The top of the curve (u = 1/2), where the disc vanishes: bisection on (0, pi/(2a))."""
    lo = torch.zeros_like(a)
    hi = math.pi / (2.0 * a)
    for _ in range(_RESNET_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        pos = _disc(mid, a) > 0
        lo = torch.where(pos, mid, lo)
        hi = torch.where(pos, hi, mid)
    return 0.5 * (lo + hi)


def _log_x_upper(t: Tensor, a: Tensor) -> Tensor:
    """log z on the upper branch u = 1/2 + sqrt(disc) of the curve (z real, z >= 1)."""
    r = torch.sqrt(_disc(t, a).clamp(min=0.0))
    u = 0.5 + r
    # log|w|^2 - log|w - 1|^2 = log1p((2u - 1) / ((u - 1)^2 + t^2)), with 2u - 1 = 2r
    return 0.5 * torch.log1p(2.0 * r / ((u - 1.0) ** 2 + t * t)) + 2.0 * a * r


def _resnet_w(x: Tensor, a: Tensor) -> Tuple[Tensor, Tensor]:
    r"""Solve the universal equation on the real axis: ``w = x G(x - i0)``.

    Returns ``(w, inside)``, complex ``w`` with ``Im w >= 0`` ... see :func:`resnet_spectral_density`.
    """
    x, a = torch.broadcast_tensors(x, a)
    s = _edge_s(a)
    log_edge = torch.log1p(a + s) + s  # log lambda_+
    y = torch.log(x.clamp(min=1e-300)).abs()  # by the symmetry x -> 1/x, solve at |log x|
    inside = (x > 0) & (y < log_edge)
    tm = _t_max(a)
    # _log_x_upper decreases from log lambda_+ (t = 0) to 0 (t = t_max): bisection for t
    lo, hi = torch.zeros_like(a), tm.clone()
    for _ in range(_RESNET_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        above = _log_x_upper(mid, a) > y
        lo = torch.where(above, mid, lo)
        hi = torch.where(above, hi, mid)
    t = torch.where(inside, 0.5 * (lo + hi), torch.zeros_like(a))
    r = torch.sqrt(_disc(t.clamp(min=1e-300), a).clamp(min=0.0))
    u = torch.where(x >= 1, 0.5 + r, 0.5 - r)  # upper branch for x >= 1, its mirror 1 - u for x < 1
    w = torch.complex(torch.where(inside, u, torch.full_like(u, float("nan"))), t)
    # Near x = 1 (t -> t_max) u = 1/2 +- sqrt(disc) loses half the digits of t; two Newton
    # steps on F(w) = w - x (w - 1) e^{a(1 - 2w)} from this start restore full precision.
    z, ac = x.to(w.dtype), a.to(w.dtype)
    for _ in range(2):
        e = torch.exp(ac * (1 - 2 * w))
        f = w - z * (w - 1) * e
        df = 1 - z * e + 2 * ac * z * (w - 1) * e
        w_new = w - f / df
        w = torch.where(inside & torch.isfinite(w_new) & (w_new.imag > 0), w_new, w)
    return w, inside


def resnet_spectral_density(x, a):
    r"""Universal density of the squared singular values of a deep residual net's Jacobian.

    For the residual network :math:`x^l = x^{l-1} + \phi(W^l x^{l-1} + b^l)` with
    :math:`W^l_{ij} \sim \mathcal N(0, \sigma_w^2/(NL))`, the eigenvalues :math:`\lambda`
    of :math:`JJ^\top`, :math:`J = \prod_l (\mathbb 1 + D^l W^l)`, have in the limit of
    large width :math:`N` and then large depth :math:`L` a density that depends on the
    activation only through the effective cumulant :math:`a`
    (:func:`effective_cumulant`).  Its Green's function
    :math:`G(z) = \int \rho(\lambda)\,d\lambda/(z - \lambda)` solves (Tarnowski et al. 2019, eq. 25)

    .. math::

        G = (zG - 1)\, e^{a(1 - 2zG)}
        \quad\Longleftrightarrow\quad
        z = \frac{w}{w-1}\, e^{a(2w - 1)}, \quad w = zG,

    and :math:`\rho(\lambda) = -\frac1\pi \operatorname{Im} G(\lambda + i0) = |\operatorname{Im} w|/(\pi\lambda)`.

    **Method.**  Rather than Newton's method on the complex equation (which needs a good
    start near the edges, where :math:`\rho \propto \sqrt{\lambda_+ - \lambda}`), we solve
    it in a parametrization.  Write :math:`w = u - it`.  The equation has a real
    :math:`z` exactly when :math:`\arg\frac{w}{w-1} = 2at`, i.e. on the curve
    :math:`u = \tfrac12 \pm \sqrt{\tfrac14 - t^2 + t\cot(2at)}`, :math:`0 \le t \le t_{\max}`.
    Along its upper branch :math:`z` is real and falls monotonically from :math:`\lambda_+`
    (:math:`t = 0`) to 1 (:math:`t = t_{\max}`, where the branches meet); the lower
    branch (:math:`u \to 1 - u`) gives :math:`z \to 1/z`, the symmetry of the law.
    For each :math:`\lambda` we find :math:`t` by bisection on :math:`|\log\lambda|`
    (80 halvings, to round-off), then :math:`\rho = t/(\pi\lambda)`.  The solution is
    checked in the tests against Newton's method with continuation from outside the
    support, against the closed-form moments and edges, and against products of random
    matrices.

    Parameters
    ----------
    x : float or Tensor
        Points :math:`\lambda` (squared singular values); any real values (0 outside
        :math:`(\lambda_-, \lambda_+)`).
    a : float or Tensor
        Effective cumulant(s), :math:`a > 0`; broadcasts with ``x``.

    Returns
    -------
    float or Tensor
        :math:`\rho(x)`, float64, of the broadcast shape.

    Raises
    ------
    ValueError
        If ``a`` is not finite and positive or ``x`` is not real.

    References
    ----------
    Tarnowski, Warchoł, Jastrzębski, Tabor & Nowak (2019), *Dynamical isometry is achieved
    in residual networks in a universal way for any activation function*, eq. (25).
    """
    at, xt = _check_cumulant(a), _check_points(x, "x")
    w, inside = _resnet_w(xt, at.to(xt.device))
    rho = torch.where(inside, w.imag / (math.pi * xt.clamp(min=1e-300)), torch.zeros_like(w.imag))
    return _out(rho, x, a)


def resnet_singular_value_density(s, a):
    r"""Universal density of the singular values :math:`s` of a deep residual net's Jacobian.

    .. math::

        \rho_s(s) = 2s\,\rho(s^2),

    with :math:`\rho` the density of the squared singular values, :func:`resnet_spectral_density`.

    Raises
    ------
    ValueError
        If ``a`` is not finite and positive or ``s`` is not real.
    """
    st = _check_points(s, "s")
    rho = resnet_spectral_density(st * st, a if isinstance(a, Tensor) else torch.as_tensor(np.asarray(a, dtype=np.float64)))
    return _out(2.0 * st.clamp(min=0.0) * rho, s, a)


def _gl(n: int) -> Tuple[Tensor, Tensor]:
    z, w = np.polynomial.legendre.leggauss(n)
    return torch.as_tensor(z), torch.as_tensor(w)


def _resnet_integral(f, a: Tensor, upper: Tensor) -> Tensor:
    r"""``int_{lambda_-}^{upper} f(lambda) rho(lambda) d lambda`` by Gauss-Legendre in
    :math:`\ell = \log\lambda` (the law spans decades when :math:`a` is large) after
    :math:`\ell = \ell_- + (\ell_U - \ell_-)(1 - \cos\varphi)/2`, which makes the square-root
    edges smooth."""
    s = _edge_s(a)
    lp = torch.log1p(a + s) + s  # log lambda_+; log lambda_- = -lp
    up = torch.log(upper.clamp(min=1e-300)).clamp(min=-lp, max=lp)
    z, wts = _gl(_RESNET_QUAD_NODES)
    phi = (z.to(a.device) + 1.0) * (math.pi / 2)  # (0, pi)
    span = (up + lp).unsqueeze(-1)
    ell = -lp.unsqueeze(-1) + span * (1.0 - torch.cos(phi)) / 2
    jac = span * torch.sin(phi) / 2 * (math.pi / 2)
    lam = torch.exp(ell)
    rho = resnet_spectral_density(lam, a.unsqueeze(-1))
    return (wts.to(a.device) * jac * lam * rho * f(lam)).sum(-1)


def resnet_spectrum_integral(f, a, upper=math.inf):
    r"""The integral :math:`\int_{\lambda_-}^{u} f(\lambda)\,\rho_a(\lambda)\,d\lambda` over the universal law.

    By Gauss-Legendre quadrature in :math:`\ell = \log\lambda` after
    :math:`\ell = \ell_- + (\ell_u - \ell_-)(1 - \cos\varphi)/2`, which makes the square-root
    edges smooth (the quadrature of :func:`resnet_spectrum_cdf`).  With ``f = lambda l: l`` and
    ``upper`` beyond :math:`\lambda_+` it gives the mean :math:`e^a`
    (:func:`resnet_spectrum_mean`), with ``l * l`` the second moment.

    Parameters
    ----------
    f : callable
        A function of a float64 tensor of points :math:`\lambda`, elementwise.
    a : float or Tensor
        Effective cumulant(s), :math:`a > 0`.
    upper : float or Tensor
        Upper limit :math:`u` (clipped to :math:`[\lambda_-, \lambda_+]`); broadcasts with ``a``.

    Returns
    -------
    float or Tensor

    Raises
    ------
    ValueError
        If ``a`` is not finite and positive or ``upper`` is not real.

    References
    ----------
    Tarnowski, Warchoł, Jastrzębski, Tabor & Nowak (2019), eq. (25).
    """
    if not callable(f):
        raise ValueError(f"f must be a callable of a tensor of points; got {f!r}")
    at, ut = _check_cumulant(a), _check_points(upper, "upper")
    ab, ub = torch.broadcast_tensors(at, ut.to(at.device))
    return _out(_resnet_integral(f, ab, ub), a, upper)


def resnet_spectrum_cdf(x, a):
    r"""Cumulative distribution :math:`F(x) = \int_{\lambda_-}^{x} \rho(\lambda)\,d\lambda` of the universal law.

    Computed by Gauss-Legendre quadrature of :func:`resnet_spectral_density` after the change
    of variables :math:`\log\lambda = \log\lambda_- + (\log x - \log\lambda_-)(1 - \cos\varphi)/2`, which
    removes the square-root behaviour at the edges (accurate to about :math:`10^{-10}`).
    Used for Kolmogorov-Smirnov distances between an empirical spectrum and the theory.

    Raises
    ------
    ValueError
        If ``a`` is not finite and positive or ``x`` is not real.
    """
    at, xt = _check_cumulant(a), _check_points(x, "x")
    xb, ab = torch.broadcast_tensors(xt, at.to(xt.device))
    cdf = _resnet_integral(lambda lam: torch.ones_like(lam), ab, xb).clamp(0.0, 1.0)
    return _out(cdf, x, a)


def resnet_ks_distance(eigenvalues, a, *, exclude_top: int = 0) -> float:
    r"""Kolmogorov-Smirnov distance between pooled eigenvalues of :math:`JJ^\top` and the universal law.

    .. math::

        D = \sup_x \big|F_{\text{emp}}(x) - F_a(x)\big|,

    with :math:`F_a` from :func:`resnet_spectrum_cdf`.  ``exclude_top`` drops that many of the
    largest eigenvalues of *each* matrix first (the outlier of bias-free ReLU nets, see
    chapter 6).

    Parameters
    ----------
    eigenvalues : Tensor
        ``(n_nets, N)`` or ``(N,)``: squared singular values of each network's Jacobian.
    a : float
        The effective cumulant.
    exclude_top : int
        Number of largest eigenvalues per network to leave out, >= 0.

    Raises
    ------
    ValueError
        For a bad ``a``, ``exclude_top`` or ``eigenvalues``.
    """
    ev = _check_points(eigenvalues, "eigenvalues")
    if ev.ndim == 1:
        ev = ev.unsqueeze(0)
    if ev.ndim != 2 or ev.shape[-1] < 1:
        raise ValueError(f"eigenvalues must have shape (N,) or (n_nets, N); got {tuple(ev.shape)}")
    if isinstance(exclude_top, bool) or not isinstance(exclude_top, numbers.Integral) or not 0 <= exclude_top < ev.shape[-1]:
        raise ValueError(f"exclude_top must be an integer with 0 <= exclude_top < N = {ev.shape[-1]}; got {exclude_top!r}")
    at = _check_cumulant(a)
    if at.numel() != 1:
        raise ValueError(f"a must be a single number here; got shape {tuple(at.shape)}")
    ev = torch.sort(ev, dim=-1).values[:, : ev.shape[-1] - exclude_top].flatten().sort().values
    n = ev.numel()
    f = resnet_spectrum_cdf(ev.cpu(), at.reshape(()).cpu())
    k = torch.arange(1, n + 1, dtype=torch.float64)
    return float(torch.maximum(k / n - f, f - (k - 1) / n).max())
