r"""Mean-field signal propagation in residual networks, and their effective cumulant.

For the residual network :math:`h^l = W^l x^{l-1} + b^l`, :math:`x^l = x^{l-1} + \phi(h^l)`,
:math:`W^l_{ij} \sim \mathcal N(0, \sigma_w^2/(NL))`, :math:`b^l_i \sim \mathcal N(0, \sigma_b^2)`
(:mod:`sigprop.ensemble.resnet`), the spectrum of the input-output Jacobian in the limit of
large width and depth depends on the activation only through the **effective cumulant**
(Tarnowski et al. 2019, eq. 22)

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

.. rubric:: Public API

* :func:`resnet_mean_field` -- the recursion: :math:`q^l, p^l, m^l, c_l` per layer.
* :func:`effective_cumulant` -- :math:`a` for an activation, :math:`\sigma_w`, depth.
* :func:`sigma_w_for_cumulant` -- the :math:`\sigma_w` that gives a target :math:`a`.

References
----------
Tarnowski, Warchoł, Jastrzębski, Tabor & Nowak (2019), *Dynamical isometry is achieved in
residual networks in a universal way for any activation function*, AISTATS, Sec. II.2-II.3.
"""
from __future__ import annotations

import math
import numbers
from typing import Dict, Union

import numpy as np
import torch

from . import activations as _acts
from ._checks import check_int, real_array as _as_t
from .gaussian import expect

Tensor = torch.Tensor
Param = Union[float, int, Tensor, np.ndarray]

__all__ = ["resnet_mean_field", "effective_cumulant", "sigma_w_for_cumulant"]


def _check_depth(depth) -> int:
    return check_int(depth, "depth", 1)


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
    L = _check_depth(depth)
    sw = _as_t(sigma_w, "sigma_w", low=0.0)
    sb = _as_t(sigma_b, "sigma_b", low=0.0)
    p = _as_t(p0, "p0", low=0.0, strict=True)
    m = _as_t(m0, "m0")
    if bool(torch.any(m * m > p * (1 + 1e-12))):
        raise ValueError(f"m0 must satisfy m0^2 <= p0 (a mean cannot exceed the root mean square); got m0={m0!r}, p0={p0!r}")
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
    single parameter of the universal law :func:`sigprop.spectra.resnet_spectral_density`.
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
