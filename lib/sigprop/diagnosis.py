r"""Signal propagation at initialization in *your* network: :func:`diagnose`.

(The module is named after its concept, as every module is; the function after what you do with
it. The guide page of the book, *Diagnose your own network*, is named after the function.)

The book measures pre-activations of ensembles of random networks; :func:`diagnose` makes the
same measurements on any :class:`torch.nn.Module` and one batch of inputs. Forward hooks on the
network's linear, convolutional, attention and normalization layers record each layer's output
:math:`h^l` (the pre-activation of the next nonlinearity) and report, per layer:

* ``var``: the variance of :math:`h^l` over all its entries (the :math:`q^l` of mean-field theory
  when the mean is zero); ``mean`` too;
* ``kurtosis`` and ``ks``: the excess kurtosis and the Kolmogorov-Smirnov distance to
  :math:`\mathcal N(0, 1)` of the *standardized* pre-activations -- each unit (feature or channel)
  centred and scaled by its own mean and standard deviation over the batch (and positions), then
  pooled -- with ``ks_critical``, the distance a Gaussian sample of the same size exceeds with
  probability ``alpha`` (:func:`sigprop.stats.ks_critical_value`). Standardizing with estimated
  moments makes the test conservative (Lilliefors 1967). The excess kurtosis of :math:`n`
  Gaussian values has standard deviation about :math:`\sqrt{24/n}`;
* ``corr``: the mean correlation :math:`c^l_{ab}` between the outputs of different inputs
  :math:`a \ne b` (:func:`sigprop.stats.correlation_matrix`, uncentred, as in mean-field theory):
  near 1, the network maps all inputs to the same direction (the ordered phase);
* ``grad_var``: the variance of the gradient :math:`\partial L/\partial h^l` of a loss with
  respect to the layer's output. The default loss is :math:`L = \sum_i y_i g_i` with :math:`y`
  the network's output and :math:`g` a fixed standard Gaussian vector (seeded by ``seed``): its
  gradient at the output is :math:`g`, so ``grad_var`` shows how a random error signal grows or
  shrinks on its way back (Schoenholz et al. 2017). Pass ``loss`` to use your own.

Nothing about the model changes: parameters keep their values and their ``.grad``, buffers (batch
normalization's running statistics and ``num_batches_tracked``) are restored after the pass, hooks
are removed, every module keeps its training/evaluation flag, and the global CPU and CUDA random
states are restored (so that Dropout draws nothing from the caller's stream) -- also when
:func:`diagnose` raises. The forward pass runs in the caller's mode (batch normalization uses
batch statistics in training mode). Inputs are moved to the device of the model's first parameter.

Layers it does not measure are named in ``Report.notes`` with the reason: recurrent layers
(:class:`torch.nn.RNNBase`: LSTM, GRU, RNN), whose pre-activations live inside the cell, and hooked
layers whose output is not a floating-point tensor.
"""
from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
from torch import Tensor, nn

from . import runtime, stats

__all__ = ["LayerStats", "Report", "diagnose", "DEFAULT_LAYERS", "default_loss"]

_NORM_TYPES: Tuple[Type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())

#: The layer types hooked by default, with the kind reported for each.
DEFAULT_LAYERS: Tuple[Tuple[Type[nn.Module], str], ...] = (
    (nn.Linear, "linear"),
    (nn.Bilinear, "linear"),
    (nn.modules.conv._ConvNd, "conv"),
    (nn.MultiheadAttention, "attention"),
    (nn.Embedding, "embedding"),
) + tuple((t, "norm") for t in _NORM_TYPES)

# Kinds whose units (channels) are on axis 1; for the others the units are the last axis.
_CHANNEL_FIRST = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.GroupNorm,
                  nn.modules.instancenorm._InstanceNorm, nn.LocalResponseNorm)

_COLUMNS = ("layer", "kind", "shape", "mean", "var", "kurtosis", "ks", "ks_critical", "corr", "grad_var")


@dataclass
class LayerStats:
    """One row of a :class:`Report`: the statistics of one layer's output (see the module's docstring).

    ``gaussian`` says whether ``ks <= ks_critical``; ``n`` is the number of standardized values
    the kurtosis and KS distance were computed from; ``call`` counts calls of a module that runs
    more than once in a forward pass (weight sharing)."""

    layer: str
    kind: str
    type: str
    shape: Tuple[int, ...]
    mean: float
    var: float
    kurtosis: float
    ks: float
    ks_critical: float
    n: int
    corr: float
    grad_var: float = float("nan")
    call: int = 1

    @property
    def gaussian(self) -> bool:
        """Whether the KS test at level ``alpha`` does not reject the normal."""
        return bool(self.ks <= self.ks_critical)


