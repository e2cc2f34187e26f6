r"""Simultaneous propagation of a signal and an infinitesimal noise (Labatie 2019).

A batch of inputs :math:`x^0` (images) and a noise :math:`\mathrm d x^0` of the same
shape are pushed through ``n_nets`` independent random networks at once.  The noise is
infinitesimal, so it travels through the Jacobian, :math:`\mathrm d x^l =
(\partial x^l/\partial x^0)\,\mathrm d x^0` (a Jacobian-vector product): it shares
every weight with the signal, it is multiplied by the activation's derivative at the
signal, and batch normalization in *test mode* divides it by the signal's standard
deviation without centring it.  With :math:`\phi = \mathrm{ReLU}`, per layer
:math:`l` (Labatie 2019, eqs. 1-2 and 9-11):

.. math::

    y^l &= W^l * x^{l-1}, \qquad \mathrm d y^l = W^l * \mathrm d x^{l-1}, \\
    z^l_{\alpha,c} &= \frac{y^l_{\alpha,c} - \mathbb E_{x,\alpha}[y^l_{\alpha,c}]}
                           {\sqrt{\operatorname{Var}_{x,\alpha}[y^l_{\alpha,c}] + \epsilon}}, \qquad
    \mathrm d z^l_{\alpha,c} = \frac{\mathrm d y^l_{\alpha,c}}
                           {\sqrt{\operatorname{Var}_{x,\alpha}[y^l_{\alpha,c}] + \epsilon}}, \\
    x^l &= \phi(z^l), \qquad \mathrm d x^l = \phi'(z^l) \odot \mathrm d z^l,

where :math:`*` is a convolution with periodic boundary conditions (circular padding)
and the batch-normalization statistics are the signal's, over the batch and the spatial
positions, treated as constants.  Three architectures:

* ``"vanilla"``: conv then ReLU (no batch normalization);
* ``"bn_ff"``: conv, batch normalization, ReLU;
* ``"bn_res"``: pre-activation residual units of ``res_depth`` = :math:`K` blocks,
  :math:`x^l = x^{l-1} + F(x^l)` with :math:`F = (\text{BN} \to \text{ReLU} \to
  \text{conv})^{K}` and the noise following the same graph,
  :math:`\mathrm d x^l = \mathrm d x^{l-1} + \mathrm d F`.  The depth counts units.

Weights are Gaussian without bias, :math:`W \sim \mathcal N(0, \sigma_w^2/(N_{l-1}
k^2))`, with :math:`\sigma_w^2 = 2` (He et al. 2015) by default.  A *stem* comes first,
as in the paper's experiments: one linear convolution of stride ``stem_stride`` from the
input's channels to ``width`` channels with LeCun weights (variance :math:`1/(C k^2)`,
no ReLU follows), taking CIFAR-10's :math:`32\times32\times3` images to
:math:`16\times16\times N`.  A fully connected network is the case ``kernel_size = 1``
on flattened inputs (``fully_connected=True``).

.. rubric:: Statistics, reduced on the fly

After each step the signal and noise tensors are reduced to the moments of
Labatie (2019, Sec. 3.1), for every realization: with :math:`c` the channel and
:math:`(x, \alpha)` the input and position,

.. math::

    \nu_1(|x|) = \mathbb E_{c,x,\alpha}|x_{\alpha,c}|, \quad
    \nu_2(x) = \mathbb E_{c,x,\alpha}\, x_{\alpha,c}^2, \quad
    \mu_p(x) = \mathbb E_c\, \mathbb E_{x,\alpha}\big[(x_{\alpha,c} -
    \mathbb E_{x,\alpha} x_{\alpha,c})^p\big]\ (p = 2, 4), \quad
    \mu_2(\mathrm d x) = \mathbb E_{c,x,\alpha}\, \mathrm d x_{\alpha,c}^2,

and the normalized sensitivity (Labatie 2019, eq. 3)

.. math::

    \chi^l = \sqrt{\frac{\mu_2(\mathrm d x^l)}{\mu_2(x^l)}}
             \Big/ \sqrt{\frac{\mu_2(\mathrm d x^0)}{\mu_2(x^0)}},

normalized by the *input* (the images, before the stem).  Every ``reff_every`` layers
the effective ranks :math:`r_\text{eff}(x^l)` and :math:`r_\text{eff}(\mathrm d x^l)`
(:func:`sigprop.stats.effective_rank`, on the feature vectors pooled over inputs and
positions) are recorded as well: an SVD per realization, the costly part, hence the
option to thin it out.

Tensors propagate in ``dtype`` (float32 by default) and every reduction accumulates in
float64.  The noise is rescaled to unit second moment after every layer (unit) and its
log-scale kept in float64, which is exact since the noise enters linearly; in vanilla
networks the signal is rescaled too (exact: ReLU without bias is positively
homogeneous).  Nothing is stored per layer but these moments, so memory does not grow
with depth: one layer's signal and noise (three tensors in a residual unit) and one
layer's weights are alive at a time.

.. rubric:: Sites

Moments are recorded at named *sites* of each layer :math:`l` (unit :math:`l` for
``bn_res``), following the locations of the paper's code:

==========  ===========================================================================
arch        sites (in order)
==========  ===========================================================================
vanilla     ``"y"`` (:math:`y^l`, after the conv), ``"out"`` (:math:`x^l`)
bn_ff       ``"y"``, ``"z"`` (:math:`z^l`, after BN), ``"out"`` (:math:`x^l`, after ReLU)
bn_res      ``"z"`` (:math:`z^{l,1}`), ``"x"`` (:math:`x^{l,1}`), ``"y"`` (:math:`y^{l,1}`),
            all in the unit's first block, and ``"out"`` (:math:`x^l`, after the addition)
==========  ===========================================================================

The effective ranks are taken at ``"out"`` (feedforward) or ``"x"`` (residual), as in
the paper.

References
----------
* Labatie (2019), *Characterizing Well-Behaved vs. Pathological Deep Neural Networks*,
  ICML; code at https://github.com/alabatie/moments-dnns.
* He, Zhang, Ren & Sun (2015), *Delving deep into rectifiers*; He, Zhang, Ren & Sun
  (2016), *Identity mappings in deep residual networks* (pre-activation units).
* Ioffe & Szegedy (2015), *Batch normalization*.
"""
from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from .. import init as _init
from .._checks import check_alloc, check_generator, check_nonneg, check_real
from .._deprecation import renamed_kwarg, warn_renamed
from .. import runtime
from .. import stats as _stats
from ._common import _check_int, _seeded

