"""Synthetic regression tasks generated in memory (no files).

Both tasks draw their data from ``data_seed``, which is independent of the run seed:
every run of a sweep sees the same examples, and only the batch order follows the run
seed. Each split has its own generator, so e.g. changing ``n_train`` leaves the
validation and test sets unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from initlab.data.base import InMemoryData, lightning_twins

SPLITS = ("train", "val", "test")


def _check_count(key: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"dataset.{key}={value!r} must be an integer >= {minimum}")


TEACHER_STREAM = 500_000  # far from the split indices (0, 1, 2)


def _split_generator(data_seed: int, split: str) -> torch.Generator:
    return torch.Generator().manual_seed(int(data_seed) * 1_000_003 + SPLITS.index(split))


def adding_problem(n: int, seq_len: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` sequences of the adding problem (Hochreiter & Schmidhuber 1997), in the form
    used by Le, Jaitly & Hinton (2015), "A Simple Way to Initialize Recurrent Networks of
    Rectified Linear Units", section 4.1.

    Each step has two features: a value drawn uniformly from [0, 1] and a marker that is 1
    at exactly two steps -- one uniformly in the first half of the sequence, one uniformly
    in the second half -- and 0 elsewhere. The target is the sum of the two marked values.
    Returns ``x`` of shape ``(n, seq_len, 2)`` and ``y`` of shape ``(n, 1)`` (float32).

    The target is a sum of two independent U[0, 1] values, so always predicting its mean
    1.0 gives ``MSE = 2 * Var(U[0, 1]) = 2 / 12 ~= 0.167``: the baseline to beat.
    """
    _check_count("seq_len", seq_len, minimum=2)
    half = seq_len // 2
    values = torch.rand(n, seq_len, generator=generator)
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, seq_len, (n,), generator=generator)
    markers = torch.zeros(n, seq_len)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)
    y = (values[rows, first] + values[rows, second]).unsqueeze(1)
    return x, y


ADDING_BASELINE_MSE = 2.0 / 12.0  # MSE of always predicting 1.0 (see adding_problem)


class AddingData(InMemoryData):
    """The adding problem as a regression data set; ``input_shape = (seq_len, 2)``.

    Not standardized by default (``standardize=False``): the marker channel must stay 0/1.
    Predicting the constant 1.0 scores MSE ~= 0.167 (``ADDING_BASELINE_MSE``).
    Le et al. (2015) use ``seq_len`` 150 to 750; the default 50 is a small, fast run.
    """

    name = "adding"
    task = "regression"
    num_outputs = 1

    def __init__(
        self,
        seq_len: int = 50,
        n_train: int = 10_000,
        n_val: int = 1_000,
        n_test: int = 1_000,
        data_seed: int = 0,
        standardize: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(standardize=standardize, **kwargs)
        _check_count("seq_len", seq_len, minimum=2)
        _check_count("n_train", n_train)
        _check_count("n_val", n_val, minimum=0)
        _check_count("n_test", n_test, minimum=0)
        self.seq_len = seq_len
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.data_seed = data_seed
        self.input_shape = (seq_len, 2)

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        return {
            split: adding_problem(n, self.seq_len, _split_generator(self.data_seed, split))
            for split, n in self.sizes.items()
        }


class TeacherNet:
    """A fixed random tanh MLP: ``depth`` layers of ``width`` units, then a linear readout.

    Weights are ``N(0, weight_std^2 / fan_in)`` and biases ``N(0, bias_std^2)`` -- the
    mean-field parametrization of Poole et al. (2016) / Schoenholz et al. (2017), in which
    ``weight_std = 1, bias_std = 0`` is the order/chaos boundary for tanh. The default
    ``weight_std = 1.5`` sits slightly on the chaotic side, so the function stays
    non-trivial (not nearly linear, not constant) as the teacher gets deeper.
    """

    def __init__(
        self,
        input_dim: int,
        num_outputs: int,
        depth: int,
        width: int,
        weight_std: float,
        bias_std: float,
        seed: int,
    ) -> None:
        # a stream of its own: the examples' generators are data_seed * 1_000_003 + split,
        # so a plain teacher_seed = data_seed = 0 drew the teacher's first-layer weights
        # and the first training inputs from one stream (identical numbers)
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + TEACHER_STREAM)
        self.layers: list[tuple[Tensor, Tensor]] = []
        fan_in = input_dim
        for _ in range(depth):
            w = torch.randn(fan_in, width, generator=g) * (weight_std / math.sqrt(fan_in))
            b = torch.randn(width, generator=g) * bias_std
            self.layers.append((w, b))
            fan_in = width
        self.readout = torch.randn(fan_in, num_outputs, generator=g) / math.sqrt(fan_in)

    def __call__(self, x: Tensor) -> Tensor:
        h = x
        for w, b in self.layers:
            h = torch.tanh(h @ w + b)
        return h @ self.readout


