"""The cheap figure machinery (issue 17): fixed margins keep every text inside the figure,
plain-text log labels say what mathtext said, and minor log ticks drawn as collections
sit where matplotlib's own minor ticks sit."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.ticker import LogLocator, NullLocator

from initlab.results import plots
from initlab.results.aggregate import collect


def _texts_outside(fig) -> list[str]:
    """What sticks out of the figure after a draw: panels (with their drawn tick labels,
    axis labels and titles), legends, the suptitle."""
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    parts = [(f"axes {i} {ax.get_title()!r}", ax.get_tightbbox(renderer))
             for i, ax in enumerate(fig.axes) if ax.get_visible()]
    parts += [(f"legend {i}", leg.get_window_extent(renderer))
              for i, leg in enumerate(fig.legends)]
    if fig._suptitle is not None:
        parts.append(("suptitle", fig._suptitle.get_window_extent(renderer)))
    return [name for name, ext in parts
            if ext.x0 < box.x0 - 1 or ext.y0 < box.y0 - 1 or ext.x1 > box.x1 + 1
            or ext.y1 > box.y1 + 1]


def test_every_text_of_every_figure_is_inside_it(tmp_path, make_run, monkeypatch) -> None:
    # two activations (two panels with titles), a long init setting label (heatmap rows,
    # epochs-to-target ticks), a diverged run (legend entry), log training loss
    figures = {}
    real = plots.save_png

    def keep(fig, path):
        figures[path.stem] = fig
        return real(fig, path)

    monkeypatch.setattr(plots, "save_png", keep)
    sweep = tmp_path / "s"
    n = 0
    for act in ("relu", "tanh"):
        for init in ("xavier", "orthogonal_with_a_long_name"):
            for seed in (0, 1):
                make_run(sweep, n, init=init, activation=act, seed=seed,
                         val=(0.4, 0.8 + 0.05 * seed, 0.93))
                n += 1
        make_run(sweep, n, init="he", activation=act, seed=0, val=(0.3,), status="diverged")
        n += 1
    written = plots.plot_all(sweep, collect(sweep))
    assert {"val_acc", "train_loss", "heatmap", "epochs_to_target"} <= set(written)
    assert {"val_acc", "train_loss", "heatmap", "epochs_to_target"} <= set(figures)
    for name, fig in figures.items():
        assert fig.get_layout_engine() is None  # laid out once, by _fit
        assert _texts_outside(fig) == [], name
    assert figures["heatmap"].axes[0].get_yticklabels()[1].get_text() in (
        "orthogonal_with_a_long_name", "xavier", "he")


def test_signal_propagation_texts_inside_and_legend_right_of_the_panels() -> None:
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from initlab.diagnostics.plots import signal_propagation_figure

    rows = [{"index": i, "act_std": 10.0 ** -i, "grad_std": 1e-3 * (i + 1), "init": init,
             "activation": act} for i in range(5) for init in ("he", "a_long_init_name")
            for act in ("relu", "tanh")]
    fig = signal_propagation_figure(pd.DataFrame(rows))
    FigureCanvasAgg(fig).draw()
    assert _texts_outside(fig) == []
    right_of_panels = max(ax.get_window_extent().x1 for ax in fig.axes)
    legend = fig.legends[0].get_window_extent(fig.canvas.get_renderer())
    assert legend.x0 >= right_of_panels


@pytest.mark.parametrize(("value", "label"), [
    (1e-3, "10\u207b\u00b3"),
    (1.0, "10\u2070"),
    (1e12, "10\u00b9\u00b2"),
    (2e-1, "2\u00d710\u207b\u00b9"),
    (-1e-3, "\u221210\u207b\u00b3"),
])
def test_plain_log_labels(value, label) -> None:
    assert plots.PlainLogFormatter()(value) == label
    assert plots.PlainLogFormatter(labelOnlyBase=True)(2e-1) == ""  # decades only


def _log_axes(low: float, high: float, light: bool, grid: float | None = None):
    fig = plots._figure((4, 3))
    ax = fig.subplots()
    ax.plot([0, 1, 2], [low, np.sqrt(low * high), high])
    if light:
        plots.plain_log_scale(ax, "y")
        replaced = plots.light_minor_log_ticks(ax, grid_alpha=grid)
    else:
        ax.set_yscale("log")
        replaced = None
    fig.canvas.draw()
    return fig, ax, replaced


def _minor_in_view(ax) -> np.ndarray:
    lo, hi = ax.get_ylim()
    locs = np.asarray(ax.yaxis.get_minorticklocs())
    return locs[(locs >= lo) & (locs <= hi)]


def test_light_minor_ticks_sit_where_matplotlibs_do() -> None:
    _, ref, _ = _log_axes(3e-6, 20.0, light=False)
    fig, ax, replaced = _log_axes(3e-6, 20.0, light=True, grid=0.3)
    assert replaced
    assert isinstance(ax.yaxis.get_minor_locator(), NullLocator)
    np.testing.assert_allclose(ax.get_ylim(), ref.get_ylim(), rtol=1e-12)
    want = _minor_in_view(ref)
    assert want.size > 30  # 2..9 in each of ~6 decades
    marks = [c for c in ax.collections if len(c.get_offsets()) == want.size
             and c.get_sizes().size]
    assert len(marks) == 1
    np.testing.assert_allclose(np.sort(marks[0].get_offsets()[:, 1]), np.sort(want),
                               rtol=1e-12)
    np.testing.assert_allclose(marks[0].get_offsets()[:, 0], 0.0)  # on the left spine
    grids = [c for c in ax.collections if c is not marks[0]]
    assert len(grids) == 1 and len(grids[0].get_segments()) == want.size
    assert grids[0].get_alpha() == pytest.approx(0.3)
    assert ax.yaxis.get_major_formatter()(1e-3) == "10\u207b\u00b3"
    # the major ticks and their labels are matplotlib's own
    assert [t.get_text() for t in ax.get_yticklabels()] != []


def test_labelled_minor_ticks_are_left_to_matplotlib() -> None:
    # less than a decade: matplotlib labels minor ticks (2x10^-1 ...), keep them as ticks
    _, ax, replaced = _log_axes(0.25, 0.8, light=True)
    assert replaced is False
    assert isinstance(ax.yaxis.get_minor_locator(), LogLocator)
    assert not ax.collections
    assert any(t.get_text() for t in ax.yaxis.get_minorticklabels())