Tensor = torch.Tensor

__all__ = [
    "ARCHS", "MOMENT_KEYS", "SignalNoiseConfig", "SignalNoiseTrace",
    "propagate_signal_noise", "signal_noise_parameters", "prepare_inputs",
]

#: The architectures :class:`SignalNoiseConfig` knows.
ARCHS = ("vanilla", "bn_ff", "bn_res")
#: The moments recorded at every site, in this order.
MOMENT_KEYS = ("nu1_abs", "nu2", "mu2", "mu4", "mu2_noise")
_SITES = {"vanilla": ("y", "out"), "bn_ff": ("y", "z", "out"), "bn_res": ("z", "x", "y", "out")}
_REFF_SITE = {"vanilla": "out", "bn_ff": "out", "bn_res": "x"}
_F64 = torch.float64


# --------------------------------------------------------------------------- #
# Configuration.
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class SignalNoiseConfig:
    r"""An ensemble of ``n_nets`` random ReLU networks for :func:`propagate_signal_noise`.

    Attributes
    ----------
    arch : str
        ``"vanilla"``, ``"bn_ff"`` or ``"bn_res"`` (see :mod:`sigprop.ensemble.signal_noise`).
    depth : int
        Number of layers :math:`L \ge 1` (of residual units for ``"bn_res"``), after the stem.
    width : int
        Channels :math:`N \ge 1` of every layer (units of a fully connected layer).
    kernel_size : int
        Odd spatial extent :math:`k \ge 1` of the convolutions; 1 when ``fully_connected``.
    fully_connected : bool
        Flatten the inputs to vectors and use dense layers (Labatie's ``kernel_size = 1``);
        ``kernel_size`` and ``stem_stride`` are then set to 1 (from their defaults).
    res_depth : int
        Blocks per residual unit, :math:`K \ge 1` (``"bn_res"`` only; the paper's :math:`H = 2`).
    epsilon : float
        Batch-normalization fuzz factor :math:`\epsilon \ge 0` (the paper's code: :math:`10^{-3}`).
    sigma_w2 : float
        Weight variance times fan-in, :math:`\sigma_w^2 > 0`; 2 is He initialization.
    stem_stride : int
        Stride of the stem convolution, :math:`\ge 1` (2 in the paper; 1 when ``fully_connected``).
    n_nets : int
        Number of independent realizations (networks and noises), :math:`\ge 1`.

    Raises
    ------
    ValueError
        If ``arch`` is unknown, an integer is out of range, ``kernel_size`` is even,
        ``epsilon`` is negative, ``sigma_w2`` is not positive, or a fully connected
        network is asked for with a ``kernel_size`` or ``stem_stride`` other than 1 or
        its default.
    """

    arch: str
    depth: int
    width: int
    kernel_size: int = 3
    fully_connected: bool = False
    res_depth: int = 2
    epsilon: float = 1e-3
    sigma_w2: float = 2.0
    stem_stride: int = 2
    n_nets: int = 1

    def __post_init__(self) -> None:
        setf = object.__setattr__
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}; got {self.arch!r}")
        for name in ("depth", "width", "res_depth", "n_nets"):
            setf(self, name, _check_int(getattr(self, name), name))
        if not isinstance(self.fully_connected, bool):
            raise ValueError(f"fully_connected must be True or False; got {self.fully_connected!r}")
        if self.fully_connected:
            if self.kernel_size not in (1, 3) or self.stem_stride not in (1, 2):
                raise ValueError("a fully connected network has kernel_size = 1 and stem_stride = 1 (leave them "
                                 "at their defaults); got "
                                 f"kernel_size={self.kernel_size!r}, stem_stride={self.stem_stride!r}")
            setf(self, "kernel_size", 1)
            setf(self, "stem_stride", 1)
        k = _check_int(self.kernel_size, "kernel_size")
        if k % 2 == 0:
            raise ValueError(f"kernel_size must be an odd integer >= 1; got {self.kernel_size!r}")
        setf(self, "kernel_size", k)
        setf(self, "stem_stride", _check_int(self.stem_stride, "stem_stride"))
        setf(self, "epsilon", check_nonneg(self.epsilon, "epsilon"))
        setf(self, "sigma_w2", check_real(self.sigma_w2, "sigma_w2", 0.0, lo_open=True))

    @property
    def sites(self) -> Tuple[str, ...]:
        """The sites at which moments are recorded (see the module's table)."""
        return _SITES[self.arch]

    @property
    def reff_site(self) -> str:
        """The site of the effective ranks: ``"out"``, or ``"x"`` for ``"bn_res"``."""
        return _REFF_SITE[self.arch]

    @property
    def n_conv(self) -> int:
        """Number of convolutions after the stem: ``depth``, or ``depth * res_depth``."""
        return self.depth * (self.res_depth if self.arch == "bn_res" else 1)

    @property
    def n_real(self) -> int:
        """Deprecated name of :attr:`n_nets` (removed in the next release)."""
        warn_renamed("SignalNoiseConfig.n_real", "SignalNoiseConfig.n_nets")
        return self.n_nets


