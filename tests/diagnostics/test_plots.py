"""The figures are valid PNG files that matplotlib can read back."""

from __future__ import annotations

import matplotlib.image as mpimg
import pandas as pd
import torch
from torch import nn

from initlab.diagnostics import probe
from initlab.diagnostics.plots import (
    plot_activation_histograms,
    plot_signal_propagation,
    signal_propagation_figure,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = mpimg.imread(path)
    assert image.shape[0] > 0 and image.shape[1] > 0


def mlp(act: type[nn.Module], gain: float, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for _ in range(4):
        lin = nn.Linear(32, 32)
        nn.init.normal_(lin.weight, std=gain / 32**0.5)
        layers += [lin, act()]
    return nn.Sequential(*layers, nn.Linear(32, 3))


def test_signal_propagation_plot(tmp_path):
    x = torch.randn(64, 32)
    frames = []
    for act_name, act in (("relu", nn.ReLU), ("tanh", nn.Tanh)):
        for init, gain in (("small", 0.5), ("he", 2**0.5)):
            for seed in (0, 1):
                df = probe(mlp(act, gain, seed), x)
                frames.append(df.assign(init=init, activation=act_name, seed=seed))
    records = pd.concat(frames, ignore_index=True)
    out = plot_signal_propagation(records, tmp_path / "plots" / "signal.png")
    assert out == tmp_path / "plots" / "signal.png"
    assert_png(out)
    # Without init / activation columns: one panel column, one line.
    assert_png(plot_signal_propagation(frames[0].drop(columns="activation"), tmp_path / "one.png"))


def test_activation_histograms(tmp_path):
    model = mlp(nn.Tanh, 1.0, 0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out = plot_activation_histograms(model, torch.randn(64, 32), tmp_path / "hist.png")
    assert_png(out)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_signal_propagation_takes_the_sweeps_colours_and_order():
    rows = [{"init": init, "activation": "relu", "index": i, "act_std": 1.0 + i,
             "grad_std": 0.5} for init in ("xavier", "he", "lecun") for i in range(3)]
    fig = signal_propagation_figure(pd.DataFrame(rows), colors={"he": "#ff0000",
                                                                 "xavier": "#00ff00"},
                                    hue_order=["he", "xavier"])
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["he", "xavier", "lecun"]  # given, then rest
    assert [ln.get_color() for ln in lines[:2]] == ["#ff0000", "#00ff00"]
