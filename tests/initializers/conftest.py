"""Initializer tests do many small tensor ops; on a shared 2-core machine intra-op threads
mostly wait on each other, so these tests run single-threaded (restored afterwards)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Schemes that need initlab's transformer (its layer roles) or a residual network.
TRANSFORMER_ONLY = frozenset({"gpt2", "small_init", "tfixup", "deepnet", "rezero", "per_role"})
RESIDUAL_ONLY = frozenset({"fixup", "zero_residual"})
