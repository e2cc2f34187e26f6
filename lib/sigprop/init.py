r"""Weight initializations as samplers with an explicit :class:`torch.Generator`.

Every sampler has the signature::

    sampler(shape, *, generator=None, device=None, dtype=torch.float32, gain=1.0) -> Tensor

and returns a tensor of ``shape = (..., fan_out, fan_in)``: the last two
dimensions are one weight matrix :math:`W \in \mathbb{R}^{n_\text{out} \times
n_\text{in}}` acting as :math:`h = W x`; leading dimensions index independent
matrices (independent networks of an ensemble), all sampled in one call.

``gain`` multiplies every entry (so it multiplies the variance by
:math:`\mathrm{gain}^2`).  It is a number or a tensor broadcastable against the
leading dimensions ``shape[:-2]`` (applied as ``gain[..., None, None]``), so that
one call samples, e.g., one matrix per value of a :math:`\sigma_w` grid.

====================  ========================================================  =========================================
name                  distribution of each entry                                per-entry variance (gain 1)
====================  ========================================================  =========================================
``lecun_normal``      :math:`\mathcal N(0, 1/n_\text{in})`                      :math:`1/n_\text{in}`
``lecun_uniform``     :math:`U[-\sqrt{3/n_\text{in}}, \sqrt{3/n_\text{in}}]`    :math:`1/n_\text{in}`
``standard_uniform``  :math:`U[-1/\sqrt{n_\text{in}}, 1/\sqrt{n_\text{in}}]`    :math:`1/(3 n_\text{in})`
``xavier_normal``     :math:`\mathcal N(0, 2/(n_\text{in}+n_\text{out}))`       :math:`2/(n_\text{in}+n_\text{out})`
``xavier_uniform``    :math:`U[-a, a],\ a=\sqrt{6/(n_\text{in}+n_\text{out})}`  :math:`2/(n_\text{in}+n_\text{out})`
``he_normal``         :math:`\mathcal N(0, 2/n_\text{in})`                      :math:`2/n_\text{in}`
``he_uniform``        :math:`U[-\sqrt{6/n_\text{in}}, \sqrt{6/n_\text{in}}]`    :math:`2/n_\text{in}`
``orthogonal``        Haar (semi-)orthogonal                                    :math:`1/\max(n_\text{in}, n_\text{out})`
``gaussian``          :math:`\mathcal N(0, \sigma_w^2/n_\text{in})`             :math:`\sigma_w^2/n_\text{in}`
====================  ========================================================  =========================================

References
----------
* LeCun, Bottou, Orr & Müller (1998), *Efficient BackProp*.
* Glorot & Bengio (2010), *Understanding the difficulty of training deep
  feedforward neural networks* (the "standard" and "normalized" initializations).
* He, Zhang, Ren & Sun (2015), *Delving deep into rectifiers*.
* Saxe, McClelland & Ganguli (2014), *Exact solutions to the nonlinear dynamics of
  learning in deep linear neural networks*.
* Poole, Lahiri, Raghu, Sohl-Dickstein & Ganguli (2016), *Exponential
  expressivity in deep neural networks through transient chaos*.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Dict, Sequence, Union

import torch

from ._checks import resolve_device, check_alloc, check_dtype, check_scale, check_shape

Tensor = torch.Tensor
Gain = Union[float, Tensor]
Sampler = Callable[..., Tensor]

__all__ = [
    "lecun_normal",
    "lecun_uniform",
    "standard_uniform",
    "xavier_normal",
    "xavier_uniform",
    "he_normal",
    "he_uniform",
    "orthogonal",
    "gaussian",
    "INITS",
    "get_init",
    "available",
    "weight_variance",
]


# --------------------------------------------------------------------------- #
# Argument checks shared by every sampler.
# --------------------------------------------------------------------------- #
def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    try:
        return check_shape(shape, "shape", min_dim=2, low=1)
    except ValueError:
        raise ValueError(
            f"shape must be a sequence of at least two positive integers (..., fan_out, fan_in); got {shape!r}"
        ) from None


_check_scale = check_scale  # a non-negative finite number, or a tensor of them (sigprop._checks)





def _apply_gain(w: Tensor, gain: Gain, shape: tuple[int, ...]) -> Tensor:
    """Multiply ``w`` by ``gain`` broadcast against the leading dims ``shape[:-2]``."""
    if isinstance(gain, Tensor):
        g = gain.to(device=w.device, dtype=w.dtype)
        try:
            torch.broadcast_shapes(g.shape, shape[:-2])
        except RuntimeError:
            raise ValueError(
                f"gain must broadcast against the leading dimensions {shape[:-2]} of shape; "
                f"got a tensor of shape {tuple(g.shape)}"
            ) from None
        out = w * g[..., None, None]
        if out.shape != w.shape:
            raise ValueError(
                f"gain of shape {tuple(g.shape)} would change the sample's shape {tuple(w.shape)}; "
                "it must broadcast against shape[:-2]"
            )
        return out
    return w if gain == 1.0 else w * gain


def _prepare(shape, gain, dtype, name="gain", device=None, generator=None):
    dims = _check_shape(shape)
    gain = _check_scale(gain, name)
    check_dtype(dtype)
    # the sample and its scaled copy, refused before allocation past the work budget
    where = device if device is not None else generator.device if isinstance(generator, torch.Generator) else None
    check_alloc(f"a weight sample of shape {dims}", math.prod(dims), dtype, where, copies=2)
    return dims, gain


def _sample(kind: str, dims, std_or_bound: float, generator, device, dtype) -> Tensor:
    """Draw N(0, std^2) (kind 'normal') or U[-a, a] (kind 'uniform') on the generator's device."""
    dev = resolve_device(device, generator)
    gen_dev = generator.device if generator is not None else dev
    if kind == "normal":
        # one pass: the same numbers as randn(...) * std, without a second sweep over the tensor
        w = torch.empty(dims, device=gen_dev, dtype=dtype).normal_(0.0, std_or_bound, generator=generator)
    else:
        w = torch.rand(dims, generator=generator, device=gen_dev, dtype=dtype)
        w.mul_(2 * std_or_bound).sub_(std_or_bound)
    return w.to(dev)


