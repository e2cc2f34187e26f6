"""sigprop.diagnosis (its function sigprop.diagnose): per-layer statistics of any network, on a
ResNet and a transformer block."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import sigprop
from sigprop.diagnosis import LayerStats, Report, default_loss, diagnose


# --------------------------------------------------------------------------- networks a reader brings

class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock (torchvision is not a dependency)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, layers=(2, 2), width: int = 8, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        blocks, inplanes = [], width
        for i, n in enumerate(layers):
            planes = width * 2**i
            for j in range(n):
                blocks.append(BasicBlock(inplanes, planes, stride=2 if (i > 0 and j == 0) else 1))
                inplanes = planes
        self.layers = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        for m in self.modules():  # torchvision's initialization
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _resnet():
    torch.manual_seed(0)
    return ResNet()


def _transformer():
    torch.manual_seed(0)
    return nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, dropout=0.0, batch_first=True)


# --------------------------------------------------------------------------- properties

def test_diagnose_is_callable_from_the_package_namespace():
    assert sigprop.diagnose is diagnose
    assert callable(sigprop.diagnose)


def test_resnet_reports_every_conv_norm_and_linear_layer_in_order():
    model = _resnet()
    x = torch.randn(16, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    report = diagnose(model, x)
    hooked = {n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))}
    assert {r.layer for r in report.rows} == hooked
    assert report.rows[0].layer == "conv1" and report.rows[-1].layer == "fc"
    kinds = {r.layer: r.kind for r in report.rows}
    assert kinds["conv1"] == "conv" and kinds["bn1"] == "norm" and kinds["fc"] == "linear"
    assert report.rows[0].shape == (16, 8, 12, 12) and report.inputs == 16
    for r in report.rows:
        assert r.var > 0 and math.isfinite(r.kurtosis) and 0 < r.ks < 1 and 0 < r.ks_critical < 1
        assert -1 <= r.corr <= 1
        assert math.isfinite(r.grad_var) and r.grad_var > 0, f"{r.layer}: no gradient variance"
    # batch norm in training mode: each channel has mean 0 and variance 1 over the batch
    bn = next(r for r in report.rows if r.layer == "bn1")
    assert abs(bn.mean) < 1e-5 and bn.var == pytest.approx(1.0, rel=1e-3)


def test_diagnose_leaves_the_model_as_it_was():
    model = _resnet()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    model.eval()
    diagnose(model, torch.randn(8, 3, 12, 12))
    assert all(p.grad is None for p in model.parameters()), "parameters' .grad must stay untouched"
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules()), "hooks must be removed"
    assert not model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_transformer_block_reports_attention_linear_and_norm_layers():
    model = _transformer()
    x = torch.randn(16, 10, 32, generator=torch.Generator().manual_seed(2))
    report = diagnose(model, x)
    layers = [r.layer for r in report.rows]
    assert layers == ["self_attn", "norm1", "linear1", "linear2", "norm2"]
    rows = {r.layer: r for r in report.rows}
    assert rows["self_attn"].kind == "attention" and rows["self_attn"].shape == (16, 10, 32)
    assert rows["linear1"].shape == (16, 10, 64)
    assert all(math.isfinite(r.grad_var) and r.grad_var > 0 for r in report.rows)
    # the output of norm2 is the block's output: its gradient is the loss's Gaussian vector g
    g = torch.randn((16, 10, 32), generator=torch.Generator().manual_seed(0))
    assert rows["norm2"].grad_var == pytest.approx(float(g.double().var(correction=0)), rel=1e-6)


def test_variance_and_gradient_follow_the_theory_in_a_wide_linear_layer():
    n_in, n_out, batch = 400, 300, 256
    layer = nn.Linear(n_in, n_out, bias=False)
    with torch.no_grad():
        layer.weight.normal_(0, 1 / math.sqrt(n_in), generator=torch.Generator().manual_seed(3))
    x = torch.randn(batch, n_in, generator=torch.Generator().manual_seed(4))
    (row,) = diagnose(layer, x).rows
    # h = W x with unit-variance inputs: Var h = sigma_w^2 = 1 (sampling error ~ sqrt(2/(n_out*batch)) + W's)
    assert row.var == pytest.approx(1.0, abs=0.05)
    # Gaussian inputs through a fixed W give exactly Gaussian pre-activations
    assert row.gaussian and abs(row.kurtosis) < 4 * math.sqrt(24 / row.n)
    # independent inputs are nearly orthogonal in 300 dimensions
    assert abs(row.corr) < 0.02
    # default loss: the gradient at the output is g ~ N(0, 1)
    assert row.grad_var == pytest.approx(1.0, abs=4 * math.sqrt(2 / (n_out * batch)))


def test_narrow_layer_after_relu_is_reported_non_gaussian():
    model = nn.Sequential(nn.ReLU(), nn.Linear(1, 200))  # h = w relu(x): a half-normal with an atom
    report = diagnose(model, torch.randn(500, 1, generator=torch.Generator().manual_seed(5)))
    (row,) = report.rows
    assert not row.gaussian and row.ks > 3 * row.ks_critical
    assert "*" in str(report).splitlines()[2]


def test_identical_inputs_are_fully_correlated():
    x = torch.randn(1, 30).repeat(8, 1)
    (row,) = diagnose(nn.Linear(30, 20), x).rows
    assert row.corr == pytest.approx(1.0, abs=1e-12)


def test_a_custom_loss_gives_its_own_gradients():
    layer = nn.Linear(10, 40)
    x = torch.randn(64, 10)
    report = diagnose(layer, x, loss=lambda out: 0.5 * out.pow(2).sum())
    out = layer(x).detach().double()
    assert report.rows[0].grad_var == pytest.approx(float(out.var(correction=0)), rel=1e-5)
    assert report.loss == "<lambda>"


def test_layers_can_be_chosen_by_type_or_name():
    model = _resnet()
    x = torch.randn(4, 3, 8, 8)
    only_bn = diagnose(model, x, layers=[nn.BatchNorm2d], gradients=False)
    assert {r.kind for r in only_bn.rows} == {"norm"} and all(math.isnan(r.grad_var) for r in only_bn.rows)
    named = diagnose(model, x, layers=["conv1", "fc"])
    assert [r.layer for r in named.rows] == ["conv1", "fc"]


def test_report_renders_as_text_html_dict_and_figure():
    report = diagnose(_transformer(), torch.randn(8, 5, 32))
    text = str(report)
    assert text.splitlines()[0].split()[:3] == ["layer", "kind", "shape"] and "linear1" in text
    html_text = report._repr_html_()
    assert "<table" in html_text and "white-space:nowrap" in html_text and "linear2" in html_text
    d = json.loads(json.dumps(report.to_dict()))
    assert [r["layer"] for r in d["rows"]] == [r.layer for r in report.rows]
    assert set(d["rows"][0]) >= {"var", "kurtosis", "ks", "ks_critical", "corr", "grad_var", "gaussian", "shape"}
    fig = report.plot()
    assert len(fig.axes) == 4
    assert isinstance(report, Report) and isinstance(report.rows[0], LayerStats)


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": 1.5}, "alpha must be"),
    ({"max_values": 2}, "max_values must be"),
    ({"layers": ["no_such_layer"]}, "not a submodule"),
    ({"layers": [3]}, "layers must hold"),
    ({"seed": -1}, "seed must be"),
])
def test_diagnose_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        diagnose(nn.Linear(3, 3), torch.randn(4, 3), **kwargs)


def test_diagnose_rejects_non_modules_and_models_without_layers():
    with pytest.raises(ValueError, match="model must be"):
        diagnose(lambda x: x, torch.randn(4, 3))
    with pytest.raises(ValueError, match="nothing to hook"):
        diagnose(nn.Sequential(nn.ReLU()), torch.randn(4, 3))
    with pytest.raises(ValueError, match="floating-point"):
        default_loss(torch.ones(3, dtype=torch.long))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_diagnose_runs_on_the_models_gpu():
    model = _resnet().cuda()
    report = diagnose(model, torch.randn(16, 3, 12, 12))  # CPU inputs follow the model
    cpu = diagnose(_resnet(), torch.randn(16, 3, 12, 12))
    assert [r.layer for r in report.rows] == [r.layer for r in cpu.rows]
    assert all(math.isfinite(r.var) and math.isfinite(r.grad_var) for r in report.rows)
    t = diagnose(_transformer().cuda(), torch.randn(8, 10, 32, device="cuda"))
    assert len(t.rows) == 5


def _state(model):
    return ({k: v.detach().clone() for k, v in model.state_dict().items()},
            [m.training for m in model.modules()], torch.get_rng_state(),
            [(len(m._forward_hooks), len(m._backward_hooks), len(m._forward_pre_hooks)) for m in model.modules()])


def _assert_same_state(before, after):
    sd0, modes0, rng0, hooks0 = before
    sd1, modes1, rng1, hooks1 = after
    assert sd0.keys() == sd1.keys()
    assert all(torch.equal(sd0[k], sd1[k]) for k in sd0), [k for k in sd0 if not torch.equal(sd0[k], sd1[k])]
    assert modes0 == modes1 and hooks0 == hooks1
    assert torch.equal(rng0, rng1), "the global random state must be restored"


def _bn_dropout_net():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))


def test_diagnose_in_training_mode_keeps_running_stats_modes_and_random_state():
    model = _bn_dropout_net().train()
    model[3].eval()  # a mixed-mode model: every flag must come back as it was
    x = torch.randn(32, 6)
    before = _state(model)
    report = diagnose(model, x)
    _assert_same_state(before, _state(model))
    assert len(report.rows) == 3 and int(model[1].num_batches_tracked) == 0


def test_diagnose_restores_the_model_when_it_raises():
    model = _bn_dropout_net().train()
    x = torch.randn(32, 6)
    before = _state(model)

    def bad_loss(output):
        raise RuntimeError("user's loss fails")

    with pytest.raises(RuntimeError, match="user's loss fails"):
        diagnose(model, x, loss=bad_loss)
    _assert_same_state(before, _state(model))


def test_diagnose_names_the_recurrent_layers_it_cannot_measure():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.gru, self.head = nn.LSTM(4, 8, batch_first=True), nn.GRU(8, 8, batch_first=True), nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.gru(self.lstm(x)[0])[0])

    report = diagnose(Net(), torch.randn(5, 7, 4))
    assert [r.layer for r in report.rows] == ["head"]
    text = "\n".join(report.notes)
    assert "not measured: lstm (LSTM" in text and "not measured: gru (GRU" in text


def test_a_dict_output_asks_for_a_loss_instead_of_naming_nonetype():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x):
            return {"logits": self.lin(x)}

    with pytest.raises(ValueError, match=r"returned a dict with keys \['logits'\].*pass loss="):
        diagnose(Net(), torch.randn(8, 4))
    report = diagnose(Net(), torch.randn(8, 4), loss=lambda out: out["logits"].sum())
    assert len(report.rows) == 1 and report.rows[0].grad_var == pytest.approx(0.0)


@pytest.mark.parametrize("make, x", [
    (lambda: nn.Sequential(nn.Linear(20, 5)), torch.randn(20)),
    (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(0), nn.Linear(4 * 6 * 6, 2)), torch.randn(3, 8, 8)),
])
def test_an_unbatched_input_is_refused(make, x):
    model = make()
    before = _state(model)
    with pytest.raises(ValueError, match="unbatched"):
        diagnose(model, x)
    _assert_same_state(before, _state(model))
