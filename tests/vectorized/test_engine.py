"""The vectorized training itself: a member IS the ordinary run, to float tolerance."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from initlab.initializers import initialize
from initlab.models.mlp import MLP
from initlab.pipeline import run
from initlab.vectorized.engine import StackedModel, VectorizedTrainer
from initlab.vectorized.run import Member, train_members

NO_LOG = ["logger=none", "diagnostics=off"]
RTOL = 1e-4


def assert_same_run(ordinary: dict, vec: dict, o_dir: Path, v_dir: Path) -> None:
    assert vec["status"] == ordinary["status"] == "completed", vec.get("traceback")
    ho, hv = pd.read_csv(o_dir / "history.csv"), pd.read_csv(v_dir / "history.csv")
    assert list(hv.columns) == list(ho.columns)  # same columns, same order
    assert list(hv["epoch"]) == list(ho["epoch"]) == [1, 2]
    assert list(hv["step"]) == list(ho["step"])
    for col in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        np.testing.assert_allclose(hv[col], ho[col], rtol=RTOL, atol=1e-6, err_msg=col)
    for key in ("final_train_loss", "final_val_acc", "best_val_acc", "best_val_loss",
                "test_loss", "test_acc"):
        np.testing.assert_allclose(vec[key], ordinary[key], rtol=RTOL, atol=1e-6, err_msg=key)
    for key in ("n_params", "steps", "epochs_run", "best_epoch", "init", "seed", "config",
                "run_name", "task", "data"):
        assert vec[key] == ordinary[key], key
    # the init probe saw the same initialized network
    for key in ("init_diagnostics", "init_act_histograms", "init_act_std_last"):
        # exact: the ordinary InitProbe on the member's own (unstacked) model, same weights,
        # same batch: the same computation, not the stacked kernels
        assert vec.get(key) == ordinary.get(key), key
    # same summary shape: every key of the ordinary run, plus the vectorized facts
    assert set(ordinary) <= set(vec)
    assert vec["vectorized_k"] >= 1 and "job_wall_time_s" in vec and "wall_time_basis" in vec


@pytest.mark.parametrize("extra,members", [
    # the default MLP with Adam and the default diagnostics (init probe per member);
    # two inits, two seeds (each its own batch order)
    (["optimizer=adam", "diagnostics=default", "diagnostics.callback=null"],
     [("xavier", 0), ("he", 1)]),
    # a CNN with BatchNorm (running stats per member), SGD + momentum, per-member
    # gradient clipping. (Not Adam here: the conv biases in front of BatchNorm get
    # gradients that are pure float noise, which Adam normalizes to full-size steps, so
    # any change of kernels - vectorized, GPU, another BLAS - moves them differently.)
    (["model=cnn", "model.channels=[4,8]", "model.norm=batch",
      "trainer.gradient_clip_val=0.5", "diagnostics=off"], [("he", 2)]),
    # a data-dependent init: LSUV scales layers on the member's own data batch
    (["diagnostics=off"], [("lsuv", 3)]),
    # the ResNet (BatchNorm, option-A shortcuts, Fixup scalars), SGD + momentum
    (["model=resnet", "model.width=4", "diagnostics=default", "diagnostics.callback=null"],
     [("he", 0), ("orthogonal", 1)]),
    # the normalization-free ResNet of Fixup (norm=none, init=fixup)
    (["model=resnet", "model.width=4", "model.norm=none", "diagnostics=off"],
     [("fixup", 2)]),
    # one lr, a per-step schedule that also cycles Adam's betas (one-cycle): the
    # configured torch optimizer, its lr and betas set from each step's schedule
    pytest.param(["optimizer=adam", "lr_scheduler=onecycle", "diagnostics=off"],
                 [("xavier", 0), ("he", 1)], marks=pytest.mark.slow),
])
def test_member_matches_an_ordinary_run(compose_cfg, tmp_path: Path, extra, members) -> None:
    tiny = not any(e.startswith("model=") for e in extra)  # the tiny settings are MLP keys
    cfgs = [compose_cfg("logger=none", *extra, "trainer.max_epochs=2", f"init={i}", f"seed={s}",
                        tiny=tiny) for i, s in members]
    vec = train_members([Member(c, tmp_path / f"v{j}") for j, c in enumerate(cfgs)])
    for j, cfg in enumerate(cfgs):
        ordinary = run(cfg, tmp_path / f"o{j}", progress_bar=False)
        assert_same_run(ordinary, vec[j], tmp_path / f"o{j}", tmp_path / f"v{j}")
        stored = json.loads((tmp_path / f"v{j}" / "summary.json").read_text())
        assert stored["status"] == "completed" and stored["vectorized_k"] == len(members)


@pytest.mark.slow
@pytest.mark.parametrize("extra", [
    # Adam, coupled weight decay (scaled by each member's lr through the gradient)
    ["optimizer=adam", "optimizer.weight_decay=0.01"],
    # SGD + momentum + weight decay (in the momentum, times the member's lr)
    ["optimizer=sgd", "optimizer.weight_decay=0.001"],
    # AdamW: the decoupled decay p (1 - lr wd) with each member's lr
    ["optimizer=adamw", "optimizer.weight_decay=0.1"],
    # schedules per member: per epoch (cosine) and per step (warm-up + cosine, whose
    # total_steps is the run's steps)
    ["optimizer=sgd", "lr_scheduler=cosine"],
    ["optimizer=adamw", "lr_scheduler=warmup_cosine", "lr_scheduler.scheduler.warmup_steps=5"],
    # MLPs with norm layers (vmap over functional_call; BatchNorm's running statistics
    # per member) with their own lrs
    ["optimizer=sgd", "model.norm=batch"],
    ["optimizer=adam", "model.norm=layer"],
])
def test_members_with_their_own_lr_match_their_ordinary_runs(compose_cfg, tmp_path: Path,
                                                             extra) -> None:
    members = [("xavier", 0, 0.002), ("he", 1, 0.02), ("xavier", 1, 0.1)]
    if extra[0] == "optimizer=sgd":
        # larger rates for SGD, short of the chaotic range (at lr 0.5 the two engines'
        # float rounding grew to 0.4 % in the second epoch's val loss on an AMD EPYC)
        members = [(i, s, lr * 2) for i, s, lr in members]
    cfgs = [compose_cfg("logger=none", "diagnostics=off", *extra, "trainer.max_epochs=2",
                        f"init={i}", f"seed={s}", f"optimizer.lr={lr}")
            for i, s, lr in members]
    vec = train_members([Member(c, tmp_path / f"v{j}") for j, c in enumerate(cfgs)])
    for j, cfg in enumerate(cfgs):
        ordinary = run(cfg, tmp_path / f"o{j}", progress_bar=False)
        assert_same_run(ordinary, vec[j], tmp_path / f"o{j}", tmp_path / f"v{j}")
        assert vec[j]["config"]["optimizer.lr"] == members[j][2]
    lrs = [pd.read_csv(tmp_path / f"v{j}" / "history.csv")["lr"].tolist()
           for j in range(len(members))]
    if "lr_scheduler" in " ".join(extra):  # the lr column follows each member's schedule
        assert all(row[1] != row[0] for row in lrs)
        np.testing.assert_allclose([row[0] / members[j][2] for j, row in enumerate(lrs)],
                                   lrs[0][0] / members[0][2])
    else:
        assert [row[0] for row in lrs] == [lr for _, _, lr in members]


def test_regression_member_matches_an_ordinary_run(compose_cfg, tmp_path: Path) -> None:
    # teacher-student regression: the MLP's written-out MSE gradient (tanh derivative)
    cfgs = [compose_cfg(*NO_LOG, "dataset=teacher", "dataset.n_train=640", "activation=tanh",
                        "trainer.max_epochs=2", f"init={i}", f"seed={s}")
            for i, s in (("xavier", 0), ("orthogonal", 1))]
    vec = train_members([Member(c, tmp_path / f"v{j}") for j, c in enumerate(cfgs)])
    for j, cfg in enumerate(cfgs):
        ordinary = run(cfg, tmp_path / f"o{j}", progress_bar=False)
        assert vec[j]["status"] == ordinary["status"] == "completed", vec[j].get("traceback")
        assert vec[j]["task"] == "regression"
        ho = pd.read_csv(tmp_path / f"o{j}" / "history.csv")
        hv = pd.read_csv(tmp_path / f"v{j}" / "history.csv")
        assert list(hv.columns) == list(ho.columns) and list(hv["step"]) == list(ho["step"])
        for col in ("train_loss", "val_loss"):
            np.testing.assert_allclose(hv[col], ho[col], rtol=RTOL, atol=1e-6, err_msg=col)
        for key in ("final_val_loss", "best_val_loss", "test_loss"):
            np.testing.assert_allclose(vec[j][key], ordinary[key], rtol=RTOL, err_msg=key)


def test_exploding_member_is_diverged_and_the_other_completes(compose_cfg, tmp_path) -> None:
    cfgs = [compose_cfg(*NO_LOG, "init=random", f"init.std={std}", "trainer.max_epochs=2")
            for std in (1e3, 0.1)]
    boom, calm = train_members([Member(c, tmp_path / f"m{j}") for j, c in enumerate(cfgs)])
    assert boom["status"] == "diverged" and boom["diverged_step"] >= 0
    assert "training loss became" in boom["error"]
    assert "test_acc" not in boom  # as an ordinary diverged run: no test
    assert calm["status"] == "completed" and calm["epochs_run"] == 2
    assert 0 <= calm["test_acc"] <= 1
    ordinary = run(cfgs[0], tmp_path / "o", progress_bar=False)
    assert ordinary["status"] == "diverged"
    assert (boom["diverged_step"], boom["diverged_epoch"]) == (
        ordinary["diverged_step"], ordinary["diverged_epoch"])
    # epochs from 1, as history.csv: the epoch after the last finished one
    assert ordinary["diverged_epoch"] == ordinary["epochs_run"] + 1 >= 1
    assert f"(epoch {ordinary['diverged_epoch']})" in ordinary["error"]
    hist = pd.read_csv(tmp_path / "m0" / "history.csv") if boom["epochs_run"] else None
    assert hist is None or len(hist) == boom["epochs_run"]


def test_a_diverged_member_is_frozen() -> None:  # the engine alone, no config
    models = [MLP((8,), 3, nn.Tanh, depth=2, width=16) for _ in range(2)]
    initialize(models[0], "random", std=1e4, seed=0)
    initialize(models[1], "he", seed=1)
    stacked = StackedModel(models)
    opt = torch.optim.SGD(list(stacked.params.values()), lr=1.0, momentum=0.9)
    trainer = VectorizedTrainer(stacked, opt, loggers=[None, None], max_loss=1e3)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 8, generator=g), torch.randint(0, 3, (64,), generator=g)

    class Batcher:  # two members, each its own order
        batch_size = 16
        transform = None

        def __init__(self, seed: int) -> None:
            self.seed = seed

        def __len__(self) -> int:
            return 4

        def order(self, epoch: int) -> torch.Tensor:
            return torch.randperm(64, generator=torch.Generator().manual_seed(self.seed + epoch))

    before, before1 = stacked.member_state_dict(0), stacked.member_state_dict(1)
    seen = []
    trainer.fit((x, y), [Batcher(0), Batcher(1)], (x, y), 64, 4,
                on_epoch=lambda e, t: seen.append(copy.deepcopy(t.model.member_state_dict(0))))
    assert trainer.logs[0].diverged is not None
    assert trainer.logs[1].diverged is None and len(trainer.logs[1].history) == 4
    step, epoch, value = trainer.logs[0].diverged
    assert value > 1e3 and step >= 0
    # member 0's weights stopped changing and stayed finite (the failing step not applied)
    for a in seen[epoch - 1:]:  # epoch counts from 1
        for name, t in a.items():
            assert torch.equal(t, seen[-1][name]) and torch.isfinite(t).all(), name
    assert len(trainer.logs[0].history) == epoch - 1
    if step == 0:  # diverged on its first step: it keeps exactly its initial weights
        for name, t in before.items():
            assert torch.equal(seen[-1][name], t), name
    assert not torch.equal(stacked.member_state_dict(1)["head.weight"], before1["head.weight"])


@pytest.mark.parametrize("augment", [False, True])
@pytest.mark.parametrize("per_step", [False, True])
def test_each_member_walks_its_own_seeds_batches(augment: bool, per_step: bool,
                                                 monkeypatch) -> None:
    from initlab.data.batcher import TensorBatcher
    from initlab.vectorized import engine
    from initlab.vectorized.engine import member_batches

    if per_step:  # a training set too large to gather K copies of: one step at a time
        monkeypatch.setattr(engine, "EPOCH_GATHER_BYTES", 0)

    x, y = torch.arange(50.0).view(50, 1), torch.arange(50)

    def noise(xb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return xb + torch.rand(xb.shape, generator=g)

    transform = noise if augment else None
    seeds = (0, 3, 7)
    batchers = [TensorBatcher(x, y, 8, shuffle=True, seed=s, transform=transform) for s in seeds]
    for epoch in (0, 2):
        got = list(member_batches(x, y, batchers, epoch))
        for k, seed in enumerate(seeds):
            own = TensorBatcher(x, y, 8, shuffle=True, seed=seed, transform=transform)
            own.set_epoch(epoch)
            want = list(own)  # what the ordinary run's loader yields in that epoch
            assert len(got) == len(want) == 7
            for (xb, yb), (wx, wy) in zip(got, want, strict=True):
                # exact: gathered copies (plus the same noise, one elementwise add)
                assert torch.equal(xb[k], wx) and torch.equal(yb[k], wy)


@pytest.mark.parametrize("act,bias,norm", [(nn.ReLU, True, "none"), (nn.Tanh, False, "none"),
                                           (nn.ReLU, True, "batch"), (nn.GELU, True, "layer")])
def test_stacked_forward_is_each_members_forward(act, bias: bool, norm: str) -> None:
    models = [MLP((1, 8, 8), 10, act, depth=2, width=16, bias=bias, norm=norm) for _ in range(3)]
    stacked = StackedModel(models)
    assert stacked.fast == (norm == "none")  # plain MLPs skip vmap
    x = torch.randn(3, 5, 1, 8, 8)
    want = torch.stack([m(x[k]) for k, m in enumerate(models)])
    torch.testing.assert_close(stacked(x), want, rtol=1e-5, atol=1e-6)
    for m in models:
        m.eval()
    stacked.train(False)
    want = torch.stack([m(x[0]) for m in models])
    torch.testing.assert_close(stacked(x[0], shared=True), want, rtol=1e-5, atol=1e-6)


def _image_tags(run_dir: Path) -> set[str]:
    """The image summaries' tags in the TensorBoard runs under ``run_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for d in {p.parent for p in run_dir.rglob("events.out.tfevents*")}:
        acc = EventAccumulator(str(d))
        acc.Reload()
        tags.update(acc.Tags()["images"])
    return tags


