"""Token-sequence tasks: modular addition and copy / reverse / sort."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from initlab.data.sequence import (
    ModAddDataModule,
    SequenceDataModule,
    model_hints,
    modular_addition,
    sequence_task,
)


def test_modadd_every_pair_once_with_its_sum_mod_p() -> None:
    p = 11
    splits = modular_addition(p, 0.4, torch.Generator().manual_seed(0))
    x = torch.cat([splits[s][0] for s in ("train", "val", "test")])
    y = torch.cat([splits[s][1] for s in ("train", "val", "test")])
    assert x.shape == (p * p, 4) and x.dtype == torch.int64
    assert torch.equal(x[:, 1], torch.full((p * p,), p))
    assert torch.equal(x[:, 3], torch.full((p * p,), p + 1))
    assert torch.equal(y, (x[:, 0] + x[:, 2]) % p)
    pairs = {(int(a), int(b)) for a, b in x[:, [0, 2]]}
    assert len(pairs) == p * p
    assert len(splits["train"][0]) == round(0.4 * p * p)
    assert abs(len(splits["val"][0]) - len(splits["test"][0])) <= 1


def test_modadd_module_split_from_data_seed_and_hints() -> None:
    a = ModAddDataModule(p=7, train_frac=0.5, data_seed=1, seed=0)
    b = ModAddDataModule(p=7, train_frac=0.5, data_seed=1, seed=5)
    c = ModAddDataModule(p=7, train_frac=0.5, data_seed=2, seed=0)
    for dm in (a, b, c):
        dm.prepare()
    assert torch.equal(a.splits["train"][0], b.splits["train"][0])
    assert not torch.equal(a.splits["train"][0], c.splits["train"][0])
    assert a.model_hints == {"vocab_size": 9, "answer_len": 1}
    info = a.describe()
    assert info["num_outputs"] == 7 and info["input_shape"] == [4] and info["vocab_size"] == 9
    assert a.splits["train"][0].dtype == torch.int64  # never standardized


@pytest.mark.parametrize("task", ["copy", "reverse", "sort"])
def test_sequence_tasks_labels_and_teacher_forcing(task: str) -> None:
    x, y = sequence_task(task, 50, 5, 6, torch.Generator().manual_seed(3))
    src = x[:, :5]
    assert x.shape == (50, 10) and y.shape == (50, 5)
    assert torch.equal(x[:, 5], torch.full((50,), 6))  # the separator
    expected = {"copy": src, "reverse": src.flip(1), "sort": src.sort(1).values}[task]
    assert torch.equal(y, expected)
    assert torch.equal(x[:, 6:], y[:, :-1])  # position 5 + i predicts y[i]
    assert int(src.max()) < 6


def test_sequence_module_sizes_and_bad_task() -> None:
    dm = SequenceDataModule(task="reverse", length=4, symbols=5, n_train=30, n_val=10, n_test=10)
    dm.prepare()
    assert dm.model_hints == {"vocab_size": 6, "answer_len": 4}
    assert dm.num_outputs == 5 and dm.input_shape == (8,)
    assert [len(dm.splits[s][0]) for s in ("train", "val", "test")] == [30, 10, 10]
    with pytest.raises(ValueError, match="dataset.task='rotate'.*copy, reverse, sort"):
        SequenceDataModule(task="rotate")
    with pytest.raises(ValueError, match="dataset.train_frac"):
        ModAddDataModule(train_frac=1.5)


def test_model_hints_go_only_to_models_that_take_them() -> None:
    dm = ModAddDataModule(p=5)
    tf = OmegaConf.create({"_target_": "initlab.models.transformer.Transformer", "width": 8})
    mlp = OmegaConf.create({"_target_": "initlab.models.mlp.MLP", "width": 8})
    assert model_hints(tf, dm) == {"vocab_size": 7, "answer_len": 1}
    assert model_hints(mlp, dm) == {}
    assert model_hints(tf, object()) == {}
