"""predicted_class is argmax: the first maximum on ties, NaN wherever there is one."""

from __future__ import annotations

import pytest
import torch

from initlab.metrics import predicted_class


@pytest.mark.parametrize("shape,dim", [((257, 10), 1), ((257, 10), -1), ((4, 33, 10), -1),
                                       ((6, 3, 5), 1)])
def test_predicted_class_equals_argmax(shape: tuple[int, ...], dim: int) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randint(-2, 3, shape, generator=g).float()  # many ties
    logits[torch.rand(shape, generator=g) < 0.05] = float("inf")
    logits[torch.rand(shape, generator=g) < 0.05] = float("nan")
    for out in (logits, torch.zeros(shape), torch.randn(shape, generator=g)):
        # two kernels, but integer indices that both document (first maximum, NaN): exact
        assert torch.equal(predicted_class(out, dim), out.argmax(dim))


def test_ties_go_to_the_first_class() -> None:
    # a network that outputs constants (e.g. zero init) predicts class 0 everywhere
    assert predicted_class(torch.zeros(5, 10)).tolist() == [0] * 5
    assert predicted_class(torch.tensor([[0.0, 2.0, 2.0], [1.0, float("nan"), 3.0]])).tolist() \
        == [1, 1]
