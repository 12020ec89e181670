"""Seeding without Lightning."""

from __future__ import annotations

import random


def seed_all(seed: int) -> None:
    """Seed what Lightning's ``seed_everything`` seeds (Python's ``random``, NumPy's global
    generator, torch on every device) without importing Lightning: a vectorized member
    draws its weights as its ordinary run does."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