# --------------------------------------------------------------------------- #
# Samplers.
# --------------------------------------------------------------------------- #
def lecun_normal(shape, *, generator=None, device=None, dtype=torch.float32, gain: Gain = 1.0) -> Tensor:
    r"""LeCun normal initialization (LeCun et al. 1998, *Efficient BackProp*).

    .. math:: W_{ij} \sim \mathcal N\!\left(0, \frac{\mathrm{gain}^2}{n_\text{in}}\right)

    Parameters
    ----------
    shape : sequence of int
        ``(..., fan_out, fan_in)``; leading dimensions are independent matrices.
    generator : torch.Generator, optional
        Source of randomness (torch's global generator when ``None``).  The sample
        is drawn on the generator's device and moved to ``device``.
    device : torch.device or str, optional
        Device of the result; default the generator's device, else :func:`sigprop.runtime.device`.
    dtype : torch.dtype
        Floating dtype of the result.
    gain : float or Tensor
        Multiplies every entry; a tensor broadcasts against ``shape[:-2]``.

    Returns
    -------
    Tensor
        Of shape ``shape``.

    Raises
    ------
    ValueError
        If ``shape`` has fewer than two dimensions or a size < 1, if ``gain`` is
        negative or not finite, or if ``dtype`` is not floating.
    """
    dims, gain = _prepare(shape, gain, dtype, device=device, generator=generator)
    w = _sample("normal", dims, 1.0 / math.sqrt(dims[-1]), generator, device, dtype)
    return _apply_gain(w, gain, dims)


