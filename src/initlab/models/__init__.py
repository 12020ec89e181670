"""Models; each takes ``input_shape``, ``num_outputs`` and an ``activation`` factory."""

from initlab.models.activations import ACTIVATIONS, activation_factory, make_activation
from initlab.models.cnn import CNN
from initlab.models.mlp import MLP

__all__ = ["ACTIVATIONS", "CNN", "MLP", "activation_factory", "make_activation"]
