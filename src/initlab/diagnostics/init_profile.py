"""The init probe without Lightning: the per-layer table of an initialized network, its
summary, activation histograms and the init profile figure a logger gets at step 0.

``initlab.callbacks.InitProbe`` runs it in a Trainer; the vectorized engine runs it on
each member without importing Lightning (whose import costs seconds).
"""

from __future__ import annotations

import math
from typing import Any

import torch

# The probe's per-layer statistics that go to the logger.
PROFILE_STATS = ("act_std", "grad_std", "dead_frac", "saturated_frac")
PROFILE_TAG = "init/profile"


class InitProfile:
    """Probe settings and, once ``run``, its results: ``records`` (one dict per layer),
    ``summary`` (scalars for summary.json), ``histograms`` (activations at init) and
    ``frame`` (the probe's DataFrame)."""

    # mean-field theory (Poole et al. 2016) is stated for plain MLPs with these activations
    MEANFIELD_ACTIVATIONS = ("tanh", "relu", "linear")

    def __init__(
        self,
        batch_size: int = 256,
        jacobian: bool = False,
        jacobian_examples: int = 8,
        activation: str | None = None,
        histogram_bins: int = 30,
    ) -> None:
        self.batch_size = batch_size
        self.jacobian = jacobian
        self.jacobian_examples = jacobian_examples
        self.activation = activation
        self.histogram_bins = histogram_bins
        self.records: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self.histograms: list[dict[str, Any]] = []
        self.frame: Any = None

    @classmethod
    def from_config(cls, diag: Any, activation: str | None) -> Any:
        """The probe of a run's ``diagnostics`` config (``probe_batch_size``, ``jacobian``,
        ``jacobian_examples``) for its activation."""
        return cls(diag.get("probe_batch_size", 256), jacobian=diag.get("jacobian", False),
                   jacobian_examples=diag.get("jacobian_examples", 8), activation=activation)

    def run(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, logger: Any = None
            ) -> None:
        """Probe the initialized ``model`` on ``(x, y)``; ``logger`` gets the init profile
        at step 0 (``log_init_profile``)."""
        from initlab.diagnostics import probe, summarize_probe

        df = probe(model, x, y, jacobian=self.jacobian, jacobian_examples=self.jacobian_examples)
        self.frame = df
        self.records = df.to_dict("records")
        self.summary = dict(summarize_probe(df))
        self.summary.update(df.attrs.get("jacobian", {}))
        self.summary.update(self._theory(model))
        self.histograms = activation_histograms(model, x, self.histogram_bins)
        if logger is not None:
            log_init_profile(logger, self.records)

    def _theory(self, model: Any) -> dict[str, Any]:
        """Mean-field q*, chi_1 and depth scale from the init's sigma_w^2, sigma_b^2
        (only where the theory applies: an MLP with tanh/relu/linear)."""
        from initlab.models.mlp import MLP

        if not isinstance(model, MLP) or self.activation not in self.MEANFIELD_ACTIVATIONS:
            return {}
        from initlab.diagnostics.meanfield import meanfield_from_model

        mf = meanfield_from_model(model, self.activation)
        return {f"meanfield_{k}": mf[k] for k in ("sigma_w2", "sigma_b2", "q_star", "chi_1",
                                                    "xi_c") if k in mf}


Profile = dict[str, list[tuple[int, str, float]]]


def init_profile(records: list[dict[str, Any]]) -> Profile:
    """``{stat: [(layer index, layer name, value), ...]}`` of the probe's records, for each
    statistic of ``PROFILE_STATS`` with at least one finite value (non-finite values left
    out)."""
    profiles: Profile = {}
    for stat in PROFILE_STATS:
        points = [(int(r["index"]), str(r["layer"]), float(r[stat])) for r in records
                  if r.get(stat) is not None and math.isfinite(float(r[stat]))]
        if points:
            profiles[stat] = points
    return profiles


def log_init_profile(logger: Any, records: list[dict[str, Any]]) -> None:
    """The init profile at step 0: one figure, ``init/profile`` (a panel per statistic,
    the layers on the x-axis in forward order), where the logger's ``experiment`` takes
    images (TensorBoard's ``add_image``); else (CSV) scalars ``init/<stat>/<index>_<layer>``."""
    profiles = init_profile(records)
    if not profiles:
        return
    experiment = getattr(logger, "experiment", None)
    if not hasattr(experiment, "add_image"):
        logger.log_metrics({f"init/{stat}/{i:02d}_{layer}": v for stat, points in
                            profiles.items() for i, layer, v in points}, step=0)
        return
    add_png(experiment, PROFILE_TAG, profile_image(profiles), step=0)


def add_png(experiment: Any, tag: str, rgb: Any, step: int) -> None:
    """An (H, W, 3) uint8 image as a TensorBoard image summary: PNG-encoded here with fast
    compression and written through the writer's ``file_writer`` (``add_image`` resamples
    the image and compresses harder: two thirds of the time of a small figure's summary);
    ``add_image`` for a writer without one."""
    writer = getattr(experiment, "file_writer", None)
    if writer is None:
        experiment.add_image(tag, rgb, global_step=step, dataformats="HWC")
        return
    import io

    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    height, width, channels = rgb.shape
    image = Summary.Image(height=height, width=width, colorspace=channels,
                          encoded_image_string=buf.getvalue())
    writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