def _hparams_session(run_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The HParams plugin's session of the TensorBoard run under ``run_dir``: its
    hyperparameters (name -> value) and the metric tags of its experiment."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    (d,) = {p.parent for p in run_dir.rglob("events.out.tfevents*")}
    acc = EventAccumulator(str(d))
    acc.Reload()
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(
        content[metadata.SESSION_START_INFO_TAG])
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    params = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
              for k, v in start.hparams.items()}
    return params, sorted(m.name.tag for m in experiment.metric_infos)


@pytest.mark.parametrize("extra", [
    # the default diagnostics: grad norms, update ratios, dead fractions per member
    ["diagnostics=default"],
    # Lightning's log_every_n_steps: null is 50 (here for the diagnostics too), 0 no
    # train/loss (members logged it every step; null + null failed every member)
    ["diagnostics=default", "trainer.log_every_n_steps=null",
     "diagnostics.callback.log_every_n_steps=null"],
    ["diagnostics=default", "trainer.log_every_n_steps=0"],
    # a CNN (vmap forward; dead channels), weight and activation histograms, the checks
    # on every step
    ["model=cnn", "model.channels=[8,8]", "init=orthogonal", "diagnostics=full",
     "diagnostics.jacobian=false", "diagnostics.callback.check_every_n_steps=1"],
    # the ResNet with the default diagnostics (dead fractions of its BatchNorm'd convs)
    pytest.param(["model=resnet", "model.width=4", "diagnostics=default"],
                 marks=pytest.mark.slow),
])
def test_tensorboard_run_has_the_ordinary_tags_steps_and_values(compose_cfg, tb_events,
                                                                tmp_path, extra) -> None:
    cfg = compose_cfg("logger=tensorboard", "init=xavier", *extra, "trainer.max_epochs=2",
                      "seed=1", tiny=not any(e.startswith("model=") for e in extra))
    (vec,) = train_members([Member(cfg, tmp_path / "v")])
    ordinary = run(cfg, tmp_path / "o", progress_bar=False)
    assert vec["run_name"] == ordinary["run_name"]
    assert "vectorized_skipped" not in vec
    # the dead fractions after training (on the first training batch), as the ordinary
    # TrainingDiagnostics reports them
    for key in ("final_dead_frac_max", "final_dead_frac_mean"):
        assert vec[key] == pytest.approx(ordinary[key], rel=1e-4, abs=1e-6), key
    tb = tmp_path / "v" / "tb"
    assert {p.parent.relative_to(tb).as_posix() for p in tb.rglob("events.out.tfevents*")
            } == {vec["run_name"]}
    want, got = tb_events(tmp_path / "o"), tb_events(tmp_path / "v")
    # train/loss, train/loss_epoch, val/*, test/*, diag/grad_norm/*,
    # diag/update_ratio/*, diag/dead_frac/*; the init profile's figures: init/*
    assert set(got) == set(want)
    assert _image_tags(tmp_path / "v") == _image_tags(tmp_path / "o") == {"init/profile"}
    # the HParams tab: the same session (hyperparameters and metrics) in both
    assert _hparams_session(tmp_path / "v") == _hparams_session(tmp_path / "o")
    assert {t.split("/")[1] for t in want if t.startswith("diag/")} == {
        "grad_norm", "update_ratio", "dead_frac"}
    # some units are dead (the comparison of dead fractions is not one of zeros; the
    # ResNet's BatchNorm'd ReLUs have none at this size)
    dead = [v for t in want if t.startswith("diag/dead_frac/") for _, v in want[t]]
    assert dead and (any(v > 0 for v in dead) or "model=resnet" in extra)
    for tag, points in want.items():
        assert [s for s, _ in got[tag]] == [s for s, _ in points], tag
        np.testing.assert_allclose([v for _, v in got[tag]], [v for _, v in points],
                                   rtol=RTOL, atol=1e-6, err_msg=tag)
    # hparams.yaml: the module's hyperparameters (the run's config among them), the same
    hp = [(tmp_path / d / "tb" / vec["run_name"] / "hparams.yaml").read_text() for d in "ov"]
    assert hp[0] == hp[1] and f"  init.scheme: {vec['init']}" in hp[0].splitlines()
    want_h, got_h = (tb_events(tmp_path / d, "histograms") for d in ("o", "v"))
    assert set(got_h) == set(want_h)
    assert bool(want_h) == ("diagnostics=full" in extra)
    for tag, points in want_h.items():
        np.testing.assert_allclose(got_h[tag], points, rtol=RTOL, atol=1e-5, err_msg=tag)


