"""Small transformers for init studies: a decoder-only GPT for token sequences and a
ViT-style encoder for images.

Both share one block (Vaswani et al. 2017, "Attention Is All You Need"): multi-head
self-attention and a two-layer MLP, each a residual branch. Every weight is an
``nn.Linear`` or ``nn.Embedding`` with a name that says its role, so initializers,
the probe and per-role rules see them:

``tok_emb`` (GPT) | ``patch_emb`` (ViT), ``pos_emb``, ``blocks.<i>.attn.{q,k,v,out}``,
``blocks.<i>.mlp.{fc_in,fc_out}``, ``blocks.<i>.norm1/norm2``, ``norm_f``, ``head``.

* ``norm_position="pre"`` (default; GPT-2, Xiong et al. 2020): ``x + f(norm(x))`` and a
  final norm before the head; ``"post"`` (the original): ``norm(alpha * x + f(x))``.
  ``residual_alpha`` is the DeepNorm multiplier alpha (Wang et al. 2022, "DeepNet");
  ``"deepnorm"`` = ``(2 * depth)^(1/4)``.
* ``residual_gate=True`` adds ReZero's scalar gate per branch (Bachlechner et al. 2020):
  ``x + g * f(x)``; every scheme sets it to 1 (neutral), ``init=rezero`` to 0.
* ``attn_scale``: scores are ``q.k * attn_scale``; null = ``1/sqrt(d_head)``. muP's
  ``1/d_head`` is set by the parametrization (``initlab.parametrization``).

GPT input: token ids ``(N, T)``; output: logits of the last ``answer_len`` positions,
``(N, C)`` for one answer token, ``(N, C, answer_len)`` for several (the layout
``F.cross_entropy`` takes). ViT input: images ``(N, C, H, W)`` cut into
``patch_size`` squares; output: logits of the mean-pooled tokens ``(N, C)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from initlab.models.mlp import _check_positive

KINDS = ("auto", "gpt", "vit")
NORMS = ("layer", "rms", "none")
NORM_POSITIONS = ("pre", "post")


def deepnorm_alpha(depth: int) -> float:
    """Wang et al. (2022), "DeepNet: Scaling Transformers to 1,000 Layers", table 1
    (encoder-only / decoder-only rows): residual multiplier ``alpha = (2N)^(1/4)``."""
    return (2.0 * depth) ** 0.25


def _choice(key: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"model.{key}={value!r} is not known; allowed: {', '.join(allowed)}")


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "layer":
        return nn.LayerNorm(width)
    if kind == "rms":
        return nn.RMSNorm(width)
    return nn.Identity()


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate ``q``, ``k``, ``v`` and ``out`` layers."""

    def __init__(self, width: int, heads: int, causal: bool, bias: bool) -> None:
        super().__init__()
        self.heads, self.causal = heads, causal
        self.d_head = width // heads
        self.scale = 1.0 / math.sqrt(self.d_head)
        self.q = nn.Linear(width, width, bias=bias)
        self.k = nn.Linear(width, width, bias=bias)
        self.v = nn.Linear(width, width, bias=bias)
        self.out = nn.Linear(width, width, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        n, t, w = x.shape

        def split(z: Tensor) -> Tensor:
            return z.view(n, t, self.heads, self.d_head).transpose(1, 2)

        y = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)),
                                           is_causal=self.causal, scale=self.scale)
        return self.out(y.transpose(1, 2).reshape(n, t, w))


