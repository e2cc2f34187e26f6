"""Properties of sigprop.trainability.

* Networks trained together train exactly as if each were trained alone (the summed
  loss separates), even when one of them diverges.
* Training lowers the loss and fits an easy problem.
* The initialization has the mean-field variances; train_grid returns the documented
  shapes and ranges; runs are deterministic; bad input raises ValueError.
"""
from __future__ import annotations

import math

import pytest
import torch

from sigprop import trainability as tr

CPU = torch.device("cpu")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def blobs(n: int = 256, d: int = 10, seed: int = 0):
    """Two well-separated Gaussian classes."""
    g = gen(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    centre = torch.zeros(2, d, dtype=torch.float64)
    centre[0, 0], centre[1, 0] = -3.0, 3.0
    x = torch.randn(n, d, generator=g, dtype=torch.float64) + centre[y]
    return x, y


def split(params, k):
    """Network k of a batched parameter list, as a fresh one-network list."""
    return [(w[k:k + 1].detach().clone().requires_grad_(True), b[k:k + 1].detach().clone().requires_grad_(True)) for w, b in params]


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_batched_training_equals_training_each_network_alone(act):
    x, y = blobs()
    params = tr.init_parameters(10, 2, 3, 16, [1.2, 2.0], 0.3, generator=gen(1), device=CPU, dtype=torch.float64)
    alone = [split(params, k) for k in range(2)]
    res = tr.train(params, act, (x, y), steps=15, lr=0.05, batch_size=32, eval_data=(x, y), generator=gen(2))
    for k in range(2):
        r = tr.train(alone[k], act, (x, y), steps=15, lr=0.05, batch_size=32, eval_data=(x, y), generator=gen(2))
        torch.testing.assert_close(res.loss[:, k], r.loss[:, 0], rtol=0, atol=1e-12)
        for (w, b), (wk, bk) in zip(params, alone[k]):
            torch.testing.assert_close(w[k], wk[0], rtol=0, atol=1e-12)
            torch.testing.assert_close(b[k], bk[0], rtol=0, atol=1e-12)
        assert res.train_accuracy[k] == r.train_accuracy[0]
        assert res.eval_accuracy[k] == r.eval_accuracy[0]


def test_a_diverged_network_does_not_disturb_the_others():
    x, y = blobs()
    params = tr.init_parameters(10, 2, 2, 8, [1.0, 1.0], 0.1, generator=gen(3), device=CPU, dtype=torch.float64)
    alone = split(params, 0)
    with torch.no_grad():
        params[0][0][1].fill_(float("nan"))  # network 1 is broken from the start
    res = tr.train(params, "tanh", (x, y), steps=10, lr=0.1, batch_size=16, generator=gen(4))
    ref = tr.train(alone, "tanh", (x, y), steps=10, lr=0.1, batch_size=16, generator=gen(4))
    assert bool(torch.isnan(res.loss[:, 1]).all())
    torch.testing.assert_close(res.loss[:, 0], ref.loss[:, 0], rtol=0, atol=1e-12)
    assert float(res.train_accuracy[1]) == 0.0  # non-finite logits never count as correct


def test_training_lowers_the_loss_and_fits_an_easy_problem():
    x, y = blobs(512)
    params = tr.init_parameters(10, 2, 2, 32, [1.0, 1.5, 2.0], 0.1, generator=gen(5), device=CPU)
    res = tr.train(params, "tanh", (x.float(), y), steps=150, lr=0.05, batch_size=32, generator=gen(6))
    first, last = res.loss[:10].mean(0), res.loss[-10:].mean(0)
    assert bool((last < 0.5 * first).all()), (first, last)
    assert bool((res.train_accuracy > 0.95).all()), res.train_accuracy


def test_initialization_has_the_mean_field_variances():
    sw = torch.tensor([0.5, 1.0, 2.0])
    params = tr.init_parameters(400, 10, 2, 300, sw, 0.7, generator=gen(7), device=CPU)
    assert [tuple(w.shape) for w, _ in params] == [(3, 300, 400), (3, 300, 300), (3, 10, 300)]
    w1, b1 = params[0]
    var = w1.detach().double().var(dim=(1, 2)) * 400  # n_in Var W = sigma_w^2
    n = 300 * 400
    assert torch.allclose(var, sw.double() ** 2, rtol=6 * math.sqrt(2 / n))
    assert float(b1.detach().double().var()) == pytest.approx(0.49, rel=6 * math.sqrt(2 / 900))
    assert all(w.requires_grad and b.requires_grad for w, b in params)


def test_train_grid_shapes_ranges_and_determinism():
    x, y = blobs(200)
    kw = dict(sigma_b=0.2, width=8, steps=5, lr=0.05, batch_size=16, n_seeds=2, device=CPU)
    a = tr.train_grid((x, y), "tanh", [1.0, 1.5, 2.5], [1, 3], eval_data=(x, y), generator=gen(8), **kw)
    b = tr.train_grid((x, y), "tanh", [1.0, 1.5, 2.5], [1, 3], eval_data=(x, y), generator=gen(8), **kw)
    assert a["accuracy"].shape == a["eval_accuracy"].shape == a["final_loss"].shape == (2, 3)
    assert a["accuracy_seeds"].shape == (2, 3, 2)
    assert a["sigma_w"].tolist() == [1.0, 1.5, 2.5] and a["depth"].tolist() == [1.0, 3.0]
    assert bool(((a["accuracy"] >= 0) & (a["accuracy"] <= 1)).all())
    torch.testing.assert_close(a["accuracy"], a["accuracy_seeds"].mean(-1))
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_forward_gives_logits_of_every_network():
    params = tr.init_parameters(5, 3, 2, 4, [1.0, 2.0], 0.0, generator=gen(9), device=CPU, dtype=torch.float64)
    x = torch.randn(7, 5, generator=gen(10), dtype=torch.float64)
    z = tr.forward(params, x, "tanh")
    assert z.shape == (2, 7, 3)
    (w1, b1), (w2, b2), (w3, b3) = [(w[1], b[1]) for w, b in params]
    ref = torch.tanh(torch.tanh(x @ w1.T + b1) @ w2.T + b2) @ w3.T + b3
    torch.testing.assert_close(z[1], ref, rtol=0, atol=1e-12)


def test_bad_input_raises_value_error_naming_the_argument():
    x, y = blobs(40)
    params = tr.init_parameters(10, 2, 1, 4, 1.0, 0.1, generator=gen(0), device=CPU, dtype=torch.float64)
    cases = [
        (lambda: tr.init_parameters(10, 2, 0, 4, 1.0, 0.1), "depth"),
        (lambda: tr.init_parameters(10, 2, 1, 4, -1.0, 0.1), "sigma_w"),
        (lambda: tr.init_parameters(10, 2, 1, 4, [1.0, 2.0], 0.1, n_nets=3), "sigma_w"),
        (lambda: tr.init_parameters(10, 2, 1, 4, 1.0, float("nan")), "sigma_b"),
        (lambda: tr.train(params, "tanh", (x, y), steps=2, lr=0.0, batch_size=4), "lr"),
        (lambda: tr.train(params, "tanh", (x, y), steps=0, lr=0.1, batch_size=4), "steps"),
        (lambda: tr.train(params, "tanh", (x, y), steps=2, lr=0.1, batch_size=41), "batch_size"),
        (lambda: tr.train(params, "tanh", (x, y[:-1]), steps=2, lr=0.1, batch_size=4), "data"),
        (lambda: tr.train(params, "tanh", (x, y + 5), steps=2, lr=0.1, batch_size=4), "labels"),
        (lambda: tr.train(params, "tanh", (x, y.double()), steps=2, lr=0.1, batch_size=4), "data"),
        (lambda: tr.train([], "tanh", (x, y), steps=2, lr=0.1, batch_size=4), "params"),
        (lambda: tr.forward(params, torch.zeros(3, 11), "tanh"), "x must have shape"),
        (lambda: tr.train_grid((x, y), "tanh", [1.0], [], sigma_b=0.1, width=4, steps=1, lr=0.1, batch_size=4), "depths"),
        (lambda: tr.train_grid((x, y), "tanh", [], [1], sigma_b=0.1, width=4, steps=1, lr=0.1, batch_size=4), "sigma_ws"),
        (lambda: tr.train_grid((x, y), "tanh", [1.0], [2.5], sigma_b=0.1, width=4, steps=1, lr=0.1, batch_size=4), "depths"),
        (lambda: tr.train_grid((x, y), "tanh", [1.0], [1], sigma_b=0.1, width=4, steps=1, lr=0.1, batch_size=4, n_seeds=0), "n_seeds"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
    with pytest.raises(ValueError, match="act"):
        tr.forward(params, torch.zeros(3, 10), "nope")
