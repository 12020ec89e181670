"""One vectorized job: K member runs -> K ordinary run folders.

``train_members`` trains given member configs (Hydra-free: tests and benchmarks call it);
``run_vectorized`` is what train.py calls for a job of ``hydra/sweeper=vectorized``: it
composes each member's config, picks its run folder in the sweep folder (named as the
basic sweeper would name that run's job folder), skips members already finished and
hands the rest to ``train_members``.

Each member's folder holds what ``initlab.pipeline.run`` writes (``summary.json`` of the
same shape, ``history.csv`` with the same columns, TensorBoard events with the same
tags, hparams, the init probe and the training-time diagnostics) plus ``.hydra/`` with its
own config, so aggregation, resume and plots treat it as any run. Differences, stated in
the summary: ``wall_time_s``, ``fit_time_s`` and ``ms_per_step`` are the job's times
divided by the K members trained together (``vectorized_k``, ``job_wall_time_s``,
``wall_time_basis``).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from initlab.config import check_accelerator, study_config, validate
from initlab.results.files import HISTORY_FILE, SUMMARY_FILE, write_csv, write_json
from initlab.vectorized import handoff
from initlab.vectorized.checks import VectorizeError, check_member_lrs, check_supported
from initlab.vectorized.grouping import (
    DEFAULT_MEMBER_KEYS,
    JOB_DIR,
    VECTORIZE_KEY,
    decode_members,
    in_order,
    is_member_key,
    override_key,
    split_seed,
)

log = logging.getLogger("initlab.vectorized")
WALL_TIME_BASIS = "job time / vectorized_k (vectorized_k runs were trained at once)"


@dataclass
class Member:
    """One run of a vectorized job."""

    cfg: DictConfig  # the run's composed config (no hydra node)
    output_dir: Path
    choices: dict[str, str] | None = None  # config group choices (init=he, ...)
    overrides: list[str] = field(default_factory=list)  # the run's task overrides
    hydra_cfg: DictConfig | None = None  # written to <output_dir>/.hydra/hydra.yaml

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)


def _device(cfg: DictConfig) -> str:
    """The job's device: the CPU, or the CUDA device ``trainer.devices`` names (a list
    of one index, Lightning's way to pick one; a count picks the first)."""
    import torch

    accel = str(cfg.trainer.get("accelerator", "cpu"))
    if accel == "auto":
        accel = "cuda" if torch.cuda.is_available() else "cpu"
    if accel not in ("gpu", "cuda"):
        return "cpu"
    devices = cfg.trainer.get("devices")
    if isinstance(devices, str):  # "1," is Lightning's string form of [1]; "auto", "-1"
        parts = [d.strip() for d in devices.split(",") if d.strip()]
        devices = [int(d) for d in parts] if "," in devices and parts else None
    if devices is not None and not isinstance(devices, int) and len(devices) == 1:
        return f"cuda:{int(devices[0])}"
    return "cuda"


def check_members(members: Sequence[Member],
                  configs: Sequence[dict[str, Any]] | None = None) -> None:
    """Members must agree on everything but ``init*``, ``seed`` and ``optimizer.lr``
    (same model, data and training recipe): only the initial weights, the batch order and
    the learning rate may differ between stacked members, whatever
    ``hydra.sweeper.member_keys`` says. Keys that follow ``optimizer.lr`` by
    interpolation (OneCycle's ``max_lr: ${optimizer.lr}``) follow it in each member's
    own schedule, so they are compared with every member's lr set to the first's.
    ``configs``: the members' ``study_config`` when already computed."""
    member_keys = DEFAULT_MEMBER_KEYS
    flat = list(configs) if configs is not None else [study_config(m.cfg) for m in members]
    lr0 = members[0].cfg.optimizer.get("lr") if members else None
    for i, m in enumerate(members):
        if m.cfg.optimizer.get("lr") != lr0:
            same_lr = copy.deepcopy(m.cfg)
            with read_write(same_lr), open_dict(same_lr):
                same_lr.optimizer.lr = lr0
            flat[i] = study_config(same_lr)
    if len({m.cfg.optimizer.get("lr") for m in members}) > 1:
        check_member_lrs(members[0].cfg)
    views = [{k: v for k, v in c.items() if not is_member_key(k, member_keys)} for c in flat]
    ref = views[0]
    for other in views[1:]:
        for key in sorted(set(ref) | set(other)):
            if ref.get(key) != other.get(key):
                raise VectorizeError(
                    f"the runs of one vectorized job must differ only in "
                    f"{', '.join(member_keys)}; {key} is {ref.get(key)!r} in one run and "
                    f"{other.get(key)!r} in another")


