r"""Train many independent MLPs at once: trainability across :math:`(\sigma_w, L)`.

Schoenholz, Gilmer, Ganguli & Sohl-Dickstein (2017) trained fully connected tanh
networks of many depths :math:`L` and weight scales :math:`\sigma_w` and found that a
network trains when its depth is below a few correlation depth scales,
:math:`L \lesssim 6\,\xi_c` (:func:`sigprop.meanfield.xi_c`), so that only networks
near the edge of chaos train at great depth.  Reproducing that figure means training
hundreds of small networks; this module trains all networks of one depth together.

The networks are

.. math::

    h^l = W^l x^{l-1} + b^l,\quad x^l = \phi(h^l)\ (l = 1..L),\qquad
    z = W^{L+1} x^L + b^{L+1}\ \text{(logits)},

with :math:`W^l_{ij} \sim \mathcal N(0, \sigma_w^2/n_{l-1})` and :math:`b^l_i \sim
\mathcal N(0, \sigma_b^2)` for every layer, the read-out included.  The weights of
``n_nets`` networks are held as ``(n_nets, fan_out, fan_in)`` tensors and a layer is one
batched matmul.  The loss is the *sum over networks* of each network's mean
cross-entropy on the minibatch,

.. math::

    \mathcal L = \sum_{k=1}^{n_\text{nets}} \frac{1}{B} \sum_{a=1}^{B}
    \operatorname{CE}\big(z_k(x_a), y_a\big),

so that :math:`\partial\mathcal L/\partial\theta_k = \partial\mathcal L_k/\partial\theta_k`:
one plain SGD optimizer over all parameters trains every network exactly as if it were
trained alone (all networks see the same minibatches).

.. rubric:: Public API

* :func:`init_parameters` -- weights and biases of ``n_nets`` networks, one
  :math:`\sigma_w` per network.
* :func:`forward` -- logits of all networks.
* :func:`train` -- SGD on a list of parameters; a :class:`TrainResult`.
* :func:`train_grid` -- accuracy after a fixed number of steps over a grid of
  :math:`\sigma_w` and depths (Schoenholz et al. 2017, Fig. 6).

References
----------
* Schoenholz, Gilmer, Ganguli & Sohl-Dickstein (2017), *Deep information propagation*.
* Poole, Lahiri, Raghu, Sohl-Dickstein & Ganguli (2016), *Exponential expressivity in
  deep neural networks through transient chaos*.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from . import activations as _acts
from . import init as _init
from . import data as _data
from . import runtime
from ._checks import check_dtype, check_generator, check_int, check_nonneg, check_real, check_tensor

Tensor = torch.Tensor
Params = List[Tuple[Tensor, Tensor]]

__all__ = ["init_parameters", "forward", "train", "TrainResult", "train_grid"]


# --------------------------------------------------------------------------- #
# Argument checks.
# --------------------------------------------------------------------------- #
def _scales(values, name: str) -> Tensor:
    try:
        t = torch.as_tensor(values, dtype=torch.float64).detach().cpu().reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a number or a 1-D sequence of numbers; got {values!r}") from None
    if t.numel() == 0 or not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise ValueError(f"{name} must be a non-empty sequence of finite numbers >= 0; got {t.tolist()}")
    return t


def _xy(data, name: str) -> Tuple[Tensor, Tensor]:
    return _data.as_labelled(data, name, flatten=True)


# --------------------------------------------------------------------------- #
# The batched network.
# --------------------------------------------------------------------------- #
def init_parameters(
    n_in: int,
    n_out: int,
    depth: int,
    width: int,
    sigma_w,
    sigma_b: float,
    *,
    n_nets: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> Params:
    r"""Weights and biases of ``n_nets`` independent MLPs with ``depth`` hidden layers and a read-out.

    :math:`W^l_{ij} \sim \mathcal N(0, \sigma_{w,k}^2/n_{l-1})` (network :math:`k`) and
    :math:`b^l_i \sim \mathcal N(0, \sigma_b^2)` for :math:`l = 1, \dots, L+1`, drawn
    layer by layer (weights, then biases) from ``generator``.

    Parameters
    ----------
    n_in, n_out : int
        Input features and classes.
    depth : int
        Hidden layers :math:`L \ge 1`.
    width : int
        Width of every hidden layer.
    sigma_w : float or sequence or Tensor
        One weight scale, or one per network (then ``n_nets`` defaults to its length).
    sigma_b : float
        Bias standard deviation :math:`\ge 0`.
    n_nets : int, optional
        Number of networks (default: ``len(sigma_w)``, or 1 for a scalar).
    generator, device, dtype
        Randomness, placement and floating dtype.

    Returns
    -------
    list of (Tensor, Tensor)
        ``[(W^1, b^1), ..., (W^{L+1}, b^{L+1})]``, ``W^l`` of shape
        ``(n_nets, n_l, n_{l-1})``, leaf tensors with ``requires_grad=True``.

    Raises
    ------
    ValueError
        On non-positive sizes, negative or non-finite scales, or a ``sigma_w`` whose
        length is not ``n_nets``.
    """
    n_in, n_out = check_int(n_in, "n_in"), check_int(n_out, "n_out")
    depth, width = check_int(depth, "depth"), check_int(width, "width")
    sw = _scales(sigma_w, "sigma_w")
    sigma_b = check_nonneg(sigma_b, "sigma_b")
    if n_nets is None:
        n_nets = sw.numel()
    n_nets = check_int(n_nets, "n_nets")
    if sw.numel() not in (1, n_nets):
        raise ValueError(f"sigma_w must have one value or n_nets = {n_nets} values; got {sw.numel()}")
    check_dtype(dtype)
    check_generator(generator)
    dev = runtime.device(device) if not isinstance(device, torch.device) else device
    gain = sw.expand(n_nets).to(device=dev, dtype=dtype)
    sizes = [n_in] + [width] * depth + [n_out]
    gen_dev = generator.device if generator is not None else dev
    params: Params = []
    for fi, fo in zip(sizes[:-1], sizes[1:]):
        w = _init.gaussian((n_nets, fo, fi), gain, generator=generator, device=dev, dtype=dtype)
        b = torch.randn((n_nets, fo), generator=generator, device=gen_dev, dtype=dtype).to(dev) * sigma_b
        params.append((w.requires_grad_(True), b.requires_grad_(True)))
    return params


def forward(params: Params, x: Tensor, act) -> Tensor:
    r"""Logits of every network: ``(n_nets, batch, n_out)``.

    ``x`` is ``(batch, n_in)``, shared by all networks, or ``(n_nets, batch, n_in)``.
    Every layer but the last applies :math:`\phi`.

    Raises
    ------
    ValueError
        If ``params`` is empty or ``x`` does not match the first layer.
    """
    a = _acts.get(act)
    if not isinstance(params, (list, tuple)) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(t, Tensor) for t in p) for p in params):
        raise ValueError(f"params must be a list of (W, b) tensor pairs (from init_parameters); got {type(params).__name__}")
    if not params:
        raise ValueError("params must hold at least one (W, b) pair")
    check_tensor(x, "x")
    w0 = params[0][0]
    if x.ndim not in (2, 3) or x.shape[-1] != w0.shape[-1] or (x.ndim == 3 and x.shape[0] != w0.shape[0]):
        raise ValueError(
            f"x must have shape (batch, {w0.shape[-1]}) or ({w0.shape[0]}, batch, {w0.shape[-1]}); got {tuple(x.shape)}"
        )
    h = x.to(dtype=w0.dtype, device=w0.device)
    last = len(params) - 1
    for l, (w, b) in enumerate(params):
        h = torch.matmul(h, w.transpose(-2, -1)) + b.unsqueeze(-2)
        if l < last:
            h = a.fn(h)
    return h


@torch.no_grad()
def _accuracy(params: Params, x: Tensor, y: Tensor, act, chunk: int = 2048) -> Tensor:
    """Fraction of correct argmax predictions per network; a network with non-finite logits scores 0 on those inputs."""
    correct = None
    for s in range(0, x.shape[0], chunk):
        z = forward(params, x[s:s + chunk], act)
        ok = (z.argmax(-1) == y[s:s + chunk].to(z.device)) & torch.isfinite(z).all(-1)
        c = ok.sum(-1).to(torch.float64)
        correct = c if correct is None else correct + c
    return (correct / x.shape[0]).cpu()


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    loss : Tensor
        ``(steps, n_nets)``, float64 on the CPU: each network's minibatch loss before each step
        (``nan`` or ``inf`` once a network has diverged).
    train_accuracy : Tensor
        ``(n_nets,)``: accuracy on (up to ``n_eval`` of) the training inputs after training.
    eval_accuracy : Tensor or None
        ``(n_nets,)``: accuracy on the evaluation set, when one was given.
    """

    loss: Tensor
    train_accuracy: Tensor
    eval_accuracy: Optional[Tensor] = None