def lecun_uniform(shape, *, generator=None, device=None, dtype=torch.float32, gain: Gain = 1.0) -> Tensor:
    r"""LeCun uniform initialization (LeCun et al. 1998): variance :math:`\mathrm{gain}^2/n_\text{in}`.

    .. math:: W_{ij} \sim U[-a, a], \qquad a = \mathrm{gain}\,\sqrt{3/n_\text{in}}

    Parameters and errors as in :func:`lecun_normal`.
    """
    dims, gain = _prepare(shape, gain, dtype, device=device, generator=generator)
    w = _sample("uniform", dims, math.sqrt(3.0 / dims[-1]), generator, device, dtype)
    return _apply_gain(w, gain, dims)


def standard_uniform(shape, *, generator=None, device=None, dtype=torch.float32, gain: Gain = 1.0) -> Tensor:
    r"""Glorot & Bengio's (2010) "standard" heuristic initialization, their eq. (1).

    .. math:: W_{ij} \sim U\!\left[-\frac{1}{\sqrt{n_\text{in}}}, \frac{1}{\sqrt{n_\text{in}}}\right],
              \qquad \operatorname{Var} W_{ij} = \frac{1}{3 n_\text{in}}

    (times :math:`\mathrm{gain}^2`).  With this variance
    :math:`n_\text{in} \operatorname{Var} W = 1/3`, so the back-propagated gradients
    of a tanh network shrink with depth, which the paper shows in its Fig. 7.
    Parameters and errors as in :func:`lecun_normal`.
    """
    dims, gain = _prepare(shape, gain, dtype, device=device, generator=generator)
    w = _sample("uniform", dims, 1.0 / math.sqrt(dims[-1]), generator, device, dtype)
    return _apply_gain(w, gain, dims)


def xavier_normal(shape, *, generator=None, device=None, dtype=torch.float32, gain: Gain = 1.0) -> Tensor:
    r"""Xavier/Glorot normal initialization (Glorot & Bengio 2010).

    .. math:: W_{ij} \sim \mathcal N\!\left(0, \frac{2\,\mathrm{gain}^2}{n_\text{in} + n_\text{out}}\right)

    The Gaussian counterpart of :func:`xavier_uniform` (same variance).
    Parameters and errors as in :func:`lecun_normal`.
    """
    dims, gain = _prepare(shape, gain, dtype, device=device, generator=generator)
    w = _sample("normal", dims, math.sqrt(2.0 / (dims[-1] + dims[-2])), generator, device, dtype)
    return _apply_gain(w, gain, dims)


def xavier_uniform(shape, *, generator=None, device=None, dtype=torch.float32, gain: Gain = 1.0) -> Tensor:
    r"""Glorot & Bengio's (2010) "normalized initialization", their eq. (16).

    .. math:: W_{ij} \sim U\!\left[-\sqrt{\tfrac{6}{n_\text{in}+n_\text{out}}},
              \sqrt{\tfrac{6}{n_\text{in}+n_\text{out}}}\,\right], \qquad
              \operatorname{Var} W_{ij} = \frac{2}{n_\text{in}+n_\text{out}}

    (times :math:`\mathrm{gain}^2`): the compromise between keeping the forward
    variance (:math:`n_\text{in}\operatorname{Var}W = 1`) and the backward variance
    (:math:`n_\text{out}\operatorname{Var}W = 1`).
    Parameters and errors as in :func:`lecun_normal`.
    """
    dims, gain = _prepare(shape, gain, dtype, device=device, generator=generator)
    w = _sample("uniform", dims, math.sqrt(6.0 / (dims[-1] + dims[-2])), generator, device, dtype)
    return _apply_gain(w, gain, dims)


def he_normal(shape, *, generator=None, device=None, dtype=torch.float32, gain: Gain = 1.0) -> Tensor:
    r"""He/Kaiming normal initialization (He et al. 2015), for ReLU networks.

    .. math:: W_{ij} \sim \mathcal N\!\left(0, \frac{2\,\mathrm{gain}^2}{n_\text{in}}\right)

    The factor 2 compensates the half of the units that a ReLU sets to zero:
    :math:`E[\mathrm{relu}(h)^2] = \operatorname{Var}(h)/2`.
    Parameters and errors as in :func:`lecun_normal`.
    """
    dims, gain = _prepare(shape, gain, dtype, device=device, generator=generator)
    w = _sample("normal", dims, math.sqrt(2.0 / dims[-1]), generator, device, dtype)
    return _apply_gain(w, gain, dims)