def _stacked_optimizer(cfgs: Sequence[DictConfig], params: list[Any]) -> Any:
    """The members' optimizer over the stacked tensors: ``MemberLrOptimizer`` with each
    member's lr for SGD, Adam and AdamW (also when the lrs are equal: building a
    ``torch.optim`` optimizer imports torch._dynamo, about 1 s of a short sweep), else
    the configured ``torch.optim`` optimizer (members then share the lr)."""
    from hydra.utils import instantiate

    from initlab.vectorized.engine import stacked_optimizer
    from initlab.vectorized.optim import MemberLrOptimizer

    lrs = [float(c.optimizer.lr) for c in cfgs]
    try:
        check_member_lrs(cfgs[0])  # an optimizer and options MemberLrOptimizer writes out
    except VectorizeError:
        return stacked_optimizer(instantiate(cfgs[0].optimizer), params)
    options = OmegaConf.to_container(cfgs[0].optimizer, resolve=True)
    kind = str(options.pop("_target_")).rsplit(".", 1)[-1]
    options.pop("_partial_", None)
    return MemberLrOptimizer(kind, params, lrs, options)


def _schedules(cfgs: Sequence[DictConfig], optimizer: Any, total_steps: int) -> Any:
    """Each member's ``lr_scheduler`` on a shadow of its optimizer (None without one)."""
    from hydra.utils import instantiate

    from initlab.schedulers import scheduler_spec
    from initlab.vectorized.optim import MemberSchedules

    specs = [scheduler_spec(c.get("lr_scheduler")) for c in cfgs]
    if specs[0] is None:
        return None
    return MemberSchedules([s["scheduler"] for s in specs],
                           [instantiate(c.optimizer) for c in cfgs],
                           specs[0]["interval"], specs[0]["frequency"], total_steps, optimizer)


def _probe(model: Any, dm: Any, seed: int, diag: Any, activation: str | None, logger: Any
           ) -> Any:
    """The ordinary pipeline's probe (``InitProbe``'s core, ``InitProfile``) on one
    member's initialized model, on the batch the data module of a run with ``seed``
    draws."""
    from initlab.diagnostics.init_profile import InitProfile

    cb = InitProfile.from_config(diag, activation)
    device = next(model.parameters()).device
    x, y = dm.sample_batch(cb.batch_size, seed=seed)
    cb.run(model, x.to(device), y.to(device), logger)
    return cb


def _write_hydra_dir(m: Member) -> None:
    """``.hydra/`` as Hydra writes it for a job (only for members of a Hydra job: like
    ``initlab.pipeline.run``, ``train_members`` alone writes no Hydra files)."""
    if m.hydra_cfg is None:
        return
    hydra_dir = m.output_dir / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(m.cfg, hydra_dir / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(m.overrides)), hydra_dir / "overrides.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": m.hydra_cfg}), hydra_dir / "hydra.yaml")


