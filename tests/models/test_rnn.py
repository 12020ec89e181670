"""RNN / LSTM / GRU models: nonlinearity from the activation, inputs, training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from initlab.data.synthetic import adding_problem
from initlab.models.activations import activation_factory
from initlab.models.rnn import RNNModel

TANH, RELU, GELU = (activation_factory(n) for n in ("tanh", "relu", "gelu"))


@pytest.mark.parametrize("act, name", [(TANH, "tanh"), (RELU, "relu")])
def test_rnn_nonlinearity_comes_from_the_activation(act, name) -> None:
    model = RNNModel((20, 2), 1, act, cell="rnn", hidden_size=8)
    assert isinstance(model.rnn, nn.RNN)
    assert model.rnn.nonlinearity == name == model.nonlinearity


def test_rnn_rejects_other_activations_naming_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"activation='gelu'.*tanh, relu"):
        RNNModel((20, 2), 1, GELU, cell="rnn")
    with pytest.raises(ValueError, match=r"activation='leaky_relu'"):
        RNNModel((20, 2), 1, activation_factory("leaky_relu"), cell="rnn")


def test_nonlinearity_override() -> None:
    model = RNNModel((20, 2), 1, GELU, cell="rnn", nonlinearity="relu")
    assert model.rnn.nonlinearity == "relu"
    with pytest.raises(ValueError, match=r"model\.nonlinearity.*tanh, relu"):
        RNNModel((20, 2), 1, TANH, cell="rnn", nonlinearity="gelu")
    with pytest.raises(ValueError, match=r"model\.nonlinearity.*cell=rnn only"):
        RNNModel((20, 2), 1, TANH, cell="lstm", nonlinearity="relu")


@pytest.mark.parametrize("cell, cls", [("lstm", nn.LSTM), ("gru", nn.GRU)])
def test_gated_cells_ignore_the_activation(cell, cls) -> None:
    model = RNNModel((20, 2), 1, GELU, cell=cell, hidden_size=8, num_layers=2)
    assert isinstance(model.rnn, cls) and model.nonlinearity is None
    names = {n for n, _ in model.rnn.named_parameters()}
    assert {"weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"} <= names
    assert model.rnn.batch_first


def test_bad_options_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"model\.cell.*rnn, lstm, gru"):
        RNNModel((20, 2), 1, TANH, cell="transformer")
    with pytest.raises(ValueError, match=r"model\.hidden_size"):
        RNNModel((20, 2), 1, TANH, hidden_size=0)
    with pytest.raises(ValueError, match=r"model\.sequence"):
        RNNModel((1, 8, 8), 1, TANH, sequence="columns")


@pytest.mark.parametrize(
    "shape, sequence, steps, features",
    [
        ((1, 8, 8), "rows", 8, 8),
        ((3, 4, 5), "rows", 4, 15),
        ((3, 4, 5), "pixels", 20, 3),
        ((12,), "rows", 12, 1),
        ((30, 2), "rows", 30, 2),
    ],
)
def test_inputs_become_sequences(shape, sequence, steps, features) -> None:
    model = RNNModel(shape, 10, TANH, hidden_size=6, sequence=sequence)
    x = torch.randn(4, *shape)
    seq = model.to_sequence(x)
    assert seq.shape == (4, steps, features)
    assert model(x).shape == (4, 10)


def test_rows_keep_pixels_of_a_row_together() -> None:
    model = RNNModel((2, 3, 4), 1, TANH, hidden_size=4)
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    seq = model.to_sequence(x)
    # step 1 = row 1 of channel 0 then row 1 of channel 1
    assert seq[0, 1].tolist() == x[0, 0, 1].tolist() + x[0, 1, 1].tolist()


@pytest.mark.parametrize("cell, act", [("rnn", TANH), ("rnn", RELU), ("lstm", TANH), ("gru", TANH)])
def test_trains_on_the_adding_problem(cell, act) -> None:
    torch.manual_seed(0)
    x, y = adding_problem(32, 12, torch.Generator().manual_seed(0))
    model = RNNModel((12, 2), 1, act, cell=cell, hidden_size=16)
    # one step: every parameter gets a finite, nonzero gradient
    nn.functional.mse_loss(model(x), y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().sum()) > 0, name
    model.zero_grad()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