class FeedForward(nn.Module):
    def __init__(self, width: int, hidden: int, activation: Callable[[], nn.Module],
                 bias: bool) -> None:
        super().__init__()
        self.fc_in = nn.Linear(width, hidden, bias=bias)
        self.act = activation()
        self.fc_out = nn.Linear(hidden, width, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc_out(self.act(self.fc_in(x)))


class Block(nn.Module):
    """One transformer layer: two residual branches (attention, MLP)."""

    NEUTRAL_PARAMS = {"gate1": 1.0, "gate2": 1.0}

    def __init__(self, width: int, heads: int, mlp_hidden: int,
                 activation: Callable[[], nn.Module], norm: str, norm_position: str,
                 alpha: float, causal: bool, bias: bool, gate: bool) -> None:
        super().__init__()
        self.pre = norm_position == "pre"
        self.alpha = alpha
        self.norm1 = _norm(norm, width)
        self.attn = SelfAttention(width, heads, causal, bias)
        self.norm2 = _norm(norm, width)
        self.mlp = FeedForward(width, mlp_hidden, activation, bias)
        self.gate1 = nn.Parameter(torch.ones(1)) if gate else None
        self.gate2 = nn.Parameter(torch.ones(1)) if gate else None

    @property
    def branch_outputs(self) -> list[nn.Linear]:
        """The last layer of each residual branch (GPT-2's scaled projections)."""
        return [self.attn.out, self.mlp.fc_out]

    def _branch(self, x: Tensor, norm: nn.Module, f: nn.Module, gate: Tensor | None) -> Tensor:
        if self.pre:
            y = f(norm(x))
            return x + (y if gate is None else gate * y)
        y = f(x)
        x = x * self.alpha if self.alpha != 1.0 else x
        return norm(x + (y if gate is None else gate * y))

    def forward(self, x: Tensor) -> Tensor:
        x = self._branch(x, self.norm1, self.attn, self.gate1)
        return self._branch(x, self.norm2, self.mlp, self.gate2)


class Transformer(nn.Module):
    """GPT-style decoder (token ids in) or ViT-style encoder (images in); see module doc.

    ``kind="auto"``: GPT when the data set gives a ``vocab_size`` (token sequences), ViT
    for image shapes ``(C, H, W)``. ``width`` must be divisible by ``heads``.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        activation: Callable[[], nn.Module],
        depth: int = 2,
        width: int = 64,
        heads: int = 4,
        mlp_ratio: int = 4,
        norm: str = "layer",
        norm_position: str = "pre",
        residual_alpha: float | str = 1.0,
        residual_gate: bool = False,
        attn_scale: float | None = None,
        kind: str = "auto",
        patch_size: int = 2,
        bias: bool = True,
        vocab_size: int | None = None,
        answer_len: int = 1,
    ) -> None:
        super().__init__()
        for key, value in (("depth", depth), ("width", width), ("heads", heads),
                           ("mlp_ratio", mlp_ratio), ("patch_size", patch_size),
                           ("answer_len", answer_len)):
            _check_positive(key, value)
        _choice("norm", norm, NORMS)
        _choice("norm_position", norm_position, NORM_POSITIONS)
        _choice("kind", kind, KINDS)
        if width % heads:
            raise ValueError(f"model.width={width} must be divisible by model.heads={heads}")
        if kind == "auto":
            kind = "gpt" if vocab_size is not None else "vit"
        if residual_alpha == "deepnorm":
            residual_alpha = deepnorm_alpha(depth)
        if isinstance(residual_alpha, str) or not residual_alpha > 0:
            raise ValueError(f"model.residual_alpha={residual_alpha!r} is not allowed; "
                             "allowed: a number > 0 or deepnorm")
        self.kind, self.depth, self.width, self.heads = kind, depth, width, heads
        self.norm_position, self.norm_kind = norm_position, norm
        self.residual_alpha = float(residual_alpha)
        self.answer_len = answer_len
        if kind == "gpt":
            if vocab_size is None or len(input_shape) != 1:
                raise ValueError("model.kind=gpt needs token sequences (a data set with a "
                                 f"vocab_size, e.g. dataset=modadd); got input_shape "
                                 f"{tuple(input_shape)}")
            seq_len = int(input_shape[0])
            if answer_len > seq_len:
                raise ValueError(f"answer_len={answer_len} exceeds the sequence length {seq_len}")
            self.tok_emb = nn.Embedding(vocab_size, width)
        else:
            if len(input_shape) != 3:
                raise ValueError("model.kind=vit needs images (C, H, W); got input_shape "
                                 f"{tuple(input_shape)}")
            c, h, w = (int(s) for s in input_shape)
            if h % patch_size or w % patch_size:
                raise ValueError(f"model.patch_size={patch_size} must divide the image size "
                                 f"{h}x{w}")
            self.patch_size = patch_size
            seq_len = (h // patch_size) * (w // patch_size)
            self.patch_emb = nn.Linear(c * patch_size * patch_size, width, bias=bias)
        self.seq_len = seq_len
        self.pos_emb = nn.Embedding(seq_len, width)
        self.register_buffer("positions", torch.arange(seq_len), persistent=False)
        self.blocks = nn.ModuleList(
            Block(width, heads, mlp_ratio * width, activation, norm, norm_position,
                  self.residual_alpha, kind == "gpt", bias, residual_gate)
            for _ in range(depth)
        )
        self.norm_f = _norm(norm, width) if norm_position == "pre" else nn.Identity()
        self.head = nn.Linear(width, num_outputs, bias=bias)
        if attn_scale is not None:
            self.set_attn_scale(attn_scale)

    def set_attn_scale(self, scale: float) -> None:
        """The attention logits' multiplier (``1/sqrt(d_head)`` by default)."""
        for block in self.blocks:
            block.attn.scale = float(scale)

    @property
    def is_residual(self) -> bool:
        return True

    def residual_blocks(self) -> list[Block]:
        return list(self.blocks)

    def layer_roles(self) -> dict[str, list[nn.Module]]:
        """The weight layers by role, for per-role init rules and parametrizations."""
        emb = [self.tok_emb] if self.kind == "gpt" else [self.patch_emb]
        attn = [b.attn for b in self.blocks]
        return {
            "embedding": [*emb, self.pos_emb],
            "attn_qk": [m for a in attn for m in (a.q, a.k)],
            "attn_v": [a.v for a in attn],
            "attn_out": [a.out for a in attn],
            "mlp_in": [b.mlp.fc_in for b in self.blocks],
            "mlp_out": [b.mlp.fc_out for b in self.blocks],
            "head": [self.head],
        }

    def _embed(self, x: Tensor) -> Tensor:
        if self.kind == "gpt":
            return self.tok_emb(x)
        n, c, h, w = x.shape
        p = self.patch_size
        patches = x.unfold(2, p, p).unfold(3, p, p)  # n, c, h/p, w/p, p, p
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(n, -1, c * p * p)
        return self.patch_emb(patches)

    def forward(self, x: Tensor) -> Tensor:
        h = self._embed(x) + self.pos_emb(self.positions[: x.shape[1] if self.kind == "gpt"
                                                         else self.seq_len])
        for block in self.blocks:
            h = block(h)
        h = self.norm_f(h)
        if self.kind == "vit":
            return self.head(h.mean(dim=1))
        logits = self.head(h[:, -self.answer_len:])
        return logits[:, 0] if self.answer_len == 1 else logits.transpose(1, 2)
