r"""The edge of chaos under scrutiny: counterexamples, exact maps, finite-width corrections.

Pieces of Wolinski & Arbel's critique of the edge-of-chaos (EOC) line of work
(*Gaussian Pre-Activations in Neural Networks: Myth or Reality?*, TMLR 2025,
arXiv 2205.12379) and of the finite-width theory that quantifies the gap
(Roberts, Yaida & Hanin 2022; Hanin & Nica 2019):

* :func:`log_periodic_activation`, :func:`log_periodic_sigma_w`,
  :func:`variance_map_fixed_points` -- an activation whose variance map
  :math:`\mathcal V` has infinitely many fixed points.  It is *our reconstruction*
  of the paper's :math:`\varphi_{\delta,\omega}` (Definition 1): the paper's exact
  formula could not be consulted, so we build a function with every property the
  paper states for it (log-periodic oscillations of :math:`\mathcal V` around the
  identity, infinitely many stable and unstable fixed points, a correlation map
  that does not depend on the chosen fixed point and tends to the identity as
  :math:`\omega` grows, :math:`\delta < 1`).
* :func:`box_muller_activation`, :func:`sample_weibull2`, :func:`exact_eoc` --
  the closed-form member :math:`\theta = 2` of the paper's Weibull/activation pairs,
  for which :math:`W\phi(X) \sim \mathcal N(0, 1)` exactly, and the EOC quantities of
  such a pair, which hold at every width (under the independence assumption).
* :func:`sample_preactivations` -- one input through many independent finite-width
  MLPs, returning pre-activation samples for Kolmogorov-Smirnov tests and the pooled
  excess kurtosis per layer.
* :func:`kurtosis_prediction`, :func:`relu_kurtosis_exact` -- the 1/width
  prediction of the excess kurtosis of pre-activations against depth.
* :func:`mean_field_class_correlation` -- the mean-field prediction of the
  class-correlation matrices :math:`C^l_{pq}` of real data.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from . import activations as _acts
from ._checks import check_budget, check_device, check_generator, check_int, check_nonneg, check_real, check_shape, real_array, check_alloc
from . import meanfield as _mf
from .ensemble import conditional_gaussian_layer, random_layer
from .gaussian import expect

Tensor = torch.Tensor

__all__ = [
    "log_periodic_activation", "log_periodic_ratio", "log_periodic_sigma_w", "FixedPoints",
    "variance_map_fixed_points", "log_periodic_fixed_points", "box_muller_activation", "sample_weibull2", "ExactEOC", "exact_eoc",
    "PreactSamples", "sample_preactivations", "kurtosis_prediction", "relu_kurtosis_exact",
    "mean_field_class_correlation",
]


# --------------------------------------------------------------------------- #
# 1. A variance map with infinitely many fixed points
# --------------------------------------------------------------------------- #
def log_periodic_activation(delta: float = 0.99, omega: float = 2.0) -> _acts.Activation:
    r"""A log-periodic activation :math:`\varphi_{\delta,\omega}` (our reconstruction).

    .. math::

        \varphi_{\delta,\omega}(x) = x\,\exp\!\Big(\frac{\delta}{\omega}\sin(\omega\ln|x|)\Big),
        \qquad \varphi_{\delta,\omega}(0) = 0,

    i.e. :math:`\ln|\varphi| = \ln|x| + \frac{\delta}{\omega}\sin(\omega \ln|x|)` on a log
    scale.  Its derivative is
    :math:`\varphi'(x) = e^{\frac{\delta}{\omega}\sin(\omega\ln|x|)}\,(1 + \delta\cos(\omega\ln|x|))`,
    positive for :math:`0 \le \delta < 1`: the function is odd, increasing and
    *discretely scale invariant*, :math:`\varphi(\lambda x) = \lambda\varphi(x)` for
    :math:`\lambda = e^{2\pi/\omega}`.  Hence the variance map (with
    :math:`\sigma_b = 0`) satisfies :math:`\mathcal V(\lambda^2 q) = \lambda^2 \mathcal V(q)`:
    one fixed point implies infinitely many, at :math:`q^* \lambda^{2k}`, :math:`k \in \mathbb Z`.
    As :math:`\omega \to \infty` the log-scale wiggle :math:`\delta/\omega` vanishes and
    :math:`\varphi \to` identity, so the correlation map tends to the identity.

    Wolinski & Arbel (2025, Definition 1 and Fig. 3) use a counterexample of this kind
    with :math:`\delta = 0.99` and :math:`\omega \in \{2, 3, 6\}`; their exact formula was
    not available to us, so this function is built from the properties they state and
    is *not* claimed to be theirs.

    Parameters
    ----------
    delta : float
        Amplitude, in [0, 1) (monotonicity needs :math:`\delta < 1`).
    omega : float
        Angular frequency in :math:`\ln|x|`, > 0.

    Returns
    -------
    Activation
        With ``breakpoints=(0,)`` (the oscillations accumulate at 0, where quadrature
        panels are split) and ``odd=True``; not registered by name.

    Raises
    ------
    ValueError
        If ``delta`` is not in [0, 1) or ``omega`` is not > 0.
    """
    d = check_real(delta, "delta", 0.0, 1.0, hi_open=True)
    w = check_real(omega, "omega", 0.0, lo_open=True)

    def fn(x: Tensor) -> Tensor:
        ax = x.abs()
        safe = torch.where(ax > 0, ax, torch.ones_like(ax))
        return torch.where(ax > 0, x * torch.exp((d / w) * torch.sin(w * torch.log(safe))), torch.zeros_like(x))

    def deriv(x: Tensor) -> Tensor:
        ax = x.abs()
        safe = torch.where(ax > 0, ax, torch.ones_like(ax))
        t = w * torch.log(safe)
        val = torch.exp((d / w) * torch.sin(t)) * (1.0 + d * torch.cos(t))
        return torch.where(ax > 0, val, torch.ones_like(x))  # phi'(0): limit of the average slope is 1

    return _acts.Activation(f"phi_{d:g}_{w:g}", fn, deriv, smooth=False, odd=True, breakpoints=(0.0,))


@lru_cache(maxsize=4)
def _log_nodes(t_lo: float = -30.0, t_hi: float = 3.6, panels: int = 400, k: int = 12) -> Tuple[Tensor, Tensor]:
    x, w = np.polynomial.legendre.leggauss(k)
    edges = np.linspace(t_lo, t_hi, panels + 1)
    mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    t = (mid[:, None] + half[:, None] * x[None, :]).ravel()
    wt = (half[:, None] * w[None, :]).ravel()
    return torch.tensor(t, dtype=torch.float64), torch.tensor(wt, dtype=torch.float64)


def log_periodic_ratio(delta: float, omega: float, q, derivative: bool = False):
    r"""The log-periodic factor :math:`r(q) = \mathbb E[\varphi_{\delta,\omega}(\sqrt q Z)^2]/q`.

    With :math:`a = \tfrac12\ln q` and :math:`z = e^t`,

    .. math::

        r(q) = 2\int_{-\infty}^{\infty} e^{3t}\,
               \exp\!\Big(\frac{2\delta}{\omega}\sin\big(\omega(a + t)\big)\Big)\,
               \frac{e^{-e^{2t}/2}}{\sqrt{2\pi}}\,dt ,

    a smooth integrand in :math:`t` (the oscillations of :math:`\varphi` near 0 become a
    plain sine), integrated by composite Gauss-Legendre quadrature on
    :math:`t \in [-30, 3.6]` (relative error below 1e-12).  :math:`r` is periodic in
    :math:`\ln q` with period :math:`4\pi/\omega`, and the variance map without bias is
    :math:`\mathcal V(q) = \sigma_w^2\, q\, r(q)`, with slope
    :math:`\mathcal V'(q) = \sigma_w^2\,(r + \tfrac12\,dr/da)`.

    Parameters
    ----------
    delta, omega : float
        As in :func:`log_periodic_activation`.
    q : float or Tensor
        Variances, > 0.
    derivative : bool
        Also return :math:`dr/da`, :math:`a = \tfrac12 \ln q`.

    Raises
    ------
    ValueError
        For bad ``delta``/``omega`` or ``q <= 0``.
    """
    d = check_real(delta, "delta", 0.0, 1.0, hi_open=True)
    w = check_real(omega, "omega", 0.0, lo_open=True)
    qt = torch.as_tensor(q, dtype=torch.float64)
    if not bool(torch.isfinite(qt).all()) or bool((qt <= 0).any()):
        raise ValueError(f"q must be finite and > 0; got {q!r}")
    t, wt = _log_nodes()
    t, wt = t.to(qt.device), wt.to(qt.device)
    a = 0.5 * torch.log(qt).unsqueeze(-1)
    base = 2.0 * torch.exp(3.0 * t - 0.5 * torch.exp(2.0 * t)) / math.sqrt(2.0 * math.pi) * wt
    ph = w * (a + t)
    e = torch.exp((2.0 * d / w) * torch.sin(ph)) * base
    r = e.sum(-1)
    if not derivative:
        return r
    return r, (e * (2.0 * d) * torch.cos(ph)).sum(-1)


def log_periodic_sigma_w(delta: float = 0.99, omega: float = 2.0, n_grid: int = 256) -> float:
    r"""A weight scale for which :math:`\mathcal V` crosses the identity infinitely often.

    :math:`\mathcal V(q) = q` iff :math:`\sigma_w^2 r(q) = 1`.  Since :math:`r` oscillates
    periodically in :math:`\ln q` between :math:`r_\min` and :math:`r_\max`, every
    :math:`\sigma_w^2 \in (1/r_\max, 1/r_\min)` gives two crossings per period, hence
    infinitely many fixed points.  We take the midpoint

    .. math:: \sigma_w^2 = \frac{2}{r_\min + r_\max},

    which makes stable and unstable fixed points alternate symmetrically.  (Wolinski &
    Arbel's Proposition tunes :math:`\sigma_w` to the same effect; their exact choice
    was not available to us.)

    Raises
    ------
    ValueError
        For bad ``delta``/``omega``, ``delta = 0`` (then :math:`r` is constant) or ``n_grid < 16``.
    """
    d = check_real(delta, "delta", 0.0, 1.0, lo_open=True, hi_open=True)
    w = check_real(omega, "omega", 0.0, lo_open=True)
    n = check_int(n_grid, "n_grid", 16)
    logq = torch.linspace(0.0, 4 * math.pi / w, n + 1, dtype=torch.float64)[:-1]
    r = log_periodic_ratio(d, w, torch.exp(logq))
    return float(math.sqrt(2.0 / float(r.min() + r.max())))


class FixedPoints(NamedTuple):
    """Fixed points of a variance map on an interval: ``q``, slope ``V'(q)``, ``stable``."""

    q: Tensor
    slope: Tensor
    stable: Tensor


