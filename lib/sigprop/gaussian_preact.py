r"""Gaussian pre-activations by construction: symmetric Weibull weights and matched activations.

Wolinski & Arbel (2025) look for a weight law :math:`\mathrm P` and an activation
:math:`\phi` such that

.. math::

    W \sim \mathrm P,\; X \sim \mathcal N(0, 1) \text{ independent}
    \;\Longrightarrow\; W\,\phi(X) \sim \mathcal N(0, 1).

With such a pair a neuron :math:`Z = n^{-1/2}\sum_{i=1}^n W_i\,\phi(X_i)` fed by
independent :math:`\mathcal N(0,1)` inputs is exactly :math:`\mathcal N(0, 1)` for
every width :math:`n`. They take the symmetric Weibull law :math:`\mathcal W(\theta, 1)`,
:math:`P(|W| > t) = e^{-t^\theta}`, which works for every :math:`\theta \ge 2`. This
module computes every piece:

* the weights: :func:`weibull_pdf`, :func:`weibull_cdf`, :func:`weibull_sample`,
  :func:`weibull_abs_moment`, :func:`weibull_init` (a sampler for :mod:`sigprop.train`);
* the law :math:`\mathrm Q_\theta` of :math:`Y = \phi(X)`: :func:`q_abs_moment`,
  :func:`q_pdf`, :func:`q_cdf`, :func:`q_survival`, and an exact sampler
  :func:`q_sample`;
* the two activation families: :func:`phi` (odd, :math:`\phi^{\mathrm o}_\theta`, and
  positive, :math:`\phi^{\mathrm p}_\theta`), :func:`phi_derivative` and
  :func:`activation` (an :class:`~sigprop.activations.Activation` for
  :mod:`sigprop.meanfield` and :mod:`sigprop.train`);
* the layer rule: :func:`propagate` (many random networks, one scalar input) and
  :func:`make_mlp` (a trainable ``torch.nn.Sequential``);
* the correlation map of the family: :func:`c_map_theta`, :func:`chi_1_theta` (named apart from
  :func:`sigprop.meanfield.c_map` and :func:`sigprop.meanfield.chi_1`, which take :math:`\sigma_w, \sigma_b`).

.. rubric:: How :math:`\mathrm Q_\theta` is computed

By Mellin inversion with one FFT, then cubic Hermite tables of the activations; the method, its
measured accuracy (Gaussian moments of :math:`\phi_\theta` exact to a relative 1e-9) and its cost are
described in the private module ``sigprop._qtheta_numerics``, which holds that code.

References
----------
* Wolinski & Arbel (2025), *Gaussian Pre-Activations in Neural Networks: Myth or
  Reality?*, TMLR; arXiv:2205.12379.
* Kanter (1975), *Stable densities under change of scale and total variation
  inequalities* (the representation used by :func:`q_sample`).
"""
from __future__ import annotations

import math
import numbers
from functools import lru_cache
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ._checks import resolve_device, check_budget, check_int, real_tensor, check_alloc
from . import activations as _activations
from .ensemble import conditional_gaussian_layer, random_layer
from ._deprecation import renamed_function
from ._qtheta_numerics import _PhiFunction, _arcsine_survival, _closed_form, _npdf, _table, _table_eval

Tensor = torch.Tensor
Number = Union[float, int]

__all__ = [
    "PAPER_THETAS", "FAMILIES",
    "weibull_pdf", "weibull_cdf", "weibull_sample", "weibull_abs_moment", "weibull_init",
    "q_abs_moment", "q_second_moment", "q_pdf", "q_cdf", "q_survival", "q_sample",
    "phi", "phi_derivative", "activation",
    "propagate", "make_mlp", "c_map_theta", "chi_1_theta",
]

#: The values of :math:`\theta` used throughout the paper's figures.
PAPER_THETAS = (2.05, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0)
#: The two activation families: ``"odd"`` (:math:`\phi^{\mathrm o}_\theta`) and ``"positive"`` (:math:`\phi^{\mathrm p}_\theta`).
FAMILIES = ("odd", "positive")

_THETA_MIN_NUMERIC = 2.01   # below this (and above 2) the Mellin transform decays too slowly
_SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------- #
# argument checks
# --------------------------------------------------------------------------- #
def _check_theta(theta, name: str = "theta", allow_inf: bool = True) -> float:
    """theta must be 2, a real >= 2.01, or (where allowed) inf."""
    if isinstance(theta, bool) or not isinstance(theta, numbers.Real) or math.isnan(float(theta)):
        raise ValueError(f"{name} must be a real number equal to 2 or >= {_THETA_MIN_NUMERIC}"
                         f"{' (or inf)' if allow_inf else ''}; got {theta!r}")
    t = float(theta)
    if math.isinf(t):
        if t > 0 and allow_inf:
            return t
        raise ValueError(f"{name} must be finite here (2 or >= {_THETA_MIN_NUMERIC}); got {theta!r}")
    if t == 2.0 or t >= _THETA_MIN_NUMERIC:
        return t
    raise ValueError(f"{name} must equal 2 or be >= {_THETA_MIN_NUMERIC} (no Q_theta exists below 2, and "
                     f"between 2 and {_THETA_MIN_NUMERIC} it is not computed); got {theta!r}")


