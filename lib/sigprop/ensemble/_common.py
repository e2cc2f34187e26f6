"""Argument checks, per-network scales and seeding shared by the ensemble kernels."""
from __future__ import annotations

import math
import numbers
from typing import Dict, List, Mapping, Optional, Tuple, Union

import torch

from .._checks import check_generator, check_int

Tensor = torch.Tensor

#: Largest batch for which the correlation matrices ``c`` are recorded by default.
C_MAX = 64
#: Quantities that can be histogrammed: pre-activations, activations, and the
#: gradients of the loss with respect to them and to the weights.
HIST_KEYS = ("h", "x", "grad_h", "grad_x", "grad_w")
#: Inits with i.i.d. Gaussian entries, for which ``method="gram"`` (the exact conditional law
#: of a layer given the previous one) is exact.
_GRAM_INITS = frozenset({"gaussian", "lecun_normal", "xavier_normal", "he_normal"})


_check_int = check_int


def _check_per_net(value, name: str, n_nets: int) -> Union[float, Tuple[float, ...]]:
    """A non-negative finite scale: one number, or a tuple of one per network (a tuple,
    not a tensor, so that configurations stay hashable and comparable)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = float(value)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be finite and >= 0; got {value!r}")
        return v
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a number or a sequence/tensor of numbers; got {value!r}")
    try:
        t = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a number or a sequence/tensor of numbers; got {value!r}") from None
    if t.ndim == 0 or t.numel() == 1:
        return _check_per_net(float(t.reshape(())), name, n_nets)
    if t.ndim != 1 or t.numel() != n_nets:
        raise ValueError(f"{name} must be a number or have shape (n_nets,) = ({n_nets},); got shape {tuple(t.shape)}")
    if not bool(torch.all(torch.isfinite(t))) or bool(torch.any(t < 0)):
        raise ValueError(f"{name} must be finite and >= 0; got {t.tolist()}")
    return tuple(t.tolist())


def _as_gain(s: Union[float, Tuple[float, ...]], device=None, dtype=torch.float64) -> Union[float, Tensor]:
    """A per-network tuple as a tensor (for broadcasting); a number unchanged."""
    return torch.tensor(s, device=device, dtype=dtype) if isinstance(s, tuple) else s


def _draw_seeds(generator: Optional[torch.Generator], depth: int) -> List[int]:
    """``depth + 1`` seeds: one per layer and one for the random read-out gradient."""
    dev = check_generator(generator).device if generator is not None else torch.device("cpu")
    return torch.randint(0, 2**62, (depth + 1,), generator=generator, device=dev, dtype=torch.int64).tolist()


def _seeded(seed: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def _check_edges(edges, key: str) -> Tensor:
    try:
        e = torch.as_tensor(edges, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"bins[{key!r}] must be a 1-D sequence of bin edges; got {edges!r}") from None
    if e.ndim != 1 or e.numel() < 2 or not bool(torch.all(torch.isfinite(e))) or not bool(torch.all(e[1:] > e[:-1])):
        raise ValueError(f"bins[{key!r}] must be a 1-D, strictly increasing, finite tensor of >= 2 edges; got {edges!r}")
    return e


def _check_hist(hist_layers, bins, depth: int, backward: bool) -> Tuple[Tuple[int, ...], Dict[str, Tensor]]:
    try:
        layers = tuple(sorted(set(_check_int(l, "every entry of hist_layers") for l in hist_layers)))
    except TypeError:
        raise ValueError(f"hist_layers must be a sequence of layer numbers in 1..{depth}; got {hist_layers!r}") from None
    if any(l > depth for l in layers):
        raise ValueError(f"hist_layers must lie in 1..depth = 1..{depth}; got {list(hist_layers)}")
    if not layers:
        return (), {}
    if bins is None:
        raise ValueError("bins (bin edges, or a dict quantity -> edges) is required when hist_layers is given")
    if isinstance(bins, Mapping):
        unknown = set(bins) - set(HIST_KEYS)
        if unknown:
            raise ValueError(f"bins keys must be among {HIST_KEYS}; got {sorted(unknown)}")
        if not backward and any(k.startswith("grad") for k in bins):
            raise ValueError("gradient histograms (bins keys grad_*) need backward=True")
        return layers, {k: _check_edges(v, k) for k, v in bins.items()}
    keys = HIST_KEYS if backward else ("h", "x")
    e = _check_edges(bins, "all")
    return layers, {k: e for k in keys}