def he_uniform(shape, *, generator=None, device=None, dtype=torch.float32, gain: Gain = 1.0) -> Tensor:
    r"""He/Kaiming uniform initialization (He et al. 2015).

    .. math:: W_{ij} \sim U[-a, a], \qquad a = \mathrm{gain}\sqrt{6/n_\text{in}},
              \qquad \operatorname{Var} W_{ij} = \frac{2\,\mathrm{gain}^2}{n_\text{in}}

    Parameters and errors as in :func:`lecun_normal`.
    """
    dims, gain = _prepare(shape, gain, dtype, device=device, generator=generator)
    w = _sample("uniform", dims, math.sqrt(6.0 / dims[-1]), generator, device, dtype)
    return _apply_gain(w, gain, dims)


def orthogonal(shape, *, generator=None, device=None, dtype=torch.float32, gain: Gain = 1.0) -> Tensor:
    r"""Haar-distributed (semi-)orthogonal matrices (Saxe et al. 2014), batched.

    A Gaussian matrix :math:`G` is factored :math:`G = QR`; fixing the signs,
    :math:`Q \leftarrow Q\,\mathrm{diag}(\operatorname{sign} R_{ii})`, makes
    :math:`Q` Haar-distributed (Mezzadri 2007).  For :math:`n_\text{out} \le n_\text{in}`
    the rows are orthonormal, :math:`W W^\top = \mathrm{gain}^2 I_{n_\text{out}}`;
    otherwise the columns are, :math:`W^\top W = \mathrm{gain}^2 I_{n_\text{in}}`, so
    that :math:`\lVert W x \rVert = \mathrm{gain}\,\lVert x \rVert`.  Each entry has
    mean 0 and variance :math:`\mathrm{gain}^2/\max(n_\text{in}, n_\text{out})`.

    The QR factorization runs in float64 when ``dtype`` is float64 and in float32
    otherwise; its cost, :math:`O(n^3)` per matrix, dominates large ensembles.
    Parameters and errors as in :func:`lecun_normal`.
    """
    dims, gain = _prepare(shape, gain, dtype, device=device, generator=generator)
    n_out, n_in = dims[-2], dims[-1]
    work = torch.float64 if dtype == torch.float64 else torch.float32
    tall = n_out >= n_in
    g_shape = dims if tall else dims[:-2] + (n_in, n_out)
    dev = resolve_device(device, generator)
    gen_dev = generator.device if generator is not None else dev
    g = torch.randn(g_shape, generator=generator, device=gen_dev, dtype=work).to(dev)
    q, r = torch.linalg.qr(g, mode="reduced")
    d = torch.diagonal(r, dim1=-2, dim2=-1).sign()
    d = torch.where(d == 0, torch.ones_like(d), d)
    q = q * d.unsqueeze(-2)
    w = q if tall else q.transpose(-2, -1)
    return _apply_gain(w.to(dtype).contiguous(), gain, dims)


