r"""Random fully connected residual networks, many at once.

The model of Tarnowski et al. (2019), eq. (1), with the skip weight set to 1:

.. math::

    h^l = W^l x^{l-1} + b^l, \qquad x^l = x^{l-1} + \phi(h^l), \qquad l = 1, \dots, L,

at a constant width :math:`N`, with :math:`W^l_{ij} \sim \mathcal N\big(0, \sigma_w^2/(NL)\big)`
(``init="gaussian"``) or :math:`W^l = (\sigma_w/\sqrt L)\,O^l` with :math:`O^l` Haar-orthogonal
(``init="orthogonal"``), and :math:`b^l_i \sim \mathcal N(0, \sigma_b^2)`.  The :math:`1/L` in the
weight variance (Taki 2017; Balduzzi et al. 2017) is what gives a finite limit as the depth
grows: each layer then moves the signal by :math:`O(1/\sqrt L)`.

As in :mod:`sigprop.ensemble.mlp`, every layer's weights come from their own generator,
seeded from the caller's generator, so :func:`resnet_parameters`, :func:`propagate_resnet`
and :func:`resnet_input_output_jacobian` see the very same networks for the
same generator state.  :func:`make_resnet` builds a trainable ``torch.nn.Module`` with the same
initialization, an input embedding and a read-out (the architecture of the paper's Fig. 2).

.. rubric:: Public API

* :class:`ResNetConfig` -- activation, depth, width, scales, ensemble size.
* :func:`resnet_parameters` -- the weights and biases of the ensemble.
* :func:`propagate_resnet` -- per-layer mean-field statistics :math:`q^l, p^l, m^l, c_l`.
* :func:`resnet_input_output_jacobian`, :func:`resnet_jacobian_singular_values` -- the exact
  Jacobians :math:`J = \prod_l(\mathbb 1 + D^l W^l)` and their singular values, whose law
  :mod:`sigprop.resnet_theory` predicts.
* :func:`make_resnet` -- a trainable residual classifier.

References
----------
* Tarnowski, Warchoł, Jastrzębski, Tabor & Nowak (2019), *Dynamical isometry is achieved in
  residual networks in a universal way for any activation function*, AISTATS.
* Taki (2017), *Deep residual networks and weight initialization*, arXiv:1709.02956.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple, Union

import torch
from torch import nn

from .. import activations as _activations
from .. import init as _init
from .. import runtime
from .._checks import check_alloc, check_dtype, check_nonneg
from ._common import _check_int, _draw_seeds, _seeded

Tensor = torch.Tensor

__all__ = ["ResNetConfig", "ResNetTrace", "resnet_parameters", "propagate_resnet", "resnet_input_output_jacobian",
           "resnet_jacobian_singular_values", "make_resnet", "RESNET_INITS"]

#: Weight ensembles of the residual branches.
RESNET_INITS = ("gaussian", "orthogonal")


@dataclass(frozen=True)
class ResNetConfig:
    r"""An ensemble of ``n_nets`` random residual networks (see the module docstring).

    Parameters
    ----------
    depth : int
        Number of residual layers :math:`L \ge 1`.
    width : int
        Width :math:`N \ge 1` of every layer.
    act : str or Activation
        The activation :math:`\phi` (a name of :mod:`sigprop.activations`).
    sigma_w : float
        Weight scale, :math:`\operatorname{Var} W_{ij} = \sigma_w^2/(NL)`; >= 0.
    sigma_b : float
        Bias standard deviation, >= 0 (default 0, as in the paper's experiments).
    n_nets : int
        Number of independent networks.
    init : {"gaussian", "orthogonal"}
        Weight ensemble.

    Raises
    ------
    ValueError
        For a value out of its range or an unknown activation or init.
    """

    depth: int
    width: int
    act: Union[str, _activations.Activation]
    sigma_w: float
    sigma_b: float = 0.0
    n_nets: int = 1
    init: str = "gaussian"

    def __post_init__(self):
        _check_int(self.depth, "depth")
        _check_int(self.width, "width")
        _check_int(self.n_nets, "n_nets")
        check_nonneg(self.sigma_w, "sigma_w")
        check_nonneg(self.sigma_b, "sigma_b")
        _activations.get(self.act)
        if self.init not in RESNET_INITS:
            raise ValueError(f"init must be one of {RESNET_INITS}; got {self.init!r}")

    @property
    def activation(self) -> _activations.Activation:
        return _activations.get(self.act)

    @property
    def weight_std(self) -> float:
        r"""Standard deviation of one weight, :math:`\sigma_w/\sqrt{NL}`."""
        return self.sigma_w / math.sqrt(self.width * self.depth)


class _Layers:
    """Samples layer ``l``'s weights and biases from its own seed (reproducible, never stored)."""

    def __init__(self, config: ResNetConfig, seeds: List[int], device, dtype):
        self.c, self.seeds, self.device, self.dtype = config, seeds, device, dtype

    def params(self, layer: int) -> Tuple[Tensor, Optional[Tensor]]:
        c = self.c
        g = _seeded(self.seeds[layer - 1], self.device)
        shape = (c.n_nets, c.width, c.width)
        if c.init == "gaussian":
            # (the same numbers as randn(shape) * weight_std, in one pass)
            w = torch.empty(shape, device=self.device, dtype=self.dtype).normal_(0.0, c.weight_std, generator=g)
        else:
            w = _init.orthogonal(shape, generator=g, device=self.device, dtype=self.dtype, gain=c.sigma_w / math.sqrt(c.depth))
        if c.sigma_b == 0:
            return w, None
        b = torch.randn((c.n_nets, c.width), generator=g, device=self.device, dtype=self.dtype) * c.sigma_b
        return w, b


def _device(device) -> torch.device:
    return device if isinstance(device, torch.device) else runtime.device(device)


def _check_config(config) -> ResNetConfig:
    if not isinstance(config, ResNetConfig):
        raise ValueError(f"config must be a ResNetConfig; got {type(config).__name__}")
    return config


def resnet_parameters(
    config: ResNetConfig, *, generator: Optional[torch.Generator] = None, device=None, dtype: torch.dtype = torch.float32
) -> List[Tuple[Tensor, Tensor]]:
    r"""The weights and biases :math:`(W^l, b^l)` that :func:`propagate_resnet` draws for this generator state.

    Returns
    -------
    list of (W, b)
        ``depth`` pairs, ``W`` of shape ``(n_nets, N, N)``, ``b`` of shape ``(n_nets, N)``
        (zeros when ``sigma_b = 0``).

    Raises
    ------
    ValueError
        If ``config`` is not a :class:`ResNetConfig` or ``dtype`` is not floating.
    """
    _check_config(config)
    check_dtype(dtype)
    dev = _device(device)
    check_alloc(f"resnet_parameters of {config.depth} layers of width {config.width}",
                config.depth * config.n_nets * (config.width ** 2 + config.width), dtype, dev)
    layers = _Layers(config, _draw_seeds(generator, config.depth), dev, dtype)
    out = []
    for l in range(1, config.depth + 1):
        w, b = layers.params(l)
        out.append((w, torch.zeros(config.n_nets, config.width, device=dev, dtype=dtype) if b is None else b))
    return out


def _check_input(x, config: ResNetConfig) -> Tensor:
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"x must be a tensor of shape (N,) or (n_nets, N); got {type(x).__name__}") from None
    n, k = config.width, config.n_nets
    if x.ndim not in (1, 2) or x.shape[-1] != n or (x.ndim == 2 and x.shape[0] != k):
        raise ValueError(f"x must have shape (N,) = ({n},) or (n_nets, N) = ({k}, {n}); got {tuple(x.shape)}")
    if x.is_complex() or not x.is_floating_point():
        raise ValueError(f"x must be a real floating tensor; got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"x must be finite; got {int((~torch.isfinite(x)).sum())} nan or inf value(s)")
    return x


def _default_input(config: ResNetConfig, generator, device, dtype) -> Tensor:
    """One standard Gaussian input per network (p^0 ~ 1, m^0 ~ 0), drawn after the layer seeds."""
    gen_dev = generator.device if generator is not None else device
    return torch.randn((config.n_nets, config.width), generator=generator, device=gen_dev, dtype=torch.float64).to(device, dtype)


@dataclass
class ResNetTrace:
    r"""Per-layer statistics of :func:`propagate_resnet`, each of shape ``(depth, n_nets)``.

    Attributes
    ----------
    q : Tensor
        :math:`q^l = \frac1N\sum_i (h^l_i)^2`, the pre-activation second moment.
    p : Tensor
        :math:`p^l = \frac1N\lVert x^l\rVert^2`.
    m : Tensor
        :math:`m^l = \frac1N\sum_i x^l_i`, the mean of the layer's output.
    c : Tensor
        :math:`c_l = N\operatorname{Var}(W_{ij})\,\frac1N\sum_i\phi'(h^l_i)^2`, whose sum over layers
        is the network's own effective cumulant.
    x0, x : Tensor
        The input and the output, ``(n_nets, N)``.
    """

    q: Tensor
    p: Tensor
    m: Tensor
    c: Tensor
    x0: Tensor
    x: Tensor

    @property
    def cumulant(self) -> Tensor:
        r"""Each network's effective cumulant :math:`\hat a = \sum_l c_l`, shape ``(n_nets,)``."""
        return self.c.sum(0)


def _prepare(config: ResNetConfig, x, generator, device, dtype) -> Tuple[_Layers, Tensor]:
    """Checks, the layer sampler and the input ``(n_nets, N)``: the layer seeds are drawn from
    ``generator`` first, then the default input, so that every caller sees the same networks."""
    _check_config(config)
    check_dtype(dtype)
    dev = _device(device)
    if x is not None:  # checked before any draw: a refused call leaves the generator as it was
        x = _check_input(x, config)
    # a layer's weights and the Jacobian (n_nets, N, N) of the Jacobian functions, a few at once
    check_alloc(f"a residual ensemble of width {config.width}", config.n_nets * config.width ** 2, dtype, dev, copies=4)
    layers = _Layers(config, _draw_seeds(generator, config.depth), dev, dtype)
    if x is None:
        return layers, _default_input(config, generator, dev, dtype)
    return layers, x.to(dev, dtype).expand(config.n_nets, config.width)


def _walk(config: ResNetConfig, layers: _Layers, x: Tensor) -> Iterator[Tuple[Tensor, Tensor, Tensor]]:
    r"""The forward pass :math:`h^l = W^l x^{l-1} + b^l`, :math:`x^l = x^{l-1} + \phi(h^l)`:
    yields ``(W^l, h^l, x^l)`` for :math:`l = 1, \dots, L`, one layer alive at a time."""
    act = config.activation
    for l in range(1, config.depth + 1):
        w, b = layers.params(l)
        h = torch.bmm(w, x.unsqueeze(-1)).squeeze(-1)
        if b is not None:
            h = h + b
        x = x + act.fn(h)
        yield w, h, x


def propagate_resnet(
    config: ResNetConfig,
    x: Optional[Tensor] = None,
    *,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> ResNetTrace:
    r"""Push one input per network through ``n_nets`` random residual nets; record per-layer statistics.

    Computes :math:`h^l = W^l x^{l-1} + b^l`, :math:`x^l = x^{l-1} + \phi(h^l)` with batched
    matmuls and records the empirical versions of the mean-field quantities of
    :func:`sigprop.resnet_theory.resnet_mean_field` (Tarnowski et al. 2019, Sec. II.2).

    Parameters
    ----------
    config : ResNetConfig
        The ensemble.
    x : Tensor, optional
        ``(N,)`` shared or ``(n_nets, N)``; default a standard Gaussian vector per network,
        drawn from ``generator`` after the layer seeds.
    generator : torch.Generator, optional
        Source of all randomness.
    device, dtype
        Where and in which precision to compute.

    Returns
    -------
    ResNetTrace

    Raises
    ------
    ValueError
        For a bad ``config``, ``x`` or ``dtype``.
    """
    layers, x = _prepare(config, x, generator, device, dtype)
    x0 = x.clone()
    act = config.activation
    var_scale = config.sigma_w**2 / config.depth  # N Var(W_ij)
    rows = {k: [] for k in "qpmc"}
    with torch.no_grad():
        for _w, h, x in _walk(config, layers, x):
            rows["q"].append(h.square().mean(-1))
            rows["p"].append(x.square().mean(-1))
            rows["m"].append(x.mean(-1))
            rows["c"].append(var_scale * act.deriv(h).square().mean(-1))
    st = {k: torch.stack(v).to(torch.float64) for k, v in rows.items()}
    return ResNetTrace(q=st["q"], p=st["p"], m=st["m"], c=st["c"], x0=x0, x=x)


# --------------------------------------------------------------------------- #
# Exact input-output Jacobians.
# --------------------------------------------------------------------------- #
def resnet_input_output_jacobian(
    config: ResNetConfig,
    x: Optional[Tensor] = None,
    *,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""Exact input-output Jacobians of ``n_nets`` random residual networks.

    For :math:`x^l = x^{l-1} + \phi(W^l x^{l-1} + b^l)` (see the module docstring)

    .. math::

        J = \frac{\partial x^L}{\partial x^0} = \prod_{l=L}^{1} \big(\mathbb 1 + D^l W^l\big),
        \qquad D^l = \operatorname{diag}\,\phi'(h^l),

    accumulated as :math:`J \leftarrow J + D^l (W^l J)` with one batched matmul per layer
    (Tarnowski et al. 2019, eq. 2).  The networks are those of
    :func:`propagate_resnet` for the same generator state, and the default
    input is the same (one standard Gaussian vector per network).

    Parameters
    ----------
    config : ResNetConfig
        The ensemble.
    x : Tensor, optional
        ``(N,)`` or ``(n_nets, N)``.
    generator : torch.Generator, optional
        Source of all randomness.
    device, dtype
        Where and in which precision to compute.

    Returns
    -------
    Tensor
        ``(n_nets, N, N)``.

    Raises
    ------
    ValueError
        For a bad ``config``, ``x`` or ``dtype``.
    """
    layers, x = _prepare(config, x, generator, device, dtype)
    n, k = config.width, config.n_nets
    act = config.activation
    jac = torch.eye(n, device=x.device, dtype=dtype).expand(k, n, n).clone()
    with torch.no_grad():
        for w, h, _x in _walk(config, layers, x):
            jac = jac + act.deriv(h).unsqueeze(-1) * torch.bmm(w, jac)
    return jac


def resnet_jacobian_singular_values(
    config: ResNetConfig,
    x: Optional[Tensor] = None,
    *,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""Singular values of :func:`resnet_input_output_jacobian` (float64 SVD), descending.

    Their squares are the eigenvalues of :math:`JJ^\top` that
    :func:`sigprop.resnet_theory.resnet_spectral_density`
    describes in the limit of large width and depth.

    Returns
    -------
    Tensor
        ``(n_nets, N)``, float64, on the CPU.

    Raises
    ------
    ValueError
        As :func:`resnet_input_output_jacobian`.
    """
    jac = resnet_input_output_jacobian(config, x, generator=generator, device=device, dtype=dtype)
    return torch.linalg.svdvals(jac.to(torch.float64)).cpu()


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, act):
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.act = _activations.get(act)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.act.fn(self.linear(x))


def make_resnet(
    n_in: int,
    n_out: int,
    config: ResNetConfig,
    *,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> nn.Sequential:
    r"""A trainable fully connected residual classifier, initialized as :class:`ResNetConfig` says.

    ``Linear(n_in, N)`` (the embedding, :math:`\mathcal N(0, 1/n_\text{in})` weights, zero bias),
    then ``depth`` blocks :math:`x \mapsto x + \phi(Wx + b)` with the residual initialization of
    ``config`` (network 0 of the ensemble), then ``Linear(N, n_out)`` (:math:`\mathcal N(0, 1/N)`,
    zero bias) giving the logits: the single-stage architecture of Tarnowski et al. (2019), Fig. 2.
    With standardized inputs the embedding gives :math:`p^0 \approx 1`, :math:`m^0 \approx 0`,
    the input that :func:`sigprop.resnet_theory.effective_cumulant` assumes by default.

    Parameters
    ----------
    n_in, n_out : int
        Input dimension and number of classes, >= 1.
    config : ResNetConfig
        Depth, width, activation and scales (``n_nets`` is ignored).
    generator : torch.Generator, optional
        Source of the weights.
    device, dtype
        Where the model lives, its precision.

    Raises
    ------
    ValueError
        For a bad ``n_in``, ``n_out`` or ``config``.
    """
    _check_int(n_in, "n_in")
    _check_int(n_out, "n_out")
    _check_config(config)
    dev = _device(device)
    check_alloc(f"make_resnet of {config.depth} layers of width {config.width}",
                config.depth * (config.width ** 2 + config.width) + (n_in + n_out + 1) * config.width, torch.float32, dev)
    one = ResNetConfig(config.depth, config.width, config.act, config.sigma_w, config.sigma_b, 1, config.init)
    gen_dev = generator.device if generator is not None else dev
    embed, readout = nn.Linear(n_in, config.width), nn.Linear(config.width, n_out)
    blocks = [_ResidualBlock(config.width, config.act) for _ in range(config.depth)]
    with torch.no_grad():
        embed.weight.copy_(torch.randn(embed.weight.shape, generator=generator, device=gen_dev) / math.sqrt(n_in))
        embed.bias.zero_()
        for blk, (w, b) in zip(blocks, resnet_parameters(one, generator=generator, device=gen_dev)):
            blk.linear.weight.copy_(w[0])
            blk.linear.bias.copy_(b[0])
        readout.weight.copy_(torch.randn(readout.weight.shape, generator=generator, device=gen_dev) / math.sqrt(config.width))
        readout.bias.zero_()
    return nn.Sequential(nn.Flatten(), embed, *blocks, readout).to(device=dev, dtype=dtype)