def test_without_a_validation_split_no_val_metrics_and_dead_fractions_on_the_fixed_batch(
        compose_cfg, tb_events, tmp_path) -> None:
    # dataset.val_frac=0: Lightning runs no validation; a member must not record val
    # numbers either (it once wrote val_loss = val_acc = 0.0), and the diagnostics take
    # dead fractions on the first training batch, as the ordinary callback does
    cfg = compose_cfg("logger=tensorboard", "diagnostics=default", "dataset.val_frac=0",
                      "trainer.max_epochs=2", "seed=3")
    (vec,) = train_members([Member(cfg, tmp_path / "v")])
    ordinary = run(cfg, tmp_path / "o", progress_bar=False)
    ho, hv = (pd.read_csv(tmp_path / d / "history.csv") for d in ("o", "v"))
    assert list(hv.columns) == list(ho.columns) and "val_loss" not in hv.columns
    assert vec["status"] == "completed" and vec.get("best_val_acc") is None
    assert {k for k in ordinary if "val" in k} == {k for k in vec if "val" in k}
    want, got = tb_events(tmp_path / "o"), tb_events(tmp_path / "v")
    assert not [t for t in got if t.startswith("val/")]
    assert [s for s, _ in got["epoch"]] == [s for s, _ in want["epoch"]]  # no val logs
    dead = [t for t in want if t.startswith("diag/dead_frac/")]
    assert dead and any(v > 0 for t in dead for _, v in want[t])
    for tag in dead:  # counts of units off on the whole batch: discrete, compared exactly
        assert got[tag] == want[tag], tag


def test_csv_logger_of_a_member_writes_the_ordinary_metrics_csv(compose_cfg, tmp_path) -> None:
    """logger=many (TensorBoard + CSV): the member's CSV logger is finalized and writes
    the metrics.csv its ordinary run writes (same columns and steps, values to float
    tolerance)."""
    cfg = compose_cfg("logger=many", "init=he", "seed=2", "trainer.max_epochs=2",
                      "diagnostics=default")
    (vec,) = train_members([Member(cfg, tmp_path / "v")])
    ordinary = run(cfg, tmp_path / "o", progress_bar=False)
    assert vec["status"] == ordinary["status"] == "completed"
    frames = [pd.read_csv(tmp_path / d / "csv" / vec["run_name"] / "metrics.csv")
              for d in ("o", "v")]
    want, got = frames
    assert set(got.columns) == set(want.columns) and "val/acc" in want.columns
    for col in ("val/acc", "val/loss", "train/loss_epoch", "test/acc"):
        w, g = want[["step", col]].dropna(), got[["step", col]].dropna()
        assert list(g["step"]) == list(w["step"]) and len(w), col
        np.testing.assert_allclose(g[col], w[col], rtol=RTOL, atol=1e-6, err_msg=col)
