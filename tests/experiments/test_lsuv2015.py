"""Mishkin & Matas: LSUV trains a deep thin (10-conv-layer tanh) CNN faster than He or
orthogonal init."""

import pandas as pd
import pytest


@pytest.mark.slow
def test_lsuv_converges_fastest(experiment):
    results = experiment("lsuv2015", "seed=0", "trainer.max_epochs=2")
    assert (results["status"] == "completed").all()
    runs = results.set_index("init")
    acc = runs["best_val_acc"]
    assert pd.to_numeric(runs.loc["lsuv", "epochs_to_target"]) == 1  # >= 0.9 after one epoch
    assert acc["lsuv"] > acc["he"] + 0.1
    assert acc["lsuv"] > acc["orthogonal"] + 0.3
    # at init, LSUV's unit-variance layers pass the gradient down to the first layers
    ratio = pd.to_numeric(runs["init_grad_std_ratio"])
    assert ratio["lsuv"] > 5 * ratio["he"] and ratio["lsuv"] > 5 * ratio["orthogonal"]