def gaussian(
    shape,
    sigma_w: Gain = 1.0,
    *,
    generator=None,
    device=None,
    dtype=torch.float32,
    gain: Gain = 1.0,
) -> Tensor:
    r"""The mean-field convention (Poole et al. 2016): :math:`W_{ij} \sim \mathcal N(0, \sigma_w^2/n_\text{in})`.

    .. math:: W_{ij} \sim \mathcal N\!\left(0, \frac{(\mathrm{gain}\,\sigma_w)^2}{n_\text{in}}\right)

    This is :func:`lecun_normal` with gain :math:`\sigma_w`; in the registry (and
    in :mod:`sigprop.ensemble`) the ``gain`` argument plays the role of
    :math:`\sigma_w`.

    Parameters
    ----------
    shape : sequence of int
        ``(..., fan_out, fan_in)``.
    sigma_w : float or Tensor
        Weight scale :math:`\sigma_w \ge 0`; a tensor broadcasts against ``shape[:-2]``.
    generator, device, dtype, gain
        As in :func:`lecun_normal`.

    Raises
    ------
    ValueError
        On a bad ``shape``, a negative or non-finite ``sigma_w`` or ``gain``, or a
        non-floating ``dtype``.
    """
    dims, gain = _prepare(shape, gain, dtype, device=device, generator=generator)
    sigma_w = _check_scale(sigma_w, "sigma_w")
    w = _sample("normal", dims, 1.0 / math.sqrt(dims[-1]), generator, device, dtype)
    return _apply_gain(_apply_gain(w, sigma_w, dims), gain, dims)


# --------------------------------------------------------------------------- #
# Registry and theory.
# --------------------------------------------------------------------------- #
#: Name -> sampler, every one callable as ``f(shape, generator=..., device=..., dtype=..., gain=...)``.
INITS: Dict[str, Sampler] = {
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "standard_uniform": standard_uniform,
    "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "orthogonal": orthogonal,
    "gaussian": gaussian,
}

# Per-entry variance at gain 1, as a function of (fan_in, fan_out).
_VARIANCE: Dict[str, Callable[[int, int], float]] = {
    "lecun_normal": lambda i, o: 1.0 / i,
    "lecun_uniform": lambda i, o: 1.0 / i,
    "standard_uniform": lambda i, o: 1.0 / (3.0 * i),
    "xavier_normal": lambda i, o: 2.0 / (i + o),
    "xavier_uniform": lambda i, o: 2.0 / (i + o),
    "he_normal": lambda i, o: 2.0 / i,
    "he_uniform": lambda i, o: 2.0 / i,
    "orthogonal": lambda i, o: 1.0 / max(i, o),
    "gaussian": lambda i, o: 1.0 / i,
}


def available() -> list[str]:
    """Names of the registered initializations, sorted."""
    return sorted(INITS)


def get_init(name: Union[str, Sampler]) -> Sampler:
    """The sampler registered under ``name`` (a callable is passed through).

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`INITS` (nor a callable).
    """
    if callable(name):
        return name
    if isinstance(name, str) and name in INITS:
        return INITS[name]
    raise ValueError(f"init must be one of {available()} (or a sampler callable); got {name!r}")


def weight_variance(name: str, fan_in: int, fan_out: int, gain: Gain = 1.0) -> Gain:
    r"""Theoretical per-entry variance :math:`\operatorname{Var} W_{ij}` of an initialization.

    For example ``xavier_uniform`` gives :math:`2\,\mathrm{gain}^2/(n_\text{in} + n_\text{out})`
    (Glorot & Bengio 2010, eq. 16); ``gaussian`` with ``gain`` :math:`=\sigma_w` gives
    :math:`\sigma_w^2/n_\text{in}` (Poole et al. 2016); the table in the module
    docstring lists all.  The mean-field weight scale of a layer follows as
    :math:`\sigma_w^2 = n_\text{in} \operatorname{Var} W_{ij}`.

    Parameters
    ----------
    name : str
        A key of :data:`INITS`.
    fan_in, fan_out : int
        Layer sizes, both >= 1.
    gain : float or Tensor
        As for the samplers; the result is multiplied by ``gain**2`` (a tensor
        gain gives a tensor result).

    Raises
    ------
    ValueError
        If ``name`` is unknown, a fan is < 1, or ``gain`` is negative or not finite.
    """
    if not isinstance(name, str) or name not in _VARIANCE:
        raise ValueError(f"name must be one of {available()}; got {name!r}")
    for arg, v in (("fan_in", fan_in), ("fan_out", fan_out)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{arg} must be an integer >= 1; got {v!r}")
    gain = _check_scale(gain, "gain")
    base = _VARIANCE[name](fan_in, fan_out)
    return base * gain**2
