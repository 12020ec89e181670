"""A user's init scheme, registered on import."""

from __future__ import annotations

import torch
from torch import nn

from initlab.initializers import register_scheme


@register_scheme("user_constant_std", defaults={"std": 0.05})
def user_constant_std(model: nn.Module, ctx) -> None:
    """Every Linear weight ~ N(0, std^2) from the run's generator, biases 0."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            with torch.no_grad():
                m.weight.normal_(0.0, ctx.params["std"], generator=ctx.generator)
                if m.bias is not None:
                    m.bias.zero_()
