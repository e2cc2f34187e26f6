"""The book's figure style and helpers."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sigprop import plotting  # noqa: E402


def test_style_and_helpers_draw_labelled_artists():
    plotting.use_style()
    fig, axes = plotting.figure(2, 1)
    ax = axes[0, 0]
    plotting.theory_vs_simulation(ax, [0, 1], [0, 1], [0.5], [0.5], yerr=[0.1], label="q")
    plotting.identity_line(ax, 0, 1)
    plotting.mark_fixed_points(ax, [0.3, 0.7], stable=[True, False])
    labels = [t for t in ax.get_legend_handles_labels()[1]]
    assert "q theory" in labels and "q simulation" in labels and "identity" in labels
    z = np.outer(np.linspace(0.5, 2, 5), np.ones(4))
    plotting.heatmap(axes[0, 1], z, np.arange(5), np.arange(4), cbar_label="chi_1", contour_level=1.0)
    assert matplotlib.rcParams["figure.dpi"] == 110


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="context"):
        plotting.use_style("huge")
    with pytest.raises(ValueError, match="ncols"):
        plotting.figure(0, 1)
