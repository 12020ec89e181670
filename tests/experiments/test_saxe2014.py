"""Saxe et al. (2014): deep linear nets from orthogonal init learn in a time that does not
grow with depth; from scaled Gaussian init (lecun: std 1/sqrt(fan_in)) it grows."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "plot_experiment.py"


def plot_module():
    spec = importlib.util.spec_from_file_location("plot_experiment", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_orthogonal_learning_time_is_flat_in_depth_gaussian_grows(experiment, tmp_path):
    results = experiment("saxe2014", "seed=0", "model.depth=1,10,50", "trainer.max_epochs=15")
    table = plot_module().best_epochs_to_target(results, "cfg.model.depth").set_index(
        ["init", "cfg.model.depth"])["epochs"]
    worst = 16.0  # "not reached within 15 epochs"
    ortho = table.loc["orthogonal"].fillna(worst)
    gauss = table.loc["lecun"].fillna(worst)
    # orthogonal: every depth learns, and depth 50 is no slower than depth 1
    assert ortho.max() < worst
    assert ortho.loc[50] <= ortho.loc[1]
    # scaled Gaussian: depth 50 is much slower than depth 1 (or never gets there)
    assert gauss.loc[50] >= gauss.loc[1] + 4
    assert gauss.loc[50] >= ortho.loc[50] + 4
    # the script draws the figure from the sweep folder
    sweep = next(tmp_path.glob("multirun/*/"))
    out = tmp_path / "saxe.png"
    assert plot_module().main([str(sweep), "-o", str(out)]) == 0
    assert out.stat().st_size > 0
    assert np.isfinite(ortho.loc[[1, 10, 50]]).all()
