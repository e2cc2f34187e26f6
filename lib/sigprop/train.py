r"""Training small classifiers from a chosen initialization: models and a seeded loop.

Signal propagation explains what a network looks like *before* training; the
chapters check the consequences by training. This module holds the two pieces
they share:

* :func:`make_mlp` -- a ``torch.nn.Sequential`` multilayer perceptron whose
  weights are drawn by a sampler of :mod:`sigprop.init` (``"standard_uniform"``,
  ``"xavier_uniform"``, ``"he_normal"``, ...) from an explicit generator, with an
  activation of :mod:`sigprop.activations`;
* :func:`train_classifier` -- mini-batch training of any ``torch.nn.Module``
  with the cross-entropy loss, SGD or Adam, returning a history of plain Python
  lists (per-step loss, periodic held-out loss and accuracy, and any quantity a
  ``monitor`` callable measures on the model).

Both are deterministic given their generators: mini-batches are drawn from the
``generator`` argument, never from torch's global state, so two runs with equal
seeds on the same device give equal histories.

Example
-------
>>> import torch
>>> from sigprop import train
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(512, 20, generator=g); y = (x[:, 0] > 0).long()
>>> model = train.make_mlp([20, 64, 64, 2], "tanh", "xavier_uniform", generator=g, device="cpu")
>>> hist = train.train_classifier(model, (x, y), test=(x, y), steps=200, lr=0.1, batch_size=32,
...                               generator=g, eval_every=100, device="cpu")
>>> hist["step"], hist["test_acc"][-1] > 0.9
([0, 100, 200], True)

References
----------
* Glorot & Bengio (2010), *Understanding the difficulty of training deep
  feedforward neural networks* (training curves of tanh and sigmoid networks
  under the standard and normalized initializations).
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from . import activations as _activations
from ._checks import check_alloc, check_int, check_nonneg
from . import init as _init
from . import data as _data
from . import runtime

Tensor = torch.Tensor

__all__ = ["Pointwise", "make_mlp", "train_classifier", "evaluate"]


class Pointwise(nn.Module):
    """An activation of :mod:`sigprop.activations` as a ``torch.nn.Module``.

    ``Pointwise("tanh")(x)`` is ``torch.tanh(x)``; autograd differentiates the
    activation's ``fn``, so any registered activation trains.

    Raises
    ------
    ValueError
        If ``act`` is not a registered name or an :class:`~sigprop.activations.Activation`.
    """

    def __init__(self, act):
        super().__init__()
        self.act = _activations.get(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act.fn(x)

    def extra_repr(self) -> str:
        return self.act.name


_check_int, _check_nonneg = check_int, check_nonneg


def make_mlp(
    widths: Sequence[int],
    act,
    init: Union[str, Callable[..., Tensor], Sequence[Union[str, Callable[..., Tensor]]]] = "xavier_uniform",
    *,
    gain: float = 1.0,
    sigma_b: float = 0.0,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> nn.Sequential:
    r"""A multilayer perceptron with weights from an initialization of :mod:`sigprop.init`.

    For ``widths`` :math:`= (n_0, n_1, \dots, n_L)` the model computes

    .. math::

        h^l = W^l x^{l-1} + b^l, \quad x^l = \phi(h^l) \quad (l < L), \qquad
        \text{output} = h^L = W^L x^{L-1} + b^L,

    as ``Linear, Pointwise, Linear, Pointwise, ..., Linear``: :math:`L - 1`
    hidden layers and a linear read-out (the logits). Every weight matrix
    :math:`W^l \in \mathbb R^{n_l \times n_{l-1}}` is drawn by the sampler ``init``
    with ``gain``, in order from the first layer to the last, from ``generator``;
    biases are :math:`\mathcal N(0, \sigma_b^2)` (zero by default, as in Glorot &
    Bengio 2010). The read-out is initialized like the hidden layers, unless ``init`` is a
    sequence with one initialization per layer (e.g. a Gaussian first layer and symmetric
    Weibull weights after it, as :func:`sigprop.gaussian_preact.make_mlp` builds). This is the
    library's one builder of trainable MLPs; :class:`sigprop.ensemble.MLPLayerSampler` draws the
    same layers for ensembles of untrained networks.

    Parameters
    ----------
    widths : sequence of int
        :math:`(n_0, \dots, n_L)`, at least two entries, all >= 1.
    act : str or Activation
        The hidden activation :math:`\phi`.
    init : str or callable, or a sequence of them
        A name of :data:`sigprop.init.INITS` or a sampler with the same signature; or one
        such per layer (``len(widths) - 1`` of them).
    gain : float
        Passed to the sampler (it multiplies every weight).
    sigma_b : float
        Standard deviation of the biases.
    generator : torch.Generator, optional
        Source of the weights (torch's global generator when ``None``).
    device : torch.device or str, optional
        Where the model lives; default :func:`sigprop.runtime.device`.
    dtype : torch.dtype
        Parameter dtype.

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    ValueError
        If ``widths`` has fewer than two entries or one below 1, if ``act`` or
        ``init`` is unknown, or if ``gain`` or ``sigma_b`` is negative or not finite.
    """
    try:
        ws = [int(w) if not isinstance(w, bool) and int(w) == w else -1 for w in widths]
    except (TypeError, ValueError):
        raise ValueError(f"widths must be a sequence of integers >= 1; got {widths!r}") from None
    if len(ws) < 2 or any(w < 1 for w in ws):
        raise ValueError(f"widths must hold at least two integers >= 1 (input and output); got {widths!r}")
    phi = _activations.get(act)
    if isinstance(init, (str, bytes)) or callable(init):
        samplers = [_init.get_init(init)] * (len(ws) - 1)
    else:
        try:
            samplers = [_init.get_init(i) for i in init]
        except TypeError:
            raise ValueError(f"init must be a name, a sampler, or a sequence of them; got {init!r}") from None
        if len(samplers) != len(ws) - 1:
            raise ValueError(f"init must hold one initialization per layer, len(widths) - 1 = {len(ws) - 1}; "
                             f"got {len(samplers)}")
    gain = _check_nonneg(gain, "gain")
    sigma_b = _check_nonneg(sigma_b, "sigma_b")
    dev = device if isinstance(device, torch.device) else runtime.device(device)
    check_alloc(f"make_mlp with widths {ws}", sum(a * b + b for a, b in zip(ws[:-1], ws[1:])), dtype, dev)
    layers: List[nn.Module] = []
    for l, (fan_in, fan_out) in enumerate(zip(ws[:-1], ws[1:])):
        lin = nn.Linear(fan_in, fan_out, device=dev, dtype=dtype)
        with torch.no_grad():
            w = samplers[l]((fan_out, fan_in), generator=generator, device=dev, dtype=dtype, gain=gain)
            lin.weight.copy_(w)
            if sigma_b > 0:
                gen_dev = generator.device if generator is not None else dev
                b = torch.randn(fan_out, generator=generator, device=gen_dev, dtype=dtype).to(dev)
                lin.bias.copy_(sigma_b * b)
            else:
                lin.bias.zero_()
        layers.append(lin)
        if l < len(ws) - 2:
            layers.append(Pointwise(phi))
    return nn.Sequential(*layers)


def _as_pair(data, name: str, device) -> Tuple[Tensor, Tensor]:
    """(inputs, integer labels) on ``device``, from a tuple or a :class:`sigprop.data.Dataset`."""
    x, y = _data.as_labelled(data, name)
    return x.to(device), y.to(device)


@torch.no_grad()
def evaluate(model: nn.Module, data, *, batch_size: int = 2048, device=None) -> Dict[str, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on ``data`` (a pair or a Dataset).

    Raises
    ------
    ValueError
        If ``data`` is malformed or ``batch_size < 1``.
    """
    batch_size = _check_int(batch_size, "batch_size")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    dev = device if isinstance(device, torch.device) else runtime.device(device)
    x, y = _as_pair(data, "data", dev)
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for s in range(0, x.shape[0], batch_size):
        out = model(x[s : s + batch_size])
        loss += float(nn.functional.cross_entropy(out, y[s : s + batch_size], reduction="sum"))
        correct += int((out.argmax(-1) == y[s : s + batch_size]).sum())
    model.train(was_training)
    return {"loss": loss / x.shape[0], "acc": correct / x.shape[0]}


def _optimizer(kind, params, lr: float, momentum: float):
    if callable(kind):
        return kind(params)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"optimizer must be 'sgd', 'adam' or a callable params -> torch.optim.Optimizer; got {kind!r}")


