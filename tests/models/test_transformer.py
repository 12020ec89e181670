"""The GPT / ViT transformer: shapes, causality, attention and residual formulas, configs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from initlab.models.activations import activation_factory
from initlab.models.transformer import Transformer, deepnorm_alpha

GELU = activation_factory("gelu")


def gpt(**kw) -> Transformer:
    args = dict(input_shape=(6,), num_outputs=5, activation=GELU, depth=2, width=16, heads=2,
                vocab_size=7)
    args.update(kw)
    return Transformer(**args)


def test_gpt_and_vit_output_shapes() -> None:
    torch.manual_seed(0)
    x = torch.randint(0, 7, (3, 6))
    assert gpt()(x).shape == (3, 5)
    assert gpt(answer_len=4)(x).shape == (3, 5, 4)  # (N, C, tokens) for cross_entropy
    vit = Transformer((1, 8, 8), 10, GELU, depth=1, width=16, heads=4, patch_size=4)
    assert vit.kind == "vit" and vit.seq_len == 4
    assert vit(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_gpt_is_causal() -> None:
    """Position i's logits depend on tokens 0..i only: changing the last token leaves
    every earlier answer position unchanged and changes the last one."""
    torch.manual_seed(1)
    model = gpt(answer_len=6).eval()
    x = torch.randint(0, 7, (4, 6))
    x2 = x.clone()
    x2[:, -1] = (x[:, -1] + 1) % 7
    a, b = model(x), model(x2)
    torch.testing.assert_close(a[..., :-1], b[..., :-1])
    assert not torch.allclose(a[..., -1], b[..., -1])


def test_attention_matches_the_formula() -> None:
    """softmax(q k^T * scale + causal mask) v, per head, then ``out``; scale 1/sqrt(d_head)
    by default and the value ``set_attn_scale`` gives."""
    torch.manual_seed(2)
    model = gpt(width=8, heads=2)
    attn = model.blocks[0].attn
    assert attn.scale == pytest.approx(1 / math.sqrt(4))
    x = torch.randn(2, 5, 8)

    def manual(scale: float) -> torch.Tensor:
        q, k, v = (m(x).view(2, 5, 2, 4).transpose(1, 2) for m in (attn.q, attn.k, attn.v))
        scores = q @ k.transpose(-1, -2) * scale
        mask = torch.ones(5, 5, dtype=torch.bool).triu(1)
        y = scores.masked_fill(mask, -math.inf).softmax(-1) @ v
        return attn.out(y.transpose(1, 2).reshape(2, 5, 8))

    torch.testing.assert_close(attn(x), manual(0.5))
    model.set_attn_scale(0.125)
    torch.testing.assert_close(attn(x), manual(0.125))


def test_post_ln_deepnorm_block_formula() -> None:
    """Post-LN: x -> LN(alpha x + attn(x)) -> LN(alpha x' + mlp(x')), alpha = (2N)^(1/4)."""
    torch.manual_seed(3)
    model = gpt(depth=3, norm_position="post", residual_alpha="deepnorm")
    assert model.residual_alpha == pytest.approx((2 * 3) ** 0.25) == deepnorm_alpha(3)
    block = model.blocks[0]
    x = torch.randn(2, 6, 16)
    h = block.norm1(model.residual_alpha * x + block.attn(x))
    expected = block.norm2(model.residual_alpha * h + block.mlp(h))
    torch.testing.assert_close(block(x), expected)
    assert isinstance(model.norm_f, nn.Identity)


def test_pre_ln_zero_gates_make_blocks_identities() -> None:
    torch.manual_seed(4)
    model = gpt(residual_gate=True, norm="rms")
    assert isinstance(model.blocks[0].norm1, nn.RMSNorm)
    x = torch.randn(2, 6, 16)
    block = model.blocks[1]
    assert not torch.allclose(block(x), x)
    with torch.no_grad():
        block.gate1.zero_()
        block.gate2.zero_()
    torch.testing.assert_close(block(x), x)


def test_every_weight_is_a_named_linear_or_embedding() -> None:
    model = gpt(depth=1)
    names = {n for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Embedding)}
    assert names == {"tok_emb", "pos_emb", "blocks.0.attn.q", "blocks.0.attn.k",
                     "blocks.0.attn.v", "blocks.0.attn.out", "blocks.0.mlp.fc_in",
                     "blocks.0.mlp.fc_out", "head"}
    roles = model.layer_roles()
    assert roles["attn_out"] == [model.blocks[0].attn.out] and roles["head"] == [model.head]
    assert sum(len(v) for v in roles.values()) == len(names)


@pytest.mark.parametrize("kwargs, key", [
    (dict(norm="batch"), "model.norm"), (dict(norm_position="middle"), "model.norm_position"),
    (dict(width=10, heads=4), "model.width"), (dict(vocab_size=None, kind="gpt"), "model.kind=gpt"),
    (dict(residual_alpha="big"), "model.residual_alpha"), (dict(kind="bert"), "model.kind"),
])
def test_bad_config_names_the_key(kwargs, key) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        gpt(**kwargs)


@pytest.mark.slow
def test_probe_and_training_diagnostics_on_the_transformer(tmp_path: Path, run_train) -> None:
    """A real run on modular addition: the init probe has a row per Linear in forward order
    with finite gradient statistics, TrainingDiagnostics logged per-layer gradient norms
    of the attention layers, and accuracy is per answer token."""
    proc = run_train(["model=transformer", "model.width=16", "model.depth=1", "dataset=modadd",
                      "dataset.p=11", "optimizer=adam", "init=xavier", "trainer.max_epochs=2",
                      f"paths.output_root={tmp_path}", "run_name=tf"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = next((tmp_path / "runs").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["data"]["vocab_size"] == 13 and summary["data"]["num_outputs"] == 11
    layers = [r["layer"] for r in summary["init_diagnostics"]]
    assert layers == ["blocks.0.attn.q", "blocks.0.attn.k", "blocks.0.attn.v",
                      "blocks.0.attn.out", "blocks.0.mlp.fc_in", "blocks.0.mlp.fc_out", "head"]
    assert all(math.isfinite(r["grad_std"]) and r["grad_std"] > 0
               for r in summary["init_diagnostics"])
    assert 0.0 <= summary["final_val_acc"] <= 1.0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb" / "tf")) if (run / "tb" / "tf").exists() else None
    if acc is None:
        event_dir = next(p.parent for p in run.rglob("events.out.tfevents.*"))
        acc = EventAccumulator(str(event_dir))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert any("grad_norm" in t and "attn.q" in t for t in tags), tags[:20]


def test_sequence_accuracy_is_per_token() -> None:
    """The module's tally counts answer tokens: 3 of 4 tokens right in each of 2 examples
    is accuracy 0.75 (not 3, as counting examples would give)."""
    from initlab.module import InitStudyModule

    module = InitStudyModule(nn.Identity(), task="classification", num_outputs=3)
    y = torch.tensor([[0, 1, 2, 0], [1, 1, 1, 1]])
    logits = F.one_hot(y, 3).float().transpose(1, 2).clone()  # (N, C, T), all right
    logits[:, :, 0] = torch.tensor([0.0, 0.0, 9.0])  # first token wrong (class 2), twice
    loss = module._shared_step((logits, y), "val")  # (self.log is a no-op without a trainer)
    assert float(module.val_acc.compute()) == pytest.approx(6 / 8)
    assert float(module.val_loss.weight) == 8.0  # weighted by answer tokens
    assert float(module.val_loss.compute()) == pytest.approx(float(loss))
