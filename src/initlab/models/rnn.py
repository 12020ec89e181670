"""Recurrent nets (vanilla RNN, LSTM, GRU) with a Linear head on the last hidden state.

``model.rnn`` is the torch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (``batch_first=True``), so
initializers find ``weight_ih_l<k>`` (input-to-hidden) and ``weight_hh_l<k>``
(hidden-to-hidden, e.g. identity for the IRNN of Le et al. 2015 or orthogonal) by name.

The nonlinearity of ``cell="rnn"`` comes from the run's activation (tanh or relu, the two
that ``nn.RNN`` supports) unless ``nonlinearity`` overrides it. LSTM and GRU have fixed
sigmoid/tanh gates, so for them the activation setting is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from initlab.models.activations import activation_name
from initlab.models.mlp import _check_positive

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
RNN_NONLINEARITIES = ("tanh", "relu")
SEQUENCES = ("rows", "pixels")


class RNNModel(nn.Module):
    """Reads a sequence ``(batch, seq_len, features)`` and predicts from the top layer's
    last hidden state.

    Other inputs are turned into sequences: images ``(C, H, W)`` are read row by row
    (``sequence="rows"``: ``H`` steps of ``C * W`` features) or pixel by pixel
    (``sequence="pixels"``: ``H * W`` steps of ``C`` features, the "sequential MNIST" of
    Le et al. 2015); flat vectors ``(D,)`` become ``D`` steps of one feature.
    """

    is_recurrent = True

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        activation: Callable[[], nn.Module],
        cell: str = "rnn",
        hidden_size: int = 128,
        num_layers: int = 1,
        nonlinearity: str | None = None,
        sequence: str = "rows",
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"model.cell={cell!r} is not known; allowed: {', '.join(CELLS)}")
        _check_positive("hidden_size", hidden_size)
        _check_positive("num_layers", num_layers)
        if sequence not in SEQUENCES:
            raise ValueError(
                f"model.sequence={sequence!r} is not known; allowed: {', '.join(SEQUENCES)}"
            )
        self.input_shape = tuple(input_shape)
        self.cell, self.sequence = cell, sequence
        if len(self.input_shape) == 3:
            c, h, w = self.input_shape
            features = c * w if sequence == "rows" else c
        elif len(self.input_shape) == 2:
            features = self.input_shape[1]
        elif len(self.input_shape) == 1:
            features = 1
        else:
            raise ValueError(
                f"model={cell} needs sequences (T, F), images (C, H, W) or vectors (D,); "
                f"the data set gives {self.input_shape}"
            )

        kwargs = {}
        if cell == "rnn":
            self.nonlinearity = self._rnn_nonlinearity(activation, nonlinearity)
            kwargs["nonlinearity"] = self.nonlinearity
        else:
            if nonlinearity is not None:
                raise ValueError(
                    f"model.nonlinearity={nonlinearity!r} applies to model.cell=rnn only; "
                    f"{cell} has fixed sigmoid/tanh gates (set it to null)"
                )
            self.nonlinearity = None
        self.rnn = CELLS[cell](
            features, hidden_size, num_layers=num_layers, batch_first=True, **kwargs
        )
        self.head = nn.Linear(hidden_size, num_outputs)

    @staticmethod
    def _rnn_nonlinearity(activation: Callable[[], nn.Module], nonlinearity: str | None) -> str:
        if nonlinearity is not None:
            if nonlinearity not in RNN_NONLINEARITIES:
                raise ValueError(
                    f"model.nonlinearity={nonlinearity!r} is not supported by nn.RNN; "
                    f"allowed: {', '.join(RNN_NONLINEARITIES)} (or null: use the activation)"
                )
            return nonlinearity
        name = activation_name(activation())
        if name not in RNN_NONLINEARITIES:
            raise ValueError(
                f"activation={name or 'custom'!r} cannot be used with model.cell=rnn; "
                f"allowed: {', '.join(RNN_NONLINEARITIES)}"
            )
        return name

    def to_sequence(self, x: Tensor) -> Tensor:
        """``(batch, *input_shape)`` -> ``(batch, steps, features)``."""
        if x.dim() == 4:
            n, c, h, w = x.shape
            if self.sequence == "rows":
                return x.permute(0, 2, 1, 3).reshape(n, h, c * w)
            return x.reshape(n, c, h * w).transpose(1, 2)
        if x.dim() == 2:
            return x.unsqueeze(-1)
        return x

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(self.to_sequence(x))
        return self.head(out[:, -1])