def log_periodic_fixed_points(delta: float, omega: float, sigma_w: float, q_lo: float = 1e-3,
                              q_hi: float = 1e3) -> "FixedPoints":
    r"""Fixed points of the variance map of :func:`log_periodic_activation` in ``[q_lo, q_hi]``.

    :math:`\mathcal V(q) = q` iff :math:`\sigma_w^2 r(q) = 1` (:func:`log_periodic_ratio`);
    at a fixed point :math:`\mathcal V'(q^*) = 1 + \tfrac12 (dr/da)/r`, and the point is
    stable when :math:`|\mathcal V'(q^*)| < 1` (Wolinski & Arbel 2025, Proposition 1).
    Roots are bracketed on a grid of 64 points per period of :math:`\ln q` and refined
    by Brent's method.

    Raises
    ------
    ValueError
        For bad ``delta``/``omega``, ``sigma_w <= 0`` or not ``0 < q_lo < q_hi``.
    """
    from scipy.optimize import brentq

    sw = check_real(sigma_w, "sigma_w", 0.0, lo_open=True)
    lo = check_real(q_lo, "q_lo", 0.0, lo_open=True)
    hi = check_real(q_hi, "q_hi", 0.0, lo_open=True)
    if not lo < hi:
        raise ValueError(f"q_lo must be < q_hi; got q_lo={q_lo!r}, q_hi={q_hi!r}")
    w = check_real(omega, "omega", 0.0, lo_open=True)
    period = 4 * math.pi / w
    n = max(16, int(math.ceil(64 * math.log(hi / lo) / period)))
    logq = torch.linspace(math.log(lo), math.log(hi), n + 1, dtype=torch.float64)
    g = (sw**2 * log_periodic_ratio(delta, omega, torch.exp(logq)) - 1.0).numpy()

    def h(x: float) -> float:
        return sw**2 * float(log_periodic_ratio(delta, omega, math.exp(x))) - 1.0

    roots = [float(brentq(h, float(logq[i]), float(logq[i + 1]), xtol=1e-14))
             for i in range(n) if g[i] * g[i + 1] < 0]
    q = torch.exp(torch.tensor(roots, dtype=torch.float64))
    if not roots:
        z = torch.zeros(0, dtype=torch.float64)
        return FixedPoints(z, z, z.bool())
    r, dr = log_periodic_ratio(delta, omega, q, derivative=True)
    slope = sw**2 * (r + 0.5 * dr)
    return FixedPoints(q, slope, slope.abs() < 1)


