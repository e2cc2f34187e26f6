r"""The random layers of fully connected ensembles: :class:`MLPConfig` says what they are,
:class:`MLPLayerSampler` draws them (one seed per layer, regenerable), :func:`random_layer` and
:func:`conditional_gaussian_layer` draw one layer at a time from one generator stream.

Every simulation of a fully connected network in the library draws its layers here:
:func:`sigprop.ensemble.propagate_mlp`, :func:`sigprop.ensemble.mlp_parameters`,
:func:`sigprop.spectra.input_output_jacobian` (through :class:`MLPLayerSampler`),
:func:`sigprop.critique.sample_preactivations` and :func:`sigprop.gaussian_preact.propagate`
(through the stream samplers).  The layer is

.. math::

    z^{l} = W^{l}\,\phi(z^{l-1}) + b^{l}, \qquad
    W^{l}_{ij} \sim \mathcal N\big(0, \sigma_w^2/N_{l-1}\big) \text{ (or orthogonal, Weibull, ...)}, \qquad
    b^{l}_i \sim \mathcal N(0, \sigma_b^2)

(Poole et al. 2016; Schoenholz et al. 2017; Saxe et al. 2014; Wolinski & Arbel 2025).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch

from .. import activations as _activations
from .. import init as _init
from .. import runtime
from .._checks import check_callable, check_dtype, check_generator, check_int, check_nonneg, check_tensor
from ._common import _GRAM_INITS, _as_gain, _check_int, _check_per_net, _draw_seeds, _seeded

Tensor = torch.Tensor
Scale = Union[float, Sequence[float], Tensor]

__all__ = ["MLPConfig", "MLPLayerSampler", "random_layer", "conditional_gaussian_layer"]


@dataclass(frozen=True)
class MLPConfig:
    r"""An ensemble of ``n_nets`` independent random MLPs.

    Either ``depth`` and ``width`` (all hidden layers of the same width) or
    ``widths`` (the width :math:`n_l` of each layer :math:`l = 1, \dots, L`, e.g.
    ``(1000,) * 5`` after a 784-dimensional input) are given; the first layer's
    fan-in is the input's feature count.

    Attributes
    ----------
    depth : int
        Number of layers :math:`L \ge 1` (set from ``widths`` when omitted).
    width : int
        Width of every layer, :math:`\ge 1` (``None`` when ``widths`` is given).
    act : str or Activation
        The activation :math:`\phi`, a name of :func:`sigprop.activations.available`.
    sigma_w : float or sequence or Tensor
        Weight scale :math:`\sigma_w \ge 0`.  With ``init="gaussian"``,
        :math:`W_{ij} \sim \mathcal N(0, \sigma_w^2/n_\text{in})`; with a named
        initialization it is that sampler's ``gain`` (default 1: the
        initialization as published).  One value per network (shape
        ``(n_nets,)``) simulates a whole grid of :math:`\sigma_w` in one call;
        it is stored as a tuple of floats.
    sigma_b : float or sequence or Tensor
        Bias standard deviation :math:`\sigma_b \ge 0`, one value or one per network.
    init : str or callable
        A name of :data:`sigprop.init.INITS`, or a sampler with the same signature.
    n_nets : int
        Number of independent networks, :math:`\ge 1`.
    widths : sequence of int, optional
        Per-layer widths, an alternative to ``depth``/``width``.

    Raises
    ------
    ValueError
        If depth, width, widths or n_nets are not positive integers (or disagree),
        if ``act`` or ``init`` is unknown, or if a scale is negative, not finite,
        or neither a number nor of shape ``(n_nets,)``.
    """

    depth: Optional[int] = None
    width: Optional[int] = None
    act: Union[str, _activations.Activation, None] = None
    sigma_w: Scale = 1.0
    sigma_b: Scale = 0.0
    init: Union[str, Callable[..., Tensor]] = "gaussian"
    n_nets: int = 1
    widths: Optional[Sequence[int]] = None

    def __post_init__(self) -> None:
        setf = object.__setattr__
        if self.act is None:
            raise ValueError(f"act is required: one of {_activations.available()} or an Activation")
        _activations.get(self.act)
        _init.get_init(self.init)
        n_nets = _check_int(self.n_nets, "n_nets")
        if self.widths is not None:
            try:
                ws = tuple(self.widths)
            except TypeError:
                raise ValueError(f"widths must be a sequence of integers >= 1; got {self.widths!r}") from None
            if not ws:
                raise ValueError("widths must hold at least one layer width; got an empty sequence")
            ws = tuple(_check_int(w, "every entry of widths") for w in ws)
            if self.depth is not None and self.depth != len(ws):
                raise ValueError(f"depth ({self.depth!r}) must equal len(widths) ({len(ws)}) when both are given")
            if self.width is not None and any(w != self.width for w in ws):
                raise ValueError("width must be omitted when widths is given (or equal every entry of widths)")
            setf(self, "widths", ws)
            setf(self, "depth", len(ws))
        else:
            _check_int(self.depth, "depth")
            _check_int(self.width, "width")
        setf(self, "sigma_w", _check_per_net(self.sigma_w, "sigma_w", n_nets))
        setf(self, "sigma_b", _check_per_net(self.sigma_b, "sigma_b", n_nets))

    @property
    def activation(self) -> _activations.Activation:
        """The :class:`~sigprop.activations.Activation` object."""
        return _activations.get(self.act)

    @property
    def layer_widths(self) -> Tuple[int, ...]:
        """:math:`(n_1, \\dots, n_L)`."""
        return tuple(self.widths) if self.widths is not None else (int(self.width),) * int(self.depth)

    def fan_ins(self, n_in: int) -> Tuple[int, ...]:
        """:math:`(n_0, \\dots, n_{L-1})` for an input of ``n_in`` features."""
        return (_check_int(n_in, "n_in"),) + self.layer_widths[:-1]

    def weight_variances(self, n_in: int) -> List[Union[float, Tensor]]:
        r"""Per-entry variance :math:`\operatorname{Var} W^l_{ij}` of each layer (see
        :func:`sigprop.init.weight_variance`); a tensor of shape ``(n_nets,)`` per
        layer when ``sigma_w`` is per network.

        Raises
        ------
        ValueError
            If ``init`` is a custom callable (its variance is unknown) or ``n_in < 1``.
        """
        if not isinstance(self.init, str):
            raise ValueError("weight_variances needs a named init; got a custom sampler")
        return [
            _init.weight_variance(self.init, fi, fo, gain=_as_gain(self.sigma_w))
            for fi, fo in zip(self.fan_ins(n_in), self.layer_widths)
        ]

    def effective_sigma_w(self, n_in: int) -> List[Union[float, Tensor]]:
        r"""The mean-field weight scale of each layer,
        :math:`\sigma_{w,l} = \sqrt{n_{l-1} \operatorname{Var} W^l_{ij}}`,
        so that ``sigprop.meanfield.q_map(act, q, sigma_w_eff[l-1], sigma_b)`` is the
        theory for layer ``l`` under any named initialization (for ``"gaussian"``
        it is ``sigma_w`` itself; for ``he_normal`` it is :math:`\sqrt2` times the gain).

        Raises
        ------
        ValueError
            As :meth:`weight_variances`.
        """
        out = []
        for fi, v in zip(self.fan_ins(n_in), self.weight_variances(n_in)):
            out.append(torch.sqrt(fi * v) if isinstance(v, Tensor) else math.sqrt(fi * v))
        return out


# --------------------------------------------------------------------------- #
# Parameters: one generator per layer, so weights can be regenerated.
# --------------------------------------------------------------------------- #


class MLPLayerSampler:
    r"""The random layers of an MLP ensemble: every simulation of a fully connected network draws them here.

    Layer :math:`l` of network :math:`k` maps the previous layer's activations to

    .. math::

        z^{l} = W^{l}\,\phi(z^{l-1}) + b^{l}, \qquad
        W^{l}_{ij} \sim \mathcal N\big(0, \sigma_w^2/N_{l-1}\big)\ \text{(``init="gaussian"``)},\quad
        b^{l}_i \sim \mathcal N(0, \sigma_b^2),

    or :math:`W^l` from any initialization of :mod:`sigprop.init` (orthogonal, He, Xavier, ...)
    or a custom sampler such as :func:`sigprop.gaussian_preact.weibull_init` (symmetric Weibull
    weights), with ``sigma_w`` as its gain (Poole et al. 2016; Schoenholz et al. 2017;
    Saxe et al. 2014 for orthogonal weights; Wolinski & Arbel 2025 for Weibull weights).
    ``sigma_w`` and ``sigma_b`` may hold one value per network.

    Each layer's weights and biases come from their own :class:`torch.Generator`, seeded from
    ``depth + 1`` seeds drawn from the caller's ``generator`` when the sampler is made (the
    last seed is for a random read-out gradient): the weights are never stored, and
    :meth:`params` regenerates them bit for bit.  :func:`propagate_mlp`,
    :func:`mlp_parameters` and :func:`sigprop.spectra.input_output_jacobian` all draw their
    networks here, so the same generator state gives the same networks in each.

    Parameters
    ----------
    config : MLPConfig
        The ensemble: widths, activation, scales, initialization, ``n_nets``.
    n_in : int
        Features of the input, the fan-in :math:`N_0` of layer 1.
    generator : torch.Generator, optional
        Source of the per-layer seeds (torch's global generator when ``None``).
    device : torch.device or str, optional
        Where to sample; default :func:`sigprop.runtime.device`.
    dtype : torch.dtype
        Floating dtype of the weights.

    Raises
    ------
    ValueError
        If ``config`` is not an :class:`MLPConfig`, ``n_in < 1`` or ``dtype`` is not floating.
    """

    def __init__(self, config: MLPConfig, n_in: int, *, generator: Optional[torch.Generator] = None, device=None,
                 dtype: torch.dtype = torch.float32):
        if not isinstance(config, MLPConfig):
            raise ValueError(f"config must be an MLPConfig; got {type(config).__name__}")
        n_in = _check_int(n_in, "n_in")
        check_dtype(dtype)
        device = runtime.device(device) if not isinstance(device, torch.device) else device
        self.config = config
        self.sampler = _init.get_init(config.init)
        self.init_name = config.init if isinstance(config.init, str) else None
        self.fan_in = config.fan_ins(n_in)
        self.fan_out = config.layer_widths
        self.n_nets = config.n_nets
        self.seeds = _draw_seeds(generator, config.depth)
        self.device, self.dtype = device, dtype
        self.gain = _as_gain(config.sigma_w, device, dtype)
        self.sigma_b = _as_gain(config.sigma_b, device, dtype)
        sb = config.sigma_b if isinstance(config.sigma_b, tuple) else (config.sigma_b,)
        self.has_bias = any(v > 0 for v in sb)

    @property
    def gram_exact(self) -> bool:
        """Whether :meth:`gram_affine` is exact: i.i.d. Gaussian weights (gaussian, lecun_normal, xavier_normal, he_normal)."""
        return self.init_name in _GRAM_INITS

    def readout_generator(self) -> torch.Generator:
        """The generator of the random read-out gradient (seed ``depth + 1``)."""
        return _seeded(self.seeds[self.config.depth], self.device)

    def params(self, layer: int, with_bias: bool = True) -> Tuple[Tensor, Optional[Tensor]]:
        r"""Layer ``layer``'s weights ``(n_nets, N_l, N_{l-1})`` and biases ``(n_nets, N_l)`` (``None``
        without bias, i.e. when every :math:`\sigma_b = 0` or ``with_bias=False``)."""
        i = layer - 1
        g = _seeded(self.seeds[i], self.device)
        shape = (self.n_nets, self.fan_out[i], self.fan_in[i])
        w = self.sampler(shape, generator=g, device=self.device, dtype=self.dtype, gain=self.gain)
        if tuple(w.shape) != shape:
            raise ValueError(f"init returned a tensor of shape {tuple(w.shape)}; expected {shape}")
        if not (with_bias and self.has_bias):
            return w, None
        b = torch.randn((self.n_nets, self.fan_out[i]), generator=g, device=self.device, dtype=self.dtype)
        sb = self.sigma_b.unsqueeze(-1) if isinstance(self.sigma_b, Tensor) else self.sigma_b
        return w, b * sb

    def gram_affine(self, layer: int, x: Tensor) -> Tensor:
        r"""Sample :math:`h = W x + b` without forming :math:`W` (i.i.d. Gaussian rows only).

        Given :math:`x` (batch x n), the rows of :math:`h^\top` are i.i.d.
        :math:`\mathcal N(0, K)` with :math:`K = v\,x x^\top + \sigma_b^2 \mathbf 1\mathbf 1^\top`,
        :math:`v = \operatorname{Var} W_{ij}`, so :math:`h^\top = G\,\mathrm{chol}(K)^\top` with
        :math:`G` standard normal (width x batch): exact in distribution, in
        :math:`O(\text{width}\cdot\text{batch}^2)` work instead of :math:`O(\text{width}^2\cdot\text{batch})`.
        """
        i = layer - 1
        g = _seeded(self.seeds[i], self.device)
        var = _init.weight_variance(self.init_name, self.fan_in[i], self.fan_out[i], gain=self.gain)
        xd = x.to(torch.float64)
        k = torch.matmul(xd, xd.transpose(-2, -1))
        k = k * (var.view(-1, 1, 1) if isinstance(var, Tensor) else var)
        if self.has_bias:
            sb2 = self.sigma_b.view(-1, 1, 1) ** 2 if isinstance(self.sigma_b, Tensor) else self.sigma_b**2
            k = k + sb2
        fac, info = torch.linalg.cholesky_ex(k)
        if bool((info != 0).any()):
            # rank-deficient Gram matrix (batch > width, dead units): symmetric square root
            ev, vec = torch.linalg.eigh(k)
            fac = vec * torch.sqrt(torch.clamp(ev, min=0.0)).unsqueeze(-2)
        z = torch.randn((self.n_nets, self.fan_out[i], x.shape[-2]), generator=g, device=self.device, dtype=torch.float64)
        return torch.matmul(z, fac.transpose(-2, -1)).transpose(-2, -1).to(self.dtype)

    def affine(self, layer: int, x: Tensor) -> Tensor:
        """:math:`h = W^l x + b^l` for ``x`` of shape ``(n_nets, batch, N_{l-1})`` (or ``(batch, N_{l-1})``)."""
        w, b = self.params(layer)
        h = torch.matmul(x, w.transpose(-2, -1))
        if b is not None:
            h.add_(b.unsqueeze(-2))
        return h


# --------------------------------------------------------------------------- #
# One layer on one generator stream (networks drawn layer by layer, none stored).
# --------------------------------------------------------------------------- #
def _stream_randn(shape, generator, device, dtype) -> Tensor:
    """Standard normals drawn on the generator's device, then moved to ``device``."""
    gdev = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gdev, dtype=dtype).to(device)