def _check_weibull_theta(theta) -> float:
    if isinstance(theta, bool) or not isinstance(theta, numbers.Real) or not math.isfinite(float(theta)) \
            or float(theta) <= 0:
        raise ValueError(f"theta must be a finite real number > 0 (the Weibull shape); got {theta!r}")
    return float(theta)


def _check_family(family) -> str:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}; got {family!r}")
    return family


def _as_tensor(x) -> Tensor:
    if isinstance(x, Tensor):
        if x.is_complex() or x.dtype == torch.bool:
            raise ValueError(f"input must be a real tensor; got dtype {x.dtype}")
        return x if x.is_floating_point() else x.to(torch.float64)
    return real_tensor(x, "input")


def _shape(shape) -> Tuple[int, ...]:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a sequence of non-negative integers; got {shape!r}") from None
    if any(d < 0 for d in dims) or any(int(d) != d for d in shape):
        raise ValueError(f"shape must be a sequence of non-negative integers; got {shape!r}")
    return dims



# --------------------------------------------------------------------------- #
# The symmetric Weibull law W(theta, 1)
# --------------------------------------------------------------------------- #
def weibull_pdf(t, theta: float) -> Tensor:
    r"""Density of the symmetric Weibull law :math:`\mathcal W(\theta, 1)` (Wolinski & Arbel 2025, Sec. 4).

    .. math:: f_W(t) = \frac{\theta}{2}\,|t|^{\theta - 1} e^{-|t|^\theta}

    Parameters
    ----------
    t : float or Tensor
        Points (any shape, any device).
    theta : float
        Shape :math:`\theta > 0`.

    Raises
    ------
    ValueError
        If ``theta`` is not a finite number > 0.
    """
    theta = _check_weibull_theta(theta)
    a = _as_tensor(t).abs()
    return 0.5 * theta * a.pow(theta - 1.0) * torch.exp(-a.pow(theta))


def weibull_cdf(t, theta: float) -> Tensor:
    r"""CDF of :math:`\mathcal W(\theta, 1)`: :math:`F_W(t) = \tfrac12 + \tfrac12\operatorname{sgn}(t)\,(1 - e^{-|t|^\theta})`.

    (The survival of :math:`|W|` is :math:`e^{-t^\theta}`; the README of the authors' code
    writes :math:`e^{-|t|^\theta}` in place of :math:`1 - e^{-|t|^\theta}`, a typo.)

    Raises
    ------
    ValueError
        If ``theta`` is not a finite number > 0.
    """
    theta = _check_weibull_theta(theta)
    t = _as_tensor(t)
    return 0.5 - 0.5 * torch.sign(t) * torch.expm1(-t.abs().pow(theta))


def weibull_abs_moment(p, theta: float):
    r"""Absolute moment :math:`\mathbb E|W|^p = \Gamma(1 + p/\theta)` of :math:`\mathcal W(\theta, 1)`, :math:`p > -\theta`.

    :math:`\mathbb E W^2 = \Gamma(1 + 2/\theta)` (below 1 for :math:`\theta > 2`, at least
    0.8856 near :math:`\theta = 4.33`), and the kurtosis is
    :math:`\Gamma(1+4/\theta)/\Gamma(1+2/\theta)^2`. Scalars in, float out; tensors in, tensor out.

    Raises
    ------
    ValueError
        If ``theta`` is not a finite number > 0 or some ``p <= -theta``.
    """
    theta = _check_weibull_theta(theta)
    if isinstance(p, Tensor):
        if not bool((p > -theta).all()):  # nan is refused too
            raise ValueError(f"p must be > -theta = {-theta}; got {p}")
        return torch.exp(torch.lgamma(1.0 + p.to(torch.float64) / theta))
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not p > -theta:
        raise ValueError(f"p must be a real number > -theta = {-theta}; got {p!r}")
    return math.gamma(1.0 + float(p) / theta)