SignalNoiseConfig.__init__ = renamed_kwarg("n_real", "n_nets", "SignalNoiseConfig")(SignalNoiseConfig.__init__)


# --------------------------------------------------------------------------- #
# Result.
# --------------------------------------------------------------------------- #
@dataclass
class SignalNoiseTrace:
    r"""Per-layer moments of one :func:`propagate_signal_noise` run.

    Tensors are float64 on the CPU; the last axis indexes the ``n_nets`` realizations,
    and row ``l - 1`` of a per-layer tensor holds layer (unit) :math:`l`.

    Attributes
    ----------
    config : SignalNoiseConfig
        The ensemble simulated.
    depth : Tensor
        ``(L,)`` int64, the layer numbers ``1..L``.
    moments : dict
        Site -> moment name (:data:`MOMENT_KEYS`) -> ``(L, n_nets)`` tensor, in the
        true scale of signal and noise (the internal rescaling undone).
    stem : dict
        Moment name -> ``(n_nets,)``, at the stem's output :math:`x^0` of the stack.
    inputs : dict
        Moment name -> ``(n_nets,)``, of the network's input and input noise (the
        normalization of :math:`\chi`).
    reff_depth : Tensor
        ``(n_reff,)`` int64, the layers at which effective ranks were taken.
    reff_signal, reff_noise : Tensor
        ``(n_reff, n_nets)``, :math:`r_\text{eff}(x)` and :math:`r_\text{eff}(\mathrm dx)`
        at :attr:`SignalNoiseConfig.reff_site`.
    """

    config: SignalNoiseConfig
    depth: Tensor
    moments: Dict[str, Dict[str, Tensor]]
    stem: Dict[str, Tensor]
    inputs: Dict[str, Tensor]
    reff_depth: Tensor
    reff_signal: Tensor
    reff_noise: Tensor

    def _site(self, site: str) -> Dict[str, Tensor]:
        if site not in self.moments:
            raise ValueError(f"site must be one of {tuple(self.moments)} for arch {self.config.arch!r}; got {site!r}")
        return self.moments[site]

    def moment(self, key: str, site: str = "out") -> Tensor:
        """``(L, n_nets)``: the moment ``key`` (one of :data:`MOMENT_KEYS`) at ``site``.

        Raises
        ------
        ValueError
            If ``key`` or ``site`` is unknown.
        """
        if key not in MOMENT_KEYS:
            raise ValueError(f"key must be one of {MOMENT_KEYS}; got {key!r}")
        return self._site(site)[key]

    @property
    def chi_input(self) -> Tensor:
        r"""``(n_nets,)``: :math:`\sqrt{\mu_2(\mathrm dx^0)/\mu_2(x^0)}` of the input."""
        return torch.sqrt(self.inputs["mu2_noise"] / self.inputs["mu2"])

    def chi(self, site: str = "out") -> Tensor:
        r"""``(L, n_nets)``: the normalized sensitivity :math:`\chi` at ``site``
        (:func:`sigprop.stats.normalized_sensitivity`).

        Raises
        ------
        ValueError
            If ``site`` is unknown.
        """
        m = self._site(site)
        return _stats.normalized_sensitivity(m["mu2_noise"], m["mu2"], self.inputs["mu2_noise"], self.inputs["mu2"])

    @property
    def chi_stem(self) -> Tensor:
        r"""``(n_nets,)``: :math:`\chi` at the stem's output (layer 0 of the stack)."""
        return _stats.normalized_sensitivity(self.stem["mu2_noise"], self.stem["mu2"],
                                             self.inputs["mu2_noise"], self.inputs["mu2"])

    def _chi_prev(self) -> Tensor:
        """``(L, n_nets)``: chi at the output of the previous layer (the stem for l = 1)."""
        return torch.cat([self.chi_stem[None], self.chi("out")[:-1]], 0)

    def delta_chi(self, step: str = "total") -> Tensor:
        r"""``(L, n_nets)``: a geometric increment of :math:`\chi` in layer (unit) :math:`l`.

        ``step`` is one of

        * ``"total"``: :math:`\chi^l/\chi^{l-1}` at the layer (unit) outputs;
        * ``"block"``: the feedforward increment :math:`\delta\chi^{l,1}` of the first
          block of a residual unit, from :math:`x^{l-1}` to :math:`y^{l,1}` (the
          paper's Fig. 5a); equal to ``"total"`` in feedforward nets;
        * ``"bn"``: the batch-normalization step :math:`\delta_\text{BN}\chi^l`, from
          :math:`x^{l-1}` to :math:`z^l` (conv and BN in ``bn_ff``, BN alone in ``bn_res``);
        * ``"act"``: the activation step :math:`\delta_\phi\chi^l`, from :math:`z^l` to
          :math:`x^l` in ``bn_ff``, from :math:`z^{l,1}` to :math:`y^{l,1}` (ReLU and
          conv) in ``bn_res``, from :math:`y^l` to :math:`x^l` in ``vanilla``;
        * ``"conv"``: the convolution step from :math:`x^{l-1}` to :math:`y^l` (``vanilla``
          and ``bn_ff``).

        The splits follow the paper's code, so that ``bn * act == block``.

        Raises
        ------
        ValueError
            If ``step`` is unknown or does not exist for the architecture.
        """
        arch = self.config.arch
        prev = self._chi_prev
        if step == "total":
            return self.chi("out") / prev()
        if step == "block":
            return (self.chi("y") if arch == "bn_res" else self.chi("out")) / prev()
        if step == "bn" and arch != "vanilla":
            return self.chi("z") / prev()
        if step == "act":
            return {"vanilla": lambda: self.chi("out") / self.chi("y"),
                    "bn_ff": lambda: self.chi("out") / self.chi("z"),
                    "bn_res": lambda: self.chi("y") / self.chi("z")}[arch]()
        if step == "conv" and arch != "bn_res":
            return self.chi("y") / prev()
        allowed = {"vanilla": ("total", "block", "act", "conv"), "bn_ff": ("total", "block", "bn", "act", "conv"),
                   "bn_res": ("total", "block", "bn", "act")}[arch]
        raise ValueError(f"step must be one of {allowed} for arch {arch!r}; got {step!r}")

    def log_moment_ratio(self, key: str = "nu2", site: str = "out") -> Tensor:
        r"""``(L, n_nets)``: :math:`\log m(x^l) - \log m(x^0)` for the moment ``key``,
        with :math:`x^0` the stem's output (Labatie 2019, Fig. 2).

        Raises
        ------
        ValueError
            If ``key`` or ``site`` is unknown.
        """
        return torch.log(self.moment(key, site)) - torch.log(self.stem[key])