def train_members(members: Sequence[Member], job: str | None = None) -> list[dict[str, Any]]:
    """Train ``members`` as one stacked model; write each member's run folder; return
    their summaries (in order). Never raises for a failing member or job: failures are
    recorded in the summaries, as ``initlab.pipeline.run`` does."""
    from hydra.utils import get_class, instantiate

    from initlab.data.base import plain_data_class
    from initlab.data.batcher import TensorBatcher
    from initlab.diagnostics.training import DiagnosticsSettings, settings_from_config
    from initlab.heap import setup_phase
    from initlab.history import HISTORY_COLUMNS, Diverged
    from initlab.init_data import INIT_BATCH_SIZE, init_data
    from initlab.models.activations import activation_factory
    from initlab.pipeline import (
        _log_hparams,
        make_loggers,
        module_hparams,
        new_summary,
        quiet_libraries,
        record_divergence,
        record_failure,
        record_fit,
        record_history,
        record_setup,
    )
    from initlab.runguard import Interrupted, record_interruption
    from initlab.seeding import seed_all
    from initlab.vectorized.diagnostics import MemberDiagnostics
    from initlab.vectorized.engine import (
        StackedModel,
        VectorizedTrainer,
        log_interval,
    )

    quiet_libraries()
    t0 = time.perf_counter()
    k_all = len(members)
    summaries: list[dict[str, Any]] = []
    loggers: list[Any] = [None] * k_all
    probes: list[Any] = [None] * k_all  # the probes that ran
    for m in members:
        m.output_dir.mkdir(parents=True, exist_ok=True)
        summaries.append(new_summary(m.cfg, m.choices, m.overrides, m.output_dir))
        _write_hydra_dir(m)
    trainer: VectorizedTrainer | None = None
    interrupted: Interrupted | None = None
    live: list[int] = []  # indices of the members in the stacked model
    task = "classification"
    try:
        # imports (sklearn, matplotlib, tensorboard) and set-up: no collections (heap.py)
        with setup_phase():
            if not members:
                return []
            for m in members:
                validate(m.cfg)
            check_members(members, [s["config"] for s in summaries])
            # what check_supported reads (model, trainer, optimizer) is the same in every member
            check_supported(members[0].cfg, (members[0].choices or {}).get("model"))
            check_accelerator(members[0].cfg.trainer, cuda_only=True)
            cfg = members[0].cfg
            diag = cfg.get("diagnostics") or {}
            # the configured callback's options, for each member's training-time diagnostics
            # (initlab's TrainingDiagnostics read without building the Lightning callback)
            diag_settings = settings_from_config(diag.get("callback"))
            if diag_settings is None and diag.get("callback"):
                diag_settings = instantiate(diag.callback)
            if diag_settings is not None and not isinstance(diag_settings, DiagnosticsSettings):
                log.info("vectorized job: the diagnostics callback %s is not run (only "
                         "TrainingDiagnostics is, per member)", type(diag_settings).__name__)
                for s in summaries:
                    s["vectorized_skipped"] = "diagnostics.callback"
                diag_settings = None
            device = _device(cfg)
            # initlab's data modules as their Lightning-free twins (same data, same splits)
            twin = plain_data_class(str(cfg.dataset.get("_target_")))
            dm = instantiate(cfg.dataset, seed=cfg.seed, **({"_target_": twin} if twin else {}))
            if hasattr(dm, "check_available"):
                dm.check_available()
            dm.prepare()
            if not isinstance(getattr(dm, "splits", None), dict) or "train" not in dm.splits:
                raise VectorizeError(
                    f"dataset={type(dm).__name__} does not hold its data in memory "
                    "(InMemoryData); hydra/sweeper=vectorized needs an in-memory data set")
            task = dm.task
            data_desc = dm.describe()
            act_cfg = OmegaConf.to_container(cfg.activation, resolve=True)
            act_name = act_cfg.get("name")
            make_act = activation_factory(**act_cfg)
            # the members share the model config (checked above): resolve it once; each
            # member still builds its own model right after seeding, as an ordinary run does
            model_kwargs = OmegaConf.to_container(cfg.model, resolve=True)
            model_cls = get_class(model_kwargs.pop("_target_"))
            initializers: dict[str, Any] = {}  # one Initializer per distinct init config
            models = []
            for i, m in enumerate(members):
                s = summaries[i]
                try:
                    init_cfg = OmegaConf.to_container(m.cfg.init, resolve=True)
                    key = json.dumps(init_cfg, sort_keys=True, default=str)
                    if key not in initializers:
                        initializers[key] = instantiate(m.cfg.init)
                    initializer = initializers[key]
                    seed_all(m.seed)  # as the ordinary run's seed_everything
                    model = model_cls(**model_kwargs, input_shape=tuple(dm.input_shape),
                                      num_outputs=dm.num_outputs, activation=make_act)
                    data = init_data(initializer, model, dm, INIT_BATCH_SIZE, seed=m.seed)
                    initializer(model, activation=make_act(), data=data, seed=m.seed)
                    record_setup(s, dm.task, dict(data_desc), model)
                    made = make_loggers(m.cfg, Path(m.output_dir), s["run_name"],
                                        lightning_free=True)
                    if made:
                        loggers[i] = LoggerGroup(made)
                        # what Lightning does at fit start: log the module's hyperparameters
                        # and save (TensorBoard's hparams.yaml is written once, then)
                        loggers[i].log_hyperparams(module_hparams(m.cfg, dm, act_cfg,
                                                                  s["config"]))
                        loggers[i].save()
                    if diag.get("probe", False):
                        probes[i] = _probe(model, dm, m.seed, diag, act_name, loggers[i])
                    models.append(model)
                    live.append(i)
                except Exception as exc:  # noqa: BLE001 - this member failed, the others go on
                    record_failure(s, exc)
                    log.error("run %s failed at init: %s", s["run_name"], s["error"])
        if live:
            stacked = StackedModel(models, device=device)
            live_cfgs = [members[i].cfg for i in live]
            optimizer = _stacked_optimizer(live_cfgs, list(stacked.params.values()))
            tcfg = cfg.trainer
            log_every = log_interval(tcfg.get("log_every_n_steps", 50))
            diagnostics = None if diag_settings is None else MemberDiagnostics(
                diag_settings, stacked, [loggers[i] for i in live], log_every,
                [summaries[i]["run_name"] for i in live])
            trainer = VectorizedTrainer(
                stacked, optimizer, task=dm.task, loggers=[loggers[i] for i in live],
                log_every_n_steps=log_every,
                gradient_clip_val=tcfg.get("gradient_clip_val"),
                gradient_clip_algorithm=tcfg.get("gradient_clip_algorithm") or "norm",
                max_loss=cfg.get("max_loss"),
                diagnostics=diagnostics,
            )
            x_tr, y_tr = (t.to(device) for t in dm.splits["train"])
            batchers = [TensorBatcher(x_tr, y_tr, dm.batch_size, shuffle=True,
                                      seed=members[i].seed, transform=dm.train_transform)
                        for i in live]
            val = tuple(t.to(device) for t in dm.splits["val"])

            # Lightning's default when max_epochs is null (and max_steps -1)
            max_epochs = 1000 if tcfg.get("max_epochs") is None else int(tcfg.max_epochs)
            # trainer.estimated_stepping_batches: batches per epoch x epochs
            trainer.schedules = _schedules(live_cfgs, optimizer, len(batchers[0]) * max_epochs)

            def progress(epoch: int, tr: VectorizedTrainer) -> None:
                n_active = int((~tr.frozen).sum())
                log.info("epoch %d/%d: %d of %d runs training", epoch + 1, max_epochs,
                         n_active, tr.model.k)

            trainer.fit((x_tr, y_tr), batchers, val, dm.eval_batch_size, max_epochs,
                        on_epoch=progress)
            if "test" in dm.splits:
                trainer.test(*(t.to(device) for t in dm.splits["test"]), dm.eval_batch_size)
    except Interrupted as exc:  # SIGTERM: each unfinished member is resumable
        interrupted = exc
        for s in summaries:
            if s["status"] == "running":
                record_interruption(s, exc)
        log.warning("vectorized job interrupted: %s", exc)
    except Exception as exc:  # noqa: BLE001 - a failing job is recorded, never fatal
        for s in summaries:
            if s["status"] == "running":
                record_failure(s, exc)
        log.error("vectorized job failed: %s: %s", type(exc).__name__, exc)
    wall = time.perf_counter() - t0
    for pos, i in enumerate(live if trainer is not None else []):
        s = summaries[i]
        mlog = trainer.logs[pos]
        if mlog.diverged is not None and s["status"] == "running":
            record_divergence(s, Diverged(*mlog.diverged))
        elif s["status"] == "running":
            record_fit(s, trainer.fit_time_s / k_all, trainer.global_step)
            s.update(mlog.test)
            s["status"] = "completed"
        if trainer.diagnostics is not None:  # the final dead fractions, as an ordinary run
            s.update(trainer.diagnostics.final.get(pos, {}))
    histories = {i: trainer.logs[pos].history for pos, i in enumerate(live)} if trainer else {}
    for i, (m, s) in enumerate(zip(members, summaries, strict=True)):
        rows = histories.get(i, [])
        record_history(s, rows, m.cfg, task, probes[i])
        s["wall_time_s"] = wall / k_all
        s.update(vectorized_k=k_all, job_wall_time_s=wall, wall_time_basis=WALL_TIME_BASIS)
        if job is not None:
            s["vectorized_job"] = job
        write_csv(m.output_dir / HISTORY_FILE, rows, HISTORY_COLUMNS)
        write_json(m.output_dir / SUMMARY_FILE, s)
    for logger, s in zip(loggers, summaries, strict=True):
        if logger is not None:
            _log_hparams(logger, s)
    if interrupted is not None:
        interrupted.summaries = summaries
        raise interrupted  # the sweep stops launching and aggregates what finished
    return summaries


