"""The adding problem and the teacher-student task."""

from __future__ import annotations

import pytest
import torch

from initlab.data.synthetic import (
    ADDING_BASELINE_MSE,
    AddingDataModule,
    TeacherDataModule,
    adding_problem,
)


def test_adding_two_markers_one_per_half_and_target_is_their_sum() -> None:
    seq_len = 11
    x, y = adding_problem(500, seq_len, torch.Generator().manual_seed(0))
    assert x.shape == (500, seq_len, 2) and y.shape == (500, 1)
    assert x.dtype == torch.float32 and y.dtype == torch.float32
    values, markers = x[..., 0], x[..., 1]
    assert set(markers.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(markers.sum(1), torch.full((500,), 2.0))
    half = seq_len // 2
    assert torch.equal(markers[:, :half].sum(1), torch.ones(500))
    assert torch.equal(markers[:, half:].sum(1), torch.ones(500))
    assert torch.allclose(y[:, 0], (values * markers).sum(1))
    assert float(values.min()) >= 0.0 and float(values.max()) <= 1.0


def test_adding_baseline_mse_of_predicting_one() -> None:
    _, y = adding_problem(50_000, 20, torch.Generator().manual_seed(1))
    mse = float(((y - 1.0) ** 2).mean())
    assert ADDING_BASELINE_MSE == pytest.approx(1 / 6)
    assert mse == pytest.approx(ADDING_BASELINE_MSE, abs=0.005)


def test_adding_module_fixed_by_data_seed_not_run_seed() -> None:
    a = AddingDataModule(seq_len=10, n_train=64, n_val=16, n_test=16, data_seed=3, seed=0)
    b = AddingDataModule(seq_len=10, n_train=64, n_val=16, n_test=16, data_seed=3, seed=9)
    c = AddingDataModule(seq_len=10, n_train=64, n_val=16, n_test=16, data_seed=4, seed=0)
    for dm in (a, b, c):
        dm.prepare()
    assert torch.equal(a.splits["train"][0], b.splits["train"][0])
    assert not torch.equal(a.splits["train"][0], c.splits["train"][0])
    # splits have their own streams: the test set does not depend on n_train
    d = AddingDataModule(seq_len=10, n_train=32, n_val=16, n_test=16, data_seed=3)
    d.prepare()
    assert torch.equal(a.splits["test"][1], d.splits["test"][1])
    info = a.describe()
    assert info["task"] == "regression" and info["num_outputs"] == 1
    assert info["input_shape"] == [10, 2] and (info["n_train"], info["n_val"]) == (64, 16)
    # not standardized: the markers stay 0/1
    assert set(a.splits["train"][0][..., 1].unique().tolist()) == {0.0, 1.0}


def test_adding_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="dataset.seq_len"):
        AddingDataModule(seq_len=1)
    with pytest.raises(ValueError, match="dataset.n_train"):
        AddingDataModule(n_train=0)


def small_teacher(**kwargs) -> TeacherDataModule:
    opts = dict(input_dim=8, teacher_depth=3, teacher_width=16, n_train=256, n_val=32, n_test=32)
    opts.update(kwargs)
    dm = TeacherDataModule(**opts)
    dm.prepare()
    return dm


def test_teacher_deterministic_for_fixed_seeds() -> None:
    a, b = small_teacher(seed=0), small_teacher(seed=5)
    for split in ("train", "val", "test"):
        assert torch.equal(a.splits[split][0], b.splits[split][0])
        assert torch.equal(a.splits[split][1], b.splits[split][1])
    other_teacher = small_teacher(teacher_seed=1)
    assert torch.equal(other_teacher.splits["train"][0], a.splits["train"][0])
    assert not torch.allclose(other_teacher.splits["train"][1], a.splits["train"][1])
    other_data = small_teacher(data_seed=1)
    assert not torch.equal(other_data.splits["train"][0], a.splits["train"][0])


def test_teacher_targets_shape_scale_and_labels_are_the_teachers() -> None:
    dm = small_teacher(num_outputs=3)
    x, y = dm.splits["train"]
    assert x.shape == (256, 8) and y.shape == (256, 3) and y.dtype == torch.float32
    assert dm.input_shape == (8,) and dm.num_outputs == 3 and dm.task == "regression"
    assert torch.allclose(y.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.std(0), torch.ones(3), atol=1e-4)
    raw = dm.teacher(x)
    # targets are an affine (per-output) function of the teacher's outputs
    for k in range(3):
        corr = torch.corrcoef(torch.stack([raw[:, k], y[:, k]]))[0, 1]
        assert float(corr) > 0.9999
    noisy = small_teacher(num_outputs=3, noise_std=0.5)
    assert float((noisy.splits["train"][1] - y).std()) == pytest.approx(0.5, rel=0.15)


def test_teacher_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="dataset.teacher_depth"):
        TeacherDataModule(teacher_depth=0)
    with pytest.raises(ValueError, match="dataset.noise_std"):
        TeacherDataModule(noise_std=-1.0)


def test_teacher_weights_and_training_inputs_come_from_separate_streams() -> None:
    # with the default seeds (teacher_seed = data_seed = 0) the training inputs were
    # drawn from the teacher's stream: the first 64 input values were the teacher's first
    # row of weights, rescaled. The two draws must be uncorrelated
    from initlab.data.synthetic import TeacherDataModule

    dm = TeacherDataModule(n_train=256, n_val=8, n_test=8)
    dm.prepare()
    x = dm.splits["train"][0].flatten()
    w = dm.teacher.layers[0][0].flatten()  # 32 x 64 values
    corr = torch.corrcoef(torch.stack([x[: len(w)], w]))[0, 1].abs().item()
    assert corr < 0.1  # independent draws: about 1 / sqrt(2048) = 0.02
