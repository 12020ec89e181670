"""What a vectorized job can train; refusals name the config key and what is allowed.

Checked by the sweeper before any job starts (on the composed config of each job) and
again by the job itself. Imports no torch, so the sweeper stays light.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig

# Model classes whose forward is a plain function of (parameters, buffers, input):
# torch.func.vmap runs K of them as one batched model.
SUPPORTED_MODELS = {
    "initlab.models.mlp.MLP",
    "initlab.models.MLP",
    "initlab.models.cnn.CNN",
    "initlab.models.CNN",
    "initlab.models.resnet.ResNet",
}
# Optimizers whose update of each tensor element depends only on that element's own
# gradient history: one optimizer over the stacked (K, ...) tensors then equals K
# separate optimizers.
ELEMENTWISE_OPTIMIZERS = {
    f"torch.optim.{name}"
    for name in ("SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad",
                 "Adadelta", "Rprop")
}
# trainer.* keys the vectorized loop implements (the others would be silently ignored).
TRAINER_KEYS = {
    "_target_", "max_epochs", "max_steps", "accelerator", "devices", "precision",
    "log_every_n_steps", "deterministic", "gradient_clip_val", "gradient_clip_algorithm",
    "benchmark", "enable_progress_bar", "enable_model_summary", "num_sanity_val_steps",
}
PRECISIONS = {32, "32", "32-true"}
ACCELERATORS = {"cpu", "gpu", "cuda", "auto"}
HINT = "or run this sweep without hydra/sweeper=vectorized (one job per run)"


class VectorizeError(ValueError):
    """A configuration the vectorized sweeper cannot train as one job."""


def _fail(key: str, value: Any, allowed: str) -> None:
    raise VectorizeError(
        f"{key}={value!r} cannot be vectorized (hydra/sweeper=vectorized): allowed {allowed}; "
        f"{HINT}"
    )


def check_supported(cfg: DictConfig, model_choice: str | None = None) -> None:
    """Raise ``VectorizeError`` if ``cfg`` (one member's config) cannot be vectorized."""
    target = str(cfg.model.get("_target_", "?"))
    if target not in SUPPORTED_MODELS:
        name = model_choice or target.rsplit(".", 1)[-1].lower()
        _fail("model", name, f"model=mlp, model=cnn or model=resnet (got {target})")
    trainer = cfg.get("trainer") or {}
    for key in trainer:
        if key not in TRAINER_KEYS:
            _fail(f"trainer.{key}", trainer.get(key),
                  f"trainer keys: {', '.join(sorted(TRAINER_KEYS))}")
    steps = trainer.get("max_steps", -1)
    if steps not in (None, -1):
        _fail("trainer.max_steps", steps, "-1 (train for trainer.max_epochs)")
    if trainer.get("precision", 32) not in PRECISIONS:
        _fail("trainer.precision", trainer.get("precision"), "32-true")
    accel = str(trainer.get("accelerator", "cpu"))
    if accel not in ACCELERATORS:
        _fail("trainer.accelerator", accel, ", ".join(sorted(ACCELERATORS)))
    devices = trainer.get("devices", 1)
    if isinstance(devices, (list, tuple, ListConfig)):
        one_device = len(devices) == 1
    else:
        one_device = devices in (1, "1", "auto", None)
    if not one_device:
        _fail("trainer.devices", devices, "1 (all members share one device)")
    if str(trainer.get("_target_", "pytorch_lightning.Trainer")) not in (
            "pytorch_lightning.Trainer", "lightning.pytorch.Trainer"):
        _fail("trainer._target_", trainer.get("_target_"), "pytorch_lightning.Trainer")
    if cfg.get("checkpoint", False):
        _fail("checkpoint", True, "false (a rerun of the sweep skips finished members)")
    callbacks = cfg.get("callbacks") or {}
    extra = [k for k, v in callbacks.items() if v is not None and k != "_target_"]
    if extra or trainer.get("callbacks"):
        _fail(f"callbacks.{extra[0]}" if extra else "trainer.callbacks", "set",
              "no extra Lightning callbacks (the vectorized loop is not a Trainer)")
    clip_algo = trainer.get("gradient_clip_algorithm") or "norm"
    if clip_algo not in ("norm", "value"):
        _fail("trainer.gradient_clip_algorithm", clip_algo, "norm, value")
    opt = str(cfg.optimizer.get("_target_", "?"))
    if opt not in ELEMENTWISE_OPTIMIZERS:
        _fail("optimizer", opt, "element-wise torch.optim optimizers: " + ", ".join(
            sorted(o.rsplit(".", 1)[-1] for o in ELEMENTWISE_OPTIMIZERS)))
    param = cfg.get("param") or {}
    if param.get("kind", "sp") != "sp" and param.get("base_width") is not None:
        _fail("param", param.get("kind"), "sp (per-layer learning rates are not vectorized)")
    sched = cfg.get("lr_scheduler") or {}
    if sched and (sched.get("scheduler") or sched.get("_target_")):
        target = str((sched.get("scheduler") or sched).get("_target_", ""))
        if sched.get("monitor") is not None or target.endswith("ReduceLROnPlateau"):
            _fail("lr_scheduler", target.rsplit(".", 1)[-1] or "monitor",
                  "schedules of the step or epoch count (cosine, warmup_cosine, onecycle, "
                  "step, ...), not a metric-monitoring one")


def check_member_lrs(cfg: DictConfig) -> None:
    """Raise ``VectorizeError`` if members of ``cfg``'s optimizer cannot have different
    learning rates in one job (``optim.MemberLrOptimizer`` implements SGD, Adam, AdamW)."""
    from initlab.vectorized.optim import MEMBER_LR_OPTIMIZERS

    opt = str(cfg.optimizer.get("_target_", "?"))
    allowed = MEMBER_LR_OPTIMIZERS.get(opt)
    names = ", ".join(o.rsplit(".", 1)[-1] for o in MEMBER_LR_OPTIMIZERS)
    if allowed is None:
        _fail("optimizer", opt, f"{names} when the members differ in optimizer.lr (or "
              "hydra.sweeper.member_keys=[init,seed]: one job per lr)")
    for key in cfg.optimizer:
        if key not in allowed and key not in ("_target_", "_partial_", "foreach", "fused",
                                              "capturable", "differentiable"):
            _fail(f"optimizer.{key}", cfg.optimizer.get(key),
                  f"{opt} options {', '.join(sorted(allowed))} when the members differ in "
                  "optimizer.lr")