# --------------------------------------------------------------------------- #
# Inputs.
# --------------------------------------------------------------------------- #
@renamed_kwarg("n_real", "n_nets", "prepare_inputs")
def prepare_inputs(images: Tensor, n_nets: int, batch: int, generator: Optional[torch.Generator] = None,
                   downsample: int = 1) -> Tensor:
    r"""Draw ``batch`` distinct images per realization and standardize them per channel.

    As in the paper's code, each realization gets its own random batch (without
    replacement, from ``images``), and each channel :math:`c` of that batch is centred
    and scaled over the batch and the spatial positions, so that
    :math:`\mu_2(x^0) = 1`.  ``downsample > 1`` first average-pools the images by that
    factor (a cheaper input for small-scale runs).

    Parameters
    ----------
    images : Tensor
        ``(n_images, C, H, W)`` images (or ``(n_images, D)`` vectors).
    n_nets, batch : int
        Realizations and images per realization, ``2 <= batch <= n_images``.
    generator : torch.Generator, optional
        Source of the random choice (on the CPU or on ``images``' device).
    downsample : int
        Average-pooling factor :math:`\ge 1`, dividing ``H`` and ``W``.

    Returns
    -------
    Tensor
        ``(n_nets, batch, C, H/downsample, W/downsample)`` float32, on ``images``' device.

    Raises
    ------
    ValueError
        If the shapes or integers are out of range.
    """
    if not isinstance(images, Tensor) or images.ndim not in (2, 4) or not images.is_floating_point():
        raise ValueError("images must be a floating tensor of shape (n_images, C, H, W) or (n_images, D); "
                         f"got {getattr(images, 'shape', type(images).__name__)}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"images must be finite; got {int((~torch.isfinite(images)).sum())} nan or inf value(s)")
    n_nets = _check_int(n_nets, "n_nets")
    batch = _check_int(batch, "batch", low=2)
    if batch > images.shape[0]:
        raise ValueError(f"batch must be in 2..n_images = 2..{images.shape[0]}; got {batch}")
    downsample = _check_int(downsample, "downsample")
    x = images.to(torch.float32)
    if downsample > 1:
        if x.ndim != 4 or x.shape[-1] % downsample or x.shape[-2] % downsample:
            raise ValueError(f"downsample must divide the images' height and width {tuple(x.shape[-2:])}; "
                             f"got {downsample}")
        x = F.avg_pool2d(x, downsample)
    check_alloc(f"prepare_inputs of {n_nets} x {batch} images", n_nets * batch * x[0].numel(), torch.float32, x.device,
                copies=3)
    dev = generator.device if generator is not None else torch.device("cpu")
    idx = torch.stack([torch.randperm(x.shape[0], generator=generator, device=dev)[:batch]
                       for _ in range(n_nets)]).to(x.device)
    x = x[idx]  # (R, B, C, ...)
    dims = (1,) + tuple(range(3, x.ndim))  # batch and positions, per channel
    x = x - x.mean(dims, keepdim=True)
    return x / x.square().mean(dims, keepdim=True).sqrt().clamp_min(1e-12)


# --------------------------------------------------------------------------- #
# Parameters.
# --------------------------------------------------------------------------- #
def _draw_seeds(generator: Optional[torch.Generator], n: int) -> List[int]:
    dev = generator.device if generator is not None else torch.device("cpu")
    return torch.randint(0, 2**62, (n,), generator=generator, device=dev, dtype=torch.int64).tolist()


def _conv_weight(seed: int, n_nets: int, n_out: int, n_in: int, k: int, sigma_w2: float,
                 device, dtype) -> Tensor:
    """``(n_nets, n_out, n_in, k, k)`` Gaussian weights of variance sigma_w2 / (n_in k^2)."""
    g = _seeded(seed, device)
    w = _init.gaussian((n_nets, n_out, n_in * k * k), math.sqrt(sigma_w2), generator=g, device=device, dtype=dtype)
    return w.reshape(n_nets, n_out, n_in, k, k)


def signal_noise_parameters(config: SignalNoiseConfig, in_channels: int, generator: Optional[torch.Generator] = None,
                            device=None, dtype: torch.dtype = torch.float32) -> Dict[str, object]:
    r"""The very weights :func:`propagate_signal_noise` draws for a given generator state.

    For inspection and tests (one chunk, i.e. ``chunk=None``).

    Returns
    -------
    dict
        ``"stem"``: ``(n_nets, width, in_channels, k, k)`` (LeCun variance
        :math:`1/(C k^2)`); ``"convs"``: a list of ``n_conv`` tensors
        ``(n_nets, width, width, k, k)`` in the order they are applied; ``"noise_seed"``:
        the seed of the input noise drawn when none is given.

    Raises
    ------
    ValueError
        If ``in_channels`` is not a positive integer.
    """
    in_channels = _check_int(in_channels, "in_channels")
    if not isinstance(config, SignalNoiseConfig):
        raise ValueError(f"config must be a SignalNoiseConfig; got {type(config).__name__}")
    check_generator(generator)
    dev = runtime.device(device) if not isinstance(device, torch.device) else device
    seeds = _draw_seeds(generator, config.n_conv + 2)
    k, n, r = config.kernel_size, config.width, config.n_nets
    return {
        "stem": _conv_weight(seeds[0], r, n, in_channels, k, 1.0, dev, dtype),
        "convs": [_conv_weight(s, r, n, n, k, config.sigma_w2, dev, dtype) for s in seeds[1:-1]],
        "noise_seed": seeds[-1],
    }


# --------------------------------------------------------------------------- #
# The propagation steps.  Working layout: P of shape (2B, H, W, R, N), the signal
# in P[:B] and the noise in P[B:], so that one grouped convolution serves both.
# --------------------------------------------------------------------------- #
def _colsum(t: Tensor) -> Tensor:
    """Column sums of a ``(M, K)`` tensor: float32 partial sums over blocks of at most 64
    rows, accumulated in float64 (as accurate as a float64 sum at a fraction of its cost)."""
    m = t.shape[0]
    blk = next(b for b in (64, 32, 16, 8, 4, 2, 1) if m % b == 0)
    return t.reshape(m // blk, blk, t.shape[1]).sum(1).sum(0, dtype=_F64)


def _circular_pad(p: Tensor, pad: int) -> Tensor:
    """Periodic padding of the two spatial axes of ``(M, H, W, R, N)``."""
    m, h, w = p.shape[:3]
    out = p.new_empty((m, h + 2 * pad, w + 2 * pad) + p.shape[3:])
    out[:, pad:pad + h, pad:pad + w] = p
    out[:, :pad, pad:pad + w] = p[:, h - pad:]
    out[:, pad + h:, pad:pad + w] = p[:, :pad]
    out[:, :, :pad] = out[:, :, w:w + pad]
    out[:, :, pad + w:] = out[:, :, pad:2 * pad]
    return out


def _conv(p: Tensor, w: Tensor, stride: int) -> Tensor:
    """Circular convolution of every realization with its own kernel ``w`` (R, O, I, k, k)."""
    m, h, wd, r, n_in = p.shape
    k, n_out = w.shape[-1], w.shape[1]
    if k == 1 and stride == 1:
        return torch.einsum("bhwri,roi->bhwro", p, w[..., 0, 0])
    pad = (k - 1) // 2
    if pad:
        p = _circular_pad(p, pad)
    x = p.reshape(m, p.shape[1], p.shape[2], r * n_in).permute(0, 3, 1, 2)  # channels-last NCHW view
    y = F.conv2d(x, w.reshape(r * n_out, n_in, k, k), stride=stride, groups=r)
    return y.permute(0, 2, 3, 1).reshape(m, y.shape[2], y.shape[3], r, n_out)


def _bn_(p: Tensor, batch: int, eps: float) -> None:
    """Test-mode batch normalization in place: the signal's statistics, noise only rescaled."""
    s = p[:batch]
    flat = s.reshape(-1, s.shape[-2] * s.shape[-1])
    count = flat.shape[0]
    mean = (_colsum(flat) / count).to(s.dtype)
    var = _colsum((flat - mean).square_()) / count
    inv = torch.rsqrt(var + eps).to(s.dtype).reshape(s.shape[-2:])
    s.sub_(mean.reshape(s.shape[-2:])).mul_(inv)
    p[batch:].mul_(inv)


def _relu_(p: Tensor, batch: int) -> None:
    """ReLU in place; the noise is masked by 1[z > 0] (the derivative, 0 at 0)."""
    s = p[:batch]
    p[batch:].mul_((s > 0).to(p.dtype))
    s.clamp_(min=0)


def _moments(p: Tensor, batch: int, log_sx: Tensor, log_sd: Tensor, nonneg: bool = False) -> Tensor:
    """``(5, R)`` float64: nu1(|x|), nu2(x), mu2(x), mu4(x), mu2(dx), in the true scale.

    Four passes over the signal: its sum, the centred squares, their squares, and |x| (none
    where the signal is known to be non-negative, after a ReLU: then nu1 is the mean).  The
    raw second moment comes from the centred one per channel, in float64:
    E x^2 = E (x - m)^2 + 2 m (E x - m) + m^2 with m the float32 mean used for centring."""
    r, n = p.shape[-2:]
    s = p[:batch].reshape(-1, r * n)
    d = p[batch:].reshape(-1, r * n)
    count = s.shape[0]

    def per_channel(t: Tensor) -> Tensor:  # float64 mean over samples, per (realization, channel)
        return _colsum(t) / count

    def avg(v: Tensor) -> Tensor:  # mean over channels, per realization
        return v.reshape(r, n).mean(-1)

    mean64 = per_channel(s)
    mean = mean64.to(s.dtype)
    m = mean.to(_F64)
    c2 = (s - mean).square_()
    mu2c = per_channel(c2)
    mu4 = avg(per_channel(c2.square_()))
    del c2
    nu2 = avg(mu2c + 2 * m * (mean64 - m) + m * m)
    nu1 = avg(mean64) if nonneg else avg(per_channel(s.abs()))
    mu2n = avg(per_channel(d.square()))
    ex, ed = torch.exp(log_sx), torch.exp(log_sd)
    return torch.stack([nu1 * ex, nu2 * ex**2, avg(mu2c) * ex**2, mu4 * ex**4, mu2n * ed**2])


def _rescale_(p: Tensor, batch: int, which: slice, second_moment: Tensor, log_s: Tensor) -> None:
    """Divide a half of P by the square root of its per-realization second moment (float64 log kept)."""
    ok = second_moment > 0
    f = torch.where(ok, second_moment, torch.ones_like(second_moment))
    log_s.add_(0.5 * torch.log(f))
    p[which].mul_(torch.rsqrt(f).to(p.dtype)[:, None])


def _reff_one(feats: Tensor, center: bool) -> Tensor:
    """Effective rank of one ``(M, N)`` sample of feature vectors, in float64.

    For tall samples (M > 2N) the data are first reduced to the ``N x N`` triangular
    factor of a QR decomposition, which has the same singular values (an SVD of the
    small factor instead of the tall matrix: several times cheaper, same result)."""
    x = feats.to(_F64)
    if center:
        x = x - x.mean(0, keepdim=True)
    if x.shape[0] > 2 * x.shape[1]:
        x = torch.linalg.qr(x, mode="r").R
    return _stats.effective_rank(x, dim_samples=0, center=False)


def _reff(p: Tensor, batch: int) -> Tuple[Tensor, Tensor]:
    """``(R,)`` effective ranks of signal (centred) and noise (uncentred), one realization at a time."""
    out_s, out_n = [], []
    for i in range(p.shape[3]):  # one realization at a time bounds the float64 copy
        out_s.append(_reff_one(p[:batch, :, :, i].reshape(-1, p.shape[-1]), center=True))
        out_n.append(_reff_one(p[batch:, :, :, i].reshape(-1, p.shape[-1]), center=False))
    return torch.stack(out_s), torch.stack(out_n)


def _as_inputs(x: Tensor, n_nets: int, fully_connected: bool, name: str) -> Tensor:
    """``(R, B, C, H, W)`` from ``(B, C, H, W)``/``(R, B, C, H, W)`` (or vectors when fully connected)."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor; got {type(x).__name__}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite; got {int((~torch.isfinite(x)).sum())} nan or inf value(s)")
    if fully_connected:
        if x.ndim in (2, 4):
            x = x.reshape(x.shape[0], -1)[None].expand(n_nets, -1, -1)
        elif x.ndim in (3, 5):
            x = x.reshape(x.shape[0], x.shape[1], -1)
        else:
            raise ValueError(f"{name} must have shape (B, D), (B, C, H, W), or with a leading n_nets axis; "
                             f"got {tuple(x.shape)}")
        x = x[..., None, None]
    else:
        if x.ndim == 4:
            x = x[None].expand(n_nets, -1, -1, -1, -1)
        elif x.ndim != 5:
            raise ValueError(f"{name} must have shape (B, C, H, W) or (n_nets, B, C, H, W); got {tuple(x.shape)}")
    if x.shape[0] != n_nets:
        raise ValueError(f"{name} has {x.shape[0]} realizations on its first axis; config.n_nets is {n_nets}")
    if x.shape[1] < 2:
        raise ValueError(f"{name} must hold a batch of at least 2 inputs (moments are taken over the batch); "
                         f"got {x.shape[1]}")
    return x


# --------------------------------------------------------------------------- #
# The kernel.
# --------------------------------------------------------------------------- #
def propagate_signal_noise(
    x: Tensor,
    config: SignalNoiseConfig,
    *,
    noise: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
    reff_every: int = 0,
    chunk: Optional[int] = None,
    callback: Optional[Callable[[int, str, Tensor, Tensor], None]] = None,
    allow_tf32: bool = False,
    threads: Optional[int] = 1,
) -> SignalNoiseTrace:
    r"""Propagate a signal and an infinitesimal noise through ``n_nets`` random networks.

    See :mod:`sigprop.ensemble.signal_noise` for the model and the statistics.

    Parameters
    ----------
    x : Tensor
        Inputs: ``(B, C, H, W)`` shared by every realization, or ``(n_nets, B, C, H, W)``
        (e.g. from :func:`prepare_inputs`); vectors ``(B, D)`` / ``(n_nets, B, D)`` (or
        images, flattened) when ``config.fully_connected``.  :math:`B \ge 2`.
    config : SignalNoiseConfig
        Architecture, width, depth and number of realizations.
    noise : Tensor, optional
        The input noise :math:`\mathrm dx^0`, of ``x``'s shape; by default i.i.d.
        :math:`\mathcal N(0, 1)`, drawn from ``generator``.
    generator : torch.Generator, optional
        Source of all randomness (weights and noise); seeds are drawn from it, so a
        fixed generator state gives a fixed run.
    device : str or torch.device, optional
        Where to simulate (default :func:`sigprop.runtime.device`).
    dtype : torch.dtype
        Propagation precision (``torch.float32``; ``torch.float64`` for checks).
        Reductions accumulate in float64 either way.
    reff_every : int
        Record effective ranks every this many layers (units); 0 never (default).
    chunk : int, optional
        Realizations simulated together, to bound memory; default all of them.
    callback : callable, optional
        ``callback(layer, site, signal, noise)`` after each recorded site (layer 0,
        site ``"out"``: the stem), with true-scale float tensors of shape
        ``(r, B, N, H, W)`` for the ``r`` realizations of the current chunk.  For
        histograms and tests; it must not keep the tensors if memory matters.
    allow_tf32 : bool
        On CUDA, let cuDNN run the convolutions in TF32 (faster on recent GPUs, about
        three significant digits).  Off by default, so that the propagation is float32
        as documented; the global cuDNN settings are restored afterwards.
    threads : int or None
        CPU threads for this call (torch's setting is restored on return); ``None`` keeps
        torch's setting.  The default, 1, suits the many small grouped convolutions and
        element-wise reductions of these runs: on two busy cores one thread ran the
        book's chapter three times faster than two, and on an idle machine it costs at
        most the factor of the cores given up.  Ignored on CUDA.

    Returns
    -------
    SignalNoiseTrace

    Raises
    ------
    ValueError
        If ``x`` or ``noise`` has a bad shape, ``config`` is not a
        :class:`SignalNoiseConfig`, ``reff_every`` or ``chunk`` is out of range, or
        the spatial size is smaller than the kernel.

    Examples
    --------
    >>> import torch
    >>> from sigprop.ensemble import SignalNoiseConfig, propagate_signal_noise
    >>> cfg = SignalNoiseConfig("bn_ff", depth=10, width=16, n_nets=2)
    >>> x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> tr = propagate_signal_noise(x, cfg, generator=torch.Generator().manual_seed(1), device="cpu")
    >>> tr.chi().shape
    torch.Size([10, 2])
    """
    if not isinstance(config, SignalNoiseConfig):
        raise ValueError(f"config must be a SignalNoiseConfig; got {type(config).__name__}")
    if dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be a floating torch dtype; got {dtype!r}")
    if threads is not None:
        threads = _check_int(threads, "threads")
    if isinstance(reff_every, bool) or not isinstance(reff_every, numbers.Integral) or reff_every < 0:
        raise ValueError(f"reff_every must be an integer >= 0 (0: never); got {reff_every!r}")
    R = config.n_nets
    chunk = R if chunk is None else _check_int(chunk, "chunk")
    check_generator(generator)
    dev = runtime.device(device) if not isinstance(device, torch.device) else device
    xs = _as_inputs(x, R, config.fully_connected, "x")
    if noise is not None:
        ns = _as_inputs(noise, R, config.fully_connected, "noise")
        if ns.shape != xs.shape:
            raise ValueError(f"noise must have x's shape {tuple(xs.shape)}; got {tuple(ns.shape)}")
    if not config.fully_connected and min(xs.shape[-2:]) < config.kernel_size:
        raise ValueError(f"x's spatial size {tuple(xs.shape[-2:])} must be at least kernel_size = {config.kernel_size}")

    L, sites = config.depth, config.sites
    reff_layers = [l for l in range(1, L + 1) if reff_every and l % reff_every == 0]
    parts = {"mom": [], "stem": [], "inp": [], "rs": [], "rn": []}
    for lo in range(0, R, chunk):
        hi = min(R, lo + chunk)
        seeds = _draw_seeds(generator, config.n_conv + 2)
        xc = xs[lo:hi].to(dev, dtype)
        if noise is None:
            nc = torch.randn(xc.shape, generator=_seeded(seeds[-1], dev), device=dev, dtype=dtype)
        else:
            nc = ns[lo:hi].to(dev, dtype)
        with _cudnn_tf32(dev, allow_tf32), _threads(threads if dev.type == "cpu" else None):
            out = _propagate_chunk(xc, nc, config, seeds, dev, dtype, reff_layers, callback)
        for key, val in zip(("mom", "stem", "inp", "rs", "rn"), out):
            parts[key].append(val)
    mom = torch.cat(parts["mom"], -1).cpu()  # (L, n_sites, 5, R)
    stem = torch.cat(parts["stem"], -1).cpu()
    inp = torch.cat(parts["inp"], -1).cpu()
    return SignalNoiseTrace(
        config=config,
        depth=torch.arange(1, L + 1),
        moments={s: {k: mom[:, i, j].contiguous() for j, k in enumerate(MOMENT_KEYS)} for i, s in enumerate(sites)},
        stem={k: stem[j] for j, k in enumerate(MOMENT_KEYS)},
        inputs={k: inp[j] for j, k in enumerate(MOMENT_KEYS)},
        reff_depth=torch.tensor(reff_layers, dtype=torch.int64),
        reff_signal=torch.cat(parts["rs"], -1).cpu(),
        reff_noise=torch.cat(parts["rn"], -1).cpu(),
    )


@contextlib.contextmanager
def _threads(n: Optional[int]):
    """Run with ``n`` CPU threads (``None``: unchanged), restoring the setting afterwards."""
    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def _cudnn_tf32(dev: torch.device, allow: bool):
    """Set cuDNN's TF32 switch for the convolutions of a CUDA run, and restore it."""
    if dev.type != "cuda":
        yield
        return
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9
        old = conv.fp32_precision
        conv.fp32_precision = "tf32" if allow else "ieee"
        try:
            yield
        finally:
            conv.fp32_precision = old
    else:
        old = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = bool(allow)
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = old


def _propagate_chunk(xc, nc, config, seeds, dev, dtype, reff_layers, callback):
    r, b = xc.shape[0], xc.shape[1]
    n, k, eps = config.width, config.kernel_size, config.epsilon
    arch, sites = config.arch, config.sites
    f64 = dict(device=dev, dtype=_F64)
    log_sx, log_sd = torch.zeros(r, **f64), torch.zeros(r, **f64)
    # (R, B, C, H, W) -> (2B, H, W, R, C)
    p = torch.cat([xc, nc], 1).permute(1, 3, 4, 0, 2).contiguous()
    del xc, nc
    inp = _moments(p, b, log_sx, log_sd)
    mom = torch.empty(config.depth, len(sites), 5, r, **f64)
    reff_s = torch.empty(len(reff_layers), r, **f64)
    reff_n = torch.empty(len(reff_layers), r, **f64)
    reff_at = {l: i for i, l in enumerate(reff_layers)}
    site_index = {s: i for i, s in enumerate(sites)}

    def weight(i, n_in, var):
        return _conv_weight(seeds[i], r, n, n_in, k, var, dev, dtype)

    def emit(layer, site, q):
        if callback is not None:
            sig = q[:b].permute(3, 0, 4, 1, 2) * torch.exp(log_sx).to(q.dtype)[:, None, None, None, None]
            noi = q[b:].permute(3, 0, 4, 1, 2) * torch.exp(log_sd).to(q.dtype)[:, None, None, None, None]
            callback(layer, site, sig, noi)

    def record(layer, site, q, nonneg=False):
        m = _moments(q, b, log_sx, log_sd, nonneg)
        mom[layer - 1, site_index[site]] = m
        if site == config.reff_site and layer in reff_at:
            reff_s[reff_at[layer]], reff_n[reff_at[layer]] = _reff(q, b)
        emit(layer, site, q)
        return m

    def rescale(m):
        # m holds true-scale moments; the stored tensor's second moments are m / exp(2 log_s)
        _rescale_(p, b, slice(b, None), m[4] / torch.exp(2 * log_sd), log_sd)
        if arch == "vanilla":
            _rescale_(p, b, slice(0, b), m[1] / torch.exp(2 * log_sx), log_sx)

    p = _conv(p, weight(0, p.shape[-1], 1.0), config.stem_stride)  # the stem: linear, LeCun
    stem = _moments(p, b, log_sx, log_sd)
    emit(0, "out", p)
    rescale(stem)
    conv_i = 1
    for layer in range(1, config.depth + 1):
        if arch in ("vanilla", "bn_ff"):
            p = _conv(p, weight(conv_i, n, config.sigma_w2), 1)
            conv_i += 1
            record(layer, "y", p)
            if arch == "bn_ff":
                _bn_(p, b, eps)
                record(layer, "z", p)
            _relu_(p, b)
            m = record(layer, "out", p, nonneg=True)
        else:
            skip = p
            q = p.clone()
            for block in range(1, config.res_depth + 1):
                _bn_(q, b, eps)
                if block == 1:
                    record(layer, "z", q)
                _relu_(q, b)
                if block == 1:
                    record(layer, "x", q, nonneg=True)
                q = _conv(q, weight(conv_i, n, config.sigma_w2), 1)
                conv_i += 1
                if block == 1:
                    record(layer, "y", q)
            p = skip.add_(q)
            del q, skip
            m = record(layer, "out", p)
        rescale(m)
    return mom, stem, inp, reff_s, reff_n