def train(
    params: Params,
    act,
    data,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    eval_data=None,
    n_eval: Optional[int] = 2000,
    generator: Optional[torch.Generator] = None,
) -> TrainResult:
    r"""Train the networks in ``params`` (in place) with plain SGD on the summed loss.

    Each step draws ``batch_size`` training indices uniformly without replacement from
    ``generator`` (the same minibatch for every network), computes
    :math:`\mathcal L = \sum_k \mathcal L_k` with :math:`\mathcal L_k` network
    :math:`k`'s mean cross-entropy, and updates :math:`\theta \leftarrow \theta -
    \eta\,\nabla\mathcal L`, which moves each network by the gradient of its own loss
    only.  A network whose loss becomes non-finite keeps going (its numbers stay
    ``nan``) without affecting the others.

    This is the batched counterpart of :func:`sigprop.train.train_classifier`, which trains
    one ``torch.nn.Module`` (any architecture, any optimizer, epochs of permuted mini-batches):
    here every network of a :math:`(\sigma_w)` grid is one slice of the same tensors, so
    hundreds of networks cost one batched matmul a layer.

    Parameters
    ----------
    params : list of (W, b)
        From :func:`init_parameters`; updated in place.
    act : str or Activation
        The hidden layers' activation.
    data : Dataset or (x, y)
        Training inputs ``(N, ...)`` (flattened) and integer labels ``(N,)``.
    steps : int
        Number of SGD steps, :math:`\ge 1`.
    lr : float
        Learning rate :math:`\eta > 0`.
    batch_size : int
        Minibatch size, between 1 and ``N``.
    eval_data : Dataset or (x, y), optional
        Held-out data for ``eval_accuracy``.
    n_eval : int or None
        Training accuracy is measured on the first ``n_eval`` training inputs (all if ``None``).
    generator : torch.Generator, optional
        Draws the minibatches.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        On bad data, sizes, learning rate or parameters.
    """
    a = _acts.get(act)
    x, y = _xy(data, "data")
    steps, batch_size = check_int(steps, "steps"), check_int(batch_size, "batch_size")
    if batch_size > x.shape[0]:
        raise ValueError(f"batch_size must be at most the number of training inputs ({x.shape[0]}); got {batch_size}")
    lr = check_real(lr, "lr", 0.0, lo_open=True)
    if n_eval is not None:
        n_eval = check_int(n_eval, "n_eval")
    if not params or not all(isinstance(w, Tensor) and w.requires_grad and b.requires_grad for w, b in params):
        raise ValueError("params must be a non-empty list of (W, b) leaf tensors with requires_grad, from init_parameters")
    w0 = params[0][0]
    dev, n_out = w0.device, params[-1][0].shape[-2]
    if int(y.max()) >= n_out:
        raise ValueError(f"labels must lie in 0..{n_out - 1} (the read-out has {n_out} outputs); got max {int(y.max())}")
    x, y = x.to(device=dev, dtype=w0.dtype), y.to(dev)
    flat = [t for pair in params for t in pair]
    opt = torch.optim.SGD(flat, lr=lr)
    n = x.shape[0]
    gen_dev = generator.device if generator is not None else torch.device("cpu")
    losses = []
    for _ in range(steps):
        idx = torch.randperm(n, generator=generator, device=gen_dev)[:batch_size].to(dev)
        z = forward(params, x[idx], a)  # (n_nets, B, n_out)
        per_net = F.cross_entropy(z.transpose(1, 2), y[idx].expand(z.shape[0], -1), reduction="none").mean(-1)
        opt.zero_grad(set_to_none=True)
        per_net.sum().backward()
        opt.step()
        losses.append(per_net.detach().to(torch.float64).cpu())
    k = n if n_eval is None else min(n, n_eval)
    train_acc = _accuracy(params, x[:k], y[:k], a)
    eval_acc = None
    if eval_data is not None:
        xe, ye = _xy(eval_data, "eval_data")
        eval_acc = _accuracy(params, xe.to(device=dev, dtype=w0.dtype), ye.to(dev), a)
    return TrainResult(torch.stack(losses), train_acc, eval_acc)


