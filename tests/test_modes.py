"""set_training / restore_training do what nn.Module.train does."""

from __future__ import annotations

from torch import nn

from initlab.modes import restore_training, set_training


class CountsTrainCalls(nn.Module):
    """A module that overrides ``train`` (it must still be called)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Dropout(0.5)
        self.calls = 0

    def train(self, mode: bool = True) -> CountsTrainCalls:
        self.calls += 1
        return super().train(mode)


def _model() -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), CountsTrainCalls(), nn.ReLU())


def test_same_modes_as_module_train() -> None:
    for mode in (False, True):
        ours, theirs = _model(), _model()
        set_training(list(ours.modules()), mode)
        theirs.train(mode)
        assert [m.training for m in ours.modules()] == [m.training for m in theirs.modules()]
        assert all(m.training is mode for m in ours.modules())
        assert ours[2].calls == 1  # its own train() ran


def test_restore_mixed_modes() -> None:
    model = _model()
    model[1].eval()  # a frozen BatchNorm inside a training model
    modules = list(model.modules())
    saved = [m.training for m in modules]
    set_training(modules, False)
    assert not any(m.training for m in modules)
    restore_training(modules, saved)
    assert [m.training for m in modules] == saved and model[1].training is False