class TeacherData(InMemoryData):
    """Teacher-student regression for depth studies: Gaussian inputs ``N(0, I_input_dim)``
    labelled by a fixed random deep tanh net (:class:`TeacherNet`).

    Targets are scaled per output to zero mean and unit variance on the training split
    (so predicting 0 scores MSE ~= 1, whatever the teacher), then ``noise_std`` Gaussian
    label noise is added. Teacher weights come from ``teacher_seed``, examples from
    ``data_seed``; both are independent of the run seed. Inputs are already standard
    normal, so ``standardize`` defaults to False.
    """

    name = "teacher"
    task = "regression"

    def __init__(
        self,
        input_dim: int = 32,
        num_outputs: int = 1,
        teacher_depth: int = 4,
        teacher_width: int = 64,
        teacher_weight_std: float = 1.5,
        teacher_bias_std: float = 0.0,
        teacher_seed: int = 0,
        noise_std: float = 0.0,
        n_train: int = 10_000,
        n_val: int = 1_000,
        n_test: int = 1_000,
        data_seed: int = 0,
        standardize: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(standardize=standardize, **kwargs)
        _check_count("input_dim", input_dim)
        _check_count("num_outputs", num_outputs)
        _check_count("teacher_depth", teacher_depth)
        _check_count("teacher_width", teacher_width)
        _check_count("n_train", n_train, minimum=2)
        _check_count("n_val", n_val, minimum=0)
        _check_count("n_test", n_test, minimum=0)
        for key, value in (
            ("teacher_weight_std", teacher_weight_std),
            ("teacher_bias_std", teacher_bias_std),
            ("noise_std", noise_std),
        ):
            if not value >= 0:
                raise ValueError(f"dataset.{key}={value!r} must be >= 0")
        self.input_dim = input_dim
        self.num_outputs = num_outputs
        self.input_shape = (input_dim,)
        self.teacher = TeacherNet(
            input_dim,
            num_outputs,
            teacher_depth,
            teacher_width,
            teacher_weight_std,
            teacher_bias_std,
            teacher_seed,
        )
        self.noise_std = noise_std
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.data_seed = data_seed

    def load(self) -> dict[str, tuple[Tensor, Tensor]]:
        raw = {}
        for split, n in self.sizes.items():
            g = _split_generator(self.data_seed, split)
            x = torch.randn(n, self.input_dim, generator=g)
            raw[split] = (x, self.teacher(x), g)
        y_train = raw["train"][1]
        mean, std = y_train.mean(0, keepdim=True), y_train.std(0, keepdim=True).clamp_min(1e-8)
        splits = {}
        for split, (x, y, g) in raw.items():
            y = (y - mean) / std
            if self.noise_std > 0:
                y = y + self.noise_std * torch.randn(y.shape, generator=g)
            splits[split] = (x, y)
        return splits


# the LightningDataModules of configs' _target_, made on first access (see base.py)
__getattr__ = lightning_twins(__name__, {"AddingDataModule": AddingData,
                                         "TeacherDataModule": TeacherData})
