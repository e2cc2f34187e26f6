r"""The fully connected kernel: :func:`propagate_mlp`, :class:`MLPTrace`, :func:`mlp_parameters`.

The networks are those of :class:`~sigprop.ensemble.layers.MLPConfig`, drawn by
:class:`~sigprop.ensemble.layers.MLPLayerSampler`.  See :mod:`sigprop.ensemble` for the model,
the memory layout and the checkpointing schedule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from .. import runtime
from .._checks import check_dtype, check_tensor
from ._common import _GRAM_INITS, C_MAX, _check_hist, _check_int
from ._reduce import _Recorder
from .layers import MLPConfig, MLPLayerSampler, conditional_gaussian_layer, random_layer  # noqa: F401

Tensor = torch.Tensor
Edges = Union[Tensor, Sequence[float]]

# MLPConfig, MLPLayerSampler and the stream samplers live in .layers; this module re-exports them
# so that ``from sigprop.ensemble.mlp import MLPConfig`` keeps working.
__all__ = ["MLPTrace", "propagate_mlp", "mlp_parameters"]


# --------------------------------------------------------------------------- #
# Result.
# --------------------------------------------------------------------------- #
@dataclass
class MLPTrace:
    r"""Per-layer statistics of one :func:`propagate_mlp` run.

    All tensors are float64 on the CPU; index ``l - 1`` along the first axis holds
    layer :math:`l` (see ``layers``).  "Pooled" means over networks, units and
    inputs together.

    Attributes
    ----------
    config : MLPConfig
        The ensemble simulated.
    layers : Tensor
        ``(L,)`` int64, the layer numbers ``1..L``.
    q_in : Tensor
        ``(n_nets, batch)``, :math:`\frac{1}{n_0}\lVert x^0_a\rVert^2`, the input lengths.
    c_in : Tensor or None
        ``(n_nets, batch, batch)``, the inputs' uncentred correlations.
    q : Tensor
        ``(L, n_nets, batch)``, :math:`\hat q^l_a = \frac{1}{n_l}\sum_i (h^l_{i,a})^2`,
        the empirical length of each input's pre-activation in each network
        (Poole et al. 2016, eq. 3).
    qx : Tensor
        ``(L, n_nets, batch)``, :math:`\frac{1}{n_l}\sum_i (x^l_{i,a})^2`; for the
        Gaussian init, :math:`E[\hat q^{l+1}_a \mid x^l] = \sigma_w^2 \hat{qx}^l_a + \sigma_b^2`.
    c : Tensor or None
        ``(L, n_nets, batch, batch)``, :math:`\hat c^l_{ab} = \hat q^l_{ab}/\sqrt{\hat q^l_{aa}\hat q^l_{bb}}`
        with :math:`\hat q^l_{ab} = \frac{1}{n_l}\sum_i h^l_{i,a} h^l_{i,b}` (None when not recorded).
    h_mean, h_var, h_kurt : Tensor
        ``(L,)``, pooled mean, variance and excess kurtosis of :math:`h^l`.
    x_mean, x_var, x_kurt : Tensor
        ``(L,)``, the same for :math:`x^l`.
    hist_layers : tuple of int
        Layers at which histograms were recorded.
    bin_edges : dict
        Quantity (a key of :data:`~sigprop.ensemble.HIST_KEYS`) -> 1-D tensor of bin edges.
    hist : dict
        Quantity -> ``(len(hist_layers), n_bins)`` pooled counts.  Bins are
        half-open ``[e_k, e_{k+1})`` except the last, which is closed (numpy's
        rule); values outside ``[e_0, e_{-1}]`` are not counted.
    grad_q : Tensor or None
        ``(L, n_nets, batch)``, :math:`\frac{1}{n_l}\sum_i (\partial E/\partial h^l_{i,a})^2`
        (``backward=True`` only; likewise below).
    grad_h_var, grad_x_var : Tensor or None
        ``(L,)``, pooled variance of :math:`\partial E/\partial h^l` and :math:`\partial E/\partial x^l`.
    grad_w_var : Tensor or None
        ``(L,)``, variance over networks and entries of :math:`\partial E/\partial W^l`.
    """

    config: MLPConfig
    layers: Tensor
    q_in: Tensor
    c_in: Optional[Tensor]
    q: Tensor
    qx: Tensor
    c: Optional[Tensor]
    h_mean: Tensor
    h_var: Tensor
    h_kurt: Tensor
    x_mean: Tensor
    x_var: Tensor
    x_kurt: Tensor
    hist_layers: Tuple[int, ...] = ()
    bin_edges: Dict[str, Tensor] = field(default_factory=dict)
    hist: Dict[str, Tensor] = field(default_factory=dict)
    grad_q: Optional[Tensor] = None
    grad_h_var: Optional[Tensor] = None
    grad_x_var: Optional[Tensor] = None
    grad_w_var: Optional[Tensor] = None

    def summary(self) -> Dict[str, List[float]]:
        """A plain dict of per-layer lists (for printing and tables).

        Keys: ``layer``; ``q`` and ``qx`` (averaged over networks and inputs);
        ``c`` (the mean off-diagonal correlation, when recorded with batch > 1);
        the pooled moments ``h_mean, h_var, h_kurt, x_mean, x_var, x_kurt``; and,
        after a backward pass, ``grad_q, grad_h_var, grad_x_var, grad_w_var``.
        """
        out: Dict[str, List[float]] = {"layer": self.layers.tolist()}
        out["q"] = self.q.mean(dim=(1, 2)).tolist()
        out["qx"] = self.qx.mean(dim=(1, 2)).tolist()
        if self.c is not None and self.c.shape[-1] > 1:
            b = self.c.shape[-1]
            off = ~torch.eye(b, dtype=torch.bool)
            out["c"] = self.c[..., off].mean(dim=(1, 2)).tolist()
        for name in ("h_mean", "h_var", "h_kurt", "x_mean", "x_var", "x_kurt"):
            out[name] = getattr(self, name).tolist()
        if self.grad_q is not None:
            out["grad_q"] = self.grad_q.mean(dim=(1, 2)).tolist()
            for name in ("grad_h_var", "grad_x_var", "grad_w_var"):
                out[name] = getattr(self, name).tolist()
        return out


# --------------------------------------------------------------------------- #
# Argument checks.
# --------------------------------------------------------------------------- #
def _check_x(x, n_nets: int) -> Tensor:
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"x must be a tensor of shape (batch, n_in) or (n_nets, batch, n_in); got {type(x).__name__}") from None
    if x.ndim not in (2, 3) or x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ValueError(f"x must have shape (batch, n_in) or (n_nets, batch, n_in) with batch, n_in >= 1; got {tuple(x.shape)}")
    if x.ndim == 3 and x.shape[0] != n_nets:
        raise ValueError(f"a 3-D x must have shape (n_nets={n_nets}, batch, n_in); got {tuple(x.shape)}")
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"x must be real; got dtype {x.dtype}")
    return check_tensor(x, "x")  # finite: a nan input would give a trace of nan


# --------------------------------------------------------------------------- #
# The kernel.
# --------------------------------------------------------------------------- #
def mlp_parameters(
    config: MLPConfig,
    n_in: int,
    *,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> List[Tuple[Tensor, Tensor]]:
    r"""The weights and biases that :func:`propagate_mlp` samples.

    Called with a generator in the same state (and the same ``device`` and
    ``dtype``), this returns exactly the parameters :func:`propagate_mlp` uses:
    ``[(W^1, b^1), ..., (W^L, b^L)]`` with :math:`W^l` of shape
    ``(n_nets, n_l, n_{l-1})`` and :math:`b^l` of shape ``(n_nets, n_l)`` (zeros
    when :math:`\sigma_b = 0`).  It stores every layer, so it is meant for small
    ensembles: inspection, plots of weight distributions, tests.

    Raises
    ------
    ValueError
        If ``config`` is not an :class:`MLPConfig`, ``n_in < 1``, or ``dtype`` is not floating.
    """
    if not isinstance(config, MLPConfig):
        raise ValueError(f"config must be an MLPConfig; got {type(config).__name__}")
    n_in = _check_int(n_in, "n_in")
    check_dtype(dtype)
    dev = runtime.device(device) if not isinstance(device, torch.device) else device
    layers = MLPLayerSampler(config, n_in, generator=generator, device=dev, dtype=dtype)
    out = []
    for l in range(1, config.depth + 1):
        w, b = layers.params(l)
        out.append((w, b if b is not None else torch.zeros(w.shape[:-1], device=dev, dtype=dtype)))
    return out


def propagate_mlp(
    x: Tensor,
    config: MLPConfig,
    *,
    generator: Optional[torch.Generator] = None,
    backward: bool = False,
    grad_output: Optional[Tensor] = None,
    hist_layers: Sequence[int] = (),
    bins: Union[None, Edges, Mapping[str, Edges]] = None,
    record_c: Optional[bool] = None,
    checkpoint_every: Optional[int] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
    method: str = "weights",
) -> MLPTrace:
    r"""Propagate inputs through an ensemble of random MLPs; return per-layer statistics.

    Forward (Poole et al. 2016): :math:`h^l = W^l x^{l-1} + b^l`, :math:`x^l = \phi(h^l)`.
    For each layer it records the empirical lengths and correlations

    .. math::

        \hat q^l_{ab} = \frac{1}{n_l} \sum_{i=1}^{n_l} h^l_{i,a} h^l_{i,b}, \qquad
        \hat q^l_a = \hat q^l_{aa}, \qquad
        \hat c^l_{ab} = \frac{\hat q^l_{ab}}{\sqrt{\hat q^l_{aa} \hat q^l_{bb}}},

    which the mean-field recursions ``sigprop.meanfield.q_map`` and ``c_map``
    predict at infinite width, and the pooled moments and (optionally) histograms
    of :math:`h^l` and :math:`x^l` (Glorot & Bengio 2010, Fig. 6).

    Backward (``backward=True``; Schoenholz et al. 2017, Glorot & Bengio 2010):
    the loss is :math:`E = \sum_a \langle g_a, x^L_a \rangle` summed over the
    batch, with :math:`g_a` = ``grad_output`` or, by default, :math:`g_a \sim
    \mathcal N(0, I)`: the gradient of a random linear read-out.  Then

    .. math::

        \frac{\partial E}{\partial h^l} = \phi'(h^l) \odot \frac{\partial E}{\partial x^l}, \qquad
        \frac{\partial E}{\partial x^{l-1}} = W^{l\top} \frac{\partial E}{\partial h^l}, \qquad
        \frac{\partial E}{\partial W^l} = \sum_a \frac{\partial E}{\partial h^l_a} \, x^{l-1\,\top}_a,

    and the trace records their per-layer variances (and histograms).  For a
    linear network with Gaussian weights,
    :math:`\operatorname{Var}\partial E/\partial h^{l-1} = \sigma_w^2 (n_l/n_{l-1}) \operatorname{Var}\partial E/\partial h^l`.

    Parameters
    ----------
    x : Tensor
        Inputs, ``(batch, n_in)`` shared by all networks, or ``(n_nets, batch, n_in)``.
    config : MLPConfig
        The ensemble.
    generator : torch.Generator, optional
        Source of the per-layer seeds (torch's global generator when ``None``);
        it may live on any device.  The same generator state gives the same
        networks (on the same device), with or without ``backward``.
    backward : bool
        Also back-propagate and record gradient statistics.
    grad_output : Tensor, optional
        :math:`\partial E/\partial x^L`, of shape ``(batch, n_L)`` or
        ``(n_nets, batch, n_L)``; only with ``backward=True``.
    hist_layers : sequence of int
        Layers (in ``1..L``) at which to record histograms.
    bins : Tensor or sequence or dict, optional
        Bin edges (1-D, strictly increasing) used for every recorded quantity, or a
        dict from quantities in :data:`~sigprop.ensemble.HIST_KEYS` to edges (only those are
        recorded).  Required with ``hist_layers``.
    record_c : bool, optional
        Record the correlation matrices ``c``; default: when ``batch <=`` :data:`~sigprop.ensemble.C_MAX`.
    checkpoint_every : int, optional
        Segment length ``k`` of the backward pass (default :math:`\lceil\sqrt L\,\rceil`).
        Results do not depend on it, only memory and time do.
    device : torch.device or str, optional
        Where to simulate; default :func:`sigprop.runtime.device`.
    dtype : torch.dtype
        Simulation dtype (statistics are accumulated in float64).
    method : {"weights", "gram", "auto"}
        ``"weights"`` samples every weight matrix (needed for ``backward`` and for
        non-Gaussian inits).  ``"gram"`` samples each layer's pre-activations from
        their exact conditional law given the previous layer,
        :math:`h^\top = G\,\mathrm{chol}(\sigma_W^2 x x^\top + \sigma_b^2 \mathbf 1 \mathbf 1^\top)^\top`,
        with no weight matrix: the same distribution of the whole forward trajectory (it is a
        Markov chain), in :math:`O(n\,B^2)` instead of :math:`O(n^2 B)` per layer; valid for the
        i.i.d. Gaussian inits (gaussian, lecun_normal, xavier_normal, he_normal), forward only.
        The two methods draw different random numbers.  ``"auto"`` uses ``"gram"`` when it
        is valid and ``batch <= width / 4``.

    Returns
    -------
    MLPTrace
        Per-layer statistics, float64 on the CPU.

    Raises
    ------
    ValueError
        If ``config`` is not an :class:`MLPConfig`; ``x`` has the wrong shape;
        ``grad_output`` has the wrong shape or is given without ``backward``;
        ``hist_layers`` lies outside ``1..L`` or comes without ``bins``; ``bins``
        is malformed; ``checkpoint_every < 1``; ``dtype`` is not floating; or
        ``method`` is unknown or ``"gram"`` is asked for where it is not valid.
    """
    if not isinstance(config, MLPConfig):
        raise ValueError(f"config must be an MLPConfig; got {type(config).__name__}")
    check_dtype(dtype)
    if not isinstance(backward, bool):
        raise ValueError(f"backward must be True or False; got {backward!r}")
    if record_c is not None and not isinstance(record_c, bool):
        raise ValueError(f"record_c must be None, True or False; got {record_c!r}")
    depth, n_nets = config.depth, config.n_nets
    x = _check_x(x, n_nets)
    batch, n_in = x.shape[-2], x.shape[-1]
    dev = runtime.device(device) if not isinstance(device, torch.device) else device
    x = x.to(device=dev, dtype=dtype)
    layers_h, edges = _check_hist(hist_layers, bins, depth, backward)
    if grad_output is not None:
        if not backward:
            raise ValueError("grad_output is only used with backward=True")
        grad_output = torch.as_tensor(grad_output)
        n_out = config.layer_widths[-1]
        if grad_output.shape not in ((batch, n_out), (n_nets, batch, n_out)):
            raise ValueError(
                f"grad_output must have shape (batch, n_L) = ({batch}, {n_out}) or "
                f"(n_nets, batch, n_L) = ({n_nets}, {batch}, {n_out}); got {tuple(grad_output.shape)}"
            )
    k = math.ceil(math.sqrt(depth)) if checkpoint_every is None else _check_int(checkpoint_every, "checkpoint_every")
    want_c = batch <= C_MAX if record_c is None else record_c

    gram_ok = isinstance(config.init, str) and config.init in _GRAM_INITS and not backward
    if method not in ("weights", "gram", "auto"):
        raise ValueError(f"method must be 'weights', 'gram' or 'auto'; got {method!r}")
    if method == "gram" and not gram_ok:
        raise ValueError(
            f"method='gram' needs an i.i.d. Gaussian init ({sorted(_GRAM_INITS)}) and backward=False; "
            f"got init={config.init!r}, backward={backward}"
        )
    use_gram = method == "gram" or (method == "auto" and gram_ok and 4 * batch <= min(config.layer_widths))

    act = config.activation
    layers = MLPLayerSampler(config, n_in, generator=generator, device=dev, dtype=dtype)
    rec = _Recorder(depth, n_nets, batch, dev, want_c, layers_h, edges, backward)

    x0 = x if x.ndim == 3 else x.expand(n_nets, batch, n_in)
    x0d = x0.to(torch.float64)
    q_in = x0d.square().mean(-1)
    c_in = None
    if want_c:
        g0 = torch.matmul(x0d, x0d.transpose(-2, -1)) / n_in
        c_in = g0 / torch.sqrt(q_in.unsqueeze(-1) * q_in.unsqueeze(-2))

    # Forward pass.  Without backward only the current layer is alive.
    checkpoints: Dict[int, Tensor] = {}
    segment: List[Tensor] = []
    x_cur = x
    with torch.no_grad():
        for l in range(1, depth + 1):
            if backward and (l - 1) % k == 0:
                checkpoints[l - 1] = x_cur
                segment = []
            h = layers.gram_affine(l, x_cur) if use_gram else layers.affine(l, x_cur)
            x_cur = act.fn(h)
            rec.forward(l, h, x_cur)
            if backward:
                segment.append(h)
            del h
        del x_cur

        if backward:
            if grad_output is None:
                g = torch.randn(
                    (n_nets, batch, config.layer_widths[-1]),
                    generator=layers.readout_generator(),
                    device=dev,
                    dtype=dtype,
                )
            else:
                g = grad_output.to(device=dev, dtype=dtype).expand(n_nets, batch, config.layer_widths[-1])
            _backward(layers, act, rec, checkpoints, segment, g, depth, k)

    def cpu(t):
        return None if t is None else t.detach().to("cpu")

    return MLPTrace(
        config=config,
        layers=torch.arange(1, depth + 1),
        q_in=cpu(q_in),
        c_in=cpu(c_in),
        q=cpu(rec.q),
        qx=cpu(rec.qx),
        c=cpu(rec.c),
        h_mean=cpu(rec.h_mom[:, 0]),
        h_var=cpu(rec.h_mom[:, 1]),
        h_kurt=cpu(rec.h_mom[:, 2]),
        x_mean=cpu(rec.x_mom[:, 0]),
        x_var=cpu(rec.x_mom[:, 1]),
        x_kurt=cpu(rec.x_mom[:, 2]),
        hist_layers=layers_h,
        bin_edges={key: e.clone() for key, e in edges.items()},
        hist={key: cpu(v) for key, v in rec.hist.items()},
        grad_q=cpu(getattr(rec, "grad_q", None)),
        grad_h_var=cpu(getattr(rec, "grad_h_var", None)),
        grad_x_var=cpu(getattr(rec, "grad_x_var", None)),
        grad_w_var=cpu(getattr(rec, "grad_w_var", None)),
    )


def _backward(layers: MLPLayerSampler, act, rec: _Recorder, checkpoints, last_segment, g, depth: int, k: int) -> None:
    """Back-propagate ``g = dE/dx^L`` segment by segment (the schedule is described in :mod:`sigprop.ensemble`)."""
    starts = list(range(0, depth, k))
    for start in reversed(starts):
        end = min(start + k, depth)
        x_start = checkpoints.pop(start)
        if start == starts[-1]:
            hs = last_segment
        else:  # recompute this segment's pre-activations from its checkpoint
            hs, xc = [], x_start
            for l in range(start + 1, end + 1):
                h = layers.affine(l, xc)
                xc = act.fn(h)
                hs.append(h)
            del xc
        for l in range(end, start, -1):
            h = hs.pop()
            x_prev = act.fn(hs[-1]) if hs else x_start
            gh = g * act.deriv(h)
            w, _ = layers.params(l, with_bias=False)
            gw = torch.matmul(gh.transpose(-2, -1), x_prev)
            rec.backward(l, gh, g, gw)
            del gw, h, x_prev
            g = torch.matmul(gh, w) if l > 1 else None
            del w, gh