class _ProfileCanvas:
    """One Agg figure with a panel per statistic, drawn again for each run of a process
    with the same layers. Building axes and ticks and drawing text cost most of a figure
    (four separate figures took about 0.3 s a run, and 64-run sweeps draw 64), so the
    figure is laid out once, everything that does not change between runs (frames, layer
    names, titles) is kept as a background (matplotlib's blitting), and a run draws only
    its lines and y axes onto a copy of it."""

    def __init__(self, stats: tuple[str, ...], layers: tuple[tuple[int, str], ...]) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        cols = 2 if len(stats) > 1 else 1
        rows = math.ceil(len(stats) / cols)
        height = 2.3 * rows + 1.3
        self.fig = Figure(figsize=(max(7.0, 0.3 * len(layers) * cols + 2.5), height), dpi=80)
        FigureCanvasAgg(self.fig)
        axes = self.fig.subplots(rows, cols, squeeze=False)
        self.fig.subplots_adjust(left=0.11, right=0.98, top=1 - 0.45 / height,
                                 bottom=1.0 / height, hspace=0.35, wspace=0.32)
        self.fig.suptitle("init profile (probe batch, before the first step)", fontsize=10)
        flat = list(axes.flat)
        for ax in flat[len(stats):]:
            ax.set_visible(False)
        self.axes = dict(zip(stats, flat, strict=False))
        self.lines = {}
        ticks = [i for i, _ in layers]
        for n, (stat, ax) in enumerate(self.axes.items()):
            (self.lines[stat],) = ax.plot([], [], marker="o", markersize=3, animated=True)
            ax.yaxis.set_animated(True)  # drawn per run, with the line
            ax.set_ylabel(stat, fontsize=8)
            # at a fixed distance: placing it measures every tick label of the column again
            ax.yaxis.set_label_coords(-0.2, 0.5)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            ax.set_xlim(ticks[0] - 0.5, ticks[-1] + 0.5)
            if n + cols >= len(stats):  # the lowest panel of its column: the layer names
                ax.set_xticks(ticks, [f"{i} {name}" for i, name in layers], rotation=60,
                              ha="right", fontsize=7)
                ax.set_xlabel("layer", fontsize=8)
            else:
                ax.set_xticks(ticks, [])
        self.fig.canvas.draw()
        self.background = self.fig.canvas.copy_from_bbox(self.fig.bbox)

    def draw(self, profiles: Profile) -> Any:
        import numpy as np
        from matplotlib.ticker import LogLocator, NullLocator

        canvas = self.fig.canvas
        canvas.restore_region(self.background)
        for stat, ax in self.axes.items():
            points = profiles[stat]
            ys = [v for _, _, v in points]
            self.lines[stat].set_data([i for i, _, _ in points], ys)
            # standard deviations on a log axis: vanishing and exploding signals span
            # decades; ticks at the decades (1, 2, 5 x 10^k within two decades), no
            # unlabelled minor ticks
            if stat.endswith("_std") and min(ys) > 0:
                ax.set_yscale("log")
                if math.log10(max(ys) / min(ys)) < 2:
                    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.yaxis.set_minor_locator(NullLocator())
            else:
                ax.set_yscale("linear")
            ax.relim()
            ax.autoscale_view(scalex=False)
            ax.draw_artist(ax.yaxis)
            ax.draw_artist(self.lines[stat])
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()


_canvases: dict[tuple[tuple[str, ...], tuple[tuple[int, str], ...]], _ProfileCanvas] = {}


def profile_image(profiles: Profile) -> Any:
    """The init profile as an RGB image (H, W, 3 uint8): a panel per statistic, the
    layers (index and name) on the x-axis."""
    stats = tuple(profiles)
    layers = tuple(sorted({(i, name) for pts in profiles.values() for i, name, _ in pts}))
    key = (stats, layers)
    if key not in _canvases:
        _canvases[key] = _ProfileCanvas(stats, layers)
    return _canvases[key].draw(profiles)


def activation_histograms(model: Any, x: torch.Tensor, bins: int = 30) -> list[dict[str, Any]]:
    """Per-layer histograms of the activations at init (one forward pass, no grad):
    ``[{"layer": name, "edges": [...], "counts": [...]}, ...]`` in forward order."""
    from initlab.models.activations import activation_name

    found: list[tuple[str, torch.Tensor]] = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, n=name: found.append((n, out.detach())))
        for name, m in model.named_modules()
        if activation_name(m) is not None
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    out = []
    for name, act in found:
        values = act.float().flatten().cpu()
        values = values[torch.isfinite(values)]
        if values.numel() == 0:
            continue
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            hi = lo + 1e-6
        counts = torch.histc(values, bins=bins, min=lo, max=hi)
        edges = torch.linspace(lo, hi, bins + 1)
        out.append({"layer": name, "edges": [round(float(e), 6) for e in edges],
                    "counts": [int(c) for c in counts]})
    return out
