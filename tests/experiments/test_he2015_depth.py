"""He et al. (2015): a 30-layer plain ReLU net stalls from Xavier init, converges from He."""

import pandas as pd
import pytest


@pytest.mark.slow
def test_he_converges_where_xavier_stalls(experiment):
    results = experiment("he2015_depth", "seed=0,1", "trainer.max_epochs=12")
    assert (results["status"] == "completed").all()
    acc = results.groupby("init")["best_val_acc"].agg(["min", "max"])
    # Xavier: the signal shrinks ~2x in variance per layer -> chance level (10 classes)
    assert acc.loc["xavier", "max"] < 0.2
    # He: every seed learns the task
    assert acc.loc["he", "min"] > 0.75
    assert acc.loc["he", "min"] - acc.loc["xavier", "max"] > 0.5
    # the probe at init shows why: the last hidden layer's activations vanish under Xavier
    std = pd.to_numeric(results.set_index("init")["init_act_std_last"], errors="coerce")
    assert std.loc["xavier"].max() < 1e-2 * std.loc["he"].min()