def variance_map_fixed_points(act, sigma_w: float, sigma_b: float = 0.0, q_lo: float = 1e-3,
                              q_hi: float = 1e3, n_grid: int = 2000) -> FixedPoints:
    r"""All fixed points :math:`q^* = \mathcal V(q^*)` of the variance map in ``[q_lo, q_hi]``.

    :math:`\mathcal V(q) = \sigma_w^2\,\mathbb E\,\phi(\sqrt q Z)^2 + \sigma_b^2`
    (Poole et al. 2016).  Sign changes of :math:`\mathcal V(q) - q` on a log-spaced grid
    are refined by Brent's method; a fixed point is stable when
    :math:`|\mathcal V'(q^*)| < 1` (Wolinski & Arbel 2025, Proposition 1), with
    :math:`\mathcal V'` from :func:`sigprop.meanfield.q_map_slope`.

    Raises
    ------
    ValueError
        For ``0 < q_lo < q_hi`` violated, ``n_grid < 10`` or negative sigmas.
    """
    from scipy.optimize import brentq

    lo = check_real(q_lo, "q_lo", 0.0, lo_open=True)
    hi = check_real(q_hi, "q_hi", 0.0, lo_open=True)
    if not lo < hi:
        raise ValueError(f"q_lo must be < q_hi; got q_lo={q_lo!r}, q_hi={q_hi!r}")
    n = check_int(n_grid, "n_grid", 10)
    sw = check_nonneg(sigma_w, "sigma_w")
    sb = check_nonneg(sigma_b, "sigma_b")
    a = _acts.get(act)
    grid = torch.logspace(math.log10(lo), math.log10(hi), n, dtype=torch.float64)
    g = (_mf.q_map(a, grid, sw, sb) - grid).numpy()

    def h(x: float) -> float:
        return float(_mf.q_map(a, x, sw, sb)) - x

    roots = []
    for i in range(n - 1):
        if g[i] == 0.0:
            roots.append(float(grid[i]))
        elif g[i] * g[i + 1] < 0:
            roots.append(brentq(h, float(grid[i]), float(grid[i + 1]), xtol=1e-14, rtol=1e-13))
    q = torch.tensor(roots, dtype=torch.float64)
    slope = _mf.q_map_slope(a, q, sw, sb) if len(roots) else torch.zeros(0, dtype=torch.float64)
    return FixedPoints(q, slope, slope.abs() < 1)


