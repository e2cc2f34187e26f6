"""The on-the-fly statistics reducer shared by the ensemble kernels.

Each layer's tensors are reduced as soon as they are computed (pooled moments in
float64, Gram matrices, histogram counts) into buffers of one row per layer, kept
on the simulation device until the run ends; no layer's activations are stored.
"""
from __future__ import annotations

import torch

Tensor = torch.Tensor


def _moments(t: Tensor) -> Tensor:
    """``[mean, variance, excess kurtosis]`` of all entries of a float64 tensor."""
    mean = t.mean()
    d2 = (t - mean).square_()
    m2 = d2.mean()
    m4 = d2.square_().mean()
    return torch.stack([mean, m2, m4 / (m2 * m2) - 3.0])


def _histogram(t: Tensor, edges: Tensor) -> Tensor:
    """Counts of ``t``'s entries in the bins ``[e_k, e_{k+1})`` (last bin closed)."""
    n = edges.numel() - 1
    e = edges.to(t.dtype)
    flat = t.reshape(-1)
    idx = torch.bucketize(flat, e, right=True) - 1
    idx = torch.where(flat == e[-1], torch.full_like(idx, n - 1), idx)
    idx = idx.clamp_(-1, n) + 1
    return torch.bincount(idx, minlength=n + 2)[1 : n + 1].to(torch.float64)


class _Recorder:
    """Per-layer statistics buffers, kept on the simulation device until the end."""

    def __init__(self, depth, n_nets, batch, device, want_c, hist_layers, edges, backward):
        f64 = dict(device=device, dtype=torch.float64)
        self.want_c = want_c
        self.q = torch.empty(depth, n_nets, batch, **f64)
        self.qx = torch.empty(depth, n_nets, batch, **f64)
        self.c = torch.empty(depth, n_nets, batch, batch, **f64) if want_c else None
        self.h_mom = torch.empty(depth, 3, **f64)
        self.x_mom = torch.empty(depth, 3, **f64)
        self.hist_index = {l: i for i, l in enumerate(hist_layers)}
        self.edges = {k: v.to(device) for k, v in edges.items()}
        self.hist = {k: torch.zeros(len(hist_layers), v.numel() - 1, **f64) for k, v in edges.items()}
        if backward:
            self.grad_q = torch.empty(depth, n_nets, batch, **f64)
            self.grad_h_var = torch.empty(depth, **f64)
            self.grad_x_var = torch.empty(depth, **f64)
            self.grad_w_var = torch.empty(depth, **f64)

    def _hist(self, key: str, layer: int, t: Tensor) -> None:
        if key in self.hist and layer in self.hist_index:
            self.hist[key][self.hist_index[layer]] += _histogram(t, self.edges[key])

    def forward(self, layer: int, h: Tensor, x: Tensor) -> None:
        i = layer - 1
        hd = h.to(torch.float64)
        if self.want_c:
            gram = torch.matmul(hd, hd.transpose(-2, -1)) / h.shape[-1]
            q = torch.diagonal(gram, dim1=-2, dim2=-1)
            self.c[i] = gram / torch.sqrt(q.unsqueeze(-1) * q.unsqueeze(-2))
            self.q[i] = q
        else:
            self.q[i] = hd.square().mean(-1)
        xd = x.to(torch.float64)
        self.qx[i] = xd.square().mean(-1)
        self.h_mom[i] = _moments(hd)
        self.x_mom[i] = _moments(xd)
        self._hist("h", layer, h)
        self._hist("x", layer, x)

    def backward(self, layer: int, grad_h: Tensor, grad_x: Tensor, grad_w: Tensor) -> None:
        i = layer - 1
        gh = grad_h.to(torch.float64)
        self.grad_q[i] = gh.square().mean(-1)
        self.grad_h_var[i] = gh.var(correction=0)
        self.grad_x_var[i] = grad_x.to(torch.float64).var(correction=0)
        self.grad_w_var[i] = grad_w.var(correction=0).to(torch.float64)
        self._hist("grad_h", layer, grad_h)
        self._hist("grad_x", layer, grad_x)
        self._hist("grad_w", layer, grad_w)