def train_classifier(
    model: nn.Module,
    train,
    *,
    steps: int,
    lr: float,
    batch_size: int = 64,
    test=None,
    optimizer: Union[str, Callable] = "sgd",
    momentum: float = 0.0,
    generator: Optional[torch.Generator] = None,
    eval_every: Optional[int] = None,
    monitor: Optional[Callable[[nn.Module], Dict[str, float]]] = None,
    stop_on_nonfinite: bool = True,
    device=None,
) -> Dict[str, list]:
    r"""Train a classifier with the cross-entropy loss; return its history.

    Each step draws a mini-batch of ``batch_size`` examples without replacement
    within an epoch (a fresh permutation of the training set from ``generator``
    every epoch), computes the mean cross-entropy :math:`-\frac1B\sum_a \log
    p_\theta(y_a \mid x_a)` of the model's logits and takes one optimizer step.
    At step 0 (before any update), every ``eval_every`` steps and after the last
    step the model is evaluated on ``test`` (when given) and ``monitor(model)``
    is recorded.

    This trains *one* ``torch.nn.Module`` of any architecture with any optimizer. To train
    hundreds of small MLPs of one depth together (a grid of :math:`\sigma_w`, as for
    trainability phase diagrams) use :func:`sigprop.trainability.train`, which holds the
    networks as batched tensors and sums their losses: a different job, with its own
    mini-batch draws, not a special case of this loop.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of inputs to logits of shape ``(batch, n_classes)``; trained in place.
    train : pair of tensors or Dataset
        ``(inputs, labels)`` with integer labels, or a :class:`sigprop.data.Dataset`.
    steps : int
        Number of optimizer steps, >= 1.
    lr : float
        Learning rate, > 0.
    batch_size : int
        Examples per step (at most the training-set size).
    test : pair of tensors or Dataset, optional
        Held-out data evaluated at the evaluation steps.
    optimizer : ``"sgd"``, ``"adam"`` or callable
        The optimizer, or a function ``params -> torch.optim.Optimizer``.
    momentum : float
        SGD momentum (``"sgd"`` only).
    generator : torch.Generator, optional
        Source of the mini-batch order (a CPU generator; a fresh unseeded one when ``None``).
    eval_every : int, optional
        Evaluation period in steps; default ``max(1, steps // 10)``.
    monitor : callable, optional
        ``monitor(model) -> dict`` of floats, called (under ``torch.no_grad``) at the
        evaluation steps; each key becomes a list in the history.
    stop_on_nonfinite : bool
        When the loss becomes NaN or infinite, stop and fill the rest of the
        history with NaN (the lists keep their lengths); ``history["diverged"]`` says so.
    device : torch.device or str, optional
        Where to train; default :func:`sigprop.runtime.device`. The model and the
        data are moved there.

    Returns
    -------
    dict
        ``"loss"``: the mini-batch loss of every step (length ``steps``);
        ``"step"``: the evaluation steps; ``"test_loss"``, ``"test_acc"`` (with
        ``test``) and the ``monitor`` keys, one value per evaluation step;
        ``"diverged"``: a bool.

    Raises
    ------
    ValueError
        If ``steps``, ``batch_size`` or ``eval_every`` is not a positive integer,
        ``batch_size`` exceeds the training set, ``lr`` is not positive,
        ``optimizer`` is unknown, or the data are malformed.
    """
    steps = _check_int(steps, "steps")
    batch_size = _check_int(batch_size, "batch_size")
    eval_every = max(1, steps // 10) if eval_every is None else _check_int(eval_every, "eval_every")
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0; got {lr!r}")
    momentum = _check_nonneg(momentum, "momentum")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    dev = device if isinstance(device, torch.device) else runtime.device(device)
    x, y = _as_pair(train, "train", dev)
    n = x.shape[0]
    if batch_size > n:
        raise ValueError(f"batch_size ({batch_size}) exceeds the {n} training examples")
    test_pair = _as_pair(test, "test", dev) if test is not None else None
    if generator is None:
        generator = torch.Generator()
        generator.seed()
    if generator.device.type != "cpu":
        raise ValueError("generator must be a CPU torch.Generator (it orders the mini-batches)")
    model.to(dev)
    model.train()
    opt = _optimizer(optimizer, model.parameters(), float(lr), momentum)

    history: Dict[str, list] = {"loss": [], "step": []}
    if test_pair is not None:
        history["test_loss"], history["test_acc"] = [], []
    diverged = False

    def record(step: int, nan: bool = False) -> None:
        history["step"].append(step)
        if test_pair is not None:
            ev = {"loss": float("nan"), "acc": float("nan")} if nan else evaluate(model, test_pair, device=dev)
            history["test_loss"].append(ev["loss"])
            history["test_acc"].append(ev["acc"])
        if monitor is not None:
            if nan:
                values = {k: float("nan") for k in history if k not in ("loss", "step", "test_loss", "test_acc")}
            else:
                with torch.no_grad():
                    values = {k: float(v) for k, v in monitor(model).items()}
            for k, v in values.items():
                history.setdefault(k, []).append(v)

    record(0)
    order = torch.randperm(n, generator=generator)
    pos = 0
    for step in range(1, steps + 1):
        if diverged:
            history["loss"].append(float("nan"))
        else:
            if pos + batch_size > n:
                order, pos = torch.randperm(n, generator=generator), 0
            idx = order[pos : pos + batch_size].to(dev)
            pos += batch_size
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            value = float(loss.detach())
            if not math.isfinite(value) and stop_on_nonfinite:
                diverged = True
                history["loss"].append(float("nan"))
            else:
                opt.step()
                history["loss"].append(value)
        if step % eval_every == 0 or step == steps:
            record(step, nan=diverged)
    history["diverged"] = diverged
    return history