# --------------------------------------------------------------------------- #
# 2. An exact (non-asymptotic) EOC: the theta = 2 Weibull pair in closed form
# --------------------------------------------------------------------------- #
def box_muller_activation(kind: str = "odd") -> _acts.Activation:
    r"""The activations paired with symmetric Weibull(2) weights, in closed form.

    With :math:`W = \pm\sqrt{E}`, :math:`E \sim \mathrm{Exp}(1)` (the symmetric Weibull
    law :math:`\mathcal W(2, 1)`, :func:`sample_weibull2`) and :math:`X \sim \mathcal N(0,1)`,

    .. math::

        \phi^{\mathrm o}_2(x) = \sqrt 2\,\sin\!\big(\pi(\Phi(x) - \tfrac12)\big), \qquad
        \phi^{\mathrm p}_2(x) = \sqrt 2\,\sin\!\big(\tfrac\pi2 \Phi(x)\big)

    both give :math:`W\phi(X) \sim \mathcal N(0, 1)` exactly: :math:`\phi(X)` is
    :math:`\sqrt 2\sin` of a uniform angle, and :math:`\sqrt{2E}\,\sin U` is the
    Box-Muller construction of a standard Gaussian.  These are the :math:`\theta = 2`
    end points of Wolinski & Arbel's families :math:`\phi^{\mathrm o}_\theta`,
    :math:`\phi^{\mathrm p}_\theta` (their Sec. 4; the closed forms are derived in the
    book, the paper computes general :math:`\theta` numerically).

    Raises
    ------
    ValueError
        If ``kind`` is not ``"odd"`` or ``"positive"``.
    """
    if kind not in ("odd", "positive"):
        raise ValueError(f"kind must be 'odd' or 'positive'; got {kind!r}")
    from . import gaussian_preact as _gp  # the general-theta families; theta = 2 is their closed form

    return _gp.activation(2.0, kind)


