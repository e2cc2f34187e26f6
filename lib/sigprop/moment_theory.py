r"""Predictions for the moments of signal and noise in deep ReLU networks.

Closed forms to set beside the measurements of
:func:`sigprop.ensemble.propagate_signal_noise`.  Labatie (2019) states most of
these results as bounds and mechanisms; the formulas here are the explicit versions
used by his plotting code or derived in this book (marked *derived* below, and checked
by simulation in the chapter on moment pathologies).

References
----------
* Labatie (2019), *Characterizing Well-Behaved vs. Pathological Deep Neural
  Networks*, ICML (Theorems 1, 3 and 4; Figs. 2-5).
"""
from __future__ import annotations

import math
import numbers
from typing import Tuple, Union

import torch

from ._checks import real_tensor

Tensor = torch.Tensor
Number = Union[float, Tensor]

__all__ = [
    "GAUSSIAN_NU1_ABS", "GAUSSIAN_ACTIVATION_INCREMENT", "activation_increment",
    "resnet_exponent", "vanilla_log_moment_diffusion",
]

#: :math:`\nu_1(|z|) = \sqrt{2/\pi}` for a standard Gaussian :math:`z`.
GAUSSIAN_NU1_ABS = math.sqrt(2.0 / math.pi)
#: :math:`\delta_\phi\chi` for a Gaussian batch-normalized :math:`z`: :math:`\sqrt{\pi/(\pi - 1)} \approx 1.2112`.
GAUSSIAN_ACTIVATION_INCREMENT = math.sqrt(math.pi / (math.pi - 1.0))


def activation_increment(nu1_abs: Number) -> Number:
    r"""The ReLU step's sensitivity increment after batch normalization (derived).

    .. math::

        \delta_\phi\chi^l \simeq \Big(1 - \tfrac12\, \nu_1(|z^l|)^2\Big)^{-1/2}.

    Batch normalization gives every channel mean 0 and variance 1, and
    :math:`\mathrm{relu}(z) = (z + |z|)/2`, so :math:`\mathbb E\,\mathrm{relu}(z) =
    \nu_1(|z|)/2` and :math:`\mu_2(\mathrm{relu}(z)) \simeq \tfrac12 -
    \tfrac14\nu_1(|z|)^2`; with half the mass on each side of zero and a noise
    independent of the sign of :math:`z`, :math:`\mu_2(\mathrm dx) \simeq
    \tfrac12\mu_2(\mathrm dz)`.  The ratio is the formula.  For a Gaussian :math:`z` it
    is :data:`GAUSSIAN_ACTIVATION_INCREMENT`; fat tails (small :math:`\nu_1(|z|)`,
    since :math:`\nu_1(|z|) \ge \mu_4(z)^{-1/2}` by Hölder) bring it towards 1
    (Labatie 2019, Theorem 3 and Fig. 4).

    Parameters
    ----------
    nu1_abs : float or Tensor
        :math:`\nu_1(|z^l|) \in [0, \sqrt 2)`.

    Raises
    ------
    ValueError
        If a value is outside :math:`[0, \sqrt 2)`.
    """
    t = real_tensor(nu1_abs, "nu1_abs")
    if bool(torch.any(~torch.isfinite(t))) or bool(torch.any(t < 0)) or bool(torch.any(t * t >= 2)):
        raise ValueError(f"nu1_abs must lie in [0, sqrt(2)); got {nu1_abs!r}")
    out = (1.0 - 0.5 * t * t).rsqrt()
    return out if isinstance(nu1_abs, Tensor) else float(out)


def resnet_exponent(mean_increment: Number, res_depth: int = 2) -> Number:
    r"""Power-law exponent :math:`\tau` of :math:`\chi^l \propto l^\tau` in batch-normalized
    residual networks (derived; the exponent of the paper's Fig. 5b fit).

    .. math::

        \tau = \frac{\overline{\delta\chi}^{\,2K} - 1}{2},

    with :math:`\overline{\delta\chi}` the feedforward increment of one block averaged
    over depth and :math:`K` the blocks per unit.  Derivation: the residual branch is
    uncorrelated with the skip path, so second moments add; with
    :math:`\mu_2(y^{l,K}) \approx v` fixed by batch normalization and
    :math:`\mu_2(x^{l-1}) \approx v\,l`, the branch multiplies the noise-to-signal
    ratio by :math:`\overline{\delta\chi}^{2K}` and
    :math:`(\chi^l/\chi^{l-1})^2 \approx 1 + (\overline{\delta\chi}^{2K} - 1)/l`,
    which integrates to :math:`l^\tau` (Labatie 2019, Theorem 4: "dilution").

    Raises
    ------
    ValueError
        If ``mean_increment`` is not positive or ``res_depth`` is not a positive integer.
    """
    if isinstance(res_depth, bool) or not isinstance(res_depth, numbers.Integral) or res_depth < 1:
        raise ValueError(f"res_depth must be an integer >= 1; got {res_depth!r}")
    t = real_tensor(mean_increment, "mean_increment")
    if bool(torch.any(~torch.isfinite(t))) or bool(torch.any(t <= 0)):
        raise ValueError(f"mean_increment must be finite and > 0; got {mean_increment!r}")
    out = (t ** (2 * int(res_depth)) - 1.0) / 2.0
    return out if isinstance(mean_increment, Tensor) else float(out)


def vanilla_log_moment_diffusion(width: int) -> Tuple[float, float]:
    r"""Per-layer variance of :math:`\log\nu_2(x^l)` and :math:`\log\mu_2(\mathrm dx^l)` in
    deep vanilla ReLU networks under He initialization (derived).

    Given layer :math:`l-1`, each channel :math:`c` contributes an independent
    factor to :math:`\nu_2(x^l)/\nu_2(x^{l-1}) = \frac1N\sum_c a_c`, with
    :math:`\mathbb E a_c = 1` (the moments are martingales: Labatie 2019, Theorem 1),
    so :math:`\operatorname{Var}\log(\nu_2(x^l)/\nu_2(x^{l-1})) \simeq
    \operatorname{Var}(a_c)/N` and the mean of the logarithm drifts by minus half of
    it.  Once the signal has concentrated (one-dimensional, nearly constant across
    inputs and positions: the regime the network reaches after a transient), a channel
    is either on for all inputs or off for all, and :math:`a_c = 2\,\mathrm{relu}(g)^2`
    with :math:`g \sim \mathcal N(0,1)`: :math:`\operatorname{Var} a_c = 5`.  For the
    noise :math:`b_c = 2\cdot\mathbf 1[g > 0]\,u_c` with :math:`u_c \approx 1` (a
    well-conditioned noise), :math:`\operatorname{Var} b_c \approx 1`.

    Returns
    -------
    (signal, noise) : floats
        :math:`5/N` and :math:`1/N`; the mean of each logarithm drifts by
        :math:`-\tfrac12` of these per layer.

    Raises
    ------
    ValueError
        If ``width`` is not a positive integer.
    """
    if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
        raise ValueError(f"width must be an integer >= 1; got {width!r}")
    return 5.0 / width, 1.0 / width