class LoggerGroup:
    """A member's loggers (the ``logger`` group's entries) behind one logger's methods:
    metrics, hyperparameters and finalize go to each; histograms to the first that draws
    them (TensorBoard), as ``trainer.logger`` is the first logger in an ordinary run."""

    def __init__(self, loggers: Sequence[Any]) -> None:
        self.loggers = list(loggers)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for logger in self.loggers:
            logger.log_metrics(metrics, step=step)

    def log_hyperparams(self, params: Any, metrics: dict[str, float] | None = None) -> None:
        from initlab.pipeline import log_hyperparams

        for logger in self.loggers:
            log_hyperparams(logger, params, metrics)

    def save(self) -> None:
        for logger in self.loggers:
            logger.save()

    def finalize(self, status: str) -> None:
        for logger in self.loggers:
            logger.finalize(status)

    @property
    def experiment(self) -> Any:
        for logger in self.loggers:
            if hasattr(getattr(logger, "experiment", None), "add_histogram"):
                return logger.experiment
        return None


# --------------------------------------------------------------------------- Hydra side


def _overrides_dirname(overrides: Sequence[str], hydra_node: DictConfig) -> str | None:
    """``hydra.job.override_dirname`` of a job with these task overrides (Hydra's own
    function and settings, ``initlab.compat``); None if that cannot be had."""
    from initlab.compat import overrides_dirname

    try:
        return overrides_dirname(overrides, hydra_node)
    except Exception:  # noqa: BLE001 - the caller composes instead
        return None


