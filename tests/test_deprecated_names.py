"""Renamed public names keep working for one release: each warns (DeprecationWarning), gives
what its new name gives, and is listed in CHANGELOG.md (issue 18 item 5: one word per concept)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from sigprop import explore
from sigprop import gaussian_preact as gp
from sigprop.ensemble import SignalNoiseConfig, prepare_inputs

CHANGELOG = Path(__file__).resolve().parents[1] / "CHANGELOG.md"


def test_signal_noise_n_real_is_n_nets():
    with pytest.warns(DeprecationWarning, match=r"SignalNoiseConfig\(n_real=...\) is deprecated.*n_nets"):
        cfg = SignalNoiseConfig("bn_ff", depth=2, width=4, n_real=3)
    assert cfg == SignalNoiseConfig("bn_ff", depth=2, width=4, n_nets=3)
    with pytest.warns(DeprecationWarning, match="SignalNoiseConfig.n_real"):
        assert cfg.n_real == 3
    with pytest.raises(TypeError, match="n_nets= and its deprecated name n_real="):
        SignalNoiseConfig("bn_ff", depth=2, width=4, n_nets=2, n_real=3)
    images = torch.randn(6, 3, 4, 4)
    with pytest.warns(DeprecationWarning, match=r"prepare_inputs\(n_real=...\)"):
        old = prepare_inputs(images, n_real=2, batch=3, generator=torch.Generator().manual_seed(0))
    new = prepare_inputs(images, n_nets=2, batch=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(old, new)


def test_explore_activation_is_act():
    with pytest.warns(DeprecationWarning, match=r"mean_field_point\(activation=...\)"):
        old = explore.mean_field_point(activation="tanh", sigma_w=1.5, sigma_b=0.3)
    new = explore.mean_field_point(act="tanh", sigma_w=1.5, sigma_b=0.3)
    assert old == new and new.act == "tanh"
    with pytest.warns(DeprecationWarning, match="MeanFieldPoint.activation"):
        assert new.activation == "tanh"
    for fn in (explore.map_figure, explore.phase_figure, explore.map_explorer, explore.phase_explorer):
        with pytest.raises(TypeError, match="act= and its deprecated name activation="):
            fn(act="tanh", activation="erf")
    ex = explore.map_explorer("tanh", 1.5, 0.3, widgets=False)
    with pytest.warns(DeprecationWarning, match=r"Explorer.update\(activation=...\)"):
        ex.update(activation="erf")
    assert ex.params["act"] == "erf"


def test_gaussian_preact_c_map_and_chi_1_are_c_map_theta_and_chi_1_theta():
    with pytest.warns(DeprecationWarning, match=r"sigprop.gaussian_preact.c_map is deprecated.*c_map_theta"):
        old = gp.c_map(0.3, 4.0, "odd")
    assert float(old) == float(gp.c_map_theta(0.3, 4.0, "odd"))
    with pytest.warns(DeprecationWarning, match=r"sigprop.gaussian_preact.chi_1 is deprecated.*chi_1_theta"):
        old = gp.chi_1(4.0, "positive")
    assert old == gp.chi_1_theta(4.0, "positive") and math.isfinite(old)
    assert "c_map" not in gp.__all__ and "chi_1" not in gp.__all__  # only the new names are exported


@pytest.mark.parametrize("old, new", [
    ("SignalNoiseConfig.n_real", "n_nets"), ("prepare_inputs(n_real=...)", "n_nets"),
    ("explore", "act"), ("MeanFieldPoint.activation", "act"),
    ("gaussian_preact.c_map", "c_map_theta"), ("gaussian_preact.chi_1", "chi_1_theta"),
])
def test_every_rename_is_in_the_changelog(old, new):
    unreleased = CHANGELOG.read_text(encoding="utf8").split("## Unreleased", 1)[1].split("\n## ", 1)[0]
    assert any(old in line and new in line for line in unreleased.splitlines()), f"{old} -> {new} not in CHANGELOG.md"