def train_grid(
    data,
    act,
    sigma_ws: Sequence[float],
    depths: Sequence[int],
    *,
    sigma_b: float,
    width: int,
    steps: int,
    lr: float,
    batch_size: int,
    n_seeds: int = 1,
    eval_data=None,
    n_eval: Optional[int] = 2000,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
    seed: Optional[int] = None,
    executor=None,
    store=None,
    progress: bool = False,
) -> Dict[str, Tensor]:
    r"""Accuracy after ``steps`` SGD steps over a grid of :math:`\sigma_w` and depths
    (Schoenholz et al. 2017, Fig. 6).

    For each depth :math:`L`, the ``len(sigma_ws) * n_seeds`` networks (every
    :math:`\sigma_w`, ``n_seeds`` independent initializations each) are built by
    :func:`init_parameters` and trained together by :func:`train`.  Compare the result
    with :math:`L = 6\,\xi_c(\sigma_w, \sigma_b)`.

    Parameters
    ----------
    data : Dataset or (x, y)
        Training data; inputs are flattened.  Standardize them first
        (:func:`sigprop.data.standardize`) so that the input length is :math:`q^0 = 1`.
    act : str or Activation
        Activation of the hidden layers.
    sigma_ws : sequence of float
        Weight scales :math:`\sigma_w \ge 0`.
    depths : sequence of int
        Numbers of hidden layers, each :math:`\ge 1`.
    sigma_b : float
        Bias scale :math:`\sigma_b \ge 0`, shared by all networks.
    width, steps, lr, batch_size, n_seeds : int, int, float, int, int
        Hidden width, SGD steps, learning rate, minibatch size, initializations per cell.
    eval_data : Dataset or (x, y), optional
        Held-out data.
    n_eval : int or None
        Training inputs used to measure training accuracy.
    generator, device, dtype
        Randomness (weights and minibatches), placement, floating dtype. One ``generator``
        is drawn from depth after depth, in this process.
    seed : int, optional
        Instead of ``generator``: every depth is one task with its own seed,
        :func:`sigprop.sweep.task_seed` ``(seed, i)`` for the ``i``-th depth, so the result is
        the same wherever and in whatever order the depths run. Needed for ``executor`` and
        ``store``.
    executor : concurrent.futures.Executor, optional
        Runs the depths (e.g. a Dask cluster: ``distributed.Client(...).get_executor()``);
        ``None``: in this process. See :func:`sigprop.sweep.run`.
    store : path, optional
        Folder where each depth's result is saved as it finishes; a sweep started again
        with the same arguments and store skips the depths already there.
    progress : bool
        A progress bar of finished depths.

    Returns
    -------
    dict
        ``sigma_w`` ``(S,)``, ``depth`` ``(D,)``; ``accuracy`` ``(D, S)`` (training
        accuracy averaged over seeds), ``accuracy_seeds`` ``(D, S, n_seeds)``,
        ``final_loss`` ``(D, S)`` (mean over seeds of the last 10 minibatch losses), and,
        with ``eval_data``, ``eval_accuracy`` ``(D, S)``.  Float64 tensors on the CPU.

    Raises
    ------
    ValueError
        On an empty or invalid grid, bad sizes or bad data.
    """
    sw = _scales(sigma_ws, "sigma_ws")
    try:
        ds = [check_int(d, "every entry of depths") for d in depths]
    except TypeError:
        raise ValueError(f"depths must be a sequence of integers >= 1; got {depths!r}") from None
    if not ds:
        raise ValueError("depths must hold at least one depth")
    n_seeds = check_int(n_seeds, "n_seeds")
    sigma_b = check_nonneg(sigma_b, "sigma_b")
    x, y = _xy(data, "data")
    n_classes = int(y.max()) + 1
    if eval_data is not None:
        _, ye = _xy(eval_data, "eval_data")
        n_classes = max(n_classes, int(ye.max()) + 1)
    S = sw.numel()
    gains = sw.repeat_interleave(n_seeds)  # network k: sigma_w index k // n_seeds
    acc = torch.empty(len(ds), S, n_seeds, dtype=torch.float64)
    eval_acc = torch.empty(len(ds), S, n_seeds, dtype=torch.float64) if eval_data is not None else None
    final = torch.empty(len(ds), S, n_seeds, dtype=torch.float64)
    common = dict(x=x, y=y, n_classes=n_classes, act=act, gains=gains, sigma_b=sigma_b, width=width,
                  steps=steps, lr=lr, batch_size=batch_size, eval_data=eval_data, n_eval=n_eval,
                  device=device, dtype=dtype)
    if seed is None:
        if executor is not None or store is not None:
            raise ValueError("executor and store need seed=<int> (each depth then carries its own seed); "
                             "got seed=None")
        per_depth = [_train_depth(depth=d, generator=generator, **common) for d in ds]
    else:
        if generator is not None:
            raise ValueError("pass either generator or seed, not both")
        from . import sweep

        tasks = {(i, d): dict(common, depth=d, seed=sweep.task_seed(seed, i)) for i, d in enumerate(ds)}
        done = sweep.run(_train_depth, tasks, executor=executor, store=store, progress=progress,
                         desc="trainability grid")
        per_depth = [done[key] for key in tasks]
    for i, res in enumerate(per_depth):
        acc[i] = res["train_accuracy"].reshape(S, n_seeds)
        final[i] = res["final_loss"].reshape(S, n_seeds)
        if eval_acc is not None:
            eval_acc[i] = res["eval_accuracy"].reshape(S, n_seeds)
    out = {
        "sigma_w": sw.clone(),
        "depth": torch.tensor(ds, dtype=torch.float64),
        "accuracy": acc.mean(-1),
        "accuracy_seeds": acc,
        "final_loss": final.mean(-1),
    }
    if eval_acc is not None:
        out["eval_accuracy"] = eval_acc.mean(-1)
    return out


def _train_depth(*, x, y, n_classes, act, gains, sigma_b, width, depth, steps, lr, batch_size, eval_data,
                 n_eval, device, dtype, generator=None, seed=None) -> Dict[str, Tensor]:
    """One depth of :func:`train_grid`: all its networks built and trained together; with
    ``seed``, a generator of its own (on ``device``) seeded with it. Module level, so that an
    executor in another process can run it."""
    if seed is not None:
        dev = runtime.device(device) if not isinstance(device, torch.device) else device
        generator = torch.Generator(device=dev).manual_seed(int(seed))
    params = init_parameters(
        x.shape[1], n_classes, depth, width, gains, sigma_b, generator=generator, device=device, dtype=dtype
    )
    res = train(
        params, act, (x, y), steps=steps, lr=lr, batch_size=batch_size,
        eval_data=eval_data, n_eval=n_eval, generator=generator,
    )
    out = {"train_accuracy": res.train_accuracy.cpu(), "final_loss": res.loss[-min(10, steps):].mean(0)}
    if res.eval_accuracy is not None:
        out["eval_accuracy"] = res.eval_accuracy.cpu()
    return out