class MemberComposer:
    """Composes members' configs as Hydra would compose their jobs in an ordinary sweep:
    (task config, hydra node, run folder name). Members that differ only in a plain
    ``seed=<int>`` share one composition, copied with the seed (and the seed's traces in
    the hydra node: task overrides, ``override_dirname``) replaced."""

    def __init__(self, config_name: str | None, hydra_overrides: Sequence[str]) -> None:
        self.config_name = config_name
        self.hydra_overrides = list(hydra_overrides)
        self._cache: dict[tuple[str, ...], DictConfig] = {}
        self.handed_over = 0  # members whose config came from the sweeper (handoff)

    def _compose(self, overrides: list[str]) -> DictConfig:
        from hydra import compose

        return compose(config_name=self.config_name,
                       overrides=[*self.hydra_overrides, *overrides], return_hydra_config=True)

    def _full(self, overrides: list[str]) -> DictConfig:
        from omegaconf import read_write

        rest, seed = split_seed(overrides)
        if seed is None:
            return self._compose(overrides)
        if rest not in self._cache:
            self._cache[rest] = self._compose(overrides)
        full = copy.deepcopy(self._cache[rest])
        dirname = _overrides_dirname(overrides, full.hydra)
        if dirname is None:
            return self._compose(overrides)
        with read_write(full), open_dict(full):
            full.seed = seed
            full.hydra.overrides.task = list(overrides)
            full.hydra.job.override_dirname = dirname
        return full

    def __call__(self, overrides: list[str], num: int) -> tuple[DictConfig, DictConfig, str]:
        # the sweeper's own composition of this run, when it ran in this process
        full = handoff.take(handoff.handoff_key(self.config_name, self.hydra_overrides,
                                                overrides))
        self.handed_over += full is not None
        if full is None:
            full = self._full(overrides)
        hydra_node = full.hydra
        with open_dict(full):
            hydra_node.job.num = num
        try:
            subdir = str(OmegaConf.select(full, "hydra.sweep.subdir", throw_on_missing=True))
        except Exception:  # noqa: BLE001 - an unusual subdir pattern: Hydra's default one
            subdir = f"{num}_{hydra_node.job.override_dirname}"
        with open_dict(full):
            del full["hydra"]
        return full, hydra_node, subdir


def _member_line(i: int, k: int, overrides: list[str], s: dict[str, Any]) -> str:
    best = s.get("best_val_acc")
    best_s = f"{best:.4f}" if isinstance(best, float) else "-"
    from initlab.results.callback import run_status

    return (f"[run {i}/{k}] {' '.join(overrides) or '(defaults)'}: {run_status(s)}, "
            f"best val acc {best_s}")


