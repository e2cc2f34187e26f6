"""Explorers: the right controls, fast redraws, a static image wherever no widget can run."""
from __future__ import annotations

import base64
import math
import time

import nbformat
import pytest
import torch
from matplotlib.figure import Figure
from nbclient import NotebookClient

from sigprop import explore
from sigprop import meanfield as mf

ipywidgets = pytest.importorskip("ipywidgets")


def _cpu_seconds(fn):
    start = time.process_time()
    result = fn()
    return result, time.process_time() - start


def test_mean_field_point_agrees_with_meanfield():
    sw, sb = torch.tensor([1.5], dtype=torch.float64), torch.tensor([0.3], dtype=torch.float64)
    p = explore.mean_field_point("tanh", 1.5, 0.3)
    assert p.phase == "chaotic"
    assert p.q_star == pytest.approx(mf.q_star("tanh", 1.5, 0.3), rel=1e-10)
    assert p.chi_1 == pytest.approx(mf.chi_1("tanh", 1.5, 0.3), rel=1e-10)
    assert p.c_star == pytest.approx(float(mf.c_star("tanh", sw, sb)[0]), rel=1e-9)
    assert p.xi_c == pytest.approx(float(mf.xi_c("tanh", sw, sb)[0]), rel=1e-8)


def test_mean_field_point_names_the_phases():
    assert explore.mean_field_point("tanh", 0.8, 0.3).phase == "ordered"
    eoc = float(mf.eoc_sigma_w("tanh", 0.3))
    edge = explore.mean_field_point("tanh", eoc, 0.3)
    assert edge.phase == "edge of chaos" and edge.xi_c > 1e3
    relu = explore.mean_field_point("relu", 2.0, 0.1)  # sigma_w^2 > 2: the length grows without bound
    assert relu.phase == "divergent" and math.isinf(relu.q_star) and math.isnan(relu.chi_1)


@pytest.mark.parametrize("bad", [{"sigma_w": -1.0}, {"sigma_b": float("nan")}, {"act": "nope"}])
def test_explorers_reject_bad_parameters(bad):
    args = {"act": "tanh", "sigma_w": 1.5, "sigma_b": 0.3, **bad}
    with pytest.raises(ValueError):
        explore.map_figure(**args)
    with pytest.raises(ValueError):
        explore.phase_explorer(**args, widgets=False)


def test_phase_figure_rejects_bad_grids():
    with pytest.raises(ValueError, match="sigma_w_range"):
        explore.phase_figure(sigma_w_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="resolution"):
        explore.phase_figure(resolution=3)


def test_figures_are_built_headless_without_pyplot():
    for fig in (explore.map_figure("tanh", 1.5, 0.3), explore.phase_figure("tanh", 1.5, 0.3, resolution=40),
                explore.map_figure("relu", 2.0, 0.1), explore.phase_figure("relu", 1.2, 0.0, resolution=40)):
        assert isinstance(fig, Figure) and len(fig.axes) >= 2
        png = explore._png(fig)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_map_explorer_has_the_expected_controls():
    ex = explore.map_explorer("tanh", 1.5, 0.3)
    assert isinstance(ex.widget, ipywidgets.interactive)
    kinds = {name: type(w).__name__ for name, w in ex.controls.items()}
    assert kinds == {"act": "Dropdown", "sigma_w": "FloatSlider", "sigma_b": "FloatSlider"}
    assert set(explore.ACTIVATIONS) <= set(ex.controls["act"].options)
    assert ex.controls["sigma_w"].value == 1.5 and ex.controls["sigma_b"].value == 0.3
    # sliders redraw when released, not on every pixel of a drag
    assert not ex.controls["sigma_w"].continuous_update
    assert all(w in ex.widget.children for w in ex.controls.values())


def test_moving_a_slider_redraws_the_figure():
    ex = explore.phase_explorer("tanh", 1.5, 0.3)
    assert set(ex.controls) == {"act", "sigma_w", "sigma_b"}
    before, png = ex.figure, ex.image.value
    ex.controls["sigma_w"].value = 2.2
    assert ex.params["sigma_w"] == 2.2 and ex.figure is not before
    assert ex.image.value != png and ex.image.value[:4] == b"\x89PNG"
    assert "chaotic" in ex.figure.axes[0].get_title()
    m = explore.map_explorer("tanh", 1.5, 0.3)
    m.controls["sigma_b"].value = 0.05
    assert m.params["sigma_b"] == 0.05


@pytest.mark.timing
def test_moving_a_slider_redraws_the_figure_within_a_second_of_cpu():
    ex = explore.phase_explorer("tanh", 1.5, 0.3)
    _, cpu = _cpu_seconds(lambda: setattr(ex.controls["sigma_w"], "value", 2.2))
    assert cpu < 1.5, f"a redraw of the phase explorer took {cpu:.2f} s of CPU"
    m = explore.map_explorer("tanh", 1.5, 0.3)
    _, cpu = _cpu_seconds(lambda: setattr(m.controls["sigma_b"], "value", 0.05))
    assert cpu < 1.5, f"a redraw of the map explorer took {cpu:.2f} s of CPU"


def test_explorer_output_carries_a_static_image_and_the_widget_view():
    ex = explore.map_explorer("erf", 1.2, 0.2)
    bundle = ex._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == ex.view.model_id
    assert ex.view.children == (ex.widget, ex.image)
    assert "run in Jupyter" in bundle["text/plain"]
    plain = explore.map_explorer("erf", 1.2, 0.2, widgets=False)
    assert plain.widget is None and set(plain._repr_mimebundle_()) == {"image/png", "text/plain"}
    with pytest.raises(ValueError, match="params must be"):
        plain.update(depth=3)


def test_explorers_run_headless_under_nbclient_and_show_static_images(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from sigprop import explore"),
        nbformat.v4.new_code_cell("explore.map_explorer()"),
        nbformat.v4.new_code_cell("explore.phase_explorer()"),
    ]
    # a generous timeout that only catches a hang; the speed budget is a benchmark's business
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in nb.cells[1:]:
        (output,) = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert "image/png" in output.data and "application/vnd.jupyter.widget-view+json" in output.data


@pytest.mark.parametrize("act", ["tanh", "erf", "relu"])
def test_phase_heatmap_agrees_with_meanfield_phase_diagram(act):
    import numpy as np

    sw_hi = 1.4 if act == "relu" else 4.0  # relu's length diverges beyond sqrt(2); phase_diagram is slow there
    sw, sb, chi = explore._chi_grid(act, (0.1, sw_hi), (0.0, 1.5), 10)
    ref = mf.phase_diagram(act, sw, sb)
    ok = np.isfinite(ref.chi_1.numpy()) & (ref.q_star.numpy() > 1e-3)
    assert np.isfinite(chi[ok]).all()
    np.testing.assert_allclose(chi[ok], ref.chi_1.numpy()[ok], rtol=1e-3)


def test_phase_heatmap_marks_divergent_lengths():
    import numpy as np

    sw, sb, chi = explore._chi_grid("relu", (1.0, 2.0), (0.0, 0.5), 11)
    assert np.isnan(chi[sw > 1.45]).all() and np.isfinite(chi[sw < 1.4]).all()