def weibull_sample(shape, theta: float, *, generator: Optional[torch.Generator] = None, device=None,
                   dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Draw i.i.d. :math:`W \sim \mathcal W(\theta, 1)`: :math:`W = \varepsilon\,E^{1/\theta}`.

    :math:`E \sim \mathrm{Exp}(1)` and an independent sign :math:`\varepsilon = \pm 1`, both
    from ``generator`` (so the draw is reproducible on its device). ``device`` defaults to
    the generator's device, else :func:`sigprop.runtime.device`.

    Raises
    ------
    ValueError
        If ``theta`` is not a finite number > 0, ``shape`` is malformed, or ``dtype`` is not floating.
    """
    theta = _check_weibull_theta(theta)
    dims = _shape(shape)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype; got {dtype!r}")
    dev = resolve_device(device, generator)
    gdev = generator.device if generator is not None else dev
    check_alloc(f"weibull_sample of shape {dims}", math.prod(dims), dtype, gdev, copies=2)
    e = torch.empty(dims, device=gdev, dtype=dtype).exponential_(1.0, generator=generator)
    sign = torch.empty(dims, device=gdev, dtype=dtype).bernoulli_(0.5, generator=generator).mul_(2.0).sub_(1.0)
    return (e.pow_(1.0 / theta).mul_(sign)).to(dev)


def weibull_init(theta: float):
    r"""A weight sampler for :func:`sigprop.train.make_mlp` and :class:`sigprop.ensemble.MLPConfig`:
    :math:`W_{ij} = \mathrm{gain}\cdot V_{ij}/\sqrt{n_\text{in}}`, :math:`V_{ij} \sim \mathcal W(\theta, 1)`.

    The returned callable has the signature of the samplers of :mod:`sigprop.init`,
    ``sampler(shape, *, generator=None, device=None, dtype=torch.float32, gain=1.0)``, with
    ``shape = (..., fan_out, fan_in)``. Per-entry variance: :math:`\mathrm{gain}^2\,\Gamma(1+2/\theta)/n_\text{in}`.

    Raises
    ------
    ValueError
        If ``theta`` is not a finite number > 0.
    """
    theta = _check_weibull_theta(theta)

    def sampler(shape, *, generator=None, device=None, dtype=torch.float32, gain=1.0):
        dims = _shape(shape)
        if len(dims) < 2 or dims[-1] < 1:
            raise ValueError(f"shape must be (..., fan_out, fan_in) with fan_in >= 1; got {shape!r}")
        w = weibull_sample(dims, theta, generator=generator, device=device, dtype=dtype) / math.sqrt(dims[-1])
        if isinstance(gain, Tensor):
            return w * gain.to(w)[..., None, None]
        return w * float(gain)

    sampler.__name__ = f"weibull_init_{theta:g}"
    return sampler


# --------------------------------------------------------------------------- #
# Q_theta: its moments, and its survival function and density by Mellin-FFT inversion
# --------------------------------------------------------------------------- #
def q_abs_moment(p, theta: float) -> float:
    r"""Absolute moment of :math:`Y \sim \mathrm Q_\theta`, the law with :math:`WY \sim \mathcal N(0, 1)`.

    .. math::

        \mathbb E|Y|^p = \frac{\mathbb E|G|^p}{\mathbb E|W|^p}
        = \frac{2^{p/2}\,\Gamma\!\big(\frac{p+1}2\big)}{\sqrt\pi\,\Gamma(1 + p/\theta)},\qquad p > -1

    (independence of :math:`W` and :math:`Y` factorises the moments of :math:`|G| = |W||Y|`;
    Wolinski & Arbel 2025). ``theta = inf`` gives the moments of :math:`|\mathcal N(0,1)|`.

    Raises
    ------
    ValueError
        If ``theta`` is not 2, >= 2.01 or inf, or ``p <= -1``.
    """
    theta = _check_theta(theta)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not p > -1:
        raise ValueError(f"p must be a real number > -1; got {p!r}")
    p = float(p)
    lw = 0.0 if math.isinf(theta) else math.lgamma(1.0 + p / theta)
    return math.exp(0.5 * p * math.log(2.0) + math.lgamma(0.5 * (p + 1.0)) - 0.5 * math.log(math.pi) - lw)


def q_second_moment(theta: float) -> float:
    r""":math:`\mathbb E Y^2 = \mathbb E[\phi_\theta(X)^2] = 1/\Gamma(1 + 2/\theta)`, so that :math:`\mathbb E W^2\,\mathbb E Y^2 = 1`.

    Raises
    ------
    ValueError
        If ``theta`` is not 2, >= 2.01 or inf.
    """
    theta = _check_theta(theta)
    return 1.0 if math.isinf(theta) else 1.0 / math.gamma(1.0 + 2.0 / theta)


def _to_numpy(y) -> Tuple[np.ndarray, Optional[Tensor]]:
    if isinstance(y, Tensor):
        if y.is_complex() or y.dtype == torch.bool:
            raise ValueError(f"y must be a real tensor; got dtype {y.dtype}")
        return y.detach().to("cpu", torch.float64).numpy(), y
    return np.asarray(y, dtype=np.float64), None


def _back(a: np.ndarray, like: Optional[Tensor]):
    t = torch.as_tensor(a, dtype=torch.float64)
    if like is not None:
        return t.to(device=like.device, dtype=like.dtype if like.is_floating_point() else torch.float64)
    return t


def q_survival(y, theta: float) -> Tensor:
    r"""Survival function :math:`S_{|Y|}(y) = P(|Y| > y)` of :math:`|Y|`, :math:`Y \sim \mathrm Q_\theta`.

    Computed by Mellin inversion with an FFT (module docstring; absolute error about 1e-14
    on the grid, cubic Hermite interpolation between grid points). Closed forms at
    :math:`\theta = 2` (arcsine law: :math:`1 - \tfrac2\pi\arcsin(y/\sqrt2)`) and :math:`\theta = \infty`
    (:math:`2\bar\Phi(y)`).

    Raises
    ------
    ValueError
        If ``theta`` is not 2, >= 2.01 or inf.
    """
    theta = _check_theta(theta)
    a, like = _to_numpy(y)
    a = np.abs(a)
    if theta == 2.0:
        return _back(_arcsine_survival(a), like)
    if math.isinf(theta):
        from scipy.special import ndtr

        return _back(2.0 * ndtr(-a), like)
    return _back(_table(theta).survival(a), like)


def q_cdf(y, theta: float) -> Tensor:
    r"""CDF of the symmetric law :math:`\mathrm Q_\theta`: :math:`F_Y(y) = \tfrac12 + \tfrac12\operatorname{sgn}(y)(1 - S_{|Y|}(|y|))`.

    Raises
    ------
    ValueError
        If ``theta`` is not 2, >= 2.01 or inf.
    """
    a, like = _to_numpy(y)
    s = q_survival(np.abs(a), theta).numpy()
    return _back(0.5 + 0.5 * np.sign(a) * (1.0 - s), like)


def q_pdf(y, theta: float) -> Tensor:
    r"""Density of :math:`\mathrm Q_\theta` (symmetric): :math:`f_Y(y) = \tfrac12 f_{|Y|}(|y|)`.

    :math:`f_{|Y|}` comes from the same Mellin-FFT inversion as :func:`q_survival`
    (with its slope, for cubic Hermite interpolation between grid points); it starts at
    :math:`f_{|Y|}(0) = \sqrt{2/\pi}/\Gamma(1 - 1/\theta)` and equals the entire series
    :math:`f_{|Y|}(y) = \sqrt{2/\pi}\sum_k (-y^2/2)^k / (k!\,\Gamma(1 - \frac{2k+1}\theta))`.
    At :math:`\theta = 2` it is the arcsine density :math:`1/(\pi\sqrt{2 - y^2})` on
    :math:`|y| < \sqrt2`.

    Raises
    ------
    ValueError
        If ``theta`` is not 2, >= 2.01 or inf.
    """
    theta = _check_theta(theta)
    a, like = _to_numpy(y)
    a = np.abs(a)
    if theta == 2.0:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(a < _SQRT2, 1.0 / (math.pi * np.sqrt(np.clip(2.0 - a * a, 1e-300, None))), 0.0)
        return _back(out, like)
    if math.isinf(theta):
        return _back(_npdf(a), like)
    return _back(0.5 * _table(theta).density(a), like)


def q_sample(shape, theta: float, *, generator: Optional[torch.Generator] = None, device=None,
             dtype: torch.dtype = torch.float64) -> Tensor:
    r"""Exact sampler of :math:`Y \sim \mathrm Q_\theta`, independent of the activation tables.

    With :math:`\alpha = 2/\theta`, :math:`U \sim \mathcal U(0, \pi)`, :math:`E \sim \mathrm{Exp}(1)`
    and :math:`\Theta \sim \mathcal U(0, 2\pi)` independent,

    .. math::

        Y = \sqrt2\cos\Theta\;\Big(\frac{E}{A(U)}\Big)^{(1-\alpha)/2},\qquad
        A(u) = \Big(\frac{\sin\alpha u}{\sin u}\Big)^{\frac1{1-\alpha}}\frac{\sin(1-\alpha)u}{\sin\alpha u}.

    Derivation (ours; the paper computes :math:`\mathrm Q_\theta` differently):
    :math:`(E/A(U))^{(1-\alpha)/\alpha}` is a positive :math:`\alpha`-stable variable :math:`S` with
    :math:`\mathbb E e^{-\lambda S} = e^{-\lambda^\alpha}` (Kanter 1975), and for
    :math:`|W|^\theta = E' \sim \mathrm{Exp}(1)` one has :math:`P((E'/S)^\alpha > x) = \mathbb E e^{-x^{1/\alpha} S} = e^{-x}`,
    so :math:`|W| S^{-1/\theta}` is :math:`\sqrt{\mathrm{Exp}(1)}` and :math:`W Y` is Gaussian by
    Box-Muller. At :math:`\theta = 2` it is the arcsine law, at :math:`\theta = \infty` the Gaussian.
    The sign of :math:`Y` comes from :math:`\cos\Theta`.

    Raises
    ------
    ValueError
        If ``theta`` is not 2, >= 2.01 or inf, ``shape`` is malformed or ``dtype`` not floating.
    """
    theta = _check_theta(theta)
    dims = _shape(shape)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype; got {dtype!r}")
    dev = resolve_device(device, generator)
    gdev = generator.device if generator is not None else dev
    check_alloc(f"q_sample of shape {dims}", math.prod(dims), torch.float64, gdev, copies=3)
    ang = torch.rand(dims, generator=generator, device=gdev, dtype=torch.float64) * (2.0 * math.pi)
    if math.isinf(theta):
        e = torch.empty(dims, device=gdev, dtype=torch.float64).exponential_(1.0, generator=generator)
        return (torch.sqrt(2.0 * e) * torch.cos(ang)).to(device=dev, dtype=dtype)
    if theta == 2.0:
        return (_SQRT2 * torch.cos(ang)).to(device=dev, dtype=dtype)
    alpha = 2.0 / theta
    u = torch.rand(dims, generator=generator, device=gdev, dtype=torch.float64).mul_(math.pi).clamp_(1e-300, math.pi)
    e = torch.empty(dims, device=gdev, dtype=torch.float64).exponential_(1.0, generator=generator)
    log_a = (torch.log(torch.sin(alpha * u)) - torch.log(torch.sin(u))) / (1.0 - alpha) \
        + torch.log(torch.sin((1.0 - alpha) * u)) - torch.log(torch.sin(alpha * u))
    m = torch.exp(0.5 * (1.0 - alpha) * (torch.log(e) - log_a))
    return (_SQRT2 * torch.cos(ang) * m).to(device=dev, dtype=dtype)


# --------------------------------------------------------------------------- #
# The activations
# --------------------------------------------------------------------------- #


def _prep(x) -> Tensor:
    t = x if isinstance(x, Tensor) else real_tensor(x, "x")
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"x must be a real tensor; got dtype {t.dtype}")
    return t if t.is_floating_point() else t.to(torch.float64)


def phi(x, theta: float, family: str = "odd") -> Tensor:
    r"""The activation :math:`\phi_\theta` that makes :math:`W\phi_\theta(X) \sim \mathcal N(0, 1)` for :math:`W \sim \mathcal W(\theta, 1)`.

    .. math::

        \phi^{\mathrm o}_\theta(x) = F_{\mathrm Q_\theta}^{-1}\big(\Phi(x)\big),\qquad
        \phi^{\mathrm p}_\theta(x) = F_{|Y|}^{-1}\big(\Phi(x)\big)
        = \phi^{\mathrm o}_\theta\big(\Phi^{-1}(\tfrac{1 + \Phi(x)}{2})\big)

    (Wolinski & Arbel 2025, Sec. 4 and Fig. 5). Both are increasing; :math:`\phi^{\mathrm o}` is odd
    and :math:`\phi^{\mathrm p} \ge 0`, both grow like :math:`|x|^{1-2/\theta}`, and
    :math:`\mathbb E\phi_\theta(X)^2 = 1/\Gamma(1 + 2/\theta)`. The positive family works because
    :math:`W|Y|` and :math:`WY` have the same law when :math:`W` is symmetric. Accuracy: see the
    module docstring (relative error of the Gaussian moments below 1e-9 in float64). Computed in the
    dtype of ``x`` (float64 for integer input) on its device; autograd gives :func:`phi_derivative`
    (first derivatives only, through a custom autograd function).

    Parameters
    ----------
    x : float or Tensor
        Points.
    theta : float
        2 (closed form), a real >= 2.01, or ``inf`` (identity for the odd family).
    family : {"odd", "positive"}
        :math:`\phi^{\mathrm o}_\theta` or :math:`\phi^{\mathrm p}_\theta`.

    Raises
    ------
    ValueError
        If ``theta`` is not 2, >= 2.01 or inf, ``family`` is unknown, or ``x`` is complex or
        not numeric. A nan in ``x`` gives nan there (as torch's activations do); +-inf the limits.
    """
    theta = _check_theta(theta)
    family = _check_family(family)
    t, nan = _nan_mask(_prep(x))
    if theta == 2.0 or math.isinf(theta):
        return _restore_nan(_closed_form(t, theta, family)[0], nan)
    return _restore_nan(_PhiFunction.apply(t, theta, family), nan)


def _nan_mask(t: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
    """nan entries are set aside (the table has no index for them) and come back as nan, as
    in torch's own activations; +-inf give the limits."""
    nan = torch.isnan(t)
    if not bool(nan.any()):
        return t, None
    return t.masked_fill(nan, 0.0), nan


def _restore_nan(y: Tensor, nan: Optional[Tensor]) -> Tensor:
    return y if nan is None else y.masked_fill(nan, float("nan"))


def phi_derivative(x, theta: float, family: str = "odd") -> Tensor:
    r"""Derivative :math:`\phi_\theta'(x)` of :func:`phi` (of the same interpolant, so consistent with it).

    Exact relations it approximates: :math:`\phi^{\mathrm o\prime}_\theta(x) = 2\varphi(x)/f_{|Y|}(\phi^{\mathrm o}_\theta(x))`,
    :math:`\phi^{\mathrm p\prime}_\theta(x) = \varphi(x)/f_{|Y|}(\phi^{\mathrm p}_\theta(x))`, with :math:`\varphi` the
    standard normal density.

    Raises
    ------
    ValueError
        If ``theta`` is not 2, >= 2.01 or inf, or ``family`` is unknown.
    """
    theta = _check_theta(theta)
    family = _check_family(family)
    t, nan = _nan_mask(_prep(x))
    if theta == 2.0 or math.isinf(theta):
        return _restore_nan(_closed_form(t, theta, family)[1], nan)
    with torch.no_grad():
        return _restore_nan(_table_eval(t, theta, family)[1], nan)


@lru_cache(maxsize=64)
def activation(theta: float, family: str = "odd") -> _activations.Activation:
    r""":func:`phi` as an :class:`~sigprop.activations.Activation` (not registered), named
    ``"phi_o(theta)"`` or ``"phi_p(theta)"``, for :mod:`sigprop.meanfield`,
    :func:`sigprop.train.make_mlp` and :class:`sigprop.train.Pointwise`.

    Raises
    ------
    ValueError
        If ``theta`` is not 2, >= 2.01 or inf, or ``family`` is unknown.
    """
    theta = _check_theta(theta)
    family = _check_family(family)
    name = f"phi_{family[0]}({theta:g})"
    return _activations.Activation(
        name,
        lambda x: phi(x, theta, family),
        lambda x: phi_derivative(x, theta, family),
        smooth=True,
        odd=family == "odd",
    )


# --------------------------------------------------------------------------- #
# The layer rule
# --------------------------------------------------------------------------- #
def propagate(
    depth: int,
    width: int,
    n_nets: int,
    *,
    theta: Optional[float] = None,
    family: str = "odd",
    act=None,
    sigma_w: float = 1.0,
    sigma_b: float = 0.0,
    units: Optional[int] = None,
    c0: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""Pre-activations of ``n_nets`` independent random MLPs fed with one scalar input; one tensor per layer.

    Layer 1 is Gaussian, :math:`Z^1_j = W^1_j \cdot 1` with :math:`W^1_j \sim \mathcal N(0,1)`, so the
    :math:`Z^1_j` are i.i.d. :math:`\mathcal N(0,1)` (the input :math:`x = 1`, as in the authors' code).
    With ``c0``, every network receives two inputs of unit length and correlation ``c0`` instead:
    :math:`(Z^1_{j,a}, Z^1_{j,b})` are i.i.d. bivariate standard Gaussian with correlation ``c0``, and both
    inputs share every later weight.
    Then, for :math:`l = 1, \dots, L-1` and width :math:`n`:

    * with ``theta`` (Weibull weights; Wolinski & Arbel 2025):

      .. math::

          Z^{l+1}_j = \sqrt{1 - \sigma_b^2}\;\frac{1}{\sqrt n}\sum_{i=1}^{n} W^{l+1}_{ji}\,\phi_\theta(Z^l_i)
          \;+\; \sigma_b B^{l+1}_j,\qquad W \sim \mathcal W(\theta, 1),\; B \sim \mathcal N(0, 1);

    * with ``act`` (the Gaussian baseline of mean-field theory): :math:`Z^{l+1}_j = \frac{\sigma_w}{\sqrt n}\sum_i
      W_{ji}\,\phi(Z^l_i) + \sigma_b B_j` with :math:`W, B \sim \mathcal N(0, 1)`, sampled exactly from its
      conditional law :math:`\mathcal N(0, \sigma_w^2 \lVert\phi(Z^l)\rVert^2/n + \sigma_b^2)` given the previous layer.

    **Constraints for exact** :math:`\mathcal N(0, 1)` **pre-activations** (the paper's, with our
    restatement of the bias rule): (a) :math:`W\phi(X) \sim \mathcal N(0,1)` for each summand, which
    fixes :math:`\mathbb E W^2\,\mathbb E\phi(X)^2 = 1` and leaves no free :math:`\sigma_w`: the
    weights are *not* rescaled beyond :math:`1/\sqrt n`; (b) :math:`W\phi(X)` symmetric, hence
    :math:`W` symmetric for the positive family; (c) tails that match, possible only for
    :math:`\theta \ge 2`; (d) biases, if any, Gaussian, with the budget :math:`\sqrt{1-\sigma_b^2}` so
    that the variance stays 1; (e) the :math:`Z^l_i` of a layer independent of each other and of the
    weights. Under (e) every :math:`Z^l_j` is exactly :math:`\mathcal N(0, 1)` at every width (a
    normalised sum of independent standard Gaussians). (e) holds at layer 2 only: from layer 3 on,
    units of a layer share their inputs and are dependent, and exactness is lost (the paper's
    revised version states the assumption; see the chapter). Cramér's decomposition theorem makes
    (a) necessary as well as sufficient at fixed width.

    Parameters
    ----------
    depth : int
        Number of layers :math:`L \ge 1`.
    width : int
        Width :math:`n \ge 1` of every layer.
    n_nets : int
        Independent networks (one scalar input each).
    theta : float, optional
        Weibull shape (2, >= 2.01 or inf) for the constructed networks; exclusive with ``act``.
    family : {"odd", "positive"}
        Activation family with ``theta``.
    act : str or Activation, optional
        Activation of the Gaussian baseline.
    sigma_w : float
        Weight scale of the Gaussian baseline (must stay 1 with ``theta``).
    sigma_b : float
        Bias scale: Gaussian baseline :math:`\sigma_b \ge 0`; with ``theta`` the bias share, :math:`0 \le \sigma_b < 1`.
    units : int, optional
        Keep the first ``units`` units of every layer (default: all).
    c0 : float, optional
        Propagate two inputs with this correlation (in [-1, 1]) through each network.
    generator : torch.Generator, optional
        Source of every random number.
    device, dtype
        Where and in what precision to simulate.

    Returns
    -------
    Tensor
        ``(depth, n_nets, units)``: :math:`Z^l_j` for each layer, network and kept unit; with ``c0``,
        ``(depth, n_nets, 2, units)``.

    Raises
    ------
    ValueError
        If neither or both of ``theta`` and ``act`` are given, sizes are not positive integers,
        ``sigma_w != 1`` with ``theta``, or ``sigma_b`` is outside its range.
    """
    for nm, v in (("depth", depth), ("width", width), ("n_nets", n_nets)):
        check_int(v, nm, 1)
    # one width x width layer per network: a generous ~1e11 multiply-adds a second (batched)
    check_budget(f"propagate(depth={depth}, width={width}, n_nets={n_nets})",
                 seconds=float(depth) * width * width * n_nets * (2 if c0 is not None else 1) * 1e-11,
                 nbytes=float(width) * width * 8 * 4, device=device)
    if (theta is None) == (act is None):
        raise ValueError("give exactly one of theta (Weibull weights and phi_theta) and act (Gaussian weights)")
    units = width if units is None else units
    if isinstance(units, bool) or not isinstance(units, numbers.Integral) or not 1 <= units <= width:
        raise ValueError(f"units must be an integer in [1, width={width}]; got {units!r}")
    if not isinstance(sigma_b, numbers.Real) or not math.isfinite(sigma_b) or sigma_b < 0:
        raise ValueError(f"sigma_b must be a finite number >= 0; got {sigma_b!r}")
    if not isinstance(sigma_w, numbers.Real) or not math.isfinite(sigma_w) or sigma_w < 0:
        raise ValueError(f"sigma_w must be a finite number >= 0; got {sigma_w!r}")
    if theta is not None:
        theta = _check_theta(theta)
        family = _check_family(family)
        if sigma_w != 1.0:
            raise ValueError(f"sigma_w must be 1 with Weibull weights (constraint (a): the pair fixes the scale); got {sigma_w!r}")
        if sigma_b >= 1.0:
            raise ValueError(f"sigma_b must be in [0, 1) with Weibull weights (the bias share of the unit variance); got {sigma_b!r}")
        fn = activation(theta, family).fn
    else:
        fn = _activations.get(act).fn
    if c0 is not None and (isinstance(c0, bool) or not isinstance(c0, numbers.Real) or not -1.0 <= c0 <= 1.0):
        raise ValueError(f"c0 must be a correlation in [-1, 1]; got {c0!r}")
    dev = resolve_device(device, generator)
    gdev = generator.device if generator is not None else dev
    batch = 1 if c0 is None else 2

    def randn(shape):
        return torch.randn(shape, generator=generator, device=gdev, dtype=dtype).to(dev)

    def weights(shape):  # unit-scale weights: Weibull, Rademacher (theta = inf) or Gaussian
        if theta is None:
            return randn(shape)
        if math.isinf(theta):
            return torch.empty(shape, device=gdev, dtype=dtype).bernoulli_(0.5, generator=generator).mul_(2).sub_(1).to(dev)
        return weibull_sample(shape, theta, generator=generator, device=dev, dtype=dtype)

    out = torch.empty((depth, n_nets, batch, units), device=dev, dtype=dtype)
    z = randn((n_nets, 1, width))
    if c0 is not None:
        z = torch.cat([z, c0 * z + math.sqrt(1.0 - c0 * c0) * randn((n_nets, 1, width))], dim=1)
    out[0] = z[..., :units]
    gain = sigma_w if theta is None else math.sqrt(1.0 - sigma_b**2)
    for l in range(1, depth):  # the shared layer samplers of sigprop.ensemble
        y = fn(z)
        if theta is None and batch == 1:
            # exact conditional law given the previous layer, then the bias
            z = conditional_gaussian_layer(y, sigma_w, 0.0, generator=generator)
            if sigma_b > 0:
                z = z + sigma_b * randn((n_nets, 1, width))
        else:
            z = random_layer(y, weights, width, gain=gain, sigma_b=sigma_b, generator=generator)
        out[l] = z[..., :units]
    return out[:, :, 0] if c0 is None else out


def _unit_gaussian(shape, *, generator=None, device=None, dtype=torch.float32, gain=1.0):
    r"""The first layer of :func:`make_mlp`: :math:`\mathcal N(0, 1/n_0)` weights (drawn on the
    generator's device, then divided by :math:`\sqrt{n_0}`)."""
    gdev = generator.device if generator is not None else device
    w = torch.randn(shape, generator=generator, device=gdev, dtype=dtype).to(device) / math.sqrt(shape[-1])
    return w if gain == 1.0 else w * gain


def make_mlp(widths: Sequence[int], theta: float, family: str = "odd", *,
             generator: Optional[torch.Generator] = None, device=None,
             dtype: torch.dtype = torch.float32) -> nn.Sequential:
    r"""A trainable MLP initialised by the layer rule of :func:`propagate` (no biases' variance, zero biases).

    ``widths`` :math:`= (n_0, \dots, n_L)`: the first layer has Gaussian weights
    :math:`\mathcal N(0, 1/n_0)` (so an input with :math:`\lVert x\rVert^2 = n_0` gives
    :math:`Z^1 \sim \mathcal N(0, 1)` exactly), every later layer, the read-out included, has
    :math:`W_{ij} = V_{ij}/\sqrt{n_\text{in}}` with :math:`V \sim \mathcal W(\theta, 1)`, and the hidden
    activation is :math:`\phi_\theta` of ``family``. Biases are present (trainable) and start at 0.
    Weights are drawn in layer order from ``generator``. It is :func:`sigprop.train.make_mlp` with
    these per-layer initializations and the activation :func:`activation`.

    Raises
    ------
    ValueError
        If ``widths`` has fewer than two entries or one below 1, or ``theta``/``family`` are invalid.
    """
    from . import train  # train imports the data stack: load it only when a model is built

    theta = _check_theta(theta, allow_inf=False)
    family = _check_family(family)
    try:
        ws = [check_int(w, "widths", 1) for w in widths]
    except (TypeError, ValueError):
        raise ValueError(f"widths must be a sequence of integers >= 1; got {widths!r}") from None
    if len(ws) < 2 or any(w < 1 for w in ws):
        raise ValueError(f"widths must hold at least two integers >= 1; got {widths!r}")
    inits = [_unit_gaussian] + [weibull_init(theta)] * (len(ws) - 2)
    return train.make_mlp(ws, activation(theta, family), inits, generator=generator,
                          device=resolve_device(device, generator), dtype=dtype)


# --------------------------------------------------------------------------- #
# Correlations
# --------------------------------------------------------------------------- #
def c_map_theta(c, theta: float, family: str = "odd"):
    r"""Correlation map of the Weibull/:math:`\phi_\theta` network under the Gaussian hypothesis.

    .. math::

        \mathcal C_\theta(c) = \Gamma(1 + 2/\theta)\;\mathbb E\big[\phi_\theta(u_1)\phi_\theta(u_2)\big],\qquad
        (u_1, u_2) \sim \mathcal N\!\big(0, [\begin{smallmatrix}1 & c\\ c & 1\end{smallmatrix}]\big),

    i.e. :func:`sigprop.meanfield.c_map` with :math:`q = 1`, :math:`\sigma_w^2 = \mathbb E W^2 = \Gamma(1+2/\theta)`
    and :math:`\sigma_b = 0`. Its variance fixed point :math:`q^* = 1` holds at every width, but the
    joint law of two inputs' pre-activations need not be bivariate Gaussian, so the map itself is
    an infinite-width (or independence) statement. :math:`\mathcal C_\theta(1) = 1`.

    Raises
    ------
    ValueError
        If ``theta`` or ``family`` is invalid or ``|c| > 1``.
    """
    from . import meanfield

    theta = _check_theta(theta)
    sw = math.sqrt(1.0 / q_second_moment(theta))
    return meanfield.c_map(activation(theta, family), c, 1.0, sw, 0.0)


def chi_1_theta(theta: float, family: str = "odd") -> float:
    r""":math:`\chi_1(\theta) = \Gamma(1 + 2/\theta)\,\mathbb E[\phi_\theta'(X)^2]`, the slope of :func:`c_map_theta` at :math:`c = 1`.

    It depends on :math:`\theta` and the family only (no :math:`\sigma_w` to tune). By the Gaussian
    Poincaré inequality :math:`\mathbb E\phi'(X)^2 \ge \operatorname{Var}\phi(X)`, so
    :math:`\chi_1 \ge 1` for the odd family (equality only for :math:`\theta = \infty`): those
    networks sit on the chaotic side of the edge of chaos.

    Raises
    ------
    ValueError
        If ``theta`` or ``family`` is invalid.
    """
    from . import meanfield

    theta = _check_theta(theta)
    sw = math.sqrt(1.0 / q_second_moment(theta))
    return meanfield.chi_1(activation(theta, family), sw, 0.0, q=1.0)


# Deprecated aliases (one release; CHANGELOG.md): these shared meanfield's names with other signatures.
c_map = renamed_function(c_map_theta, "c_map", "sigprop.gaussian_preact")
chi_1 = renamed_function(chi_1_theta, "chi_1", "sigprop.gaussian_preact")
