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

The chapter's equations, one function each:

* the length map :math:`\mathcal V` (:func:`q_map`), its slope (:func:`q_map_slope`), its fixed
  point :math:`q^*` (:func:`q_star`) and trajectory (:func:`iterate_q`);
* :math:`\chi_1` (:func:`chi_1`), the order/chaos criterion;
* the correlation map :math:`\mathcal C` (:func:`c_map`, :func:`c_map_slope`), the two-input
  kernel for unequal lengths (:func:`covariance_map`), the fixed point :math:`c^*` (:func:`c_star`),
  :math:`\chi_c` (:func:`chi_c`) and the joint trajectory (:func:`iterate_c`);
* the depth scales :math:`\xi_q`, :math:`\xi_c` (:func:`xi_q`, :func:`xi_c`);
* the edge of chaos :math:`\chi_1 = 1` (:func:`eoc_sigma_w`, :func:`eoc_curve`);
* per-layer forward and backward variances of a given MLP (:func:`layer_variances`);
* the phase diagram on a :math:`(\sigma_w, \sigma_b)` grid (:func:`phase_diagram`).

How they are solved (Gaussian moments, safeguarded Newton, the shared moment table of large
grids, the divergence test) is in the private module ``sigprop._meanfield_solvers``.

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
from ._checks import check_budget, check_int, real_tensor, shown
from ._meanfield_solvers import (
    _c_map_and_slope, _chi_c_at, _d2_at_zero, _depth_scale, _eoc_solve, _grid_moments, _kernel, _moments_q,
    _solve_c_star, _solve_q_star,
)
from .gaussian import expect

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
        raise ValueError(f"sigma_w must be finite and >= 0 (a standard deviation); {shown(sw, torch.isfinite(sw) & (sw >= 0))}")
    if not torch.isfinite(sb).all() or (sb < 0).any():
        raise ValueError(f"sigma_b must be finite and >= 0 (a standard deviation); {shown(sb, torch.isfinite(sb) & (sb >= 0))}")


def _check_q(q: Tensor, name: str = "q") -> None:
    if torch.isnan(q).any() or (q < 0).any():
        raise ValueError(f"{name} must be >= 0 (a variance); got min {float(q.min())}")


def _check_c(c: Tensor, name: str = "c") -> None:
    if torch.isnan(c).any() or (c.abs() > 1).any():
        raise ValueError(f"{name} must lie in [-1, 1] (a correlation); got range [{float(c.min())}, {float(c.max())}]")


def _out(t: Tensor, scalar: bool):
    return float(t) if scalar else t


# --------------------------------------------------------------------------- #
# the equations
# --------------------------------------------------------------------------- #


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
    if (qs == 0).any():
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
        raise ValueError(f"sigma_b must be finite and >= 0 (a standard deviation); {shown(sb, torch.isfinite(sb) & (sb >= 0))}")
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
        if isinstance(sigma_w, (str, bytes)):
            raise TypeError
        sws = list(sigma_w)
    except TypeError:
        raise ValueError(f"sigma_w must be a sequence of per-layer scales (sigma_w_1, ..., sigma_w_L); got {sigma_w!r}") from None
    depth = len(sws)
    check_budget(f"layer_variances of {depth} layers", seconds=depth * 1e-3)  # ~0.4 ms a layer measured
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
        raise ValueError(f"sigma_w and sigma_b must be 1-D grids; got shapes {tuple(sw.shape)} and {tuple(sb.shape)}")
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