def sample_weibull2(shape: Sequence[int], generator: Optional[torch.Generator] = None,
                    device=None, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Samples of the symmetric Weibull law :math:`\mathcal W(2, 1)`: :math:`W = S\sqrt{E}`.

    :math:`S = \pm 1` with probability 1/2, :math:`E \sim \mathrm{Exp}(1)`, so
    :math:`P(|W| > t) = e^{-t^2}` and :math:`\mathbb E W^2 = \Gamma(2) = 1`
    (Wolinski & Arbel 2025, Sec. 4, with :math:`\theta = 2`).

    Raises
    ------
    ValueError
        If ``shape`` has a negative entry.
    """
    from . import gaussian_preact as _gp

    shape = check_shape(shape, "shape")
    return _gp.weibull_sample(shape, 2.0, generator=generator, device=device, dtype=dtype)


class ExactEOC(NamedTuple):
    """EOC quantities of a weight-law/activation pair with exactly Gaussian pre-activations."""

    q_star: float
    second_moment_w: float
    chi_1: float
    poincare_bound: float


def exact_eoc(kind: str = "odd") -> ExactEOC:
    r"""Exact EOC quantities of the Weibull(2) pair of :func:`box_muller_activation`.

    If every pre-activation of a layer is exactly :math:`\mathcal N(0, 1)` and the
    neurons are independent (the paper's independence assumption), the next layer's
    pre-activations are exactly :math:`\mathcal N(0,1)` at *every* width: the variance
    fixed point :math:`q^* = 1` holds without an infinite-width limit.  The slope of the
    correlation map at :math:`c = 1` is then

    .. math::

        \chi_1 = \mathbb E[W^2]\;\mathbb E[\phi'(X)^2], \qquad X \sim \mathcal N(0, 1),

    and the Gaussian Poincaré inequality gives
    :math:`\chi_1 \ge \mathbb E[W^2]\,\mathrm{Var}\,\phi(X)` (``poincare_bound``), which
    equals 1 for the odd activation: an odd pair with exactly Gaussian pre-activations
    is never in the ordered phase.  (Wolinski & Arbel 2025 build an exact EOC analysis for
    their pairs; this is our closed-form :math:`\theta = 2` instance of it.)

    Raises
    ------
    ValueError
        If ``kind`` is not ``"odd"`` or ``"positive"``.
    """
    act = box_muller_activation(kind)
    ew2 = 1.0
    e_d2 = float(expect(lambda u: act.deriv(u) ** 2, 1.0))
    e_p = float(expect(lambda u: act.fn(u), 1.0))
    e_p2 = float(expect(lambda u: act.fn(u) ** 2, 1.0))
    return ExactEOC(q_star=ew2 * e_p2, second_moment_w=ew2, chi_1=ew2 * e_d2, poincare_bound=ew2 * (e_p2 - e_p**2))


# --------------------------------------------------------------------------- #
# 3. Finite width: pre-activation samples, kurtosis and its prediction
# --------------------------------------------------------------------------- #
class PreactSamples(NamedTuple):
    r"""Output of :func:`sample_preactivations`.

    ``first_unit``: ``(L, n_nets)``, pre-activation of unit 1 of every network at each layer
    (independent samples: one per network); ``kurtosis``: ``(L,)`` excess kurtosis
    :math:`\overline{h^4}/(\overline{h^2})^2 - 3` pooled over all units and networks (moments about
    0: the pre-activations are centred); ``var``: ``(L,)`` pooled second moment;
    ``kurtosis_se``: ``(L,)`` its standard error by batch means (the networks split into 20 groups,
    the spread of the 20 group estimates divided by :math:`\sqrt{20}`; NaN with fewer than 20 networks).
    """

    first_unit: Tensor
    kurtosis: Tensor
    var: Tensor
    kurtosis_se: Tensor


def sample_preactivations(act, sigma_w: float, sigma_b: float, width: int, depth: int, n_nets: int, *,
                          q0: float = 1.0, weights: str = "gaussian", generator: Optional[torch.Generator] = None,
                          device=None, dtype: torch.dtype = torch.float32, chunk: int = 2_000_000) -> PreactSamples:
    r"""Propagate one input through ``n_nets`` independent MLPs of width ``width``.

    Layer rule :math:`h^{l+1}_i = \frac{\sigma_w}{\sqrt n}\sum_j W_{ij}\phi(h^l_j) + \sigma_b b_i`,
    with an input of length :math:`\|x\|^2/n_0 = q_0`, so that :math:`h^1_i \sim
    \mathcal N(0, \sigma_w^2 q_0 + \sigma_b^2)` exactly.

    * ``weights="gaussian"``: :math:`W_{ij}, b_i \sim \mathcal N(0,1)`.  For one input,
      :math:`h^{l+1}` given layer :math:`l` is exactly
      :math:`\sqrt{Q_l}\,g`, :math:`Q_l = \frac{\sigma_w^2}{n}\|\phi(h^l)\|^2 + \sigma_b^2`,
      :math:`g \sim \mathcal N(0, I_n)` -- the one-input case of the "gram" method of
      :func:`sigprop.ensemble.propagate_mlp` -- so no weight matrix is drawn: :math:`O(n)` per
      layer and network (:func:`sigprop.ensemble.conditional_gaussian_layer`).
    * ``weights="weibull2"``: :math:`W_{ij} \sim \mathcal W(2, 1)` (:func:`sample_weibull2`),
      :math:`b = 0`; the first layer keeps Gaussian weights (as in Wolinski & Arbel's code),
      and weight matrices are drawn, :math:`O(n^2)` per layer and network
      (:func:`sigprop.ensemble.random_layer`).

    This function records (the first unit, pooled variances and kurtoses); the layers are
    drawn by the shared samplers of :mod:`sigprop.ensemble`.

    Raises
    ------
    ValueError
        For non-positive sizes, negative scales, ``q0 <= 0`` or an unknown ``weights``.
    """
    a = _acts.get(act)
    sw = check_nonneg(sigma_w, "sigma_w")
    sb = check_nonneg(sigma_b, "sigma_b")
    n = check_int(width, "width")
    L = check_int(depth, "depth")
    m = check_int(n_nets, "n_nets")
    # each layer is drawn from its law given the previous one: O(width) per layer and network
    check_budget(f"sample_preactivations(width={n}, depth={L}, n_nets={m})",
                 seconds=float(n) * L * m * 1e-8, nbytes=float(n) * m * 8 * 4, device=device)
    q0 = check_real(q0, "q0", 0.0, lo_open=True)
    if weights not in ("gaussian", "weibull2"):
        raise ValueError(f"weights must be 'gaussian' or 'weibull2'; got {weights!r}")
    check_generator(generator)
    dev = check_device(device) if device is not None else (generator.device if generator is not None else torch.device("cpu"))
    first = torch.empty((L, m), dtype=torch.float64)

    def draw_weibull2(shape):
        return sample_weibull2(shape, generator=generator, device=dev, dtype=dtype)

    per = n if weights == "gaussian" else n * n
    step = max(1, int(chunk) // per)
    n_groups = 20
    acc = torch.zeros((L, n_groups, 3), dtype=torch.float64)  # per group: sums of h^2, h^4, count
    for s in range(0, m, step):
        k = min(step, m - s)
        h = math.sqrt(sw**2 * q0 + sb**2) * torch.randn((k, n), generator=generator, device=dev, dtype=dtype)
        for layer in range(L):
            if layer > 0:  # the shared layer samplers of sigprop.ensemble
                x = a.fn(h)
                if weights == "gaussian":
                    h = conditional_gaussian_layer(x, sw, sb, generator=generator)
                else:
                    h = random_layer(x.unsqueeze(-2), draw_weibull2, n, gain=sw, generator=generator).squeeze(-2)
            hd = h.double()
            first[layer, s:s + k] = hd[:, 0].cpu()
            h2 = hd.square()
            group = (torch.arange(s, s + k, device=h2.device) % n_groups)
            sums = torch.stack([h2.sum(-1), h2.square().sum(-1), torch.full((k,), float(n), dtype=torch.float64,
                                                                             device=h2.device)], -1)
            acc[layer].index_add_(0, group.cpu(), sums.cpu())
    tot = acc.sum(1)
    var = tot[:, 0] / tot[:, 2]
    kurt = tot[:, 1] / tot[:, 2] / var.square() - 3.0
    if m >= n_groups:
        g2 = acc[..., 0] / acc[..., 2]
        kg = acc[..., 1] / acc[..., 2] / g2.square() - 3.0
        se = kg.std(-1, correction=1) / math.sqrt(n_groups)
    else:
        se = torch.full((L,), math.nan, dtype=torch.float64)
    return PreactSamples(first, kurt, var, se)


def kurtosis_prediction(act, sigma_w: float, sigma_b: float, width: int, depth: int, q0: float = 1.0) -> Tensor:
    r"""Leading-order (in 1/width) excess kurtosis of pre-activations, layers 1..depth.

    For one input, :math:`h^{l+1}_i = \sqrt{Q_l}\,g_i` with
    :math:`Q_l = \sigma_b^2 + \frac{\sigma_w^2}{n}\sum_j \phi(h^l_j)^2`, so the
    pre-activation is a Gaussian scale mixture with excess kurtosis
    :math:`\kappa_{l+1} = 3\,\mathrm{Var}(Q_l)/(\mathbb E Q_l)^2`.  To first order in
    :math:`1/n`, with :math:`K_l` the mean-field variance (:func:`sigprop.meanfield.iterate_q`)
    and :math:`\chi_\parallel(K) = \mathcal V'(K)` the slope of the variance map,

    .. math::

        \mathrm{Var}(Q_l) = \frac{\sigma_w^4}{n}\,\mathrm{Var}_{K_l}\!\big[\phi(h)^2\big]
        + \chi_\parallel(K_l)^2\,\mathrm{Var}(Q_{l-1}), \qquad \mathrm{Var}(Q_0) = 0,

    the recursion of the four-point vertex of Roberts, Yaida & Hanin (2022, ch. 4-5),
    written here for the kurtosis.  At criticality with :math:`\chi_\parallel = 1`
    (ReLU with :math:`\sigma_w^2 = 2`, or the :math:`K^* = 0` class) the kurtosis grows
    linearly in depth/width; with :math:`\chi_\parallel < 1` (tanh with
    :math:`\sigma_b > 0`) it saturates at :math:`O(1/n)`.  For ReLU it gives
    :math:`\kappa_l = 15(l-1)/n`.

    Returns
    -------
    Tensor
        ``(depth,)`` float64, :math:`\kappa_1 = 0, \kappa_2, \dots`.

    Raises
    ------
    ValueError
        For non-positive sizes, negative scales or ``q0 <= 0``.
    """
    a = _acts.get(act)
    sw = check_nonneg(sigma_w, "sigma_w")
    sb = check_nonneg(sigma_b, "sigma_b")
    n = check_int(width, "width")
    L = check_int(depth, "depth")
    q0 = check_real(q0, "q0", 0.0, lo_open=True)
    K = sw**2 * q0 + sb**2  # variance of layer 1, exact
    varQ = 0.0
    out = [0.0]
    for _ in range(1, L):
        e2, e4 = expect(lambda u: (a.fn(u) ** 2, a.fn(u) ** 4), K)
        slope = float(_mf.q_map_slope(a, K, sw, sb))
        varQ = sw**4 / n * float(e4 - e2**2) + slope**2 * varQ
        K = sw**2 * float(e2) + sb**2
        out.append(3.0 * varQ / K**2)
    return torch.tensor(out, dtype=torch.float64)


def relu_kurtosis_exact(width, depth: int) -> Tensor:
    r"""Exact excess kurtosis of a ReLU network's pre-activations (He init, no bias, one input).

    With :math:`\sigma_w^2 = 2`, :math:`Q_l = Q_{l-1}\,M_l` where
    :math:`M_l = \frac{2}{n}\sum_i \mathrm{relu}(g_i)^2` are i.i.d. with
    :math:`\mathbb E M = 1`, :math:`\mathbb E M^2 = 1 + 5/n`; hence

    .. math:: \kappa_l = 3\big[(1 + 5/n)^{l-1} - 1\big] \approx 3\,(e^{5(l-1)/n} - 1),

    the one-input case of Hanin & Nica (2019)'s :math:`\exp(5\,\text{depth}/\text{width})`
    law for products of random matrices.  ``width`` may be an int or a tensor.

    Returns
    -------
    Tensor
        ``(depth, *width.shape)`` float64, layers 1..depth.

    Raises
    ------
    ValueError
        For a width < 1 or depth < 1.
    """
    L = check_int(depth, "depth")
    n = real_array(width, "width")
    check_alloc(f"relu_kurtosis_exact to depth {L}", L * max(1, n.numel()), torch.float64, copies=3)
    if bool((n < 1).any()):
        raise ValueError(f"width must be >= 1; got {width!r}")
    ls = torch.arange(1, L + 1, dtype=torch.float64).reshape((-1,) + (1,) * n.ndim)
    return 3.0 * ((1.0 + 5.0 / n) ** (ls - 1) - 1.0)


# --------------------------------------------------------------------------- #
# 4. Real data: the mean-field class-correlation matrices
# --------------------------------------------------------------------------- #
@lru_cache(maxsize=16)
def _c_grid_trajectory(act, n_grid: int, q0: float, sigma_w: float, sigma_b: float, depth: int) -> Tensor:
    grid = torch.linspace(-1.0, 1.0, n_grid, dtype=torch.float64)
    return _c_trajectory(act, grid, q0, sigma_w, sigma_b, depth)


def _c_trajectory(act, c0: Tensor, q0: float, sigma_w: float, sigma_b: float, depth: int) -> Tensor:
    """Correlations c^0 (inputs), c^1..c^depth (pre-activations) of input pairs of length q0.

    Layer 1 is affine in the inputs: q^1 = sw^2 q0 + sb^2, q^1_12 = sw^2 c0 q0 + sb^2; then the
    covariance map (closed forms used where the activation has one).
    """
    out = [c0]
    if depth == 0:
        return torch.stack(out)
    q = torch.full_like(c0, sigma_w**2 * float(q0) + sigma_b**2)
    q12 = sigma_w**2 * c0 * float(q0) + sigma_b**2
    out.append((q12 / q).clamp(-1.0, 1.0))
    for _ in range(depth - 1):
        q, _, q12 = _mf.covariance_map(act, q, q, q12, sigma_w, sigma_b)
        out.append((q12 / q).clamp(-1.0, 1.0))
        q12 = out[-1] * q
    return torch.stack(out)


def mean_field_class_correlation(act, sigma_w: float, sigma_b: float, corr_in: Tensor, labels: Tensor,
                                 n_classes: int, layers: Sequence[int], q0: float = 1.0,
                                 n_grid: int = 129) -> Tensor:
    r"""Mean-field prediction of the class-correlation matrices :math:`C^l_{pq}`.

    Every pair of inputs (all of length :math:`\|x\|^2/n_0 = q_0`) with input correlation
    :math:`c^0_{ab}` gives first-layer pre-activations of variance :math:`q^1 = \sigma_w^2 q_0 +
    \sigma_b^2` and correlation :math:`c^1_{ab} = (\sigma_w^2 q_0 c^0_{ab} + \sigma_b^2)/q^1`; then
    it is mapped through the correlation map,
    :math:`c^{l+1}_{ab} = \mathcal C(c^l_{ab}; q^l)` (Poole et al. 2016; one step of
    :func:`sigprop.meanfield.covariance_map` per layer), evaluated on a grid of ``n_grid`` values of
    :math:`c^0 \in [-1, 1]` and interpolated linearly; the predicted :math:`c^l_{ab}` are
    then averaged by class with :func:`sigprop.stats.class_correlation_matrix` (pairs
    ``a != b`` in the diagonal blocks).

    Returns
    -------
    Tensor
        ``(len(layers), n_classes, n_classes)`` float64.

    Raises
    ------
    ValueError
        For a non-square ``corr_in``, a layer < 0, ``n_grid < 3`` or bad scales.
    """
    from .stats import class_correlation_matrix

    corr = real_array(corr_in, "corr_in").cpu()
    if corr.ndim != 2 or corr.shape[0] != corr.shape[1]:
        raise ValueError(f"corr_in must be a square matrix; got shape {tuple(corr.shape)}")
    lays = [int(x) for x in layers]
    if any(x < 0 for x in lays) or not lays:
        raise ValueError(f"layers must be non-negative integers; got {layers!r}")
    g = check_int(n_grid, "n_grid", 3)
    sw = check_nonneg(sigma_w, "sigma_w")
    sb = check_nonneg(sigma_b, "sigma_b")
    c_traj = _c_grid_trajectory(_acts.get(act), g, float(q0), sw, sb, max(lays))
    out = []
    x = corr.clamp(-1, 1)
    pos = (x + 1.0) / 2.0 * (g - 1)
    i0 = pos.floor().clamp(0, g - 2).long()
    t = pos - i0
    for lay in lays:
        cl = c_traj[lay]
        pred = (1 - t) * cl[i0] + t * cl[i0 + 1]
        pred.fill_diagonal_(1.0)
        out.append(class_correlation_matrix(pred, torch.as_tensor(labels).cpu(), n_classes))
    return torch.stack(out)