def default_loss(output: Tensor, seed: int = 0) -> Tensor:
    r"""The default loss :math:`L = \sum_i y_i g_i`, :math:`g \sim \mathcal N(0, I)` fixed by ``seed``:
    its gradient at the output ``y`` is ``g``, a random error signal of unit variance.

    Raises
    ------
    ValueError
        If ``output`` is not a floating-point tensor (pass a ``loss`` to :func:`diagnose` instead).
    """
    if not isinstance(output, Tensor) or not output.is_floating_point():
        raise ValueError(
            "output must be a floating-point tensor for the default loss; the model returned "
            f"{type(output).__name__}{'' if not isinstance(output, Tensor) else ' of dtype ' + str(output.dtype)}: "
            "pass loss=lambda output: ... to diagnose()")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    g = torch.randn(output.shape, generator=gen, dtype=torch.float32).to(device=output.device, dtype=output.dtype)
    return (output * g).sum()


def _fmt(x: float) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "-"
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:.4g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.3g}"
    return f"{x:.3e}"


@dataclass
class Report:
    """The per-layer statistics of :func:`diagnose`: ``rows`` (a list of :class:`LayerStats`, in
    the order the layers ran), the number of ``inputs``, the ``loss`` used, and ``alpha``.

    ``str(report)`` is a plain-text table, a notebook shows an HTML table, :meth:`to_dict` gives
    plain Python values (e.g. for ``json.dumps``) and :meth:`plot` draws one summary figure."""

    rows: List[LayerStats]
    inputs: int
    loss: str
    alpha: float = 0.05
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        """Plain Python values: ``{"inputs", "loss", "alpha", "notes", "rows": [{...}, ...]}``;
        each row also has ``gaussian``."""
        rows = []
        for r in self.rows:
            d = asdict(r)
            d["shape"] = list(r.shape)
            d["gaussian"] = r.gaussian
            rows.append(d)
        return {"inputs": self.inputs, "loss": self.loss, "alpha": self.alpha, "notes": list(self.notes), "rows": rows}

    def _cells(self) -> List[List[str]]:
        out = []
        for r in self.rows:
            name = r.layer + (f" (call {r.call})" if r.call > 1 else "")
            out.append([name, r.kind, "x".join(map(str, r.shape)), _fmt(r.mean), _fmt(r.var), _fmt(r.kurtosis),
                        _fmt(r.ks), _fmt(r.ks_critical), _fmt(r.corr), _fmt(r.grad_var)])
        return out

    def __str__(self) -> str:
        header = list(_COLUMNS)
        cells = self._cells()
        widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
        lines.append("  ".join("-" * w for w in widths))
        for r, c in zip(self.rows, cells):
            line = "  ".join(v.ljust(w) if i < 3 else v.rjust(w) for i, (v, w) in enumerate(zip(c, widths)))
            lines.append(line + ("" if r.gaussian or math.isnan(r.ks) else "  *"))
        lines.append(f"{self.inputs} inputs; gradients of: {self.loss}; * marks a layer whose pre-activations "
                     f"a Kolmogorov-Smirnov test at level {self.alpha} rejects as Gaussian")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Report: {len(self.rows)} layers, {self.inputs} inputs>"

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in _COLUMNS)
        body = []
        for r, c in zip(self.rows, self._cells()):
            style = "" if r.gaussian or math.isnan(r.ks) else ' style="background-color:#fde0dd"'
            tds = "".join(f'<td style="text-align:{"left" if i < 3 else "right"};white-space:nowrap">'
                          f"{html.escape(v)}</td>" for i, v in enumerate(c))
            body.append(f"<tr{style}>{tds}</tr>")
        notes = "".join(f"<br>note: {html.escape(n)}" for n in self.notes)
        # nowrap cells in a horizontally scrolling box: numbers never break across lines
        return (f'<div style="overflow-x:auto"><table class="sigprop-diagnosis" style="font-size:0.85em">'
                f'<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
                f"</table></div><p><small>{self.inputs} inputs; loss: {html.escape(self.loss)}; shaded rows: the KS "
                f"test rejects the normal at alpha = {self.alpha}.{notes}</small></p>")

    def plot(self, fig=None):
        """One summary figure: per layer, the forward and backward variances (log scale), the
        excess kurtosis with its Gaussian band :math:`\\pm 2\\sqrt{24/n}`, the KS distance with
        its critical value, and the mean correlation between inputs. Returns the
        :class:`matplotlib.figure.Figure` (built without pyplot unless ``fig`` is given)."""
        import numpy as np
        from matplotlib.figure import Figure

        from . import plotting

        runtime.enable_inline_figures()  # so that a notebook shows the returned figure
        if fig is None:
            # two panels a row at the book's panel size, and room for the rotated layer names
            fig = Figure(figsize=(2 * plotting.PANEL_WIDTH, 2 * plotting.PANEL_HEIGHT + 0.6),
                         layout="constrained")
        axes = fig.subplots(2, 2, sharex=True)
        x = np.arange(len(self.rows))
        get = lambda key: np.array([getattr(r, key) for r in self.rows], dtype=float)  # noqa: E731
        kinds = [r.kind for r in self.rows]
        colors = {"conv": "C0", "linear": "C9", "attention": "C2", "norm": "C1", "embedding": "C4"}
        col = [colors.get(k, "C5") for k in kinds]
        ax = axes[0, 0]
        # the dots' colours give the layer kind: the legend shows the series in grey
        ax.plot(x, get("var"), "-", color="0.6", lw=1, label=r"forward: $\mathrm{Var}\,h^l$")
        ax.scatter(x, get("var"), c=col, s=22, zorder=3)
        if np.isfinite(get("grad_var")).any():
            ax.plot(x, get("grad_var"), "--", color="C3", lw=1.2, marker="v", ms=4,
                    label=r"backward: $\mathrm{Var}\,\partial L/\partial h^l$")
        ax.set_yscale("log")
        ax.set_title("variances")
        ax = axes[0, 1]
        n = get("n")
        band = 2 * np.sqrt(24 / np.maximum(n, 1))
        ax.fill_between(x, -band, band, color="0.85", label=r"Gaussian $\pm 2\sqrt{24/n}$")
        ax.scatter(x, get("kurtosis"), c=col, s=22, zorder=3)
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_title("excess kurtosis (standardized)")
        ax = axes[1, 0]
        ax.scatter(x, get("ks"), c=col, s=22, zorder=3)
        ax.set_ylabel(r"KS distance to $\mathcal{N}(0, 1)$")
        ax.plot(x, get("ks_critical"), color="C3", lw=1.2, label=rf"critical value, $\alpha = {self.alpha}$")
        ax.set_yscale("log")
        ax.set_title("Gaussianity")
        ax = axes[1, 1]
        ax.plot(x, get("corr"), "-", color="0.6", lw=1)
        ax.scatter(x, get("corr"), c=col, s=22, zorder=3)
        ax.set_ylim(min(-0.05, float(np.nanmin(get("corr"))) - 0.05) if len(x) else -0.05, 1.05)
        ax.set_title("mean correlation between inputs")
        ticks = x if len(x) <= 24 else x[:: max(1, len(x) // 12)]
        for ax in axes[1]:
            ax.set_xlabel("layer (in order of execution)")
            ax.set_xticks(ticks, [self.rows[i].layer for i in ticks], rotation=60, ha="right", fontsize="x-small")
        # the layer kinds (marker colours) join the series in one legend below the panels
        for k, c in colors.items():
            if k in kinds:
                axes[0, 0].plot([], [], ls="none", marker="o", color=c, label=f"layer: {k}")
        plotting.legend_below(fig, axes, ncol=3)
        return fig


def _kind(module: nn.Module, layers) -> Optional[str]:
    for typ, kind in layers:
        if isinstance(module, typ):
            return kind
    return None


def _first_tensor(output) -> Optional[Tensor]:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]  # e.g. nn.MultiheadAttention returns (attn_output, attn_weights)
    return None


def _unit_axis(module: nn.Module, out: Tensor) -> int:
    if isinstance(module, _CHANNEL_FIRST) and out.dim() >= 2:
        return 1
    return out.dim() - 1


def _batch_axis(module: nn.Module, out: Tensor) -> int:
    if isinstance(module, nn.MultiheadAttention) and not module.batch_first and out.dim() == 3:
        return 1
    return 0


def _forward_stats(module: nn.Module, out: Tensor, alpha: float, max_values: int, gen: torch.Generator):
    x = out.detach()
    if not x.is_floating_point() or x.numel() == 0:
        return None
    x64 = x.to(torch.float64)
    mean = float(x64.mean())
    var = float(x64.var(correction=0))
    # standardize each unit over the batch (and positions), then pool
    unit = _unit_axis(module, x64)
    units = x64.movedim(unit, -1).reshape(-1, x64.shape[unit])  # [samples, units]
    if units.shape[0] >= 2:
        mu = units.mean(0, keepdim=True)
        sd = units.std(0, correction=0, keepdim=True)
        live = (sd > 1e-12 * (1 + mu.abs())).squeeze(0)
        z = ((units[:, live] - mu[:, live]) / sd[:, live]).reshape(-1)
    else:  # a single sample per unit: standardize the whole layer
        sd = units.std(correction=0)
        z = ((units - units.mean()) / sd).reshape(-1) if float(sd) > 0 else units.new_empty(0)
    if z.numel() > max_values:
        idx = torch.randperm(z.numel(), generator=gen)[:max_values].to(z.device)
        z = z[idx]
    n = int(z.numel())
    if n >= 2:
        kurt = float(stats.kurtosis(z))
        ks = float(stats.ks_distance_normal(z))
        crit = float(stats.ks_critical_value(n, alpha))
    else:
        kurt = ks = crit = float("nan")
    # mean correlation between the outputs of different inputs
    b = _batch_axis(module, x64)
    per_input = x64.movedim(b, 0).reshape(x64.shape[b], -1)
    if per_input.shape[0] >= 2 and per_input.shape[1] >= 1:
        c = stats.correlation_matrix(per_input)
        m = c.shape[0]
        off = c[~torch.eye(m, dtype=torch.bool, device=c.device)]
        corr = float(off[torch.isfinite(off)].mean()) if torch.isfinite(off).any() else float("nan")
    else:
        corr = float("nan")
    return mean, var, kurt, ks, crit, n, corr


def _move(inputs, device):
    if isinstance(inputs, Tensor):
        return inputs.to(device)
    if isinstance(inputs, tuple):
        return tuple(_move(x, device) for x in inputs)
    if isinstance(inputs, list):
        return [_move(x, device) for x in inputs]
    if isinstance(inputs, dict):
        return {k: _move(v, device) for k, v in inputs.items()}
    return inputs


def _batch_size(inputs) -> int:
    if isinstance(inputs, Tensor):
        return int(inputs.shape[0]) if inputs.dim() else 1
    if isinstance(inputs, (tuple, list)) and inputs:
        return _batch_size(inputs[0])
    if isinstance(inputs, dict) and inputs:
        return _batch_size(next(iter(inputs.values())))
    return 0


def diagnose(model: nn.Module, inputs: Union[Tensor, Sequence[Any], Dict[str, Any]], *,
             loss: Optional[Callable[[Any], Tensor]] = None, layers: Optional[Sequence[Any]] = None,
             alpha: float = 0.05, seed: int = 0, max_values: int = 100_000, gradients: bool = True) -> Report:
    r"""Per-layer signal-propagation statistics of ``model`` on one batch of ``inputs``.

    Runs one forward pass (and, with ``gradients``, one backward pass) with hooks on the layers
    and returns a :class:`Report`; see the module's docstring for what each column means.

    Parameters
    ----------
    model : torch.nn.Module
        Any network; its layers of the types in :data:`DEFAULT_LAYERS` are hooked.
    inputs : torch.Tensor, tuple or dict
        One batch, with the batch on the first axis (``model(inputs)``; a tuple is passed as
        positional arguments, a dict as keyword arguments). At least 2 inputs for correlations;
        a few hundred for a meaningful kurtosis and KS distance. Moved to the model's device.
    loss : callable, optional
        ``loss(output) -> scalar tensor`` for the gradients; default :func:`default_loss`.
    layers : sequence, optional
        What to hook instead of the defaults: module types, module names (as in
        ``model.named_modules()``) or ``(type, kind)`` pairs.
    alpha : float
        Level of the KS test, in (0, 1).
    seed : int
        Seeds the default loss's Gaussian vector and the subsampling of large layers.
    max_values : int
        At most this many standardized values per layer enter the kurtosis and KS distance
        (a random subset); the critical value is for this sample size.
    gradients : bool
        Whether to run the backward pass (``grad_var``); needs an output that depends on
        parameters or inputs that require gradients.

    Returns
    -------
    Report

    Raises
    ------
    ValueError
        If ``model`` is not a module, ``alpha`` is not in (0, 1), ``max_values < 8``, a name
        in ``layers`` is not a submodule, nothing was hooked, ``inputs`` is one unbatched input
        (a tensor of fewer than 2 dimensions, or a convolution ran on ``[C, ...]`` without the
        batch axis), or the default loss meets an output that is not a tensor (a dict: pass
        ``loss``). The model is restored before any of these propagates.

    Examples
    --------
    >>> import torch, sigprop
    >>> net = torch.nn.Sequential(torch.nn.Linear(20, 50), torch.nn.Tanh(), torch.nn.Linear(50, 5))
    >>> report = sigprop.diagnose(net, torch.randn(64, 20))
    >>> [row.layer for row in report.rows]
    ['0', '2']
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < float(alpha) < 1:
        raise ValueError(f"alpha must be in the open interval (0, 1); got {alpha!r}")
    if isinstance(max_values, bool) or not isinstance(max_values, int) or max_values < 8:
        raise ValueError(f"max_values must be an integer >= 8; got {max_values!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    named = dict(model.named_modules())
    spec: List[Tuple[Any, str]] = [] if layers is not None else list(DEFAULT_LAYERS)
    by_name: Dict[str, str] = {}
    for item in (layers if layers is not None else ()):
        if isinstance(item, str):
            if item not in named:
                raise ValueError(f"layers names {item!r}, which is not a submodule of the model "
                                 f"(see model.named_modules())")
            by_name[item] = _kind(named[item], DEFAULT_LAYERS) or type(named[item]).__name__.lower()
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], type):
            spec.append((item[0], str(item[1])))
        elif isinstance(item, type) and issubclass(item, nn.Module):
            kind = next((k for t, k in DEFAULT_LAYERS if issubclass(item, t)), item.__name__.lower())
            spec.append((item, kind))
        else:
            raise ValueError(f"layers must hold module types, module names or (type, kind) pairs; got {item!r}")

    if isinstance(inputs, Tensor) and inputs.dim() < 2:
        raise ValueError(
            f"inputs has shape {tuple(inputs.shape)}: a single unbatched input; diagnose needs a batch "
            "on the first axis, e.g. inputs.unsqueeze(0) for one input (at least 2 for correlations, "
            "a few hundred for the kurtosis and KS distance)")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    inputs = _move(inputs, device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    skipped = _unmeasured(named, layers is None)

    records: List[LayerStats] = []
    grads: Dict[int, float] = {}
    calls: Dict[str, int] = {}
    handles = []

    def forward_hook(name: str, kind: str):
        def hook(module, args, output):
            out = _first_tensor(output)
            if out is None or not out.is_floating_point():
                what = type(output).__name__ if out is None else f"a {out.dtype} tensor"
                skipped.setdefault(name or "(model)", f"{type(module).__name__} returned {what}, "
                                   "not a floating-point tensor")
                return
            _check_batched(name, module, out)
            st = _forward_stats(module, out, float(alpha), max_values, gen)
            if st is None:
                skipped.setdefault(name or "(model)", f"{type(module).__name__} returned an empty tensor")
                return
            calls[name] = calls.get(name, 0) + 1
            idx = len(records)
            records.append(LayerStats(name or "(model)", kind, type(module).__name__, tuple(out.shape),
                                      *st, call=calls[name]))
            if gradients and out.requires_grad:
                def grad_hook(g, idx=idx):
                    grads[idx] = float(g.detach().to(torch.float64).var(correction=0))
                # a tensor hook, not a module backward hook: it sees the gradient with respect to
                # this output even when a later in-place op (ReLU(inplace=True)) modifies it
                out.register_hook(grad_hook)
        return hook

    for name, module in named.items():
        kind = by_name[name] if name in by_name else _kind(module, spec)
        if kind is not None:
            handles.append(module.register_forward_hook(forward_hook(name, kind)))
    if not handles:
        raise ValueError("nothing to hook: the model has no layer of the types in layers "
                         f"(default: {sorted({k for _, k in DEFAULT_LAYERS})})")
    notes: List[str] = []
    loss_name = "nothing (backward pass not run)"
    saved = _ModelState(model)
    try:
        with torch.enable_grad():
            if isinstance(inputs, tuple):
                output = model(*inputs)
            elif isinstance(inputs, dict):
                output = model(**inputs)
            else:
                output = model(inputs)
            if gradients:
                if loss is None:
                    if isinstance(output, dict):
                        raise ValueError(
                            f"the model returned a dict with keys {list(output)[:8]}; the default loss needs a "
                            "tensor: pass loss=lambda output: ... (e.g. default_loss(output['logits']))")
                    first = output if isinstance(output, Tensor) else _first_tensor(output)
                    if first is None:
                        raise ValueError(
                            f"the model returned {type(output).__name__}, not a tensor or a tuple starting with "
                            "one; the default loss needs a tensor: pass loss=lambda output: ... to diagnose()")
                    value = default_loss(first, seed)
                    loss_name = f"sum(output * g), g ~ N(0, I) with seed {seed}"
                else:
                    value = loss(output)
                    loss_name = getattr(loss, "__name__", type(loss).__name__)
                    if not isinstance(value, Tensor) or value.numel() != 1:
                        raise ValueError("loss must return a scalar tensor")
                targets = [p for p in model.parameters() if p.requires_grad]
                targets += [t for t in _tensors(inputs) if t.requires_grad]
                if value.requires_grad and targets:
                    # autograd.grad, not backward(): the parameters' .grad stay as they were
                    torch.autograd.grad(value, targets, allow_unused=True)
                else:
                    notes.append("no gradients: the output does not depend on anything that requires grad")
    finally:
        for h in handles:
            h.remove()
        changed = saved.restore()
    if changed:
        notes.append("the model's forward pass changed parameters in place ("
                     + ", ".join(changed[:5]) + ("..." if len(changed) > 5 else "")
                     + "); diagnose cannot undo that")
    for idx, value in grads.items():
        records[idx].grad_var = value
    notes += [f"not measured: {k} ({why})" for k, why in skipped.items()]
    return Report(records, _batch_size(inputs), loss_name, float(alpha), notes)


class _ModelState:
    """What a forward/backward pass may change in a model and the process, saved so that
    :func:`diagnose` leaves everything as it found it: buffers (cloned: batch normalization's
    running statistics and ``num_batches_tracked`` are small), every module's training flag,
    the parameters' version counters (a forward pass that writes parameters in place is
    reported, not silently kept), and the global CPU and CUDA random states."""

    def __init__(self, model: nn.Module):
        self.buffers = [(m, k, b, b.detach().clone()) for m in model.modules()
                        for k, b in m._buffers.items() if b is not None]
        self.modes = [(m, m.training) for m in model.modules()]
        self.params = [(n, p, p._version) for n, p in model.named_parameters()]
        self.rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def restore(self) -> List[str]:
        with torch.no_grad():
            for m, k, b, value in self.buffers:
                m._buffers[k] = b  # also when the forward pass replaced the buffer object
                b.copy_(value)
        for m, mode in self.modes:
            m.training = mode
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        return [n for n, p, v in self.params if p._version != v]


def _unmeasured(named: Dict[str, nn.Module], default_layers: bool) -> Dict[str, str]:
    """Layers the default hooks cannot measure, with the reason (see the module's docstring)."""
    out: Dict[str, str] = {}
    if not default_layers:
        return out
    for name, module in named.items():
        if isinstance(module, nn.RNNBase):
            out[name or "(model)"] = (f"{type(module).__name__}: a recurrent layer's pre-activations are "
                                      "inside its cell, which has no hook; pass layers=[...] naming it to "
                                      "record its output sequence instead")
    return out


def _check_batched(name: str, module: nn.Module, out: Tensor) -> None:
    """A layer that ran on one unbatched input (torch accepts ``[C, H, W]`` in a Conv2d and
    ``[features]`` in a Linear) would have its features counted as inputs."""
    n = len(module.kernel_size) if isinstance(module, nn.modules.conv._ConvNd) else 0
    if (n and out.dim() == n + 1) or out.dim() < 2:
        raise ValueError(f"layer {name or '(model)'!r} ({type(module).__name__}) ran on an unbatched input "
                         f"(its output has shape {tuple(out.shape)}); pass a batch with the batch on the "
                         "first axis, e.g. inputs.unsqueeze(0)")


def _tensors(inputs) -> List[Tensor]:
    if isinstance(inputs, Tensor):
        return [inputs]
    if isinstance(inputs, (tuple, list)):
        return [t for x in inputs for t in _tensors(x)]
    if isinstance(inputs, dict):
        return [t for x in inputs.values() for t in _tensors(x)]
    return []
