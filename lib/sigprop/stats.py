"""Statistics the chapters measure: moments, kurtosis, KS distance to N(0, 1),
correlation matrices, effective rank, and a streaming moment reducer.

Every reduction accumulates in float64 and runs on the input's device. A
function reduces along ``dim`` and broadcasts over the other axes, so one call
handles a whole ``[n_nets, layers, samples]`` stack. NaN in the input gives NaN
in the output rather than an exception (checking would synchronise the GPU).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ._checks import check_alloc, check_budget, check_real, real_array

__all__ = [
    "Moments", "moments", "kurtosis", "raw_moment", "abs_moment", "central_moment",
    "ks_distance_normal", "ks_critical_value", "correlation_matrix",
    "class_correlation_matrix", "effective_rank", "RunningMoments",
]

Tensor = torch.Tensor
Dim = Union[int, Sequence[int]]


def _tensor(x, name: str = "x") -> Tensor:
    """``x`` as a real tensor (its own dtype): numbers, lists and arrays are taken, strings,
    None, booleans and complex values refused naming ``name``."""
    if not isinstance(x, Tensor):
        if x is None or isinstance(x, (str, bytes)):
            raise ValueError(f"{name} must be a real tensor or array; got {x!r} ({type(x).__name__})")
        try:
            x = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{name} must be a real tensor or array; got {x!r}") from exc
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} must be a real tensor; got dtype {x.dtype}")
    return x


def _f64(x, name: str = "x") -> Tensor:
    return _tensor(x, name).to(torch.float64)


def _dims(x: Tensor, dim: Dim, name: str = "dim") -> Tuple[int, ...]:
    """Normalise ``dim`` to sorted non-negative axes of ``x``; the reduction must be non-empty."""
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim) if isinstance(dim, (tuple, list)) else None
    if dims is None or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) for d in dims):
        raise ValueError(f"{name} must be an integer axis or a sequence of them; got {dim!r}")
    if x.ndim == 0 or not dims or any(not -x.ndim <= int(d) < x.ndim for d in dims):
        raise ValueError(f"{name} must be axes in [-{x.ndim}, {x.ndim - 1}] of a tensor of shape "
                         f"{tuple(x.shape)}; got {dim!r}")
    out = tuple(sorted({int(d) % x.ndim for d in dims}))
    if len(out) != len(dims):
        raise ValueError(f"{name}={dim!r} must name distinct axes of shape {tuple(x.shape)}")
    if math.prod(x.shape[d] for d in out) == 0:
        raise ValueError(f"x must have values along {name}={dim!r}; got an empty tensor of shape {tuple(x.shape)}")
    return out


class Moments(NamedTuple):
    """Sample mean, variance ``mu_2`` and central fourth moment ``mu_4`` (1/n normalisation)."""

    mean: Tensor
    var: Tensor
    mu4: Tensor


def moments(x: Tensor, dim: Dim = -1) -> Moments:
    """Mean, variance and central 4th moment along ``dim`` (float64).

    ``mean = (1/n) sum_i x_i``, ``mu_p = (1/n) sum_i (x_i - mean)^p`` for p = 2, 4
    (the plug-in, 1/n, estimators, as in Labatie 2019's moments ``mu_p``).
    ``dim`` may be a tuple of axes.
    """
    x = _f64(x)
    d = _dims(x, dim)
    mean = x.mean(d, keepdim=True)
    c2 = (x - mean).square()
    return Moments(mean.squeeze(d), c2.mean(d), c2.square().mean(d))


def kurtosis(x: Tensor, dim: Dim = -1, excess: bool = True) -> Tensor:
    """Kurtosis ``mu_4 / mu_2^2`` along ``dim``, minus 3 when ``excess`` (0 for a Gaussian).

    For n i.i.d. Gaussian samples the excess kurtosis has standard deviation about
    ``sqrt(24 / n)``. A constant sample gives NaN (0/0).
    """
    m = moments(x, dim)
    return m.mu4 / m.var.square() - (3.0 if excess else 0.0)


def raw_moment(x: Tensor, p: int, dim: Dim = -1) -> Tensor:
    """Raw moment ``nu_p = (1/n) sum_i x_i^p`` along ``dim``; ``p`` a non-negative integer.

    Labatie 2019's ``nu_p`` when ``dim`` covers data, positions and channels.
    """
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 0:
        raise ValueError(f"p must be a non-negative integer; got {p!r}")
    x = _f64(x)
    return x.pow(int(p)).mean(_dims(x, dim))


def abs_moment(x: Tensor, p: float, dim: Dim = -1) -> Tensor:
    """Absolute moment ``(1/n) sum_i |x_i|^p`` along ``dim``, real ``p >= 0``.

    ``p = 1`` gives Labatie 2019's ``nu_1(|x|)`` (``sqrt(2/pi) ~ 0.798`` for N(0, 1)).
    """
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) \
            or not math.isfinite(p) or p < 0:
        raise ValueError(f"p must be a finite real number >= 0; got {p!r}")
    x = _f64(x)
    return x.abs().pow(float(p)).mean(_dims(x, dim))


def central_moment(x: Tensor, p: int, dim: Dim = -1) -> Tensor:
    """Central moment ``mu_p = (1/n) sum_i (x_i - mean)^p`` along ``dim``; integer ``p >= 0``."""
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 0:
        raise ValueError(f"p must be a non-negative integer; got {p!r}")
    x = _f64(x)
    d = _dims(x, dim)
    return (x - x.mean(d, keepdim=True)).pow(int(p)).mean(d)


def ks_distance_normal(x: Tensor, dim: int = -1, standardize: bool = False,
                       mean: Union[float, Tensor] = 0.0, std: Union[float, Tensor] = 1.0) -> Tensor:
    """Kolmogorov-Smirnov distance of each sample along ``dim`` to N(mean, std^2).

    ``D_n = sup_t |F_n(t) - Phi((t - mean)/std)|``, computed exactly from the
    order statistics ``x_(1) <= ... <= x_(n)`` as
    ``max_i max(i/n - Phi(z_(i)), Phi(z_(i)) - (i-1)/n)`` (the statistic of
    ``scipy.stats.kstest``). ``mean`` and ``std`` broadcast against ``x`` with
    ``dim`` removed. With ``standardize=True`` each sample is first centred and
    scaled by its own mean and 1/n standard deviation and compared with N(0, 1);
    :func:`ks_critical_value` is then conservative (Lilliefors 1967), as in
    Wolinski & Arbel's "standardised" curves.

    Raises
    ------
    ValueError
        Bad ``dim``, or ``std`` not positive.
    """
    x = _tensor(x)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise ValueError(f"dim must be a single integer axis; got {dim!r}")
    d = _dims(x, dim)[0]
    # Sort in the input's precision (cheaper), then go to float64: the maps below are increasing.
    x = _f64(torch.sort(x.movedim(d, -1), dim=-1).values)
    n = x.shape[-1]
    if standardize:
        z = (x - x.mean(-1, keepdim=True)) / x.std(-1, correction=0, keepdim=True)
    else:
        m = real_array(mean, "mean").to(x.device)
        s = real_array(std, "std").to(x.device)
        if bool((s <= 0).any()) or bool(torch.isnan(s).any()):
            raise ValueError(f"std must be > 0; got {std!r}")
        z = (x - m.unsqueeze(-1)) / s.unsqueeze(-1)
    cdf = torch.special.ndtr(z)
    i = torch.arange(1, n + 1, dtype=torch.float64, device=x.device)
    d_plus = (i / n - cdf).amax(-1)
    d_minus = (cdf - (i - 1) / n).amax(-1)
    return torch.maximum(d_plus, d_minus)


def ks_critical_value(n, alpha: float = 0.05):
    """Critical value ``c`` with ``P(D_n > c) = alpha`` for the one-sample KS statistic.

    Exact (Simard & L'Ecuyer 2011) via ``scipy.stats.kstwo.ppf(1 - alpha, n)``. Its
    large-n limit is ``K_alpha / sqrt(n)`` with the Kolmogorov quantile
    ``K_0.05 = 1.358`` (so 0.0136 for n = 10^4, the threshold of Wolinski & Arbel's
    Fig. 2). ``n`` may be an integer (float returned) or an array/tensor of them
    (float64 tensor returned).

    Raises
    ------
    ValueError
        If ``alpha`` is not in (0, 1) or some ``n`` is not an integer >= 1.
    """
    from scipy import stats as sps  # scipy is a dependency; imported where used

    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) \
            or not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in the open interval (0, 1); got {alpha!r}")
    device = n.device if isinstance(n, Tensor) else None
    arr = np.asarray(n.cpu() if isinstance(n, Tensor) else n)
    if arr.dtype == bool or arr.size == 0 or not np.issubdtype(arr.dtype, np.number) \
            or np.any(arr != np.round(arr)) or np.any(arr < 1):
        raise ValueError(f"n must be an integer >= 1 (or an array of them); got {n!r}")
    c = sps.kstwo.ppf(1.0 - float(alpha), arr.astype(np.int64))
    if arr.ndim == 0 and not isinstance(n, Tensor):
        return float(c)
    return torch.as_tensor(c, dtype=torch.float64, device=device)


def correlation_matrix(x: Tensor) -> Tensor:
    """Cosine correlations between samples: ``c_ab = <x_a, x_b> / (|x_a| |x_b|)``.

    ``x`` has shape ``[..., n_samples, features]``; the result ``[..., n, n]``
    (float64) is symmetric with unit diagonal. It is uncentred, the correlation
    ``c^l_ab = q^l_ab / sqrt(q^l_aa q^l_bb)`` of mean-field theory (Poole et al.
    2016). A zero vector has NaN correlations.

    Raises
    ------
    ValueError
        If ``x`` has fewer than 2 dimensions.
    """
    x = _f64(x)
    if x.ndim < 2 or x.shape[-1] == 0:
        raise ValueError(f"x must have shape [..., n_samples, features]; got {tuple(x.shape)}")
    n = float(x.shape[-2])
    check_budget(f"correlation_matrix of {int(n):,} samples", nbytes=n * n * 8 * 2 * max(1, x[..., 0, 0].numel()))
    u = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return (u @ u.transpose(-1, -2)).clamp(-1.0, 1.0)


def class_correlation_matrix(corr: Tensor, labels: Tensor, n_classes: int,
                             exclude_diagonal: bool = True) -> Tensor:
    """Average correlation between classes: ``C_pq = mean of c_ab over a in p, b in q``.

    With ``exclude_diagonal`` the diagonal blocks average over pairs ``a != b``
    only (``n_p (n_p - 1)`` pairs), so the unit self-correlations do not inflate
    within-class means; off-diagonal blocks are plain means over ``n_p n_q``
    pairs. (Wolinski & Arbel's reference code rescales every block by
    ``(m x - 1)/(m - 1)``, which is right on the diagonal only.) Samples need not
    be sorted. ``corr`` is ``[..., n, n]``; the result ``[..., n_classes,
    n_classes]``, NaN for classes with too few samples.

    Raises
    ------
    ValueError
        If ``corr`` is not square, ``labels`` is not 1-D of length n, or a label
        is outside ``[0, n_classes)``.
    """
    corr = _f64(corr, "corr")
    if corr.ndim < 2 or corr.shape[-1] != corr.shape[-2]:
        raise ValueError(f"corr must have shape [..., n, n]; got {tuple(corr.shape)}")
    if not bool(torch.isfinite(corr).all()):
        raise ValueError(f"corr must be finite; got {int((~torch.isfinite(corr)).sum())} nan or inf value(s)")
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer; got {n_classes!r}")
    labels = torch.as_tensor(labels, device=corr.device)
    if labels.ndim != 1 or labels.shape[0] != corr.shape[-1]:
        raise ValueError(f"labels must be 1-D with {corr.shape[-1]} entries (one per row of "
                         f"corr); got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or bool(((labels < 0) | (labels >= n_classes)).any()):
        raise ValueError(f"labels must be integers in [0, {n_classes}); got {labels.unique()}")
    check_alloc(f"class_correlation_matrix with {n_classes} classes",
                labels.numel() * n_classes + n_classes * n_classes * max(1, corr[..., 0, 0].numel()), torch.float64,
                corr.device, copies=3)
    onehot = torch.nn.functional.one_hot(labels.long(), int(n_classes)).to(torch.float64)
    sums = onehot.T @ corr @ onehot
    counts = onehot.sum(0)
    pairs = counts[:, None] * counts[None, :]
    if exclude_diagonal:
        self_sums = torch.diagonal(corr, dim1=-2, dim2=-1) @ onehot
        sums = sums - torch.diag_embed(self_sums)
        pairs = pairs - torch.diag(counts)
    return torch.where(pairs > 0, sums / pairs.clamp(min=1), torch.full_like(sums, math.nan))


def effective_rank(x: Tensor, dim_samples: int = -2, center: bool = True) -> Tensor:
    """Effective rank ``r_eff = Tr C / ||C||_2 = sum_i lambda_i / max_i lambda_i``.

    ``C`` is the covariance of the feature vectors (the last axis) over the
    samples (axis ``dim_samples``); other axes are batch axes. Labatie 2019,
    "Characterizing well-behaved vs. pathological deep neural networks", Sec. 3.1,
    after Vershynin 2010; computed as in his code from the singular values of the
    column-centred ``[samples, features]`` matrix. ``1 <= r_eff <= min(features,
    samples - 1)``: near 1 for line-like signal, near ``features`` for isotropic
    signal. ``center=False`` uses ``E[x x^T]`` (for zero-mean noise). Zero data
    gives NaN.

    Raises
    ------
    ValueError
        If ``x`` has fewer than 2 dimensions, ``dim_samples`` is the feature axis,
        or there are fewer than 2 samples when centring.
    """
    x = _f64(x)
    if x.ndim < 2:
        raise ValueError(f"x must have shape [..., samples, features]; got {tuple(x.shape)}")
    if isinstance(dim_samples, bool) or not isinstance(dim_samples, (int, np.integer)):
        raise ValueError(f"dim_samples must be an integer axis; got {dim_samples!r}")
    d = _dims(x, dim_samples, "dim_samples")[0]
    if d == x.ndim - 1:
        raise ValueError("dim_samples must not be the last axis, which holds the features")
    x = x.movedim(d, -2)
    if center:
        if x.shape[-2] < 2:
            raise ValueError(f"centring needs at least 2 samples; got {x.shape[-2]}")
        x = x - x.mean(-2, keepdim=True)
    lam = torch.linalg.svdvals(x).square()
    return lam.sum(-1) / lam.amax(-1)


class RunningMoments:
    """Streaming mean, variance, 3rd and 4th central moments, mergeable (float64).

    Keeps the count ``n``, the mean and the central sums ``M_p = sum (x - mean)^p``
    (p = 2, 3, 4), combined batch by batch with the pairwise formulas of Chan,
    Golub & LeVeque (1979) and Pebay (2008). These equal the power sums of x, x^2,
    x^3, x^4 up to an exact change of variables and avoid their cancellation when
    the mean is large. Each :meth:`update` reduces the batch along ``dim``; the
    remaining shape must stay the same between updates, so memory does not grow
    with the number of batches (or layers).

    >>> rm = RunningMoments(dim=-1)
    >>> for batch in batches: rm.update(batch)          # doctest: +SKIP
    >>> rm.mean, rm.var, rm.kurtosis()                  # doctest: +SKIP
    """

    def __init__(self, dim: Dim = -1):
        if not (isinstance(dim, (int, np.integer)) and not isinstance(dim, bool)) and not (
                isinstance(dim, (tuple, list)) and dim and all(isinstance(d, (int, np.integer))
                                                                and not isinstance(d, bool) for d in dim)):
            raise ValueError(f"dim must be an integer axis or a non-empty sequence of them; got {dim!r}")
        self.dim = dim
        self.n = 0
        self._m: Optional[Tuple[Tensor, Tensor, Tensor, Tensor]] = None  # mean, M2, M3, M4

    def update(self, x: Tensor) -> "RunningMoments":
        """Fold the samples of ``x`` along ``self.dim`` in; returns ``self``."""
        x = _f64(x)
        d = _dims(x, self.dim)
        n = math.prod(x.shape[i] for i in d)
        mean = x.mean(d, keepdim=True)
        c = x - mean
        c2 = c.square()
        other = RunningMoments(self.dim)
        other.n = n
        other._m = (mean.squeeze(d), c2.sum(d), (c2 * c).sum(d), c2.square().sum(d))
        merged = self.merge(other)
        self.n, self._m = merged.n, merged._m
        return self

    def merge(self, other: "RunningMoments") -> "RunningMoments":
        """A new reducer holding the samples of both ``self`` and ``other``."""
        if not isinstance(other, RunningMoments):
            raise ValueError(f"other must be a RunningMoments; got {type(other).__name__}")
        out = RunningMoments(self.dim)
        if self._m is None or other._m is None:
            src = other if self._m is None else self
            out.n, out._m = src.n, src._m
            return out
        (ma, a2, a3, a4), (mb, b2, b3, b4) = self._m, other._m
        if ma.shape != mb.shape:
            raise ValueError(f"cannot merge moments of shapes {tuple(ma.shape)} and {tuple(mb.shape)}")
        na, nb = float(self.n), float(other.n)
        n = na + nb
        delta = mb - ma
        mean = ma + delta * (nb / n)
        m2 = a2 + b2 + delta.square() * (na * nb / n)
        m3 = (a3 + b3 + delta.pow(3) * (na * nb * (na - nb) / n**2)
              + 3.0 * delta * (na * b2 - nb * a2) / n)
        m4 = (a4 + b4 + delta.pow(4) * (na * nb * (na * na - na * nb + nb * nb) / n**3)
              + 6.0 * delta.square() * (na * na * b2 + nb * nb * a2) / n**2
              + 4.0 * delta * (na * b3 - nb * a3) / n)
        out.n, out._m = self.n + other.n, (mean, m2, m3, m4)
        return out

    def _get(self) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        if self._m is None:
            raise ValueError("RunningMoments is empty: call update(x) first")
        return self._m

    @property
    def mean(self) -> Tensor:
        """Sample mean."""
        return self._get()[0]

    @property
    def var(self) -> Tensor:
        """Variance ``mu_2`` (1/n normalisation)."""
        return self._get()[1] / self.n

    @property
    def mu3(self) -> Tensor:
        """Central third moment ``mu_3``."""
        return self._get()[2] / self.n

    @property
    def mu4(self) -> Tensor:
        """Central fourth moment ``mu_4``."""
        return self._get()[3] / self.n

    @property
    def nu2(self) -> Tensor:
        """Raw second moment ``nu_2 = mu_2 + mean^2``."""
        return self.var + self.mean.square()

    def kurtosis(self, excess: bool = True) -> Tensor:
        """``mu_4 / mu_2^2``, minus 3 when ``excess``."""
        return self.mu4 / self.var.square() - (3.0 if excess else 0.0)


# --------------------------------------------------------------------------- #
# Normalized sensitivity and the growth laws of Labatie (2019).
# --------------------------------------------------------------------------- #
def normalized_sensitivity(mu2_noise, mu2_signal, mu2_noise_in=1.0, mu2_signal_in=1.0) -> Tensor:
    r"""Normalized sensitivity :math:`\chi^l` (Labatie 2019, eq. 3).

    .. math::

        \chi^l = \left(\frac{\mu_2(\mathrm d x^l)}{\mu_2(x^l)}\right)^{1/2}
                 \left(\frac{\mu_2(\mathrm d x^0)}{\mu_2(x^0)}\right)^{-1/2}
               = \left(\frac{\mathrm{SNR}^0}{\mathrm{SNR}^l}\right)^{1/2},
        \qquad \mathrm{SNR}^l = \frac{\mu_2(x^l)}{\mu_2(\mathrm d x^l)}.

    :math:`(\chi^l)^2` is the noise factor of the sub-network :math:`x^0 \mapsto x^l`:
    above 1 the network degrades the signal-to-noise ratio.  It is unchanged by any
    rescaling of :math:`x^l` and :math:`\mathrm d x^l` together.  Arguments broadcast
    (float64 result); the input pair defaults to 1 (inputs normalized to unit moments).

    Raises
    ------
    ValueError
        If an argument is not real.
    """
    a, b, c, d = (_f64(v, n) for v, n in ((mu2_noise, "mu2_noise"), (mu2_signal, "mu2_signal"),
                                          (mu2_noise_in, "mu2_noise_in"), (mu2_signal_in, "mu2_signal_in")))
    for t, n, v in ((a, "mu2_noise", mu2_noise), (b, "mu2_signal", mu2_signal), (c, "mu2_noise_in", mu2_noise_in),
                    (d, "mu2_signal_in", mu2_signal_in)):
        if bool((t < 0).any()):  # nan and inf (an overflowed measurement) propagate, as in torch
            raise ValueError(f"{n} is a second moment and must be >= 0; got {v!r}")
    return torch.sqrt((a / b) / (c / d))


def _fit_inputs(depth, values) -> Tuple[np.ndarray, np.ndarray]:
    t, v = (_f64(a, n).cpu().numpy() for a, n in ((depth, "depth"), (values, "values")))
    if not np.all(np.isfinite(t)):
        raise ValueError(f"depth must be finite; got {depth!r}")
    if t.ndim != 1 or v.shape != t.shape or t.size < 2:
        raise ValueError(f"depth and values must be 1-D of the same length >= 2; got shapes {t.shape} and {v.shape}")
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"values must be finite and > 0 (their logarithm is fitted); got {values!r}")
    return t, v


def fit_exponential_rate(depth, values) -> Tuple[float, float]:
    r"""Least-squares fit of :math:`\log v_l = a + \gamma\, l`: the rate :math:`\gamma`
    of an exponential growth :math:`v_l \propto e^{\gamma l}` (Labatie 2019, Fig. 4b).

    Returns
    -------
    (gamma, a) : floats, the rate per layer and the intercept (log prefactor).

    Raises
    ------
    ValueError
        If the arrays are not 1-D of one length >= 2, or ``values`` holds a
        non-positive or non-finite entry.
    """
    t, v = _fit_inputs(depth, values)
    gamma, a = np.polyfit(t, np.log(v), 1)
    return float(gamma), float(a)


def fit_power_law(depth, values, exponent: Optional[float] = None) -> Tuple[float, float]:
    r"""Fit :math:`v_l \approx C\, l^{\tau}`.

    With ``exponent`` given, :math:`\tau` is fixed and :math:`C` is the least-squares
    prefactor in linear scale, :math:`C = \sum_l v_l l^\tau / \sum_l l^{2\tau}` (as in
    Labatie's plotting code for Fig. 5b, where :math:`\tau` comes from theory); without
    it, :math:`\tau` and :math:`\log C` are fitted by least squares on log-log axes.

    Returns
    -------
    (tau, C) : floats.

    Raises
    ------
    ValueError
        If the arrays are not 1-D of one length >= 2, a depth is not positive, or
        ``values`` holds a non-positive or non-finite entry.
    """
    t, v = _fit_inputs(depth, values)
    if np.any(t <= 0):
        raise ValueError(f"depth must be > 0 for a power law; got {depth!r}")
    if exponent is not None:
        tau = check_real(exponent, "exponent")
        pw = t**tau
        return tau, float((v * pw).sum() / (pw * pw).sum())
    tau, logc = np.polyfit(np.log(t), np.log(v), 1)
    return float(tau), float(math.exp(logc))


__all__ += ["normalized_sensitivity", "fit_exponential_rate", "fit_power_law"]
