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
    plotting.heatmap(axes[0, 1], z, np.arange(5), np.arange(4), cbar_label=r"$\chi_1$", contour_level=1.0)
    assert matplotlib.rcParams["figure.dpi"] == plotting.DPI


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="context"):
        plotting.use_style("huge")
    with pytest.raises(ValueError, match="ncols"):
        plotting.figure(0, 1)


def test_series_styles_are_distinct_in_colour_line_and_marker():
    styles = plotting.series_styles(7)
    assert len(styles) == 7
    for key in ("color", "linestyle", "marker"):
        values = [repr(s[key]) for s in styles]
        assert len(set(values)) == 7, f"{key} repeats among 7 series: {values}"
    # greyscale: the combination (linestyle, marker) alone tells every series apart
    assert len({(repr(s["linestyle"]), s["marker"]) for s in plotting.series_styles(20)}) == 20
    assert plotting.series_styles(0) == []
    with pytest.raises(ValueError, match="n must be"):
        plotting.series_styles(-1)


def test_figure_allows_two_panels_per_row_and_names_the_argument():
    plotting.use_style()
    fig, axes = plotting.figure(ncols=2, nrows=2)
    assert axes.shape == (2, 2)
    # each panel renders >= 300 px wide at the site's content width
    width_px = fig.get_figwidth() * fig.dpi
    scale = min(1.0, plotting.CONTENT_WIDTH_PX / width_px)
    assert width_px / 2 * scale >= 300
    with pytest.raises(ValueError, match=r"ncols.*got ncols=4.*nrows=2"):
        plotting.figure(ncols=4)
    with pytest.raises(ValueError, match="width"):
        plotting.figure(ncols=2, width=1.0)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_use_style_white_background_mathtext_and_readable_ticks():
    import matplotlib.pyplot as plt
    from matplotlib.font_manager import FontProperties

    plotting.use_style()
    rc = matplotlib.rcParams
    assert matplotlib.colors.to_rgba(rc["figure.facecolor"])[3] == 1.0
    assert matplotlib.colors.to_rgba(rc["savefig.facecolor"]) == (1.0, 1.0, 1.0, 1.0)
    assert rc["savefig.transparent"] is False
    # a tick label's height on screen, for a 2-panel figure in the 1400 px window's column
    fig, _ = plotting.figure(ncols=2)
    width_px = fig.get_figwidth() * rc["savefig.dpi"]
    scale = min(1.0, plotting.CONTENT_WIDTH_PX / width_px)
    tick_pt = FontProperties(size=rc["xtick.labelsize"]).get_size_in_points()
    assert tick_pt / 72 * rc["savefig.dpi"] * scale >= 10
    plt.close("all")


def test_legend_below_collects_unique_labels_outside_the_panels():
    import io

    import matplotlib.pyplot as plt

    plotting.use_style()
    fig, axes = plotting.figure(ncols=2)
    for ax in axes.flat:
        for i, style in enumerate(plotting.series_styles(3)):
            ax.plot([0, 1], [i, i + 1], label=f"$\\sigma_w = {i}$", **style)
        ax.plot([0, 1], [0, 0], label="_hidden")
        ax.legend()
    legend = plotting.legend_below(fig, axes)
    assert [t.get_text() for t in legend.get_texts()] == [f"$\\sigma_w = {i}$" for i in range(3)]
    assert all(ax.get_legend() is None for ax in axes.flat)
    fig.canvas.draw()
    box = legend.get_window_extent()
    for ax in axes.flat:
        assert box.y1 <= ax.get_window_extent().y0 + 1, "the legend must sit below the panels"
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert plotting.legend_below(plt.figure()) is None
    plt.close("all")