def random_layer(
    x: Tensor,
    draw_weights: Callable[[Tuple[int, ...]], Tensor],
    n_out: int,
    *,
    gain: float = 1.0,
    sigma_b: float = 0.0,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    r"""One random fully connected layer with freshly drawn weights, for layer-by-layer simulations.

    .. math::

        z = \frac{\text{gain}}{\sqrt{N}}\, x\,V^\top + \sigma_b\, g, \qquad
        V = \text{draw\_weights}\big((\dots, n_\text{out}, N)\big),\quad g \sim \mathcal N(0, I_{n_\text{out}}),

    for ``x`` of shape ``(..., batch, N)`` (the activations :math:`\phi(z^{l})` of the previous
    layer of each network); ``V`` holds one unit-scale weight matrix per network (Gaussian,
    symmetric Weibull, Rademacher, ...), and the bias :math:`g` is drawn after it, only when
    :math:`\sigma_b > 0`, and shared by the batch.  With Gaussian ``V`` and ``gain`` :math:`=
    \sigma_w` this is the layer :math:`z^{l+1} = W^l\phi(z^l) + b^l`, :math:`W_{ij} \sim
    \mathcal N(0, \sigma_w^2/N)`, of Poole et al. (2016); with Weibull ``V`` that of Wolinski &
    Arbel (2025).  Unlike :class:`MLPLayerSampler` (one seed per layer, weights regenerable),
    everything is drawn in order from one ``generator``.

    Returns
    -------
    Tensor
        ``(..., batch, n_out)``, of the dtype and on the device of ``x``.
    """
    check_tensor(x, "x", finite=False, min_dim=2)  # nan and inf propagate through a layer, as in torch
    check_callable(draw_weights, "draw_weights", "a sampler of unit-scale weights, shape -> Tensor")
    n_out = check_int(n_out, "n_out", 1)
    gain, sigma_b = check_nonneg(gain, "gain"), check_nonneg(sigma_b, "sigma_b")
    check_generator(generator)
    n_in = x.shape[-1]
    w = draw_weights(tuple(x.shape[:-2]) + (int(n_out), n_in))
    z = torch.matmul(x, w.transpose(-1, -2)) * (gain / math.sqrt(n_in))
    del w
    if sigma_b > 0:
        z = z + sigma_b * _stream_randn(tuple(x.shape[:-2]) + (1, int(n_out)), generator, x.device, x.dtype)
    return z


def conditional_gaussian_layer(
    x: Tensor,
    sigma_w: float,
    sigma_b: float = 0.0,
    *,
    n_out: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    r"""A Gaussian random layer for one input per network, drawn from its exact law given ``x``.

    For :math:`W_{ij} \sim \mathcal N(0, \sigma_w^2/N)` and :math:`b_i \sim \mathcal N(0,
    \sigma_b^2)`, the units of :math:`z = Wx + b` given one input :math:`x \in \mathbb R^N` are
    i.i.d. :math:`\mathcal N(0, Q)`, :math:`Q = \sigma_w^2\lVert x\rVert^2/N + \sigma_b^2`, so
    :math:`z = \sqrt Q\, g` with :math:`g \sim \mathcal N(0, I)`: no weight matrix, :math:`O(N)`
    work per layer and network.  It is the one-input case of :meth:`MLPLayerSampler.gram_affine`
    (Poole et al. 2016; the "gram" method of :func:`propagate_mlp`); :math:`Q` is accumulated in
    float64.

    Parameters
    ----------
    x : Tensor
        ``(..., N)``: one input (the previous layer's activations) per network.
    sigma_w, sigma_b : float
        Weight and bias scales.
    n_out : int, optional
        Width of the layer (default ``N``).
    generator : torch.Generator, optional
        Source of :math:`g`.

    Returns
    -------
    Tensor
        ``(..., n_out)``, of the dtype and on the device of ``x``.
    """
    check_tensor(x, "x", finite=False, min_dim=1)  # nan and inf propagate through a layer, as in torch
    sigma_w, sigma_b = check_nonneg(sigma_w, "sigma_w"), check_nonneg(sigma_b, "sigma_b")
    n_out = None if n_out is None else check_int(n_out, "n_out", 1)
    check_generator(generator)
    q = sigma_w**2 * x.double().square().mean(-1, keepdim=True) + sigma_b**2
    shape = tuple(x.shape[:-1]) + (x.shape[-1] if n_out is None else int(n_out),)
    return torch.sqrt(q).to(x.dtype) * _stream_randn(shape, generator, x.device, x.dtype)
