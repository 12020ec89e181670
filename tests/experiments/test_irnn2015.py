"""Le et al. (2015): on the adding problem the IRNN (ReLU, identity recurrent weights) learns
the long-range sum before the tanh RNN leaves the baseline (MSE 0.167 of predicting 1).
The LSTM arm is left out here to keep the test short (docs/experiments.md: in the small run
it does not leave the baseline either)."""

import pandas as pd
import pytest

BASELINE = 2.0 / 12.0


@pytest.mark.slow
def test_irnn_beats_the_baseline_before_the_tanh_rnn(experiment):
    results = experiment(
        "irnn2015", "seed=0", "trainer.max_epochs=12",
        "experiment/arm=irnn2015_tanh_rnn,irnn2015_irnn",
    )
    assert (results["status"] == "completed").all()
    runs = results.set_index("cfg.study.arm")
    assert runs.loc["irnn", "cfg.init.recurrent"] == "identity"
    assert runs.loc["irnn", "activation"] == "relu" and runs.loc["tanh_rnn", "activation"] == "tanh"
    loss = runs["best_val_loss"]
    # IRNN: well below the baseline (the target is val MSE 0.1) within 12 epochs
    assert loss["irnn"] < 0.1
    assert pd.notna(runs.loc["irnn", "epochs_to_target"])
    # tanh RNN: still at the baseline after the same number of updates
    assert loss["tanh_rnn"] > 0.9 * BASELINE
    assert pd.isna(runs.loc["tanh_rnn", "epochs_to_target"])
