"""The init profile figure: one image per run, drawn on a figure reused across runs."""

from __future__ import annotations

import numpy as np

from initlab.diagnostics.init_profile import PROFILE_STATS, init_profile, profile_image


def _records(scale: float, layers: int = 5, saturated: bool = True) -> list[dict]:
    return [{"index": i, "layer": f"fc{i}", "act_std": scale * (i + 1),
             "grad_std": 1e-3 * scale ** i, "dead_frac": 0.1 * i,
             "saturated_frac": 0.02 * i if saturated else None} for i in range(layers)]


def test_profile_keeps_finite_statistics_in_layer_order() -> None:
    recs = _records(1.0, saturated=False)
    recs[2]["grad_std"] = float("nan")
    prof = init_profile(recs)
    assert tuple(prof) == ("act_std", "grad_std", "dead_frac")  # saturated: no value
    assert [i for i, _, _ in prof["grad_std"]] == [0, 1, 3, 4]
    assert prof["act_std"][1] == (1, "fc1", 2.0)
    assert set(prof) <= set(PROFILE_STATS)


def test_reused_figure_draws_each_run_alone() -> None:
    """A run's image does not depend on the runs drawn before it on the same figure."""
    first = profile_image(init_profile(_records(1.0)))
    other = profile_image(init_profile(_records(3.0)))
    again = profile_image(init_profile(_records(1.0)))
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert first.shape == other.shape and not np.array_equal(first, other)
    np.testing.assert_array_equal(again, first)  # the same drawing, pixel for pixel


def test_layout_follows_the_statistics_and_layers() -> None:
    four = profile_image(init_profile(_records(1.0)))
    three = profile_image(init_profile(_records(1.0, saturated=False)))
    deep = profile_image(init_profile(_records(1.0, layers=30)))
    assert three.shape == four.shape  # two rows either way; the fourth panel is left out
    assert not np.array_equal(three, four)
    assert deep.shape[1] > four.shape[1]  # room for 30 layer names


def test_png_summary_holds_the_image(tmp_path) -> None:
    """The profile image written with fast PNG compression reads back from the event
    file pixel for pixel, as add_image's would."""
    import io

    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    from initlab.diagnostics.init_profile import add_png

    img = profile_image(init_profile(_records(2.0)))
    writer = SummaryWriter(str(tmp_path))
    add_png(writer, "init/profile", img, step=0)
    writer.add_image("reference", img, 0, dataformats="HWC")
    writer.close()
    acc = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    acc.Reload()
    (ours,), (ref,) = acc.Images("init/profile"), acc.Images("reference")
    assert (ours.step, ours.width, ours.height) == (0, img.shape[1], img.shape[0])
    decoded = [np.asarray(Image.open(io.BytesIO(e.encoded_image_string))) for e in (ours, ref)]
    np.testing.assert_array_equal(decoded[0], img)
    np.testing.assert_array_equal(decoded[1], img)
