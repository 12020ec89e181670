"""Zhang et al. (2019): without normalization a deep ResNet diverges under He init but
trains under Fixup, as well as the BatchNorm ResNet."""

import pytest


@pytest.mark.slow
def test_fixup_trains_without_normalization_where_he_diverges(experiment):
    results = experiment(
        "fixup2019", "seed=0", "trainer.max_epochs=3",
        "experiment/arm=fixup2019_he,fixup2019_fixup,fixup2019_bn_he",
    )
    runs = results.set_index("cfg.study.arm")
    assert runs.loc["he", "status"] == "diverged"
    assert runs.loc["fixup", "status"] == "completed"
    assert runs.loc["bn_he", "status"] == "completed"
    assert runs.loc["fixup", "cfg.model.norm"] == "none"
    assert runs.loc["fixup", "best_val_acc"] > 0.85
    # as good as the normalized network (within a few points)
    assert runs.loc["fixup", "best_val_acc"] > runs.loc["bn_he", "best_val_acc"] - 0.05