def run_vectorized(cfg: DictConfig, members: Any = None, sweep_dir: str | Path | None = None
                   ) -> dict[str, Any]:
    """Run the vectorized job ``cfg`` (composed with ``++vectorize.members=[...]``) inside
    a Hydra job: member run folders go into ``sweep_dir`` (default: the sweep folder
    holding this job's hidden ``.vectorized/<n>`` folder). Returns the job's summary
    (``status`` counts the members' outcomes; ``runs`` lists them)."""
    from hydra.core.hydra_config import HydraConfig

    from initlab.resume import finished_summary
    from initlab.runguard import Interrupted, RunLock

    hc = HydraConfig.get()
    spec = decode_members(members if members is not None else cfg[VECTORIZE_KEY].members)
    key_order = cfg[VECTORIZE_KEY].get("order") if VECTORIZE_KEY in cfg else None
    out = Path(hc.runtime.output_dir)
    if sweep_dir is None:
        sweep_dir = out.parents[1] if out.parent.name == JOB_DIR else out
    sweep_dir = Path(sweep_dir)
    shared = [o for o in hc.overrides.task if override_key(o).split(".")[0] != VECTORIZE_KEY]
    hydra_ovs = list(hc.overrides.hydra)
    mine = [i for i, o in enumerate(hydra_ovs) if o.startswith("hydra.sweep.subdir=")]
    if mine:  # the sweeper's own subdir override names the job folder, not the runs'
        hydra_ovs.pop(mine[-1])
    t0 = time.perf_counter()
    compose_member = MemberComposer(hc.job.config_name, hydra_ovs)
    todo: list[Member] = []
    locks: list[RunLock] = []
    results: dict[int, dict[str, Any]] = {}
    labels: dict[int, list[str]] = {}
    order: list[int] = []
    for num, own in spec:
        overrides = in_order([*shared, *own], key_order)  # the ordinary run's order
        mcfg, hnode, subdir = compose_member(overrides, num)
        run_dir = sweep_dir / subdir
        with open_dict(hnode):
            hnode.runtime.output_dir = str(run_dir.resolve())
        order.append(num)
        labels[num] = own
        # one process per run folder, as for an ordinary job (runguard.RunLock)
        lock = RunLock.acquire(run_dir)
        if isinstance(lock, str):
            results[num] = {"status": "skipped", "skip_reason": f"running elsewhere ({lock})"}
            continue
        done = finished_summary(mcfg, run_dir)
        if done is not None:
            lock.release()
            results[num] = {**done, "skipped": True}
            continue
        locks.append(lock)
        todo.append(Member(mcfg, run_dir, choices=dict(hnode.runtime.choices),
                           overrides=overrides, hydra_cfg=hnode))
    print(f"[vectorized] job {out.name}: {len(spec)} runs"
          + (f" ({len(spec) - len(todo)} already finished or running elsewhere)"
             if len(todo) < len(spec) else "")
          + f", {' '.join(shared) or 'defaults'}", flush=True)
    log.debug("%d of %d member configs composed by the sweeper", compose_member.handed_over,
              len(spec))
    nums = [n for n in order if n not in results]
    interrupted: Interrupted | None = None
    try:
        trained = train_members(todo, job=f"{JOB_DIR}/{out.name}")
    except Interrupted as exc:  # the members' folders are written (status interrupted)
        interrupted, trained = exc, exc.summaries or []
    finally:
        for lock in locks:
            lock.release()
    for num, s in zip(nums, trained, strict=False):
        results[num] = s
    for i, num in enumerate(order, 1):
        if num in results:
            print(_member_line(i, len(order), labels[num], results[num]), flush=True)
    if interrupted is not None:
        raise interrupted
    counts: dict[str, int] = {}
    for num in order:
        status = str(results[num].get("status", "?"))
        counts[status] = counts.get(status, 0) + 1
    return {
        "status": f"{len(order)} runs vectorized: "
        + ", ".join(f"{v} {k}" for k, v in counts.items()),
        "vectorized": True,
        "wall_time_s": time.perf_counter() - t0,
        "runs": [{"num": n, "overrides": labels[n], "status": results[n].get("status"),
                  "best_val_acc": results[n].get("best_val_acc")} for n in order],
    }
