"""Properties of sigprop.train (models from an initialization, and the seeded training loop).

* make_mlp builds Linear/activation layers of the requested widths, whose weights have the
  initialization's variance (within a tolerance from the sample size) and equal the
  sampler's draws from the same generator state; biases are zero unless sigma_b > 0.
* train_classifier learns a separable problem with SGD and with Adam, is deterministic for a
  given seed and different for another, evaluates at the documented steps, records monitors,
  stops cleanly on a non-finite loss, and accepts a sigprop.data.Dataset.
* Bad input raises ValueError.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sigprop import init, train
from sigprop.data import Dataset

CPU = torch.device("cpu")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def blobs(n: int = 400, d: int = 10, seed: int = 0):
    """Two well separated Gaussian classes in d dimensions."""
    g = gen(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, d, generator=g) + 3.0 * (2 * y[:, None] - 1) * torch.ones(d) / math.sqrt(d)
    return x, y


def test_make_mlp_structure():
    model = train.make_mlp([7, 11, 13, 3], "tanh", "lecun_normal", generator=gen(), device=CPU)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "Pointwise", "Linear", "Pointwise", "Linear"]
    assert [tuple(m.weight.shape) for m in model if isinstance(m, nn.Linear)] == [(11, 7), (13, 11), (3, 13)]
    x = torch.randn(5, 7, generator=gen(1))
    h = model[0](x)
    assert torch.allclose(model[1](h), torch.tanh(h))
    assert model(x).shape == (5, 3)


@pytest.mark.parametrize("name", ["standard_uniform", "xavier_uniform", "he_normal", "lecun_normal"])
def test_make_mlp_weights_have_the_initialization_variance(name):
    widths = [300, 400, 200]
    model = train.make_mlp(widths, "relu", name, generator=gen(2), device=CPU)
    for lin, (n_in, n_out) in zip([m for m in model if isinstance(m, nn.Linear)], zip(widths[:-1], widths[1:])):
        w = lin.weight.detach().double().flatten()
        expected = init.weight_variance(name, n_in, n_out)
        # the sample variance of N iid entries has standard error ~ sqrt((m4 - s^4) / N) <= s^2 sqrt(2 / N)
        assert abs(float(w.var()) / expected - 1) < 5 * math.sqrt(2 / w.numel())
        assert abs(float(w.mean())) < 5 * math.sqrt(expected / w.numel())
        assert torch.count_nonzero(lin.bias) == 0


def test_make_mlp_draws_the_samplers_weights_in_layer_order():
    widths = [6, 5, 4]
    model = train.make_mlp(widths, "tanh", "xavier_uniform", gain=1.5, generator=gen(3), device=CPU)
    g = gen(3)
    w1 = init.xavier_uniform((5, 6), generator=g, gain=1.5)
    w2 = init.xavier_uniform((4, 5), generator=g, gain=1.5)
    assert torch.equal(model[0].weight.detach(), w1)
    assert torch.equal(model[2].weight.detach(), w2)


def test_make_mlp_biases_with_sigma_b():
    model = train.make_mlp([100, 2000, 3], "tanh", sigma_b=0.5, generator=gen(4), device=CPU)
    b = model[0].bias.detach().double()
    assert abs(float(b.std()) - 0.5) < 5 * 0.5 / math.sqrt(2 * b.numel())


def test_train_classifier_learns_with_sgd_and_adam():
    x, y = blobs()
    for optimizer, lr in [("sgd", 0.1), ("adam", 1e-3)]:
        model = train.make_mlp([10, 32, 32, 2], "tanh", generator=gen(5), device=CPU)
        hist = train.train_classifier(model, (x, y), test=(x, y), steps=150, lr=lr, batch_size=32,
                                      optimizer=optimizer, generator=gen(6), eval_every=50, device=CPU)
        assert hist["step"] == [0, 50, 100, 150]
        assert len(hist["loss"]) == 150 and len(hist["test_acc"]) == 4
        assert hist["test_acc"][-1] > 0.95, optimizer
        assert hist["test_loss"][-1] < hist["test_loss"][0]
        assert hist["diverged"] is False


def _run(seed_model: int, seed_batches: int):
    x, y = blobs()
    model = train.make_mlp([10, 16, 2], "relu", "he_normal", generator=gen(seed_model), device=CPU)
    return train.train_classifier(model, (x, y), test=(x[:100], y[:100]), steps=40, lr=0.05, batch_size=16,
                                  generator=gen(seed_batches), eval_every=10, device=CPU)


def test_train_classifier_is_deterministic_given_the_seeds():
    a, b, c = _run(0, 1), _run(0, 1), _run(0, 2)
    assert a == b
    assert a["loss"] != c["loss"]


def test_evaluation_steps_include_the_last_step():
    x, y = blobs(100)
    model = train.make_mlp([10, 8, 2], "tanh", generator=gen(), device=CPU)
    hist = train.train_classifier(model, (x, y), steps=25, lr=0.1, batch_size=10, generator=gen(),
                                  eval_every=10, device=CPU)
    assert hist["step"] == [0, 10, 20, 25]
    assert "test_acc" not in hist


def test_monitor_values_are_recorded_at_evaluation_steps():
    x, y = blobs(100)
    model = train.make_mlp([10, 8, 2], "sigmoid", generator=gen(), device=CPU)
    seen = []

    def monitor(m):
        seen.append(torch.is_grad_enabled())
        return {"top_mean": m[:-1](x).mean(), "one": 1.0}

    hist = train.train_classifier(model, (x, y), steps=20, lr=0.1, batch_size=10, generator=gen(),
                                  eval_every=5, monitor=monitor, device=CPU)
    assert len(hist["top_mean"]) == len(hist["step"]) == 5
    assert hist["one"] == [1.0] * 5
    assert not any(seen)  # monitors run without building a graph
    assert 0 < hist["top_mean"][0] < 1


def test_divergence_stops_and_keeps_lengths():
    x, y = blobs(200)
    model = train.make_mlp([10, 64, 64, 2], "relu", "he_normal", gain=30.0, generator=gen(), device=CPU)
    hist = train.train_classifier(model, (x * 1e3, y), test=(x, y), steps=60, lr=10.0, batch_size=20,
                                  generator=gen(), eval_every=20, monitor=lambda m: {"w": m[0].weight.abs().max()},
                                  device=CPU)
    assert hist["diverged"] is True
    assert len(hist["loss"]) == 60 and len(hist["step"]) == len(hist["test_acc"]) == len(hist["w"]) == 4
    first_nan = next(i for i, v in enumerate(hist["loss"]) if math.isnan(v))
    assert all(math.isnan(v) for v in hist["loss"][first_nan:])
    assert math.isnan(hist["test_acc"][-1]) and math.isnan(hist["w"][-1])


def test_accepts_a_dataset_and_batches_cover_an_epoch():
    x, y = blobs(64)
    ds = Dataset(x, y, ["a", "b"], "blobs/test", "synthetic")
    model = train.make_mlp([10, 4, 2], "tanh", generator=gen(), device=CPU)
    hist = train.train_classifier(model, ds, test=ds, steps=8, lr=0.1, batch_size=8, generator=gen(), device=CPU)
    assert len(hist["loss"]) == 8
    ev = train.evaluate(model, ds, batch_size=7, device=CPU)
    assert ev["acc"] == pytest.approx(hist["test_acc"][-1])
    assert ev["loss"] == pytest.approx(hist["test_loss"][-1], rel=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(steps=0),
        dict(steps=2.5),
        dict(lr=0.0),
        dict(lr=float("nan")),
        dict(batch_size=0),
        dict(batch_size=1000),
        dict(eval_every=0),
        dict(optimizer="rmsprop"),
        dict(momentum=-0.1),
        dict(train=(torch.zeros(10, 3), torch.zeros(10))),  # float labels
        dict(train=(torch.zeros(10, 3), torch.zeros(9, dtype=torch.long))),
        dict(test="not data"),
    ],
)
def test_train_classifier_rejects_bad_input(kwargs):
    x, y = blobs(100)
    args = dict(train=(x, y), steps=5, lr=0.1, batch_size=10, generator=gen(), device=CPU)
    args.update(kwargs)
    model = train.make_mlp([10, 4, 2], "tanh", generator=gen(), device=CPU)
    with pytest.raises(ValueError):
        train.train_classifier(model, args.pop("train"), **args)


@pytest.mark.parametrize(
    "args, kwargs",
    [
        (([5],), {}),
        (([5, 0, 2],), {}),
        (([5, 2.5, 2],), {}),
        (([5, 3],), dict(act="nope")),
        (([5, 3],), dict(init="nope")),
        (([5, 3],), dict(gain=-1.0)),
        (([5, 3],), dict(sigma_b=float("inf"))),
    ],
)
def test_make_mlp_rejects_bad_input(args, kwargs):
    kw = dict(act="tanh", generator=gen(), device=CPU)
    kw.update(kwargs)
    with pytest.raises(ValueError):
        train.make_mlp(*args, **kw)


def test_make_mlp_takes_one_initialization_per_layer():
    m = train.make_mlp([6, 5, 3], "tanh", ["orthogonal", "gaussian"], generator=torch.Generator().manual_seed(4),
                       device="cpu")
    g = torch.Generator().manual_seed(4)
    w1 = init.get_init("orthogonal")((5, 6), generator=g, device="cpu")
    w2 = init.get_init("gaussian")((3, 5), generator=g, device="cpu")
    assert torch.equal(m[0].weight, w1) and torch.equal(m[2].weight, w2)
    with pytest.raises(ValueError, match="one initialization per layer"):
        train.make_mlp([6, 5, 3], "tanh", ["orthogonal"], device="cpu")
